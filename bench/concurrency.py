"""Learners sharing one machine: 1, 2 and 4 lesson-3 training runs at once, with torch's threads and the kit's.

    .venv/bin/python bench/concurrency.py                 # writes bench/results/concurrency.json
    .venv/bin/python bench/concurrency.py --steps 20 --repeats 2

Each "learner" is a fresh Python process, as a JupyterLab kernel is: it loads MiniLM-L6 with the kit
(``load_model``, which sets torch's threads), then, once every learner of the round is ready, times
``--steps`` full fine-tuning steps of lesson 3's shape (batch 16 x 64 tokens, AdamW; the first step is a
warm-up and not counted). Three thread settings run side by side, interleaved round by round:

* ``torch``: torch's own choice (``TUTORLIB_THREADS=torch``): one thread per core of the machine;
* ``kit``: the kit's default (``TUTORLIB_THREADS`` unset): the CPUs this process may use (affinity and
  cgroup quota, see ``tutorlib.loading.threads``). With no quota set, that is every core too;
* ``share``: ``TUTORLIB_THREADS`` = cores / learners (at least 1): what the kit chooses when each learner
  has a cgroup CPU quota of that share (JupyterHub's ``cpu_limit``), or a teacher sets it.

For each setting and number of learners: the median step time of a learner (median over learners of
their medians), its ratio to one learner alone with torch's threads, and the machine's throughput
(steps per second, all learners together). The load average before and after each round is stored too:
on a machine shared with other jobs, compare settings within one run, never across runs.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LEARNERS = (1, 2, 4)
SETTINGS = ("torch", "kit", "share")
BATCH, TOKENS = 16, 64  # lesson 3's training batch in fast mode, its max_length


def learner(ready: Path, go: Path, steps: int) -> dict:
    """One learner's process: load MiniLM with the kit, wait for the others, time ``steps`` steps."""
    import torch

    import common
    from tutorlib.loading.models import load_model
    from tutorlib.methods.full import prepare_full_finetuning

    model, _ = load_model("minilm-l6", num_labels=2)  # sets torch's threads (TUTORLIB_THREADS decides how)
    step = common.TimedStep(prepare_full_finetuning(model), common.batch_for(model, BATCH, TOKENS))
    step()  # warm-up: allocations, AdamW state
    ready.write_text("")
    while not go.exists():  # every learner starts timing at the same moment
        time.sleep(0.05)
    start = time.perf_counter()
    times = [step()["step_s"] for _ in range(steps)]
    return {"threads": torch.get_num_threads(), "step_s": times, "wall_s": time.perf_counter() - start}


def one_round(setting: str, learners: int, steps: int, cores: int) -> dict:
    """``learners`` processes at once with one thread setting; their step times and the round's throughput."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(TUTORLIB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if setting == "torch":
        env["TUTORLIB_THREADS"] = "torch"
    elif setting == "kit":
        env.pop("TUTORLIB_THREADS", None)
    else:
        env["TUTORLIB_THREADS"] = str(max(1, cores // learners))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        go = tmp / "go"
        children = [subprocess.Popen([sys.executable, __file__, "--learner", str(tmp / f"ready{i}"), str(go),
                                      str(steps)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for i in range(learners)]
        while not all((tmp / f"ready{i}").exists() for i in range(learners)):
            failed = [c for c in children if c.poll() not in (None, 0)]
            if failed:
                raise RuntimeError(f"a learner failed: {failed[0].communicate()[1][-2000:]}")
            time.sleep(0.1)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        go.write_text("")
        outputs = [c.communicate() for c in children]
        wall = time.perf_counter() - started
    if any(c.returncode != 0 for c in children):
        raise RuntimeError(f"a learner failed: {[err[-2000:] for _, err in outputs]}")
    runs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    return {"setting": setting, "learners": learners, "threads": runs[0]["threads"],
            "median_step_s": statistics.median(statistics.median(r["step_s"]) for r in runs),
            "steps_per_s_all_learners": learners * steps / wall, "wall_s": wall,
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "per_learner_step_s": [r["step_s"] for r in runs]}


def summarise(rounds: list[dict]) -> list[dict]:
    """Medians over repeats per (setting, learners); slowdown against one learner with torch's threads."""
    rows = []
    for learners in LEARNERS:
        for setting in SETTINGS:
            mine = [r for r in rounds if r["setting"] == setting and r["learners"] == learners]
            if mine:
                rows.append({"learners": learners, "setting": setting, "threads": mine[0]["threads"],
                             "median_step_s": statistics.median(r["median_step_s"] for r in mine),
                             "steps_per_s_all_learners": statistics.median(r["steps_per_s_all_learners"] for r in mine)})
    alone = next(r["median_step_s"] for r in rows if r["learners"] == 1 and r["setting"] == "torch")
    for r in rows:
        r["slowdown_vs_one_learner"] = r["median_step_s"] / alone
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per learner (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per setting and learner count, interleaved")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "concurrency.json")
    parser.add_argument("--learner", nargs=3, help=argparse.SUPPRESS)  # internal: READY GO STEPS
    args = parser.parse_args(argv)
    if args.learner:
        ready, go, steps = args.learner
        print(json.dumps(learner(Path(ready), Path(go), int(steps))))
        return 0
    import common

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rounds = []
    for repeat in range(args.repeats):
        for learners in LEARNERS:
            order = SETTINGS if repeat % 2 == 0 else SETTINGS[::-1]  # A B C, then C B A: drift hits all alike
            for setting in order:
                r = one_round(setting, learners, args.steps, cores)
                rounds.append(r)
                print(f"{learners} learner(s), {setting:<5} ({r['threads']} threads): median step "
                      f"{r['median_step_s']:.3f} s, {r['steps_per_s_all_learners']:.2f} steps/s in all "
                      f"(load {r['load_average_1m'][0]} -> {r['load_average_1m'][1]})", flush=True)
    rows = summarise(rounds)
    print(f"\n{'learners':>8} {'setting':<6} {'threads':>7} {'step s':>7} {'x alone':>7} {'steps/s, all':>12}")
    for r in rows:
        print(f"{r['learners']:>8} {r['setting']:<6} {r['threads']:>7} {r['median_step_s']:>7.3f} "
              f"{r['slowdown_vs_one_learner']:>7.2f} {r['steps_per_s_all_learners']:>12.2f}")
    record = {"command": "python bench/concurrency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": common.machine(), "cores_usable": cores, "steps": args.steps, "repeats": args.repeats,
              "batch": BATCH, "tokens": TOKENS, "model": "minilm-l6 (full fine-tuning)",
              "summary": rows, "rounds": rounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
