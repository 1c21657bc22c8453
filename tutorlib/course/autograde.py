"""The autograder: run each learner notebook in a fresh kernel and score every graded question.

How a notebook is graded (what a notebook author and a learner need to know):

1. The notebook runs top to bottom in its own kernel, started with *this* Python (the kit's
   environment, whatever kernelspecs the machine has), in the notebook's folder, with
   ``TUTORLIB_FAST=1`` (unless ``fast=False``). Every code cell gets ``cell_timeout`` seconds.
2. Before running, every graded test cell (nbgrader ``grade: true``) is replaced by the
   solution notebook's copy with the same ``grade_id``: hidden tests run, and editing a test
   cannot weaken it. The solution is ``solutions_dir/<metadata.tutorlib.solution>`` (written by
   ``build_exercises``) or else the file of the same name. With no solution notebook, the
   learner's own test cells run as they are, and the report says so.
3. A graded test cell scores all its points if it runs without an error, none otherwise. A cell
   that raises is recorded and grading goes on; a cell past its time is interrupted; a kernel
   that dies or will not stop is restarted (later cells then run without the earlier state).
4. The learner sees the error's last lines (an :class:`~tutorlib.course.checks.AnswerError` message, or
   ``NameError: ...``), plus which earlier cell failed first, never a wall of traceback.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

from ipykernel.kernelspec import RESOURCES, make_ipkernel_cmd
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import default

from tutorlib.course.builder import graded_tests, is_graded_test, nbgrader_meta, read_notebook
from tutorlib.course.report import GradeReport, NotebookResult, QuestionResult

_TIMEOUT = "CellTimeout"  # our marker for "stopped at its time limit" (nbclient reports it as an error)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_MESSAGE_LIMIT = 800  # characters of error text kept per question


class _ThisPythonKernels(KernelSpecManager):
    """Every kernel name resolves to ipykernel on ``sys.executable``: a notebook's own kernelspec
    (or a user-level 'python3' pointing at another Python) can never pick the wrong interpreter."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        # log_level=ERROR: the kernel's start-up warnings would only clutter the grader's output.
        argv = make_ipkernel_cmd(extra_arguments=["--IPKernelApp.log_level=ERROR"])
        return KernelSpec(argv=argv, display_name="tutorlib grader", language="python", resource_dir=RESOURCES)


