"""Grade one notebook: the learner's code in its sandbox, the verdict in the grader's own process.

How a notebook is graded (what a notebook author and a learner need to know):

1. Its cells run top to bottom in a *learner's kernel* (:mod:`tutorlib.course.kernel`) inside a
   sandbox (:mod:`tutorlib.course.sandbox`). Given cells (setup, instructions' code) run the
   teacher's solution's source, answer cells the learner's, and every graded test cell's visible
   checks run there too: their result is feedback for the learner, never points.
2. The given cells also run here, in the grader's trusted namespace, so a hidden test has the same
   helpers (``small_bert``, ``batch``...) on its side.
3. At each graded test cell, its hidden tests (``### BEGIN HIDDEN TESTS`` .. ``### END HIDDEN
   TESTS``) run *here*, with ``learner`` (:class:`tutorlib.course.learner.Learner`) to ask the
   kernel for plain data. Hidden test code and expected values never enter the learner's process.
   A hidden test scores its points when it runs without an error; ``### PART n points: ...`` lines
   inside the hidden region split it into parts scored one by one (code before the first part is
   shared: if it fails, every part fails).
4. A cell past its time, or a kernel that dies, stops that cell; the kernel is restarted with the
   given cells replayed, so later questions still have the setup (not the earlier answers).
   The notebook as a whole has a time budget; what is left when it is spent is "not run".
5. The learner sees the error's last lines (their own code's error, or the check's headline with
   what they gave), never the hidden test's source or its expected values.

Without a solution (``solution=None``: a learner's own ``--feedback`` run) the notebook's own
cells run as they are, its visible checks give the points, and that is feedback, not a grade.

Run as ``python -m tutorlib.course.verdict``: one JSON job on stdin, the :class:`NotebookResult`
as JSON on stdout. :func:`tutorlib.course.autograde.grade_notebook` starts it, one per notebook.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tutorlib.course.builder import (
    graded_tests,
    is_answer_cell,
    is_graded_test,
    make_exercise,
    nbgrader_meta,
    read_notebook,
    split_hidden,
    split_test_parts,
)
from tutorlib.course.checker import CHECK_NAMES, Stub, python_source
from tutorlib.course.learner import KernelConnection, KernelGone, Learner, LearnerError, error_text
from tutorlib.course.report import NotebookResult, QuestionResult
from tutorlib.course.sandbox import Limits, start_kernel
from tutorlib.course.tamper import cell_sha256, reaches_for_the_grader

_PUBLIC_IMPORT = re.compile(r"^\s*from tutorlib import (.+)$", re.M)
_SAFE_LABELS = ("got", "got shape", "hint")  # lines of a hidden check's message a learner may see


@dataclass
class Settings:
    """How one notebook is graded."""

    mode: str = "fast"  # TUTORLIB_MODE inside the kernel
    cell_timeout: float = 120.0  # seconds per cell and per question to the kernel
    budget: float = 900.0  # seconds for the whole notebook
    limits: Limits = field(default_factory=Limits)
    unsafe: bool = False  # no sandbox (a learner's own feedback run, or --unsafe-no-sandbox)
    hidden: list[str] = field(default_factory=list)  # folders never visible in the sandbox
    workdir: str | None = None  # without a sandbox: the notebook's own folder (as in Jupyter)


# --- the plan: what runs where --------------------------------------------------------------

@dataclass
class Step:
    kind: str  # given | answer | test
    cell: int  # index in the learner's notebook
    source: str = ""  # given/answer: plain Python
    gid: str = ""  # test: the question
    visible: str = ""  # test: the visible checks (run in the kernel)
    parts: list[tuple[str, float, str]] = field(default_factory=list)  # test: (label, points, code)
    shared: str = ""  # test: code before the first part


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    free_text: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _test_step(index: int, gid: str, source: str, points: float, graded: bool) -> Step:
    visible, hidden = split_hidden(source)
    step = Step("test", index, gid=gid, visible=python_source(visible))
    code = hidden if graded else visible
    if code is None:  # a graded test cell with no hidden tests: nothing outside the sandbox to score it
        return step
    shared, parts = split_test_parts(code, points)
    step.shared = python_source(shared)
    step.parts = [(label, pts, python_source(part)) for label, pts, part in parts]
    if not graded:  # feedback: the visible parts are the parts; they run in the kernel
        step.visible = ""
    return step


def plan_notebook(nb, solution, questions: dict[str, float]) -> Plan:
    """The steps for a learner notebook: with ``solution``, given and test cells run the teacher's
    source and every difference from the built exercise is a flag; without it, the notebook's own.

    With a solution, what a cell *is* comes from the solution, never from the learner's metadata: a cell
    with a given or test cell's id is that cell (its teacher's source runs), whatever metadata it carries;
    a cell is an answer only if the solution has an answer of its grade id and cell type (so markdown is
    free text only where the solution asks for free text); any other cell is code the learner added."""
    plan = Plan()
    trusted_cells, built_order = {}, []
    if solution is not None:
        exercise = make_exercise(solution)
        trusted_cells = {c.get("id"): (c, e) for c, e in zip(solution.cells, exercise.cells) if not is_answer_cell(c)}
        built_order = [c.get("id") for c in exercise.cells]
        given = {}
        ids = _matched_ids(nb, solution, exercise)
    else:
        given = (nb.metadata.get("tutorlib") or {}).get("given_sha256") or {}
        ids = [c.get("id") for c in nb.cells]
    answers = {nbgrader_meta(c).get("grade_id"): c.cell_type for c in (solution or nb).cells if is_answer_cell(c)}
    seen_order = []
    for i, (cell, cid) in enumerate(zip(nb.cells, ids)):
        gid = nbgrader_meta(cell).get("grade_id")
        if solution is not None and cid in trusted_cells:
            seen_order.append(cid)
            trusted, built = trusted_cells[cid]
            if cell_sha256(cell.source) not in (cell_sha256(built.source), cell_sha256(trusted.source)) \
                    or cell.cell_type != built.cell_type:
                plan.flags.append(f"cell {i + 1}: a given cell was edited (it must stay as it was handed out)")
            _add_given_or_test(plan, i, trusted, questions, graded=True)
            continue
        if is_answer_cell(cell) and answers.get(gid) == cell.cell_type:
            seen_order.append(cid)
            if cell.cell_type == "markdown":
                plan.free_text[str(gid)] = str(cell.source).strip()[:5000]
            elif cell.cell_type == "code":
                _add_answer(plan, i, cell.source, f"cell {i + 1} ({gid})")
            continue
        if solution is None and cell.cell_type == "code":  # feedback: the notebook's own cells
            if cid in given and cell_sha256(cell.source) != given[cid]:
                plan.flags.append(f"cell {i + 1}: a given cell was edited (it must stay as it was handed out)")
            _add_given_or_test(plan, i, cell, questions, graded=False)
            continue
        if cell.cell_type == "code" and str(cell.source).strip():  # a cell the learner added: their code
            _add_answer(plan, i, cell.source, f"cell {i + 1} (added by the learner)")
    if solution is not None:
        _order_flags(plan, trusted_cells, built_order, seen_order)
    return plan


def _matched_ids(nb, solution, exercise) -> list:
    """The id of each learner cell as the handed-out exercise knows it. A cell keeps its own id where the
    exercise has it; a cell without a known id (a notebook saved in an older format, nbformat < 4.5, has
    none, and reading it invents random ones) takes the id of the exercise cell with the same nbgrader grade
    id, else of an exercise cell with the same source, each id taken once. Taking an id can only make the
    teacher's source run in place of the learner's, never the other way round."""
    known = {c.get("id") for c in exercise.cells}
    ids = [c.get("id") for c in nb.cells]
    taken = set(ids)  # sets, not lists: a notebook of 20,000 added cells stays linear
    free = [c for c in exercise.cells if c.get("id") not in taken]
    by_grade_id = {nbgrader_meta(c).get("grade_id"): c.get("id") for c in free if nbgrader_meta(c).get("grade_id")}
    by_source = {}
    for c in free:
        if not nbgrader_meta(c).get("grade_id"):
            by_source.setdefault((c.cell_type, cell_sha256(c.source)), []).append(c.get("id"))
    for i, cell in enumerate(nb.cells):
        if ids[i] in known:
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        candidates = [by_grade_id.pop(gid)] if gid in by_grade_id else \
            by_source.get((cell.cell_type, cell_sha256(str(cell.source))), [])
        same = next((cid for cid in candidates if cid not in taken), None)
        if same is not None:
            ids[i] = same
            taken.add(same)
    return ids


def _add_answer(plan: Plan, index: int, source: str, where: str) -> None:
    source = python_source(str(source))
    plan.flags += [f"{where}: {hit}" for hit in reaches_for_the_grader(source)]
    plan.steps.append(Step("answer", index, source))


def _add_given_or_test(plan: Plan, index: int, cell, questions: dict[str, float], graded: bool) -> None:
    if cell.cell_type != "code":
        return
    gid = nbgrader_meta(cell).get("grade_id")
    if is_graded_test(cell) and gid in questions:
        plan.steps.append(_test_step(index, gid, cell.source, questions[gid], graded))
    else:
        plan.steps.append(Step("given", index, python_source(cell.source)))


def _order_flags(plan: Plan, trusted_cells: dict, built_order: list, seen_order: list) -> None:
    missing = [cid for cid in built_order if cid in trusted_cells and cid not in seen_order]
    for cid in missing:
        cell = trusted_cells[cid][0]
        what = f"graded test cell {nbgrader_meta(cell)['grade_id']}" if is_graded_test(cell) else "a given cell"
        first = cell.source.strip().splitlines()[:1]
        plan.flags.append(f"{what} was deleted" + (f' ("{first[0][:40]}")' if first else ""))
    known = set(built_order)
    seen = [cid for cid in seen_order if cid in known]  # an answer split in two: its second half is new, not moved
    expected = [cid for cid in built_order if cid in seen]
    if expected != seen:
        plan.flags.append("cells were moved: they no longer come in the order they were handed out")


# --- running it ------------------------------------------------------------------------------

@dataclass
class Outcome:
    status: str  # ok | error | timeout | kernel died | not run
    message: str = ""


class Runner:
    """Runs a plan: the kernel for the learner's side, this process for the verdict."""

    def __init__(self, plan: Plan, settings: Settings, job: dict, graded: bool):
        self.plan, self.settings, self.job, self.graded = plan, settings, job, graded
        self.deadline = time.monotonic() + settings.budget
        self.connection: KernelConnection | None = None
        self.trusted: dict = {"__name__": "__grader__", "get_ipython": Stub}
        self.given_sources: list[tuple[int, str]] = []
        self.notes: list[str] = []
        self.flags: list[str] = []
        self.kernel_start_s = 0.0
        self.last_failure: str | None = None  # the last failed non-test cell, for the next test's message
        self.results: dict[str, list[tuple[str, float, Outcome]]] = {}
        self.feedback: dict[str, str] = {}  # gid -> the visible checks' message
        self.failed_before: dict[str, str] = {}

    # the kernel
    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _timeout(self) -> float:
        return max(1.0, min(self.settings.cell_timeout, self._left()))

    def _start(self) -> None:
        started = time.perf_counter()
        proc, fd, cleanup = start_kernel([Path(h) for h in self.settings.hidden], self.settings.limits,
                                         self.settings.mode, unsafe=self.settings.unsafe, cwd=self.settings.workdir)
        self.connection = KernelConnection(proc, fd, cleanup)
        reply = self.connection.ask(dict(self.job, op="job"), max(60.0, self._timeout()))
        if not reply["ok"]:
            raise KernelGone("kernel died", f"the kernel could not start ({error_text(reply)})")
        if not self.kernel_start_s:
            self.kernel_start_s = time.perf_counter() - started

    def _kernel(self) -> KernelConnection:
        if self.connection is None or not self.connection.alive:
            replay = self.connection is not None
            self._start()
            if replay:  # the setup again, so later questions have it (not the earlier answers)
                for cell, source in self.given_sources:
                    self.connection.ask({"op": "cell", "kind": "given", "cell": cell, "source": source},
                                        self._timeout())
        return self.connection

    def _run_in_kernel(self, kind: str, cell: int, source: str) -> Outcome:
        try:
            reply = self._kernel().ask({"op": "cell", "kind": kind, "cell": cell, "source": source}, self._timeout())
        except KernelGone as gone:
            self.notes.append(f"Cell {cell + 1}: the notebook's process {gone}; it was restarted, so later cells "
                              "ran without the variables your earlier cells defined.")
            return Outcome(gone.status, f"cell {cell + 1}: the notebook's process {gone}")
        if reply["ok"]:
            return Outcome("ok")
        status = "timeout" if reply.get("ename") == "CellTimeout" else "error"
        return Outcome(status, error_text(reply))

    # the steps
    def run(self) -> None:
        for step in self.plan.steps:
            if self._left() <= 0:
                self.notes.append(f"The notebook's time budget ({self.settings.budget:g} s) was spent before cell "
                                  f"{step.cell + 1}; the rest was not run.")
                break
            if step.kind == "given":
                self._given(step)
            elif step.kind == "answer":
                outcome = self._run_in_kernel("answer", step.cell, step.source)
                if outcome.status != "ok":
                    self.last_failure = _what_went_wrong(step.cell, outcome)
            else:
                self._test(step)
        if self.connection is not None:
            self.flags += self.connection.flags
            self.connection.close()

    def _given(self, step: Step) -> None:
        outcome = self._run_in_kernel("given", step.cell, step.source)
        if outcome.status == "ok":  # replayed after a restart (a cell that failed is not)
            self.given_sources.append((step.cell, step.source))
        else:
            self.last_failure = _what_went_wrong(step.cell, outcome)
        if self.graded:
            try:
                exec(compile(step.source, f"<given cell {step.cell + 1}>", "exec"), self.trusted)
            except BaseException as e:  # noqa: BLE001 - the teacher's cell failing here is the grader's problem
                self.notes.append(f"The grader's copy of given cell {step.cell + 1} failed ({type(e).__name__}: "
                                  f"{str(e)[:200]}); tell the teacher.")

    def _test(self, step: Step) -> None:
        if self.last_failure:
            self.failed_before[step.gid], self.last_failure = self.last_failure, None
        if not self.graded:
            self.results[step.gid] = self._visible_parts(step)
            return
        if step.visible.strip():
            seen = self._run_in_kernel("visible", step.cell, step.visible)
            if seen.status != "ok":
                self.feedback[step.gid] = seen.message
        self.results[step.gid] = self._hidden_parts(step)

    def _visible_parts(self, step: Step) -> list[tuple[str, float, Outcome]]:
        """Feedback mode: the visible checks' parts, each in the kernel."""
        out, first = [], True
        for label, pts, code in step.parts:
            source = (step.shared + "\n" + code) if first else code
            kind = "visible" if first else "visible-part"
            out.append((label, pts, self._run_in_kernel(kind, step.cell, source)))
            first = False
        return out

    def _hidden_parts(self, step: Step) -> list[tuple[str, float, Outcome]]:
        """The hidden tests, here, with ``learner`` reaching the kernel."""
        if not step.parts:
            return [("", 0.0, Outcome("error", "This question has no hidden tests in the solution; tell the "
                                               "teacher (it cannot be graded outside your notebook)."))]
        try:
            self._kernel().ask({"op": "probe"}, self._timeout())
        except KernelGone:
            pass  # the first question below will say so
        learner = Learner(self._kernel_or_dead(), self._timeout())
        from tutorlib.course import checks

        namespace = {**self.trusted, **{n: getattr(checks, n) for n in CHECK_NAMES}, "learner": learner,
                     "__name__": "__grader__"}
        shared = self._trusted_exec(step.shared, step, namespace) if step.shared.strip() else Outcome("ok")
        out = []
        for label, pts, code in step.parts:
            outcome = shared if shared.status != "ok" else self._trusted_exec(code, step, namespace)
            out.append((label, pts, outcome))
        return out

    def _kernel_or_dead(self) -> KernelConnection:
        try:
            return self._kernel()
        except KernelGone:
            return self.connection

    def _trusted_exec(self, code: str, step: Step, namespace: dict) -> Outcome:
        try:
            exec(compile(code, f"<hidden tests of {step.gid}>", "exec"), namespace)
            return Outcome("ok")
        except LearnerError as e:
            status = "timeout" if "time limit" in str(e) else "error"
            if self.connection is not None and not self.connection.alive:
                status = "timeout" if "time limit" in str(e) else "kernel died"
            return Outcome(status, str(e))
        except BaseException as e:  # noqa: BLE001 - a hidden check failed, or could not use the answer
            return Outcome("error", hidden_message(e))


