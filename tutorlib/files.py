"""Writing files and folders atomically: a reader sees the old version or the new one, never half.

The one technique, used for every file the kit writes (cached downloads, datasets, converted models,
comparison results, generated exercises, grade reports): write into a hidden temporary path **beside**
the target (same folder, so the same file system), then rename it onto the target. A rename within one
file system is atomic; a crash or Ctrl-C before it leaves only the temporary path, which is removed.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_atomic(folder / "notes.txt", "hello\\n")
    >>> (folder / "notes.txt").read_text()
    'hello\\n'

Temporary names are ``.NAME.TOKEN.PID.part``: hidden, unique, and naming the process that writes
them, so :func:`remove_abandoned_parts` can tell a crashed writer's leftovers from a live one's.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _part_path(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.NAME.TOKEN.PID.part``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.{os.getpid()}.part")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write the file into; on leaving the block it replaces ``path``.

    An error inside the block removes the temporary file and leaves ``path`` as it was::

        with atomic_file(out / "plot.png") as tmp:
            figure.savefig(tmp, format="png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _part_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there if the block or the rename failed


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def replace_folder(new: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Put the folder ``new`` in place of ``path``. An existing folder at ``path`` is first renamed
    aside, then deleted, so ``path`` holds the old folder or the new one at every moment."""
    new, path = Path(new), Path(path)
    old = _part_path(path) if path.exists() else None
    if old is not None:
        os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)  # put the old folder back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


@contextmanager
def atomic_folder(path: str | os.PathLike, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on leaving the block it takes the place of ``path``.

    ``keep_existing=True`` is for content that is the same whoever writes it (a dataset cache keyed by
    its seed): when another process put a complete ``path`` in place first, that one stays and this one
    is discarded. Otherwise an existing ``path`` is replaced (see :func:`replace_folder`). An error inside
    the block removes the temporary folder and leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _part_path(path)
    tmp.mkdir()
    try:
        yield tmp
        if keep_existing and path.exists():
            return
        replace_folder(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only still there if not moved into place


def remove_abandoned_parts(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary ``.part`` files and folders of ``path`` whose writing process no longer runs
    (a crash, a kill); those of a live process are kept. Returns what was deleted."""
    path = Path(path)
    removed = []
    for part in path.parent.glob(f".{path.name}.*.part"):
        pid = part.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or not _process_alive(int(pid)):
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)
            removed.append(part)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True
