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

For scores rather than right/wrong (a summary's ROUGE), :func:`sign_flip_test` is the paired test of
"is there a difference?", and :func:`paired_equivalence` the test of the opposite claim, "the two are
the same within a margin" (two one-sided tests, TOST): a large p-value from the first is *no evidence of
a difference*, never evidence of no difference. :func:`t_quantile` gives the Student-t points both need,
for any degrees of freedom, from :func:`student_t_cdf` (the regularized incomplete beta, by hand).
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
    """The p-value of :func:`sign_flip_test` alone (a float), for code that stores only the number."""
    return sign_flip_test(a, b, draws=draws, seed=seed)["p_value"]


# Up to this many items every sign pattern is enumerated (2**16 = 65,536 patterns): the p-value is exact.
EXACT_SIGN_FLIP_ITEMS = 16


def sign_flip_test(a: ArrayLike, b: ArrayLike, draws: int = 10_000, seed: int = 0) -> dict:
    """Two-sided paired randomisation test of mean(a - b) = 0, with what its p-value is.

    If the two were the same, each item's difference would be as likely to have the other sign, so the
    test flips signs (every pattern when N <= ``EXACT_SIGN_FLIP_ITEMS``, else ``draws`` random patterns)
    and counts how often the mean is as far from 0 as the observed one.

    Args:
        a, b: (N,) one score per item for each method, on the same items (e.g. ROUGE-L).
        draws: random sign patterns when N is too large to enumerate.
        seed: the random generator's seed (the result is reproducible).

    Returns:
        {p_value, kind ("exact" or "monte carlo"), draws (patterns counted), at_floor, n, mean_difference}.
        A Monte Carlo p is (extreme + 1) / (draws + 1), so it can never go below 1 / (draws + 1):
        ``at_floor`` is True when no random pattern was as extreme, and then the honest statement is
        ``p < 1 / (draws + 1)`` (:func:`format_p` writes it that way), not "p = 0.0001".
    """
    x, y = _as_1d("a", a).astype(float), _as_1d("b", b).astype(float)
    n = _same_length(a=x, b=y)
    if n == 0:
        raise ValueError("A paired test needs at least one item scored by both methods; got none.")
    diff = x - y  # (N,)
    observed = abs(diff.mean()) - 1e-12  # a pattern "as far" includes ties up to rounding
    if n <= EXACT_SIGN_FLIP_ITEMS:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0  # (2**N, N) every sign pattern
        extreme = int(np.sum(np.abs(patterns @ diff) / n >= observed))
        return {"p_value": extreme / 2**n, "kind": "exact", "draws": 2**n, "at_floor": False, "n": n,
                "mean_difference": float(diff.mean())}
    if draws < 1:
        raise ValueError(f"draws must be a positive whole number of random sign patterns; got {draws}.")
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, n))  # (draws, N)
    extreme = int(np.sum(np.abs((signs * diff).mean(axis=1)) >= observed))
    return {"p_value": float((extreme + 1) / (draws + 1)), "kind": "monte carlo", "draws": draws,
            "at_floor": extreme == 0, "n": n, "mean_difference": float(diff.mean())}


def format_p(test: dict, digits: int = 2) -> str:
    """A p-value as text that says what it is: "p < 0.0001" at a Monte Carlo floor, else "p = 0.59".

    ``test`` is a result of :func:`sign_flip_test` (or any dict with ``p_value`` and optionally
    ``at_floor`` and ``draws``). The bound is 1 / (draws + 1), written with its leading digits.
    """
    p = test["p_value"]
    if test.get("at_floor"):
        bound = 1 / (test["draws"] + 1)
        return f"p < {_significant(math.ceil(bound * 10**6) / 10**6, 1)}"  # 1/10,001 -> "p < 0.0001"
    return f"p = {_significant(p, digits)}"


def _significant(x: float, digits: int) -> str:
    """x with ``digits`` significant digits, in scientific notation below 0.0001 (2.9e-6), else plainly."""
    if x == 0:
        return "0"
    if abs(x) < 1e-4:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(x))), 0)
    return f"{x:.{decimals}f}"


