"""The autograder: grade notebooks, each in its own sandbox, with the verdict outside it.

One notebook is graded by a *verdict process* (``python -m tutorlib.course.verdict``, trusted: it
reads the teacher's solution and runs the hidden tests), which starts the *learner's kernel*
inside a bubblewrap sandbox (:mod:`tutorlib.course.sandbox`). The rules a notebook author and a
learner need are in :mod:`tutorlib.course.verdict`; what the design stops and what it does not is
in ``THREAT_MODEL.md``.

This module starts one verdict process per notebook and never trusts it to end: a process past
the notebook's budget is killed with everything it started, and the notebook scores what the
grader could establish (0 with a note). The learner's file is read here, once, without following
a symlink, and handed to the verdict process as a private copy.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tutorlib.course.report import GradeReport, NotebookResult, QuestionResult, printable
from tutorlib.course.sandbox import Limits, kill_session

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_MESSAGE_LIMIT = 800  # characters of error text kept per question
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a larger "notebook" is not graded (outputs of a runaway loop?)


@dataclass
class GradingOptions:
    """How notebooks are graded: the mode inside the sandbox, time budgets, limits, the sandbox."""

    mode: str = "fast"
    cell_timeout: float = 120.0  # seconds per cell, and per question the grader asks the kernel
    notebook_budget: float = 900.0  # seconds for one notebook, everything included
    limits: Limits = field(default_factory=Limits)
    unsafe_no_sandbox: bool = False  # grade without bubblewrap (every report line says so)
    hidden: tuple[str, ...] = ()  # folders the sandbox must never show (solutions, submissions, output)


UNSAFE_STAMP = "UNSAFE: graded without a sandbox (--unsafe-no-sandbox)"


def learner_message(ename: str, evalue: str, traceback: list[str]) -> str:
    """The few lines a learner needs from an error: the AnswerError text, ``Name: value``, or
    (for a bare ``assert``) the last traceback lines. ANSI colour codes removed."""
    evalue = _ANSI.sub("", evalue or "").strip()
    if ename == "AnswerError" and evalue:
        text = evalue
    elif ename == "NotImplementedError" and not evalue:
        text = "NotImplementedError: an answer still says `raise NotImplementedError()`: replace it with your code."
    elif evalue:
        text = f"{ename}: {evalue}"
    else:
        lines = [ln.rstrip() for tb in traceback for ln in _ANSI.sub("", tb).splitlines() if ln.strip()]
        text = "\n".join(lines[-3:]) or ename
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def find_solution(notebook_name: str, solutions_dir: Path) -> Path | None:
    """The solution for a learner notebook: the file of the same name directly in ``solutions_dir``.
    The learner's file decides nothing else (its metadata is never read for this)."""
    candidate = solutions_dir / Path(notebook_name).name
    return candidate if candidate.is_file() and not candidate.is_symlink() else None


