"""A class gradebook: grade one folder per learner against the teacher's private solutions.

Layout the teacher gives ``tutorlib grade SUBMISSIONS --solutions PRIVATE --out OUT``::

    SUBMISSIONS/
      ada/01_parameters.ipynb, 02_attention_with_prefix.ipynb, ...   (learner id = folder name)
      grace/...

An optional roster CSV (``--roster``, columns ``folder,learner``: or ``id,name``) maps folder names
to the learner ids the gradebook shows, and lists learners who handed in nothing. Each learner's
notebooks are found by the solution notebooks' file names anywhere inside their folder.

What is written to OUT:

* ``gradebook.csv``: one row per learner: points per question (``<notebook>:<grade_id>``), each
  notebook's total, the total, the flags (tamper evidence: points withheld until accepted), the
  missing notebooks, the problems with files, and an empty column per free-text ("Think") answer
  for the teacher to fill in by hand;
* ``feedback/<learner>.md``: that learner's report (every question, message, flag and free-text
  answer), and ``grades.json`` with everything;
* ``report.md``: the class at a glance, with a line for every broken, empty, huge or
  non-notebook file.

Overrides (``--overrides``, a CSV the teacher edits: ``learner,notebook,decision,note``):
``decision`` ``accept`` releases the points of a flagged notebook; a number replaces its total.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from tutorlib.course.builder import graded_tests, is_answer_cell, nbgrader_meta, read_notebook, write_atomic
from tutorlib.course.report import GradeReport, NotebookResult

MAX_NOTEBOOK_BYTES = 20 * 2**20  # a larger "notebook" is not graded (outputs of a runaway loop?)


@dataclass
class LearnerGrades:
    """One learner: the report of their notebooks, the problems found with their files."""

    learner: str
    folder: str | None
    report: GradeReport
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    overridden: dict[str, float] = field(default_factory=dict)  # notebook -> total set by the teacher

    def notebook_points(self, nb: NotebookResult, name: str) -> float:
        return self.overridden.get(name, nb.points)


def read_roster(path: str | Path) -> dict[str, str]:
    """folder name -> learner id, from a CSV with columns folder,learner (or id,name)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    keys = {k.strip().lower(): k for k in rows[0]}
    folder_key = keys.get("folder") or keys.get("id")
    learner_key = keys.get("learner") or keys.get("name") or folder_key
    if folder_key is None:
        raise ValueError(f"The roster {path} needs a 'folder' (or 'id') column, and optionally 'learner' (or "
                         f"'name'); it has: {', '.join(rows[0])}.")
    return {r[folder_key].strip(): (r[learner_key] or r[folder_key]).strip() for r in rows if r.get(folder_key)}


def read_overrides(path: str | Path | None) -> dict[tuple[str, str], tuple[str, str]]:
    """(learner, notebook) -> (decision, note) from the teacher's overrides CSV ({} without one)."""
    if path is None or not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["learner"].strip(), r["notebook"].strip()): (r["decision"].strip(), (r.get("note") or "").strip())
                for r in csv.DictReader(f) if r.get("learner") and r.get("notebook") and r.get("decision")}


def _problem_with(path: Path) -> str | None:
    """Why a file cannot be graded as a notebook (None: it looks like one)."""
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty (0 bytes): nothing was graded."
    if size > MAX_NOTEBOOK_BYTES:
        return (f"{path.name} is {size / 2**20:.0f} MB, above the {MAX_NOTEBOOK_BYTES // 2**20} MB limit: not "
                "graded (clear the outputs and hand it in again).")
    try:
        read_notebook(path)
    except (ValueError, UnicodeDecodeError, OSError, AttributeError, TypeError) as e:
        return f"{path.name} is not a readable notebook ({type(e).__name__}): not graded."
    return None