# ----------------------------------------------------------------------------- Student's t, by hand


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta (modified Lentz's method)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):  # (a few dozen steps on the side where it is used)
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # even step
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd step
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and x in [0, 1] (the cdf of a Beta(a, b))."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1]; got {x}.")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom: 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t > 0.

    (I_x(a, b) = 1 - I_{1-x}(b, a): the form whose x is not close to 1 is the one computed.)"""
    if df <= 0:
        raise ValueError(f"Student's t needs df > 0 degrees of freedom; got df={df}.")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if t * t < df:  # x = df / (df + t^2) is near 1: use its complement, computed without cancellation
        tail = 0.5 * (1.0 - regularized_incomplete_beta(0.5, df / 2.0, t * t / (df + t * t)))  # P(T > |t|)
    else:
        tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(probability: float, df: float) -> float:
    """The point t with P(T <= t) = probability, for Student's t with ``df`` degrees of freedom (any df > 0).

    Found by bisection on :func:`student_t_cdf` to about 1e-12; e.g. t_quantile(0.975, 2) = 4.303 and
    t_quantile(0.975, 31) = 2.040 (not the normal 1.960, which is 4% too narrow there).
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be strictly between 0 and 1; got {probability}.")
    if probability < 0.5:
        return -t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < probability:  # (the t tails are heavy: widen until bracketed)
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        low, high = (middle, high) if student_t_cdf(middle, df) < probability else (low, middle)
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# ----------------------------------------------------------------------------- equivalence


def paired_equivalence(a: ArrayLike, b: ArrayLike, margin: float, alpha: float = 0.05) -> dict:
    """Two one-sided tests (TOST): is mean(a - b) inside (-margin, +margin)? Paired, over items.

    A difference test that finds nothing (a large p) says only that a difference was not detected; to
    say two methods are *the same for practical purposes* the data must rule out every difference as
    large as ``margin``. TOST tests both edges, each one-sided with a t statistic on the paired
    differences d = a - b (N items, df = N - 1, se = sd(d) / sqrt(N)):

        H0: mean <= -margin   rejected when t_low  = (mean + margin) / se is large
        H0: mean >= +margin   rejected when t_high = (mean - margin) / se is very negative

    and the equivalence p-value is the larger of the two one-sided p-values; equivalent when it is
    below ``alpha`` (the same as the 1 - 2*alpha interval lying inside the margin).

    Args:
        a, b: (N,) one score per item for each method, on the same items; N >= 2.
        margin: the largest difference that does not matter, > 0, in the scores' own units. Choose it
            before looking at the difference, from what the difference means (not from the data).
        alpha: each one-sided test's level.

    Returns:
        {mean_difference, ci95 (the paired t interval, noise = the choice of test items), p_value
        (TOST), equivalent, margin, alpha, n, df, p_lower, p_upper}.
    """
    x, y = _as_1d("a", a).astype(float), _as_1d("b", b).astype(float)
    n = _same_length(a=x, b=y)
    if n < 2:
        raise ValueError(f"An equivalence test needs at least 2 paired items (a spread to estimate); got {n}.")
    if not margin > 0:
        raise ValueError(f"margin must be a positive difference that would not matter; got {margin}.")
    diff = x - y  # (N,)
    mean, df = float(diff.mean()), n - 1
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    if se == 0:  # every item differs by the same amount: the difference is known exactly
        p_lower = 0.0 if mean > -margin else 1.0
        p_upper = 0.0 if mean < margin else 1.0
        half = 0.0
    else:
        p_lower = 1.0 - student_t_cdf((mean + margin) / se, df)
        p_upper = student_t_cdf((mean - margin) / se, df)
        half = t_quantile(0.975, df) * se
    p = max(p_lower, p_upper)
    return {"mean_difference": mean, "ci95": (mean - half, mean + half), "p_value": p, "equivalent": p < alpha,
            "margin": float(margin), "alpha": alpha, "n": n, "df": df, "p_lower": p_lower, "p_upper": p_upper}
