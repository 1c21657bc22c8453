"""Exercises built from solutions: stubs, hidden tests, determinism, the sync check, safety."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tutorlib.cli import build_main
from tutorlib.course.builder import (
    CourseError,
    build_exercises,
    check_exercises_in_sync,
    make_exercise,
    read_notebook,
    split_test_parts,
)
from tutorlib.course.release import find_leaks, hidden_code, release
from tutorlib.course.tamper import cell_sha256, reaches_for_the_grader

FIXTURES = Path(__file__).parent / "notebooks"


def answer(source, gid="q1_answer", cell=new_code_cell):
    return cell(source, metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": gid,
                                               "locked": False, "schema_version": 3}})


def graded(source, gid="q1_test", points=2):
    return new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": gid,
                                                        "points": points, "locked": True, "schema_version": 3}})


def write_solution(folder: Path, name="lesson.ipynb", cells=None) -> Path:
    nb = new_notebook(cells=cells or [
        answer("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        graded("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(5) == 10\n### END HIDDEN TESTS"),
    ])
    for i, c in enumerate(nb.cells):
        c.id = f"c{i}"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder / name


def test_solution_region_becomes_stub_at_its_indentation():
    nb = new_notebook(cells=[answer("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                                    "    ### END SOLUTION\nprint('after')")])
    ex = make_exercise(nb)
    assert ex.cells[0].source == ("def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
                                  "print('after')")
    assert "return 2 * x" in nb.cells[0].source  # the solution notebook itself is untouched


def test_answer_cells_without_markers_and_markdown_answers_get_stubs():
    nb = new_notebook(cells=[answer("x = 42", gid="a"),
                             answer("Because ### not a marker", gid="b", cell=new_markdown_cell),
                             answer("Intro\n### BEGIN SOLUTION\nThe prefix is tiny.\n### END SOLUTION",
                                    gid="c", cell=new_markdown_cell)])
    ex = make_exercise(nb)
    assert ex.cells[0].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert ex.cells[1].source == "YOUR ANSWER HERE"
    assert ex.cells[2].source == "Intro\nYOUR ANSWER HERE"


def test_hidden_tests_removed_outputs_cleared_metadata_kept():
    test = graded("check(1)\n### BEGIN HIDDEN TESTS\ncheck(2)\n### END HIDDEN TESTS\ncheck(3)")
    test.outputs = [nbformat.v4.new_output("stream", text="hello")]
    test.execution_count = 7
    test.metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    ex = make_exercise(new_notebook(cells=[test]))
    cell = ex.cells[0]
    assert cell.source == "check(1)\ncheck(3)"
    assert cell.outputs == [] and cell.execution_count is None
    assert "execution" not in cell.metadata
    assert cell.metadata["nbgrader"]["grade_id"] == "q1_test" and cell.metadata["nbgrader"]["points"] == 2


@pytest.mark.parametrize("cells, words", [
    ([answer("### BEGIN SOLUTION\nx = 1")], "never closed"),
    ([answer("x = 1\n### END SOLUTION")], "without its BEGIN"),
    ([new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")], "not an answer cell"),
    ([answer("x = 1", gid="q"), new_code_cell("### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS")],
     "hidden tests outside a graded test cell"),
    ([new_code_cell("y = 2  ### BEGIN SOLUTION")], "not on a line of its own"),
    ([graded("pass", gid="same"), graded("pass", gid="same")], "used twice"),
    ([graded("pass", points=None)], "needs a number 'points'"),
    ([graded("### PART 1 point: a\npass\n### PART 2 points: b\npass", points=2)], "add up to 3 points"),
    ([graded("check(1)\n### BEGIN HIDDEN TESTS\n### PART 1 point: a\npass\n### END HIDDEN TESTS", points=2)],
     "hidden tests add up to 1 points"),
    ([graded("### PART 1 point: a\ncheck(1)\n### BEGIN HIDDEN TESTS\n### PART 1 point: a\npass\n### PART 1 point: b\n"
             "pass\n### END HIDDEN TESTS", points=2)], "visible checks add up to 1 points"),
])
def test_broken_solutions_raise_clear_errors(cells, words):
    with pytest.raises(CourseError, match=words) as info:
        make_exercise(new_notebook(cells=cells), name="solutions/x.ipynb")
    assert "solutions/x.ipynb, cell" in str(info.value)  # says where


def test_hidden_and_visible_parts_are_counted_each_on_their_own():
    # The hidden tests' parts give the grade, the visible checks' parts a learner's feedback run: each
    # adds up to the cell's points by itself; visible checks without parts are one part.
    both = graded("### PART 1 point: a\ncheck(1)\n### PART 1 point: b\ncheck(2)\n### BEGIN HIDDEN TESTS\n"
                  "### PART 1.5 points: a\ncheck(3)\n### PART 0.5 points: b\ncheck(4)\n### END HIDDEN TESTS")
    hidden_only = graded("check(1)\n### BEGIN HIDDEN TESTS\n### PART 1 point: a\npass\n### PART 1 point: b\npass\n"
                         "### END HIDDEN TESTS", gid="q2_test")
    ex = make_exercise(new_notebook(cells=[both, hidden_only]))
    assert ex.cells[0].source == "### PART 1 point: a\ncheck(1)\n### PART 1 point: b\ncheck(2)"
    assert ex.cells[1].source == "check(1)"


def test_committed_fixture_exercises_are_in_sync():
    # The same one-line check the course repository runs for solutions/ and exercises/.
    assert check_exercises_in_sync(FIXTURES / "solutions", FIXTURES / "exercises") == []


def test_build_is_deterministic_and_atomic(tmp_path):
    sols = FIXTURES / "solutions"
    first = build_exercises(sols, tmp_path / "a")
    second = build_exercises(sols, tmp_path / "b")
    assert [p.name for p in first] == ["toy_prefix.ipynb"]
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[0].read_bytes() == (FIXTURES / "exercises" / "toy_prefix.ipynb").read_bytes()
    mtime = first[0].stat().st_mtime_ns
    build_exercises(sols, tmp_path / "a")  # nothing changed: the file is not rewritten
    assert first[0].stat().st_mtime_ns == mtime
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["toy_prefix.ipynb"]  # no temp files left
    text = first[0].read_text()
    assert "BEGIN SOLUTION" not in text and "HIDDEN" not in text and "184320" not in text


def test_sync_check_detects_stale_missing_and_orphan_exercises(tmp_path):
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    write_solution(sols, "a.ipynb")
    write_solution(sols / "week2", "b.ipynb")
    build_exercises(sols, exs)
    assert check_exercises_in_sync(sols, exs) == []
    assert (exs / "week2" / "b.ipynb").is_file()  # the folder layout is mirrored

    changed = nbformat.read(sols / "a.ipynb", 4)
    changed.cells[1].source = changed.cells[1].source.replace("f(1) == 2", "f(2) == 4")
    nbformat.write(changed, sols / "a.ipynb")
    (exs / "week2" / "b.ipynb").unlink()
    write_solution(exs, "orphan.ipynb")
    stale = check_exercises_in_sync(sols, exs)
    assert sorted(stale) == sorted(str(exs / n) for n in ["a.ipynb", "week2/b.ipynb", "orphan.ipynb"])
    assert build_main(sols, exs, check=True) == 1

    (exs / "orphan.ipynb").unlink()
    assert build_main(sols, exs, check=False) == 0
    assert check_exercises_in_sync(sols, exs) == [] and build_main(sols, exs, check=True) == 0


def test_build_never_overwrites_a_learners_edits_unless_forced(tmp_path):
    sols, exs = tmp_path / "solutions", tmp_path / "exercises"
    write_solution(sols)
    build_exercises(sols, exs)
    work = nbformat.read(exs / "lesson.ipynb", 4)
    work.cells[0].source = "def f(x):\n    return x + x  # my answer"
    nbformat.write(work, exs / "lesson.ipynb")
    with pytest.raises(CourseError, match="edited after they were built"):
        build_exercises(sols, exs)
    assert "my answer" in (exs / "lesson.ipynb").read_text()
    assert build_main(sols, exs, check=False) == 2
    build_exercises(sols, exs, force=True)
    assert "my answer" not in (exs / "lesson.ipynb").read_text()


def test_missing_solutions_folder_is_a_clear_error(tmp_path, capsys):
    assert build_main(tmp_path / "nope", tmp_path / "ex", check=False) == 2
    assert "No solutions folder" in capsys.readouterr().err


def test_parts_split_a_test_cell_and_keep_shared_code():
    shared, parts = split_test_parts("x = 1\n### PART 1 point: first\nassert x\n"
                                     "### PART 2 points: second\nassert x == 1", 3)
    assert shared == "x = 1" and parts == [("first", 1.0, "assert x"), ("second", 2.0, "assert x == 1")]
    assert split_test_parts("assert True", 2) == ("", [("", 2.0, "assert True")])


def test_exercises_carry_a_checksum_of_every_given_cell(tmp_path):
    build_exercises(FIXTURES / "solutions", tmp_path)
    nb = read_notebook(tmp_path / "toy_prefix.ipynb")
    given = nb.metadata["tutorlib"]["given_sha256"]
    answer_ids = {c.id for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    assert set(given) == {c.id for c in nb.cells} - answer_ids and len(answer_ids) == 4
    assert all(given[c.id] == cell_sha256(c.source) for c in nb.cells if c.id in given)
    assert cell_sha256("x = 1  \n\n") == cell_sha256("x = 1") != cell_sha256("x = 2")


@pytest.mark.parametrize("source, found", [
    ("get_ipython().input_transformers_cleanup.append(lambda lines: [])", "input transformers"),
    ("import tutorlib.course.checks as c\nc.check_equal = print", "import tutorlib.course.checks"),
    ("import builtins\nbuiltins.len = lambda x: 3", "the builtins module"),
    ("f.__code__ = g.__code__", "code object"),
    ("import os\nos._exit(0)", "exiting the process"),
    ("exec('x = 1')", "exec(...)"),
])
def test_answer_code_that_reaches_for_the_grader_is_named(source, found):
    hits = reaches_for_the_grader(source)
    assert hits and found in " ".join(hits) and hits[0].startswith("line ")


def test_ordinary_answer_code_is_not_flagged():
    assert reaches_for_the_grader("import math\nimport inspect\n"
                                  "def f(x):\n    return math.sqrt(x) + len(inspect.getsource(f))") == []
    assert reaches_for_the_grader("def broken(:") == []  # a syntax error fails on its own


def test_the_learners_copy_holds_no_solution_and_no_hidden_test(tmp_path):
    repo = Path(__file__).parents[1]
    out = tmp_path / "release"
    files = release(out, repo=repo)
    names = {p.relative_to(out).as_posix() for p in files}
    assert "exercises/01_parameters.ipynb" in names and "tutorlib/course/checks.py" in names
    assert not any(n.startswith(("solutions/", "tests/")) for n in names)
    # grep the copy: no marker in any notebook, no three lines of any hidden test in any file
    secret = hidden_code(repo / "solutions", repo / "notebooks")
    assert len(secret) > 50
    for path in out.rglob("*.ipynb"):
        text = "\n".join(c.source for c in read_notebook(path).cells)
        assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, path
    assert find_leaks(out, repo / "solutions", repo / "notebooks") == []
    # ...and the check does find a leak: a solution copied in by mistake stops the release
    (tmp_path / "leaky").mkdir()
    (tmp_path / "leaky" / "a.ipynb").write_bytes((repo / "solutions" / "05_ambiguity.ipynb").read_bytes())
    assert any("marker" in leak for leak in find_leaks(tmp_path / "leaky", repo / "solutions"))
    (tmp_path / "leaky" / "a.ipynb").unlink()
    (tmp_path / "leaky" / "notes.py").write_text(
        "\n".join(sorted(secret)[0]) + "\n")  # three lines of hidden-test code pasted into a file
    assert find_leaks(tmp_path / "leaky", repo / "solutions")
    with pytest.raises(CourseError, match="not empty"):
        release(out, repo=repo)
