"""Any trained method can be tuned and measured over seeds: its grid comes from its registered default rate,
and tuning one method at a time adds to one tuning.json instead of replacing it."""

import json

import pytest

from tutorlib.experiments.compare import LEARNING_RATES
from tutorlib.experiments.tuning import GRID, _earlier, _merged, grid_for, tune_learning_rates


def test_the_first_grids_stay_and_a_new_method_gets_its_default_and_a_factor_three_either_side():
    assert grid_for("full") == GRID["full"] and grid_for("prefix") == GRID["prefix"]
    for method in ("lora", "prompt"):
        low, default, high = grid_for(method)
        assert default == LEARNING_RATES[("sentiment", method)]
        assert 2.5 < default / low < 3.5 and 2.5 < high / default < 3.5
    with pytest.raises(ValueError, match="no learning rate to tune on sentiment; tunable: .*lora"):
        grid_for("zero-shot")


def _tuning(chosen: dict, seed=0, mode="full") -> dict:
    return {"grid": {m: [lr] for m, lr in chosen.items()}, "chosen": chosen, "chosen_on": "validation",
            "seed": seed, "split_seed": 0, "mode": mode,
            "table": [{"method": m, "lr": lr, "validation_accuracy": 0.5, "test_accuracy": 0.5, "chosen": True}
                      for m, lr in chosen.items()]}


def test_tuning_more_methods_keeps_the_others_and_replaces_the_same_ones(tmp_path):
    path = tmp_path / "tuning.json"
    assert _earlier(path, 0, 0, "full") is None
    assert _merged(None, _tuning({"lora": 1e-2})) == _tuning({"lora": 1e-2})  # nothing there yet
    path.write_text(json.dumps(_tuning({"full": 1e-4, "prefix": 3e-2, "lora": 3e-3})))
    merged = _merged(_earlier(path, 0, 0, "full"), _tuning({"lora": 1e-2, "prompt": 1e-2}))
    assert merged["chosen"] == {"full": 1e-4, "prefix": 3e-2, "lora": 1e-2, "prompt": 1e-2}
    assert [r["method"] for r in merged["table"]] == ["full", "prefix", "lora", "prompt"]
    assert list(merged["grid"]) == ["full", "prefix", "lora", "prompt"]


def test_a_tuning_at_another_seed_or_mode_is_refused_before_anything_trains(tmp_path):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(_tuning({"full": 1e-4}, mode="fast")))
    with pytest.raises(ValueError, match="fast mode; these runs are seed 0, split seed 0, full mode"):
        _earlier(path, 0, 0, "full")
    path.write_text(json.dumps({**_tuning({"full": 1e-4}), "seed": 1}))
    with pytest.raises(ValueError, match="Use another --out"):
        # refused before the first run is trained: no run file, not even its folder, is written
        tune_learning_rates(tmp_path, tmp_path / "no-runs", methods=("lora",), seed=0, progress=False)
    assert not (tmp_path / "no-runs").exists()
