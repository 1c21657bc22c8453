"""Exercises are built from solutions: the solution notebooks are the single source.

A solution notebook follows nbgrader's conventions, so a teacher with nbgrader can use it as is:

* an **answer cell** carries ``{"nbgrader": {"solution": true, "grade": false, "grade_id": "q1_answer",
  "locked": false, "schema_version": 3}}`` and holds its answer between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` lines. The exercise gets ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
  in its place, at the indentation of the ``BEGIN`` line (markdown answers get ``YOUR ANSWER HERE``).
  An answer cell with no markers is replaced whole.
* a **graded test cell** carries ``{"nbgrader": {"grade": true, "solution": false, "grade_id":
  "q1_prefix_count", "points": 2, "locked": true, "schema_version": 3}}``. Lines between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed from the exercise; the
  grader runs the solution's copy of every graded test cell (see :mod:`tutorlib.course.autograde`).
* **partial credit**: a graded test cell may split its checks into parts, each starting with a
  line ``### PART 1 point: what it checks``; each part scores its points when it runs without an
  error (code before the first part is shared: if it fails, every part fails). The hidden tests'
  parts give the grade and add up to the cell's ``points``; the visible checks may have parts of
  their own (a learner's feedback run scores those), which add up to ``points`` too.
* a **markdown answer cell** ("Think" questions) is not scored: the grader copies the learner's text
  into the teacher's report, to be marked by hand.
* every **given cell** (neither answer nor hidden test) gets a sha256 in the exercise's metadata
  (``metadata.tutorlib.given_sha256``: cell id -> hash), so an edited given cell can be told (see
  :mod:`tutorlib.course.tamper`).

:func:`build_exercises` writes ``exercises/`` from ``solutions/`` (outputs cleared, execution counts
reset, byte-identical output for the same input, atomic writes); :func:`check_exercises_in_sync`
lists the exercise files that are out of date. An exercise that was edited after it was built (a
learner's work) is never overwritten unless ``force=True``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat

from tutorlib.files import write_atomic

CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's stub
MARKDOWN_STUB = ["YOUR ANSWER HERE"]
# Markers are matched leniently (any number of '#', trailing text allowed): a sloppy marker
# must never leak an answer into an exercise. Anything left over afterwards is an error.
_SOLUTION = (re.compile(r"^\s*#+\s*BEGIN SOLUTION\b"), re.compile(r"^\s*#+\s*END SOLUTION\b"))
_HIDDEN = (re.compile(r"^\s*#+\s*BEGIN HIDDEN TESTS\b"), re.compile(r"^\s*#+\s*END HIDDEN TESTS\b"))
_PART = re.compile(r"^\s*#+\s*PART\s+(\d+(?:\.\d+)?)\s+points?\b:?\s*(.*)$")
_LEFTOVER = re.compile(r"(BEGIN|END) (SOLUTION|HIDDEN TESTS)")
_VOLATILE_CELL_META = ("execution", "ExecuteTime", "collapsed", "scrolled")


class CourseError(ValueError):
    """A solution notebook breaks the conventions above; the message names the notebook and cell."""


# --- nbgrader metadata ---------------------------------------------------------------------

def nbgrader_meta(cell) -> dict:
    """The cell's ``metadata.nbgrader`` dict ({} for an ordinary cell)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_graded_test(cell) -> bool:
    """A code cell that scores points by running without error (grade true, solution false)."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_answer_cell(cell) -> bool:
    """A cell the learner fills in (nbgrader ``solution: true``)."""
    return bool(nbgrader_meta(cell).get("solution"))


def graded_tests(nb) -> dict[str, tuple[int, object]]:
    """``grade_id -> (cell index, cell)`` for every graded test cell, in notebook order."""
    return {nbgrader_meta(c)["grade_id"]: (i, c) for i, c in enumerate(nb.cells)
            if is_graded_test(c) and nbgrader_meta(c).get("grade_id")}


def split_test_parts(source: str, points: float) -> tuple[str, list[tuple[str, float, str]]]:
    """Split a graded test cell into (shared code, [(label, points, code), ...]); one part holding
    everything (label "") when the cell has no ``### PART n points: ...`` lines."""
    shared, parts = [], []
    for line in source.split("\n"):
        match = _PART.match(line)
        if match:
            parts.append([match.group(2).strip() or f"part {len(parts) + 1}", float(match.group(1)), []])
        elif parts:
            parts[-1][2].append(line)
        else:
            shared.append(line)
    if not parts:
        return "", [("", float(points), source)]
    return "\n".join(shared), [(label, pts, "\n".join(code)) for label, pts, code in parts]


