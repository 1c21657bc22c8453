"""A class gradebook: grade one folder per learner against the teacher's private solutions.

Layout the teacher gives ``tutorlib grade SUBMISSIONS --solutions PRIVATE --out OUT``::

    SUBMISSIONS/
      ada/01_parameters.ipynb, 02_attention_with_prefix.ipynb, ...   (learner id = folder name)
      grace/...

An optional roster CSV (``--roster``, columns ``folder,learner``: or ``id,name``) maps folder names
to the learner ids the gradebook shows, and lists learners who handed in nothing. Names are matched
as a person reads them (Unicode NFC, no surrounding spaces, bytes that are not UTF-8 shown as U+FFFD), so
a folder unzipped on a Mac or from a Windows archive still finds its roster line. Every learner id in
the gradebook is unique: folders that would show as one id (``ada`` and ``ada ``, a folder named like
another's roster id) each get the id with a short hash of their folder's name, with a problem line
saying so. A folder not on a given roster is graded, with a problem line.

A learner's notebook is the file with the solution's exact name anywhere inside their folder; nothing
in the learner's file chooses its solution, and each file is graded once. The folder is searched and
the notebook read through directory handles opened without following links, at every level: a folder
swapped for a symbolic link while the class is being graded (to the solutions, say) is never entered,
and a file with other names on disk (a hard link) is refused.

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
``learner`` is the id the gradebook shows, ``notebook`` the file name (``01_parameters.ipynb``) or its
stem (``01_parameters``). A row that matches no graded notebook changes nothing and is listed in
``report.md``, and feedback files an earlier run left for learners no longer in the class are removed.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import stat
import sys
import threading
import time
import unicodedata
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from tutorlib.course.autograde import UNSAFE_STAMP, GradingOptions, grade_file, read_learner_file, zero_questions
from tutorlib.course.builder import graded_tests, is_answer_cell, nbgrader_meta, read_notebook
from tutorlib.course.report import GradeReport, NotebookResult, QuestionResult, markdown_inert, printable
from tutorlib.files import write_atomic

MAX_FILES_PER_LEARNER = 2000  # files and folders; past them, not searched further (a runaway loop?)
MAX_PROBLEMS_SHOWN = 20  # problem lines kept per learner (then one saying how many more)
MAX_FOLDER_DEPTH = 20  # folders nested deeper inside a learner's folder are not searched
# A folder opened only if it is one: never through a symbolic link (O_NOFOLLOW), never blocking (a FIFO).
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
_FEEDBACK_FILE = re.compile(r".+-[0-9a-f]{8}\.md")  # what feedback_name makes


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


def person_name(name: str | bytes) -> str:
    """A folder or roster name as a person reads it, for matching and showing: bytes that are not UTF-8 (a
    Windows archive's folder name) as U+FFFD, Unicode NFC (a Mac's decomposed accents composed), no
    surrounding white space."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    return unicodedata.normalize("NFC", raw.decode("utf-8", errors="replace")).strip()


def read_roster(path: str | Path) -> dict[str, str]:
    """folder name -> learner id, from a CSV with columns folder,learner (or id,name); both as
    :func:`person_name` reads them."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    keys = {k.strip().lower(): k for k in rows[0]}
    folder_key = keys.get("folder") or keys.get("id")
    learner_key = keys.get("learner") or keys.get("name") or folder_key
    if folder_key is None:
        raise ValueError(f"The roster {path} needs a 'folder' (or 'id') column, and optionally 'learner' (or "
                         f"'name'); it has: {', '.join(rows[0])}.")
    return {person_name(r[folder_key]): person_name(r[learner_key] or r[folder_key])
            for r in rows if r.get(folder_key) and person_name(r[folder_key])}


def notebook_file_name(name: str) -> str:
    """An overrides row's notebook as a file name: ``01_parameters`` and ``01_parameters.ipynb`` are one."""
    name = person_name(name)
    return name if name.endswith(".ipynb") else name + ".ipynb"


def read_overrides(path: str | Path | None) -> dict[tuple[str, str], tuple[str, str]]:
    """(learner, notebook file name) -> (decision, note) from the teacher's overrides CSV ({} without one)."""
    if path is None or not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        return {(person_name(r["learner"]), notebook_file_name(r["notebook"])):
                (r["decision"].strip(), (r.get("note") or "").strip())
                for r in csv.DictReader(f) if r.get("learner") and r.get("notebook") and r.get("decision")}


