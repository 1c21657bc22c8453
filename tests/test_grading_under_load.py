"""An honest timing answer keeps its points on a busy machine (issue 22, item 6).

Assignment 3 Q3 asks for measured step times. Its hidden tests compare only what stays stable when
other jobs share the CPU: the learner's own prefix/full ratio against the band the FLOP count allows,
the numbers against each other, and the learner's ``step_seconds`` against the grader's wall clock
around the same call. Here the honest solution is graded while two other processes keep the cores
busy with training-sized matrix products, the way a shared teaching server or a class graded with
``--jobs 2`` is.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tutorlib.course.autograde import grade_notebook

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"

# Another training job: matrix products as large as a small model's, forever, on one thread each.
BUSY = ("import torch\n"
        "torch.set_num_threads(1)\n"
        "a, b = torch.randn(512, 512), torch.randn(512, 512)\n"
        "while True:\n"
        "    a = torch.tanh(a @ b)\n")


@pytest.fixture
def two_busy_processes():
    """Two CPU-bound processes for the test's duration (started and killed by it)."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(2)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=30)


# Invented timings: a step_seconds that does no work and answers a billionth of a second per step,
# and a prefix step a hundredth of a full one (far below the 2/3 the arithmetic allows).
INVENTED = '''
def step_seconds(tuned, batch, steps=5):
    return [1e-9 * (1 + i / 10) for i in range(steps)]


STEPS = 6 if FAST else 20
full_seconds = step_seconds(None, batch, steps=STEPS)
prefix_seconds = [s / 100 for s in full_seconds]
step_time_ratio = statistics.median(prefix_seconds) / statistics.median(full_seconds)
'''


def _with_invented_timings(folder: Path) -> Path:
    nb = nbformat.read(SOLUTIONS / "03_freezing_and_training.ipynb", 4)
    (answer,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q3_answer"]
    answer.source = INVENTED
    folder.mkdir()
    nbformat.write(nb, folder / "03_freezing_and_training.ipynb")
    return folder / "03_freezing_and_training.ipynb"


@pytest.mark.real
def test_the_timing_answer_keeps_full_marks_while_the_machine_is_busy(two_busy_processes, tmp_path):
    # The honest solution and an invented one graded side by side: four busy processes on the machine.
    notebooks = [SOLUTIONS / "03_freezing_and_training.ipynb", _with_invented_timings(tmp_path / "inventor")]
    with ThreadPoolExecutor(2) as pool:
        honest, invented = pool.map(lambda path: grade_notebook(path, solutions_dir=SOLUTIONS), notebooks)
    assert all(hog.poll() is None for hog in two_busy_processes), "the load stopped before the grading finished"
    lost = [(q.grade_id, q.points, q.max_points, q.message) for q in honest.questions if q.points < q.max_points]
    assert (honest.points, honest.flags, lost) == (honest.max_points, [], [])
    assert honest.max_points == 9
    # Invented numbers lose both parts of the timing question, and only that question.
    by_id = {q.grade_id: q for q in invented.questions}
    assert [(part["label"], part["points"]) for part in by_id["q3_tests"].parts] == [
        ("your numbers fit together", 0.0), ("your function trains, and your numbers are real measurements", 0.0)]
    assert "step_time_ratio is a measured one is not right yet" in by_id["q3_tests"].message
    assert invented.points == invented.max_points - 2
