"""The autograder: run each learner notebook in a fresh process and score every graded question.

How a notebook is graded (what a notebook author and a learner need to know):

1. The cells run top to bottom in a fresh Python process of *this* environment
   (:mod:`tutorlib.course.checker`, not a Jupyter kernel: IPython's input and AST transformers do
   not exist there), in the notebook's folder, with ``TUTORLIB_FAST=1`` (unless ``fast=False``),
   importing the kit from a private copy made when grading starts. Every cell gets ``cell_timeout``
   seconds.
2. With the teacher's solution notebook (``solutions_dir/<metadata.tutorlib.solution>`` or the file
   of the same name), every given cell and every graded test cell runs the *solution's* source
   (visible and hidden checks); only the answer cells (and cells the learner added) run the
   learner's code. Tests run in their own namespace with check helpers captured before any learner
   code ran (see the checker's docstring and ``THREAT_MODEL.md``). Without a solution notebook
   (``hidden=False``, a learner's own run) the notebook's own cells run as they are: that is
   feedback from the visible checks, not a grade.
3. A graded test cell scores its points if it runs without an error; a cell split into
   ``### PART n points`` parts scores each part on its own. A cell that raises is recorded and
   grading goes on; a cell past its time is interrupted; a process that dies or will not stop is
   restarted at the next cell (later cells then run without the earlier state).
4. Tamper evidence (:mod:`tutorlib.course.tamper`): an edited, deleted or moved given cell, an
   answer that reaches for the grader's machinery, a change to the kit's modules or files found at
   run time: the notebook is *flagged for review* and its points are withheld until the teacher
   accepts them (an overrides file, :mod:`tutorlib.course.gradebook`).
5. The learner sees the error's last lines (an :class:`~tutorlib.course.checks.AnswerError` message,
   or ``NameError: ...``), plus which earlier cell failed first, never a wall of traceback.
6. Markdown answer cells ("Think" questions) are copied into the report for marking by hand.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tutorlib.course.builder import (
    graded_tests,
    is_answer_cell,
    is_graded_test,
    make_exercise,
    nbgrader_meta,
    read_notebook,
    split_test_parts,
)
from tutorlib.course.checker import python_source
from tutorlib.course.report import GradeReport, NotebookResult, QuestionResult
from tutorlib.course.tamper import cell_sha256, reaches_for_the_grader

_TIMEOUT = "CellTimeout"
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_MESSAGE_LIMIT = 800  # characters of error text kept per question
_PUBLIC_IMPORT = re.compile(r"^\s*from tutorlib import (.+)$", re.M)


@dataclass
class CellOutcome:
    """What happened to one step (a cell, or a part of a test cell): status is 'ok', 'error',
    'timeout' or 'kernel died' (the grading process died)."""

    status: str
    message: str = ""
    seconds: float = 0.0


@dataclass
class _Run:
    outcomes: dict[int, CellOutcome] = field(default_factory=dict)  # step id -> outcome
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    kernel_start_s: float = 0.0


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


class _KitCopy:
    """A private copy of the kit's package that grading processes import (never the files a
    learner's code could have edited before grading), with a checksum of every file."""

    def __init__(self):
        import tutorlib

        source = Path(tutorlib.__file__).parent
        self.root = Path(tempfile.mkdtemp(prefix="tutorlib-grader-"))
        shutil.copytree(source, self.root / "tutorlib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in (self.root / "tutorlib").rglob("*"):
            path.chmod(0o444 if path.is_file() else 0o555)
        self.manifest = self._hashes()
        atexit.register(self.remove)

    def remove(self) -> None:
        """Delete the copy (its files are read-only: make them writable first)."""
        for path in sorted(self.root.rglob("*"), reverse=True):
            path.chmod(0o700)
        shutil.rmtree(self.root, ignore_errors=True)

    def _hashes(self) -> dict[str, str]:
        return {str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((self.root / "tutorlib").rglob("*.py"))}

    def changed(self) -> list[str]:
        """Files of the copy that differ from when it was made (a learner's code wrote to them)."""
        now = self._hashes()
        return sorted(k for k in set(now) | set(self.manifest) if now.get(k) != self.manifest.get(k))


_KIT: _KitCopy | None = None


def _kit_copy(renew: bool = False) -> _KitCopy:
    global _KIT
    if _KIT is None or renew or not (_KIT.root / "tutorlib").is_dir():
        if _KIT is not None:
            _KIT.remove()
        _KIT = _KitCopy()
    return _KIT


def _read_lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _run_steps(steps: list[dict], job: dict, cwd: Path, cell_timeout: float, env: dict[str, str], run: _Run) -> None:
    """Run ``steps`` in grading processes (restarting after a death or a stuck step), recording
    each step's outcome in ``run``; never raises for the notebook's fault."""
    token, start, first = secrets.token_hex(16), 0, True
    while start < len(steps):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "tutorlib.course.checker"], cwd=cwd, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
        proc.stdin.write(json.dumps(dict(job, token=token, steps=steps, start=start)))
        proc.stdin.close()
        current, deadline, interrupted, restart_at = None, None, False, None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                line = lines.get(timeout=wait if current is not None else 600)
            except queue.Empty:
                if current is None:
                    continue
                if not interrupted:  # past its time: interrupt, then give it a few seconds to stop
                    proc.send_signal(signal.SIGINT)
                    interrupted, deadline = True, time.monotonic() + min(5.0, cell_timeout)
                    continue
                proc.kill()
                step = steps[current]
                run.outcomes[current] = CellOutcome("timeout", _timeout_text(cell_timeout), cell_timeout)
                run.notes.append(f"Cell {step['cell'] + 1} ignored the interrupt; the process was restarted, so "
                                 "later cells ran without the variables defined before it.")
                restart_at = current + 1
                break
            if line is None:  # the process ended
                proc.wait()
                if current is not None:
                    step = steps[current]
                    run.outcomes[current] = CellOutcome("kernel died", "The process running the notebook died in "
                                                        "this cell (it exited, ran out of memory, or crashed).")
                    run.notes.append(f"The kernel died in cell {step['cell'] + 1} (the notebook's process ended); "
                                     "it was restarted, so later cells ran without the variables defined before it.")
                    restart_at = current + 1
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("token") != token:
                run.flags.append("something other than the grader wrote to the grader's result channel")
                continue
            if record["event"] == "start":
                if first:
                    run.kernel_start_s, first = time.perf_counter() - t0, False
                current, interrupted = record["step"], False
                deadline = time.monotonic() + cell_timeout
                continue
            step, current, deadline = steps[record["step"]], None, None
            for flag in record.get("flags", []):
                run.flags.append(f"cell {step['cell'] + 1}: {flag}")
            if record["status"] == "ok":
                run.outcomes[record["step"]] = CellOutcome("ok", seconds=record["seconds"])
            elif record["status"] == "timeout":
                run.outcomes[record["step"]] = CellOutcome("timeout", _timeout_text(cell_timeout), record["seconds"])
            else:
                run.outcomes[record["step"]] = CellOutcome(
                    "error", learner_message(record["ename"], record["evalue"], record["traceback"]), record["seconds"])
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        start = restart_at if restart_at is not None else len(steps)


