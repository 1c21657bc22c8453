"""The README's five-method plot: test accuracy against trainable parameters, from stored full-mode runs.

    .venv/bin/python scripts/five_methods_plot.py     # -> results/sentiment-five-methods.png

No single stored run holds all five methods in full mode: full fine-tuning and prefix tuning are in
results/sentiment, head-only in results/sentiment-head-only, LoRA and prompt tuning in
results/sentiment-lora-prompt. Their rows can share one plot because the runs share the task, model,
data, mode, seed, budget and test items (checked here: a run that differs is refused, not drawn). Their
accuracies are comparable; their step times are not (different days and machine load), so only quality
and parameter counts are drawn.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from tutorlib.experiments.plots import plot_quality_vs_parameters
from tutorlib.experiments.results import ComparisonResult

ROOT = Path(__file__).resolve().parents[1]
RUNS = ["sentiment", "sentiment-head-only", "sentiment-lora-prompt"]
SAME = ("task", "model", "dataset", "mode", "seed", "budget", "data_summary")  # what makes rows comparable


def combined(folders: list[Path]) -> ComparisonResult:
    """One result holding the rows of every run in ``folders``, in order; each method once (the first run's).

    Raises:
        ValueError: a run differs from the first in one of SAME (then its rows are not comparable).
    """
    results = [ComparisonResult.load(folder) for folder in folders]
    first = results[0]
    for folder, result in zip(folders[1:], results[1:]):
        differ = [name for name in SAME if getattr(result, name) != getattr(first, name)]
        if differ:
            raise ValueError(f"{folder} differs from {folders[0]} in {', '.join(differ)}: its rows are not "
                             "comparable, so they are not drawn together")
    rows, seen = [], set()
    for result in results:
        rows += [row for row in result.rows if row["method"] not in seen]
        seen |= {row["method"] for row in result.rows}
    return replace(first, rows=rows, references=[])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "sentiment-five-methods.png")
    args = parser.parse_args()
    result = combined([ROOT / "results" / name for name in RUNS])
    fig = plot_quality_vs_parameters(result)
    fig.axes[0].set_title("sentiment, full mode: MiniLM-L6 on movie-snippets, one seed, five methods", fontsize=10)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}: {', '.join(row['method'] for row in result.rows)}")


if __name__ == "__main__":
    main()
