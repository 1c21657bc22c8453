"""The in-notebook checks and the autograder (each graded notebook starts a real kernel: ~2-4 s)."""

import json
import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from tutorlib.cli import grade_main
from tutorlib.course.autograde import GradingOptions, grade_notebooks, learner_message
from tutorlib.course.checks import (
    AnswerError,
    check_close,
    check_equal,
    check_tensor,
    check_true,
)
from tutorlib.course.report import GradeReport, NotebookResult, QuestionResult

FIXTURES = Path(__file__).parent / "notebooks"
SOLUTIONS = FIXTURES / "solutions"
SOLUTION = SOLUTIONS / "toy_prefix.ipynb"
EXERCISE = FIXTURES / "exercises" / "toy_prefix.ipynb"


# --- the checks a test cell calls ------------------------------------------------------------

def test_check_messages_say_expected_got_and_hint():
    with pytest.raises(AnswerError) as info:
        check_equal("prefix_params(2, 3, 4)", 24, 48, hint="keys AND values")
    text = str(info.value)
    assert text.splitlines()[0] == "prefix_params(2, 3, 4) is not right yet."
    assert "expected: 48" in text and "got:      24" in text and "hint:     keys AND values" in text
    assert isinstance(info.value, AssertionError)  # plain assert-based tools still see a failure

    with pytest.raises(AnswerError, match="forget to `return`"):
        check_equal("answer", None, 3)
    with pytest.raises(AnswerError, match=r"(?s)expected:\s+2.3026.*got:\s+2.5.*8.57%.*hint:\s+use log"):
        check_close("loss", 2.5, 2.3026, rtol=1e-3, hint="use log(V)")
    with pytest.raises(AnswerError, match=r"(?s)expected shape: \(2, any, 5\).*got shape:\s+\(2, 3, 4\)"):
        check_tensor("keys", torch.zeros(2, 3, 4), expected_shape=(2, None, 5))
    with pytest.raises(AnswerError, match=r"(?s)first difference: at index \(1, 2\).*1 of 6"):
        want = torch.zeros(2, 3)
        got = want.clone()
        got[1, 2] = 0.5
        check_tensor("keys", got, expected_shape=(2, 3), expected=want)
    with pytest.raises(AnswerError, match="NaN or inf"):
        check_tensor("loss", torch.tensor([1.0, float("nan")]), expected_shape=(2,))
    with pytest.raises(AnswerError, match=r"(?s)expected: every weight is frozen.*hint:\s+requires_grad_"):
        check_true("frozen", False, "every weight is frozen", hint="requires_grad_(False)")


def test_checks_pass_on_right_answers_of_any_array_kind():
    check_equal("n", torch.tensor(5), 5)
    check_equal("ids", np.array([1, 2]), [1, 2])
    check_close("p", torch.tensor([0.1, 0.2]), [0.1, 0.2 + 1e-9])
    check_tensor("h", torch.ones(2, 3, dtype=torch.bfloat16, requires_grad=True), (2, 3), np.ones((2, 3)))
    check_true("ok", True, "anything")
    with pytest.raises(AnswerError):
        check_equal("shape matters", np.array([1, 2]), np.array([[1, 2]]))


def test_checks_compare_plain_data_only():
    class Anything:  # an answer that claims to equal everything
        def __eq__(self, other):
            return True

        __hash__ = None
        shape, dtype = (2,), "float32"

    for check in (lambda: check_equal("n", Anything(), 3), lambda: check_equal("pair", (Anything(), 1), (3, 1)),
                  lambda: check_close("x", Anything(), 0.5), lambda: check_tensor("t", Anything(), (2,))):
        with pytest.raises(AnswerError, match="Anything"):
            check()
    with pytest.raises(AnswerError, match="not True or False"):
        check_true("ok", Anything(), "a real boolean")
    check_equal("plain", {"a": [1, 2.0, None], "b": (np.int64(3), "x")}, {"a": [1, 2.0, None], "b": (3, "x")})
    check_true("numpy bool", np.bool_(True), "a numpy boolean is fine")