def _timeout_text(cell_timeout: float) -> str:
    return (f"This cell ran longer than {cell_timeout:g} s and was stopped (an endless loop? too much work "
            "for fast mode?).")


def find_solution(notebook_path: Path, nb, solutions_dir: Path) -> Path | None:
    """The solution notebook for a learner notebook: the one named in its ``tutorlib`` metadata,
    else the only file of the same name under ``solutions_dir``; None if there is none."""
    named = (nb.metadata.get("tutorlib") or {}).get("solution") if nb is not None else None
    if named and (solutions_dir / named).is_file() \
            and (solutions_dir / named).resolve().is_relative_to(solutions_dir.resolve()):
        return solutions_dir / named
    if not solutions_dir.is_dir():
        return None
    same_name = [p for p in solutions_dir.rglob(notebook_path.name) if ".ipynb_checkpoints" not in p.parts]
    return same_name[0] if len(same_name) == 1 else None


def _what_went_wrong(index: int, outcome: CellOutcome, cell_timeout: float) -> str:
    """One line about a failed (non-test) cell, for the message of the test that follows it."""
    if outcome.status == "timeout":
        return f"cell {index + 1} was stopped after {cell_timeout:g} s"
    if outcome.status == "kernel died":
        return f"the kernel died in cell {index + 1}"
    lines = outcome.message.splitlines() or ["an error"]
    # "ValueError: ..." is the line to show; a bare assert's message ends with "AssertionError:".
    shown = lines[0] if re.match(r"\w+(Error|Exception)\b", lines[0]) else lines[-1]
    return f"cell {index + 1} raised {shown}"


