"""Inputs follow the model: find the device a model's weights live on and move tensors there.

A lesson builds its inputs on the CPU (the tokenizer returns CPU tensors), while ``train`` may have
moved the model to a GPU. Every method's ``forward`` and ``generate`` call :func:`to_model_device`
first, so the same lesson code runs on a CPU and on a GPU.
"""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); cpu for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def to_model_device(model: nn.Module, *values):
    """Each tensor in ``values`` moved to ``model``'s device (None and non-tensors as they are).

    Returns a tuple in the same order, e.g. ``ids, mask = to_model_device(model, ids, mask)``.
    """
    device = model_device(model)
    return tuple(v.to(device) if torch.is_tensor(v) else v for v in values)