def test_learner_message_is_short_and_free_of_ansi():
    tb = ["\x1b[31m---------\x1b[39m", "Cell \x1b[32mIn[3]\x1b[0m, line 1", "----> 1 assert y == 3",
          "\x1b[31mAssertionError\x1b[39m: "]
    assert learner_message("AssertionError", "", tb) == "Cell In[3], line 1\n----> 1 assert y == 3\nAssertionError:"
    assert learner_message("AnswerError", "x is not right yet.\n  expected: 1", tb) == \
        "x is not right yet.\n  expected: 1"
    assert learner_message("NameError", "name 'f' is not defined", tb) == "NameError: name 'f' is not defined"
    assert "replace it with your code" in learner_message("NotImplementedError", "", tb)


def test_report_totals_pass_mark_and_markdown_escaping():
    nb = NotebookResult("ex.ipynb", questions=[QuestionResult("q1", 2, 2, "passed"),
                                               QuestionResult("q2", 0, 3, "failed", "a | b\n<x>")])
    assert GradeReport([nb], pass_mark=0.4).passed and not GradeReport([nb], pass_mark=0.5).passed
    assert GradeReport([nb]).passed is None
    md = GradeReport([nb]).to_markdown()
    assert "**Total: 2 / 5 points (40%)**" in md
    assert "| `q2` | 0 / 3 | ❌ failed | a \\| b<br>\\<x\\> |" in md
    with pytest.raises(ValueError, match="fraction"):
        grade_notebooks([], pass_mark=60)


# --- the autograder on real kernels -----------------------------------------------------------