def _questions_of(nb) -> dict[str, float]:
    return {gid: float(nbgrader_meta(cell).get("points", 0)) for gid, (_, cell) in graded_tests(nb).items()}


@dataclass
class _Plan:
    """What to run for one learner notebook, and what the plan already shows."""

    steps: list[dict] = field(default_factory=list)
    parts: dict[str, list[tuple[str, float, int | None]]] = field(default_factory=dict)  # gid -> (label, pts, step)
    shared: dict[str, int] = field(default_factory=dict)  # gid -> step id of the code shared by its parts
    test_cell: dict[str, int] = field(default_factory=dict)  # gid -> cell index in the learner's notebook
    flags: list[str] = field(default_factory=list)
    free_text: dict[str, str] = field(default_factory=dict)


def _add_test(plan: _Plan, index: int, gid: str, source: str, points: float) -> None:
    shared, parts = split_test_parts(source, points)
    plan.test_cell[gid] = index
    if shared.strip():
        plan.shared[gid] = len(plan.steps)
    plan.steps.append({"id": len(plan.steps), "cell": index, "kind": "test", "source": python_source(shared),
                       "new_namespace": True})
    plan.parts[gid] = []
    for label, pts, code in parts:
        plan.parts[gid].append((label, pts, len(plan.steps)))
        plan.steps.append({"id": len(plan.steps), "cell": index, "kind": "test", "source": python_source(code),
                           "new_namespace": False})


def plan_notebook(nb, solution, questions: dict[str, float]) -> _Plan:
    """The steps for a learner notebook: with ``solution``, given and test cells run the teacher's
    source and every difference from the built exercise is a flag; without it, the notebook's own."""
    plan = _Plan()
    trusted_cells, built_order = {}, []
    if solution is not None:
        exercise = make_exercise(solution)
        trusted_cells = {c.get("id"): (c, e) for c, e in zip(solution.cells, exercise.cells) if not is_answer_cell(c)}
        built_order = [c.get("id") for c in exercise.cells]
    else:
        given = (nb.metadata.get("tutorlib") or {}).get("given_sha256") or {}
    answers = {nbgrader_meta(c).get("grade_id") for c in (solution or nb).cells if is_answer_cell(c)}
    seen_order = []
    for i, cell in enumerate(nb.cells):
        meta, cid = nbgrader_meta(cell), cell.get("id")
        gid = meta.get("grade_id")
        if is_answer_cell(cell) and gid in answers:
            seen_order.append(cid)
            if cell.cell_type == "markdown":
                plan.free_text[gid] = cell.source.strip()
            elif cell.cell_type == "code":
                source = python_source(cell.source)
                plan.flags += [f"cell {i + 1} ({gid}): {hit}" for hit in reaches_for_the_grader(source)]
                plan.steps.append({"id": len(plan.steps), "cell": i, "kind": "answer", "source": source})
            continue
        if solution is not None and cid in trusted_cells:
            seen_order.append(cid)
            trusted, built = trusted_cells[cid]
            if cell_sha256(cell.source) not in (cell_sha256(built.source), cell_sha256(trusted.source)) \
                    or cell.cell_type != built.cell_type:
                plan.flags.append(f"cell {i + 1}: a given cell was edited (it must stay as it was handed out)")
            if trusted.cell_type != "code":
                continue
            if is_graded_test(trusted) and nbgrader_meta(trusted).get("grade_id") in questions:
                tgid = nbgrader_meta(trusted)["grade_id"]
                _add_test(plan, i, tgid, trusted.source, questions[tgid])
            else:
                plan.steps.append({"id": len(plan.steps), "cell": i, "kind": "given",
                                   "source": python_source(trusted.source)})
            continue
        if solution is None and cell.cell_type == "code":  # feedback: the notebook's own cells
            if cid in given and cell_sha256(cell.source) != given[cid]:
                plan.flags.append(f"cell {i + 1}: a given cell was edited (it must stay as it was handed out)")
            if is_graded_test(cell) and gid in questions:
                _add_test(plan, i, gid, cell.source, questions[gid])
            else:
                plan.steps.append({"id": len(plan.steps), "cell": i, "kind": "given", "source": python_source(cell.source)})
            continue
        if cell.cell_type == "code" and cell.source.strip():  # a cell the learner added: their code
            source = python_source(cell.source)
            plan.flags += [f"cell {i + 1} (added by the learner): {hit}" for hit in reaches_for_the_grader(source)]
            plan.steps.append({"id": len(plan.steps), "cell": i, "kind": "answer", "source": source})
    if solution is not None:
        missing = [cid for cid in built_order if cid in trusted_cells and cid not in seen_order]
        for cid in missing:
            cell = trusted_cells[cid][0]
            what = f"graded test cell {nbgrader_meta(cell)['grade_id']}" if is_graded_test(cell) else "a given cell"
            first = cell.source.strip().splitlines()[:1]
            plan.flags.append(f"{what} was deleted" + (f' ("{first[0][:40]}")' if first else ""))
        expected = [cid for cid in built_order if cid in seen_order]
        if expected != seen_order:
            plan.flags.append("cells were moved: they no longer come in the order they were handed out")
    return plan


