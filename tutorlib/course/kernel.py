"""The learner's kernel: the one process where a learner's code runs while it is graded.

Started by :mod:`tutorlib.course.verdict` as ``python -m tutorlib.course.kernel FD`` inside the
sandbox (:mod:`tutorlib.course.sandbox`). It is a small request loop, not a Jupyter kernel (no
IPython: input and AST transformers do not exist here). It reads one JSON request per line on
stdin and writes one JSON reply per line on the file descriptor ``FD``; everything the notebook
prints goes to stderr.

Nothing in this process decides a grade. Hidden tests and their expected values never come here:
the grader asks for *values* (``eval``, ``value``, ``call``) and compares them in its own
process. The hygiene kept here (trusted names put back before every cell, patched modules
restored, the kit functions an answer may not call guarded) keeps an honest notebook's later
cells working as they would in Jupyter and produces flags for the teacher; it is not what makes
the grade hold. See ``THREAT_MODEL.md``.

Requests (``op``):

* ``job``: first line: ``not_in_answers`` and the kit modules to load before any learner code.
* ``cell``: run ``source`` of ``kind`` given (the teacher's setup), answer (the learner's) or
  visible (a test's visible checks, in a copy of the namespace: feedback only).
* ``probe``: a fresh probe namespace (a copy of the notebook's) for the next requests.
* ``eval`` (an expression), ``exec`` (statements), ``value`` (a name), ``call`` (a function by
  name with plain-data arguments), ``has`` (a name): run in the probe namespace; the reply holds
  plain data (:mod:`tutorlib.course.plain_data`).

Replies: ``{"ok": true, "value": ..., "seconds": s, "flags": [...]}`` or ``{"ok": false, "ename",
"evalue", "traceback", "seconds", "flags"}``.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import signal
import sys
import time
import types

from tutorlib.course import plain_data
from tutorlib.course.checker import (
    CHECK_NAMES,
    Snapshot,
    Stub,
    block_kit_helpers,
    error_summary,
    kit_function_inside,
    refusal,
)

_MISSING = object()


class Interrupted(BaseException):
    """Raised in the main thread when a cell runs past its time."""


class Kernel:
    """The notebook's namespace and the hygiene around each cell (see the module docstring)."""

    def __init__(self, job: dict):
        import importlib

        import tutorlib.course.checks as checks

        self.flags: list[str] = []
        self.check_helpers = {name: getattr(checks, name) for name in CHECK_NAMES}  # before any learner code
        self.clean_builtins = dict(vars(builtins))
        for module in job.get("preload", []):  # the modules the given cells take names from
            importlib.import_module(module)
        if job.get("not_in_answers"):
            block_kit_helpers(job["not_in_answers"], self.flags)
        self.ns: dict = {"__name__": "__main__", "__builtins__": builtins, "get_ipython": Stub}
        self.trusted: dict = {"get_ipython": Stub}
        self.snapshot = Snapshot()
        self.probe_ns: dict = dict(self.ns)
        self.visible_ns: dict = dict(self.ns)

    def _put_back_trusted(self) -> None:
        for name in [n for n, v in self.trusted.items() if self.ns.get(n, _MISSING) is not v]:
            self.ns[name] = self.trusted[name]

    def run_cell(self, kind: str, source: str, cell: int) -> None:
        """Run one cell; raises what the cell raised. Flags what an answer changed."""
        self._put_back_trusted()
        if kind == "visible":  # a test's visible checks: a copy of the namespace, never flowing back
            where = self.visible_ns = {**self.ns, **self.check_helpers, "__builtins__": dict(self.clean_builtins)}
        elif kind == "visible-part":  # the next part of the same test cell
            where = self.visible_ns
        else:
            where = self.ns
        before = {n: id(v) for n, v in self.ns.items()}
        filename = f"<{kind} cell {cell + 1}>"
        # inspect.getsource and tracebacks find a cell's source as they would in Jupyter
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec", dont_inherit=True), where)
        finally:
            if kind == "given":
                self.trusted.update({n: v for n, v in self.ns.items() if before.get(n) != id(v)})
                self.snapshot = Snapshot()  # the given cells' imports and settings are the reference
            else:
                self.flags += self.snapshot.restore_changes()
            if kind == "answer":
                self._check_answer_names(before)

    def _check_answer_names(self, before: dict) -> None:
        self.flags += [f"rebinds `{n}`, which a given cell defines" for n, v in self.trusted.items()
                       if self.ns.get(n, _MISSING) is not v and (callable(v) or isinstance(v, types.ModuleType))]
        for name in [n for n, v in self.ns.items() if before.get(n) != id(v) and n not in self.trusted]:
            label = kit_function_inside(self.ns[name])
            if label:  # the answer *is* the kit's function: it may not stand in for the learner's
                self.flags.append(f"`{name}` is the kit's {label}, not the learner's own code")
                self.ns[name] = refusal(name, label)

    def new_probe(self) -> None:
        self._put_back_trusted()
        self.probe_ns = dict(self.ns)

    def probe(self, request: dict):
        """The value a probe request asks for (not yet encoded)."""
        op = request["op"]
        if op == "eval":
            return eval(compile(request["expr"], "<grader's question>", "eval", dont_inherit=True), self.probe_ns)
        if op == "exec":
            exec(compile(request["source"], "<grader's question>", "exec", dont_inherit=True), self.probe_ns)
            return None
        if op == "has":
            return request["name"] in self.probe_ns
        if op == "value":
            if request["name"] not in self.probe_ns:
                raise NameError(f"name '{request['name']}' is not defined")
            return self.probe_ns[request["name"]]
        if op == "call":
            function = self.probe_ns.get(request["name"], _MISSING)
            if function is _MISSING:
                raise NameError(f"name '{request['name']}' is not defined")
            args = plain_data.from_plain(request.get("args", []))
            kwargs = plain_data.from_plain(request.get("kwargs", {}))
            return function(*args, **kwargs)
        raise ValueError(f"unknown request {op!r}")