def read_learner_file(path: str | Path, limit: int = MAX_NOTEBOOK_BYTES, *, dir_fd: int | None = None,
                      refuse_hard_links: bool = False) -> bytes:
    """The bytes of a learner's file, refusing a symlink (at the moment of opening) and anything
    that is not a regular file or is larger than ``limit``; raises ``ValueError`` saying why.

    ``dir_fd``: ``path`` is a name inside the folder open as ``dir_fd`` (the class grader opens each folder
    of a learner's without following links, so no part of the way can be a link). ``refuse_hard_links``:
    a file with other names on disk is refused too: a hard link to a file elsewhere (a classmate's, a
    solution where the system allows linking it) is not the learner's own notebook."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP or (dir_fd is None and path.is_symlink()):  # O_NOFOLLOW met a link
            raise ValueError(f"{path.name} is a symbolic link: hand in the notebook itself.") from None
        raise ValueError(f"{path.name} could not be opened ({e.strerror}).") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file.")
        if refuse_hard_links and info.st_nlink > 1:
            raise ValueError(f"{path.name} has {info.st_nlink} names on disk (a hard link to another file): not "
                             "graded; hand in a copy of your own notebook.")
        if info.st_size == 0:
            raise ValueError(f"{path.name} is empty (0 bytes): nothing was graded.")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is {info.st_size / 2**20:.0f} MiB, above the {limit // 2**20} MiB limit: "
                             "not graded (clear the outputs and hand it in again).")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{path.name} grew past the {limit // 2**20} MiB limit while being read.")
        return b"".join(chunks)
    finally:
        os.close(fd)


def zero_questions(solution: Path, note: str) -> list[QuestionResult]:
    """Every question of ``solution`` at 0 points, status "missing", with ``note`` as its message."""
    from tutorlib.course.builder import read_notebook
    from tutorlib.course.verdict import questions_of

    return [QuestionResult(g, 0.0, p, "missing", note) for g, p in questions_of(read_notebook(solution)).items()]


def _zero(label: str, solution: Path | None, note: str) -> NotebookResult:
    """A notebook that could not be graded: every question of its solution scores 0, with a note."""
    questions = []
    if solution is not None:
        try:
            questions = zero_questions(solution, note)
        except Exception:  # noqa: BLE001 - an unreadable solution is reported by the class, not here
            questions = []
    return NotebookResult(path=label, solution=solution.name if solution else None, questions=questions, notes=[note])


def grade_file(path: str | Path, solution: Path | None, options: GradingOptions, label: str | None = None,
               content: bytes | None = None) -> NotebookResult:
    """Grade one learner notebook against ``solution`` (None: feedback from its own visible
    checks). Never raises for anything the notebook does."""
    path = Path(path)
    label = label or path.name
    started = time.perf_counter()
    if content is None:
        try:
            content = read_learner_file(path)
        except ValueError as e:
            return _zero(label, solution, str(e))
    work = Path(tempfile.mkdtemp(prefix="tutorlib-verdict-"))
    try:
        copy = work / "notebook.ipynb"
        copy.write_bytes(content)
        workdir = str(path.parent.resolve()) if path.parent.is_dir() else None
        result = _run_verdict(copy, solution, options, label, workdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if options.unsafe_no_sandbox and solution is not None:
        result.notes.insert(0, UNSAFE_STAMP)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _run_verdict(copy: Path, solution: Path | None, options: GradingOptions, label: str,
                 workdir: str | None) -> NotebookResult:
    unsafe = options.unsafe_no_sandbox or solution is None  # a learner's own feedback run needs no sandbox
    job = {"notebook": str(copy), "solution": str(solution) if solution else None, "label": label,
           "mode": options.mode, "cell_timeout": options.cell_timeout, "budget": options.notebook_budget,
           "limits": options.limits.__dict__, "unsafe": unsafe,
           "hidden": [str(Path(h).resolve()) for h in options.hidden], "workdir": workdir}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", TUTORLIB_MODE=options.mode,
               OMP_NUM_THREADS=str(options.limits.threads))
    env.pop("TUTORLIB_FAST", None)
    proc = subprocess.Popen([sys.executable, "-m", "tutorlib.course.verdict"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(json.dumps(job).encode(), timeout=options.notebook_budget + 120)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        return _zero(label, solution, f"Grading this notebook took longer than its budget "
                                      f"({options.notebook_budget:g} s) and was stopped.")
    finally:
        kill_session(proc)  # anything it left behind (the sandbox dies with it)
    try:
        data = json.loads(out)
        questions = [QuestionResult(**q) for q in data.pop("questions")]
        return NotebookResult(**data, questions=questions)
    except (ValueError, TypeError, KeyError):
        return _zero(label, solution, f"The grader failed on this notebook (exit code {proc.returncode}).")


def grade_notebook(path: str | Path, *, solutions_dir: str | Path | None = "solutions", cell_timeout: float = 120,
                   mode: str = "fast", hidden: bool = True, options: GradingOptions | None = None) -> NotebookResult:
    """Run and score one notebook: against the solution of the same file name in ``solutions_dir``
    (sandboxed), or, with ``hidden=False`` or no such solution, from its own visible checks
    (feedback, not a grade)."""
    options = options or GradingOptions(mode=mode, cell_timeout=cell_timeout)
    path = Path(path)
    solution = find_solution(path.name, Path(solutions_dir)) if hidden and solutions_dir is not None else None
    if hidden and solution is not None and not options.hidden:
        options = GradingOptions(**{**options.__dict__, "hidden": (str(Path(solutions_dir)),)})
    return grade_file(path, solution, options, label=str(path))


def grade_notebooks(paths, *, solutions_dir: str | Path | None = "solutions", cell_timeout: float = 120,
                    out_dir: str | Path | None = None, pass_mark: float | None = None, mode: str = "fast",
                    verbose: bool = False, hidden: bool = True, options: GradingOptions | None = None) -> GradeReport:
    """Grade each notebook in its own sandbox; write ``grades.json`` and ``grades.md`` to ``out_dir``.

    ``cell_timeout`` is seconds per code cell; ``pass_mark`` a fraction of all points (0.6 = 60%);
    ``verbose`` prints one progress line per notebook to stderr (CI logs of long runs).
    """
    if pass_mark is not None and not 0 <= pass_mark <= 1:
        raise ValueError(f"pass_mark is a fraction of the points between 0 and 1 (e.g. 0.6), not {pass_mark}.")
    report = GradeReport(pass_mark=pass_mark, feedback_only=not hidden)
    for path in paths:
        if verbose:
            print(f"grading {printable(str(path), one_line=True)} ...", file=sys.stderr, flush=True)
        result = grade_notebook(path, solutions_dir=solutions_dir, cell_timeout=cell_timeout, mode=mode,
                                hidden=hidden, options=options)
        report.notebooks.append(result)
        if verbose:
            print(f"  {result.points:g} / {result.max_points:g} points in {result.seconds:.0f} s",
                  file=sys.stderr, flush=True)
    if out_dir is not None:
        report.write(out_dir)
    return report