def _public_modules(solution) -> list[str]:
    """The kit modules whose names the solution's given and test cells import from ``tutorlib``."""
    import tutorlib

    names = set()
    for cell in solution.cells if solution is not None else []:
        if cell.cell_type == "code" and not is_answer_cell(cell):
            for group in _PUBLIC_IMPORT.findall(cell.source):
                names.update(n.strip().split(" as ")[0] for n in group.strip("()").split(","))
    return sorted({tutorlib._HOME[n] for n in names if n in tutorlib._HOME})


def grade_notebook(path: str | Path, *, solutions_dir: str | Path | None = "solutions", cell_timeout: float = 120,
                   fast: bool = True, hidden: bool = True) -> NotebookResult:
    """Run and score one notebook (see the module docstring for the rules). Never raises for
    anything the notebook does; an unreadable notebook scores zero with a note. ``hidden=False``
    gives feedback from the notebook's own (visible) checks and never reads a solution."""
    path, started = Path(path), time.perf_counter()
    result = NotebookResult(path=str(path))
    try:
        nb = read_notebook(path)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, TypeError) as e:
        nb = None
        result.notes.append(f"Could not read the notebook ({type(e).__name__}: {str(e)[:200]}); "
                            "every question scores 0.")
    solution_path, solution = None, None
    if hidden and solutions_dir is not None:
        solution_path = find_solution(path, nb, Path(solutions_dir))
    if solution_path is not None:
        try:
            solution = read_notebook(solution_path)
            result.solution = str(solution_path)
        except (OSError, ValueError) as e:
            result.notes.append(f"The solution notebook {solution_path} could not be read ({e}).")
    if solution is None:
        result.notes.append(f"No solution notebook for {path.name}" + (f" in {solutions_dir}" if hidden else "")
                            + ": the notebook's own test cells ran as they are (visible checks only, "
                            "no hidden tests): this is feedback, not a grade.")
    defines_questions = solution if solution is not None else nb  # the solution's points, if any
    questions = _questions_of(defines_questions) if defines_questions is not None else {}
    if nb is not None:
        plan = plan_notebook(nb, solution, questions)
        result.free_text = plan.free_text
        extra = sorted(set(graded_tests(nb)) - set(questions))
        if extra:
            result.notes.append(f"Test cells not in the solution were not run: {', '.join(extra)}.")
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
        kit = _kit_copy()
        env["PYTHONPATH"] = os.pathsep.join([str(kit.root)] + [p for p in [env.get("PYTHONPATH")] if p])
        if fast:
            env["TUTORLIB_FAST"] = "1"
        else:
            env.pop("TUTORLIB_FAST", None)
        meta = (solution.metadata.get("tutorlib") or {}) if solution is not None else {}
        job = {"not_in_answers": list(meta.get("not_in_answers", [])), "preload": _public_modules(solution)}
        run = _Run()
        try:
            _run_steps(plan.steps, job, path.parent.resolve(), cell_timeout, env, run)
        except Exception as e:  # e.g. the process would not start: a grader problem, not the learner's
            run.notes.append(f"The grader could not run the notebook to the end ({type(e).__name__}: {e}).")
        if kit.changed():
            run.flags.append("the kit's files were changed on disk while this notebook ran: "
                             + ", ".join(kit.changed()[:5]))
            _kit_copy(renew=True)
        result.notes += run.notes
        result.flags = plan.flags + run.flags
        result.kernel_start_s = round(run.kernel_start_s, 2)
        _score(result, plan, run, questions, cell_timeout)
    else:
        result.questions = [QuestionResult(gid, 0.0, pts, "missing", "The notebook could not be read.")
                            for gid, pts in questions.items()]
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _score(result: NotebookResult, plan: _Plan, run: _Run, questions: dict[str, float], cell_timeout: float) -> None:
    """One QuestionResult per question, from the steps' outcomes (parts scored one by one)."""
    failures: dict[int, str] = {}  # test cell index -> the last failed non-test cell before it
    last = None
    for step in plan.steps:
        outcome = run.outcomes.get(step["id"])
        if step["kind"] == "test":
            if step.get("new_namespace") and last is not None:
                failures[step["cell"]], last = last, None
        elif outcome is not None and outcome.status != "ok":
            last = _what_went_wrong(step["cell"], outcome, cell_timeout)
    for gid, possible in questions.items():
        if gid not in plan.parts:
            result.questions.append(QuestionResult(gid, 0.0, possible, "missing", "This graded test cell is "
                                                   "missing from the notebook (or its metadata was changed): "
                                                   "copy it back from the exercise."))
            continue
        cell = plan.test_cell[gid]
        not_run = CellOutcome("not run", "This cell was not run (see the notes below).")
        shared = run.outcomes.get(plan.shared[gid], not_run) if gid in plan.shared else CellOutcome("ok")
        points, messages, statuses, parts = 0.0, [], [], []
        for label, pts, step_id in plan.parts[gid]:
            outcome = shared if shared.status != "ok" else run.outcomes.get(step_id, not_run)
            passed = outcome.status == "ok"
            points += pts if passed else 0.0
            statuses.append(outcome.status)
            if not passed and outcome.message and outcome.message not in messages:
                messages.append(outcome.message)
            if label:
                parts.append({"label": label, "points": pts if passed else 0.0, "max_points": pts,
                              "status": "passed" if passed else outcome.status})
        message = "\n".join(messages)
        if message and cell in failures:
            message += f"\n(an earlier cell failed first: {failures[cell]})"
        failed = [s for s in statuses if s != "ok"]
        status = "passed" if not failed else ("partial" if points > 0 else
                                              {"error": "failed"}.get(failed[0], failed[0]))
        result.questions.append(QuestionResult(gid, points, possible, status, message, cell=cell + 1, parts=parts))


