"""A class gradebook: grade one folder per learner against the teacher's private solutions.

Layout the teacher gives ``tutorlib grade SUBMISSIONS --solutions PRIVATE --out OUT``::

    SUBMISSIONS/
      ada/01_parameters.ipynb, 02_attention_with_prefix.ipynb, ...   (learner id = folder name)
      grace/...

An optional roster CSV (``--roster``, columns ``folder,learner``: or ``id,name``) maps folder names
to the learner ids the gradebook shows, and lists learners who handed in nothing. A learner's
notebook is the file with the solution's exact name anywhere inside their folder; nothing in the
learner's file chooses its solution, and each file is graded once.

Each learner is graded inside their own guard: a broken, huge, hostile or symlinked file, a grader
failure on one notebook, or a notebook past its time costs that learner those points with a line
in the report, never the class. Symbolic links, and anything that is not a regular file, are not
followed. Every notebook runs in its own sandbox (:mod:`tutorlib.course.sandbox`); ``jobs``
learners are graded at the same time.

What is written to OUT, again after each learner (atomically: a crash or Ctrl-C keeps every
learner already graded):

* ``gradebook.csv``: one row per learner: points per question (``<notebook>:<grade_id>``), each
  notebook's total, the total, the flags (tamper evidence: points withheld until accepted), the
  missing notebooks, the problems with files, and an empty column per free-text ("Think") answer
  for the teacher to fill in by hand. A cell a spreadsheet would run as a formula is neutralised.
* ``feedback/<learner>-<id>.md``: that learner's report (every question, message, flag and
  free-text answer); one file per learner, never shared;
* ``grades.json`` with everything, and ``report.md``: the class at a glance (points of the
  maximum, flags, problems, the free-text answers to mark).

Every file (and every line printed) shows learner-chosen text through :func:`~tutorlib.course.report.printable`:
no character of it that a terminal or a viewer would act on (an escape sequence, a carriage return, a
right-to-left override) reaches the teacher; ``grades.json`` keeps the exact text, written as ASCII escapes.

Overrides (``--overrides``, a CSV the teacher edits: ``learner,notebook,decision,note``):
``decision`` ``accept`` releases the points of a flagged notebook; a number replaces its total.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import stat
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tutorlib.course.autograde import UNSAFE_STAMP, GradingOptions, grade_file, read_learner_file, zero_questions
from tutorlib.course.builder import graded_tests, is_answer_cell, nbgrader_meta, read_notebook
from tutorlib.course.report import GradeReport, NotebookResult, QuestionResult, printable
from tutorlib.files import write_atomic

MAX_FILES_PER_LEARNER = 2000  # a folder with more is not searched further (a learner's runaway loop?)


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

    @property
    def total(self) -> float:
        return sum(self.notebook_points(nb, nb.path) for nb in self.report.notebooks)


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


# --- finding a learner's files ------------------------------------------------------------------

def _files_of(folder: Path, problems: list[str]) -> dict[str, list[Path]]:
    """file name -> regular files of that name under ``folder``; symlinks and special files are
    named in ``problems`` and never followed."""
    found: dict[str, list[Path]] = {}
    count = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints" and not d.startswith("."))
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                problems.append(f"{_shown(Path(root, d).relative_to(folder))} is a symbolic link: not followed.")
                dirs.remove(d)
        for name in sorted(files):
            path = Path(root, name)
            count += 1
            if count > MAX_FILES_PER_LEARNER:
                problems.append(f"more than {MAX_FILES_PER_LEARNER} files: the rest were not looked at.")
                return found
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{_shown(path.relative_to(folder))} is a symbolic link: not graded.")
            elif not stat.S_ISREG(mode):
                problems.append(f"{_shown(path.relative_to(folder))} is not a regular file: ignored.")
            else:
                found.setdefault(name, []).append(path)
    return found


def _shown(path) -> str:
    """A learner-chosen path or name, safe to put in a report line (one printable line, short)."""
    text = printable(str(path), one_line=True)
    return text if len(text) <= 120 else text[:117] + "..."


# --- grading --------------------------------------------------------------------------------------

def _grade_learner(folder: Path, learner: str, solutions: list[Path], options: GradingOptions,
                   decisions: dict, verbose: bool) -> LearnerGrades:
    report, missing, problems = GradeReport(), [], []
    files = _files_of(folder, problems)
    wanted = {s.name for s in solutions}
    stray = sorted(n for n in files if n not in wanted)
    problems += [f"{_shown(n)} is not one of the assignments: ignored." for n in stray[:10]]
    for solution in solutions:
        found = files.get(solution.name, [])
        if not found:
            missing.append(solution.name)
            continue
        if len(found) > 1:
            problems.append(f"{solution.name} appears {len(found)} times; graded "
                            f"{_shown(found[0].relative_to(folder))} only.")
        if verbose:
            print(f"grading {_shown(learner)}: {solution.name} ...", file=sys.stderr, flush=True)
        try:
            content = read_learner_file(found[0])
        except ValueError as e:
            problems.append(str(e))
            nb = NotebookResult(path=solution.name, notes=[str(e)], questions=_zero_questions(solution))
        else:
            nb = grade_file(found[0], solution, options, label=solution.name, content=content)
            if not nb.questions:
                nb.questions = _zero_questions(solution)
        nb.path = solution.name
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
                problems.append(f"overrides: '{_shown(decision)}' for {_shown(notebook)} is neither 'accept' nor a "
                                "number.")
    return entry


def _failed_learner(folder: Path, learner: str, solutions: list[Path], why: str) -> LearnerGrades:
    notebooks = [NotebookResult(path=s.name, questions=_zero_questions(s), notes=[why]) for s in solutions]
    return LearnerGrades(learner, folder.name, GradeReport(notebooks=notebooks), [], [why])


def grade_class(submissions: str | Path, solutions_dir: str | Path, out_dir: str | Path, *,
                roster: str | Path | None = None, overrides: str | Path | None = None,
                cell_timeout: float = 120, mode: str = "fast", jobs: int = 1, class_budget: float | None = None,
                options: GradingOptions | None = None, verbose: bool = False) -> list[LearnerGrades]:
    """Grade every learner's folder under ``submissions``; write the gradebook into ``out_dir``
    after each learner. ``class_budget``: seconds for the whole class; learners not started by
    then are listed as not graded."""
    submissions, solutions_dir, out = Path(submissions), Path(solutions_dir), Path(out_dir)
    if not submissions.is_dir():
        raise ValueError(f"No submissions folder at {submissions}: give a folder with one sub-folder per learner.")
    solutions = sorted(p for p in solutions_dir.glob("*.ipynb") if p.is_file()) if solutions_dir.is_dir() else []
    if not solutions:
        raise ValueError(f"No solution notebooks in {solutions_dir}: pass --solutions with the teacher's private "
                         "solutions folder.")
    for private in (submissions, solutions_dir):
        if out.resolve() == private.resolve() or out.resolve().is_relative_to(private.resolve()):
            raise ValueError(f"--out {out} lies inside {private}: write the gradebook somewhere else.")
    options = options or GradingOptions(mode=mode, cell_timeout=cell_timeout)
    hidden = (str(solutions_dir), str(submissions), str(out), *options.hidden)
    options = GradingOptions(**{**options.__dict__, "hidden": hidden})
    names = read_roster(roster) if roster else {}
    decisions = read_overrides(overrides)
    folders = sorted(p for p in submissions.iterdir() if not p.name.startswith("."))
    book = _Book(out, solutions)
    for folder in folders:
        if folder.is_symlink() or not folder.is_dir():
            book.add(LearnerGrades(_shown(folder.name), None, GradeReport(), [],
                                   [f"{_shown(folder.name)} is not a folder (or is a symbolic link): not graded."]))
    folders = [f for f in folders if f.is_dir() and not f.is_symlink()]
    deadline = time.monotonic() + class_budget if class_budget else None

    def one(folder: Path) -> LearnerGrades:
        learner = names.get(folder.name, folder.name)
        try:
            return _grade_learner(folder, learner, solutions, options, decisions, verbose)
        except Exception as e:  # noqa: BLE001 - one learner never stops the class
            return _failed_learner(folder, learner, solutions, f"the grader failed on this learner "
                                                               f"({type(e).__name__}); graded 0, tell the teacher.")

    pending = list(folders)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running = set()
        try:
            while pending or running:
                while pending and len(running) < max(1, jobs):
                    folder = pending.pop(0)
                    if deadline is not None and time.monotonic() > deadline:
                        book.add(_failed_learner(folder, names.get(folder.name, folder.name), solutions,
                                                 "not graded: the class's time budget was spent before this learner"))
                        continue
                    running.add(pool.submit(one, folder))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    book.add(future.result())
        except KeyboardInterrupt:
            for future in running:
                future.cancel()
            print("interrupted: the gradebook keeps every learner graded so far", file=sys.stderr)
            raise
    for folder_name, learner in names.items():  # on the roster, no folder handed in
        if not (submissions / folder_name).is_dir():
            book.add(LearnerGrades(learner, None, GradeReport(), [s.name for s in solutions],
                                   ["no folder handed in"]))
    return book.learners


def _zero_questions(solution: Path) -> list[QuestionResult]:
    return zero_questions(solution, "The notebook could not be graded (see the problems).")


# --- writing --------------------------------------------------------------------------------------

class _Book:
    """The gradebook being written: every file rewritten atomically after each learner."""

    def __init__(self, out: Path, solutions: list[Path]):
        self.out, self.solutions, self.learners = out, solutions, []
        self.lock = threading.Lock()
        self.columns = _columns(solutions)
        self.possible = sum(float(nbgrader_meta(c).get("points", 0)) for p in solutions
                            for _, c in graded_tests(read_notebook(p)).values())

    def add(self, entry: LearnerGrades) -> None:
        with self.lock:
            self.learners.append(entry)
            self.learners.sort(key=lambda e: e.learner)
            write_gradebook(self.learners, self.solutions, self.out, columns=self.columns, possible=self.possible)


def _columns(solutions: list[Path]) -> tuple[list[str], list[str]]:
    """(question columns, free-text columns) in notebook order."""
    questions, free = [], []
    for path in solutions:
        nb = read_notebook(path)
        questions += [f"{path.stem}:{gid}" for gid in graded_tests(nb)]
        free += [f"{path.stem}:{nbgrader_meta(c)['grade_id']} (by hand)" for c in nb.cells
                 if is_answer_cell(c) and c.cell_type == "markdown"]
    return questions, free


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``= + - @`` (or a tab or
    carriage return) gets a leading apostrophe, as OWASP recommends for CSV injection."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def feedback_name(learner: str, folder: str | None) -> str:
    """A feedback file name of this learner's own: readable letters plus a hash of the exact id, so
    that two learners whose names differ only in punctuation never share a file."""
    readable = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in learner)[:40].strip("_") or "learner"
    digest = hashlib.sha256(f"{learner}\0{folder}".encode()).hexdigest()[:8]
    return f"{readable}-{digest}.md"


def markdown_text(text: str) -> str:
    """Learner-chosen text inside a Markdown table cell or line: one line, HTML escaped, and every
    character Markdown gives a meaning to (``| ` * _ [ ] # \\``) escaped with a backslash."""
    text = html.escape(_shown(text), quote=False)  # _shown: already one printable line
    return "".join("\\" + ch if ch in "\\|`*_[]#" else ch for ch in text)


def write_gradebook(learners: list[LearnerGrades], solutions: list[Path], out: Path, *,
                    columns: tuple[list[str], list[str]] | None = None, possible: float | None = None) -> None:
    """gradebook.csv, feedback/<learner>.md, grades.json and report.md (see the module docstring)."""
    questions, free = columns or _columns(solutions)
    if possible is None:
        possible = sum(float(nbgrader_meta(c).get("points", 0)) for p in solutions
                       for _, c in graded_tests(read_notebook(p)).values())
    unsafe = any(UNSAFE_STAMP in note for e in learners for nb in e.report.notebooks for note in nb.notes)
    header = ["learner", *questions, *[f"{p.stem} total" for p in solutions], "total", "max", "flags",
              "missing notebooks", "problems", *free] + (["sandbox"] if unsafe else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for entry in learners:
        row = _csv_row(entry, possible)
        if unsafe:
            row["sandbox"] = UNSAFE_STAMP
        # printable: a terminal or a spreadsheet shows the text and runs nothing of it; a name stays on one line
        writer.writerow([spreadsheet_safe(printable(str(row.get(col, "")), one_line=col == "learner"))
                         for col in header])
    write_atomic(out / "gradebook.csv", buffer.getvalue().encode())
    for entry in learners:
        text = entry.report.to_markdown().replace("# Grades", f"# Grades: {markdown_text(entry.learner)}", 1)
        said = {note for nb in entry.report.notebooks for note in nb.notes}  # each problem once
        extra = [f"- missing: {m}" for m in entry.missing] + [f"- {markdown_text(p)}" for p in entry.problems
                                                              if p not in said]
        if unsafe:
            text = f"**{UNSAFE_STAMP}**\n\n" + text
        write_atomic(out / "feedback" / feedback_name(entry.learner, entry.folder),
                     (text + ("\n" + "\n".join(extra) + "\n" if extra else "")).encode())
    everything = {e.learner: dict(e.report.to_dict(), missing=e.missing, problems=e.problems,
                                  overridden=e.overridden, feedback=f"feedback/{feedback_name(e.learner, e.folder)}")
                  for e in learners}
    write_atomic(out / "grades.json", (json.dumps(everything, indent=2, ensure_ascii=True) + "\n").encode())
    write_atomic(out / "report.md", _class_report(learners, possible, unsafe).encode())


def _csv_row(entry: LearnerGrades, possible: float) -> dict:
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
    return row


def _class_report(learners: list[LearnerGrades], possible: float, unsafe: bool) -> str:
    lines = ["# Class report", ""]
    if unsafe:
        lines += [f"**{UNSAFE_STAMP}**: every line of this report comes from a run without the sandbox.", ""]
    lines += [f"{len(learners)} learner(s); each out of {possible:g} points.", "",
              "| learner | total | of | flagged | missing | problems |", "|---|---|---|---|---|---|"]
    for entry in learners:
        flagged = sum(1 for nb in entry.report.notebooks if nb.flags)
        stamp = " (unsafe: no sandbox)" if unsafe else ""
        lines.append(f"| {markdown_text(entry.learner)}{stamp} | {entry.total:g} | {possible:g} | {flagged or ''} | "
                     f"{len(entry.missing) or ''} | {'<br>'.join(markdown_text(p) for p in entry.problems)} |")
    answers = [(e, nb, gid, text) for e in learners for nb in e.report.notebooks for gid, text in nb.free_text.items()
               if text.strip() and text.strip() != "YOUR ANSWER HERE"]
    if answers:
        lines += ["", "## Free-text answers (marked by hand)", ""]
        for entry, nb, gid, text in answers:
            lines += [f"**{markdown_text(entry.learner)}**, {markdown_text(Path(nb.path).stem)} "
                      f"`{markdown_text(gid)}`:", ""]
            lines += [f"> {html.escape(ln, quote=False)}" for ln in printable(text).splitlines()[:40]] + [""]
    return "\n".join(lines).rstrip() + "\n"
