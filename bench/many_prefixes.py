"""Many prefixes on one frozen model vs one fine-tuned model per task: a mixed batch, four ways.

    .venv/bin/python bench/many_prefixes.py --quick        # or: bench/run.py --only many-prefixes

K tasks (customers) send rows; a batch holds B rows from all of them, in arrival order. Served:
  mixed      one forward pass of the frozen model, each row with its own prefix
             (tutorlib.methods.prefix.serving.PrefixBank)
  grouped    the same prefixes, one pass per task (what you would do without per-row prefixes)
  resident   K fine-tuned models, all kept in memory, one pass per task
  swapped    one model in memory; each task's fine-tuned weights loaded from disk before its rows
Forward passes only (scoring / the prompt part of generation), no gradients. First, the proof: the mixed
pass equals each row run alone with its own prefix (max |difference| of the logits is printed).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import common
import safetensors.torch
import torch
from common import say

from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.methods.prefix.serving import PrefixBank
from tutorlib.training.measure import parameter_bytes
from tutorlib.units import MIB, format_size

QUICK = dict(model="distilgpt2-size", tasks=4, rows=8, seq_len=64, prefix_length=10, repeats=3)
FULL = dict(model="gpt2-small", tasks=8, rows=32, seq_len=128, prefix_length=10, repeats=7)


def build(settings: dict, folder: Path):
    """The frozen model + a bank of K prefixes, and K 'fine-tuned' models (the base, slightly changed:
    speed and memory depend on the shapes, not on the values), each also saved to disk."""
    base = common.load(settings["model"])
    tuned = attach_prefix(copy.deepcopy(base), settings["prefix_length"]).eval()
    bank = PrefixBank(tuned)
    g = torch.Generator().manual_seed(0)
    finetuned, files = [], []
    for k in range(settings["tasks"]):
        bank.add(f"task{k}", tuned.export_prefix() * (1 + torch.rand(1, generator=g)))  # a different prefix each
        model = copy.deepcopy(base)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3 * torch.randn(p.shape, generator=g))
        files.append(folder / f"task{k}.safetensors")
        safetensors.torch.save_model(model, str(files[-1]))
        finetuned.append(model)
    return base, tuned, bank, finetuned, files


def proof(bank: PrefixBank, tuned, names, batch) -> float:
    """Max |logit difference| between the mixed pass and each row alone with its own prefix."""
    with torch.no_grad():
        together = bank(names, **batch).logits
        worst = 0.0
        for i, name in enumerate(names):
            alone = tuned(input_ids=batch["input_ids"][i:i + 1], prefix=bank.prefixes[name]).logits[0]
            worst = max(worst, (together[i] - alone).abs().max().item())
    return worst


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__, device=False)
    s = QUICK if args.quick else FULL
    say(f"== Many prefixes, one model: {s['model']} (random weights), {s['tasks']} tasks, batches of {s['rows']} "
        f"rows x {s['seq_len']} tokens, {s['repeats']} interleaved repetitions, {args.threads} thread(s)")
    with tempfile.TemporaryDirectory() as folder:
        base, tuned, bank, finetuned, files = build(s, Path(folder))
        arrival = torch.randperm(s["rows"], generator=torch.Generator().manual_seed(1)).tolist()
        names = [f"task{i % s['tasks']}" for i in arrival]
        batch = common.lm_batch(base.config.vocab_size, s["rows"], s["seq_len"])
        batch.pop("labels")
        worst = proof(bank, tuned, names, batch)
        say(f"  proof: mixed batch vs each row alone with its own prefix, max |logit difference| = {worst:.2e}")
        groups = {name: [i for i, n in enumerate(names) if n == name] for name in bank.names}
        swap_model = copy.deepcopy(base)

        def mixed():
            bank(names, **batch)

        def grouped():
            for name, rows in groups.items():
                tuned(input_ids=batch["input_ids"][rows], prefix=bank.prefixes[name])

        def resident():
            for k, rows in enumerate(groups.values()):
                finetuned[k](input_ids=batch["input_ids"][rows])

        def swapped():
            for k, rows in enumerate(groups.values()):
                safetensors.torch.load_model(swap_model, str(files[k]))  # this task's weights, from disk
                swap_model(input_ids=batch["input_ids"][rows])

        ways = {"mixed": mixed, "grouped": grouped, "resident": resident, "swapped": swapped}
        timed = common.interleaved({k: common.TimedForward(f) for k, f in ways.items()}, repeats=s["repeats"])
    weights_mb = parameter_bytes(base) / MIB
    memory = {"mixed": weights_mb + bank.stored_bytes() / MIB, "grouped": weights_mb + bank.stored_bytes() / MIB,
              "resident": s["tasks"] * weights_mb, "swapped": weights_mb}
    rows = [{"way": k, "seconds": timed[k]["step_s"], "rows_per_s": s["rows"] / timed[k]["step_s"],
             "weights_mb": memory[k], "vs_mixed": timed[k]["step_s"] / timed["mixed"]["step_s"]} for k in ways]
    say(common.table(rows, [("way", "way", "{}"), ("seconds", "s per batch", "{:.3f}"),
                            ("rows_per_s", "rows/s", "{:.1f}"), ("vs_mixed", "time / mixed", "{:.2f}"),
                            ("weights_mb", "weights in memory MiB", "{:.0f}")]))
    say(f"  one prefix: {format_size(bank.stored_bytes() / len(bank))}; one fine-tuned copy: {weights_mb:.0f} MiB")
    result = {"settings": s, "max_abs_difference": worst, "rows": rows, "threads": args.threads,
              "mode": "quick" if args.quick else "full"}
    common.save("many_prefixes", result)
    return result


if __name__ == "__main__":
    main()
