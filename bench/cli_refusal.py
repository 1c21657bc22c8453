"""How fast the command line refuses a bad option: each refusal against a bare interpreter and `import torch`.

    python bench/cli_refusal.py            # 5 interleaved repetitions -> bench/results/cli_refusal.json
    python bench/cli_refusal.py --quick    # 2 repetitions

Every case is a fresh `python -m tutorlib compare ...` that must exit 2 with its message as the last line.
The target (issue 23): under 2 s on an idle machine, i.e. no torch, transformers or data loaded before the
refusal. Wall times depend on what else runs, so the JSON keeps the load average and the ratio of each
refusal to `import torch` measured beside it (the same moments of the same machine): a refusal that
imported torch would take at least as long as the torch import (ratio >= 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

CASES = {
    "--steps 0": ["--steps", "0"],
    "--dataset missing.csv": ["--dataset", "missing.csv"],
    "--methods full,adapter": ["--methods", "full,adapter"],
    "--task translate": ["--task", "translate"],
    "--max-length 3": ["--max-length", "3"],
    "--device cuda (CPU torch)": ["--device", "cuda"],
    "--lr full=-1": ["--lr", "full=-1"],
    "--out with an earlier comparison": None,  # filled in with a folder holding results.json
}
BASELINES = {"python (interpreter start)": [sys.executable, "-c", "pass"],
             "python -c 'import torch'": [sys.executable, "-c", "import torch"]}


def timed(command: list[str], env: dict) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return time.perf_counter() - started, done.returncode, last


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions instead of 5")
    args = parser.parse_args(argv)
    reps = 2 if args.quick else 5
    env = dict(os.environ, TUTORLIB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as scratch:
        earlier = Path(scratch) / "earlier"
        earlier.mkdir()
        (earlier / "results.json").write_text(json.dumps({"task": "sentiment", "rows": [{"method": "full"}]}))
        commands = {name: [sys.executable, "-m", "tutorlib", "compare", "--task", "sentiment",
                           *(extra if extra is not None else []), "--out", str(earlier if extra is None else
                                                                              Path(scratch) / "never")]
                    for name, extra in CASES.items()}
        commands.update(BASELINES)
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        messages, load_before = {}, os.getloadavg()
        for rep in range(reps):
            order = list(commands) if rep % 2 == 0 else list(reversed(commands))  # A B ... B A
            for name in order:
                wall, code, last = timed(commands[name], env)
                seconds[name].append(wall)
                if name in CASES:
                    if code != 2 or "error:" not in last:
                        raise SystemExit(f"{name}: expected a refusal (exit 2, message last), got {code}: {last}")
                    messages[name] = last
        load_after = os.getloadavg()
    torch_s = statistics.median(seconds["python -c 'import torch'"])
    rows = {name: {"median_s": statistics.median(v), "runs_s": v,
                   "ratio_to_import_torch": statistics.median(v) / torch_s,
                   **({"message": messages[name]} if name in messages else {})} for name, v in seconds.items()}
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "repetitions": reps,
              "command": "python bench/cli_refusal.py" + (" --quick" if args.quick else ""),
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpu_count": os.cpu_count(), "load_average_before": load_before,
                          "load_average_after": load_after},
              "target": "each refusal under 2 s on an idle machine; ratio to `import torch` below 1",
              "cases": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli_refusal.json").write_text(json.dumps(report, indent=1) + "\n")
    width = max(map(len, rows))
    print(f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs; {reps} repetitions")
    for name, row in rows.items():
        print(f"  {name:<{width}}  {row['median_s']:6.2f} s  x{row['ratio_to_import_torch']:.2f} of import torch")
    print(f"wrote {RESULTS / 'cli_refusal.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
