"""A learner's notebook made from a solution: some cells replaced (by grade_id or cell id)."""

from __future__ import annotations

from pathlib import Path

import nbformat


def learner_copy(solution: Path, replace: dict, out: Path, name: str | None = None) -> Path:
    """Write ``solution`` with the cells named in ``replace`` (grade_id or cell id -> source) into ``out``."""
    nb = nbformat.read(solution, 4)
    for cell in nb.cells:
        key = cell.metadata.get("nbgrader", {}).get("grade_id")
        if key in replace or cell.get("id") in replace:
            cell.source = replace.get(key, replace.get(cell.get("id")))
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / (name or solution.name))
    return out / (name or solution.name)