# --- finding a learner's files ------------------------------------------------------------------

@dataclass
class FoundNotebooks:
    """What a learner's folder holds: each file name's places (relative, in search order), and of each
    assignment the first copy's bytes, read when it was found (or why it could not be)."""

    places: dict[str, list[str]] = field(default_factory=dict)
    contents: dict[str, bytes | str] = field(default_factory=dict)


def _find_notebooks(parent_fd: int, folder_name: str, wanted: set[str], problems: list[str]) -> FoundNotebooks:
    """Search the learner's folder ``folder_name`` (inside the folder open as ``parent_fd``) for the assignments
    ``wanted``, reading each first copy at once. Every folder is opened by a handle relative to its parent's,
    without following a link, so what is read is what was found (``O_NOFOLLOW`` on a path protects only its
    last part); depth first, so that only the folders on the way down are open at a time. Links, special files,
    hidden folders and anything past the limits are named in ``problems``."""
    search = _Search(wanted, problems)
    try:
        top = os.open(folder_name, _FOLDER_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        problems.append(f"the folder could not be opened ({e.strerror}): was it replaced by a link while the class "
                        "was being graded?")
        return search.found
    # Each level: (its open folder, its path inside the learner's folder, its depth, its subfolders still to visit).
    stack: list[tuple[int, str, int, list[str]]] = []
    try:
        stack.append((top, "", 0, search.look_into(top, "", 0)))
        while stack:
            fd, inside, depth, subfolders = stack[-1]
            if not subfolders:
                os.close(stack.pop()[0])
                continue
            name = subfolders.pop()
            try:
                child = os.open(name, _FOLDER_FLAGS, dir_fd=fd)
            except OSError as e:
                why = "it is a link now, or no folder" if e.errno in (errno.ELOOP, errno.ENOTDIR) else e.strerror
                problems.append(f"{_shown(inside + name)} could not be opened as a folder ({why}): not searched.")
                continue
            stack.append((child, f"{inside}{name}/", depth + 1, []))  # on the stack first: closed whatever happens
            stack[-1][3].extend(search.look_into(child, f"{inside}{name}/", depth + 1))
    except _TooMany:
        problems.append(f"more than {MAX_FILES_PER_LEARNER} files and folders: the rest were not looked at.")
    finally:
        for fd, *_ in stack:
            os.close(fd)
    return search.found


class _TooMany(Exception):
    """A learner's folder holds more entries than the grader looks at."""


class _Search:
    """One learner's folder being searched: what was found, the problems, the entries counted so far."""

    def __init__(self, wanted: set[str], problems: list[str]):
        self.wanted, self.problems, self.found, self.entries = wanted, problems, FoundNotebooks(), 0

    def look_into(self, fd: int, inside: str, depth: int) -> list[str]:
        """Note the files of the folder open as ``fd``, read the assignments among them; its subfolders to visit,
        last first (they are popped from the end: visited in name order, as os.walk would)."""
        try:
            with os.scandir(fd) as listing:
                names = sorted(entry.name for entry in listing)
        except OSError as e:
            self.problems.append(f"{_shown(inside or '.')} could not be listed ({e.strerror}).")
            return []
        subfolders = []
        for name in names:
            self.entries += 1
            if self.entries > MAX_FILES_PER_LEARNER:
                raise _TooMany
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except OSError:
                continue  # gone since the folder was listed
            if stat.S_ISDIR(mode):
                if self._worth_visiting(name, inside, depth):
                    subfolders.append(name)
            else:
                self._file(fd, name, inside, mode)
        return subfolders[::-1]

    def _worth_visiting(self, name: str, inside: str, depth: int) -> bool:
        if name == ".ipynb_checkpoints":  # Jupyter's autosaved copies: never the submission
            return False
        if name.startswith("."):
            self.problems.append(f"{_shown(inside + name)} is a hidden folder: not searched.")
        elif depth + 1 > MAX_FOLDER_DEPTH:
            self.problems.append(f"{_shown(inside + name)} lies over {MAX_FOLDER_DEPTH} folders deep: not searched.")
        else:
            return True
        return False

    def _file(self, fd: int, name: str, inside: str, mode: int) -> None:
        if name.startswith("."):  # .DS_Store and the like
            return
        if stat.S_ISLNK(mode):
            self.problems.append(f"{_shown(inside + name)} is a symbolic link: not graded.")
        elif not stat.S_ISREG(mode):
            self.problems.append(f"{_shown(inside + name)} is not a regular file: ignored.")
        else:
            self.found.places.setdefault(name, []).append(inside + name)
            if name in self.wanted and name not in self.found.contents:
                try:
                    self.found.contents[name] = read_learner_file(name, dir_fd=fd, refuse_hard_links=True)
                except ValueError as e:
                    self.found.contents[name] = str(e)


def _shown(path) -> str:
    """A learner-chosen path or name, safe to put in a report line (one printable line, short)."""
    text = printable(str(path), one_line=True)
    return text if len(text) <= 120 else text[:117] + "..."


# --- grading --------------------------------------------------------------------------------------

@dataclass
class LearnerFolder:
    """A learner's folder found in the submissions: its name on disk (exact, for opening it) and the unique id
    the gradebook shows for it."""

    name: str
    learner: str
    problems: list[str] = field(default_factory=list)


def _grade_learner(parent_fd: int, submissions: Path, found: LearnerFolder, solutions: list[Path],
                   options: GradingOptions, decisions: dict, verbose: bool) -> LearnerGrades:
    learner, report, missing, problems = found.learner, GradeReport(), [], list(found.problems)
    wanted = {s.name for s in solutions}
    notebooks = _find_notebooks(parent_fd, found.name, wanted, problems)
    stray = sorted(n for n in notebooks.places if n not in wanted)
    problems += [f"{_shown(n)} is not one of the assignments: ignored." for n in stray[:10]]
    for solution in solutions:
        places = notebooks.places.get(solution.name, [])
        if not places:
            missing.append(solution.name)
            continue
        if len(places) > 1:
            problems.append(f"{solution.name} appears {len(places)} times; graded {_shown(places[0])} only.")
        if verbose:
            print(f"grading {_shown(learner)}: {solution.name} ...", file=sys.stderr, flush=True)
        content = notebooks.contents[solution.name]
        if isinstance(content, str):  # why it could not be read
            problems.append(content)
            nb = NotebookResult(path=solution.name, notes=[content], questions=_zero_questions(solution))
        else:
            nb = grade_file(submissions / found.name / places[0], solution, options, label=solution.name,
                            content=content)
            if not nb.questions:
                nb.questions = _zero_questions(solution)
        nb.path = solution.name
        decision = decisions.get((learner, solution.name))
        if decision:
            nb.review = "accept" if decision[0].lower() == "accept" else decision[1] or decision[0]
        report.notebooks.append(nb)
    overridden, graded = {}, {nb.path for nb in report.notebooks}
    for (who, notebook), (decision, _) in decisions.items():
        if who == learner and notebook in graded and decision.lower() != "accept":
            try:
                overridden[notebook] = float(decision)
            except ValueError:
                problems.append(f"overrides: '{_shown(decision)}' for {_shown(notebook)} is neither 'accept' nor a "
                                "number.")
    return LearnerGrades(learner, found.name, report, missing, bounded_problems(problems), overridden)


def bounded_problems(problems: list[str]) -> list[str]:
    """Each problem once, at most :data:`MAX_PROBLEMS_SHOWN` (then one line saying how many more): 30,000 hidden
    folders must not make a 24 MB gradebook."""
    unique = list(dict.fromkeys(problems))
    if len(unique) <= MAX_PROBLEMS_SHOWN:
        return unique
    return unique[:MAX_PROBLEMS_SHOWN] + [f"... and {len(unique) - MAX_PROBLEMS_SHOWN} more problems like these."]


def _failed_learner(found: LearnerFolder, solutions: list[Path], why: str) -> LearnerGrades:
    notebooks = [NotebookResult(path=s.name, questions=_zero_questions(s), notes=[why]) for s in solutions]
    return LearnerGrades(found.learner, found.name, GradeReport(notebooks=notebooks), [], [*found.problems, why])


def _learner_folders(parent_fd: int, names: dict[str, str], skipped: list[str], solutions: list[Path]) \
        -> tuple[list[LearnerFolder], list[LearnerGrades]]:
    """(the learners' folders, entries without a folder: what is not one, and roster learners who handed in
    nothing) in the submissions folder open as ``parent_fd``. A learner's id is their roster id, else their
    folder's name as a person reads it; every id is then made unique (:func:`_unique_ids`). Hidden entries
    (``.git``) not on the roster are skipped and named in ``skipped``."""
    folders, others, keys = [], [], []  # keys: bytes that tell each entry without a folder from the others
    handed_in: set[str] = set()  # the roster's folder names, as a person reads them, that have a folder
    with os.scandir(parent_fd) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        key = person_name(entry.name)
        if entry.name.startswith(".") and key not in names:
            skipped.append(_shown(entry.name))
            continue
        if not entry.is_dir(follow_symlinks=False):
            others.append(LearnerGrades(_shown(entry.name), None, GradeReport(), [],
                                        [f"{_shown(entry.name)} is not a folder (or is a symbolic link): not graded."]))
            keys.append(b"entry\0" + os.fsencode(entry.name))
            continue
        problems = [] if key in names or not names else [
            f"the folder {_shown(entry.name)} is not on the roster: graded under its own name."]
        folders.append(LearnerFolder(entry.name, names.get(key, key) or "?", problems))
        handed_in.add(key)
    for folder_name, learner in names.items():  # on the roster, no folder handed in
        if folder_name not in handed_in:
            others.append(LearnerGrades(learner, None, GradeReport(), [s.name for s in solutions],
                                        ["no folder handed in"]))
            keys.append(b"roster\0" + folder_name.encode())
    _unique_ids([(found, b"folder\0" + os.fsencode(found.name)) for found in folders] + list(zip(others, keys)))
    return folders, others


def _unique_ids(rows: list[tuple[LearnerFolder | LearnerGrades, bytes]]) -> None:
    """Give every row an id no other row has: rows that share one each get a hash of their own ``key`` (bytes
    that differ from row to row: a folder's exact name) after it, with a problem line saying so, until no id is
    shared (a folder named like another's hashed id just takes one more round)."""
    for attempt in range(len(rows) + 1):
        counts = Counter(row.learner for row, _ in rows)
        if all(n == 1 for n in counts.values()):
            return
        for row, key in rows:
            shared = row.learner
            if counts[shared] > 1:
                row.learner = f"{shared} #{hashlib.sha256(key + bytes([attempt % 256])).hexdigest()[:6 + attempt]}"
                row.problems.append(f"{counts[shared]} learners would show as '{_shown(shared)}'; this one shows as "
                                    f"'{_shown(row.learner)}': use that id in the overrides.")


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
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / ".grading.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(f"Another `tutorlib grade` is writing its gradebook into {out} right now: wait for it, or "
                         "give this one another --out folder.") from None
    try:
        return _grade_locked(submissions, out, solutions, names, decisions, options, verbose, jobs,
                             class_budget).learners
    finally:
        lock.release()


