"""Frequent updates under a budget: K slices of training data arrive one after another, and after each
the deployed model is updated. Per update and method: training time, bytes to ship, time to swap the
update into a model already serving, and quality afterwards.

    >>> from tutorlib.experiments.refresh import refresh_experiment
    >>> result = refresh_experiment(updates=5, mode="fast")        # doctest: +SKIP  (MiniLM, minutes on a CPU)
    >>> result["updates"][0]                                       # doctest: +SKIP  one dict per method x update
    >>> save_refresh(result, "results/refresh-sentiment")          # doctest: +SKIP

The source text's claim under test: prefix tuning suits settings where "model updates must be frequent
but computational budgets are constrained". Each method keeps training the model it deployed last time
(a continual update, not a retrain from scratch) on the new slice only, one pass over it, under the
same batches, seed and learning rates as :func:`tutorlib.experiments.compare.compare`.

What is measured, per update:

* ``train_seconds``: the sum of the step times of this update (no set-up, no evaluation);
* ``ship_bytes``: the checkpoint's size on disk, what would travel to the serving machine;
* ``swap_seconds``: reading that checkpoint from disk and copying it into a model already in memory
  (the serving side's work; loading the base model once is not counted, it happens at start-up);
* quality on the same test rows after the update (accuracy, clear, ambiguous).

The cumulative training seconds against accuracy are also the "rapid iteration" curve: how soon each
method reaches a target (:mod:`tutorlib.experiments.time_to_target`).
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path

import torch

from tutorlib import Mode
from tutorlib.experiments.compare import LEARNING_RATES
from tutorlib.loading.data import load_dataset
from tutorlib.loading.models import load_model
from tutorlib.methods import checkpoints
from tutorlib.methods.checkpoints import checkpoint_bytes
from tutorlib.methods.registry import MethodSetup, get_method
from tutorlib.tasks import sentiment
from tutorlib.training.loop import TrainConfig, train

REFRESH_FILE = "refresh.json"


def data_slices(train_rows, updates: int, examples_per_update: int | None) -> list:
    """The training rows cut into ``updates`` consecutive, disjoint slices (the data "arriving over time").

    ``examples_per_update``: rows per slice; None = the whole split shared equally (the rest dropped).
    """
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 1:
        raise ValueError(f"updates must be a whole number >= 1 (got {updates!r}), e.g. 5 data refreshes.")
    size = examples_per_update or len(train_rows) // updates
    if size < 1 or size * updates > len(train_rows):
        raise ValueError(f"{updates} updates of {size} examples need {size * updates:,} training rows; the data has "
                         f"{len(train_rows):,}. Ask for fewer updates or fewer examples per update.")
    return [train_rows.select(range(k * size, (k + 1) * size)) for k in range(updates)]


def swap_in(serving, folder) -> float:
    """Read a shipped checkpoint and copy its tensors into ``serving`` (a model of the same method, in
    memory) in place; returns the seconds it took. This is the serving side's work per update."""
    started = time.perf_counter()
    if serving.method == "full":
        checkpoints.load_module_weights(serving.model, folder, checkpoints.FULL_FILE)
    else:
        _, tensors = checkpoints.read_tensors(folder, checkpoints.PREFIX_FILE, expect_method="prefix")
        own = dict(serving.model.named_parameters())
        with torch.no_grad():
            serving.prefix_encoder.prefix.copy_(tensors.pop("prefix"))  # (layers, 2, kv_heads, P, head_dim)
            for key, value in tensors.items():  # the classifier head trained beside the prefix
                own[key.removeprefix("model.")].copy_(value)
    return time.perf_counter() - started


