"""Saving and loading what a training run produced: tensors in safetensors, facts in a small JSON.

A checkpoint is a folder:

    tutorlib_checkpoint.json    method ("prefix" | "full" | ...), base model name, architecture, head, shapes
    prefix.safetensors          prefix tuning: the prefix (+ a classifier head), a few KiB
    model.safetensors           full fine-tuning: every weight of the model, MBs to GBs

safetensors files hold only tensors, so loading one never runs code (``torch.load`` unpickles
arbitrary Python objects; the kit never uses it).

Storage only: this module knows files, not methods. Loading a checkpoint back into a model goes
through the method registry, which reads the recorded method and calls that method's loader:

    >>> from tutorlib.methods.registry import load_checkpoint
    >>> tuned = load_checkpoint("runs/prefix-sst2")          # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import safetensors.torch
import torch

INFO_FILE = "tutorlib_checkpoint.json"
PREFIX_FILE = "prefix.safetensors"
FULL_FILE = "model.safetensors"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete, or of another kind than expected."""


def _write_info(folder: Path, info: dict) -> Path:
    path = folder / INFO_FILE
    path.write_text(json.dumps({"format_version": FORMAT_VERSION, **info}, indent=2) + "\n")
    return path


def save_tensors(folder, tensors: dict[str, torch.Tensor], info: dict, filename: str) -> list[Path]:
    """Write ``tensors`` to ``folder/filename`` (safetensors) and ``info`` (+ the tensors' shapes) to
    the JSON; returns the two paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    safetensors.torch.save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path),
                                metadata={"method": str(info.get("method"))})
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    return [path, _write_info(folder, {**info, "file": filename, "tensors": shapes})]


def save_module(folder, module: torch.nn.Module, info: dict, filename: str) -> list[Path]:
    """Write a whole module's weights (tied weights stored once) and ``info``; returns the two paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    safetensors.torch.save_model(module, str(path), metadata={"method": str(info.get("method"))})
    return [path, _write_info(folder, {**info, "file": filename})]


def read_info(folder, expect_method: str | None = None) -> dict:
    """The JSON of a checkpoint folder; checks the method when ``expect_method`` is given."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a tutorlib checkpoint (no {INFO_FILE}). Save one with "
                              f"model.save_checkpoint(folder), or check the folder name.")
    info = json.loads(path.read_text())
    if expect_method is not None and info.get("method") != expect_method:
        raise CheckpointError(f"{folder} holds a {info.get('method')!r} checkpoint, not {expect_method!r}: "
                              f"load it with tutorlib.methods.registry.load_checkpoint(folder).")
    return info


def read_tensors(folder, filename: str, expect_method: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(info, tensors) of a checkpoint written by :func:`save_tensors`."""
    info = read_info(folder, expect_method)
    path = Path(folder) / filename
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint was not saved completely.")
    return info, safetensors.torch.load_file(str(path))


def load_module_weights(module: torch.nn.Module, folder, filename: str) -> torch.nn.Module:
    """Load weights written by :func:`save_module` into ``module`` (same architecture); returns it."""
    path = Path(folder) / filename
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint was not saved completely.")
    safetensors.torch.load_model(module, str(path), strict=True)
    return module


def require_model_name(info: dict) -> str:
    """The base model's name recorded in a checkpoint, or a clear error when none was."""
    name = info.get("model_name")
    if not name:
        raise CheckpointError("This checkpoint does not record which base model it belongs to. Pass the "
                              "base model yourself: load_checkpoint(folder, model=load_model(name)[0]).")
    return name


def base_model_facts(model: torch.nn.Module) -> dict:
    """What a checkpoint records about the model it was trained on: its head, architecture and num_labels
    (a classifier's; None for a language model)."""
    from tutorlib.loading.models import SequenceClassifier, head_of, pretrained_part

    num_labels = model.head.out_features if isinstance(model, SequenceClassifier) else None
    return {"head": head_of(model), "architecture": pretrained_part(model).config.model_type, "num_labels": num_labels}


