"""scripts/time_lessons.py: the script behind the README's lesson times reports what happened, failures included."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "time_lessons.py"
CELLS = {"runs": "import os\nprint(os.environ['TUTORLIB_MODE'])", "raises": "raise ValueError('lesson broke')"}


@pytest.fixture(scope="module")
def timed(tmp_path_factory) -> dict:
    """Each one-cell notebook of CELLS timed the way a lesson is timed -> {name: (result, folder)}. The two
    timings run side by side (each is mostly a kernel starting and stopping: one core each)."""
    started = {}
    for name, source in CELLS.items():
        folder = tmp_path_factory.mktemp(name)
        notebook = folder / "99_tiny.ipynb"
        nbformat.write(new_notebook(cells=[new_code_cell(source)]), notebook)
        started[name] = folder, subprocess.Popen(
            [sys.executable, str(SCRIPT), "--mode", "fast", "--out", str(folder / "t.json"), "--scratch",
             str(folder / "executed"), "--limit", "120", "--one", str(notebook)], stdout=subprocess.PIPE, text=True)
    results = {}
    for name, (folder, process) in started.items():
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"time_lessons.py failed on the {name!r} notebook"
        results[name] = json.loads(out.strip().splitlines()[-1]), folder
    return results


def test_a_lesson_that_runs_is_timed_with_its_mode(timed):
    result, folder = timed["runs"]
    assert result["ok"] is True and result["error_tail"] is None
    assert result["wall_s"] > 0 and result["peak_rss_mb"] > 10  # a kernel ran: tens of MB at least
    executed = nbformat.read(folder / "executed" / "99_tiny.ipynb", 4)
    assert executed.cells[0].outputs[0]["text"].strip() == "fast"  # the mode reached the kernel


def test_a_lesson_that_raises_is_reported_as_failed(timed):
    result, _ = timed["raises"]
    assert result["ok"] is False
    assert "lesson broke" in result["error_tail"]