def refresh_experiment(*, model: str = "minilm-l6", dataset: str = "movie-snippets", updates: int = 5,
                       examples_per_update: int | None = None, methods=("full", "prefix"), prefix_length: int = 10,
                       seed: int = 0, mode: Mode = "full", tiny_data=None, progress: bool = False) -> dict:
    """Run the K-update scenario for each method on sentiment; return a JSON-able dict.

    Args:
        model, dataset: a sentiment classifier's base model and a dataset with text/label columns.
        updates: K, the number of data refreshes.
        examples_per_update: rows per refresh (None: the whole train split in K equal slices).
        methods: "full" and/or "prefix".
        mode: whose sizes (test items, batch, sequence length) to use: the sentiment task's budget for "fast",
            "workshop" or "full" (``tutorlib.tasks.sentiment.BUDGETS``). Each update is one pass over its slice.
        tiny_data: a ``DatasetDict`` with train and test splits used instead of ``dataset`` (tests).

    Returns:
        ``{"settings": {...}, "updates": [one dict per method and update]}``; each update dict holds
        method, update (1..K), examples, steps, train_seconds, cumulative_train_seconds, ship_bytes,
        swap_seconds, accuracy, clear_accuracy, ambiguous_accuracy, final_loss.
    """
    unknown = [m for m in methods if m not in ("full", "prefix")]
    if unknown:
        raise ValueError(f"refresh_experiment compares 'full' and 'prefix'; got {unknown[0]!r}.")
    budget = sentiment.SENTIMENT.budget(mode)
    splits = tiny_data if tiny_data is not None else load_dataset(dataset, seed=seed)
    test = splits["test"]
    if budget.test_items:
        test = test.select(range(min(budget.test_items, len(test))))
    slices = data_slices(splits["train"], updates, examples_per_update)
    settings = {"model": model, "dataset": dataset if tiny_data is None else "tiny-data", "updates": updates,
                "examples_per_update": len(slices[0]), "test_items": len(test), "batch_size": budget.batch_size,
                "max_length": budget.max_length, "prefix_length": prefix_length, "seed": seed, "mode": mode,
                "learning_rates": {m: LEARNING_RATES[("sentiment", m)] for m in methods},
                "torch_threads": torch.get_num_threads()}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for method in methods:
            base, tokenizer = load_model(model, head="classification", seed=seed)
            tuned = get_method(method).wrap(base, MethodSetup(model_name=model, seed=seed, prefix_length=prefix_length))
            cumulative = 0.0
            for k, rows_k in enumerate(slices, start=1):
                batches = sentiment.make_batches(rows_k, tokenizer, batch_size=budget.batch_size,
                                                 max_length=budget.max_length, shuffle=True, seed=seed + k)
                config = TrainConfig(steps=len(batches), lr=LEARNING_RATES[("sentiment", method)], seed=seed + k)
                history = train(tuned, batches, config, progress=progress)
                folder = Path(scratch) / f"{method}-{k}"
                paths = tuned.save_checkpoint(folder)
                swap_seconds = swap_in(tuned, folder)  # the same bytes copied back: the serving side's work
                quality = sentiment.evaluate_sentiment(tuned, test, tokenizer, batch_size=budget.eval_batch_size,
                                                       max_length=budget.max_length)
                cumulative += sum(history.seconds)
                rows.append({"method": method, "update": k, "examples": len(rows_k), "steps": len(history.loss),
                             "train_seconds": sum(history.seconds), "cumulative_train_seconds": cumulative,
                             "ship_bytes": checkpoint_bytes(paths), "swap_seconds": swap_seconds,
                             "accuracy": quality["accuracy"], "clear_accuracy": quality["clear_accuracy"],
                             "ambiguous_accuracy": quality["ambiguous_accuracy"],
                             "final_loss": float(sum(history.loss[-5:]) / len(history.loss[-5:]))})
                if progress:
                    r = rows[-1]
                    print(f"{method} update {k}: {r['train_seconds']:.1f} s training, {r['ship_bytes']:,} bytes, "
                          f"swap {r['swap_seconds'] * 1000:.1f} ms, accuracy {r['accuracy']:.3f}")
            del tuned, base
            gc.collect()
    return {"settings": settings, "updates": rows}


def save_refresh(result: dict, out_dir) -> Path:
    """Write ``refresh.json`` into ``out_dir`` (created if needed); returns its path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REFRESH_FILE
    path.write_text(json.dumps(result, indent=1))
    return path


def load_refresh(folder="results/refresh-sentiment") -> dict:
    """The stored result of :func:`refresh_experiment` (``refresh.json`` in ``folder``)."""
    path = Path(folder) / REFRESH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. Make it with: tutorlib refresh --out {folder}")
    return json.loads(path.read_text())


def refresh_table(result: dict) -> str:
    """One line per method and update: what each refresh cost and what it achieved."""
    lines = [f"{'method':<7} {'update':>6} {'train s':>8} {'ship bytes':>12} {'swap ms':>8} {'accuracy':>8} "
             f"{'clear':>6} {'ambig.':>6}"]
    for r in result["updates"]:
        lines.append(f"{r['method']:<7} {r['update']:>6} {r['train_seconds']:>8.1f} {r['ship_bytes']:>12,} "
                     f"{r['swap_seconds'] * 1000:>8.1f} {r['accuracy']:>8.3f} {r['clear_accuracy'] or 0:>6.3f} "
                     f"{r['ambiguous_accuracy'] or 0:>6.3f}")
    return "\n".join(lines)