def split_hidden(source: str) -> tuple[str, str | None]:
    """A graded test cell's (visible checks, hidden tests): the lines outside and inside its
    ``### BEGIN HIDDEN TESTS`` .. ``### END HIDDEN TESTS`` region (None when it has none).

    The visible checks run in the learner's kernel and give the learner feedback; the hidden tests
    run in the grader's own process and give the points (see :mod:`tutorlib.course.verdict`)."""
    begin, end = _HIDDEN
    visible, hidden, inside, found = [], [], False, False
    for line in source.split("\n"):
        if begin.match(line):
            inside, found = True, True
        elif end.match(line):
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(visible), ("\n".join(hidden) if found else None)


def _where(path, index: int, cell) -> str:
    first = (cell.get("source") or "").strip().splitlines()[:1]
    return f"{path}, cell {index + 1}" + (f' ("{first[0][:40]}")' if first else "")


# --- notebooks on disk ---------------------------------------------------------------------

def read_notebook(path: str | Path):
    """Read a notebook; cells without an id get a stable one (nbformat would invent a random one)."""
    path = Path(path)
    raw = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: a byte-order mark some editors write
    if raw.get("nbformat") == 4 and raw.get("nbformat_minor", 0) >= 5:
        for i, cell in enumerate(raw.get("cells", [])):
            if not cell.get("id"):
                cell["id"] = hashlib.sha1(f"{path.name}:{i}".encode()).hexdigest()[:8]
    nb = nbformat.reads(json.dumps(raw), as_version=4)  # also joins sources stored as lists of lines
    return nb


def notebook_bytes(nb) -> bytes:
    """The notebook as nbformat writes it (sorted keys, fixed indent): same notebook, same bytes."""
    return nbformat.writes(nb).encode("utf-8")


# --- solution -> exercise ------------------------------------------------------------------

def _replace_regions(source: str, markers, stub: list[str] | None, where: str) -> tuple[str, int]:
    """Replace every BEGIN..END region (markers included) by ``stub`` at the BEGIN line's indent
    (``stub=None`` removes the region). Returns the new source and how many regions there were."""
    begin, end = markers
    out, inside, count = [], False, 0
    for line in source.split("\n"):
        if begin.match(line):
            if inside:
                raise CourseError(f"{where}: a BEGIN marker inside another region; close it with END first.")
            inside, count = True, count + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in (stub or []))
        elif end.match(line):
            if not inside:
                raise CourseError(f"{where}: an END marker without its BEGIN line.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise CourseError(f"{where}: a BEGIN marker is never closed by its END line.")
    return "\n".join(out), count


def make_exercise(solution, name: str = "notebook") -> nbformat.NotebookNode:
    """The exercise version of a solution notebook (a new notebook; ``solution`` is untouched).

    Raises :class:`CourseError` when a solution region sits outside an answer cell, hidden tests
    sit outside a graded test cell, a graded cell lacks ``grade_id``/``points``, or a grade_id repeats.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(solution)))  # a deep copy
    seen: set[str] = set()
    for i, cell in enumerate(nb.cells):
        where, meta = _where(name, i, cell), nbgrader_meta(cell)
        if meta.get("grade") or meta.get("solution"):
            gid = meta.get("grade_id")
            if not gid:
                raise CourseError(f"{where}: an nbgrader cell needs a 'grade_id' in its metadata.")
            if gid in seen:
                raise CourseError(f"{where}: grade_id {gid!r} is used twice; every cell needs its own.")
            seen.add(gid)
            if meta.get("grade") and not isinstance(meta.get("points"), (int, float)):
                raise CourseError(f"{where}: graded cell {gid!r} needs a number 'points' in its metadata.")
            if is_graded_test(cell):
                _check_part_points(cell.source, meta["points"], gid, where)
        stub = CODE_STUB if cell.cell_type == "code" else MARKDOWN_STUB
        source, n_solutions = _replace_regions(cell.source, _SOLUTION, stub, where)
        if n_solutions and not is_answer_cell(cell):
            raise CourseError(f"{where}: a solution region in a cell that is not an answer cell; add "
                              '{"nbgrader": {"solution": true, "grade": false, "grade_id": ..., '
                              '"locked": false, "schema_version": 3}} to its metadata.')
        if not n_solutions and is_answer_cell(cell) and cell.cell_type in ("code", "markdown"):
            source = "\n".join(stub)  # nbgrader: an answer cell without markers is all answer
        source, n_hidden = _replace_regions(source, _HIDDEN, None, where)
        if n_hidden and not is_graded_test(cell):
            raise CourseError(f"{where}: hidden tests outside a graded test cell would never be run; "
                              "move them into a cell with nbgrader grade: true.")
        if _LEFTOVER.search(source):
            raise CourseError(f"{where}: a BEGIN/END marker is not on a line of its own "
                              "(write it as its own comment line, e.g. '### END SOLUTION').")
        cell.source = source
        for key in _VOLATILE_CELL_META:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)  # saved widget state: large and run-specific
    return nb


def _check_part_points(source: str, points: float, gid: str, where: str) -> None:
    """The PART lines of the hidden tests (which give the grade) must add up to the cell's points,
    and so must the visible checks' PART lines, when they have any (they score a learner's own
    feedback run). Each region is checked on its own: its parts are scored without the other's."""
    visible, hidden = split_hidden(source)
    for region, code in (("hidden tests", hidden), ("visible checks", visible)):
        if code is None or not any(_PART.match(line) for line in code.split("\n")):
            continue
        total = sum(p for _, p, _ in split_test_parts(code, points)[1])
        if abs(total - points) > 1e-9:
            raise CourseError(f"{where}: the PART lines of {gid!r}'s {region} add up to {total:g} points, but the "
                              f"cell has {points:g}; make them agree (the hidden tests' parts give the grade, the "
                              "visible checks' parts a learner's own feedback run).")


