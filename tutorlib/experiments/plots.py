"""The figures of a comparison. Each function returns a matplotlib Figure (shown by a notebook cell,
saved with ``fig.savefig(path)``).

    >>> from tutorlib.experiments.plots import plot_costs, plot_clear_vs_ambiguous
    >>> plot_costs(result)                       # doctest: +SKIP  step time, memory, optimizer, disk, energy
    >>> plot_clear_vs_ambiguous(result)          # doctest: +SKIP  accuracy with 95% intervals

What to look for: in :func:`plot_quality_vs_parameters` how much quality each order of magnitude of
trainable parameters buys; in :func:`plot_costs` which costs shrink by orders of magnitude (optimizer
state, checkpoint: log scale) and which only by a fraction (step time, memory: the backward pass still
runs through every layer); in :func:`plot_clear_vs_ambiguous` whether the gap between methods grows
on the items human raters disagreed about, beyond the error bars.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from tutorlib.methods.registry import find_method
from tutorlib.tasks.registry import get_task
from tutorlib.units import format_by_key


def _colour(method: str) -> str:
    """The method's colour from its registry entry (grey for a method not registered)."""
    found = find_method(method)
    return found.colour if found else "#555555"


def _finished(result) -> list[dict]:
    return [r for r in result.rows if not r.get("interrupted")]