def hidden_message(error: BaseException) -> str:
    """What a learner may see of a hidden check's failure: its headline and what they gave, never
    the expected value or the hidden test's source."""
    from tutorlib.course.checks import AnswerError

    if isinstance(error, AnswerError):
        lines = str(error).splitlines()
        kept = lines[:1] + [ln for ln in lines[1:] if ln.strip().split(":")[0].strip() in _SAFE_LABELS]
        return "\n".join(kept)[:800]
    return (f"a hidden check could not use your answer ({type(error).__name__}); check its type and shape against "
            "the question")


def _what_went_wrong(index: int, outcome: Outcome) -> str:
    if outcome.status == "timeout":
        return f"cell {index + 1} was stopped (time limit)"
    if outcome.status == "kernel died":
        return f"the kernel died in cell {index + 1}"
    lines = outcome.message.splitlines() or ["an error"]
    shown = lines[0] if re.match(r"\w+(Error|Exception)\b", lines[0]) else lines[-1]
    return f"cell {index + 1} raised {shown}"


# --- one notebook, end to end ----------------------------------------------------------------

def questions_of(nb) -> dict[str, float]:
    return {gid: float(nbgrader_meta(cell).get("points", 0)) for gid, (_, cell) in graded_tests(nb).items()}


def _public_modules(solution) -> list[str]:
    """The kit modules whose names the solution's given and test cells import from ``tutorlib``."""
    import tutorlib

    names = set()
    for cell in solution.cells if solution is not None else []:
        if cell.cell_type == "code" and not is_answer_cell(cell):
            for group in _PUBLIC_IMPORT.findall(cell.source):
                names.update(n.strip().split(" as ")[0] for n in group.strip("()").split(","))
    return sorted({tutorlib.home_of(n) for n in names if tutorlib.home_of(n)})