def grade_class(submissions: str | Path, solutions_dir: str | Path, out_dir: str | Path, *,
                roster: str | Path | None = None, overrides: str | Path | None = None,
                cell_timeout: float = 120, fast: bool = True, verbose: bool = False) -> list[LearnerGrades]:
    """Grade every learner's folder under ``submissions``; write the gradebook into ``out_dir``."""
    from tutorlib.course.autograde import grade_notebook

    submissions, solutions_dir, out = Path(submissions), Path(solutions_dir), Path(out_dir)
    if not submissions.is_dir():
        raise ValueError(f"No submissions folder at {submissions}: give a folder with one sub-folder per learner.")
    solutions = sorted(p for p in solutions_dir.glob("*.ipynb")) if solutions_dir.is_dir() else []
    if not solutions:
        raise ValueError(f"No solution notebooks in {solutions_dir}: pass --solutions with the teacher's private "
                         "solutions folder.")
    names = read_roster(roster) if roster else {}
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    decisions = read_overrides(overrides)
    learners: list[LearnerGrades] = []
    for folder in folders:
        learner = names.get(folder.name, folder.name)
        report, missing, problems = GradeReport(), [], []
        stray = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".ipynb"
                 and ".ipynb_checkpoints" not in p.parts]
        problems += [f"{p.relative_to(folder)} is not a notebook: ignored." for p in stray[:10]]
        for solution in solutions:
            found = [p for p in folder.rglob(solution.name) if ".ipynb_checkpoints" not in p.parts]
            if not found:
                missing.append(solution.name)
                continue
            if verbose:
                print(f"grading {learner}: {solution.name} ...", flush=True)
            problem = _problem_with(found[0])
            if problem:
                problems.append(problem)
                nb = NotebookResult(path=solution.name, notes=[problem], questions=_zero_questions(solution))
            else:
                nb = grade_notebook(found[0], solutions_dir=solutions_dir, cell_timeout=cell_timeout, fast=fast)
                nb.path = solution.name
            if len(found) > 1:
                problems.append(f"{solution.name} appears {len(found)} times; graded {found[0].relative_to(folder)}.")
            decision = decisions.get((learner, solution.name))
            if decision:
                nb.review = "accept" if decision[0].lower() == "accept" else decision[1] or decision[0]
            report.notebooks.append(nb)
        entry = LearnerGrades(learner, folder.name, report, missing, problems)
        for (who, notebook), (decision, _) in decisions.items():
            if who == learner and decision.lower() != "accept":
                try:
                    entry.overridden[notebook] = float(decision)
                except ValueError:
                    problems.append(f"overrides: '{decision}' for {notebook} is neither 'accept' nor a number.")
        learners.append(entry)
    for folder_name, learner in names.items():  # on the roster, no folder handed in
        if not (submissions / folder_name).is_dir():
            learners.append(LearnerGrades(learner, None, GradeReport(), [s.name for s in solutions],
                                          ["no folder handed in"]))
    write_gradebook(learners, solutions, out)
    return learners


def _zero_questions(solution_path: Path):
    from tutorlib.course.report import QuestionResult

    nb = read_notebook(solution_path)
    return [QuestionResult(gid, 0.0, float(nbgrader_meta(c).get("points", 0)), "missing",
                           "The notebook could not be graded (see the problems).")
            for gid, (_, c) in graded_tests(nb).items()]


def _columns(solutions: list[Path]) -> tuple[list[str], list[str]]:
    """(question columns, free-text columns) in notebook order."""
    questions, free = [], []
    for path in solutions:
        nb = read_notebook(path)
        questions += [f"{path.stem}:{gid}" for gid in graded_tests(nb)]
        free += [f"{path.stem}:{nbgrader_meta(c)['grade_id']} (by hand)" for c in nb.cells
                 if is_answer_cell(c) and c.cell_type == "markdown"]
    return questions, free


def write_gradebook(learners: list[LearnerGrades], solutions: list[Path], out: Path) -> None:
    """gradebook.csv, feedback/<learner>.md, grades.json and report.md (see the module docstring)."""
    questions, free = _columns(solutions)
    header = ["learner", *questions, *[f"{p.stem} total" for p in solutions], "total", "max", "flags",
              "missing notebooks", "problems", *free]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    possible = sum(float(nbgrader_meta(c).get("points", 0)) for p in solutions
                   for _, c in graded_tests(read_notebook(p)).values())
    for entry in learners:
        row = {"learner": entry.learner}
        totals = {}
        for nb in entry.report.notebooks:
            stem = Path(nb.path).stem
            for q in nb.questions:
                row[f"{stem}:{q.grade_id}"] = f"{q.points:g}"
            totals[f"{stem} total"] = entry.notebook_points(nb, nb.path)
        row.update({k: f"{v:g}" for k, v in totals.items()})
        row["total"] = f"{sum(totals.values()):g}"
        row["max"] = f"{possible:g}"
        row["flags"] = " | ".join(f"{Path(nb.path).stem}: {flag}" + (" (accepted)" if not nb.withheld else "")
                                  for nb in entry.report.notebooks for flag in nb.flags)
        row["missing notebooks"] = " ".join(entry.missing)
        row["problems"] = " | ".join(entry.problems)
        writer.writerow([row.get(col, "") for col in header])
    write_atomic(out / "gradebook.csv", buffer.getvalue().encode())
    for entry in learners:
        text = entry.report.to_markdown().replace("# Grades", f"# Grades: {entry.learner}", 1)
        extra = [f"- missing: {m}" for m in entry.missing] + [f"- {p}" for p in entry.problems]
        write_atomic(out / "feedback" / f"{_safe(entry.learner)}.md", (text + ("\n" + "\n".join(extra) + "\n"
                                                                              if extra else "")).encode())
    everything = {e.learner: dict(e.report.to_dict(), missing=e.missing, problems=e.problems,
                                  overridden=e.overridden) for e in learners}
    write_atomic(out / "grades.json", (json.dumps(everything, indent=2, ensure_ascii=False) + "\n").encode())
    lines = ["# Class report", "", "| learner | total | flagged | missing | problems |", "|---|---|---|---|---|"]
    for entry in learners:
        total = sum(entry.notebook_points(nb, nb.path) for nb in entry.report.notebooks)
        flagged = sum(1 for nb in entry.report.notebooks if nb.flags)
        lines.append(f"| {entry.learner} | {total:g} | {flagged or ''} | {len(entry.missing) or ''} | "
                     f"{'<br>'.join(entry.problems).replace('|', '/')} |")
    write_atomic(out / "report.md", ("\n".join(lines) + "\n").encode())


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "learner"