def _done(fig):
    """Close the figure in pyplot (no second copy in a notebook, no leak in a loop) and return it."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def main_metric(task: str) -> tuple[str, str]:
    """The headline quality number of a task: (row key, label), from its registry entry."""
    return get_task(task).main_metric


def plot_quality_vs_parameters(result, metric: str | None = None):
    """Quality (accuracy or ROUGE-L) against trainable parameters, log x axis; reference rows as
    dashed lines. A zero-shot row (0 trainable) is drawn at x = 1 and labelled so."""
    key, label = (metric, metric) if metric else main_metric(result.task)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = [max(r.get("trainable_params") or 0, 1) for r in _finished(result) if r.get(key) is not None]
    for r in _finished(result):
        if r.get(key) is None:
            continue
        x = max(r.get("trainable_params") or 0, 1)
        # a label spans about a decade of the log axis: with a bigger neighbour that close, put it below the point
        crowded = any(1 < other / x < 12 for other in drawn)
        ci, se = r.get(f"{key}_ci95"), r.get(f"{key}_se")  # an interval, or a standard error, when there is one
        yerr = [[r[key] - ci[0]], [ci[1] - r[key]]] if ci else ([[se]] * 2 if se else None)
        ax.errorbar([x], [r[key]], yerr=yerr, fmt="o", ms=9, capsize=4, color=_colour(r["method"]))
        text = r["method"] + (" (0 trained)" if x == 1 else f"\n{r['trainable_params']:,} trained")
        ax.annotate(text, (x, r[key]), textcoords="offset points", xytext=(8, -8) if crowded else (8, 6),
                    va="top" if crowded else "bottom", fontsize=9)
    for ref in result.references:
        if ref.get(key) is not None:
            ax.axhline(ref[key], ls="--", color="grey", lw=1)
            ax.annotate(ref["method"], (1, ref[key]), textcoords="offset points", xytext=(2, -11),
                        fontsize=8, color="grey")
    ax.set_xscale("log")
    widest = max([max(r.get("trainable_params") or 1, 1) for r in _finished(result)] or [1])
    ax.set_xlim(0.5, widest * 40)  # room for the labels right of the points
    ax.margins(y=0.15)
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(label)
    ax.set_title(f"{result.task}: {result.model} on {result.dataset}", fontsize=10)
    ax.grid(alpha=0.3)
    return _done(fig)


COST_PANELS = [  # (row key, title, scale factor, log scale?)
    ("median_step_seconds", "step time (s, median)", 1.0, False),
    ("peak_memory_increase_mb", "peak memory increase (MiB)", 1.0, False),
    ("optimizer_state_bytes", "optimizer state (bytes, log)", 1.0, True),
    ("checkpoint_bytes", "checkpoint on disk (bytes, log)", 1.0, True),
    ("energy_kwh", "energy estimate (Wh)", 1000.0, False),
]


def plot_costs(result):
    """Five panels side by side, one bar per trained method: step time, peak memory increase,
    optimizer state, checkpoint bytes (log scale: they differ by orders of magnitude) and energy."""
    rows = [r for r in _finished(result) if r.get("median_step_seconds") is not None]
    fig, axes = plt.subplots(1, len(COST_PANELS), figsize=(3.0 * len(COST_PANELS), 3.4))
    names = [r["method"] for r in rows]
    for ax, (key, title, scale, log) in zip(axes, COST_PANELS):
        values = [(r.get(key) or 0) * scale for r in rows]
        bars = ax.bar(names, values, color=[_colour(n) for n in names])
        if log and any(v > 0 for v in values):
            ax.set_yscale("log")
        ax.bar_label(bars, labels=[format_by_key(key, v) for v in values], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.margins(y=0.2)
    energy = {r.get("energy_method") for r in rows if r.get("energy_kwh") is not None}
    fig.suptitle(f"What training cost: {result.model}, {result.budget['steps']} steps"
                 + (f" (energy: {', '.join(sorted(energy))} estimate)" if energy else ""), fontsize=10)
    return _done(fig)


def plot_clear_vs_ambiguous(result):
    """Accuracy on clear vs ambiguous test items, per method, with 95% Wilson intervals as error bars.
    Needs a sentiment result on data with human raters (movie-snippets)."""
    rows = [r for r in _finished(result) if r.get("clear_accuracy") is not None]
    if not rows:
        raise ValueError("plot_clear_vs_ambiguous needs a sentiment comparison on data with human raters "
                         "(dataset 'movie-snippets'); this result has no clear/ambiguous accuracies.")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(2)]
        ys = [r["clear_accuracy"], r["ambiguous_accuracy"]]
        cis = [r["clear_accuracy_ci95"], r["ambiguous_accuracy_ci95"]]
        err = [[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]]
        bars = ax.bar(xs, ys, width, yerr=err, capsize=4, color=_colour(r["method"]), label=r["method"])
        ax.bar_label(bars, labels=[f"{y:.3f}" for y in ys], fontsize=8, label_type="center", color="white")
    d = result.data_summary
    ax.set_xticks([0, 1], [f"clear (n={d.get('clear_items')})", f"ambiguous (n={d.get('ambiguous_items')})"])
    lowest = min(min(r["clear_accuracy_ci95"][0], r["ambiguous_accuracy_ci95"][0]) for r in rows)
    ax.set_ylim(min(0.4, lowest - 0.05), 1.0)  # accuracies near chance stay visible
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.set_title(f"{result.model} on {result.dataset}: clear vs ambiguous items "
                 f"(ambiguous: rater std > {d.get('ambiguity_threshold')})", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _done(fig)


def plot_training_curves(histories, smooth: int | None = None):
    """Training loss per step for each method (thin: raw; thick: moving average of ``smooth`` steps,
    default 1/20 of the run, at least 5). ``histories``: a ComparisonResult, or a dict method -> History."""
    histories = getattr(histories, "histories", histories)
    if not histories:
        raise ValueError("No training history to plot (zero-shot methods do not train).")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, h in histories.items():
        colour = _colour(method)
        ax.plot(h.step, h.loss, color=colour, alpha=0.3, lw=1)
        k = max(1, min(smooth or max(5, len(h.loss) // 20), len(h.loss)))
        avg = [sum(h.loss[max(0, i - k + 1):i + 1]) / len(h.loss[max(0, i - k + 1):i + 1]) for i in range(len(h.loss))]
        ax.plot(h.step, avg, color=colour, lw=2, label=method)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (batch)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _done(fig)


def result_figures(result) -> dict:
    """Every figure that fits this result, by file name: what :meth:`ComparisonResult.save` writes."""
    figures = {"quality_vs_parameters": plot_quality_vs_parameters(result)}
    if any(r.get("median_step_seconds") is not None for r in _finished(result)):
        figures["costs"] = plot_costs(result)
    if result.histories:
        figures["training_curves"] = plot_training_curves(result.histories)
    if any(r.get("clear_accuracy") is not None for r in _finished(result)):
        figures["clear_vs_ambiguous"] = plot_clear_vs_ambiguous(result)
    return figures
