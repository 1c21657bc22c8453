"""A comparison's output folder, written all at once or not at all, and checked before anything runs.

    >>> from tutorlib.experiments.output_folder import check_output_folder
    >>> check_output_folder("runs/new-folder")          # doctest: +SKIP  raises if it cannot be used

Light on purpose (no torch): the command line checks ``--out`` with :func:`check_output_folder` before it
imports or loads anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tutorlib.files import replace_folder

RESULTS_FILE = "results.json"

# How the two settings are called in messages, by default (the command line passes its option names).
PYTHON_NAMES = {"out": "out_dir=", "overwrite": "overwrite=True"}


def _what_it_holds(results_file: Path) -> str:
    """', sentiment: full, prefix; 2026-12-05 11:02' from a saved results.json ('' if unreadable)."""
    try:
        data = json.loads(results_file.read_text())
        methods = ", ".join(r.get("method", "?") for r in data.get("rows", []))
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(results_file.stat().st_mtime))
        return f", {data.get('task', '?')}: {methods}; written {when}"
    except (OSError, ValueError, AttributeError):
        return ""


def check_output_folder(path, overwrite: bool = False, names: Mapping[str, str] = PYTHON_NAMES) -> None:
    """Raise an OSError if ``path`` cannot take a comparison: it is a file, holds other files, holds an earlier
    comparison (FileExistsError, unless ``overwrite``) or sits where nothing can be written. ``names``: what
    the out and overwrite settings are called in the message ("--out", "--overwrite" on the command line)."""
    target = Path(path).expanduser().absolute()
    out, again = names.get("out", "out_dir="), names.get("overwrite", "overwrite=True")
    if target.exists() and not target.is_dir():
        raise OSError(f"The output folder {target} is a file. Choose another folder ({out}).")
    if target.is_dir() and any(target.iterdir()) and not (target / RESULTS_FILE).is_file():
        raise OSError(f"The output folder {target} exists and holds other files (no {RESULTS_FILE}): it is "
                      f"not an earlier comparison, so it is not replaced. Choose a new or empty folder ({out}).")
    if (target / RESULTS_FILE).is_file() and not overwrite:
        raise FileExistsError(f"The output folder {target} already holds a comparison ({RESULTS_FILE}"
                              f"{_what_it_holds(target / RESULTS_FILE)}). Choose another folder ({out}), or "
                              f"replace it with {again}.")
    for ancestor in target.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OSError(f"Cannot write the output folder {target}: {ancestor} is a file, not a folder.")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise OSError(f"Cannot write the output folder {target}: no permission to write in {ancestor}.")
            break


class OutputFolder:
    """Write a comparison's folder all at once, or not at all.

    ``with OutputFolder("runs/x") as folder:`` checks at once that ``runs/x`` can be written (a clear
    OSError naming the folder otherwise), creates a hidden staging folder beside it (``folder.staging``,
    also ``folder.checkpoints``), and :meth:`commit` renames the staging folder into place (replacing an
    earlier results folder). Leaving the block without ``commit()`` (an error, Ctrl-C) removes the
    staging folder and any parent folders it created. A folder that already holds a comparison is
    refused unless ``overwrite=True``. With ``None``: a temporary folder for
    checkpoints only, always removed; ``folder.path`` and ``folder.staging`` are None.
    """

    def __init__(self, path, overwrite: bool = False):
        self.path = None if path is None else Path(path).expanduser().absolute()
        self.overwrite = overwrite
        self.staging: Path | None = None
        self.checkpoints: Path | None = None
        self._created: list[Path] = []
        self._committed = False

    def __enter__(self) -> OutputFolder:
        if self.path is None:
            self.checkpoints = Path(tempfile.mkdtemp(prefix="tutorlib-checkpoints-"))
            return self
        check_output_folder(self.path, self.overwrite)
        parent = self.path.parent
        try:
            missing = [p for p in [parent, *parent.parents] if not p.exists()]
            parent.mkdir(parents=True, exist_ok=True)
            self._created = missing  # deepest first: removed in this order if nothing is committed
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=parent))
        except OSError as err:
            self._remove_created()
            raise OSError(f"Cannot write the output folder {self.path}: {err.strerror or err}. Choose another "
                          f"folder where you can write.") from None
        self.checkpoints = self.staging
        return self

    def commit(self) -> Path:
        """Put the staging folder in place of ``path`` (an older results folder there is replaced)."""
        if self.path is None:
            raise ValueError("No output folder was given: nothing to commit.")
        replace_folder(self.staging, self.path)
        self._committed = True
        return self.path

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                break

    def __exit__(self, *exc) -> None:
        if self.path is None:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
            return
        if not self._committed:
            if self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
            self._remove_created()
