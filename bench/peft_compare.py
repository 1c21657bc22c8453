"""tutorlib's prefix tuning vs PEFT's (the reference implementation), same GPT-2 config, same batch.

    .venv/bin/python bench/peft_compare.py --quick        # or: bench/run.py --only peft

Both train a direct prefix of P=10 virtual tokens on a frozen random GPT-2 of a real size. PEFT puts
the prefix into transformers' key/value cache (real tokens then sit at positions P..P+T-1); tutorlib
prepends it inside its own attention function. The target: tutorlib's step no slower than PEFT's
(time ratio <= 1.05). Also measured: forward-only time, and the step's peak memory increase.
"""

from __future__ import annotations

import warnings

import common
from common import say

from tutorlib.methods.prefix.model import attach_prefix

PREFIX_LENGTH = 10
QUICK = ("distilgpt2-size", 2, 128, 5)  # model, batch size, sequence length, repetitions
FULL = ("gpt2-small", 8, 128, 7)


def peft_prefix_model(name: str):
    """A PEFT PrefixTuningConfig model around a fresh copy of the same random GPT-2."""
    import peft

    config = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=PREFIX_LENGTH)
    return peft.get_peft_model(common.load(name), config)


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__)
    device = common.device_of(args.device)
    warnings.filterwarnings("ignore", category=FutureWarning)  # PEFT passes the deprecated past_key_values
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    name, batch_size, seq_len, repeats = QUICK if args.quick else FULL
    say(f"== tutorlib vs PEFT {__import__('peft').__version__} prefix tuning: {name} (random weights), "
        f"{batch_size}x{seq_len} tokens, P={PREFIX_LENGTH}, {repeats} interleaved repetitions, "
        f"{args.threads} thread(s)")

    ours = attach_prefix(common.load(name), PREFIX_LENGTH)
    theirs = peft_prefix_model(name)
    batch = common.batch_for(ours.model, batch_size, seq_len)
    trainable = {"tutorlib": sum(p.numel() for p in ours.parameters() if p.requires_grad),
                 "peft": sum(p.numel() for p in theirs.parameters() if p.requires_grad)}
    steps = {"tutorlib": common.TimedStep(ours, batch, device=device),
             "peft": common.TimedStep(theirs, batch, device=device)}
    timed = common.interleaved(steps, repeats=repeats, warmup=1)
    memory = {k: steps[k].memory_increase_mb() for k in steps}
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    forward = common.interleaved({"tutorlib": common.TimedForward(lambda: ours(**inputs), device),
                                  "peft": common.TimedForward(lambda: theirs(**inputs), device)}, repeats=repeats)

    rows = []
    for k in ("tutorlib", "peft"):
        rows.append({"implementation": k, "trainable": trainable[k], "step_s": timed[k]["step_s"],
                     "forward_s": timed[k]["forward_s"], "backward_s": timed[k]["backward_s"],
                     "inference_s": forward[k]["step_s"], "memory_increase_mb": memory[k],
                     "step_runs_s": [r["step_s"] for r in timed[k]["runs"]]})
    step_ratio = common.ratio(timed["tutorlib"]["step_s"], timed["peft"]["step_s"])
    inference_ratio = common.ratio(forward["tutorlib"]["step_s"], forward["peft"]["step_s"])
    say(common.table(rows, [("implementation", "implementation", "{}"), ("trainable", "trainable", "{:,}"),
                            ("step_s", "step s", "{:.3f}"), ("forward_s", "forward s", "{:.3f}"),
                            ("backward_s", "backward s", "{:.3f}"), ("inference_s", "no-grad fwd s", "{:.3f}"),
                            ("memory_increase_mb", "step memory +MB", "{:.0f}")]))
    say(f"  tutorlib / PEFT step time: {step_ratio:.3f} (target <= 1.05); forward-only: {inference_ratio:.3f}")
    result = {"model": name, "batch": f"{batch_size}x{seq_len}", "prefix_length": PREFIX_LENGTH, "rows": rows,
              "step_ratio": step_ratio, "inference_ratio": inference_ratio, "threads": args.threads,
              "mode": "quick" if args.quick else "full"}
    common.save("peft_compare", result)
    return result


if __name__ == "__main__":
    main()