def _grade_locked(submissions: Path, out: Path, solutions: list[Path], names: dict, decisions: dict,
                  options: GradingOptions, verbose: bool, jobs: int, class_budget: float | None) -> _Book:
    """:func:`grade_class` once it holds the output folder's lock."""
    parent_fd = os.open(submissions, os.O_RDONLY | os.O_DIRECTORY)  # the teacher's folder: every learner's inside it
    try:
        skipped: list[str] = []
        folders, others = _learner_folders(parent_fd, names, skipped, solutions)
        book = _Book(out, solutions)
        if skipped:
            book.notes.append(f"Hidden entries in the submissions folder, not graded: {', '.join(skipped[:10])}"
                              + (f" and {len(skipped) - 10} more." if len(skipped) > 10 else "."))
        for entry in others:
            book.add(entry)
        _grade_folders(parent_fd, submissions, folders, solutions, options, decisions, verbose, jobs,
                       time.monotonic() + class_budget if class_budget else None, book)
    finally:
        os.close(parent_fd)
    graded = {(e.learner, nb.path) for e in book.learners for nb in e.report.notebooks}
    unmatched = [key for key in decisions if key not in graded]
    if unmatched:
        book.notes += [f"overrides: no graded notebook matches learner '{_shown(who)}', notebook '{_shown(notebook)}': "
                       "the row changed nothing (the learner id must be as the gradebook shows it)."
                       for who, notebook in unmatched]
        book.write()
    return book


