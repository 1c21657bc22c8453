"""The learning rate of ``head-only`` (a linear probe on frozen MiniLM features), picked on validation data.

    .venv/bin/python bench/head_only_lr.py            # about 10 minutes on a 2-core CPU

Each rate trains the head under the comparison's full-mode sentiment budget (one epoch of
movie-snippets' train split, 266 steps of 32) and is scored on the *validation* split, so the test
split that the README reports stays unseen while choosing. Written: bench/results/head_only_lr.json.
"""

from __future__ import annotations

import common
from common import say
from datasets import DatasetDict

from tutorlib.experiments.compare import compare
from tutorlib.loading.data import load_dataset

RATES = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def main() -> None:
    splits = load_dataset("movie-snippets", seed=0)
    on_validation = DatasetDict(train=splits["train"], test=splits["validation"])
    rows = []
    for lr in RATES:
        result = compare("sentiment", model="minilm-l6", tiny_data=on_validation, methods="head-only", mode="full",
                         learning_rates={"head-only": lr}, progress=False, measure_energy=False)
        row = result.row("head-only")
        rows.append({"lr": lr, "validation_accuracy": row["accuracy"], "accuracy_ci95": row["accuracy_ci95"],
                     "final_loss": row["final_loss"], "steps": result.budget["steps"]})
        say(f"lr {lr:g}: validation accuracy {row['accuracy']:.3f} {row['accuracy_ci95']}, "
            f"final loss {row['final_loss']:.3f}")
    best = max(rows, key=lambda r: r["validation_accuracy"])
    say(f"best: lr {best['lr']:g} ({best['validation_accuracy']:.3f})")
    common.save("head_only_lr", {"model": "minilm-l6", "dataset": "movie-snippets (train -> validation)",
                                 "budget": "full-mode sentiment: one epoch, batch 32, 64 tokens, seed 0",
                                 "rows": rows, "best_lr": best["lr"]})


if __name__ == "__main__":
    main()