def grade(notebook: Path, solution_path: Path | None, settings: Settings, label: str | None = None) -> NotebookResult:
    """Grade one notebook file (see the module docstring). Never raises for the notebook's fault."""
    started = time.perf_counter()
    result = NotebookResult(path=label or str(notebook))
    try:
        nb = read_notebook(notebook)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, TypeError, RecursionError, MemoryError) as e:
        nb = None
        result.notes.append(f"Could not read the notebook ({type(e).__name__}); every question scores 0.")
    solution = read_notebook(solution_path) if solution_path is not None else None
    if solution is not None:
        result.solution = solution_path.name
    else:
        result.notes.append("No solution notebook: the notebook's own test cells ran as they are (visible checks "
                            "only, no hidden tests): this is feedback, not a grade.")
    source_of_points = solution if solution is not None else nb
    questions = questions_of(source_of_points) if source_of_points is not None else {}
    if nb is None:
        result.questions = [QuestionResult(g, 0.0, p, "missing", "The notebook could not be read.")
                            for g, p in questions.items()]
        return result
    try:
        plan = plan_notebook(nb, solution, questions)
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError) as e:
        result.notes.append(f"The notebook's cells could not be read ({type(e).__name__}); every question scores 0.")
        result.questions = [QuestionResult(g, 0.0, p, "missing", "The notebook could not be read.")
                            for g, p in questions.items()]
        return result
    result.free_text = plan.free_text
    extra = sorted(set(graded_tests(nb)) - set(questions))
    if extra:
        result.notes.append(f"Test cells not in the solution were not run: {', '.join(map(str, extra))}.")
    meta = (solution.metadata.get("tutorlib") or {}) if solution is not None else {}
    job = {"not_in_answers": list(meta.get("not_in_answers", [])), "preload": _public_modules(solution)}
    runner = Runner(plan, settings, job, graded=solution is not None)
    try:
        runner.run()
    except Exception as e:  # noqa: BLE001 - a grader problem, not the learner's
        runner.notes.append(f"The grader could not run the notebook to the end ({type(e).__name__}: {str(e)[:200]}).")
        if runner.connection is not None:
            runner.connection.close()
    result.notes += runner.notes
    result.flags = bounded_flags(plan.flags + runner.flags)
    result.kernel_start_s = round(runner.kernel_start_s, 2)
    _score(result, plan, runner, questions)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


