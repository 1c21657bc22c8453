"""The real assignments against the sandboxed grader: the honest solutions score full marks
unflagged, the released exercises score 0, and each exploit found in them scores 0 where it cheats.
The notebooks are graded once, two at a time, by the real class grader."""

import shutil
from pathlib import Path

import nbformat
import pytest
from learner_copies import learner_copy as _learner_copy

from tutorlib.course.gradebook import grade_class

REPO = Path(__file__).parents[1]
# One class is graded once for the whole file (module fixture): on a busy 2-core machine that takes minutes.
pytestmark = pytest.mark.timeout(2400)


# --- the real assignments: the exploits found in them ------------------------------------

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
    "Ex06 Q3: one sentence naming every method and limit": ("06_rouge_and_recommendation.ipynb", {
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
    REAL_EXPLOITS["Ex06 Q3: one sentence naming every method and limit"][1]["q3_answer"] = _solution_source(
        "06_rouge_and_recommendation.ipynb", "q3_answer") + (
        "\n_right_method = recommend_method\n\ndef recommend_method(rows, budget):\n"
        "    return _right_method(rows, budget)[0], 'full and prefix compared on rouge quality, step time and memory'")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Grade every honest solution, every exercise and every real exploit once, as one class
    of three learners (honest, exercises, exploits), two notebooks at a time."""
    _fill_in()
    tmp = tmp_path_factory.mktemp("redteam-real")
    subs = tmp / "subs"
    honest = sorted(SOLUTIONS.glob("*.ipynb"))
    for path in honest:
        _learner_copy(path, {}, subs / "honest")
        (subs / "exercises").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "exercises" / path.name, subs / "exercises")
    for i, (notebook, replace, _) in enumerate(REAL_EXPLOITS.values()):
        _learner_copy(SOLUTIONS / notebook, replace, subs / f"exploit{i}")
    learners = {e.folder: e for e in grade_class(subs, SOLUTIONS, tmp / "out", cell_timeout=300, jobs=2)}
    exploits = {name: next(nb for nb in learners[f"exploit{i}"].report.notebooks if nb.path == REAL_EXPLOITS[name][0])
                for i, name in enumerate(REAL_EXPLOITS)}
    return learners["honest"].report.notebooks, exploits, learners["exercises"]


@pytest.mark.real
def test_every_solution_scores_full_marks_unflagged(real):
    honest, _, _ = real
    for result in honest:
        assert (result.points, result.flags) == (result.max_points, []), (result.path, result.flags, [
            (q.grade_id, q.message) for q in result.questions if q.points < q.max_points])
    assert len(honest) == 7 and sum(r.max_points for r in honest) == 54  # 46 in 01-06, 8 in 07 (LoRA)


@pytest.mark.real
@pytest.mark.parametrize("name", list(REAL_EXPLOITS))
def test_every_real_exploit_scores_zero_where_it_cheats(real, name):
    _, exploits, _ = real
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
    _, exploits, _ = real
    timing = {q.grade_id: q for q in exploits["Ex03 Q3: invented timings"].questions}["q3_tests"]
    assert timing.points == 1 and [p["points"] for p in timing.parts] == [1, 0]
    assert "fit a fresh run of your step_seconds" in timing.message
    for name in ("Ex06 Q3: any twenty characters as the reason", "Ex06 Q3: one sentence naming every method and limit"):
        reason = {q.grade_id: q for q in exploits[name].questions}["q3_recommend"]
        assert reason.points == 1 and [p["label"] for p in reason.parts if p["points"] == 0] == ["the reason"], name


@pytest.mark.real
def test_the_released_exercises_score_zero_unflagged(real):
    _, _, exercises = real
    assert exercises.total == 0
    assert [nb.flags for nb in exercises.report.notebooks] == [[]] * 7


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
