"""Is fine-tuning's advantage *larger* on ambiguous items? An interaction, tested as one number.

    >>> from tutorlib.experiments.interaction import gap_difference, bootstrap_gap_difference, mean_interval
    >>> gap_difference(full_right, prefix_right, is_ambiguous)             # doctest: +SKIP
    0.052   # (full - prefix on ambiguous) - (full - prefix on clear): +5.2 points more on ambiguous
    >>> bootstrap_gap_difference(full_right, prefix_right, is_ambiguous)   # doctest: +SKIP
    {'estimate': 0.052, 'ci95': (0.004, 0.101), 'p_value': 0.03, ...}
    >>> mean_interval([0.055, -0.050, -0.004])                             # doctest: +SKIP  across seeds

Two separate gaps ("+2 points on clear items, +8 on ambiguous ones") do not show that the gaps
differ: each has its own noise, and their difference has more. The claim is about the
*difference of the gaps*, so that is what gets an interval:

* within one seed, over items: a **paired, stratified bootstrap** resamples the clear items and the
  ambiguous items (each group with replacement, keeping its size), keeps both methods' answers on
  each drawn item together (paired), and recomputes the difference of the gaps;
* across seeds (training noise): the mean of the per-seed differences with a 95% Student-t interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tutorlib.tasks.metrics import t_quantile


def t_quantile_975(df: int) -> float:
    """The 97.5% point of Student's t with ``df`` degrees of freedom (exact for any df; df = 2: 4.303)."""
    if df < 1:
        raise ValueError(f"A t interval needs at least 2 values (df >= 1); got df={df}.")
    return t_quantile(0.975, df)


def mean_interval(values: Sequence[float]) -> dict:
    """Mean of a few values (one per seed) with a 95% Student-t interval -> {mean, ci95, sd, n, values}.

    ``ci95`` is None for a single value: one seed says nothing about seed-to-seed spread.
    """
    x = np.asarray(list(values), dtype=float)  # (S,)
    if len(x) == 0:
        raise ValueError("mean_interval needs at least one value.")
    mean = float(x.mean())
    if len(x) == 1:
        return {"mean": mean, "ci95": None, "sd": None, "n": 1, "values": x.tolist()}
    sd = float(x.std(ddof=1))
    half = t_quantile_975(len(x) - 1) * sd / math.sqrt(len(x))
    return {"mean": mean, "ci95": (mean - half, mean + half), "sd": sd, "n": len(x), "values": x.tolist()}


def _checked(a_right, b_right, is_ambiguous) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a_right, dtype=float)  # (N,) 1 = method A right on the item
    b = np.asarray(b_right, dtype=float)  # (N,)
    amb = np.asarray(is_ambiguous, dtype=bool)  # (N,)
    if not (a.shape == b.shape == amb.shape) or a.ndim != 1:
        raise ValueError(f"a_right, b_right and is_ambiguous need one entry per item, the same N; got shapes "
                         f"{a.shape}, {b.shape}, {amb.shape}.")
    if amb.all() or not amb.any():
        raise ValueError("The items must include both clear and ambiguous ones to compare the two gaps; "
                         f"got {int(amb.sum())} ambiguous of {len(amb)}.")
    return a, b, amb


def gap_difference(a_right, b_right, is_ambiguous) -> float:
    """(accuracy A - accuracy B on ambiguous items) - (the same on clear items), as a fraction.

    Positive: A's advantage is larger on ambiguous items. a_right, b_right: (N,) 0/1, each method
    right or wrong on the same items; is_ambiguous: (N,) bools.
    """
    a, b, amb = _checked(a_right, b_right, is_ambiguous)
    diff = a - b  # (N,) +1 only A right, -1 only B right, 0 both or neither
    return float(diff[amb].mean() - diff[~amb].mean())


def bootstrap_gap_difference(a_right, b_right, is_ambiguous, draws: int = 4000, seed: int = 0) -> dict:
    """:func:`gap_difference` with a paired, stratified bootstrap over items.

    Returns {estimate, ci95 (2.5% and 97.5% points of the draws), p_value (two-sided: twice the
    share of draws on the far side of 0, at least 1/draws), clear_gap, ambiguous_gap, n_clear,
    n_ambiguous, draws}.
    """
    a, b, amb = _checked(a_right, b_right, is_ambiguous)
    diff = a - b  # (N,)
    clear, ambiguous = diff[~amb], diff[amb]  # (Nc,), (Na,)
    rng = np.random.default_rng(seed)
    clear_means = clear[rng.integers(0, len(clear), size=(draws, len(clear)))].mean(axis=1)  # (draws,)
    ambiguous_means = ambiguous[rng.integers(0, len(ambiguous), size=(draws, len(ambiguous)))].mean(axis=1)
    drawn = ambiguous_means - clear_means  # (draws,)
    estimate = float(ambiguous.mean() - clear.mean())
    far_side = np.mean(drawn <= 0) if estimate > 0 else np.mean(drawn >= 0)
    return {"estimate": estimate,
            "ci95": (float(np.quantile(drawn, 0.025)), float(np.quantile(drawn, 0.975))),
            "p_value": float(min(1.0, max(2 * far_side, 1 / draws))),
            "clear_gap": float(clear.mean()), "ambiguous_gap": float(ambiguous.mean()),
            "n_clear": int(len(clear)), "n_ambiguous": int(len(ambiguous)), "draws": draws}
