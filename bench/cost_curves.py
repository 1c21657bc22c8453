"""Cost curves: step time and memory vs prefix length (1..200) and vs sequence length; a plot.

    .venv/bin/python bench/cost_curves.py --quick        # or: bench/run.py --only cost-curves

One frozen model serves every prefix length: each length is its own trainable tensor passed as
``tuned(..., prefix=tensor)`` (the same frozen weights, so the lengths can be interleaved). The full
fine-tuning step is measured beside it on a second copy of the model. Written: bench/cost_curves.png.
"""

from __future__ import annotations

import common
import torch
from common import say
from torch import nn

from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.training.flops import prefix_full_limit

# batch_size and seq_len: the prefix-length sweep; seq_batch_size: the sequence-length sweep.
QUICK = dict(model="distilgpt2-size", batch_size=2, seq_len=128, lengths=[1, 10, 50, 200],
             seq_batch_size=1, seq_lens=[32, 128, 256], repeats=2)
FULL = dict(model="gpt2-small", batch_size=4, seq_len=256, lengths=[1, 5, 10, 20, 50, 100, 200],
            seq_batch_size=4, seq_lens=[32, 64, 128, 256, 512], repeats=5)


class OwnPrefix(nn.Module):
    """A prefix-tuned model trained through a prefix of its own length, passed at every call."""

    def __init__(self, tuned, prefix_length: int):
        super().__init__()
        self.tuned = tuned
        start = tuned.export_prefix()  # (layers, 2, kv_heads, P0, head_dim), a realistic scale
        repeats = -(-prefix_length // start.shape[3])
        self.prefix = nn.Parameter(start.repeat(1, 1, 1, repeats, 1)[:, :, :, :prefix_length].clone())

    def forward(self, **batch):
        return self.tuned(**batch, prefix=self.prefix)  # prefix: (layers, 2, kv_heads, P, head_dim)


def sweep_prefix_length(tuned, full, settings: dict, device) -> list[dict]:
    batch = common.batch_for(full.model, settings["batch_size"], settings["seq_len"])
    steps = {f"P={p}": common.TimedStep(OwnPrefix(tuned, p), batch, device=device) for p in settings["lengths"]}
    steps["full"] = common.TimedStep(full, batch, device=device)
    timed = common.interleaved(steps, repeats=settings["repeats"], warmup=1)
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    forwards = {f"P={p}": common.TimedForward(lambda s=steps[f"P={p}"]: s.model.eval()(**inputs), device)
                for p in settings["lengths"]}
    forwards["none"] = common.TimedForward(lambda: tuned.model(**inputs), device)
    inference = common.interleaved(forwards, repeats=settings["repeats"], warmup=1)
    config = full.model.config
    rows = []
    for p in settings["lengths"]:
        rows.append({"prefix_length": p, "step_s": timed[f"P={p}"]["step_s"],
                     "memory_increase_mb": steps[f"P={p}"].memory_increase_mb(),
                     "inference_s": inference[f"P={p}"]["step_s"],
                     "flop_limit": prefix_full_limit(config, settings["batch_size"], settings["seq_len"], p)})
    rows.append({"prefix_length": 0, "method": "full", "step_s": timed["full"]["step_s"],
                 "memory_increase_mb": steps["full"].memory_increase_mb(), "inference_s": inference["none"]["step_s"]})
    return rows


def sweep_seq_len(tuned, full, settings: dict, device) -> list[dict]:
    rows = []
    for seq_len in settings["seq_lens"]:
        batch = common.batch_for(full.model, settings["seq_batch_size"], seq_len)
        steps = {"full": common.TimedStep(full, batch, device=device),
                 "prefix": common.TimedStep(tuned, batch, device=device)}
        timed = common.interleaved(steps, repeats=settings["repeats"], warmup=1)
        row = {"seq_len": seq_len,
               "flop_limit": prefix_full_limit(full.model.config, settings["seq_batch_size"], seq_len, 10)}
        for method in ("full", "prefix"):
            row[f"{method}_s"] = timed[method]["step_s"]
            row[f"{method}_compute_s"] = timed[method]["forward_s"] + timed[method]["backward_s"]
            row[f"{method}_memory_increase_mb"] = steps[method].memory_increase_mb()
        row["ratio"] = common.ratio(row["prefix_s"], row["full_s"])
        row["compute_ratio"] = common.ratio(row["prefix_compute_s"], row["full_compute_s"])
        rows.append(row)
        say(f"  T={seq_len}: full {row['full_s']:.3f} s, prefix {row['prefix_s']:.3f} s, ratio {row['ratio']:.3f} "
            f"(fwd+bwd {row['compute_ratio']:.3f}; FLOP limit {row['flop_limit']:.3f})")
    return rows


def plot(by_length: list[dict], by_seq: list[dict], settings: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix_rows = [r for r in by_length if r.get("method") != "full"]
    full_row = next(r for r in by_length if r.get("method") == "full")
    lengths = [r["prefix_length"] for r in prefix_rows]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), dpi=80)
    ax = axes[0, 0]
    ax.plot(lengths, [r["step_s"] for r in prefix_rows], "o-", label="prefix tuning step")
    ax.axhline(full_row["step_s"], color="C3", ls="--", label="full fine-tuning step")
    ax.plot(lengths, [r["inference_s"] for r in prefix_rows], "s:", color="C2", label="forward only, with prefix")
    ax.axhline(full_row["inference_s"], color="C2", ls="--", lw=0.8, label="forward only, no prefix")
    ax.set(xlabel="prefix length P", ylabel="seconds", title=f"time vs P (T={settings['seq_len']})")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.plot(lengths, [r["memory_increase_mb"] for r in prefix_rows], "o-", label="prefix step")
    ax.axhline(full_row["memory_increase_mb"], color="C3", ls="--", label="full step (+ optimizer state, not shown)")
    ax.set(xlabel="prefix length P", ylabel="step's peak memory increase (MB)", title="memory vs P")
    ax.legend(fontsize=7)
    seq = [r["seq_len"] for r in by_seq]
    ax = axes[1, 0]
    ax.plot(seq, [r["full_s"] for r in by_seq], "o--", color="C3", label="full fine-tuning")
    ax.plot(seq, [r["prefix_s"] for r in by_seq], "o-", color="C0", label="prefix tuning (P=10)")
    ax.set(xlabel="sequence length T", ylabel="seconds per step",
           title=f"time vs T (batch {settings['seq_batch_size']})")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(seq, [r["ratio"] for r in by_seq], "o-", label="measured, whole step")
    ax.plot(seq, [r["compute_ratio"] for r in by_seq], "s--", label="measured, forward + backward")
    ax.plot(seq, [r["flop_limit"] for r in by_seq], "k:", label="FLOP limit")
    ax.set(xlabel="sequence length T", ylabel="step time ratio", title="ratio vs T", ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.suptitle(f"{settings['model']} (random weights), CPU; top: batch {settings['batch_size']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__)
    device = common.device_of(args.device)
    settings = QUICK if args.quick else FULL
    say(f"== Cost curves: {settings['model']} (random weights), batch {settings['batch_size']}, "
        f"{settings['repeats']} interleaved repetitions, {args.threads} thread(s)")
    tuned = attach_prefix(common.load(settings["model"]), 10)
    tuned.prefix_encoder.requires_grad_(False)  # each OwnPrefix trains its own tensor
    full = prepare_full_finetuning(common.load(settings["model"]))
    by_length = sweep_prefix_length(tuned, full, settings, device)
    say(common.table(by_length, [("prefix_length", "P (0 = full FT)", "{}"), ("step_s", "step s", "{:.3f}"),
                                 ("memory_increase_mb", "step memory +MB", "{:.0f}"),
                                 ("inference_s", "forward-only s", "{:.3f}"), ("flop_limit", "FLOP limit", "{:.3f}")]))
    tuned.prefix_encoder.requires_grad_(True)
    by_seq = sweep_seq_len(tuned, full, settings, device)
    path = common.ROOT / "bench" / "cost_curves.png"
    plot(by_length, by_seq, settings, path)
    say(f"  plot: {path.relative_to(common.ROOT)}")
    result = {"settings": settings, "by_prefix_length": by_length, "by_seq_len": by_seq, "threads": args.threads,
              "mode": "quick" if args.quick else "full"}
    common.save("cost_curves", result)
    return result


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