def grade_notebooks(paths, *, solutions_dir: str | Path | None = "solutions", cell_timeout: float = 120,
                    out_dir: str | Path | None = None, pass_mark: float | None = None,
                    fast: bool = True, verbose: bool = False, hidden: bool = True) -> GradeReport:
    """Grade each notebook in its own kernel; write ``grades.json`` and ``grades.md`` to ``out_dir``.

    ``cell_timeout`` is seconds per code cell; ``pass_mark`` a fraction of all points (0.6 = 60%);
    ``verbose`` prints one progress line per notebook to stderr (CI logs of long runs).
    """
    if pass_mark is not None and not 0 <= pass_mark <= 1:
        raise ValueError(f"pass_mark is a fraction of the points between 0 and 1 (e.g. 0.6), not {pass_mark}.")
    report = GradeReport(pass_mark=pass_mark, feedback_only=not hidden)
    for path in paths:
        if verbose:
            print(f"grading {path} ...", file=sys.stderr, flush=True)
        result = grade_notebook(path, solutions_dir=solutions_dir, cell_timeout=cell_timeout, fast=fast,
                                hidden=hidden)
        report.notebooks.append(result)
        if verbose:
            print(f"  {result.points:g} / {result.max_points:g} points in {result.seconds:.0f} s",
                  file=sys.stderr, flush=True)
    if out_dir is not None:
        report.write(out_dir)
    return report
