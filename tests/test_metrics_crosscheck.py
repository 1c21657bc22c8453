"""Every hand-written statistic against a library's own, on edge cases and on the stored per-item files.

The kit writes its statistics out by hand (the lessons teach them line by line); scipy, statsmodels and
scikit-learn are test-only dependencies here, the referees. Edge cases: one item, all right, all wrong, no
discordant pairs, exact against asymptotic regimes, constant inputs.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import ttost_paired

from tutorlib.experiments.interaction import bootstrap_gap_difference, mean_interval, t_quantile_975
from tutorlib.tasks.metrics import (
    EXACT_SIGN_FLIP_ITEMS,
    accuracy,
    expected_calibration_error,
    format_p,
    macro_f1,
    mcnemar,
    paired_equivalence,
    pearson,
    regularized_incomplete_beta,
    sign_flip_test,
    student_t_cdf,
    t_quantile,
    wilson_interval,
)

ROOT = Path(__file__).resolve().parents[1]


def stored(path: str):
    return json.loads((ROOT / path).read_text())


# ----------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize("successes, n", [(0, 1), (1, 1), (0, 20), (20, 20), (7, 13), (75, 100), (888, 1061)])
def test_wilson_matches_statsmodels(successes, n):
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    z = stats.norm.ppf(0.975)
    assert wilson_interval(successes, n, z=z) == pytest.approx((low, high), abs=1e-12)


def test_wilson_on_the_stored_sentiment_run():
    results = stored("results/sentiment/results.json")
    for row in results["rows"]:
        right = round(row["accuracy"] * row["n"])
        low, high = proportion_confint(right, row["n"], alpha=0.05, method="wilson")
        assert row["accuracy_ci95"] == pytest.approx([low, high], abs=2e-4)  # the kit's z = 1.96, not 1.95996...


# ----------------------------------------------------------------------------- accuracy, macro-F1


@pytest.mark.parametrize("preds, labels", [
    ([1], [1]), ([0], [1]),                          # one item, right and wrong
    ([1, 0, 1, 0], [1, 0, 1, 0]),                    # all right
    ([0, 1, 0, 1], [1, 0, 1, 0]),                    # all wrong
    ([1, 1, 1, 1], [1, 0, 1, 0]),                    # a class never predicted (its F1 is 0)
    ([2, 0, 1, 2, 1], [0, 0, 1, 2, 2]),              # three classes
])
def test_accuracy_and_macro_f1_match_scikit_learn(preds, labels):
    assert accuracy(preds, labels) == pytest.approx(accuracy_score(labels, preds))
    assert macro_f1(preds, labels) == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0.0))


def test_macro_f1_on_the_stored_predictions():
    for folder in ("sentiment", "sentiment-head-only"):
        results, predictions = stored(f"results/{folder}/results.json"), stored(f"results/{folder}/predictions.json")
        for row in results["rows"]:
            items = predictions[row["method"]]
            preds, gold = [p["pred"] for p in items], [p["label"] for p in items]
            assert row["macro_f1"] == pytest.approx(f1_score(gold, preds, average="macro"), abs=1e-12)
            assert macro_f1(preds, gold) == pytest.approx(row["macro_f1"], abs=1e-12)


# ----------------------------------------------------------------------------- McNemar


def _mcnemar_table(a_right, b_right):
    a, b = np.asarray(a_right, bool), np.asarray(b_right, bool)
    return [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]


@pytest.mark.parametrize("a_right, b_right", [
    ([1], [1]),                                       # one item, no discordant pair
    ([1, 1, 0, 0], [1, 1, 0, 0]),                     # no discordant pairs at all
    ([1], [0]),                                       # one discordant pair
    ([1] * 10, [0] * 10),                             # all discordant one way
    ([1, 0] * 15, [0, 1] * 15),                       # balanced
    ([1] * 9 + [0] * 3 + [1] * 20, [0] * 9 + [1] * 3 + [1] * 20),
])
def test_mcnemar_matches_statsmodels_exact(a_right, b_right):
    ours = mcnemar(a_right, b_right, [1] * len(a_right))
    theirs = sm_mcnemar(_mcnemar_table(a_right, b_right), exact=True).pvalue
    assert ours == pytest.approx(min(1.0, theirs), abs=1e-12)


def test_mcnemar_exact_and_asymptotic_agree_only_with_many_discordant_pairs():
    few = ([1] * 6 + [0], [0] * 6 + [1])  # 6 against 1
    many = ([1] * 90 + [0] * 37, [0] * 90 + [1] * 37)  # the README's 90 against 37
    for a, b in (few, many):
        exact = mcnemar(a, b, [1] * len(a))
        asymptotic = sm_mcnemar(_mcnemar_table(a, b), exact=False, correction=False).pvalue  # textbook chi-square
        assert exact == pytest.approx(sm_mcnemar(_mcnemar_table(a, b), exact=True).pvalue, abs=1e-15)
        if a is many[0]:
            assert asymptotic == pytest.approx(exact, rel=0.5)  # the chi-square approximation is usable here
        else:
            assert exact / asymptotic > 2  # and off by half with seven pairs: why the kit uses the exact test


def test_mcnemar_on_the_stored_runs():
    results, predictions = stored("results/sentiment/results.json"), stored("results/sentiment/predictions.json")
    full, prefix = predictions["full"], predictions["prefix"]
    a = [p["pred"] == p["label"] for p in full]
    b = [q["pred"] == q["label"] for q in prefix]
    theirs = sm_mcnemar(_mcnemar_table(a, b), exact=True).pvalue
    assert results["paired_tests"][0]["p_value"] == pytest.approx(theirs, rel=1e-9)
    summary = stored("results/sentiment-seeds/summary.json")
    rates = summary["learning_rates"]
    for entry in summary["per_seed"]:
        runs = [stored(f"results/sentiment-runs/{m}-lr{rates[m]}-seed{entry['seed']}-split{entry['split_seed']}.json")
                ["sets"]["test"]["right"] for m in ("full", "prefix")]
        assert entry["mcnemar_p"] == pytest.approx(sm_mcnemar(_mcnemar_table(*runs), exact=True).pvalue, rel=1e-9)


# ----------------------------------------------------------------------------- ECE, Pearson, standard errors


def test_ece_matches_scikit_learn_calibration_bins():
    rng = np.random.default_rng(0)
    for n in (1, 7, 500):
        conf = rng.uniform(0.5, 1.0, n)
        right = (rng.uniform(size=n) < conf).astype(int)
        prob_true, prob_pred = calibration_curve(right, conf, n_bins=10, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], conf), minlength=10)  # sklearn's binning
        theirs = np.sum(counts[counts > 0] / n * np.abs(prob_true - prob_pred))
        assert expected_calibration_error(conf, right) == pytest.approx(theirs, abs=1e-12)
    assert expected_calibration_error([0.9, 0.8], [1, 1]) == pytest.approx(0.15)  # all right
    assert expected_calibration_error([0.9, 0.8], [0, 0]) == pytest.approx(0.85)  # all wrong


def test_ece_on_the_stored_predictions():
    results, predictions = stored("results/sentiment/results.json"), stored("results/sentiment/predictions.json")
    for row in results["rows"]:
        items = predictions[row["method"]]
        conf = np.array([max(p["prob_positive"], 1 - p["prob_positive"]) for p in items])
        right = np.array([p["pred"] == p["label"] for p in items], int)
        prob_true, prob_pred = calibration_curve(right, conf, n_bins=10, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], conf), minlength=10)
        assert row["ece"] == pytest.approx(np.sum(counts[counts > 0] / len(conf) * np.abs(prob_true - prob_pred)),
                                           abs=1e-9)


def test_pearson_matches_scipy_and_is_nan_when_constant():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert pearson([1, 2], [2, 1]) == pytest.approx(stats.pearsonr([1, 2], [2, 1]).statistic)  # n = 2: -1
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_stored_standard_errors_match_scipy():
    for folder in ("summarise-nyt-leads", "summarise-aclsum", "summarise-pubmed-biochem"):
        results, predictions = stored(f"results/{folder}/results.json"), stored(f"results/{folder}/predictions.json")
        for row in results["rows"]:
            scores = [p["rougeL"] for p in predictions[row["method"]]]
            assert row["rougeL_se"] == pytest.approx(stats.sem(scores), rel=1e-9)


# ----------------------------------------------------------------------------- Student's t, by hand


@pytest.mark.parametrize("df", [1, 2, 3, 4.5, 10, 30, 31, 100, 1000, 1e6])
def test_t_quantile_and_cdf_match_scipy_for_any_df(df):
    for p in (0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.9999, 0.025):
        assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8, abs=1e-12)
    for t in (-40.0, -2.1, -0.3, 0.0, 0.7, 1.96, 3.0, 50.0):
        assert student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-9, abs=1e-14)


def test_t_quantile_975_is_exact_beyond_the_old_table():
    assert t_quantile_975(31) == pytest.approx(stats.t.ppf(0.975, 31), rel=1e-10)  # was 1.96: 3.9% too narrow
    assert t_quantile_975(2) == pytest.approx(4.302653, rel=1e-6)
    with pytest.raises(ValueError, match="df >= 1"):
        t_quantile_975(0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        t_quantile(1.0, 5)


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (1.0, 1.0), (2.5, 0.5), (15.0, 0.5), (50.0, 80.0)])
def test_regularized_incomplete_beta_matches_scipy(a, b):
    for x in (0.0, 1e-6, 0.1, 0.37, 0.5, 0.93, 1.0):
        assert regularized_incomplete_beta(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10, abs=1e-15)


def test_mean_interval_matches_scipy_and_the_stored_seed_intervals():
    values = [0.037, 0.020, 0.028]
    out = mean_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert out["ci95"] == pytest.approx((low, high), rel=1e-9)
    for key, entry in stored("results/sentiment-seeds/summary.json")["across_seeds"].items():
        low, high = stats.t.interval(0.95, entry["n"] - 1, loc=entry["mean"], scale=stats.sem(entry["values"]))
        assert entry["ci95"] == pytest.approx([low, high], abs=5e-5), key  # stored with the old 4.303: same to 4 places


# ----------------------------------------------------------------------------- the paired tests


def _scipy_sign_flip(diff, n_resamples):
    return stats.permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                  alternative="two-sided", random_state=0).pvalue


@pytest.mark.parametrize("diff", [[0.3], [0.1, -0.1], [1.0] * 5, [0.0] * 4, [0.2, 0.5, -0.1, 0.4, 0.05, -0.3, 0.25],
                                  list(np.random.default_rng(2).normal(0.1, 0.3, EXACT_SIGN_FLIP_ITEMS))])
def test_sign_flip_is_exact_by_enumeration_for_few_items(diff):
    ours = sign_flip_test(np.array(diff), np.zeros(len(diff)))
    assert ours["kind"] == "exact" and ours["draws"] == 2 ** len(diff) and not ours["at_floor"]
    # scipy needs two items; one item's two sign patterns are equally far from 0, so p = 1
    expected = 1.0 if len(diff) == 1 else _scipy_sign_flip(np.array(diff), np.inf)
    assert ours["p_value"] == pytest.approx(expected, abs=1e-12)


def test_sign_flip_monte_carlo_agrees_with_scipy_and_says_when_it_hits_its_floor():
    diff = np.random.default_rng(3).normal(0.05, 0.3, 40)
    ours = sign_flip_test(diff, np.zeros(40), draws=20_000)
    assert ours["kind"] == "monte carlo"
    assert ours["p_value"] == pytest.approx(_scipy_sign_flip(diff, 20_000), abs=0.02)  # two Monte Carlo estimates
    every_item_better = sign_flip_test(np.full(30, 0.2), np.zeros(30))
    assert every_item_better["at_floor"] and every_item_better["p_value"] == pytest.approx(1 / 10_001)
    assert format_p(every_item_better) == "p < 0.0001"  # a bound, never "p = 0.0001"
    assert format_p({"p_value": 2.8720304868072597e-06}) == "p = 2.9e-6"
    assert format_p({"p_value": 0.5916}) == "p = 0.59"


def test_sign_flip_on_the_stored_summaries_matches_scipy():
    for folder in ("summarise-nyt-leads", "summarise-pubmed-biochem"):
        predictions = stored(f"results/{folder}/predictions.json")
        full = np.array([p["rougeL"] for p in predictions["full"]])
        prefix = np.array([p["rougeL"] for p in predictions["prefix"]])
        ours = sign_flip_test(full, prefix)
        assert ours["p_value"] == pytest.approx(_scipy_sign_flip(full - prefix, 10_000), abs=0.02)


@pytest.mark.parametrize("margin", [0.01, 0.02, 0.033])
def test_tost_matches_statsmodels(margin):
    for folder in ("summarise-nyt-leads", "summarise-pubmed-biochem"):
        predictions = stored(f"results/{folder}/predictions.json")
        full = np.array([p["rougeL"] for p in predictions["full"]])
        prefix = np.array([p["rougeL"] for p in predictions["prefix"]])
        ours = paired_equivalence(full, prefix, margin)
        p, lower, upper = ttost_paired(full, prefix, -margin, margin)
        assert ours["p_value"] == pytest.approx(p, rel=1e-8, abs=1e-14)
        assert (ours["p_lower"], ours["p_upper"]) == pytest.approx((lower[1], upper[1]), rel=1e-8, abs=1e-14)
        interval = stats.ttest_rel(full, prefix).confidence_interval(0.95)
        assert ours["ci95"] == pytest.approx((interval.low, interval.high), rel=1e-9)


def test_tost_edge_cases():
    rng = np.random.default_rng(4)
    a = rng.normal(0, 1, 200)
    same = paired_equivalence(a + rng.normal(0, 0.01, 200), a, margin=0.05)
    assert same["equivalent"] and same["p_value"] < 1e-6
    far = paired_equivalence(a + 1.0 + rng.normal(0, 0.01, 200), a, margin=0.05)
    assert not far["equivalent"] and far["p_value"] > 0.99
    exact_shift = paired_equivalence(a + 0.01, a, margin=0.05)  # no spread: the difference is known exactly
    assert exact_shift["equivalent"] and exact_shift["ci95"] == pytest.approx((0.01, 0.01))
    noisy = a + rng.normal(0, 0.3, 200)  # in between: neither clearly equivalent nor clearly not
    assert paired_equivalence(noisy, a, 0.05)["p_value"] == pytest.approx(ttost_paired(noisy, a, -0.05, 0.05)[0])
    with pytest.raises(ValueError, match="at least 2 paired items"):
        paired_equivalence([1.0], [0.5], margin=0.1)
    with pytest.raises(ValueError, match="margin must be a positive"):
        paired_equivalence([1.0, 2.0], [0.5, 1.0], margin=0)


# ----------------------------------------------------------------------------- the stratified bootstrap


def test_stratified_bootstrap_matches_scipy():
    rng = np.random.default_rng(5)
    a = (rng.uniform(size=400) < 0.8).astype(float)
    b = (rng.uniform(size=400) < 0.75).astype(float)
    ambiguous = np.arange(400) % 2 == 0
    ours = bootstrap_gap_difference(a, b, ambiguous, draws=8000)
    diff = a - b
    theirs = stats.bootstrap((diff[~ambiguous], diff[ambiguous]), lambda clear, amb, axis=-1:
                             amb.mean(axis=axis) - clear.mean(axis=axis), paired=False, n_resamples=8000,
                             method="percentile", random_state=0).confidence_interval
    assert ours["ci95"] == pytest.approx((theirs.low, theirs.high), abs=0.012)  # two Monte Carlo estimates
