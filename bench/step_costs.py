"""Prefix tuning vs full fine-tuning, one training step each, on the same model and batch.

    .venv/bin/python bench/step_costs.py --quick        # or: bench/run.py --only step-costs

For each model: step time by phase (forward, backward, optimizer), the step's peak memory increase,
optimizer-state bytes and checkpoint bytes, for both methods, interleaved (full, prefix, prefix, full,
...), medians of several repetitions. Beside the measured time ratio prefix/full stands the FLOP-count
limit (tutorlib.training.flops.prefix_full_limit): about 2/3, because prefix tuning skips the weight gradients
but not the backward pass through every layer.
"""

from __future__ import annotations

import tempfile

import common
from common import say

from tutorlib.loading.models import head_of, pretrained_part
from tutorlib.methods.checkpoints import checkpoint_bytes
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.training.flops import explain_limit, inference_overhead, prefix_full_limit
from tutorlib.training.measure import parameter_bytes
from tutorlib.units import MIB

# (model, batch size, sequence length): quick fits a shared 2-core CPU; full is the fairer picture.
QUICK = [("minilm-l6", 16, 64), ("smollm2-135m", 2, 128), ("gpt2-small", 2, 128), ("distilgpt2-size", 2, 128)]
FULL = [("minilm-l6", 32, 64), ("smollm2-135m", 4, 256), ("gpt2-small", 8, 128), ("distilgpt2-size", 8, 128)]
PREFIX_LENGTH = 10


def compare_methods(name: str, batch_size: int, seq_len: int, repeats: int, device) -> dict:
    """Both methods on one model: medians, ratios, the FLOP limit, memory, optimizer and checkpoint bytes."""
    full = prepare_full_finetuning(common.load(name))
    prefix = attach_prefix(common.load(name), PREFIX_LENGTH)
    batch = common.batch_for(full.model, batch_size, seq_len)
    steps = {"full": common.TimedStep(full, batch, device=device),
             "prefix": common.TimedStep(prefix, batch, device=device)}
    timed = common.interleaved(steps, repeats=repeats, warmup=1)
    memory = {method: steps[method].memory_increase_mb() for method in ("full", "prefix")}
    inference = inference_with_and_without(prefix, batch, repeats, device)

    config = pretrained_part(full.model).config
    lm_head = head_of(full.model) == "causal-lm"
    limit = prefix_full_limit(config, batch_size, seq_len, PREFIX_LENGTH, lm_head=lm_head)
    row = {"model": name, "batch": f"{batch_size}x{seq_len}", "prefix_length": PREFIX_LENGTH, "flop_limit": limit,
           "limit_explained": explain_limit(config, batch_size, seq_len, PREFIX_LENGTH, lm_head=lm_head)}
    weights_mb = parameter_bytes(full) / MIB
    for method, tuned in (("full", full), ("prefix", prefix)):
        t = timed[method]
        optimizer_mb = steps[method].optimizer_state_bytes / MIB
        with tempfile.TemporaryDirectory() as folder:
            stored = checkpoint_bytes(tuned.save_checkpoint(folder))
        row[method] = {**{k: v for k, v in t.items() if k != "runs"}, "step_runs_s": [r["step_s"] for r in t["runs"]],
                       "memory_increase_mb": memory[method], "optimizer_state_mb": optimizer_mb,
                       # weights + optimizer state + the step's own peak (gradients, activations)
                       "training_peak_mb": weights_mb + optimizer_mb + memory[method],
                       "checkpoint_bytes": stored}
    f, p = row["full"], row["prefix"]
    row["step_ratio"] = common.ratio(p["step_s"], f["step_s"])
    row["compute_ratio"] = common.ratio(p["forward_s"] + p["backward_s"], f["forward_s"] + f["backward_s"])
    row["step_vs_limit"] = row["step_ratio"] / limit - 1  # -0.05 = 5% below (better than) the limit
    row["compute_vs_limit"] = row["compute_ratio"] / limit - 1
    row["memory_ratio"] = common.ratio(p["training_peak_mb"], f["training_peak_mb"])
    row["checkpoint_ratio"] = common.ratio(p["checkpoint_bytes"], f["checkpoint_bytes"])
    row["weights_mb"] = weights_mb
    row["inference"] = {**inference, "flop_ratio": inference_overhead(config, batch_size, seq_len, PREFIX_LENGTH,
                                                                      lm_head=lm_head)}
    return row


