"""Will a training step fit in memory? A lower bound, checked before the first step.

A prefix of P virtual tokens makes every attention layer compare each of the T real tokens with
T + P keys. The scores and the softmax probabilities, (B, heads, T, T + P) each, are kept for the
backward pass, in every layer. At P = 10 that is nothing; at P = 100,000 it is far more than a laptop
has, and the operating system kills the process a minute later without a word. So the comparison
adds up what a step cannot do without and refuses with the numbers when that alone does not fit:

    weights (fp32)                                   4 x N bytes
    the prefix's own vectors                         4 x P x layers x 2 x kv_heads x head_dim bytes
    attention scores + probabilities, every layer    2 x 4 x B x heads x T x (T + P) bytes x layers
    a language model's logits and their gradient     2 x 4 x B x T x vocab bytes

Everything else (other activations, gradients, AdamW's state) comes on top, so the estimate is a floor:
it never refuses a step that fits.

    >>> from tutorlib.loading.models import load_model
    >>> model, _ = load_model("tiny-gpt2")
    >>> estimate = step_memory_floor(model, batch_size=2, seq_len=16, prefix_length=10)
    >>> estimate.total > estimate.weights > 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch
from torch import nn

from tutorlib.loading.architectures import sizes_of
from tutorlib.units import format_size

FP32 = 4  # bytes per number


@dataclass(frozen=True)
class MemoryFloor:
    """The bytes a training step needs at least, by part."""

    weights: int
    prefix: int
    attention: int
    logits: int

    @property
    def total(self) -> int:
        return self.weights + self.prefix + self.attention + self.logits


class DoesNotFitError(ValueError):
    """A training step that cannot fit in the memory this machine (or GPU) has free."""


def step_memory_floor(model: nn.Module, *, batch_size: int, seq_len: int, prefix_length: int = 0) -> MemoryFloor:
    """:class:`MemoryFloor` of one training step of ``model`` on batches (batch_size, seq_len), with a
    prefix of ``prefix_length`` virtual tokens per layer (0: no prefix). ``model`` may be the plain model
    (the check runs before a prefix is attached, which alone may not fit) or an already wrapped one."""
    transformer = _transformer_in(model)
    sizes = sizes_of(transformer.config)
    weights = FP32 * sum(p.numel() for p in transformer.parameters())
    prefix = FP32 * prefix_length * sizes.layers * 2 * sizes.kv_heads * sizes.head_dim
    keys = seq_len + prefix_length
    attention = 2 * FP32 * batch_size * sizes.heads * seq_len * keys * sizes.layers
    has_lm_head = hasattr(transformer, "get_output_embeddings") and transformer.get_output_embeddings() is not None
    logits = 2 * FP32 * batch_size * seq_len * sizes.vocab if has_lm_head else 0
    return MemoryFloor(weights, prefix, attention, logits)


def _transformer_in(model: nn.Module) -> nn.Module:
    """The outermost Hugging Face model inside ``model`` (itself, or inside a method's or a head's wrapper)."""
    for module in model.modules():  # the model first, then its children, depth first
        if hasattr(getattr(module, "config", None), "num_hidden_layers"):
            return module
    raise ValueError(f"{type(model).__name__} holds no Hugging Face transformer (no module with a config).")


def free_memory(device: torch.device) -> int:
    """Bytes free now: the GPU's free memory for a CUDA device, else the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def check_step_fits(model: nn.Module, *, batch_size: int, seq_len: int, prefix_length: int = 0,
                    device: torch.device | str = "cpu") -> MemoryFloor:
    """Raise :class:`DoesNotFitError` (with the estimate, the free memory and what to change) when even
    the floor of one training step exceeds the free memory of ``device``; return the floor otherwise."""
    device = torch.device(device)
    floor = step_memory_floor(model, batch_size=batch_size, seq_len=seq_len, prefix_length=prefix_length)
    free = free_memory(device)
    if floor.total > free:
        where = "GPU memory free" if device.type == "cuda" else "memory available on this machine"
        raise DoesNotFitError(
            f"A training step needs at least {format_size(floor.total)} (weights {format_size(floor.weights)}, "
            f"the prefix {format_size(floor.prefix)}, "
            f"attention scores for {seq_len} tokens x {seq_len + prefix_length} keys "
            f"{format_size(floor.attention)}, logits {format_size(floor.logits)}), but only {format_size(free)} "
            f"is {where}. Use a shorter prefix (--prefix-length; the paper used 10-200), a smaller batch "
            f"(--batch-size) or shorter inputs (--max-length).")
    return floor
