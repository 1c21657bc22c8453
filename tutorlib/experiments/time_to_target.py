"""Rapid iteration: how much wall-clock training time each method needs to reach a target.

    >>> from tutorlib.experiments.results import ComparisonResult
    >>> result = ComparisonResult.load("results/sentiment")              # doctest: +SKIP
    >>> loss_targets_table(result)                                       # doctest: +SKIP  one row per method

The source text says prefix tuning suits "rapid deployment or iterative experimentation". What a stored
comparison can answer: its histories hold, per training step, the batch's loss and the step's wall time
(``History.loss``, ``History.seconds``), not test quality during training. So two curves are used:

* **training loss against training seconds** (every stored run): the loss is smoothed over a moving
  window of steps (one batch's loss is noisy), and the time to reach a loss target is the first moment
  the smoothed curve is at or below it. Both methods see the same batches in the same order, so their
  losses are comparable step by step.
* **test accuracy against training seconds** (the refresh scenario, :mod:`tutorlib.experiments.refresh`,
  which evaluates after every update): the time to reach an accuracy target.

Times are sums of step times (no evaluation, no set-up), measured on whatever machine made the run:
compare methods within one run, not across machines.
"""

from __future__ import annotations

import numpy as np


def smoothed_curve(seconds, values, window: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative seconds, moving average of ``values`` over the last ``window`` steps), both (steps,).

    The first ``window - 1`` points average over the steps so far."""
    seconds, values = np.asarray(seconds, float), np.asarray(values, float)
    if len(seconds) != len(values) or len(values) == 0:
        raise ValueError(f"Need one time per value and at least one of each (got {len(seconds)} times, "
                         f"{len(values)} values).")
    if window < 1:
        raise ValueError(f"window must be >= 1 step (got {window}).")
    sums = np.cumsum(values)
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    shifted = np.concatenate([np.zeros(window), sums])[: len(values)]  # sum of the values before the window
    return np.cumsum(seconds), (sums - shifted) / counts


def time_to_target(seconds, values, target: float, higher_is_better: bool) -> float | None:
    """The first cumulative time at which ``values`` reach ``target``; None if they never do.

    ``seconds``: the time each point ends at, cumulative and increasing; ``values``: the metric there."""
    seconds, values = np.asarray(seconds, float), np.asarray(values, float)
    reached = values >= target if higher_is_better else values <= target
    return float(seconds[np.argmax(reached)]) if reached.any() else None


def loss_targets_table(result, targets=None, window: int = 20) -> list[dict]:
    """Time for each method of a stored comparison to bring its smoothed training loss to each target.

    ``targets``: loss values; default: the final smoothed loss of each method (so each method's own
    end point is a target the other one may or may not reach). Returns one dict per method and target:
    method, target, seconds (None: never reached), steps, total_seconds (the whole run's step time).
    """
    curves = {m: smoothed_curve(h.seconds, h.loss, window) for m, h in result.histories.items()}
    if not curves:
        raise ValueError("This comparison holds no training history (zero-shot only?): nothing to time.")
    if targets is None:
        targets = sorted({round(float(curve[1][-1]), 3) for curve in curves.values()}, reverse=True)
    rows = []
    for target in targets:
        for method, (times, losses) in curves.items():
            when = time_to_target(times, losses, target, higher_is_better=False)
            rows.append({"method": method, "target_loss": target, "seconds": when,
                         "steps": None if when is None else int(np.searchsorted(times, when) + 1),
                         "total_seconds": float(times[-1])})
    return rows


def accuracy_targets_table(refresh: dict, targets) -> list[dict]:
    """Time for each method of a refresh result to reach each test-accuracy target (after an update).

    Returns one dict per method and target: method, target_accuracy, seconds (cumulative training
    time at the first update that reached it; None: never), update (which one)."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in refresh["updates"]):
        points = [r for r in refresh["updates"] if r["method"] == method]
        times = [r["cumulative_train_seconds"] for r in points]
        accuracies = [r["accuracy"] for r in points]
        for target in targets:
            when = time_to_target(times, accuracies, target, higher_is_better=True)
            rows.append({"method": method, "target_accuracy": target, "seconds": when,
                         "update": None if when is None else times.index(when) + 1})
    return rows


def plot_quality_against_time(result, refresh: dict | None = None, window: int = 20):
    """Smoothed training loss against training seconds (left), and test accuracy after each refresh
    against cumulative training seconds (right, when ``refresh`` is given). Returns the figure."""
    import matplotlib.pyplot as plt

    colours = {"full": "#c0392b", "prefix": "#2471a3", "prefix-mlp": "#7d3c98"}
    fig, axes = plt.subplots(1, 2 if refresh else 1, figsize=(11 if refresh else 6, 3.6), squeeze=False)
    ax = axes[0][0]
    for method, history in result.histories.items():
        times, losses = smoothed_curve(history.seconds, history.loss, window)
        ax.plot(times, losses, color=colours.get(method), label=method)
    ax.set(xlabel="training seconds (sum of step times)", ylabel=f"training loss ({window}-step mean)",
           title=f"{result.task}, {result.model}: loss against time")
    ax.legend(fontsize=8)
    if refresh:
        ax = axes[0][1]
        for method in dict.fromkeys(r["method"] for r in refresh["updates"]):
            points = [r for r in refresh["updates"] if r["method"] == method]
            ax.plot([r["cumulative_train_seconds"] for r in points], [r["accuracy"] for r in points], "o-",
                    color=colours.get(method), label=method)
        ax.set(xlabel="cumulative training seconds", ylabel="test accuracy after the update",
               title=f"{len(points)} data refreshes: accuracy against time")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