def _grade_folders(parent_fd: int, submissions: Path, folders: list[LearnerFolder], solutions: list[Path],
                   options: GradingOptions, decisions: dict, verbose: bool, jobs: int, deadline: float | None,
                   book: _Book) -> None:
    """Grade ``folders``, ``jobs`` at a time, each learner inside their own guard; add each to ``book`` when done."""

    def one(found: LearnerFolder) -> LearnerGrades:
        try:
            return _grade_learner(parent_fd, submissions, found, solutions, options, decisions, verbose)
        except Exception as e:  # noqa: BLE001 - one learner never stops the class
            return _failed_learner(found, solutions, f"the grader failed on this learner ({type(e).__name__}); "
                                                     "graded 0, tell the teacher.")

    pending = list(folders)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running = set()
        try:
            while pending or running:
                while pending and len(running) < max(1, jobs):
                    found = pending.pop(0)
                    if deadline is not None and time.monotonic() > deadline:
                        book.add(_failed_learner(found, solutions, "not graded: the class's time budget was spent "
                                                                   "before this learner"))
                        continue
                    running.add(pool.submit(one, found))
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


def _zero_questions(solution: Path) -> list[QuestionResult]:
    return zero_questions(solution, "The notebook could not be graded (see the problems).")


# --- writing --------------------------------------------------------------------------------------

