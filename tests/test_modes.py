"""TUTORLIB_MODE=fast|workshop|full (TUTORLIB_FAST=1 still means fast), the one Mode type, and the budgets
each task owns per mode."""

import ast
from pathlib import Path
from typing import get_args

import pytest
from test_compare import tiny_sentiment

from tutorlib import MODES, Mode, check_mode, fast_mode, mode
from tutorlib.experiments.compare import compare
from tutorlib.tasks.registry import RunBudget, Task, all_tasks, get_task

PACKAGE = Path(__file__).resolve().parents[1] / "tutorlib"


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


def test_every_task_owns_a_budget_for_every_mode_and_workshop_sits_between():
    assert MODES == get_args(Mode) == ("fast", "workshop", "full")
    for task in all_tasks():
        assert set(task.budgets) == set(MODES) and all(isinstance(b, RunBudget) for b in task.budgets.values())
        fast, workshop, full = (task.budget(m) for m in MODES)
        assert fast.batch_size <= workshop.batch_size <= full.batch_size
        assert task.shortest_max_length <= fast.max_length
    # sentiment: the whole training split and test set, fewer steps than full mode's one epoch (266)
    workshop = get_task("sentiment").budget("workshop")
    assert workshop.steps < 266 and workshop.test_items is None
    assert get_task("summarise").prefix_init_text.startswith("Summarise")
    assert get_task("sentiment").prefix_init_text is None


def test_a_task_without_every_mode_is_refused_and_modes_are_checked():
    sentiment = get_task("sentiment")
    with pytest.raises(ValueError, match="no budget for workshop, full mode"):
        Task(**{**{f: getattr(sentiment, f) for f in sentiment.__dataclass_fields__}, "name": "other",
                "budgets": {"fast": sentiment.budget("fast")}})
    with pytest.raises(ValueError, match="--mode must be one of fast, workshop, full"):
        check_mode("quick", "--mode")
    with pytest.raises(ValueError, match=r"budget\['batch_size'\] must be a whole number >= 1"):
        RunBudget(None, None, 0, 64, None, 64)


def test_no_bool_stands_for_the_mode_outside_the_course_package():
    """The issue's check: `grep -rn "fast: bool|fast=True|fast=False" tutorlib` finds nothing (course/ aside)."""
    for path in PACKAGE.rglob("*.py"):
        if "course" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.arg):
                assert node.arg != "fast", f"{path}: an argument named fast"
            if isinstance(node, ast.keyword):
                assert node.arg != "fast", f"{path}: fast= passed"


def test_compare_uses_the_workshop_budget_in_workshop_mode(monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "workshop")
    result = compare("sentiment", model="tiny-bert", tiny_data=tiny_sentiment(), methods="prefix", steps=1,
                     progress=False, measure_energy=False)
    expected = get_task("sentiment").budget("workshop")
    assert result.budget["batch_size"] == expected.batch_size
    assert result.budget["eval_batch_size"] == expected.eval_batch_size
    assert result.budget["steps"] == 1 and result.mode == "workshop" and not result.fast
    # an explicit mode wins over the setting
    fast = compare("sentiment", model="tiny-bert", tiny_data=tiny_sentiment(), methods="prefix", steps=1, mode="fast",
                   progress=False, measure_energy=False)
    assert fast.budget["batch_size"] == get_task("sentiment").budget("fast").batch_size and fast.fast


def test_a_stored_sentiment_run_is_reused_only_in_its_own_mode(tmp_path):
    """tune and seeds share one folder of runs: one measured in another mode is refused, never mixed in."""
    import json

    from tutorlib.experiments.seeds import record_mode, run_name, stored_run

    (tmp_path / f"{run_name('full', 5e-5, 0, 0)}.json").write_text(json.dumps({"method": "full", "mode": "fast"}))
    assert stored_run(tmp_path, "full", 5e-5, 0, 0, mode="fast")["mode"] == "fast"
    with pytest.raises(ValueError, match="measured in fast mode, not workshop mode"):
        stored_run(tmp_path, "full", 5e-5, 0, 0, mode="workshop")
    assert record_mode({"fast": True}) == "fast" and record_mode({"fast": False}) == "full"  # stored before modes


def test_refresh_runs_in_workshop_mode_with_the_workshop_sizes():
    from tutorlib.experiments.refresh import refresh_experiment

    result = refresh_experiment(model="tiny-bert", tiny_data=tiny_sentiment(n_train=32, n_test=8), updates=2,
                                examples_per_update=16, methods=("prefix",), mode="workshop")
    workshop = get_task("sentiment").budget("workshop")
    assert result["settings"]["mode"] == "workshop" and result["settings"]["batch_size"] == workshop.batch_size
    assert [u["update"] for u in result["updates"]] == [1, 2]