def _set(nb, grade_id, source):
    """Replace the source of the cell whose nbgrader grade_id is ``grade_id``."""
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = source


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade three notebooks once through grade_main: the solution, its exercise, and a learner
    notebook with a hidden-test failure, an endless loop, a crash and one right answer."""
    tmp = tmp_path_factory.mktemp("grading")
    learner = nbformat.read(EXERCISE, 4)
    _set(learner, "q1_answer", "def prefix_params(n_layers, prefix_len, d_model):\n    return 48")
    _set(learner, "q1_prefix_params", "pass  # the learner 'fixed' the test: it must not help")
    _set(learner, "q2_answer", "def trained_fraction(trainable, total):\n    while True:\n        pass")
    _set(learner, "q3_answer", "1 / 0\ndef mean_loss(losses):\n    return sum(losses) / len(losses)")
    _set(learner, "q4_answer", "def prefix_bytes(n_params):\n    return 4 * n_params")
    (tmp / "learner").mkdir()
    nbformat.write(learner, tmp / "learner" / "toy_prefix.ipynb")
    code = grade_main([SOLUTION, EXERCISE, tmp / "learner" / "toy_prefix.ipynb"],
                      options=GradingOptions(cell_timeout=5), out_dir=tmp / "grades", pass_mark=0.6,
                      solutions_dir=SOLUTIONS)
    report = json.loads((tmp / "grades" / "grades.json").read_text())
    by_notebook = [{q["grade_id"]: q for q in nb["questions"]} for nb in report["notebooks"]]
    return code, report, by_notebook, (tmp / "grades" / "grades.md").read_text()


def test_solution_scores_full_marks(graded):
    _, report, (solution, _, _), _ = graded
    assert {gid: (q["points"], q["status"]) for gid, q in solution.items()} == {
        "q1_prefix_params": (2, "passed"), "q2_trained_fraction": (1, "passed"),
        "q3_mean_loss": (1, "passed"), "q4_prefix_bytes": (3, "passed")}
    assert report["notebooks"][0]["points"] == report["notebooks"][0]["max_points"] == 7


def test_exercise_scores_zero_with_a_useful_message(graded):
    _, _, (_, exercise, _), _ = graded
    assert all(q["points"] == 0 and q["status"] == "failed" for q in exercise.values())
    assert "raise NotImplementedError()" in exercise["q4_prefix_bytes"]["message"]


def test_hidden_tests_run_and_a_loop_or_crash_costs_only_its_question(graded):
    _, _, (_, _, learner), _ = graded
    # q1 passes the visible test (48) but not the hidden one, although the learner emptied the test cell
    assert learner["q1_prefix_params"]["points"] == 0
    assert "prefix_params(12, 10, 768) is not right yet" in learner["q1_prefix_params"]["message"]
    assert "184320" not in learner["q1_prefix_params"]["message"]  # a hidden test's expected value is never shown
    assert "got:      48" in learner["q1_prefix_params"]["message"]
    # q2's answer loops forever when its test calls it: the test cell is stopped at its time limit
    assert (learner["q2_trained_fraction"]["points"], learner["q2_trained_fraction"]["status"]) == (0, "timeout")
    assert "time limit" in learner["q2_trained_fraction"]["message"]
    # q3's answer crashes: its test fails and points at the crash
    assert learner["q3_mean_loss"]["points"] == 0
    assert "ZeroDivisionError" in learner["q3_mean_loss"]["message"]
    # ...and the question after them still scores (the kernel was restarted after the loop, with the
    # given cells replayed)
    assert (learner["q4_prefix_bytes"]["points"], learner["q4_prefix_bytes"]["status"]) == (3, "passed")


def test_json_markdown_and_exit_code(graded):
    code, report, _, markdown = graded
    # the learner emptied a test cell: flagged for review, the 3 points the checks gave are withheld
    assert (report["points"], report["max_points"]) == (7 + 0 + 0, 21)
    learner = report["notebooks"][2]
    assert learner["withheld"] and learner["scored"] == 3 and learner["flags"] == [
        "cell 5: a given cell was edited (it must stay as it was handed out)"]
    assert report["pass_mark"] == 0.6 and report["passed"] is False and code == 1
    assert report["notebooks"][2]["solution"] == SOLUTION.name
    assert "**Total: 7 / 21 points (33%)** · pass mark 60%: **not yet passed**" in markdown
    assert "**⚠️ Flagged for review** (the checks gave 3 points, withheld until a teacher reviews" in markdown
    assert "| `q4_prefix_bytes` | 3 / 3 | ✅ passed | small: 1 / 1<br>large: 2 / 2 |" in markdown
    assert markdown.count("| `q1_prefix_params` |") == 3
    assert "\x1b[" not in markdown and "\x1b[" not in json.dumps(report)


def test_grade_main_passes_and_a_deleted_test_cell_is_flagged(tmp_path, capsys):
    learner = nbformat.read(SOLUTION, 4)  # all answers right
    nbformat.write(learner, tmp_path / "toy_prefix.ipynb")  # found in SOLUTIONS by its name
    assert grade_main([tmp_path / "toy_prefix.ipynb"], None, 0.5, SOLUTIONS) == 0
    assert "7 / 7 points" in capsys.readouterr().out
    # ...but the q4 test cell deleted: scored 0 and flagged, so the other 4 points are withheld
    learner.cells = [c for c in learner.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "q4_prefix_bytes"]
    nbformat.write(learner, tmp_path / "toy_prefix.ipynb")
    assert grade_main([tmp_path / "toy_prefix.ipynb"], None, 0.5, SOLUTIONS) == 1
    out = capsys.readouterr().out
    assert "0 / 7 points" in out and "| `q4_prefix_bytes` | 0 / 3 | ❓ missing |" in out
    assert "graded test cell q4\\_prefix\\_bytes was deleted" in out and "the checks gave 4 points" in out
    assert grade_main([tmp_path / "nope.ipynb"], None, None, SOLUTIONS) == 2
    assert "no notebook at" in capsys.readouterr().err


def test_without_solution_a_stubborn_loop_and_a_dead_kernel_are_survived(tmp_path, monkeypatch):
    monkeypatch.delenv("TUTORLIB_MODE", raising=False)  # the grader must set it for the kernel itself

    def test(gid, source):
        return new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False,
                                                            "grade_id": gid, "points": 1}})
    nb = new_notebook(cells=[
        new_code_cell("import os, sys\nx = 1"),
        test("q_env", f"assert sys.executable == {sys.executable!r}\nassert os.environ['TUTORLIB_MODE'] == 'fast'\n"
                      f"assert os.getcwd() == {str(tmp_path.resolve())!r}"),
        new_code_cell("import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
                      "    except BaseException:\n        pass  # ignores the interrupt"),
        test("q_state_lost", "assert x == 1"),
        new_code_cell("import os\nos._exit(1)"),
        new_code_cell("y = 2"),
        test("q_after_restart", "assert y == 2"),
    ])
    nbformat.write(nb, tmp_path / "own_tests.ipynb")
    report = grade_notebooks([tmp_path / "own_tests.ipynb"], solutions_dir=tmp_path / "none", cell_timeout=3)
    (result,) = report.notebooks
    status = {q.grade_id: (q.points, q.status) for q in result.questions}
    # after each restart the cells that ran before are run again (not the one that failed): state comes back
    assert status == {"q_env": (1, "passed"), "q_state_lost": (1, "passed"), "q_after_restart": (1, "passed")}
    notes = " ".join(result.notes)
    assert result.solution is None and "No solution notebook" in notes
    assert "Cell 3: the notebook's process ran past its time limit" in notes
    assert "Cell 5: the notebook's process ended" in notes
    print(f"\nown_tests.ipynb: {result.seconds:.1f} s in all, kernel start {result.kernel_start_s:.1f} s")
    assert os.environ.get("TUTORLIB_MODE") is None


def test_ci_workflow_installs_cpu_torch_first_then_grades_and_publishes():
    import yaml  # present with jupyterlab (jupyter-events depends on it)

    workflow = yaml.safe_load((Path(__file__).parents[1] / ".github/workflows/grade-exercises.yml").read_text())
    steps = workflow["jobs"]["grade"]["steps"]
    script = "\n".join(step.get("run", "") for step in steps)
    cpu_torch = script.index("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu")
    assert cpu_torch < script.index("pip install -e .") < script.index("tutorlib download --all --prepare")
    assert "tutorlib grade exercises/*.ipynb --feedback --out grades" in script  # visible checks only
    assert "grade is computed by the teacher" in "\n".join(step.get("name", "") for step in steps)
    assert 'cat grades/grades.md >> "$GITHUB_STEP_SUMMARY"' in script
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload and "grades/grades.json" in upload[0]["with"]["path"] and upload[0]["if"] == "always()"


def test_numeric_checks_refuse_numbers_of_another_kind():
    """A complex number with the right real part, or True for 1: astype(float) would drop what makes them
    wrong (with a warning at most)."""
    import numpy as np

    from tutorlib.course.checks import AnswerError, check_close, check_finite, check_tensor

    for check, args in [(check_close, ("x", np.complex128(0.25 + 1000j), 0.25)),
                        (check_close, ("x", np.array([[True]]), 1.0)),
                        (check_tensor, ("t", np.array([1 + 1j]), None, np.array([1.0]))),
                        (check_finite, ("f", np.complex128(complex(1, float("inf")))))]:
        with pytest.raises(AnswerError):
            check(*args)
    from tutorlib.course.checks import check_equal

    for got, expected in [([48], np.int64(48)), (((48,),), np.int64(48)), (np.float64(48), [48]),
                          ({"a": [3]}, {"a": np.int64(3)}), (True, 1), ([True, False], np.array([1, 0]))]:
        with pytest.raises(AnswerError):  # numpy's element-wise == is never taken for an answer
            check_equal("x", got, expected)
    for got, expected in [(0.25, np.full(4, 0.25)), (7.0, np.array([]))]:
        with pytest.raises(AnswerError):  # a number is no vector, and nothing is equal to an empty array
            check_close("x", got, expected)
    check_equal("x", [np.int64(1), 2.0], [1, 2])  # numpy numbers and Python numbers alike
    check_equal("x", {"a": (1, "b")}, {"a": (1, "b")})
    check_close("x", np.array([0.5]), 0.5)  # one number, as a 0-d or 1-element array
    check_close("x", np.int64(3), 3.0)
    check_close("c", 1 + 2j, 1 + 2j)  # complex where complex is asked for
    check_tensor("t", np.ones(2, dtype=np.float32), (2,), np.ones(2))


def test_a_notebook_cannot_make_the_gradebook_store_unbounded_flags():
    import time

    from tutorlib.course.tamper import reaches_for_the_grader
    from tutorlib.course.verdict import MAX_FLAGS, bounded_flags

    started = time.perf_counter()
    found = reaches_for_the_grader("gc\n" * 50_000)
    assert len(found) == 50_000 and time.perf_counter() - started < 10  # linear, not quadratic
    kept = bounded_flags(found + found)
    assert len(kept) == MAX_FLAGS + 1 and "49950 more flags" in kept[-1]