class _Book:
    """The gradebook being written: every file rewritten atomically after each learner."""

    def __init__(self, out: Path, solutions: list[Path]):
        self.out, self.solutions, self.learners = out, solutions, []
        self.notes: list[str] = []  # about the class, not one learner (an override that matched nothing)
        self.lock = threading.Lock()
        self.columns = _columns(solutions)
        self.possible = sum(float(nbgrader_meta(c).get("points", 0)) for p in solutions
                            for _, c in graded_tests(read_notebook(p)).values())

    def add(self, entry: LearnerGrades) -> None:
        with self.lock:
            self.learners.append(entry)
            self.learners.sort(key=lambda e: e.learner)
            self._write()

    def write(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        write_gradebook(self.learners, self.solutions, self.out, columns=self.columns, possible=self.possible,
                        notes=self.notes)


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
    """A feedback file name of this learner's own: readable letters plus a hash of the exact id and folder
    name (its bytes on disk, whatever their encoding), so that two learners whose names differ only in
    punctuation never share a file."""
    readable = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in learner)[:40].strip("_") or "learner"
    exact = learner.encode("utf-8", "surrogateescape") + b"\0" + os.fsencode(str(folder))
    return f"{readable}-{hashlib.sha256(exact).hexdigest()[:8]}.md"


def markdown_text(text: str) -> str:
    """Learner-chosen text inside a Markdown table cell or line: one short printable line that Markdown
    shows as typed (:func:`~tutorlib.course.report.markdown_inert`)."""
    return markdown_inert(_shown(text))


def write_gradebook(learners: list[LearnerGrades], solutions: list[Path], out: Path, *,
                    columns: tuple[list[str], list[str]] | None = None, possible: float | None = None,
                    notes: list[str] = ()) -> None:
    """gradebook.csv, feedback/<learner>.md, grades.json and report.md (see the module docstring); ``notes``
    about the class go into report.md. Feedback files an earlier run wrote for learners not in ``learners``
    are removed, so that the folder holds only this class's feedback."""
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
    current = {feedback_name(e.learner, e.folder) for e in learners}
    for stale in (out / "feedback").glob("*.md"):  # an earlier run's learner who is no longer in the class
        if stale.name not in current and _FEEDBACK_FILE.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    everything = {e.learner: dict(e.report.to_dict(), folder=None if e.folder is None else person_name(e.folder),
                                  missing=e.missing, problems=e.problems, overridden=e.overridden,
                                  feedback=f"feedback/{feedback_name(e.learner, e.folder)}")
                  for e in learners}
    write_atomic(out / "grades.json", (json.dumps(everything, indent=2, ensure_ascii=True) + "\n").encode())
    write_atomic(out / "report.md", _class_report(learners, possible, unsafe, notes).encode())


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


def _class_report(learners: list[LearnerGrades], possible: float, unsafe: bool, notes: list[str] = ()) -> str:
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
            lines += [f"> {ln}" for ln in markdown_inert(text).splitlines()[:40]] + [""]
    if notes:
        lines += ["", "## Notes on the class", ""] + [f"- {markdown_inert(note, one_line=True)}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"
