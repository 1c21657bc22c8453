"""The benchmark command: prefix tuning vs full fine-tuning vs PEFT, the paper at small scale, serving.

    .venv/bin/python bench/run.py --quick                 # everything, laptop budget (make bench)
    .venv/bin/python bench/run.py --quick --only peft     # one part (comma-separate several)
    .venv/bin/python bench/run.py                         # fuller budgets (a GPU or a long coffee)
    .venv/bin/python bench/run.py --summary               # only re-print the summary of the last run

Parts (each runs in its own fresh process, so one part's memory never colours another's):
  step-costs     prefix vs full step time (by phase), memory, optimizer state, checkpoint, inference; FLOP limit
  peft           tutorlib's prefix tuning vs PEFT's on the same GPT-2 config and batch
  cost-curves    step time and memory vs prefix length and vs sequence length (bench/cost_curves.png)
  paper          Li & Liang 2021 (arXiv v1) at small scale (bench/paper.png)
  many-prefixes  one frozen model serving rows with different prefixes vs swapping fine-tuned models
  trainer        tutorlib's loop vs Hugging Face Trainer (MiniLM full FT) and Trainer + PEFT (SmolLM2 prefix)
Results go to bench/results/<part>.json; the summary at the end prints every ratio and target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {"step-costs": "step_costs.py", "peft": "peft_compare.py", "cost-curves": "cost_curves.py",
         "paper": "paper.py", "many-prefixes": "many_prefixes.py", "trainer": "trainer_compare.py"}
RESULTS = {"step-costs": "step_costs", "peft": "peft_compare", "cost-curves": "cost_curves", "paper": "paper",
           "many-prefixes": "many_prefixes", "trainer": "trainer_compare"}
DECODERS = ("smollm2-135m", "gpt2-small", "distilgpt2-size")
TAKES_DEVICE = ("step-costs", "peft", "cost-curves")  # paper trains with tutorlib.training.loop (device "auto")


def run_part(part: str, quick: bool, threads: int, device: str = "cpu") -> float:
    """Run one part in a fresh Python process; returns its wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "TUTORLIB_OFFLINE": os.environ.get("TUTORLIB_OFFLINE", "1")}
    command = [sys.executable, str(HERE / PARTS[part]), "--threads", str(threads)] + (["--quick"] if quick else [])
    command += ["--device", device] if part in TAKES_DEVICE else []
    started = time.perf_counter()
    done = subprocess.run(command, env=env)
    if done.returncode != 0:
        print(f"!! part {part} failed (exit {done.returncode}); the summary shows what the other parts measured.")
    return time.perf_counter() - started


def load(part: str) -> dict | None:
    path = HERE / "results" / f"{RESULTS[part]}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool) -> str:
    return "MET " if ok else "MISS"