def _on_alarm(signum, frame):
    raise Interrupted()


def serve(requests, reply_fd: int) -> None:
    """Answer requests until stdin closes."""
    out = os.fdopen(reply_fd, "w", buffering=1)
    kernel = None
    signal.signal(signal.SIGALRM, _on_alarm)
    for line in requests:
        request = json.loads(line)
        started, reply = time.perf_counter(), {"ok": True}
        signal.setitimer(signal.ITIMER_REAL, float(request.get("timeout", 0) or 0))
        try:
            if request["op"] == "job":
                kernel = Kernel(request)
            elif request["op"] == "cell":
                kernel.run_cell(request["kind"], request["source"], request.get("cell", 0))
            elif request["op"] == "probe":
                kernel.new_probe()
            else:
                value = kernel.probe(request)
                signal.setitimer(signal.ITIMER_REAL, 0)
                reply["value"] = plain_data.to_plain(value)
        except Interrupted:
            reply = {"ok": False, "ename": "CellTimeout", "evalue": "", "traceback": []}
        except BaseException as error:  # noqa: BLE001 - a learner's SystemExit or KeyboardInterrupt too
            reply = dict(zip(("ename", "evalue", "traceback"), error_summary(error)), ok=False)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        reply["seconds"] = time.perf_counter() - started
        if kernel is not None:
            reply["flags"], kernel.flags[:] = list(kernel.flags), []
        try:
            text = json.dumps(reply, allow_nan=False)
        except (ValueError, TypeError, RecursionError) as e:
            text = json.dumps({"ok": False, "ename": "NotPlainData", "evalue": str(e)[:200], "traceback": [],
                               "seconds": reply["seconds"]})
        out.write(text + "\n")
        out.flush()


def main() -> int:
    reply_fd = int(sys.argv[1])
    requests = os.fdopen(os.dup(0), "r")
    os.dup2(2, 1)  # what the notebook prints goes to stderr, never to the grader
    sys.stdout = sys.stderr
    serve(requests, reply_fd)
    os._exit(0)  # skip interpreter shutdown: a learner's atexit hook or __del__ must not run after


if __name__ == "__main__":
    raise SystemExit(main())
