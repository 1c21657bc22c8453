"""The red team: a learner who wants marks without answering. Every exploit below must score zero
where it cheats or be flagged for review (points withheld), never full marks; an honest solution
still scores full marks. Each exploit is a learner notebook made from a solution (all answers right)
by replacing cells; the toy assignment in tests/notebooks/ is graded once for all of them."""

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from tutorlib.course.autograde import grade_notebooks
from tutorlib.course.gradebook import grade_class

FIXTURES = Path(__file__).parent / "notebooks"
TOY_SOLUTIONS = FIXTURES / "solutions"
TOY = TOY_SOLUTIONS / "toy_prefix.ipynb"
REPO = Path(__file__).parents[1]

WRONG = {  # wrong answers for every toy question: an exploit must not turn them into points
    "q1_answer": "def prefix_params(n_layers, prefix_len, d_model):\n    return 0",
    "q2_answer": "def trained_fraction(trainable, total):\n    return 0",
    "q3_answer": "def mean_loss(losses):\n    return 0",
    "q4_answer": "def prefix_bytes(n_params):\n    return 0",
}

# name -> (cells to replace: grade_id or cell id -> source, or a function editing the notebook)
TOY_EXPLOITS = {
    "input transformer empties every later cell": {
        "q1_answer": "get_ipython().input_transformers_cleanup.append(lambda lines: [])\n" + WRONG["q1_answer"]},
    "check helpers rebound, names and module attributes": {
        "q1_answer": "check_equal = check_close = lambda *a, **k: None\n"
                     "import tutorlib, tutorlib.course.checks as checks\n"
                     "checks.check_equal = checks.check_close = tutorlib.check_equal = lambda *a, **k: None\n"
                     + WRONG["q1_answer"]},
    "an answer that equals anything": {
        "q1_answer": "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
                     "    def __float__(self):\n        return 0.25\n"
                     "def prefix_params(*args):\n    return Anything()",
        "q4_answer": "def prefix_bytes(n_params):\n    return Anything()"},
    "builtins patched": {
        "q1_answer": "import builtins\nbuiltins.bool = lambda x: True\nbuiltins.max = lambda *a, **k: 0\n"
                     + WRONG["q1_answer"]},
    "numpy patched without a suspicious name": {
        "q1_answer": "import numpy as np\nnp.array_equal = np.allclose = lambda *a, **k: True\n" + WRONG["q1_answer"]},
    "a check's code swapped in place": {
        "q1_answer": "check_equal.__code__ = (lambda *a, **k: None).__code__\n" + WRONG["q1_answer"]},
    "the process exits": {"q1_answer": "import os\nos._exit(0)", "q2_answer": "raise SystemExit(0)"},
    "the kit's files edited on disk": {
        "q1_answer": "import pathlib, tutorlib\npath = pathlib.Path(tutorlib.__file__).parent / 'course' / 'checks.py'\n"
                     "path.chmod(0o644)\npath.write_text(path.read_text() + '\\ncheck_equal = lambda *a, **k: None\\n')\n"
                     + WRONG["q1_answer"]},
    "a given cell edited to rebind the checks": {
        "cell-01": "from tutorlib import check_close, check_equal\ncheck_equal = check_close = lambda *a, **k: None"},
    "a test cell emptied": {"q1_prefix_params": "pass", **{"q1_answer": WRONG["q1_answer"]}},
    "a thread that keeps patching numpy": {
        "q1_answer": "import threading, numpy\ndef keep_patching():\n    while True:\n"
                     "        numpy.array_equal = lambda *a, **k: True\n"
                     "threading.Thread(target=keep_patching, daemon=True).start()\n" + WRONG["q1_answer"]},
    "fake results written to the grader's channel": {
        "q1_answer": "import os, json\nfor fd in range(3, 30):\n    try:\n"
                     "        os.write(fd, (json.dumps({'step': 1, 'event': 'end', 'status': 'ok', 'token': 'guess'}) + '\\n').encode())\n"
                     "    except OSError:\n        pass\n" + WRONG["q1_answer"]},
}


