"""Learners sharing one machine: 1, 2 and 4 lesson-3 training runs at once, with torch's threads and the kit's.

    .venv/bin/python bench/concurrency.py                 # writes bench/results/concurrency.json
    .venv/bin/python bench/concurrency.py --steps 20 --repeats 2

Each "learner" is a fresh Python process, as a JupyterLab kernel is: it loads MiniLM-L6 with the kit
(``load_model``) and times ``--steps`` full fine-tuning steps of lesson 3's shape (batch 16 x 64 tokens,
AdamW; one untimed warm-up step first) under each of three thread settings in turn, all learners of a
round starting each setting together:

* ``torch``: torch's own choice (what ``torch.get_num_threads()`` says before the kit sets anything): one
  thread per core of the machine;
* ``kit``: the kit's default (``TUTORLIB_THREADS`` unset): the CPUs this process may use (affinity and
  cgroup quota, see ``tutorlib.loading.threads``). With no quota set, that is every core too;
* ``share``: cores / learners (at least 1): what the kit chooses when each learner has a cgroup CPU quota
  of that share (JupyterHub's ``cpu_limit``), or when a teacher sets ``TUTORLIB_THREADS``.

The three settings run inside the same processes, one after the other (the order alternates between
repeats), so a shared machine's slow moments hit them alike. For each setting and number of learners: the
median step time of a learner (median over learners of their medians), its ratio to one learner alone
with torch's threads, and the machine's throughput (steps per second, all learners together). The load
average around each block is stored too: compare settings within one run, never across runs.
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

LEARNERS = (1, 4, 2)  # 4 before 2: on a busy machine the contrast that matters most is stored first
SETTINGS = ("torch", "kit", "share")
BATCH, TOKENS = 16, 64  # lesson 3's training batch in fast mode, its max_length


def learner(folder: Path, index: int, learners: int, steps: int, order: list[str]) -> list[dict]:
    """One learner's process: load MiniLM with the kit, then per setting: wait for the others, time ``steps``."""
    import torch

    torch_default = torch.get_num_threads()  # before the kit's first load_model sets anything
    import common

    from tutorlib.loading.models import load_model
    from tutorlib.loading.threads import choose_threads
    from tutorlib.methods.full import prepare_full_finetuning

    model, _ = load_model("minilm-l6", num_labels=2)
    step = common.TimedStep(prepare_full_finetuning(model), common.batch_for(model, BATCH, TOKENS))
    threads = {"torch": torch_default, "kit": choose_threads().threads or torch_default,
               "share": max(1, usable_cores() // learners)}
    runs = []
    for setting in order:
        torch.set_num_threads(threads[setting])
        step()  # warm-up (the first one also makes AdamW's state)
        (folder / f"ready-{setting}-{index}").write_text("")
        while not (folder / f"go-{setting}").exists():  # every learner starts the setting at the same moment
            time.sleep(0.05)
        start = time.perf_counter()
        times = [step()["step_s"] for _ in range(steps)]
        runs.append({"setting": setting, "threads": threads[setting], "step_s": times,
                     "wall_s": time.perf_counter() - start})
    return runs


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def one_round(learners: int, steps: int, order: list[str]) -> list[dict]:
    """``learners`` processes at once, each setting in ``order``; per setting: step times and throughput."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TUTORLIB_THREADS")}
    env.update(TUTORLIB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        children = [subprocess.Popen([sys.executable, __file__, "--learner", str(folder), str(i), str(learners),
                                      str(steps), ",".join(order)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for i in range(learners)]
        for setting in order:
            while not all((folder / f"ready-{setting}-{i}").exists() for i in range(learners)):
                if any(c.poll() not in (None, 0) for c in children):
                    raise RuntimeError(f"a learner failed: {[c.communicate()[1][-2000:] for c in children]}")
                time.sleep(0.1)
            results.append({"setting": setting, "load_before": os.getloadavg()[0], "started": time.perf_counter()})
            (folder / f"go-{setting}").write_text("")
        outputs = [c.communicate() for c in children]
    if any(c.returncode != 0 for c in children):
        raise RuntimeError(f"a learner failed: {[err[-2000:] for _, err in outputs]}")
    runs = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]  # per learner: one run per setting
    rounds = []
    for k, block in enumerate(results):
        mine = [r[k] for r in runs]
        wall = max(r["wall_s"] for r in mine)  # they started together; the slowest ends the block
        rounds.append({"setting": block["setting"], "learners": learners, "threads": mine[0]["threads"],
                       "median_step_s": statistics.median(statistics.median(r["step_s"]) for r in mine),
                       "steps_per_s_all_learners": learners * steps / wall, "wall_s": wall,
                       "load_average_1m_before": round(block["load_before"], 2),
                       "per_learner_step_s": [r["step_s"] for r in mine]})
    return rounds


def summarise(rounds: list[dict]) -> list[dict]:
    """Medians over repeats per (setting, learners); slowdown against one learner with torch's threads."""
    rows = []
    for learners in sorted(LEARNERS):
        for setting in SETTINGS:
            mine = [r for r in rounds if r["setting"] == setting and r["learners"] == learners]
            if mine:
                rows.append({"learners": learners, "setting": setting, "threads": mine[0]["threads"],
                             "median_step_s": statistics.median(r["median_step_s"] for r in mine),
                             "steps_per_s_all_learners":
                                 statistics.median(r["steps_per_s_all_learners"] for r in mine)})
    alone = next(r["median_step_s"] for r in rows if r["learners"] == 1 and r["setting"] == "torch")
    for r in rows:
        r["slowdown_vs_one_learner"] = r["median_step_s"] / alone
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per learner (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per setting and learner count, interleaved")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "concurrency.json")
    parser.add_argument("--learner", nargs=5, help=argparse.SUPPRESS)  # internal: FOLDER INDEX LEARNERS STEPS ORDER
    args = parser.parse_args(argv)
    if args.learner:
        folder, index, learners, steps, order = args.learner
        print(json.dumps(learner(Path(folder), int(index), int(learners), int(steps), order.split(","))))
        return 0
    cores = usable_cores()
    rounds = []
    for repeat in range(args.repeats):
        for learners in LEARNERS:
            order = list(SETTINGS if repeat % 2 == 0 else SETTINGS[::-1])  # A B C, then C B A
            for r in one_round(learners, args.steps, order):
                rounds.append(r)
                print(f"{learners} learner(s), {r['setting']:<5} ({r['threads']} threads): median step "
                      f"{r['median_step_s']:.3f} s, {r['steps_per_s_all_learners']:.2f} steps/s in all "
                      f"(load average {r['load_average_1m_before']})", flush=True)
            save(args, argv, cores, rounds)  # after every round: a long run interrupted keeps what it measured
    rows = summarise(rounds)
    print(f"\n{'learners':>8} {'setting':<6} {'threads':>7} {'step s':>7} {'x alone':>7} {'steps/s, all':>12}")
    for r in rows:
        print(f"{r['learners']:>8} {r['setting']:<6} {r['threads']:>7} {r['median_step_s']:>7.3f} "
              f"{r['slowdown_vs_one_learner']:>7.2f} {r['steps_per_s_all_learners']:>12.2f}")
    print(f"wrote {args.out}")
    return 0


def save(args, argv, cores: int, rounds: list[dict]) -> None:
    """The record so far: command, machine, settings, the summary by learners and setting, every round."""
    import common

    record = {"command": "python bench/concurrency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": common.machine(), "cores_usable": cores, "steps": args.steps, "repeats": args.repeats,
              "batch": BATCH, "tokens": TOKENS, "model": "minilm-l6 (full fine-tuning)",
              "summary": summarise(rounds), "rounds": rounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
