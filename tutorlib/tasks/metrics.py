"""Small classification metrics, written out so a learner can read every line.

    >>> from tutorlib.tasks.metrics import accuracy, macro_f1, wilson_interval, mcnemar
    >>> accuracy([1, 0, 1, 1], [1, 0, 0, 1])
    0.75
    >>> [round(x, 3) for x in wilson_interval(75, 100)]   # 95% interval for 75 right of 100
    [0.657, 0.825]
    >>> mcnemar([1, 1, 0], [0, 1, 0], [1, 1, 1])   # method A right where B was wrong once
    1.0

Every function takes plain sequences or numpy arrays of shape (N,) and returns Python floats,
so results go straight into a JSON file or a table. Why these four:

* accuracy hides which class the errors fall on; **macro-F1** (the mean of the per-class F1)
  does not.
* a test-set accuracy is an estimate; the **Wilson interval** says how far it may be from the
  truth (it behaves well near 0 and 1 and for small N, where "p +- 1.96 sd" does not).
* two methods scored on the *same* items are compared item by item: **McNemar's exact test**
  looks only at the items where exactly one of them is right.
* a model that says "90% sure" should be right 90% of the time: the **expected calibration
  error** measures how far it is from that.

For scores rather than right/wrong (a summary's ROUGE), :func:`paired_sign_flip_p` is the paired test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence | np.ndarray


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per item, shape (N,); got shape {array.shape}.")
    return array


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"These must have one entry per item, the same N: {lengths}.")
    return next(iter(lengths.values()))


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Share of items predicted right. predictions, labels: (N,) class ids -> a float in [0, 1]."""
    preds, gold = _as_1d("predictions", predictions), _as_1d("labels", labels)
    if _same_length(predictions=preds, labels=gold) == 0:
        raise ValueError("accuracy of zero items is undefined; the dataset (or split) is empty.")
    return float(np.mean(preds == gold))


def macro_f1(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Mean over classes of F1 = 2TP / (2TP + FP + FN). predictions, labels: (N,) -> [0, 1].

    The classes are those that occur in ``labels`` or ``predictions`` (as scikit-learn does), so a
    class that the model never predicts still counts, with F1 = 0.
    """
    preds, gold = _as_1d("predictions", predictions), _as_1d("labels", labels)
    if _same_length(predictions=preds, labels=gold) == 0:
        raise ValueError("macro-F1 of zero items is undefined; the dataset (or split) is empty.")
    scores = []
    for c in np.union1d(preds, gold):
        tp = np.sum((preds == c) & (gold == c))
        fp = np.sum((preds == c) & (gold != c))
        fn = np.sum((preds != c) & (gold == c))
        scores.append(2 * tp / (2 * tp + fp + fn))  # > 0 denominator: c occurs somewhere
    return float(np.mean(scores))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion successes / n (z = 1.96: 95%) -> (low, high).

    With n = 0 nothing is known, and the interval is the whole range (0.0, 1.0).
    """
    if n == 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n}; got {successes}.")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def expected_calibration_error(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """ECE: how far the model's confidence is from its accuracy, averaged over confidence bins.

    Args:
        confidences: (N,) the probability the model gave to the class it predicted (its top
            probability), in [0, 1]. For two classes this is always >= 0.5.
        correct: (N,) 1/True where that prediction was right.
        n_bins: equal-width bins over [0, 1]: (0, 0.1], (0.1, 0.2], ..., (0.9, 1.0]; a
            confidence of exactly 0 joins the first bin. With two classes only the upper five
            bins can hold items.

    Returns:
        sum over bins of (items in bin / N) * |accuracy in bin - mean confidence in bin|,
        a float in [0, 1]; 0 means perfectly calibrated.
    """
    conf = _as_1d("confidences", confidences).astype(float)
    right = _as_1d("correct", correct).astype(float)
    n = _same_length(confidences=conf, correct=right)
    if n == 0:
        raise ValueError("ECE of zero items is undefined; the dataset (or split) is empty.")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError("confidences must be probabilities in [0, 1]; did you pass logits?")
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]  # (n_bins - 1,)
    bin_of = np.searchsorted(inner_edges, conf, side="left")  # (N,) right-closed bins
    ece = 0.0
    for b in range(n_bins):
        in_bin = bin_of == b
        if in_bin.any():
            ece += in_bin.mean() * abs(right[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation of x and y, both (N,); NaN when either is constant (it is undefined)."""
    a, b = _as_1d("x", x).astype(float), _as_1d("y", y).astype(float)
    _same_length(x=a, y=b)
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / denominator) if denominator > 0 else float("nan")


def mcnemar(pred_a: ArrayLike, pred_b: ArrayLike, labels: ArrayLike) -> float:
    """Exact McNemar test: are methods A and B, scored on the same items, equally accurate?

    Only the discordant items matter: b = A right and B wrong, c = A wrong and B right. If the
    two methods were equally good, each discordant item would go either way with probability
    1/2, so b ~ Binomial(b + c, 1/2). The two-sided p-value is
    ``min(1, 2 * P(X <= min(b, c)))``; a small p (e.g. < 0.05) says the difference is unlikely to
    be luck. pred_a, pred_b, labels: (N,) class ids -> a float in [0, 1] (1.0 when b + c = 0).
    """
    a, b_, gold = _as_1d("pred_a", pred_a), _as_1d("pred_b", pred_b), _as_1d("labels", labels)
    _same_length(pred_a=a, pred_b=b_, labels=gold)
    a_right, b_right = a == gold, b_ == gold
    only_a = int(np.sum(a_right & ~b_right))
    only_b = int(np.sum(~a_right & b_right))
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n  # exact integers
    return float(min(1.0, 2 * tail))


def paired_sign_flip_p(a: np.ndarray, b: np.ndarray, draws: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomisation test of mean(a - b) = 0: flip the sign of each item's difference
    at random (what "no difference" would allow) and count how often the mean is as far from 0."""
    diff = np.asarray(a, float) - np.asarray(b, float)  # (N,)
    observed = abs(diff.mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, len(diff)))  # (draws, N)
    extreme = np.sum(np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12)
    return float((extreme + 1) / (draws + 1))
