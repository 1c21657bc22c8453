"""What grading a class costs: the sandbox's start-up overhead, and a class graded with --jobs 1 and 2.

    .venv/bin/python bench/grading.py                       # overhead (10 pairs) + a class of 30, jobs 1 and 2
    .venv/bin/python bench/grading.py --learners 3          # a smaller class (the time per notebook is what scales)
    .venv/bin/python bench/grading.py --only overhead

Overhead: a learner's kernel started, given one trivial cell and closed, with the sandbox and
without it (``--unsafe-no-sandbox``'s path), interleaved pair by pair so that the machine's load
colours both alike; the median difference is the sandbox's own cost.

Class: LEARNERS copies of every honest solution graded by ``grade_class`` with jobs=1, then
jobs=2, same machine, one run. Each notebook's time is split into the kernel's start, and the rest
(the notebook's own work: given cells in both processes, answers, hidden tests). Results go to
bench/results/grading.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tutorlib.course.learner import KernelConnection  # noqa: E402
from tutorlib.course.sandbox import Limits, check_sandbox, start_kernel  # noqa: E402


def one_kernel(unsafe: bool) -> float:
    """Seconds to start a kernel, run one trivial cell and close it."""
    started = time.perf_counter()
    proc, fd, cleanup = start_kernel([], Limits(), "fast", unsafe=unsafe)
    connection = KernelConnection(proc, fd, cleanup)
    connection.ask({"op": "job"}, 60)
    connection.ask({"op": "cell", "kind": "answer", "cell": 0, "source": "x = 1"}, 60)
    connection.close()
    return time.perf_counter() - started


def overhead(pairs: int) -> dict:
    sandboxed, plain = [], []
    for _ in range(pairs):
        sandboxed.append(one_kernel(unsafe=False))
        plain.append(one_kernel(unsafe=True))
    diffs = [a - b for a, b in zip(sandboxed, plain)]
    return {"pairs": pairs, "sandboxed_median_s": statistics.median(sandboxed),
            "unsandboxed_median_s": statistics.median(plain), "overhead_median_s": statistics.median(diffs),
            "ratio": statistics.median(sandboxed) / statistics.median(plain)}


def a_class(learners: int, jobs: int, solutions: Path) -> dict:
    from tutorlib.course.gradebook import grade_class

    tmp = Path(tempfile.mkdtemp(prefix="bench-class-"))
    try:
        for i in range(learners):
            folder = tmp / "subs" / f"learner{i:02d}"
            folder.mkdir(parents=True)
            for notebook in solutions.glob("*.ipynb"):
                shutil.copy(notebook, folder)
        started = time.perf_counter()
        graded = grade_class(tmp / "subs", solutions, tmp / "out", jobs=jobs, cell_timeout=300)
        wall = time.perf_counter() - started
        notebooks = [nb for e in graded for nb in e.report.notebooks]
        return {"learners": learners, "jobs": jobs, "notebooks": len(notebooks), "wall_s": wall,
                "per_notebook_wall_s": wall / max(1, len(notebooks)),
                "notebook_seconds_median": statistics.median(nb.seconds for nb in notebooks),
                "kernel_start_median_s": statistics.median(nb.kernel_start_s for nb in notebooks),
                "full_marks": sum(1 for e in graded if e.total == sum(nb.max_points for nb in e.report.notebooks)),
                "points": [e.total for e in graded]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--only", choices=["overhead", "class"], default=None)
    parser.add_argument("--out", default=str(HERE / "results" / "grading.json"))
    args = parser.parse_args()
    check_sandbox()
    os.environ.setdefault("TUTORLIB_OFFLINE", "1")
    run = {"command": " ".join(["python bench/grading.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_before": os.getloadavg()}
    parts = {}
    if args.only in (None, "overhead"):
        parts["overhead"] = overhead(args.pairs)
        print(json.dumps(parts["overhead"], indent=1))
    if args.only in (None, "class"):
        parts["class"] = [a_class(args.learners, jobs, REPO / "solutions") for jobs in (1, 2)]
        one, two = parts["class"]
        parts["class_jobs2_over_jobs1"] = two["wall_s"] / one["wall_s"]
        per_class = 30 * len(list((REPO / "solutions").glob("*.ipynb")))  # 30 learners, every assignment
        parts["class_of_30_estimate_s"] = {f"jobs{c['jobs']}": c["per_notebook_wall_s"] * per_class
                                           for c in parts["class"]}
        print(json.dumps(parts["class"], indent=1))
    run["load_after"] = os.getloadavg()
    out = Path(args.out)
    old = json.loads(out.read_text()) if args.only and out.exists() else {}  # --only keeps the other part
    for part in ("overhead", "class"):
        if part in parts:
            parts[f"{part}_run"] = run  # which command, day and load measured this part
    out.write_text(json.dumps({**old, **parts}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