def inference_with_and_without(tuned, batch: dict, repeats: int, device) -> dict:
    """Forward passes without gradients: the frozen model alone (``tuned.model``) vs with its prefix."""
    tuned.eval()
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    timed = common.interleaved({"without": common.TimedForward(lambda: tuned.model(**inputs), device),
                                "with": common.TimedForward(lambda: tuned(**inputs), device)}, repeats=repeats)
    return {"without_prefix_s": timed["without"]["step_s"], "with_prefix_s": timed["with"]["step_s"],
            "ratio": common.ratio(timed["with"]["step_s"], timed["without"]["step_s"])}


def report(rows: list[dict]) -> None:
    flat = [{"model": r["model"], "batch": r["batch"], "full_s": r["full"]["step_s"], "prefix_s": r["prefix"]["step_s"],
             "ratio": r["step_ratio"], "compute": r["compute_ratio"], "limit": r["flop_limit"],
             "opt_s": r["full"]["optimizer_s"], "mem_full": r["full"]["training_peak_mb"],
             "mem_prefix": r["prefix"]["training_peak_mb"], "ckpt": 100 * r["checkpoint_ratio"],
             "infer": r["inference"]["ratio"], "infer_flops": r["inference"]["flop_ratio"]} for r in rows]
    say(common.table(flat, [("model", "model", "{}"), ("batch", "BxT", "{}"), ("full_s", "full s", "{:.3f}"),
                            ("prefix_s", "prefix s", "{:.3f}"), ("ratio", "step ratio", "{:.3f}"),
                            ("compute", "fwd+bwd ratio", "{:.3f}"), ("limit", "FLOP limit", "{:.3f}"),
                            ("opt_s", "full optim s", "{:.3f}"), ("mem_full", "full peak MiB", "{:.0f}"),
                            ("mem_prefix", "prefix peak MiB", "{:.0f}"), ("ckpt", "ckpt %", "{:.4f}"),
                            ("infer", "inference w/ prefix", "{:.3f}"), ("infer_flops", "its FLOP ratio", "{:.3f}")]))
    say("  step ratio = prefix step / full step (whole step); fwd+bwd ratio = the same without the optimizer "
        "update;\n  FLOP limit = tutorlib.training.flops.prefix_full_limit; peak MiB = weights + optimizer state + the "
        "step's own peak; ckpt % = prefix checkpoint / full checkpoint;\n  inference w/ prefix = "
        "forward time (no gradients) with the P=10 prefix / without it (the frozen model alone).")


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__, extra=lambda parser: parser.add_argument(
        "--models", default="", help="comma-separated subset of the model names"))
    device = common.device_of(args.device)
    plan = QUICK if args.quick else FULL
    if args.models:
        plan = [p for p in plan if p[0] in args.models.split(",")]
    repeats = 3 if args.quick else 7
    say(f"== Step costs: full fine-tuning vs prefix tuning (P={PREFIX_LENGTH}), {repeats} interleaved "
        f"repetitions, medians, {args.threads} thread(s), {device}")
    rows = []
    for name, batch_size, seq_len in plan:
        rows.append(compare_methods(name, batch_size, seq_len, repeats, device))
        r = rows[-1]
        say(f"  {name} {r['batch']}: full {r['full']['step_s']:.3f} s, prefix {r['prefix']['step_s']:.3f} s, "
            f"ratio {r['step_ratio']:.3f} (fwd+bwd {r['compute_ratio']:.3f}), FLOP limit {r['flop_limit']:.3f}")
    report(rows)
    common.save("step_costs", {"mode": "quick" if args.quick else "full", "threads": args.threads, "rows": rows})
    return {"rows": rows}


if __name__ == "__main__":
    main()
