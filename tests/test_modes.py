"""TUTORLIB_MODE=fast|workshop|full (TUTORLIB_FAST=1 still means fast) and the budgets each mode picks."""

import pytest

from tutorlib import fast_mode, mode
from tutorlib.experiments.compare import BUDGETS, compare
from test_compare import tiny_sentiment


@pytest.mark.parametrize("env, expected", [
    ({}, "full"), ({"TUTORLIB_FAST": "1"}, "fast"), ({"TUTORLIB_FAST": "0"}, "full"),
    ({"TUTORLIB_MODE": "workshop"}, "workshop"), ({"TUTORLIB_MODE": " Fast "}, "fast"),
    ({"TUTORLIB_MODE": "full", "TUTORLIB_FAST": "1"}, "full"),  # the new setting wins over the old one
    ({"TUTORLIB_MODE": "", "TUTORLIB_FAST": "1"}, "fast"),
])
def test_mode_reads_the_settings(monkeypatch, env, expected):
    monkeypatch.delenv("TUTORLIB_MODE", raising=False)
    monkeypatch.delenv("TUTORLIB_FAST", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert mode() == expected
    assert fast_mode() == (expected == "fast")


def test_an_unknown_mode_says_which_exist(monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "quick")
    with pytest.raises(ValueError, match="fast, workshop, full"):
        mode()


def test_workshop_budgets_sit_between_fast_and_full():
    for task in ("sentiment", "summarise"):
        workshop = BUDGETS[(task, "workshop")]
        assert BUDGETS[(task, True)].batch_size <= workshop.batch_size <= BUDGETS[(task, False)].batch_size
    # sentiment: the whole training split and test set, fewer steps than full mode's one epoch (266)
    assert BUDGETS[("sentiment", "workshop")].steps < 266 and BUDGETS[("sentiment", "workshop")].test_items is None


def test_compare_uses_the_workshop_budget_in_workshop_mode(monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "workshop")
    result = compare("sentiment", model="tiny-bert", tiny_data=tiny_sentiment(), methods="prefix", steps=1,
                     progress=False, measure_energy=False)
    expected = BUDGETS[("sentiment", "workshop")]
    assert result.budget["batch_size"] == expected.batch_size and result.budget["eval_batch_size"] == expected.eval_batch_size
    assert result.budget["steps"] == 1 and not result.fast
    # an explicit fast=True still wins over the setting
    fast = compare("sentiment", model="tiny-bert", tiny_data=tiny_sentiment(), methods="prefix", steps=1, fast=True,
                   progress=False, measure_energy=False)
    assert fast.budget["batch_size"] == BUDGETS[("sentiment", True)].batch_size and fast.fast
