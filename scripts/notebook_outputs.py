"""Keep lesson notebooks' outputs to the cells whose output is checked by nbval.

The rule (enforced by tests/test_notebook_hygiene.py): in notebooks/ and solutions/ only cells
marked `# NBVAL_CHECK_OUTPUT` carry outputs (nbval --nbval-lax compares them on every CI run);
every other cell is stored without outputs or execution counts, so diffs stay readable and no
machine path or timing leaks into git. exercises/ are generated without any outputs.

    python scripts/notebook_outputs.py notebooks/*.ipynb             # strip what is not checked
    python scripts/notebook_outputs.py --execute notebooks/02_*.ipynb  # run (fast mode), keep checked outputs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

from tutorlib.files import atomic_file

MARK = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and MARK in cell.source


def strip(nb) -> None:
    """Drop outputs of every cell that nbval does not check, and widget state.

    Checked cells keep their outputs and get execution counts 1, 2, 3, ... in order (nbval refuses
    a reference cell with outputs but no count); every other cell gets none.
    """
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if not is_checked(cell):
            cell.outputs, cell.execution_count = [], None
            continue
        count += 1
        cell.execution_count = count
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count
    nb.metadata.pop("widgets", None)  # progress bars' widget state: large, and never checked


def execute(nb, path: Path, timeout: int) -> None:
    from nbclient import NotebookClient

    os.environ.setdefault("TUTORLIB_FAST", "1")
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--execute", action="store_true", help="run in fast mode first (nbclient)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell when executing")
    args = p.parse_args(argv)
    for path in args.paths:
        nb = nbformat.read(path, as_version=4)
        if args.execute:
            execute(nb, path, args.timeout)
        strip(nb)
        with atomic_file(path) as tmp:
            nbformat.write(nb, tmp)
        print(f"ok  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