def _learner_copy(solution: Path, replace: dict, out: Path, wrong: dict | None = None) -> Path:
    nb = nbformat.read(solution, 4)
    changes = {**(wrong or {}), **replace}
    for cell in nb.cells:
        key = cell.metadata.get("nbgrader", {}).get("grade_id")
        if key in changes or cell.get("id") in changes:
            cell.source = changes.get(key, changes.get(cell.get("id")))
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / solution.name)
    return out / solution.name


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Grade the honest toy solution and every toy exploit once: name -> NotebookResult."""
    tmp = tmp_path_factory.mktemp("redteam")
    checks_before = (REPO / "tutorlib/course/checks.py").read_bytes()
    names = ["honest", *TOY_EXPLOITS]
    paths = [_learner_copy(TOY, {}, tmp / "honest")]
    for i, replace in enumerate(TOY_EXPLOITS.values()):
        paths.append(_learner_copy(TOY, replace, tmp / f"exploit{i}", wrong=WRONG))
    report = grade_notebooks(paths, solutions_dir=TOY_SOLUTIONS, cell_timeout=20)
    assert (REPO / "tutorlib/course/checks.py").read_bytes() == checks_before  # the kit itself is untouched
    return dict(zip(names, report.notebooks))


def test_an_honest_solution_scores_full_marks_unflagged(toy):
    honest = toy["honest"]
    assert honest.points == honest.max_points == 7 and honest.flags == []


@pytest.mark.parametrize("name", list(TOY_EXPLOITS))
def test_every_toy_exploit_scores_zero_or_is_flagged(toy, name):
    result = toy[name]
    print(f"{name}: scored {result.scored:g} / {result.max_points:g}; flags: {result.flags}")
    assert result.points < result.max_points  # never full marks
    assert result.scored == 0 or result.withheld  # nothing it cheated for counts without a teacher
    if name != "an answer that equals anything":  # an object answer is not tampering: it simply fails
        assert result.withheld and result.points == 0


def test_flags_name_the_cell_and_what_was_touched(toy):
    flags = {name: " ".join(toy[name].flags) for name in TOY_EXPLOITS}
    assert "get_ipython" in flags["input transformer empties every later cell"]
    assert "tutorlib.course.checks.check_equal was changed" in flags["check helpers rebound, names and module attributes"]
    assert "numpy.array_equal was changed" in flags["numpy patched without a suspicious name"]
    assert "builtins.bool was changed" in flags["builtins patched"]
    assert "kit's files were changed on disk" in flags["the kit's files edited on disk"]
    assert "cell 2: a given cell was edited" in flags["a given cell edited to rebind the checks"]
    assert "threading" in flags["a thread that keeps patching numpy"]
    assert "result channel" in flags["fake results written to the grader's channel"]
    anything = {q.grade_id: q for q in toy["an answer that equals anything"].questions}
    assert anything["q1_prefix_params"].points == 0 and "a value of type Anything" in anything["q1_prefix_params"].message


def test_hidden_tests_still_run_when_the_learner_empties_a_test_cell(toy):
    q1 = {q.grade_id: q for q in toy["a test cell emptied"].questions}["q1_prefix_params"]
    assert q1.points == 0 and "prefix_params(2, 3, 4) is not right yet" in q1.message


# --- the six real assignments: the exploits found in them ------------------------------------

SOLUTIONS = REPO / "solutions"
REAL_EXPLOITS = {  # name -> (notebook, cells to replace, questions that must score 0)
    "Ex01 Q1: an alias of the kit's formula": ("01_parameters.ipynb", {
        "q1_answer": "_formula = prefix_parameter_formula\n\ndef prefix_parameters(config, prefix_length):\n"
                     "    return _formula(config, prefix_length)"}, ["q1_tests"]),
    "Ex02 Q1/Q3: wrapping the reference attention": ("02_attention_with_prefix.ipynb", {
        "q1_answer": "from tutorlib import reference_attention_with_prefix as ref\n\n"
                     "def attention_with_prefix(q, k, v, prefix_k, prefix_v, mask=None, causal=False):\n"
                     "    return ref(q, k, v, prefix_k, prefix_v, mask=mask, causal=causal)",
        "q3_answer": "def fully_hidden_prefix(q, k, v, mask=None, causal=False):\n"
                     "    empty = k.new_zeros(1, k.shape[1], 0, k.shape[3])\n"
                     "    return ref(q, k, v, empty, empty, mask=mask, causal=causal)"},
     ["q1_tests", "q1_real_layers", "q3_tests"]),
    "Ex03 Q3: invented timings": ("03_freezing_and_training.ipynb", {
        "q3_answer": None}, []),  # filled in below: the solution's function, invented numbers
    "Ex05: the kit's wilson_interval and mcnemar": ("05_ambiguity.ipynb", {
        "q3_answer": "from tutorlib.tasks.metrics import wilson_interval as wilson",
        "q4_answer": None}, ["q3_wilson", "q4_mcnemar"]),
    "Ex06 Q2-Q4: rouge_score's LCS, the kit's recommend and break-even": ("06_rouge_and_recommendation.ipynb", {
        "q2_answer": "from rouge_score.rouge_scorer import _lcs_table\n\ndef lcs_length(a, b):\n"
                     "    return _lcs_table(a, b)[-1][-1]\n\ndef rougeL_f1(pred_tokens, ref_tokens):\n"
                     "    common = lcs_length(pred_tokens, ref_tokens)\n    if common == 0:\n        return 0.0\n"
                     "    p, r = common / len(pred_tokens), common / len(ref_tokens)\n    return 2 * p * r / (p + r)",
        "q3_answer": "from tutorlib import Budget, recommend\n\ndef recommend_method(rows, budget):\n"
                     "    choice = recommend(rows, Budget(**budget, quality_metric='rougeL'))\n"
                     "    return choice.method, 'the kit decided this for me'",
        "q4_answer": "from tutorlib import break_even_customers as customers_until_prefix_saves"},
     ["q2_rougeL", "q3_recommend", "q4_break_even"]),
    "Ex06 Q3: any twenty characters as the reason": ("06_rouge_and_recommendation.ipynb", {
        "q3_answer": None}, []),
}


def _solution_source(notebook: str, grade_id: str) -> str:
    nb = nbformat.read(SOLUTIONS / notebook, 4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    return cell.source


def _fill_in():
    """The exploits that keep most of the solution and change a few lines."""
    ex03 = _solution_source("03_freezing_and_training.ipynb", "q3_answer")
    REAL_EXPLOITS["Ex03 Q3: invented timings"][1]["q3_answer"] = ex03.replace(
        "full_seconds = step_seconds(prepare_full_finetuning(small_bert()), batch, steps=STEPS)",
        "full_seconds = [0.0010, 0.0011] * (STEPS // 2)").replace(
        "prefix_seconds = step_seconds(attach_prefix(small_bert(), prefix_length=10), batch, steps=STEPS)",
        "prefix_seconds = [0.0006, 0.0007] * (STEPS // 2)")
    # Invented timings with a plausible ratio (0.62) but faster than any real step: a busy machine only makes
    # the grader's own timing slower, so the check stays decisive however loaded the machine is.
    REAL_EXPLOITS["Ex05: the kit's wilson_interval and mcnemar"][1]["q4_answer"] = _solution_source(
        "05_ambiguity.ipynb", "q4_answer") + "\nfrom tutorlib import mcnemar as mcnemar_exact"
    REAL_EXPLOITS["Ex06 Q3: any twenty characters as the reason"][1]["q3_answer"] = _solution_source(
        "06_rouge_and_recommendation.ipynb", "q3_answer") + (
        "\n_right_method = recommend_method\n\ndef recommend_method(rows, budget):\n"
        "    return _right_method(rows, budget)[0], 'twenty characters, any'")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Grade the six honest solutions and every real exploit once (a few minutes on a laptop CPU)."""
    _fill_in()
    tmp = tmp_path_factory.mktemp("redteam-real")
    honest = sorted(SOLUTIONS.glob("*.ipynb"))
    paths = [_learner_copy(p, {}, tmp / "honest") for p in honest]
    for i, (notebook, replace, _) in enumerate(REAL_EXPLOITS.values()):
        paths.append(_learner_copy(SOLUTIONS / notebook, replace, tmp / f"exploit{i}"))
    report = grade_notebooks(paths, solutions_dir=SOLUTIONS, cell_timeout=300)
    return report.notebooks[:len(honest)], dict(zip(REAL_EXPLOITS, report.notebooks[len(honest):]))