def summary() -> None:
    """Every ratio and target, from the saved results."""
    print("\n================ SUMMARY (medians of interleaved repetitions) ================")
    costs = load("step-costs")
    if costs:
        m = costs["machine"]
        print(f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch thread(s), load "
              f"{m['load_average_1m']:.1f} at the end; torch {m['torch']}, transformers {m['transformers']}")
        for r in costs["rows"]:
            step, compute, limit = r["step_ratio"], r["compute_ratio"], r["flop_limit"]
            decoder = r["model"] in DECODERS
            print(f"{r['model']:>16} {r['batch']:>6}: prefix/full step {step:.3f} | fwd+bwd {compute:.3f} | "
                  f"FLOP limit {limit:.3f} | step vs limit {100 * r['step_vs_limit']:+.0f}% | "
                  f"fwd+bwd vs limit {100 * r['compute_vs_limit']:+.0f}%"
                  + (f"  [{verdict(abs(r['step_vs_limit']) <= 0.10)} step within 10%; "
                     f"{verdict(abs(r['compute_vs_limit']) <= 0.10)} fwd+bwd within 10%]" if decoder else ""))
            print(f"{'':>24}peak memory prefix/full {r['memory_ratio']:.2f} [{verdict(r['memory_ratio'] <= 0.75)} "
                  f"<= 0.75] | optimizer state {r['full']['optimizer_state_mb']:.0f} MB -> "
                  f"{r['prefix']['optimizer_state_mb']:.2f} MB | checkpoint {100 * r['checkpoint_ratio']:.3f}% "
                  f"[{verdict(r['checkpoint_ratio'] < 0.01)} < 1%] | inference with/without prefix "
                  f"{r['inference']['ratio']:.3f} (FLOPs {r['inference']['flop_ratio']:.3f})")
    peft = load("peft")
    if peft:
        print(f"tutorlib/PEFT prefix step {peft['step_ratio']:.3f} [{verdict(peft['step_ratio'] <= 1.05)} <= 1.05]; "
              f"forward-only {peft['inference_ratio']:.3f} ({peft['model']}, {peft['batch']})")
    curves = load("cost-curves")
    if curves:
        by_p = [r for r in curves["by_prefix_length"] if r.get("method") != "full"]
        full = next(r for r in curves["by_prefix_length"] if r.get("method") == "full")
        print("cost vs P: prefix step / full step " + ", ".join(
            f"P={r['prefix_length']} {r['step_s'] / full['step_s']:.2f}" for r in by_p)
              + "; vs T: " + ", ".join(f"T={r['seq_len']} {r['ratio']:.2f} (fwd+bwd {r['compute_ratio']:.2f}, limit "
                                        f"{r['flop_limit']:.2f})" for r in curves["by_seq_len"]))
    paper = load("paper")
    if paper:
        acc = lambda rows: ", ".join(f"{r['setting']} {r['accuracy']:.3f}" for r in rows)  # noqa: E731
        print(f"paper ({paper['paper_version']}, {paper['eval_items']} validation items, accuracy): length "
              f"{acc(paper['prefix_length'])}\n   embedding-only {acc(paper['embedding_only'])}\n   low data "
              f"{acc(paper['low_data'])} (prefix - FT mean {100 * paper['low_data_mean_gap']:+.1f} pts)\n   "
              f"MLP {acc(paper['mlp'])}")
    many = load("many-prefixes")
    if many:
        t = {r["way"]: r for r in many["rows"]}
        print(f"many prefixes: mixed batch == rows alone (max |diff| {many['max_abs_difference']:.1e}); time vs mixed: "
              + ", ".join(f"{k} {r['vs_mixed']:.2f}x" for k, r in t.items())
              + f"; weights in memory: mixed {t['mixed']['weights_mb']:.0f} MB, "
                f"resident {t['resident']['weights_mb']:.0f} MB")
    trainer = load("trainer")
    if trainer:
        for part in ("sentiment", "summarise"):
            if part in trainer:
                print(f"vs Trainer, {trainer[part]['model']} ({trainer[part]['steps']} steps): " + ", ".join(
                    f"{r['arm']} {r['seconds']:.1f} s ({r['vs_tutorlib']:.2f}x, padding {r['padding_share']:.0%}, "
                    f"quality {r['quality']:.4f})" for r in trainer[part]["rows"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="laptop budgets: all parts in under 15 min on 2 cores")
    parser.add_argument("--only", default="", help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier on a shared machine)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (for step-costs, peft, cost-curves)")
    parser.add_argument("--summary", action="store_true", help="print the summary of the saved results and stop")
    args = parser.parse_args()
    if not args.summary:
        parts = [p.strip() for p in args.only.split(",") if p.strip()] or list(PARTS)
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            parser.error(f"unknown part {unknown[0]!r}; parts: {', '.join(PARTS)}")
        started, times = time.perf_counter(), {}
        for part in parts:
            times[part] = run_part(part, args.quick, args.threads, args.device)
        print("\ntime per part: " + ", ".join(f"{p} {s:.0f} s" for p, s in times.items())
              + f"; total {time.perf_counter() - started:.0f} s ({'quick' if args.quick else 'full'} mode)")
    summary()


if __name__ == "__main__":
    main()
