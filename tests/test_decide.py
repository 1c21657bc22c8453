"""The decision helper applies its stated rule to measured rows and says why."""

import doctest

import pytest

from tutorlib.experiments import decide
from tutorlib.experiments.decide import Budget, break_even_customers, recommend, storage_for_customers


def rows(full_acc=0.85, prefix_acc=0.81):
    """Two rows shaped like RunCost.to_dict() plus an evaluation (MiniLM-like numbers)."""
    return [
        {"method": "full", "accuracy": full_acc, "accuracy_ci95": (0.83, 0.87), "trainable_params": 22_713_000,
         "median_step_seconds": 1.01, "train_seconds": 290.0, "peak_memory_increase_mb": 900.0,
         "checkpoint_bytes": 90_900_000},
        {"method": "prefix", "accuracy": prefix_acc, "accuracy_ci95": (0.79, 0.83), "trainable_params": 46_850,
         "median_step_seconds": 0.65, "train_seconds": 180.0, "peak_memory_increase_mb": 450.0,
         "checkpoint_bytes": 190_000},
    ]


def test_docstring_examples_run():
    assert doctest.testmod(decide).failed == 0


def test_both_feasible_cheapest_wins_and_reason_names_the_numbers():
    rec = recommend(rows(), Budget(min_quality=0.8))
    assert rec.method == "prefix" and rec.feasible == ["full", "prefix"]
    assert "186 KiB" in rec.reason and "86.7 MiB" in rec.reason  # 190,000 and 90,900,000 bytes


def test_quality_floor_excludes_prefix():
    rec = recommend(rows(), Budget(min_quality=0.83))
    assert rec.method == "full" and rec.feasible == ["full"]
    assert "prefix breaks: accuracy 0.81 < floor 0.83" in rec.reason


@pytest.mark.parametrize("budget, expected", [
    (Budget(max_step_seconds=0.8), "prefix"),
    (Budget(max_memory_mb=500), "prefix"),
    (Budget(max_trainable_params=1_000_000), "prefix"),
    (Budget(max_stored_bytes_per_customer=1_000_000), "prefix"),
    (Budget(max_train_seconds=100), None),
    (Budget(min_quality=0.9), None),
    (Budget(min_quality=0.83, max_step_seconds=0.8), None),
    (Budget(prefer="quality"), "full"),
    (Budget(prefer="quality", max_step_seconds=0.9), "prefix"),
])
def test_each_limit_is_applied(budget, expected):
    assert recommend(rows(), budget).method == expected


def test_no_method_fits_lists_what_each_breaks():
    rec = recommend(rows(), Budget(min_quality=0.83, max_step_seconds=0.8))
    assert rec.method is None and rec.feasible == []
    assert "full breaks: step time 1.01 s > 0.8 s" in rec.reason
    assert "prefix breaks: accuracy 0.81 < floor 0.83" in rec.reason
    assert "Recommendation: none" in str(rec)


def test_ties_in_stored_bytes_fall_back_to_step_time():
    a, b = rows()
    b["checkpoint_bytes"] = a["checkpoint_bytes"]
    rec = recommend([a, b], Budget())
    assert rec.method == "prefix" and "steps in 0.65 s" in rec.reason


def test_quality_preference_breaks_ties_by_cost():
    rec = recommend(rows(full_acc=0.8, prefix_acc=0.8), Budget(prefer="quality"))
    assert rec.method == "prefix"


def test_uncertain_floor_is_noted():
    rec = recommend(rows(), Budget(min_quality=0.80))  # prefix 0.81, interval (0.79, 0.83) holds 0.80
    assert rec.method == "prefix" and "contains the floor" in rec.reason


def test_table_has_one_line_per_check():
    rec = recommend(rows(), Budget(min_quality=0.8, max_step_seconds=2))
    assert len(rec.table().splitlines()) == 1 + 2 * 2 and "BREAKS" not in rec.table()


def test_missing_measurement_says_what_to_do():
    a, b = rows()
    del b["peak_memory_increase_mb"]
    with pytest.raises(KeyError, match="max_memory_mb=None"):
        recommend([a, b], Budget(max_memory_mb=1000))


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="prefer"):
        Budget(prefer="fastest")
    with pytest.raises(ValueError, match="negative"):
        Budget(max_step_seconds=-1)
    with pytest.raises(ValueError, match="at least one"):
        recommend([])
    with pytest.raises(ValueError, match="own 'method'"):
        recommend([rows()[0], rows()[0]])


def test_storage_arithmetic_and_break_even():
    sizes = dict(base_model_bytes=90_900_000, full_checkpoint_bytes=90_903_000, prefix_checkpoint_bytes=190_000)
    one = storage_for_customers(1, **sizes)
    assert one["full"] < one["prefix"]  # one customer: the shared base does not pay off yet
    n = break_even_customers(**sizes)
    assert n == 2
    before, after = storage_for_customers(n - 1, **sizes), storage_for_customers(n, **sizes)
    assert before["prefix"] >= before["full"] and after["prefix"] < after["full"]
    hundred = storage_for_customers(100, **sizes)
    assert hundred == {"full": 100 * 90_903_000, "prefix": 90_900_000 + 100 * 190_000}
    with pytest.raises(ValueError):
        break_even_customers(base_model_bytes=1, full_checkpoint_bytes=5, prefix_checkpoint_bytes=5)