@pytest.mark.real
def test_the_six_solutions_score_full_marks_unflagged(real):
    honest, _ = real
    for result in honest:
        assert (result.points, result.flags) == (result.max_points, []), (result.path, result.flags, [
            (q.grade_id, q.message) for q in result.questions if q.points < q.max_points])
    assert sum(r.max_points for r in honest) == 46


@pytest.mark.real
@pytest.mark.parametrize("name", list(REAL_EXPLOITS))
def test_every_real_exploit_scores_zero_where_it_cheats(real, name):
    _, exploits = real
    result, (_, _, zero) = exploits[name], REAL_EXPLOITS[name]
    by_id = {q.grade_id: q for q in result.questions}
    print(f"{name}: {[(q.grade_id, q.points, q.max_points) for q in result.questions]}; flags {result.flags}")
    assert result.points < result.max_points
    for gid in zero:
        assert by_id[gid].points == 0, (gid, by_id[gid].message)
    if zero:
        assert result.withheld  # calling the kit's own answer is flagged for the teacher too


@pytest.mark.real
def test_invented_timings_and_an_empty_reason_lose_their_points(real):
    _, exploits = real
    timing = {q.grade_id: q for q in exploits["Ex03 Q3: invented timings"].questions}["q3_tests"]
    assert timing.points == 1 and [p["points"] for p in timing.parts] == [1, 0]
    assert "near the grader's own" in timing.message
    reason = {q.grade_id: q for q in exploits["Ex06 Q3: any twenty characters as the reason"].questions}["q3_recommend"]
    assert reason.points == 1 and [p["label"] for p in reason.parts if p["points"] == 0] == ["the reason"]