def recorded_head(info: dict) -> str:
    """The model head a checkpoint records ("classification", "causal-lm", ...). Checkpoints written before
    the kit called it a head record it under "task"."""
    head = info.get("head", info.get("task"))
    if head is None:
        raise CheckpointError("This checkpoint does not record its model's head. Pass the base model yourself: "
                              "load_checkpoint(folder, model=load_model(name, head=...)[0]).")
    return head


def base_model_for(info: dict, model: torch.nn.Module | None = None) -> torch.nn.Module:
    """``model``, or else the base model a checkpoint records (loaded by its name, head and labels)."""
    if model is not None:
        return model
    from tutorlib.loading.models import load_model

    return load_model(require_model_name(info), head=recorded_head(info), num_labels=info.get("num_labels") or 2)[0]


def save_trained(folder, tuned: torch.nn.Module, filename: str, **facts) -> list[Path]:
    """Save what a method trained on a frozen model: ``tuned.checkpoint_tensors()`` into ``folder/filename``, and
    what rebuilds it (its method, the base model's name, head, architecture and labels, and the method's own
    ``facts``, e.g. ``rank=8``) into the JSON; returns the two paths."""
    info = {"method": tuned.method, "model_name": tuned.model_name, **base_model_facts(tuned.model), **facts}
    return save_tensors(folder, tuned.checkpoint_tensors(), info, filename)


def read_trained(folder, filename: str, method: str,
                 model: torch.nn.Module | None = None) -> tuple[dict, dict[str, torch.Tensor], torch.nn.Module]:
    """(info, tensors, base model) of a checkpoint :func:`save_trained` wrote for ``method``; the base model is
    ``model``, or else the one the checkpoint records, loaded by its name, head and labels."""
    info, tensors = read_tensors(folder, filename, expect_method=method)
    return info, tensors, base_model_for(info, model)


def copy_into(own: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], info: dict, *, complete: bool = True,
              error: type[Exception] = CheckpointError) -> None:
    """Copy each checkpoint tensor into the model's tensor of the same name.

    Args:
        own: name -> the model's parameter, named as the checkpoint names it (e.g. ``head.weight``).
        tensors: name -> the saved tensor. Each must have its parameter in ``own``, of the same shape.
        info: the checkpoint's facts (:func:`read_info`), to say which model it was trained on.
        complete: every parameter of ``own`` must be in the checkpoint too (False: ``own`` may hold more).
        error: the exception class to raise, the calling method's own.
    """
    trained_on = info.get("model_name") or "another model"
    if info.get("num_labels"):
        trained_on += f" with {info['num_labels']} labels"
    unknown = sorted(set(tensors) - set(own))
    missing = sorted(set(own) - set(tensors)) if complete else []
    if unknown or missing:
        what = (f"holds {unknown[0]!r}, which this model does not have" if unknown
                else f"lacks {missing[0]!r}, which this model has")
        raise error(f"The checkpoint {what} ({len(tensors)} saved tensors, {len(own)} in the model): it was "
                    f"trained on {trained_on}; load that model.")
    with torch.no_grad():
        for key, value in tensors.items():
            if own[key].shape != value.shape:
                raise error(f"The checkpoint's {key} has shape {tuple(value.shape)}, which does not fit this model's "
                            f"{tuple(own[key].shape)}: it was trained on {trained_on}; load that model.")
            own[key].copy_(value)


def checkpoint_bytes(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> int:
    """Bytes on disk of the given files; a folder counts every file inside it."""
    total = 0
    for path in map(Path, [paths] if isinstance(paths, (str, os.PathLike)) else paths):
        if not path.exists():
            raise FileNotFoundError(f"checkpoint_bytes: {path} does not exist; pass the paths that "
                                    f"save_checkpoint(folder) returned.")
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files)
    return total

