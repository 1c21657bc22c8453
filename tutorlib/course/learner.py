"""The grader's side of the conversation with a learner's kernel: ``learner`` in a hidden test.

A hidden test runs in the grader's own (trusted) process. It reaches the learner's notebook only
through a :class:`Learner`, which asks the sandboxed kernel for plain data::

    learner.value("step_time_ratio")                    # a variable
    learner.eval("sorted(trainable_parameter_names(load_model('tiny-bert')[0], 'full'))")
    learner.call("prefix_parameter_formula", 6, 10, 384)  # a function, with plain-data arguments
    learner.has("adamw_state_bytes")                     # is the name defined?
    learner.exec("probe = small_bert(seed=1)")           # statements, for a later eval

Expressions and statements run in a *probe namespace*: a copy of the notebook's namespace made at
the start of each test cell, so the given cells' helpers (``small_bert``, ``batch``) are there,
and nothing a probe defines reaches the learner's later cells. Never put an expected value in a
probe: the learner's code sees what is sent. Compare in the test, with the check helpers.

What comes back is plain data (:mod:`tutorlib.course.plain_data`; tensors arrive as numpy
arrays). If the learner's code raises, times out, or returns something that is not plain data, the
call raises :class:`LearnerError`, an :class:`~tutorlib.course.checks.AnswerError` whose message is
safe to show the learner (it holds only what the learner's own code said).
"""

from __future__ import annotations

import json
import os
import select
import time

from tutorlib.course import plain_data
from tutorlib.course.checks import AnswerError

MAX_REPLY_BYTES = plain_data.MAX_BYTES + 2**20
# Containers and items a reply may hold before it is parsed at all: JSON's objects take ~20 times their text in
# memory, so a reply of 60 MB of "{}," would cost the grader over a gigabyte before plain_data could count it.
_MAX_REPLY_PUNCTUATION = 2 * plain_data.MAX_ITEMS
MAX_KERNEL_FLAGS = 50  # what a kernel may report for the teacher's review, over a whole notebook
_ENDED = "ended (it exited, ran out of memory, or crashed)"


class LearnerError(AnswerError):
    """The learner's code failed (raised, ran past its time, died, or gave no plain data) when a
    hidden test asked it for a value; the message is the learner's own error."""


