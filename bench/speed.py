"""Where learners wait, before and after the speed work: a tiny train() call's fixed cost, a fast-mode
summarisation comparison split into training, zero-shot, prefix and full generation, SmolLM2's training step,
a new process's start-up, and the whole test suite.

    .venv/bin/python bench/speed.py                 # every part but the suite, ~25 min on a quiet 2-core machine
    .venv/bin/python bench/speed.py --only train    # the train() part only (~2 min)
    .venv/bin/python bench/speed.py --only compare --threads 2   # the comparison at two torch threads
    .venv/bin/python bench/speed.py --only startup  # a new Python process importing the kit's models (~2 min)
    .venv/bin/python bench/speed.py --only suite    # the whole test suite, without and with bytecode (~20 min)

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
  first one, which makes the zero-shot row, is reported too, as "after, cold cache"). ``--rounds`` rounds
  (each: before, after, after, in a fresh row cache), the ratios of their medians; ``--threads`` torch
  threads (default 1).
* **memory columns** (``--only memory``): the stored sentiment comparison's budget (results/sentiment:
  MiniLM-L6, batches of 32 x up to 64 tokens) for 8 steps and 32 test items, before and after:
  ``peak_memory_increase_mb`` per method, the stored run's beside them for scale. Before and after run the
  same 8 batches, so they must agree; the stored run trained a whole epoch (266 length-grouped batches,
  its longest ones included), so its peaks are larger and are not expected to match.
* **steps** (``--only steps``, this tree only): SmolLM2 steps on the fast summarisation batches, projecting
  every position onto the vocabulary or only the labelled ones (``TrainConfig.label_logits_only``), full
  fine-tuning and prefix tuning interleaved; AdamW's update of SmolLM2's weights, fused or not.
* **startup** (``--only startup``): a new Python process importing torch, transformers and the kit's three
  model families, as each lesson kernel, graded notebook and test subprocess does: with the environment's
  compiled bytecode (.pyc, written once at install by ``scripts/venv.sh``) and without it (an empty
  ``PYTHONPYCACHEPREFIX`` and ``PYTHONDONTWRITEBYTECODE=1``: every module compiled from source, as in an
  environment installed without bytecode where .pyc files cannot be written). Interleaved, ``--rounds``.
* **test suite** (``--only suite``): the pytest command of ``make test`` (every test and notebook), wall and
  CPU time, once in a copy of the environment with its bytecode deleted (before), once in the environment.

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


def worker_steps(rounds: int) -> dict:
    """This tree only: SmolLM2 training steps on the fast budget's summarisation batches (4 x up to 128 tokens,
    a news body and its lead sentence), projecting every position onto the vocabulary or only the labelled ones
    (``TrainConfig.label_logits_only``), for full fine-tuning and prefix tuning, interleaved; and AdamW's update of
    SmolLM2's weights, fused (the kit's on the CPU) or not. One thread; medians of the steps after the first."""
    import torch

    from tutorlib import attach_prefix, load_dataset, load_model, prepare_full_finetuning
    from tutorlib.tasks.summarise import make_batches
    from tutorlib.training.loop import TrainConfig, train

    torch.set_num_threads(1)
    model, tok = load_model("smollm2-135m")
    batches = make_batches(load_dataset("nyt-leads")["train"].select(range(16)), tok, batch_size=4, max_length=128)
    labelled = [int((b["labels"] != -100).sum()) for b in batches]
    steps = {f"{m}_{'labelled_positions' if only else 'every_position'}": [] for m in ("full", "prefix")
             for only in (False, True)}
    for i in range(rounds):
        for only in ((False, True) if i % 2 == 0 else (True, False)):
            for method in ("full", "prefix"):
                fresh, _ = load_model("smollm2-135m")
                tuned = prepare_full_finetuning(fresh) if method == "full" else attach_prefix(fresh, prefix_length=10)
                config = TrainConfig(steps=5, lr=1e-5, device="cpu", label_logits_only=only)
                history = train(tuned, batches, config, progress=False)
                steps[f"{method}_{'labelled_positions' if only else 'every_position'}"] += history.seconds[1:]
    params = [p for p in model.parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    adamw = {}
    for fused in (False, True, False, True):
        optimizer = torch.optim.AdamW(params, lr=1e-5, fused=fused)
        optimizer.step()  # the state is created here
        start = time.perf_counter()
        for _ in range(3):
            optimizer.step()
        adamw.setdefault("fused" if fused else "unfused", []).append((time.perf_counter() - start) / 3)
    medians = {name: statistics.median(s) for name, s in steps.items()}
    return {"tokens_per_batch": [int(b["attention_mask"].sum()) for b in batches], "labelled_per_batch": labelled,
            "step_s": steps, "median_step_s": medians,
            "ratio_full": ratio(medians["full_labelled_positions"], medians["full_every_position"]),
            "ratio_prefix": ratio(medians["prefix_labelled_positions"], medians["prefix_every_position"]),
            "adamw_step_s": {k: statistics.median(v) for k, v in adamw.items()},
            "adamw_parameters": sum(p.numel() for p in params)}


def worker_memory(after: bool) -> dict:
    """The stored sentiment comparison's budget, 8 steps: each method's memory columns."""
    from tutorlib.experiments.compare import compare

    mode = {"mode": "full"} if after else {"fast": False}  # the run mode's keyword, now and in the code before
    result = compare("sentiment", steps=8, budget={"test_items": 32}, progress=False, measure_energy=False, **mode)
    return {row["method"]: {key: row[key] for key in ("peak_memory_mb", "peak_memory_increase_mb", "memory_kind")}
            for row in result.rows}


def worker_compare(after: bool) -> dict:
    """One fast-mode summarisation comparison; wall time per method, its train() call and its scoring."""
    import torch

    from tutorlib.experiments import compare as compare_module
    from tutorlib.experiments import runs

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # --threads
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


STARTUP = ("import torch, transformers; from tutorlib import load_model, attach_prefix; "
           "from transformers import GPT2LMHeadModel, BertModel, LlamaForCausalLM")
SUITE = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "tests", "notebooks", "solutions",
         "--ignore=tests/notebooks"]  # make test's pytest line, without pytest's cache folder


def timed_process(command: list[str], env: dict) -> dict:
    """Run ``command``; its wall time, the CPU time of it and its children, its exit code and last line."""
    before, start = os.times(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall, after = time.perf_counter() - start, os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    lines = done.stdout.strip().splitlines() or [""]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "returncode": done.returncode, "last_line": lines[-1],
            "failed": [line for line in lines if line.startswith("FAILED")]}


def without_bytecode(env: dict, empty_prefix: Path) -> dict:
    """An environment in which Python finds no .pyc file and writes none: every import compiles from source."""
    return {**env, "PYTHONPYCACHEPREFIX": str(empty_prefix), "PYTHONDONTWRITEBYTECODE": "1"}


def environment_copy_without_bytecode(folder: Path) -> Path:
    """A copy of this virtual environment with every __pycache__ folder deleted; returns its python."""
    import shutil

    venv = Path(sys.prefix)
    shutil.copytree(venv, folder, symlinks=True)
    for cache in sorted(folder.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    return folder / "bin" / "python"


def extract(ref: str, folder: Path) -> Path:
    """``git archive REF tutorlib`` into ``folder``; returns the folder (for PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "tutorlib"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_worker(kind: str, code: Path | None, env_extra: dict, *args: str) -> dict:
    """One measurement in a fresh process (``code``: the 'before' kit's folder; None: this tree). One torch
    thread unless ``env_extra`` sets OMP_NUM_THREADS."""
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
    parser.add_argument("--only", choices=["train", "compare", "steps", "memory", "startup", "suite"],
                        help="one part only")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the compare and startup parts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each comparison (1: least disturbed by other load; the kit's "
                             "default on a 2-core machine is 2)")
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
    if args.worker == "steps":
        print(json.dumps(worker_steps(args.rounds)))
        return
    if args.worker == "memory":
        print(json.dumps(worker_memory(args.after)))
        return

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before], capture_output=True,
                            text=True, check=True).stdout.strip()
    record = {"command": "python bench/speed.py" + (f" --only {args.only}" if args.only else "")
                         + (f" --rounds {args.rounds}" if args.rounds != 2 else "")
                         + (f" --threads {args.threads}" if args.threads != 1 else ""),
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
            rounds = []
            for i in range(args.rounds):  # each round: before, then after twice in one fresh row cache
                rows_cache = {"TUTORLIB_ROW_CACHE": str(Path(tmp) / f"rows-{i}"), "OMP_NUM_THREADS": str(args.threads)}
                before = run_worker("compare", before_code, rows_cache)
                cold = run_worker("compare", None, rows_cache, "--after")
                warm = run_worker("compare", None, rows_cache, "--after")
                rounds.append({"before": before, "after_cold_cache": cold, "after": warm})
                print(f"compare round {i + 1}: before {before['wall_s']:.1f} s, after {cold['wall_s']:.1f} s "
                      f"(row made), {warm['wall_s']:.1f} s (row read)", flush=True)
            median = {key: statistics.median(r[key]["wall_s"] for r in rounds)
                      for key in ("before", "after_cold_cache", "after")}
            key = "summarisation_compare" + (f"_{args.threads}_threads" if args.threads != 1 else "")
            record[key] = {
                "rounds": rounds, "median_wall_s": median,
                # the first round's split by method, for the table
                "before": rounds[0]["before"], "after_cold_cache": rounds[0]["after_cold_cache"],
                "after": rounds[0]["after"],
                "ratio_after_before": ratio(median["after"], median["before"]),
                "ratio_after_cold_before": ratio(median["after_cold_cache"], median["before"])}
            record[key + "_run"] = {"command": record["command"], "date": record["date"],
                                    "load_average_at_start": record["load_average_at_start"], "threads": args.threads}
            print(f"compare after/before: {record[key]['ratio_after_before']} (cold cache "
                  f"{record[key]['ratio_after_cold_before']})", flush=True)
        if args.only in (None, "steps"):
            record["steps"] = {**run_worker("steps", None, {}, "--rounds", str(args.rounds)),
                               "run": {k: record[k] for k in ("command", "date", "load_average_at_start")}}
            print(f"steps: {record['steps']['median_step_s']}, AdamW {record['steps']['adamw_step_s']}", flush=True)
        if args.only in (None, "startup"):
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            runs = {"without_bytecode": [], "with_bytecode": []}
            for i in range(args.rounds * 2):
                order = list(runs) if i % 2 == 0 else list(runs)[::-1]
                for label in order:
                    run_env = without_bytecode(env, Path(tmp) / f"no-pyc-{i}") if label == "without_bytecode" else env
                    runs[label].append(timed_process([sys.executable, "-c", STARTUP], run_env))
            median = {label: {"wall_s": statistics.median(r["wall_s"] for r in rs),
                              "cpu_s": statistics.median(r["cpu_s"] for r in rs)} for label, rs in runs.items()}
            record["startup"] = {"code": STARTUP, "runs": runs, "median": median,
                                 "ratio_with_without": ratio(median["with_bytecode"]["wall_s"],
                                                             median["without_bytecode"]["wall_s"]),
                                 "run": {k: record[k] for k in ("command", "date", "load_average_at_start")}}
            print(f"startup: {median}", flush=True)
        if args.only == "suite":  # not part of a plain run: about 20 minutes
            env = {**os.environ, "TUTORLIB_OFFLINE": "1", "TUTORLIB_MODE": "fast"}
            plain_python = environment_copy_without_bytecode(Path(tmp) / "venv-without-bytecode")
            before = timed_process([str(plain_python), *SUITE], env)
            print(f"suite without bytecode: {before}", flush=True)
            after = timed_process([sys.executable, *SUITE], env)
            print(f"suite with bytecode: {after}", flush=True)
            record["suite"] = {"command": " ".join(["python", *SUITE]), "without_bytecode": before,
                               "with_bytecode": after, "ratio_wall": ratio(after["wall_s"], before["wall_s"]),
                               "ratio_cpu": ratio(after["cpu_s"], before["cpu_s"]),
                               "run": {k: record[k] for k in ("command", "date", "load_average_at_start")}}
        if args.only in (None, "memory"):
            stored = json.loads((ROOT / "results" / "sentiment" / "results.json").read_text())
            memory = {"stored (results/sentiment, 266 steps)": {
                row["method"]: {key: row[key] for key in ("peak_memory_mb", "peak_memory_increase_mb", "memory_kind")}
                for row in stored["rows"]}}
            memory["before"] = run_worker("memory", before_code, {})
            memory["after"] = run_worker("memory", None, {}, "--after")
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
