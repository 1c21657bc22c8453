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


@pytest.mark.parametrize("as_root", [False, True])
def test_without_namespaces_grading_refuses_with_the_fix(monkeypatch, tmp_path, as_root):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(fake))
    monkeypatch.setattr(sandbox, "_CHECKED", {})
    monkeypatch.setattr(sandbox, "runs_as_root", lambda: as_root)
    with pytest.raises(SandboxUnavailable) as refused:
        check_sandbox()
    message = str(refused.value)
    fix = "as an ordinary user" if as_root else "apparmor_restrict_unprivileged_userns=0"
    assert "Permission denied" in message and fix in message
    assert "--unsafe-no-sandbox" in message


def test_a_root_graders_sandbox_runs_each_kernel_as_a_uid_of_its_own_never_mapped_to_root(monkeypatch):
    monkeypatch.setattr(sandbox, "runs_as_root", lambda: True)
    args = sandbox.bwrap_args("bwrap", [], Limits(), "fast")
    assert "--unshare-user" not in args and "--uid" not in args  # a user namespace's uid 1000 would be root
    command = sandbox.kernel_command("python", "-m", "tutorlib.course.kernel", "3", uid=sandbox.sandbox_uid(7))
    assert command[:5] == ["python", "-I", "-S", "-c", sandbox.DROP_ROOT] and command[5] == str(sandbox.sandbox_uid(7))
    uids = {sandbox.sandbox_uid(n) for n in range(50)}  # one per kernel, none an account's
    assert len(uids) == 50 and all(sandbox.SANDBOX_UIDS[0] <= u < sandbox.SANDBOX_UIDS[1] for u in uids)
    monkeypatch.setattr(sandbox, "runs_as_root", lambda: False)
    args = sandbox.bwrap_args("bwrap", [], Limits(), "fast")
    assert {"--unshare-user", "--disable-userns"} <= set(args) and args[args.index("--uid") + 1] == "1000"
    assert sandbox.kernel_command("python", "-m", "x") == ["python", "-m", "x"]
    for a in (args, sandbox.bwrap_args("bwrap", [], Limits(), "fast")):
        assert a[a.index("--remount-ro") + 1] == "/proc"


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
    # Never the machine's root, even for a root grader: the uid outside (the second column of the map) of the
    # kernel's own uid is not 0, and nothing under /proc (the machine's settings among it) can be written.
    uid, uid_map = learner.eval("os.getuid()"), learner.eval("open('/proc/self/uid_map').read().split()")
    start, outside, _ = (int(x) for x in uid_map[:3])
    assert uid != 0 and outside + (uid - start) != 0, (uid, uid_map)
    learner.exec("def can_write(p):\n    try:\n        open(p, 'w').write('60')\n        return True\n"
                 "    except OSError:\n        return False")
    assert learner.eval("can_write('/proc/sys/vm/swappiness')") is False
    assert learner.eval("can_write('/proc/sysrq-trigger')") is False
    assert learner.eval("os.statvfs('/dev/shm').f_blocks * os.statvfs('/dev/shm').f_frsize") <= Limits().tmp_bytes
    # The calls the seccomp filter refuses, made directly (a tool could fail for reasons of its own): a user
    # namespace (all capabilities inside it), the key rings (shared by uid, kept after the notebook), a memfd.
    learner.exec("import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                 "def refused(result):\n    return result == -1 and ctypes.get_errno() in (errno.EPERM, errno.ENOSYS)")
    assert learner.eval("refused(libc.unshare(0x10000000))") is True  # CLONE_NEWUSER
    assert learner.eval("refused(libc.syscall(248, b'user', b'k', b'v', 1, -4))") is True  # add_key to @u
    with pytest.raises(LearnerError, match="Operation not permitted|PermissionError"):
        learner.eval("os.memfd_create('m')")
    assert learner.eval("__import__('subprocess').run(['true']).returncode") == 0  # processes still start
    assert learner.eval("__import__('torch').ones(64, 64).sum().item()") == 4096.0  # and torch's threads
    cache = sandbox._asset_cache()
    if cache is not None and (cache / "locks").is_dir():  # the machine's cache locks are not the learner's to hold
        assert learner.eval(f"os.listdir({str(cache / 'locks')!r})") == []
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


def test_a_big_endian_array_arrives_with_its_values():
    value = np.array([0.25, 1.5], dtype=">f8")
    back = plain_data.loads(plain_data.dumps(value))
    np.testing.assert_array_equal(back, [0.25, 1.5])
    assert plain_data.loads(plain_data.dumps(np.array(3, dtype=">i8")[()])) == 3


def test_values_built_to_share_one_hash_are_refused_before_the_grader_hashes_them():
    """Integers of 2**61 and more hash modulo 2**61 - 1: k * (2**61 - 1) all hash to 0, and a set of n of them
    costs n**2 steps. Decoding counts what it would hash, and refuses a value past the bound."""
    big = 2**61 - 1
    for crafted in ['{"__set__": [' + ",".join(str(i * big) for i in range(1, plain_data.MAX_HASHED + 2)) + "]}",
                    "[" + ",".join(str(i * big) for i in range(1, plain_data.MAX_HASHED + 2)) + "]",
                    '{"__dict__": [' + ",".join(f"[{i}, 0]" for i in range(plain_data.MAX_HASHED + 1)) + "]}"]:
        with pytest.raises(plain_data.NotPlainData, match="set items"):
            plain_data.loads(crafted)
    assert len(plain_data.loads('{"__set__": [' + ",".join(map(str, range(1000))) + "]}")) == 1000
    assert len(plain_data.loads(json.dumps(list(range(100_000))))) == 100_000  # ordinary numbers: no bound


class _FakeKernel:
    """A 'kernel' that is a pipe the test writes replies into."""

    def __init__(self):
        import os
        import subprocess

        self.read_fd, self.write_fd = os.pipe()
        self.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def connection(self) -> KernelConnection:
        return KernelConnection(self.proc, self.read_fd, lambda: self.proc.kill())


def test_a_reply_of_millions_of_empty_containers_is_refused_before_it_is_parsed():
    import os
    import threading

    fake = _FakeKernel()
    connection = fake.connection()
    bomb = b'{"ok": true, "value": [' + b"{}," * (3 * plain_data.MAX_ITEMS) + b"{}]}\n"
    writer = threading.Thread(target=lambda: (os.write(fake.write_fd, bomb), os.close(fake.write_fd)), daemon=True)
    writer.start()
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(Exception, match="not a reply"):
        connection.ask({"op": "eval", "expr": "x"}, 30)
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew_mib < 200, grew_mib  # parsing it would have taken over a gigabyte


def test_a_kernels_cgroup_is_gone_when_it_is_closed():
    from pathlib import Path

    check_sandbox()
    proc, fd, cleanup = start_kernel([], Limits(), "fast")
    connection = KernelConnection(proc, fd, cleanup)
    assert connection.ask({"op": "job"}, 60)["ok"]
    import os

    mine = f"{sandbox._CGroup.PREFIX}{os.getpid()}-"
    made = [d for d in Path("/sys/fs/cgroup").rglob(mine + "*")]
    connection.close()
    assert [d for d in made if d.exists()] == []


def test_the_seccomp_filter_is_well_formed_for_each_known_architecture():
    import struct

    from tutorlib.course import seccomp

    for machine in seccomp._CALLS:
        program = seccomp.filter_program(machine)
        instructions = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
        assert instructions[-1] == (0x06, 0, 0, 0x7FFF0000)  # the last one allows
        for i, (code, jt, jf, _) in enumerate(instructions):  # every jump lands inside the program
            if code & 0x07 == 0x05:
                assert i + 1 + max(jt, jf) < len(instructions)
    assert seccomp.filter_program("mips") is None