# --- a class folder ----------------------------------------------------------------------------

def test_a_class_folder_gives_a_gradebook_and_names_the_broken_file(tmp_path):
    subs = tmp_path / "submissions"
    _learner_copy(TOY, {}, subs / "ada")                               # perfect
    (subs / "bob").mkdir()
    shutil.copy(FIXTURES / "exercises" / "toy_prefix.ipynb", subs / "bob")  # the exercise, unanswered
    (subs / "cy").mkdir()
    (subs / "cy" / "toy_prefix.ipynb").write_text('{"cells": [ broken')  # corrupted
    (subs / "cy" / "notes.pdf").write_bytes(b"%PDF-1.4")
    (subs / "dee").mkdir()                                              # nothing handed in
    (subs / "eve").mkdir()
    (subs / "eve" / "toy_prefix.ipynb").write_bytes(b"")                # empty file
    roster = tmp_path / "roster.csv"
    roster.write_text("folder,learner\nada,Ada L.\nbob,Bob\ncy,Cy\ndee,Dee\neve,Eve\nfay,Fay\n")
    learners = grade_class(subs, TOY_SOLUTIONS, tmp_path / "out", roster=roster, cell_timeout=20)
    assert len(learners) == 6
    rows = {r.split(",")[0]: r.split(",") for r in (tmp_path / "out" / "gradebook.csv").read_text().splitlines()}
    header = rows.pop("learner")
    col = {name: header.index(name) for name in ["total", "max", "missing notebooks", "problems",
                                                 "toy_prefix:q4_prefix_bytes"]}
    assert [rows["Ada L."][col["total"]], rows["Bob"][col["total"]], rows["Cy"][col["total"]]] == ["7", "0", "0"]
    assert rows["Ada L."][col["max"]] == "7" and rows["Ada L."][col["toy_prefix:q4_prefix_bytes"]] == "3"
    assert rows["Dee"][col["missing notebooks"]] == "toy_prefix.ipynb"
    assert rows["Fay"][col["missing notebooks"]] == "toy_prefix.ipynb"  # on the roster, no folder
    report = (tmp_path / "out" / "report.md").read_text()
    assert "toy_prefix.ipynb is not a readable notebook" in report and "notes.pdf is not a notebook" in report
    assert "toy_prefix.ipynb is empty (0 bytes)" in report
    feedback = (tmp_path / "out" / "feedback" / "Ada_L..md").read_text()
    assert "# Grades: Ada L." in feedback and "7 / 7 points" in feedback
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert data["Bob"]["points"] == 0 and data["Ada L."]["points"] == 7


def test_a_teacher_override_releases_withheld_points(tmp_path):
    subs = tmp_path / "submissions"
    nb = _learner_copy(TOY, {}, subs / "ada")
    text = json.loads(nb.read_text())
    text["cells"][0]["source"] = "# My notes on the toy exercise"  # an edited instruction: flagged
    nb.write_text(json.dumps(text))
    out = tmp_path / "out"
    (learner,) = grade_class(subs, TOY_SOLUTIONS, out, cell_timeout=20)
    assert learner.report.points == 0 and learner.report.notebooks[0].scored == 7
    assert "a given cell was edited" in (out / "gradebook.csv").read_text()
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("learner,notebook,decision,note\nada,toy_prefix.ipynb,accept,only notes in the title\n")
    (learner,) = grade_class(subs, TOY_SOLUTIONS, out, overrides=overrides, cell_timeout=20)
    assert learner.report.points == 7 and "(accepted)" in (out / "gradebook.csv").read_text()


def test_every_kit_helper_an_answer_may_not_call_exists():
    """`not_in_answers` names modules (and module:function); one that no longer exists (a module moved)
    would guard nothing, silently. Each must import, and each function must be there."""
    import importlib
    import json
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].joinpath("solutions").glob("*.ipynb")):
        for entry in json.loads(path.read_text())["metadata"].get("tutorlib", {}).get("not_in_answers", []):
            module_name, _, attr = entry.partition(":")
            module = importlib.import_module(module_name)  # ImportError: the entry names a module that moved
            assert not attr or callable(getattr(module, attr, None)), f"{path.name}: {entry} is not a function"