class _GraderKernelManager(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _default_specs(self) -> KernelSpecManager:
        return _ThisPythonKernels()


@dataclass
class CellOutcome:
    """What happened to one code cell: status is 'ok', 'error', 'timeout' or 'kernel died'."""

    status: str
    message: str = ""
    seconds: float = 0.0


@dataclass
class _Run:
    outcomes: dict[int, CellOutcome] = field(default_factory=dict)  # cell index -> outcome
    notes: list[str] = field(default_factory=list)
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


async def _kernel_responds(client: NotebookClient, seconds: float) -> bool:
    """Ask the kernel for its info on the shell channel: it answers only once it is idle again."""
    msg_id = client.kc.kernel_info()
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ensure_async(client.kc.shell_channel.get_msg(timeout=left))
        except Empty:
            return False
        if msg["parent_header"].get("msg_id") == msg_id:
            return True
    return False


async def _restart(client: NotebookClient) -> None:
    """Kill and restart the kernel (same connection), then connect a fresh client."""
    await ensure_async(client.km.restart_kernel(now=True))
    await ensure_async(client.kc.stop_channels())
    client.kc = None
    await client.async_start_new_kernel_client()


async def _run_cells(nb, cwd: Path, cell_timeout: float, env: dict[str, str], run: _Run) -> None:
    """Execute every code cell of ``nb`` in order in one kernel, recording into ``run`` as it goes
    (so a grader failure half-way keeps what was graded); never raises for a cell's fault."""
    replies: dict[int, dict] = {}
    client = NotebookClient(
        nb, kernel_manager_class=_GraderKernelManager, timeout=int(max(1, cell_timeout)),
        interrupt_on_timeout=True, allow_errors=True, record_timing=False,
        iopub_timeout=2,  # grading reads the replies, not the outputs: do not wait long for them
        # After the interrupt, nbclient reports this at once instead of waiting for a reply that
        # may never come; _kernel_responds then tells whether the kernel actually stopped.
        error_on_timeout={"ename": _TIMEOUT, "evalue": "", "traceback": []},
        resources={"metadata": {"path": str(cwd)}}, shutdown_kernel="immediate",
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
    )
    started = time.perf_counter()
    async with client.async_setup_kernel(env=env):
        run.kernel_start_s = time.perf_counter() - started
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            t0 = time.perf_counter()
            try:
                await client.async_execute_cell(cell, i)
                content = replies.pop(i)["content"]
            except DeadKernelError:
                run.outcomes[i] = CellOutcome("kernel died", "The kernel died while running this cell "
                                              "(out of memory? a crash in native code?).")
                run.notes.append(f"The kernel died in cell {i + 1}; it was restarted, so later cells "
                                 "ran without the variables defined before it.")
                await _restart(client)
                continue
            seconds = time.perf_counter() - t0
            if content["status"] == "ok":
                run.outcomes[i] = CellOutcome("ok", seconds=seconds)
            elif content.get("ename") == _TIMEOUT:
                run.outcomes[i] = CellOutcome("timeout", f"This cell ran longer than {cell_timeout:g} s and "
                                              "was stopped (an endless loop? too much work for fast mode?).",
                                              seconds)
                if not await _kernel_responds(client, seconds=min(5.0, cell_timeout)):
                    run.notes.append(f"Cell {i + 1} ignored the interrupt; the kernel was restarted, so "
                                     "later cells ran without the variables defined before it.")
                    await _restart(client)
            else:
                msg = learner_message(content.get("ename", "Error"), content.get("evalue", ""),
                                      content.get("traceback", []))
                run.outcomes[i] = CellOutcome("error", msg, seconds)


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


def grade_notebook(path: str | Path, *, solutions_dir: str | Path = "solutions", cell_timeout: float = 120,
                   fast: bool = True) -> NotebookResult:
    """Run and score one notebook (see the module docstring for the rules). Never raises for
    anything the notebook does; an unreadable notebook scores zero with a note."""
    path, started = Path(path), time.perf_counter()
    result = NotebookResult(path=str(path))
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as e:
        nb = None
        result.notes.append(f"Could not read the notebook ({type(e).__name__}: {e}); every question scores 0.")
    solution_path, solution = find_solution(path, nb, Path(solutions_dir)), None
    if solution_path is not None:
        try:
            solution = read_notebook(solution_path)
            result.solution = str(solution_path)
        except (OSError, ValueError) as e:
            result.notes.append(f"The solution notebook {solution_path} could not be read ({e}).")
    if solution is None:
        result.notes.append(f"No solution notebook for {path.name} in {solutions_dir}: your own test cells "
                            "ran as they are (no hidden tests).")
    defines_questions = solution if solution is not None else nb  # the solution's points, if any
    questions = _questions_of(defines_questions) if defines_questions is not None else {}
    outcome_of: dict[str, tuple[int, CellOutcome]] = {}
    if nb is not None:
        reference = graded_tests(solution) if solution is not None else {}
        for gid, (_, ref_cell) in reference.items():  # the solution's tests replace the learner's copy
            if gid in (mine := graded_tests(nb)):
                nb.cells[mine[gid][0]].source = ref_cell.source
        extra = sorted(set(graded_tests(nb)) - set(questions))
        if extra:
            result.notes.append(f"Test cells not in the solution were run but not scored: {', '.join(extra)}.")
        env = dict(os.environ)
        if fast:
            env["TUTORLIB_FAST"] = "1"
        else:
            env.pop("TUTORLIB_FAST", None)
        run = _Run()
        try:
            run_sync(_run_cells)(nb, path.parent.resolve(), cell_timeout, env, run)
        except Exception as e:  # e.g. the kernel would not start: a grader problem, not the learner's
            run.notes.append(f"The grader could not run the notebook to the end ({type(e).__name__}: {e}).")
        result.notes += run.notes
        result.kernel_start_s = round(run.kernel_start_s, 2)
        earlier: list[str] = []  # failures since the previous graded cell: what a test depends on
        for i, cell in enumerate(nb.cells):
            outcome = run.outcomes.get(i)
            if is_graded_test(cell) and nbgrader_meta(cell).get("grade_id") in questions:
                if outcome is not None and outcome.status != "ok" and earlier:
                    outcome.message += f"\n(an earlier cell failed first: {earlier[-1]})"
                outcome_of[nbgrader_meta(cell)["grade_id"]] = (i, outcome or CellOutcome("not run", "This cell was not run (see the notes below)."))
                earlier = []
            elif outcome is not None and outcome.status != "ok":
                earlier.append(_what_went_wrong(i, outcome, cell_timeout))
    for gid, possible in questions.items():
        if gid not in outcome_of:
            result.questions.append(QuestionResult(gid, 0.0, possible, "missing", "This graded test cell is "
                                                   "missing from the notebook (or its metadata was changed): "
                                                   "copy it back from the exercise."))
            continue
        index, outcome = outcome_of[gid]
        passed = outcome.status == "ok"
        status = "passed" if passed else {"error": "failed"}.get(outcome.status, outcome.status)
        result.questions.append(QuestionResult(gid, possible if passed else 0.0, possible, status,
                                               outcome.message, cell=index + 1))
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def grade_notebooks(paths, *, solutions_dir: str | Path = "solutions", cell_timeout: float = 120,
                    out_dir: str | Path | None = None, pass_mark: float | None = None,
                    fast: bool = True, verbose: bool = False) -> GradeReport:
    """Grade each notebook in its own kernel; write ``grades.json`` and ``grades.md`` to ``out_dir``.

    ``cell_timeout`` is seconds per code cell; ``pass_mark`` a fraction of all points (0.6 = 60%);
    ``verbose`` prints one progress line per notebook to stderr (CI logs of long runs).
    """
    if pass_mark is not None and not 0 <= pass_mark <= 1:
        raise ValueError(f"pass_mark is a fraction of the points between 0 and 1 (e.g. 0.6), not {pass_mark}.")
    report = GradeReport(pass_mark=pass_mark)
    for path in paths:
        if verbose:
            print(f"grading {path} ...", file=sys.stderr, flush=True)
        result = grade_notebook(path, solutions_dir=solutions_dir, cell_timeout=cell_timeout, fast=fast)
        report.notebooks.append(result)
        if verbose:
            print(f"  {result.points:g} / {result.max_points:g} points in {result.seconds:.0f} s",
                  file=sys.stderr, flush=True)
    if out_dir is not None:
        report.write(out_dir)
    return report
