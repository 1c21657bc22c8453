"""scripts/time_lessons.py: the script behind the README's lesson times reports what happened, failures included."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "time_lessons.py"


def time_notebook(tmp_path, source: str) -> dict:
    """Write a one-cell notebook with `source` and time it the way a lesson is timed."""
    notebook = tmp_path / "99_tiny.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(source)]), notebook)
    done = subprocess.run([sys.executable, str(SCRIPT), "--mode", "fast", "--out", str(tmp_path / "t.json"),
                           "--scratch", str(tmp_path / "executed"), "--limit", "120", "--one", str(notebook)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_lesson_that_runs_is_timed_with_its_mode(tmp_path):
    result = time_notebook(tmp_path, "import os\nprint(os.environ['TUTORLIB_MODE'])")
    assert result["ok"] is True and result["error_tail"] is None
    assert result["wall_s"] > 0 and result["peak_rss_mb"] > 10  # a kernel ran: tens of MB at least
    executed = nbformat.read(tmp_path / "executed" / "99_tiny.ipynb", 4)
    assert executed.cells[0].outputs[0]["text"].strip() == "fast"  # the mode reached the kernel


def test_a_lesson_that_raises_is_reported_as_failed(tmp_path):
    result = time_notebook(tmp_path, "raise ValueError('lesson broke')")
    assert result["ok"] is False
    assert "lesson broke" in result["error_tail"]
