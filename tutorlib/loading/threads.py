"""How many threads torch may use: the CPUs this process may run on, not the whole machine.

torch starts one intra-op thread per core of the machine. On a laptop that is right; on a shared
server, in a container or under a JupyterHub CPU limit it is not: four learners' kernels on 2 cores
each start 2 threads, and threads that wait for a CPU slow every step far more than 4x. The kit
therefore counts the CPUs this process may use, once, when it first loads a model::

    >>> from tutorlib.loading.threads import choose_threads
    >>> choose_threads({"TUTORLIB_THREADS": "3"}).threads
    3

* ``TUTORLIB_THREADS=N`` (a whole number >= 1) fixes it; ``TUTORLIB_THREADS=torch`` keeps torch's own
  choice; unset or ``auto``: the CPUs this process may use, the smallest of
  - the CPUs it may run on (``os.sched_getaffinity``: ``taskset``, ``docker --cpuset-cpus``), and
  - its cgroup CPU quota, rounded down (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``: ``docker --cpus``, Kubernetes limits, JupyterHub's ``cpu_limit``).
* ``OMP_NUM_THREADS`` set and ``TUTORLIB_THREADS`` unset: torch already follows it; the kit leaves it.

``tutorlib doctor`` prints the choice and the reason (:func:`describe_threads`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

VARIABLE = "TUTORLIB_THREADS"


class ThreadsSettingError(ValueError):
    """``TUTORLIB_THREADS`` holds something that is not a thread count."""


@dataclass(frozen=True)
class ThreadChoice:
    """What the kit does with torch's intra-op threads: a count (None: torch's own choice) and why."""

    threads: int | None
    why: str


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """This process's cgroup CPU limit in CPUs (e.g. 1.5), or None when there is none.

    Reads cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") or v1 ``cpu.cfs_quota_us`` (-1: none)
    and ``cpu.cfs_period_us``, in the process's own cgroup and each parent; the smallest limit wins.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:  # "ID:CONTROLLERS:PATH"; v2 is "0::PATH"
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            folders = [root]
        elif "cpu" in controllers.split(","):
            folders = [root / name for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
        else:
            continue
        for base in folders:
            for folder in _self_and_parents(base, path):
                limits.append(_limit_in(folder))
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def _self_and_parents(base: Path, path: str) -> list[Path]:
    """``base/a/b``, ``base/a``, ``base``: in a container the path is often "/" and only base exists."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [base.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _limit_in(folder: Path) -> float | None:
    try:
        if (folder / "cpu.max").is_file():  # cgroup v2
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (folder / "cpu.cfs_quota_us").is_file():  # cgroup v1
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):  # unreadable or unexpected: no limit known here
        return None
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_threads(env: Mapping[str, str] | None = None, *, cpus: int | None = None,
                   quota: float | None | str = "read") -> ThreadChoice:
    """Decide torch's intra-op thread count from ``TUTORLIB_THREADS``, the affinity and the cgroup quota.

    ``cpus`` and ``quota`` default to this process's (tests pass their own).

    Raises:
        ThreadsSettingError: ``TUTORLIB_THREADS`` is not ``auto``, ``torch`` or a whole number >= 1.
    """
    env = os.environ if env is None else env
    setting = env.get(VARIABLE, "").strip().lower()
    if setting not in ("", "auto", "torch"):
        try:
            threads = int(setting)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ThreadsSettingError(
                f"{VARIABLE}={env[VARIABLE]!r} is not a thread count. Use a whole number >= 1 (e.g. "
                f"{VARIABLE}=2), 'auto' (the CPUs this process may use) or 'torch' (torch's own choice), "
                f"or unset it.")
        return ThreadChoice(threads, f"{VARIABLE}={threads}")
    if setting == "torch":
        return ThreadChoice(None, f"{VARIABLE}=torch: torch's own choice")
    if not setting and env.get("OMP_NUM_THREADS"):
        return ThreadChoice(None, f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} (torch follows it; "
                                  f"{VARIABLE} unset)")
    cpus = usable_cpus() if cpus is None else cpus
    quota = cgroup_cpu_quota() if quota == "read" else quota
    if quota is not None and quota < cpus:
        return ThreadChoice(max(1, math.floor(quota)),
                            f"the cgroup CPU quota of {quota:g} CPUs (fewer than the {cpus} CPUs it may run on)")
    return ThreadChoice(cpus, f"the {cpus} CPUs this process may run on"
                              + ("" if quota is None else f" (cgroup quota {quota:g} CPUs)"))


_applied: ThreadChoice | None = None


def apply_threads() -> ThreadChoice:
    """Set torch's intra-op threads by :func:`choose_threads`, once per process (later calls return the
    first choice). Called by ``load_model``, so it runs before the kit's first model, not at import."""
    global _applied
    if _applied is None:
        import torch

        choice = choose_threads()
        if choice.threads is not None:
            torch.set_num_threads(choice.threads)
        _applied = choice
    return _applied


def describe_threads() -> str:
    """One line for ``tutorlib doctor``: the thread count torch will use and why."""
    import torch

    choice = choose_threads()
    threads = torch.get_num_threads() if choice.threads is None else choice.threads
    return f"{threads} ({choice.why}; set {VARIABLE} to change)"
