"""scripts/five_methods_plot.py: the README's plot joins stored runs only where their rows are comparable."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import five_methods_plot  # noqa: E402


def test_the_stored_full_mode_runs_give_five_methods_each_once():
    result = five_methods_plot.combined([ROOT / "results" / name for name in five_methods_plot.RUNS])
    methods = [row["method"] for row in result.rows]
    assert sorted(methods) == ["full", "head-only", "lora", "prefix", "prompt"]
    assert result.mode == "full"


def test_a_run_with_another_seed_is_refused(tmp_path):
    folders = []
    for name in five_methods_plot.RUNS:
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(ROOT / "results" / name / "results.json", folder)
        folders.append(folder)
    stored = json.loads((folders[-1] / "results.json").read_text())
    (folders[-1] / "results.json").write_text(json.dumps({**stored, "seed": stored["seed"] + 1}))
    with pytest.raises(ValueError, match="seed"):
        five_methods_plot.combined(folders)