class KernelGone(Exception):
    """The kernel process ended or stopped answering (the grader restarts it at the next cell); the
    message completes "the notebook's process ..."."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status  # "timeout" or "kernel died"


class KernelConnection:
    """Requests to one kernel process and its replies, each within a deadline."""

    def __init__(self, proc, reply_fd: int, cleanup):
        self.proc, self.reply_fd, self.cleanup = proc, reply_fd, cleanup
        self.buffer = bytearray()
        self.flags: list[str] = []  # what the kernel reported (untrusted, for the teacher's review)
        self.alive = True

    def ask(self, request: dict, timeout: float) -> dict:
        """Send one request; the kernel's reply (a dict), or :class:`KernelGone`."""
        if not self.alive:
            raise KernelGone("kernel died", "had already ended")
        request = dict(request, timeout=timeout)
        deadline = time.monotonic() + timeout + 5.0  # the kernel's own alarm fires first
        self._write((json.dumps(request) + "\n").encode(), deadline)
        line = self._read_line(deadline)
        reply = None
        if sum(line.count(ch) for ch in (b"[", b"{", b",")) <= _MAX_REPLY_PUNCTUATION:
            try:
                reply = json.loads(line)
            except (ValueError, RecursionError):
                pass
        if type(reply) is not dict or type(reply.get("ok")) is not bool:
            self.close()
            raise KernelGone("kernel died", "answered something that is not a reply")
        flags = reply.get("flags")
        if type(flags) is list and len(self.flags) < MAX_KERNEL_FLAGS:
            self.flags += [str(f)[:300] for f in flags[:20]][:MAX_KERNEL_FLAGS - len(self.flags)]
        return reply

    def _write(self, data: bytes, deadline: float) -> None:
        """Send ``data`` without ever blocking past ``deadline`` (a kernel that stopped reading)."""
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise KernelGone("timeout", "stopped reading the grader's requests")
            _, ready, _ = select.select([], [fd], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = data[os.write(fd, data[: 1 << 16]):]
            except BlockingIOError:
                continue
            except OSError:  # the kernel's end is closed
                self.close()
                raise KernelGone("kernel died", _ENDED) from None

    def _read_line(self, deadline: float) -> bytes:
        end = self.buffer.find(b"\n")
        while end < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise KernelGone("timeout", "ran past its time limit and was stopped")
            ready, _, _ = select.select([self.reply_fd], [], [], min(left, 1.0))
            if not ready:
                if self.proc.poll() is not None:
                    self.close()
                    raise KernelGone("kernel died", _ENDED)
                continue
            chunk = os.read(self.reply_fd, 1 << 20)
            if not chunk:
                self.close()
                raise KernelGone("kernel died", _ENDED)
            newline = chunk.find(b"\n")  # only the new bytes are searched: reading stays linear in the reply
            end = len(self.buffer) + newline if newline >= 0 else -1
            self.buffer += chunk
            if (end if end >= 0 else len(self.buffer)) > MAX_REPLY_BYTES:
                self.close()
                raise KernelGone("kernel died", "sent a reply too large to read")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return line

    def close(self) -> None:
        if self.alive:
            self.alive = False
            self.cleanup()


def error_text(reply: dict) -> str:
    """The learner-facing text of a failed reply (the error's type and message, a few lines)."""
    from tutorlib.course.autograde import learner_message

    if reply.get("ename") == "CellTimeout":
        return "ran past its time limit and was stopped (an endless loop? too much work for fast mode?)"
    tb = reply.get("traceback") if type(reply.get("traceback")) is list else []
    return learner_message(str(reply.get("ename", "Error"))[:80], str(reply.get("evalue", ""))[:2000],
                           [str(t)[:2000] for t in tb[:10]])


def _short(value) -> str:
    """An argument as a question's label shows it: arrays and tensors by shape and dtype."""
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"<array {tuple(shape)} {str(value.dtype).replace('torch.', '')}>"
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


class Learner:
    """What a hidden test may ask of the learner's kernel (see the module docstring)."""

    def __init__(self, connection: KernelConnection, timeout: float):
        self._connection, self._timeout = connection, timeout
        self.calls = 0

    def _ask(self, request: dict, what: str):
        self.calls += 1
        try:
            reply = self._connection.ask(request, self._timeout)
        except KernelGone as gone:
            raise LearnerError(f"{what}: your notebook's process {gone}") from None
        if not reply["ok"]:
            raise LearnerError(f"{what} failed in your notebook:\n{error_text(reply)}")
        try:
            return plain_data.from_plain(reply.get("value"))
        except plain_data.NotPlainData as e:
            raise LearnerError(f"{what}: your notebook gave something the grader cannot check ({e})") from None

    def value(self, name: str):
        """The value of the learner's variable ``name`` (plain data)."""
        return self._ask({"op": "value", "name": name}, f"`{name}`")

    def has(self, name: str) -> bool:
        """Whether the learner's notebook defines ``name``."""
        return self._ask({"op": "has", "name": name}, f"`{name}`") is True

    def eval(self, expression: str):
        """Evaluate ``expression`` in the notebook's probe namespace; its value (plain data)."""
        short = expression if len(expression) <= 60 else expression[:57] + "..."
        return self._ask({"op": "eval", "expr": expression}, f"`{short}`")

    def exec(self, source: str) -> None:
        """Run statements in the notebook's probe namespace (e.g. build an input for ``eval``)."""
        self._ask({"op": "exec", "source": source}, "preparing a check")

    def call(self, name: str, *args, **kwargs):
        """Call the learner's function ``name`` with plain-data arguments; its result (plain data)."""
        shown = ", ".join([_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()])
        return self._ask({"op": "call", "name": name, "args": plain_data.to_plain(list(args)),
                          "kwargs": plain_data.to_plain(kwargs)}, f"`{name}({shown})`")


class InNotebook:
    """``learner`` for a solution notebook run in Jupyter (or nbval), where no grader is around.

    There the hidden tests run as ordinary code in the notebook itself, so the "learner" is the
    notebook's own namespace. Like :class:`Learner`, every value crosses :mod:`plain_data` both ways
    (a tensor comes back as a numpy array, a model is refused), so a hidden test that passes here
    asks only for what the real grader can send. Expressions and statements run in the notebook's
    globals (what ``exec`` defines stays there: this is the teacher's own notebook). A hidden test
    binds it only where no grader gave one::

        if "learner" not in globals():  # in Jupyter: the notebook answers for itself
            from tutorlib.course.learner import InNotebook; learner = InNotebook(globals())
    """

    def __init__(self, namespace: dict):
        self._namespace = namespace
        self.calls = 0

    def _answer(self, what: str, compute):
        self.calls += 1
        try:
            value = compute()
        except Exception as error:  # noqa: BLE001 - the notebook's own error, told like the grader tells it
            raise LearnerError(f"{what} failed in your notebook:\n{type(error).__name__}: {error}") from error
        try:
            return plain_data.from_plain(plain_data.to_plain(value))
        except plain_data.NotPlainData as e:
            raise LearnerError(f"{what}: your notebook gave something the grader cannot check ({e})") from None

    def value(self, name: str):
        """The value of the notebook's variable ``name`` (plain data)."""
        return self._answer(f"`{name}`", lambda: self._namespace[name])

    def has(self, name: str) -> bool:
        """Whether the notebook defines ``name``."""
        return name in self._namespace

    def eval(self, expression: str):
        """Evaluate ``expression`` in the notebook's globals; its value (plain data)."""
        return self._answer(f"`{expression[:60]}`", lambda: eval(expression, self._namespace))  # noqa: S307

    def exec(self, source: str) -> None:
        """Run statements in the notebook's globals."""
        self._answer("preparing a check", lambda: exec(source, self._namespace))  # noqa: S102

    def call(self, name: str, *args, **kwargs):
        """Call the notebook's function ``name``; arguments and result cross plain data as in the grader."""
        args = plain_data.from_plain(plain_data.to_plain(list(args)))
        kwargs = plain_data.from_plain(plain_data.to_plain(kwargs))
        return self._answer(f"`{name}(...)`", lambda: self._namespace[name](*args, **kwargs))
