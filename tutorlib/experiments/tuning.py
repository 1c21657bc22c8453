"""A fair learning rate for each method: a small grid, chosen on the validation split, never the test split.

    tutorlib tune --out results/sentiment-tuning                      # full and prefix, one seed, full mode
    tutorlib tune --methods lora,prompt --out results/sentiment-tuning # two more methods, added to tuning.json

    >>> from tutorlib.experiments.tuning import tune_learning_rates
    >>> tuning = tune_learning_rates("results/sentiment-tuning")   # doctest: +SKIP
    >>> tuning["chosen"]                                           # doctest: +SKIP  {"full": ..., "prefix": ...}

A method run at someone's favourite rate may lose only because the rate suits it less. Each method
gets the same number of tries (:func:`grid_for`: the documented default and one rate either side, about
3x apart) under the same budget and seed; the rate with the best **validation** accuracy is chosen.
The test split plays no part in the choice (its numbers are stored with every run, and read only
afterwards). A tie keeps the smaller rate.
"""

from __future__ import annotations

import json
from pathlib import Path

from tutorlib import Mode
from tutorlib.experiments.compare import LEARNING_RATES
from tutorlib.experiments.seeds import stored_run
from tutorlib.files import write_atomic

GRID = {"full": (2e-5, 5e-5, 1e-4), "prefix": (3e-3, 1e-2, 3e-2)}
"""The grids of the first measurement (kept, so its stored runs are reused); any other method: :func:`grid_for`."""


def grid_for(method: str) -> tuple[float, ...]:
    """The rates ``method`` is tried at: its :data:`GRID` entry, else its sentiment default and a third and
    three times it, to one significant digit (1e-2 -> 3e-3, 1e-2, 3e-2). Unknown or untrained: ValueError."""
    if method in GRID:
        return GRID[method]
    default = LEARNING_RATES.get(("sentiment", method))
    if default is None:
        tunable = sorted({m for (task, m) in LEARNING_RATES if task == "sentiment"})
        raise ValueError(f"--methods: {method!r} has no learning rate to tune on sentiment; tunable: "
                         f"{', '.join(tunable)}.")
    return tuple(float(f"{default * x:.0e}") for x in (1 / 3, 1, 3))


def choose(records: list[dict], on: str = "validation") -> dict[str, float]:
    """The rate with the best accuracy on the ``on`` set, per method (a tie keeps the smaller rate)."""
    best: dict[str, tuple[float, float]] = {}
    for r in sorted(records, key=lambda r: r["lr"]):
        score = r["sets"][on]["accuracy"]
        if r["method"] not in best or score > best[r["method"]][0]:
            best[r["method"]] = (score, r["lr"])
    return {m: lr for m, (_, lr) in best.items()}


def tune_learning_rates(folder, runs_folder=None, grid: dict | None = None, seed: int = 0, split_seed: int = 0,
                        mode: Mode = "full", progress: bool = True, methods=("full", "prefix"), **train_kwargs) -> dict:
    """Train every (method, rate) of ``grid`` once, choose on validation, write ``folder/tuning.json``.

    ``grid`` (default: :func:`grid_for` each of ``methods``) maps method -> rates. A ``tuning.json``
    already in ``folder`` keeps its other methods (same seed, split and mode; else ValueError), so
    the methods can be tuned one command at a time into one file.

    ``runs_folder`` (default ``folder/runs``) keeps one JSON file per training run; the default rates
    run last, so a seed measurement sharing the folder may already have trained them.
    ``mode``: which of the sentiment task's budgets every run gets ("fast", "workshop" or "full").
    Returns {grid, chosen, seed, split_seed, mode, table}; ``table`` has one row per run with its
    validation accuracy (the choice) and its test accuracy (reported, never used to choose).
    """
    grid = {m: tuple(rates) for m, rates in (grid or {m: grid_for(m) for m in methods}).items()}
    earlier = _earlier(Path(folder, "tuning.json"), seed, split_seed, mode)  # refused before any training
    runs_folder = runs_folder or Path(folder) / "runs"
    tries = [(m, lr) for m, rates in grid.items() for lr in rates]
    tries.sort(key=lambda t: LEARNING_RATES.get(("sentiment", t[0])) == t[1])  # the defaults last
    records = []
    for method, lr in tries:
        if progress:
            print(f"tuning: {method} lr {lr:g} | seed {seed} | split seed {split_seed}", flush=True)
        records.append(stored_run(runs_folder, method, lr, seed, split_seed, mode, **train_kwargs))
    chosen = choose(records, "validation")
    table = [{"method": r["method"], "lr": r["lr"], "validation_accuracy": r["sets"]["validation"]["accuracy"],
              "test_accuracy": r["sets"]["test"]["accuracy"], "chosen": chosen[r["method"]] == r["lr"]}
             for r in records]
    tuning = {"grid": {m: list(v) for m, v in grid.items()}, "chosen": chosen, "chosen_on": "validation",
              "seed": seed, "split_seed": split_seed, "mode": mode, "table": table}
    tuning = _merged(earlier, tuning)
    write_atomic(Path(folder, "tuning.json"), json.dumps(tuning, indent=1))  # a reader never sees half a file
    return tuning


def _earlier(path: Path, seed: int, split_seed: int, mode: Mode) -> dict | None:
    """The ``tuning.json`` already at ``path`` (None if none); one at another seed, split or mode: ValueError."""
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    old_mode = old.get("mode") or ("fast" if old.get("fast") else "full")
    if (old.get("seed"), old.get("split_seed"), old_mode) != (seed, split_seed, mode):
        raise ValueError(f"{path} holds a tuning at seed {old.get('seed')}, split seed {old.get('split_seed')}, "
                         f"{old_mode} mode; these runs are seed {seed}, split seed {split_seed}, {mode} mode. "
                         f"Use another --out, or delete that file.")
    return old


def _merged(old: dict | None, new: dict) -> dict:
    """``new`` with the other methods of an earlier tuning ``old`` (see :func:`_earlier`)."""
    if old is None:
        return new
    kept = [m for m in old.get("chosen", {}) if m not in new["chosen"]]
    return {**new, "grid": {**{m: old["grid"][m] for m in kept}, **new["grid"]},
            "chosen": {**{m: old["chosen"][m] for m in kept}, **new["chosen"]},
            "table": [r for r in old.get("table", []) if r["method"] in kept] + new["table"]}
