"""The pieces of the sandboxed grader on their own: plain data, the sandbox's refusal, the kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tutorlib.course import plain_data, sandbox
from tutorlib.course.learner import KernelConnection, Learner, LearnerError
from tutorlib.course.sandbox import Limits, SandboxUnavailable, check_sandbox, start_kernel


@pytest.mark.parametrize("value", [None, True, 3, -2**70, 1.5, float("inf"), "text", [1, [2, "x"]], (1, 2), {1, 2},
                                   {"a": 1}, {1: "one", (2, 3): "pair"}, {"__tuple__": 1}])
def test_plain_data_round_trips(value):
    assert plain_data.loads(plain_data.dumps(value)) == value


def test_arrays_and_tensors_come_back_as_numpy_arrays_with_their_dtype_and_shape():
    for value in [np.arange(6, dtype=np.int16).reshape(2, 3), torch.ones(2, 2, dtype=torch.bfloat16),
                  torch.nn.Parameter(torch.zeros(3))]:
        back = plain_data.loads(plain_data.dumps(value))
        assert type(back) is np.ndarray
        expected = value.float().numpy() if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 else \
            (value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value))
        np.testing.assert_array_equal(back, expected)
    back = plain_data.loads(plain_data.dumps(np.float64(0.5)))  # a numpy number stays a number
    assert type(back) is np.float64 and isinstance(back, float) and back == 0.5


def test_objects_deep_nesting_and_huge_values_are_refused_never_crash():
    class Anything:
        def __eq__(self, other):
            return True

    with pytest.raises(plain_data.NotPlainData, match="Anything"):
        plain_data.dumps([1, Anything()])
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(plain_data.NotPlainData, match="nested"):
        plain_data.dumps(deep)
    with pytest.raises(plain_data.NotPlainData, match="nested"):
        plain_data.loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(plain_data.NotPlainData, match="too large"):
        plain_data.dumps(list(range(plain_data.MAX_ITEMS + 1)))
    for forged in ['{"__array__": {"dtype": "object", "shape": [1], "data": ""}}',
                   '{"__array__": {"dtype": "int64", "shape": [4], "data": "AAAA"}}', '{"__evil__": 1}',
                   '{"__float__": "1e999999"}', '{"__bigint__": "' + "9" * 6000 + '"}']:
        with pytest.raises(plain_data.NotPlainData):
            plain_data.loads(forged)


def test_without_user_namespaces_grading_refuses_with_the_fix(monkeypatch, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(fake))
    monkeypatch.setattr(sandbox, "_CHECKED", {})
    with pytest.raises(SandboxUnavailable) as refused:
        check_sandbox()
    message = str(refused.value)
    assert "Permission denied" in message and "apparmor_restrict_unprivileged_userns=0" in message
    assert "--unsafe-no-sandbox" in message


def test_the_cli_refuses_a_class_without_a_sandbox_and_names_the_option(monkeypatch, tmp_path, capsys):
    from tutorlib.cli import main

    monkeypatch.setattr(sandbox, "_CHECKED", {"bwrap": None, "why": "no sandbox here (test); use --unsafe-no-sandbox"})
    (tmp_path / "subs").mkdir()
    assert main(["grade", str(tmp_path / "subs"), "--solutions", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--unsafe-no-sandbox" in capsys.readouterr().err


@pytest.fixture
def kernel():
    check_sandbox()
    proc, fd, cleanup = start_kernel([], Limits(), "fast")
    connection = KernelConnection(proc, fd, cleanup)
    assert connection.ask({"op": "job"}, 60)["ok"]
    yield connection
    connection.close()


def test_the_kernel_sees_no_host_files_no_network_and_only_its_own_processes(kernel, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the teacher's answer")
    learner = Learner(kernel, 30)
    kernel.ask({"op": "cell", "kind": "answer", "cell": 0, "source": "import os, socket\n"}, 30)
    kernel.ask({"op": "probe"}, 30)  # what a hidden test sees: a copy of the notebook's names
    learner.exec("def can_read(p):\n    try:\n        open(p).read()\n        return True\n    except OSError:\n"
                 "        return False")
    assert learner.eval(f"can_read({str(secret)!r})") is False
    assert learner.eval("can_read('/etc/hostname')") is False  # only the few /etc files Python needs
    assert learner.eval("sorted(int(p) for p in os.listdir('/proc') if p.isdigit())")[-1] < 10
    assert learner.eval("os.getuid()") == 1000
    assert set(learner.eval("sorted(os.environ)")) <= set(sandbox.SANDBOX_ENV) | {"TUTORLIB_CACHE", "PWD", "LC_CTYPE"}
    with pytest.raises(LearnerError, match="OSError|unreachable|Network|refused"):
        learner.eval("socket.create_connection(('127.0.0.1', 22), timeout=1)")
    with pytest.raises(LearnerError, match="Read-only|read-only|Permission"):
        learner.exec("open('/sandbox/tutorlib/course/checks.py', 'a')")  # the kit, read-only


def test_a_probe_that_raises_runs_past_its_time_or_returns_an_object_is_a_learner_error(kernel):
    learner = Learner(kernel, 3)
    kernel.ask({"op": "cell", "kind": "answer", "cell": 0, "source": "def f(x):\n    return 1 / x\n"
                "class Box:\n    pass\n"}, 30)
    kernel.ask({"op": "probe"}, 30)
    assert learner.call("f", 4) == 0.25 and learner.has("f") and not learner.has("g")
    with pytest.raises(LearnerError, match="ZeroDivisionError"):
        learner.call("f", 0)
    with pytest.raises(LearnerError, match="not plain data"):
        learner.eval("Box()")
    with pytest.raises(LearnerError, match="time limit"):
        learner.eval("[0 for _ in iter(int, 1)]")
    reply = kernel.ask({"op": "eval", "expr": "f(2)"}, 10)
    assert json.loads(json.dumps(reply))["value"] == 0.5


def test_the_private_tmp_is_mounted_before_anything_that_lives_below_it():
    """A checkout (and its environment) in /tmp, as CI clones are: the private /tmp must not hide it."""
    args = sandbox.bwrap_args("bwrap", [], Limits(), "fast")
    tmp_at = args.index("/tmp") if args[args.index("/tmp") - 1] == "--tmpfs" else None
    assert tmp_at is not None
    binds = [args[i + 2] for i, a in enumerate(args) if a == "--ro-bind" and args[i + 2].startswith("/tmp/")]
    assert all(args.index(b) > tmp_at for b in binds)
