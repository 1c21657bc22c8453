"""One process at a time prepares each thing in the shared asset cache; the others wait, then reuse it.

A workshop server, a JupyterHub or a CI runner gives many processes one cache folder. Each step that
writes into it (fetching an artifact, extracting a member, converting SmolLM2, building a dataset) holds
an inter-process lock named after that step and that artifact while it checks and writes::

    >>> from tutorlib.loading.cache_lock import cache_lock
    >>> with cache_lock(folder, "convert-smollm2-135m", "converting smollm2-135m"):  # doctest: +SKIP
    ...     if not done():      # check again under the lock: another process may have finished it
    ...         do_it()

The lock is a ``filelock.FileLock`` (the library huggingface_hub uses for its own cache): an OS lock on a
file in ``<cache>/locks/``, released by the operating system when its holder exits, even when it is
killed, so a crashed learner never blocks the others. Locks of different steps are different files, so a
step may take the lock of the step below it (convert -> extract -> fetch) without waiting on itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

QUIET_WAIT_S = 1.0  # shorter waits pass silently; a longer one says who it waits for


@contextmanager
def cache_lock(cache: Path, key: str, what: str) -> Iterator[None]:
    """Hold the lock ``<cache>/locks/<key>.lock`` for the block; wait (without limit) while another holds it.

    Args:
        cache: the cache folder (``assets.cache_dir()``).
        key: one step on one thing, e.g. ``"fetch-minilm-l6"``: a file name, so no slashes.
        what: the step in words, for the message printed when the wait is longer than a second.
    """
    folder = Path(cache) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    # 0o666: on a shared server every learner's account must be able to take the lock
    lock = FileLock(folder / f"{key}.lock", mode=0o666)
    try:
        lock.acquire(timeout=QUIET_WAIT_S)
    except Timeout:
        print(f"tutorlib: waiting for another process that is {what} (lock {lock.lock_file}) ...",
              file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
