"""The few system calls a learner's kernel may not make, as a seccomp filter for bubblewrap (``--add-seccomp-fd``).

A namespace sandbox leaves the whole Linux kernel reachable. Most of it is harmless to an unprivileged process;
a few calls are not, and no notebook needs them:

* a new **user namespace** (``unshare``/``clone`` with ``CLONE_NEWUSER``, ``setns``): inside one a process holds
  every capability, which opens the kernel's network filter and packet code (where local-root bugs keep being
  found) to learner code. ``clone3`` is refused as "not implemented", so that the C library falls back to
  ``clone``, whose flags the filter can read.
* the **key rings** (``add_key``, ``keyctl``, ``request_key``): they belong to a user id, not a namespace, so two
  sandboxes could pass answers through them, and they outlive the notebook.
* **memfd_create**: memory written into one is not data (``RLIMIT_DATA``) nor address space (``RLIMIT_AS``), so
  where no cgroup counts memory it would be unbounded.

Each such call fails with EPERM (or ENOSYS); everything else is allowed. The filter is classic BPF, written out
here because it is small: the architecture is checked first (a 32-bit call table would number calls
differently) and any other architecture's call is refused.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

# Linux's numbers for the calls refused, per architecture (include/uapi/asm-generic/unistd.h for arm64).
_CALLS = {
    "x86_64": {"audit_arch": 0xC000003E, "unshare": 272, "clone": 56, "clone3": 435, "setns": 308, "add_key": 248,
               "request_key": 249, "keyctl": 250, "memfd_create": 319},
    "aarch64": {"audit_arch": 0xC00000B7, "unshare": 97, "clone": 220, "clone3": 435, "setns": 268, "add_key": 217,
                "request_key": 218, "keyctl": 219, "memfd_create": 279},
}
CLONE_NEWUSER = 0x10000000
_X32_BIT = 0x40000000  # x86_64's x32 calls: the same numbers with this bit set

# Classic BPF (linux/filter.h, linux/seccomp.h).
_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL = 0x7FFF0000, 0x80000000


def _errno(code: int) -> int:
    return 0x00050000 | code


def filter_program(machine: str | None = None) -> bytes | None:
    """The filter as the bytes of its ``struct sock_filter`` array, for ``machine`` (default: this one's);
    None where the kit does not know the architecture's call numbers."""
    calls = _CALLS.get(machine or platform.machine())
    if calls is None:
        return None
    refused = [calls[name] for name in ("setns", "add_key", "request_key", "keyctl", "memfd_create")]
    # (code, jump if true, jump if false, k); jumps count instructions after this one.
    program: list[tuple[int, int, int, int]] = [
        (_LD_ABS_W, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 1, 0, calls["audit_arch"]),
        (_RET, 0, 0, _KILL),
        (_LD_ABS_W, 0, 0, 0),  # seccomp_data.nr
        (_JGE, 0, 1, _X32_BIT),
        (_RET, 0, 0, _errno(errno.EPERM)),
        (_JEQ, 0, 1, calls["clone3"]),
        (_RET, 0, 0, _errno(errno.ENOSYS)),
    ]
    for number in refused:
        program += [(_JEQ, 0, 1, number), (_RET, 0, 0, _errno(errno.EPERM))]
    # unshare(flags) and clone(flags, ...): flags is the first argument (its low 32 bits at offset 16).
    program += [
        (_JEQ, 1, 0, calls["unshare"]),
        (_JEQ, 0, 3, calls["clone"]),
        (_LD_ABS_W, 0, 0, 16),
        (_JSET, 0, 1, CLONE_NEWUSER),
        (_RET, 0, 0, _errno(errno.EPERM)),
        (_RET, 0, 0, _ALLOW),
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def filter_fd() -> int | None:
    """A pipe's read end holding :func:`filter_program` (for ``bwrap --add-seccomp-fd``); None without a filter.
    The caller passes it to bubblewrap and closes it."""
    program = filter_program()
    if program is None:
        return None
    read_fd, write_fd = os.pipe()
    os.write(write_fd, program)  # a few hundred bytes: fits the pipe's buffer
    os.close(write_fd)
    return read_fd
