"""A class whose files, folder names and roster are awkward or hostile, graded by the real `grade_class`.

Each case is a kind, not one trick: a folder name in another encoding or Unicode form, two folders that would
show as one learner, a folder swapped for a link while the class is being graded, a hard link, a notebook saved
in an older format or with a byte-order mark, a learner's metadata that claims a given cell is an answer, and
Markdown in what a learner writes. Nobody's grade may depend on any of it, and the class must go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import threading
import unicodedata
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock
from learner_copies import learner_copy

import tutorlib.course.gradebook as gradebook
from tutorlib.course.gradebook import grade_class, person_name, write_gradebook
from tutorlib.course.report import GradeReport, markdown_inert
from tutorlib.course.sandbox import SandboxUnavailable, check_sandbox

FIXTURES = Path(__file__).parent / "notebooks"
TOY = FIXTURES / "solutions" / "toy_prefix.ipynb"
WRONG = {"q1_answer": "def prefix_params(n_layers, prefix_len, d_model):\n    return 48",
         "q2_answer": "def trained_fraction(trainable, total):\n    return 0.25",
         "q3_answer": "def mean_loss(losses):\n    return 1.5",
         "q4_answer": "def prefix_bytes(n_params):\n    return 0"}
LATIN1 = os.fsdecode(b"Jos\xe9")  # a Windows archive's folder name: not UTF-8
NFD = unicodedata.normalize("NFD", "José")  # as a Mac stores it; the roster has it composed (NFC)


def _old_format(path: Path) -> None:
    """Save ``path`` as nbformat 4.4 would: no cell ids (Colab and older Jupyter)."""
    data = json.loads(path.read_text())
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    try:
        check_sandbox()
    except SandboxUnavailable as e:
        pytest.fail(f"the grader's sandbox is unavailable on this machine: {e}")
    tmp = tmp_path_factory.mktemp("class-files")
    solutions, subs, out = tmp / "solutions", tmp / "subs", tmp / "out"
    solutions.mkdir()
    shutil.copy(TOY, solutions)
    learner_copy(TOY, {}, subs / LATIN1)
    learner_copy(TOY, {}, subs / "s1")  # the roster's ada
    learner_copy(TOY, WRONG, subs / "ada")  # not on the roster, named like ada's id
    learner_copy(TOY, {}, subs / NFD)
    learner_copy(TOY, {}, subs / ".dotty")  # hidden, but on the roster
    learner_copy(TOY, {}, subs / ".git")  # hidden and not on the roster: skipped, and said so
    (subs / "hard-link").mkdir()
    os.link(solutions / "toy_prefix.ipynb", subs / "hard-link" / "toy_prefix.ipynb")
    bom = learner_copy(TOY, {}, subs / "bom")
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes())
    _old_format(learner_copy(TOY, {}, subs / "old-format"))
    relabel = learner_copy(TOY, WRONG, subs / "relabel")  # a given cell relabelled as the answer
    nb = nbformat.read(relabel, 4)
    given = next(c for c in nb.cells if c.cell_type == "code" and "nbgrader" not in c.metadata)
    given.metadata["nbgrader"] = {"grade": False, "grade_id": "q1_answer", "locked": False, "solution": True,
                                  "schema_version": 3}
    given.source = "def prefix_params(n_layers, prefix_len, d_model):\n    return 2 * n_layers * prefix_len * d_model"
    nbformat.write(nb, relabel)
    inject = learner_copy(TOY, WRONG, subs / "inject")  # Markdown in an error and in a cell posing as an answer
    nb = nbformat.read(inject, 4)
    posing = nbformat.v4.new_markdown_cell("![pixel](http://evil.invalid/track.png) [accepted 7/7](http://x.invalid)")
    posing.metadata["nbgrader"] = {"grade": False, "grade_id": "q1_answer", "solution": True, "schema_version": 3}
    nb.cells.insert(1, posing)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q2_answer")
    answer.source = "def trained_fraction(trainable, total):\n    raise ValueError('see ![x](http://evil.invalid/p.png)')"
    nbformat.write(nb, inject)
    learner_copy(TOY, WRONG, subs / "zed" / "work")  # swapped for a link to the solutions once grading has begun
    # Two students of one name on the roster, and a folder named like the id one of them is then given.
    learner_copy(TOY, {}, subs / "s123")
    learner_copy(TOY, {}, subs / "s456")
    impostor = "Wang Wei #" + hashlib.sha256(b"folder\0s123" + bytes([0])).hexdigest()[:6]
    learner_copy(TOY, WRONG, subs / impostor)
    learner_copy(TOY, {}, subs / "ok")
    (subs / "ok ").write_text("a file named like a classmate's folder")
    for i in range(30):  # a folder full of hidden folders: one problem line each would flood the gradebook
        (subs / "many-hidden" / f".h{i:03d}").mkdir(parents=True)
    learner_copy(TOY, {}, subs / "many-hidden")
    split = learner_copy(TOY, {}, subs / "split-answer")  # an answer cell split in two, as Jupyter splits it
    nb = nbformat.read(split, 4)
    at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_answer")
    second = nbformat.v4.new_code_cell("x_unused = 1", metadata=dict(nb.cells[at].metadata))
    nb.cells.insert(at + 1, second)
    nbformat.write(nb, split)
    roster = tmp / "roster.csv"
    roster.write_text("\ufefffolder,learner\ns1,ada\nJosé,jose.garcia\n.dotty,dot.learner\n"
                      "s123,Wang Wei\ns456,Wang Wei\n", encoding="utf-8")
    overrides = tmp / "overrides.csv"
    overrides.write_text("learner,notebook,decision,note\nada,toy_prefix.ipynb,accept,reviewed\n"
                         "jose.garcia,toy_prefix,5,regraded by hand\n"
                         f"{impostor},toy_prefix,7,meant for the student in folder s123\n"
                         "bom,toy_prefix,acept,a typo\n")
    real_grade_file, swapped, lock = gradebook.grade_file, [], threading.Lock()

    def swap_then_grade(*args, **kwargs):
        with lock:  # two learners at a time: swap once
            if not swapped:  # zed is graded last: by then its folder is a link to the teacher's solutions
                shutil.rmtree(subs / "zed" / "work")
                (subs / "zed" / "work").symlink_to(solutions, target_is_directory=True)
                swapped.append(True)
        return real_grade_file(*args, **kwargs)

    gradebook.grade_file = swap_then_grade
    try:
        learners = grade_class(subs, solutions, out, roster=roster, overrides=overrides, cell_timeout=15, jobs=2)
    finally:
        gradebook.grade_file = real_grade_file
    return {"learners": {e.learner: e for e in learners}, "out": out, "subs": subs}


def _notebook(graded, learner):
    entry = graded["learners"][learner]
    return entry, (entry.report.notebooks[0] if entry.report.notebooks else None)


def test_a_folder_name_in_another_encoding_or_unicode_form_is_graded_and_finds_its_roster_line(graded):
    latin, nb = _notebook(graded, "Jos\ufffd")
    assert latin.total == 7 and nb.flags == []
    jose, _ = _notebook(graded, "jose.garcia")  # the NFD folder matched the NFC roster line
    assert jose.folder == NFD and jose.overridden == {"toy_prefix.ipynb": 5.0} and jose.total == 5
    dotty, _ = _notebook(graded, "dot.learner")
    assert dotty.total == 7
    notes = (graded["out"] / "report.md").read_text().split("## Notes on the class")[1]
    assert ".git" in notes  # skipped, and said so


def test_no_two_folders_share_a_learner_id_and_an_ambiguous_override_changes_nothing(graded):
    adas = {k: e for k, e in graded["learners"].items() if k.startswith("ada #")}
    assert sorted(e.total for e in adas.values()) == [0, 7]
    assert all(any("would show as 'ada'" in p for p in e.problems) for e in adas.values())
    assert all(nb.review is None for e in adas.values() for nb in e.report.notebooks)
    report = (graded["out"] / "report.md").read_text()
    assert "no graded notebook matches learner 'ada'" in report
    assert any("not on the roster" in p for e in adas.values() for p in e.problems)
    stored = json.loads((graded["out"] / "grades.json").read_text())
    assert len(stored) == len(graded["learners"])  # nobody lost to a shared key
    assert len(list((graded["out"] / "feedback").iterdir())) == len(graded["learners"])


def test_a_folder_swapped_for_a_link_during_grading_or_a_hard_link_never_gets_the_solution_graded(graded):
    zed, _ = _notebook(graded, "zed")
    assert zed.total == 0 and zed.missing == ["toy_prefix.ipynb"]
    assert any("symbolic link" in p or "could not be opened as a folder" in p for p in zed.problems), zed.problems
    linked, _ = _notebook(graded, "hard-link")
    assert linked.total == 0 and any("hard link" in p for p in linked.problems)


def test_a_mistyped_override_is_said_not_dropped(graded):
    entry, _ = _notebook(graded, "bom")
    assert any("'acept'" in p and "neither 'accept' nor a number" in p for p in entry.problems), entry.problems


def test_an_older_format_and_a_byte_order_mark_grade_like_any_notebook(graded):
    for learner in ("old-format", "bom"):
        entry, nb = _notebook(graded, learner)
        assert entry.total == 7 and nb.flags == [], (learner, nb.flags, nb.notes)


def test_a_learners_metadata_decides_nothing_about_what_a_cell_is(graded):
    entry, nb = _notebook(graded, "relabel")  # the given cell still runs the teacher's source, and is flagged
    assert any("a given cell was edited" in flag for flag in nb.flags)
    assert nb.scored == 0
    entry, nb = _notebook(graded, "inject")
    assert nb.free_text == {}  # the solution asks for no free text: a markdown cell posing as one is ignored
    for path in [graded["out"] / "report.md", *(graded["out"] / "feedback").glob("inject-*.md")]:
        text = path.read_text()
        assert "](http" not in text.replace("\\](http", ""), path.name  # no link or image of the learner's
        assert "evil.invalid" not in text or "\\!\\[x\\]" in text


def test_an_id_made_to_collide_with_a_hashed_one_takes_nobodys_override(graded):
    wangs = {k: e for k, e in graded["learners"].items() if k.startswith("Wang Wei #")}
    assert len(wangs) == 3 and sorted(e.total for e in wangs.values()) == [0, 7, 7]  # nobody lost, nobody given 7
    assert all(e.overridden == {} for e in wangs.values())
    assert "no graded notebook matches learner 'Wang Wei \\#" in (graded["out"] / "report.md").read_text()
    oks = [k for k, e in graded["learners"].items() if k.startswith("ok #")]
    assert len(oks) == 2 and sorted(graded["learners"][k].total for k in oks) == [0, 7]


def test_a_flood_of_problems_is_cut_short_and_an_answer_split_in_two_is_not_a_move(graded):
    entry, nb = _notebook(graded, "many-hidden")
    assert entry.total == 7 and len(entry.problems) <= 21 and "more problems like these" in entry.problems[-1]
    entry, nb = _notebook(graded, "split-answer")
    assert entry.total == 7 and nb.flags == [], nb.flags


def test_the_csv_holds_every_learner_once(graded):
    rows = list(csv.reader(io.StringIO((graded["out"] / "gradebook.csv").read_text())))
    assert len(rows) == 1 + len(graded["learners"])
    assert len({row[0] for row in rows[1:]}) == len(rows) - 1


def test_feedback_an_earlier_run_left_for_a_learner_no_longer_in_the_class_is_removed(tmp_path):
    from tutorlib.course.gradebook import LearnerGrades

    solutions = [TOY]
    keep, gone = (LearnerGrades(name, name, GradeReport()) for name in ("keep", "gone"))
    write_gradebook([keep, gone], solutions, tmp_path)
    (tmp_path / "feedback" / "teachers-notes.md").write_text("mine")  # not a name the grader makes: kept
    write_gradebook([keep], solutions, tmp_path)
    names = sorted(p.name for p in (tmp_path / "feedback").iterdir())
    assert len(names) == 2 and names[0].startswith("keep-") and "teachers-notes.md" in names


def test_two_graders_never_write_into_one_output_folder(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "out").mkdir()
    with FileLock(str(tmp_path / "out" / ".grading.lock")):
        with pytest.raises(ValueError, match="Another `tutorlib grade` is writing"):
            grade_class(tmp_path / "subs", TOY.parent, tmp_path / "out")


def test_names_are_matched_as_a_person_reads_them():
    assert person_name(NFD) == person_name("José ") == "José"
    assert person_name(LATIN1) == "Jos\ufffd"
    assert person_name(b"ada\n") == "ada"


def test_markdown_from_a_learner_shows_as_typed():
    text = ("![x](http://evil.invalid) <img src=x> **bold** | cell\n# heading\n- item\n1. first\n===\n`code` $x$ &amp;"
            "\nsee https://evil.invalid/login or www.evil.invalid or me@evil.invalid")
    inert = markdown_inert(text)
    assert inert.replace("\\", "") == text  # nothing lost: only backslashes added
    escaped, unescaped, after_escape = set(), [], False
    for i, ch in enumerate(inert):
        if after_escape:
            escaped.add(i)
            after_escape = False
        elif ch == "\\":
            after_escape = True
        elif ch in "![]<>*_`|#$&~@" or (ch in "-=" and (i == 0 or inert[i - 1] == "\n")):
            unescaped.append((i, ch))
    assert unescaped == []  # every character Markdown would act on has its backslash
    assert "1\\. first" in inert  # a numbered list item, too
    assert re.search(r"(?<!\\)://", inert) is None and "www." not in inert  # a bare address is no link either
