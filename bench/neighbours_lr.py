"""The learning rates of ``lora`` and ``prompt``, picked on validation data (the sentiment comparison's budget).

    .venv/bin/python bench/neighbours_lr.py            # about 30 minutes on a shared 2-core CPU

Each (method, rate) trains under the comparison's full-mode sentiment budget (one epoch of
movie-snippets' train split, 266 steps of 32, seed 0) and is scored on the *validation* split, so the
test split that docs/neighbours.md reports stays unseen while choosing. Three rates per method, about
3x apart, as the kit's tuning grid gives full fine-tuning and the prefix. A tie keeps the smaller rate.
Written: bench/results/neighbours_lr.json.
"""

from __future__ import annotations

import common
from common import say
from datasets import DatasetDict

from tutorlib.experiments.compare import compare
from tutorlib.loading.data import load_dataset

GRID = {"lora": [3e-4, 1e-3, 3e-3], "prompt": [3e-3, 1e-2, 3e-2]}


def main() -> None:
    splits = load_dataset("movie-snippets", seed=0)
    on_validation = DatasetDict(train=splits["train"], test=splits["validation"])
    rows = []
    for method, rates in GRID.items():
        for lr in rates:
            result = compare("sentiment", model="minilm-l6", tiny_data=on_validation, methods=method, fast=False,
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
    common.save("neighbours_lr", {"model": "minilm-l6", "dataset": "movie-snippets (train -> validation)",
                                  "budget": "full-mode sentiment: one epoch, batch 32, 64 tokens, seed 0, P = 10",
                                  "grid": GRID, "rows": rows, "best_lr": {m: r["lr"] for m, r in best.items()}})


if __name__ == "__main__":
    main()
