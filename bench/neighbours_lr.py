"""The learning rates of ``lora`` and ``prompt``, picked on validation data (the sentiment comparison's budget).

    .venv/bin/python bench/neighbours_lr.py                         # full mode: about 30 minutes on 2 quiet cores
    .venv/bin/python bench/neighbours_lr.py --fast --methods lora   # the fast budget: minutes

Each (method, rate) trains under the comparison's full-mode sentiment budget (one epoch of
movie-snippets' train split, 266 steps of 32, seed 0) and is scored on the *validation* split, so the
test split that docs/neighbours.md reports stays unseen while choosing. Three rates per method, about
3x apart, as the kit's tuning grid gives full fine-tuning and the prefix. A tie keeps the smaller rate.
``--fast`` uses the fast budget (512 examples, 32 steps of 16) instead. Written:
bench/results/neighbours_lr[-fast]-<methods>.json.
"""

from __future__ import annotations

import argparse

import common
from common import say
from datasets import DatasetDict

from tutorlib.experiments.compare import compare
from tutorlib.loading.data import load_dataset

GRID = {"lora": [1e-3, 3e-3, 1e-2], "prompt": [3e-3, 1e-2, 3e-2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the fast budget (512 examples, 32 steps of 16)")
    parser.add_argument("--methods", default=",".join(GRID), help=f"comma-separated, among {', '.join(GRID)}")
    args = parser.parse_args()
    grid = {m: GRID[m] for m in args.methods.split(",")}
    splits = load_dataset("movie-snippets", seed=0)
    on_validation = DatasetDict(train=splits["train"], test=splits["validation"])
    rows = []
    for method, rates in grid.items():
        for lr in rates:
            result = compare("sentiment", model="minilm-l6", tiny_data=on_validation, methods=method, fast=args.fast,
                             learning_rates={method: lr}, progress=False, measure_energy=False)
            row = result.row(method)
            rows.append({"method": method, "lr": lr, "validation_accuracy": row["accuracy"],
                         "accuracy_ci95": row["accuracy_ci95"], "final_loss": row["final_loss"],
                         "steps": result.budget["steps"]})
            say(f"{method} lr {lr:g}: validation accuracy {row['accuracy']:.3f} {row['accuracy_ci95']}, "
                f"final loss {row['final_loss']:.3f}")
    best = {}
    for r in sorted(rows, key=lambda r: r["lr"]):  # ascending: a tie keeps the smaller rate
        if r["method"] not in best or r["validation_accuracy"] > best[r["method"]]["validation_accuracy"]:
            best[r["method"]] = r
    for method, r in best.items():
        say(f"best {method}: lr {r['lr']:g} ({r['validation_accuracy']:.3f})")
    budget = ("fast-mode sentiment: 512 examples, 32 steps of 16" if args.fast else
              "full-mode sentiment: one epoch, 266 steps of 32") + ", 64 tokens, seed 0, P = 10, r = 8"
    name = "neighbours_lr" + ("-fast" if args.fast else "") + "-" + "-".join(grid)
    common.save(name, {"model": "minilm-l6", "dataset": "movie-snippets (train -> validation)", "budget": budget,
                                  "grid": grid, "rows": rows, "best_lr": {m: r["lr"] for m, r in best.items()}})


if __name__ == "__main__":
    main()
