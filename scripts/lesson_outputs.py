"""Store the outputs of one executed run of the lessons, for the course site (docs/lesson_outputs/).

    .venv/bin/python scripts/lesson_outputs.py --mode workshop               # run every lesson, store its outputs
    .venv/bin/python scripts/lesson_outputs.py --mode fast --executed runs/lesson-times/fast
                                                                              # store a run made before

The lessons in notebooks/ are stored without outputs (tests/test_notebook_hygiene.py), and the site is not
allowed to execute them while it builds (minutes to an hour). So one run is executed here, with
``TUTORLIB_MODE`` set, exactly as ``scripts/time_lessons.py`` runs a lesson (``jupyter nbconvert --execute``
in notebooks/), or taken from that script's executed copies (``--executed``). For each lesson one JSON file
keeps, per code cell id, the sha256 of the cell's source and the cell's outputs; ``docs/conf.py`` puts them
back into the lesson while the site is read, for every cell whose source is still the same. Nothing but
outputs is stored, so the lesson text is never copied.

Kept: stdout, results and displays (plots as PNG, tables as HTML). Dropped: stderr (warnings, progress
bars) and widgets (progress bars, the cost explorer): a static site has no kernel to run them, and their
plain-text form is only a repr. The repository's
path and the home folder are written as ``.`` and ``~``, so no machine path reaches the site.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "lesson_outputs"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MEANING = {"fast": "Fast mode runs a few steps on a little data: the code path of every cell is the real one, "
                   "but its numbers mean nothing; the full-mode results are on the Results page.",
           "workshop": "Workshop mode is sized for a class on laptop CPUs: each comparison's sign matches full "
                       "mode, its size may not (docs/teaching.md).",
           "full": "Full mode: the budgets behind the Results page."}


def source_sha(source: str | list[str]) -> str:
    """The fingerprint that ties an output to the exact code that made it (docs/conf.py computes the same)."""
    text = "".join(source) if isinstance(source, list) else source
    return hashlib.sha256(text.encode()).hexdigest()


def without_machine_paths(value):
    """Outputs with the repository's path written as ``.`` and the home folder as ``~`` (strings in lists
    and dicts too; base64 images are left alone, they hold no path)."""
    if isinstance(value, str):
        return value.replace(str(ROOT), ".").replace(str(Path.home()), "~")
    if isinstance(value, list):
        return [without_machine_paths(v) for v in value]
    if isinstance(value, dict):
        return {k: v if k.startswith("image/") else without_machine_paths(v) for k, v in value.items()}
    return value


def kept_outputs(outputs: list[dict], where: str) -> list[dict]:
    """The outputs a reader of the site should see; an error output stops everything (the run failed)."""
    kept = []
    for output in outputs:
        kind = output["output_type"]
        if kind == "error":
            sys.exit(f"{where}: the stored run raised {output['ename']}: {output['evalue']}; fix the lesson or "
                     f"the environment and run again (nothing was written)")
        if kind == "stream" and output["name"] == "stderr":
            continue
        if kind in ("display_data", "execute_result") and WIDGET_VIEW in output["data"]:
            continue  # a live widget (progress bar, explorer): its text form is only a repr such as "0%|  |"
        kept.append(without_machine_paths(output))
    return kept


def execute(lesson: Path, mode: str, folder: Path, limit_s: int) -> None:
    """Run one lesson as a learner's would, its executed copy written to ``folder``."""
    env = dict(os.environ, TUTORLIB_MODE=mode, TUTORLIB_OFFLINE="1")
    env.pop("TUTORLIB_FAST", None)
    jupyter = Path(sys.executable).with_name("jupyter")
    print(f"{lesson.name}: running in {mode} mode ...", flush=True)
    start = time.perf_counter()
    done = subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute",
                           f"--ExecutePreprocessor.timeout={limit_s}", "--output-dir", str(folder), str(lesson)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{lesson.name} failed in {mode} mode:\n{done.stderr[-3000:]}")
    print(f"  ran in {time.perf_counter() - start:.0f} s", flush=True)


def store(lesson: Path, executed: Path, run: dict) -> int:
    """Write docs/lesson_outputs/<lesson>.json from the executed copy; returns how many cells have outputs."""
    if not executed.exists():
        sys.exit(f"no executed copy of {lesson.name} in {executed.parent}: run it there first, or leave out --executed")
    source = json.loads(lesson.read_text())
    ran = {cell.get("id"): cell for cell in json.loads(executed.read_text())["cells"] if cell["cell_type"] == "code"}
    cells = {}
    for cell in source["cells"]:
        if cell["cell_type"] != "code":
            continue
        twin = ran.get(cell.get("id"))
        if twin is None or source_sha(twin["source"]) != source_sha(cell["source"]):
            sys.exit(f"{executed} was made from another version of {lesson.name} (cell {cell.get('id')} differs): "
                     f"run the lesson again")
        # every code cell, with or without output: the site tells a cell changed since the run by its fingerprint
        cells[cell["id"]] = {"source_sha256": source_sha(cell["source"]),
                             "execution_count": twin.get("execution_count"),
                             "outputs": kept_outputs(twin.get("outputs", []), f"{lesson.name}, cell {cell.get('id')}")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{lesson.stem}.json").write_text(json.dumps({"run": run, "cells": cells}, indent=1, sort_keys=True) + "\n")
    return sum(bool(cell["outputs"]) for cell in cells.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=sorted(MEANING), required=True,
                        help="the TUTORLIB_MODE of the run (workshop for a published site)")
    parser.add_argument("--executed", type=Path,
                        help="a folder of executed copies made before (scripts/time_lessons.py --scratch); "
                             "default: run every lesson now")
    parser.add_argument("--lessons", default="", help="comma-separated numbers, e.g. 5,6 (default: all)")
    parser.add_argument("--limit", type=int, default=3600, help="seconds one cell may take")
    args = parser.parse_args(argv)
    wanted = {int(n) for n in args.lessons.split(",") if n.strip()}
    lessons = [nb for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
               if not wanted or int(nb.name[:2]) in wanted]
    if not lessons:
        sys.exit(f"--lessons {args.lessons!r} matches no notebook in notebooks/")
    run = {"mode": args.mode, "date": time.strftime("%Y-%m-%d"), "meaning": MEANING[args.mode],
           "command": f"scripts/lesson_outputs.py --mode {args.mode}",
           "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.executed or Path(scratch)
        for lesson in lessons:  # each lesson stored as soon as it ran: a long run keeps what it finished
            if args.executed is None:
                execute(lesson, args.mode, folder, args.limit)
            count = store(lesson, folder / lesson.name, run)
            stored = (OUT / (lesson.stem + ".json")).relative_to(ROOT)
            print(f"{lesson.name}: outputs of {count} code cells -> {stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