MAX_FLAGS = 50  # flags kept per notebook: a teacher reviews a few cells; a learner could make 100,000


def bounded_flags(flags: list[str]) -> list[str]:
    """Each flag once, at most :data:`MAX_FLAGS` of them (then a line saying how many more), each at most 300
    characters: what a learner's code makes the gradebook store stays small."""
    unique = list(dict.fromkeys(str(flag)[:300] for flag in flags))
    if len(unique) <= MAX_FLAGS:
        return unique
    return unique[:MAX_FLAGS] + [f"... and {len(unique) - MAX_FLAGS} more flags (the notebook needs a close look)"]


def _score(result: NotebookResult, plan: Plan, runner: Runner, questions: dict[str, float]) -> None:
    cells = {s.gid: s.cell for s in plan.steps if s.kind == "test"}
    for gid, possible in questions.items():
        if gid not in cells:
            result.questions.append(QuestionResult(gid, 0.0, possible, "missing", "This graded test cell is missing "
                                                   "from the notebook (or its metadata was changed): copy it back "
                                                   "from the exercise."))
            continue
        parts = runner.results.get(gid)
        if parts is None:
            result.questions.append(QuestionResult(gid, 0.0, possible, "not run", "This cell was not run (see the "
                                                   "notes below).", cell=cells[gid] + 1))
            continue
        points, messages, statuses, shown = 0.0, [], [], []
        for label, pts, outcome in parts:
            passed = outcome.status == "ok"
            points += pts if passed else 0.0
            statuses.append(outcome.status)
            said = outcome.message.split("failed in your notebook:\n")[-1]  # one learner error, said once
            if not passed and outcome.message and not any(said in m for m in messages):
                messages.append(outcome.message)
            if label:
                shown.append({"label": label, "points": pts if passed else 0.0, "max_points": pts,
                              "status": "passed" if passed else outcome.status})
        if statuses and statuses != ["ok"] * len(statuses) and gid in runner.feedback \
                and runner.feedback[gid] not in messages:
            messages.append("visible checks: " + runner.feedback[gid])
        message = "\n".join(messages)
        if message and gid in runner.failed_before:
            message += f"\n(an earlier cell failed first: {runner.failed_before[gid]})"
        failed = [s for s in statuses if s != "ok"]
        status = "passed" if not failed else ("partial" if points > 0 else
                                              {"error": "failed"}.get(failed[0], failed[0]))
        result.questions.append(QuestionResult(gid, points, possible, status, message, cell=cells[gid] + 1,
                                               parts=shown))


def main() -> int:
    """``python -m tutorlib.course.verdict``: a job on stdin, the result as JSON on stdout."""
    job = json.loads(sys.stdin.read())
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the teacher's given cells print must not mix with the result
    sys.stdout = sys.stderr
    settings = Settings(mode=job["mode"], cell_timeout=job["cell_timeout"], budget=job["budget"],
                        limits=Limits(**job["limits"]), unsafe=job["unsafe"], hidden=job["hidden"],
                        workdir=job.get("workdir"))
    sys.setrecursionlimit(10_000)  # torch's threads follow OMP_NUM_THREADS, set by the parent
    try:
        result = grade(Path(job["notebook"]), Path(job["solution"]) if job.get("solution") else None, settings,
                       label=job.get("label"))
    except BaseException as e:  # noqa: BLE001 - always answer the parent
        result = NotebookResult(path=job.get("label") or job["notebook"],
                                notes=[f"The grader failed on this notebook ({type(e).__name__}: {str(e)[:300]})."])
        traceback.print_exc()
    out.write(json.dumps(asdict(result)))
    out.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
