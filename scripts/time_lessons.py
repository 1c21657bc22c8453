"""Time every lesson in one mode, one notebook at a time, and store what was measured.

    .venv/bin/python scripts/time_lessons.py --mode workshop --out results/lesson-times/workshop.json

Each lesson runs as a learner's would (``jupyter nbconvert --execute`` in ``notebooks/``, the executed copy
written to runs/lesson-times/<mode>/, the stored notebook untouched) with ``TUTORLIB_MODE`` set. For each
lesson the file records the wall time, the peak resident memory of the largest process (the kernel: it
holds the models; ``peak_rss_mb`` is in MiB, like the kit's other ``_mb`` fields) and the machine's load
average before and after, so a reader can judge how busy the machine was. The README's course table and
docs/teaching.md quote these files.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from tutorlib import MODES, Mode

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = Path(sys.executable).with_name("jupyter")


def time_one(notebook: Path, mode: Mode, scratch: Path, limit_s: int) -> dict:
    """Run one notebook in a child process; wall time, peak RSS and load average around it."""
    env = dict(os.environ, TUTORLIB_MODE=mode, TUTORLIB_OFFLINE="1")
    env.pop("TUTORLIB_FAST", None)
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run([str(JUPYTER), "nbconvert", "--to", "notebook", "--execute",
                           f"--ExecutePreprocessor.timeout={limit_s}", "--output-dir", str(scratch),
                           str(notebook)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    # ru_maxrss of RUSAGE_CHILDREN: the largest process waited for so far (KiB on Linux). nbconvert waits
    # for its kernel, so this is the kernel's peak unless an earlier lesson's was larger: each lesson is
    # therefore run by a fresh copy of this script (see main).
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"notebook": notebook.name, "ok": done.returncode == 0, "wall_s": round(wall, 1),
            "peak_rss_mb": round(peak_kib / 1024), "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "error_tail": None if done.returncode == 0 else done.stderr[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (rewritten after each lesson)")
    parser.add_argument("--lessons", default="", help="comma-separated numbers, e.g. 4,5 (default: all)")
    parser.add_argument("--limit", type=int, default=3600, help="seconds one cell may take")
    parser.add_argument("--scratch", type=Path, help="folder for the executed copies "
                        "(default: runs/lesson-times/<mode>/, ignored by git)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: time this notebook, print JSON
    args = parser.parse_args()
    scratch = args.scratch or ROOT / "runs" / "lesson-times" / args.mode
    if not JUPYTER.exists():
        sys.exit(f"no jupyter beside {sys.executable}: run this script with the kit's environment "
                 f"(.venv/bin/python, made by `make venv` or scripts/venv.sh)")

    if args.one is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        print(json.dumps(time_one(args.one, args.mode, scratch, args.limit)))
        return

    wanted = {int(n) for n in args.lessons.split(",") if n.strip()}
    notebooks = [nb for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
                 if not wanted or int(nb.name[:2]) in wanted]
    record = json.loads(args.out.read_text()) if args.out.exists() else {}
    record.update({
        "command": f"TUTORLIB_MODE={args.mode} jupyter nbconvert --to notebook --execute notebooks/NN_*.ipynb",
        "mode": args.mode, "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
    })
    lessons = record.setdefault("lessons", {})
    for notebook in notebooks:
        print(f"{notebook.name}: running in {args.mode} mode ...", flush=True)
        child = subprocess.run([sys.executable, __file__, "--mode", args.mode, "--out", str(args.out),
                                "--limit", str(args.limit), "--scratch", str(scratch), "--one", str(notebook)],
                               capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result["wall_min"] = round(result["wall_s"] / 60, 1)
        lessons[f"lesson{notebook.name[:2]}"] = result  # a key the README's drift markers can name
        print(f"  {'ok' if result['ok'] else 'FAILED'}  {result['wall_s']:.0f} s  peak {result['peak_rss_mb']} MiB"
              f"  load {result['load_before'][0]} -> {result['load_after'][0]}", flush=True)
        record["total_min"] = round(sum(one["wall_s"] for one in lessons.values()) / 60, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")  # after each lesson: nothing lost on a crash


if __name__ == "__main__":
    main()