def given_checksums(exercise) -> dict[str, str]:
    """cell id -> sha256 of every given cell of an exercise (all cells but the answer cells)."""
    from tutorlib.course.tamper import cell_sha256

    return {c.get("id"): cell_sha256(c.source) for c in exercise.cells if not is_answer_cell(c) and c.get("id")}


def _cells_fingerprint(nb) -> str:
    """sha256 of the cells' types and sources: changes exactly when someone edits a cell."""
    text = json.dumps([[c.get("cell_type"), c.get("source", "")] for c in nb.cells])
    return hashlib.sha256(text.encode()).hexdigest()


def _plan(solutions_dir: Path, exercises_dir: Path) -> list[tuple[Path, Path, bytes]]:
    """(solution, exercise, exercise bytes) for every solution notebook, sorted by path."""
    if not solutions_dir.is_dir():
        raise CourseError(f"No solutions folder at {solutions_dir}: pass solutions_dir=... "
                          "(the folder holding the solution notebooks).")
    plan = []
    for sol in sorted(solutions_dir.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in sol.parts:
            continue
        rel = sol.relative_to(solutions_dir)
        nb = make_exercise(read_notebook(sol), name=str(sol))
        nb.metadata["tutorlib"] = {"solution": rel.as_posix(), "cells_sha256": _cells_fingerprint(nb),
                                   "given_sha256": given_checksums(nb)}
        plan.append((sol, exercises_dir / rel, notebook_bytes(nb)))
    return plan


def _edited_since_built(path: Path) -> bool:
    """True if the exercise on disk was changed after it was built (its cells no longer match
    the fingerprint written at build time) or was not built by this function at all."""
    try:
        nb = read_notebook(path)
    except (ValueError, OSError):
        return True
    built = nb.metadata.get("tutorlib", {}).get("cells_sha256")
    return built != _cells_fingerprint(nb)


def build_exercises(solutions_dir: str | Path = "solutions", exercises_dir: str | Path = "exercises",
                    force: bool = False) -> list[Path]:
    """Write one exercise notebook per solution notebook (same relative path); return their paths.

    Files whose bytes would not change are left alone. An existing exercise whose cells were
    edited since it was built (a learner's answers, a hand edit) is refused with a
    :class:`CourseError` before anything is written, unless ``force=True``.
    """
    plan = _plan(Path(solutions_dir), Path(exercises_dir))
    to_write = [(ex, data) for _, ex, data in plan if not ex.exists() or ex.read_bytes() != data]
    edited = [str(ex) for ex, _ in to_write if ex.exists() and _edited_since_built(ex)]
    if edited and not force:
        raise CourseError("These exercises were edited after they were built, so rebuilding would "
                          f"lose that work: {', '.join(edited)}. Edit the solutions instead; "
                          "pass force=True (--force) to overwrite anyway.")
    for ex, data in to_write:
        write_atomic(ex, data)
    return [ex for _, ex, _ in plan]


def _out_of_date(solutions_dir: Path, exercises_dir: Path) -> list[tuple[str, str]]:
    plan = _plan(solutions_dir, exercises_dir)
    stale = [(str(ex), "missing" if not ex.exists() else "out of date")
             for _, ex, data in plan if not ex.exists() or ex.read_bytes() != data]
    expected = {ex for _, ex, _ in plan}
    if exercises_dir.is_dir():
        stale += [(str(ex), "has no solution notebook") for ex in sorted(exercises_dir.rglob("*.ipynb"))
                  if ex not in expected and ".ipynb_checkpoints" not in ex.parts]
    return stale


def check_exercises_in_sync(solutions_dir: str | Path = "solutions",
                            exercises_dir: str | Path = "exercises") -> list[str]:
    """The exercise files that are missing, differ from a fresh build, or have no solution ([] = in sync)."""
    return [path for path, _ in _out_of_date(Path(solutions_dir), Path(exercises_dir))]
