"""Where learners wait, before and after the speed work: a tiny train() call's fixed cost, and a fast-mode
summarisation comparison split into training, zero-shot, prefix and full generation.

    .venv/bin/python bench/speed.py                 # both parts, ~15 min on a loaded 2-core machine
    .venv/bin/python bench/speed.py --only train    # the train() part only (~2 min)

"Before" is the kit at ``--before`` (default 904efbd, the commit these changes started from), extracted
with ``git archive`` into a temporary folder and put first on PYTHONPATH; "after" is this working tree.
Each measurement runs in a fresh worker process (``--worker``), before and after interleaved (B A A B ...)
in the same run on the same machine: compare the ratios, not the seconds across runs.

* **train() fixed cost**: the wall time of ``train(tiny-gpt2, 1 step)`` minus its step time, in a worker
  holding as many Python objects as a lesson's kernel (``--objects``, default 560,000: torch, transformers,
  datasets, pandas and matplotlib imported, topped up with one-item lists), where a full garbage collection
  costs most. Median over ``--repeats`` calls per worker.
* **summarisation comparison**: ``compare("summarise", fast=True, methods="zero-shot,prefix,full")``
  (SmolLM2-135M on nyt-leads, the fast budget), wall time per method, and of each method its ``train()``
  call and its scoring (generation + ROUGE). After = the second comparison in the same row cache (the
  first one, which makes the zero-shot row, is reported too, as "after, cold cache").
* **memory columns** (``--only memory``): the stored sentiment comparison's budget (results/sentiment:
  MiniLM-L6, batches of 32 x up to 64 tokens) for 8 steps and 32 test items, before and after:
  ``peak_memory_increase_mb`` per method, the stored run's beside them for scale. Before and after run the
  same 8 batches, so they must agree; the stored run trained a whole epoch (266 length-grouped batches,
  its longest ones included), so its peaks are larger and are not expected to match.

Results: bench/results/speed.json; the note: bench/RESULTS.md, section 7.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# ----------------------------------------------------------------------------- workers (one per measurement)


def _hold_objects(target: int) -> list:
    """Import what a lesson imports, then hold one-item lists until the collector tracks ``target`` objects."""
    import gc

    import datasets  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401
    import transformers  # noqa: F401

    filler = [[i] for i in range(max(0, target - len(gc.get_objects())))]  # lists: always tracked
    return filler


def worker_train(repeats: int, objects: int) -> dict:
    """``train(tiny-gpt2, 1 step)`` ``repeats`` times: whole call, step, and the difference (fixed cost)."""
    import gc

    import torch

    from tutorlib.loading.models import load_model
    from tutorlib.training.loop import TrainConfig, train

    held = _hold_objects(objects)
    model, tok = load_model("tiny-gpt2")
    batch = dict(tok(["a tiny batch of words"] * 2, return_tensors="pt"))
    batch["labels"] = batch["input_ids"].clone()  # (B, T)
    torch.set_num_threads(1)
    train(model, [batch], TrainConfig(steps=1, device="cpu"), progress=False)  # warm-up: first-call imports
    calls, steps = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        history = train(model, [batch], TrainConfig(steps=1, device="cpu"), progress=False)
        calls.append(time.perf_counter() - start)
        steps.append(sum(history.seconds))
    return {"objects_tracked": len(gc.get_objects()), "held": len(held), "call_s": statistics.median(calls),
            "step_s": statistics.median(steps), "fixed_s": statistics.median(c - s for c, s in zip(calls, steps)),
            "calls_s": calls}


def worker_memory() -> dict:
    """The stored sentiment comparison's budget, 8 steps: each method's memory columns."""
    from tutorlib.experiments.compare import compare

    result = compare("sentiment", fast=False, steps=8, budget={"test_items": 32}, progress=False,
                     measure_energy=False)
    return {row["method"]: {key: row[key] for key in ("peak_memory_mb", "peak_memory_increase_mb", "memory_kind")}
            for row in result.rows}


def worker_compare(after: bool) -> dict:
    """One fast-mode summarisation comparison; wall time per method, its train() call and its scoring."""
    import torch

    from tutorlib.experiments import compare as compare_module
    from tutorlib.experiments import runs

    torch.set_num_threads(1)
    walls = {}
    run_method = runs.run_method

    def timed(method, **kwargs):  # compare() imports run_method from runs when it is called
        start = time.perf_counter()
        run = run_method(method, **kwargs)
        walls[getattr(method, "name", method)] = time.perf_counter() - start  # a registry record, or (before) its name
        return run

    runs.run_method = timed
    # the run mode: mode="fast" now, fast=True in the code before (the same fast budget)
    extra = {"use_cache": True, "mode": "fast"} if after else {"fast": True}
    start = time.perf_counter()
    result = compare_module.compare("summarise", methods="zero-shot,prefix,full", progress=False,
                                    measure_energy=False, **extra)
    wall = time.perf_counter() - start
    methods = {}
    for row in result.rows:
        name, history = row["method"], result.histories.get(row["method"])
        train_s = history.total_seconds if history is not None else 0.0
        methods[name] = {"wall_s": walls[name], "train_s": train_s, "scoring_s": walls[name] - train_s,
                         "eval_batch_size": row.get("eval_batch_size", result.budget["eval_batch_size"]),
                         "from_cache": row.get("from_cache", False), "rougeL": row["rougeL"]}
    return {"wall_s": wall, "methods": methods}


# ----------------------------------------------------------------------------- the run


def extract(ref: str, folder: Path) -> Path:
    """``git archive REF tutorlib`` into ``folder``; returns the folder (for PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "tutorlib"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_worker(kind: str, code: Path | None, env_extra: dict, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "TUTORLIB_OFFLINE": "1",
           **env_extra}
    env["PYTHONPATH"] = str(code) if code is not None else str(ROOT)
    done = subprocess.run([sys.executable, __file__, "--worker", kind, *args], capture_output=True, text=True,
                          env=env, cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} ({'before' if code else 'after'}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio(after: float, before: float) -> float:
    return round(after / before, 3) if before else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="904efbd", help="git ref of the 'before' code (default: %(default)s)")
    parser.add_argument("--only", choices=["train", "compare", "memory"], help="one part only")
    parser.add_argument("--workers", type=int, default=2, help="worker pairs for the train() part")
    parser.add_argument("--repeats", type=int, default=5, help="train() calls per worker")
    parser.add_argument("--objects", type=int, default=560_000, help="Python objects a train() worker holds")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--after", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "train":
        print(json.dumps(worker_train(args.repeats, args.objects)))
        return
    if args.worker == "compare":
        print(json.dumps(worker_compare(args.after)))
        return
    if args.worker == "memory":
        print(json.dumps(worker_memory()))
        return

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before], capture_output=True,
                            text=True, check=True).stdout.strip()
    record = {"command": "python bench/speed.py" + (f" --only {args.only}" if args.only else ""),
              "date": time.strftime("%Y-%m-%d"), "before": f"{args.before} ({commit}), git archive",
              "after": "this working tree", "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        before_code = extract(args.before, Path(tmp))
        if args.only in (None, "train"):
            pairs = []
            for i in range(args.workers):
                order = [("before", before_code), ("after", None)]
                for label, code in order if i % 2 == 0 else order[::-1]:  # B A, then A B
                    result = run_worker("train", code, {}, "--repeats", str(args.repeats),
                                        "--objects", str(args.objects))
                    pairs.append((label, result))
                    print(f"train() {label}: fixed {result['fixed_s']:.3f} s, step {result['step_s']:.3f} s, "
                          f"{result['objects_tracked']:,} objects", flush=True)
            fixed = {label: statistics.median(r["fixed_s"] for lab, r in pairs if lab == label)
                     for label in ("before", "after")}
            record["train_fixed_cost"] = {"runs": [{"code": lab, **r} for lab, r in pairs], "median_fixed_s": fixed,
                                          "ratio_after_before": ratio(fixed["after"], fixed["before"])}
            print(f"train() fixed cost after/before: {record['train_fixed_cost']['ratio_after_before']}", flush=True)
        if args.only in (None, "compare"):
            rows_cache = {"TUTORLIB_ROW_CACHE": str(Path(tmp) / "rows")}
            before = run_worker("compare", before_code, rows_cache)
            print(f"compare before: {before['wall_s']:.1f} s", flush=True)
            cold = run_worker("compare", None, rows_cache, "--after")
            print(f"compare after, cold cache: {cold['wall_s']:.1f} s", flush=True)
            warm = run_worker("compare", None, rows_cache, "--after")
            print(f"compare after: {warm['wall_s']:.1f} s", flush=True)
            record["summarisation_compare"] = {"before": before, "after_cold_cache": cold, "after": warm,
                                               "ratio_after_before": ratio(warm["wall_s"], before["wall_s"]),
                                               "ratio_after_cold_before": ratio(cold["wall_s"], before["wall_s"])}
            print(f"compare after/before: {record['summarisation_compare']['ratio_after_before']} (cold cache "
                  f"{record['summarisation_compare']['ratio_after_cold_before']})", flush=True)
        if args.only in (None, "memory"):
            stored = json.loads((ROOT / "results" / "sentiment" / "results.json").read_text())
            memory = {"stored (results/sentiment, 266 steps)": {
                row["method"]: {key: row[key] for key in ("peak_memory_mb", "peak_memory_increase_mb", "memory_kind")}
                for row in stored["rows"]}}
            memory["before"] = run_worker("memory", before_code, {})
            memory["after"] = run_worker("memory", None, {})
            for label, rows in memory.items():
                print(f"memory increase, {label}: " + ", ".join(
                    f"{method} {row['peak_memory_increase_mb']:.0f} MiB" for method, row in rows.items()), flush=True)
            record["memory_columns"] = memory
    record["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**old, **record}, indent=1) + "\n")  # --only keeps the other part's numbers
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
