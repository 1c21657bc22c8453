"""The zero-shot row, made once and reused: it depends only on the model, the test rows and how they are generated.

A comparison's zero-shot method trains nothing, so its summaries are the same in every comparison with
the same model, test rows, prompt length, summary length, seed, device kind and versions of the kit,
transformers and torch; making them again took about a fifth of a summarisation comparison's wall time.
The first comparison stores the row, its per-item predictions and examples in the asset cache
(``<cache>/zero-shot-rows/<key>.json``, :func:`tutorlib.loading.assets.cache_dir`; ``TUTORLIB_ROW_CACHE``
moves it); later ones read it and say so. ``tutorlib compare --no-cache`` (``compare(use_cache=False)``)
makes it again. The generation batch size is not part of the key: with greedy decoding and left padding
the summaries do not depend on it (``tests/test_generation_batch.py``).

Writes are atomic (:func:`tutorlib.files.write_atomic`) and under a file lock, so two comparisons started
together make the row once: the second waits, then reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
import transformers
from filelock import FileLock

import tutorlib
from tutorlib.files import write_atomic
from tutorlib.loading.assets import cache_dir


def folder() -> Path:
    """Where stored rows live: ``TUTORLIB_ROW_CACHE`` if set (the tests set it), else ``<cache>/zero-shot-rows``."""
    return Path(os.environ.get("TUTORLIB_ROW_CACHE") or cache_dir() / "zero-shot-rows")


def key_of(*, task: str, method: str, model_name: str, dataset_name: str, test_rows, max_length: int,
           max_new_tokens: int, seed: int, device: torch.device) -> tuple[str, dict]:
    """The cache key (a SHA-256 in hex) and the facts it was made from. ``test_rows``: the rows scored, as the
    model sees them (a ``datasets.Dataset``); their content is hashed, so other rows make another key."""
    rows = json.dumps(test_rows.to_dict(), sort_keys=True, default=_plain).encode()
    facts = {"task": task, "method": method, "model": model_name, "dataset": dataset_name,
             "test_rows_sha256": hashlib.sha256(rows).hexdigest(), "test_items": len(test_rows),
             "max_length": max_length, "max_new_tokens": max_new_tokens, "decoding": "greedy", "seed": seed,
             "device": torch.device(device).type, "tutorlib": tutorlib.__version__,
             "transformers": transformers.__version__, "torch": torch.__version__}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32], facts


def path_of(key: str) -> Path:
    return folder() / f"{key}.json"


@contextmanager
def locked(key: str):
    """Hold the key's file lock: one process makes a row while the others wait for it."""
    path = path_of(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):
        yield path


def load(key: str) -> dict | None:
    """The stored ``{"facts", "row", "predictions", "examples"}``, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(path_of(key).read_text())
    except (OSError, ValueError):
        return None


def save(key: str, facts: dict, row: dict, predictions: list, examples: list) -> Path:
    """Store a row with its predictions and examples, atomically; returns the file's path."""
    record = {"facts": facts, "row": row, "predictions": predictions, "examples": examples}
    return write_atomic(path_of(key), json.dumps(record, default=_plain))


def _plain(value):
    """numpy numbers -> Python numbers (``.item()``); anything else JSON cannot hold -> its text."""
    return value.item() if hasattr(value, "item") else str(value)
