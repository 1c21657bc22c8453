"""The kit's training loop against the tool a user would pick instead: Hugging Face ``Trainer`` (and PEFT).

    .venv/bin/python bench/trainer_compare.py --threads 2 --quick    # or: bench/run.py --only trainer --threads 2

Same model, same training examples, same number of steps, same optimizer settings (AdamW, peak lr, 10%
warm-up then linear decay, gradient norm clipped to 1, no weight decay, seed 0), on the CPU:

* **MiniLM-L6, full fine-tuning, sentiment** (movie snippets, max 64 tokens, batches of 32): tutorlib's
  ``train`` on the kit's length-grouped batches vs ``Trainer`` with its defaults (random batches padded to
  their longest row) vs ``Trainer(train_sampling_strategy="group_by_length")``. Quality: test accuracy.
* **SmolLM2-135M, prefix tuning (P=10), summarisation** (nyt-leads, max 256 tokens, batches of 4): tutorlib's
  ``attach_prefix`` + ``train`` vs ``Trainer`` + PEFT ``PrefixTuningConfig``; each tool's own prefix start
  (tutorlib: the model's own keys/values of ``PREFIX_INIT_TEXT["summarise"]``, as ``tutorlib compare`` does;
  PEFT: its embedding's default initialisation).
  Quality: the loss on the test articles' summary tokens (teacher-forced), the same batches for both.

The training examples are the ones the kit's batches hold (tokenized once), so every arm reads the same
token ids; the arms differ in how the examples are grouped into batches and padded, and in the loop around
the model. Per arm: wall time of the training call (one pass over the examples = one epoch), tokens
processed (padding counted) and real tokens, peak memory increase (process RSS), quality. Repetitions are
interleaved (A B C, C B A, ...); times are medians, ratios are ratios of medians. CPU-seconds (this
process's CPU time, all threads) are given beside wall time: on a machine shared with other work they
move far less than wall time does.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings

import common
import torch
from common import say

from tutorlib.experiments.compare import PREFIX_INIT_TEXT
from tutorlib.loading.data import load_dataset
from tutorlib.loading.models import load_model
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.tasks import batching, sentiment, summarise
from tutorlib.training.loop import TrainConfig, train
from tutorlib.training.measure import PeakMemory

# (model, dataset, steps, batch size, max tokens, lr, repetitions); quick and full differ in steps/repetitions
SENTIMENT = {"quick": ("minilm-l6", "movie-snippets", 60, 32, 64, 5e-5, 2),
             "full": ("minilm-l6", "movie-snippets", 265, 32, 64, 5e-5, 3)}
SUMMARISE = {"quick": ("smollm2-135m", "nyt-leads", 12, 4, 256, 1e-2, 2),
             "full": ("smollm2-135m", "nyt-leads", 75, 4, 256, 1e-2, 3)}
PREFIX_LENGTH = 10
TEST_ITEMS = {"sentiment": None, "summarise": 50}  # all 1,061 snippets; the 50 test articles


# ----------------------------------------------------------------------------- the same examples for every arm


def examples_of(batches: list[dict]) -> list[dict]:
    """Unpad the kit's batches back into examples: one dict of 1-D tensors per row (its real tokens only)."""
    rows = []
    for batch in batches:
        for i in range(batch["input_ids"].shape[0]):
            n = int(batch["attention_mask"][i].sum())
            labels = batch["labels"][i]
            rows.append({"input_ids": batch["input_ids"][i, :n], "attention_mask": batch["attention_mask"][i, :n],
                         "labels": labels if labels.ndim == 0 else labels[:n]})
    return rows


class CountingCollator:
    """Trainer's collation: pad each batch's rows on the right to its longest (ids with ``pad_id``, mask 0,
    token labels -100), as ``DataCollatorWithPadding`` does; counts processed (padded) and real tokens."""

    def __init__(self, pad_id: int):
        self.pad_id, self.padded, self.real = pad_id, 0, 0

    def __call__(self, rows: list[dict]) -> dict:
        ids, mask = batching.pad_right([r["input_ids"].tolist() for r in rows], self.pad_id)  # (B, T) each
        if rows[0]["labels"].ndim == 0:
            labels = torch.stack([r["labels"] for r in rows])  # (B,)
        else:
            labels, _ = batching.pad_right([r["labels"].tolist() for r in rows], -100)  # (B, T)
        self.padded += ids.numel()
        self.real += int(mask.sum())
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ----------------------------------------------------------------------------- the arms


def run_tutorlib(method, batches: list[dict], steps: int, lr: float) -> dict:
    """tutorlib's ``train`` on the kit's batches: wall time, tokens, peak memory increase."""
    config = TrainConfig(steps=steps, lr=lr, warmup=0.1, schedule="linear", max_grad_norm=1.0, seed=0, device="cpu")
    with PeakMemory(torch.device("cpu")) as memory:
        started, cpu = time.perf_counter(), time.process_time()
        history = train(method, batches, config, progress=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    used = [batches[i % len(batches)] for i in range(steps)]
    return {"seconds": seconds, "cpu_seconds": cpu, "padded_tokens": sum(b["input_ids"].numel() for b in used),
            "real_tokens": sum(history.tokens), "memory_mb": memory.increase_mb, "final_loss": history.loss[-1]}


def run_trainer(model, rows: list[dict], steps: int, batch_size: int, lr: float, pad_id: int, sampling: str) -> dict:
    """``transformers.Trainer`` with the same settings; ``sampling``: "random" (its default) or "group_by_length"."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    collator = CountingCollator(pad_id)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=lr,
            warmup_steps=0.1, lr_scheduler_type="linear", weight_decay=0.0, max_grad_norm=1.0, seed=0,
            train_sampling_strategy=sampling, report_to=[], save_strategy="no", logging_strategy="no",
            disable_tqdm=True, use_cpu=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict
        with PeakMemory(torch.device("cpu")) as memory:
            started, cpu = time.perf_counter(), time.process_time()
            output = trainer.train()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    model.eval()
    return {"seconds": seconds, "cpu_seconds": cpu, "padded_tokens": collator.padded, "real_tokens": collator.real,
            "memory_mb": memory.increase_mb, "final_loss": output.training_loss}


# ----------------------------------------------------------------------------- quality


@torch.no_grad()
def summary_loss(model, batches: list[dict]) -> float:
    """Mean loss per summary token over the test batches (teacher-forced; the prompt is not scored)."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        n = int((batch["labels"][:, 1:] != -100).sum())  # targets after the causal shift
        total += float(model(**batch).loss) * n
        count += n
    return total / count


# ----------------------------------------------------------------------------- the two comparisons


def interleave(arms: dict, repeats: int) -> dict[str, list[dict]]:
    """Run each arm ``repeats`` times in alternating order; every arm's first run also gives its quality."""
    names, kept = list(arms), {name: [] for name in arms}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            kept[name].append(arms[name](first=r == 0))
            say(f"   {name}: {kept[name][-1]['seconds']:.1f} s wall, {kept[name][-1]['cpu_seconds']:.1f} CPU-s")
    return kept


def summarise_arms(kept: dict[str, list[dict]], reference: str) -> list[dict]:
    rows = []
    for name, runs in kept.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        first = runs[0]
        rows.append({"arm": name, "seconds": seconds, "cpu_seconds": cpu, "step_s": seconds / first["steps"],
                     "padded_tokens": first["padded_tokens"], "real_tokens": first["real_tokens"],
                     "padding_share": 1 - first["real_tokens"] / first["padded_tokens"],
                     "tokens_per_s": first["padded_tokens"] / seconds,
                     "memory_mb": statistics.median(r["memory_mb"] for r in runs), "quality": first["quality"],
                     "final_loss": first["final_loss"], "runs_s": [r["seconds"] for r in runs]})
    base = next(r for r in rows if r["arm"] == reference)
    for row in rows:
        row["vs_" + reference] = row["seconds"] / base["seconds"]
        row["cpu_vs_" + reference] = row["cpu_seconds"] / base["cpu_seconds"]
    return rows


def sentiment_comparison(mode: str) -> dict:
    name, dataset, steps, batch_size, max_length, lr, repeats = SENTIMENT[mode]
    splits = load_dataset(dataset, seed=0)
    _, tok = load_model(name, head="classification", seed=0)
    batches = sentiment.make_batches(splits["train"], tok, batch_size=batch_size, max_length=max_length,
                                     shuffle=True, seed=0)[:steps]  # one epoch = these `steps` batches
    rows = examples_of(batches)

    def arm(kind):
        def run(first: bool) -> dict:
            model, _ = load_model(name, head="classification", seed=0)  # the same start for every arm
            if kind == "tutorlib":
                out = run_tutorlib(prepare_full_finetuning(model, model_name=name), batches, steps, lr)
            else:
                for p in model.parameters():
                    p.requires_grad_(True)
                out = run_trainer(model, rows, steps, batch_size, lr, tok.pad_token_id,
                                  "group_by_length" if kind == "trainer-grouped" else "random")
            out["quality"] = sentiment.evaluate_sentiment(model, splits["test"], tok, batch_size=64,
                                                          max_length=max_length)["accuracy"] if first else None
            return {**out, "steps": steps}
        return run

    say(f"== full fine-tuning, {name} on {dataset}: {steps} steps of {batch_size}, max {max_length} tokens, lr {lr:g}, "
        f"{repeats} interleaved repetitions")
    kept = interleave({k: arm(k) for k in ("tutorlib", "trainer-defaults", "trainer-grouped")}, repeats)
    return {"model": name, "dataset": dataset, "steps": steps, "batch_size": batch_size, "max_length": max_length,
            "lr": lr, "repeats": repeats, "quality_metric": "test accuracy (1,061 snippets)",
            "rows": summarise_arms(kept, "tutorlib")}


def summarise_comparison(mode: str) -> dict:
    import peft

    name, dataset, steps, batch_size, max_length, lr, repeats = SUMMARISE[mode]
    splits = load_dataset(dataset, seed=0)
    _, tok = load_model(name, head="causal-lm", seed=0)
    batches = summarise.make_batches(splits["train"], tok, batch_size=batch_size, max_length=max_length,
                                     shuffle=True, seed=0)[:steps]
    test = splits["test"].select(range(TEST_ITEMS["summarise"]))
    test_batches = summarise.make_batches(test, tok, batch_size=8, max_length=max_length, shuffle=False)
    rows = examples_of(batches)

    def arm(kind):
        def run(first: bool) -> dict:
            model, _ = load_model(name, head="causal-lm", seed=0)
            if kind == "tutorlib":
                # The kit's own start for summarisation (as `tutorlib compare` uses): the model's keys/values of
                # an instruction. A random start begins at a loss near 11 (lesson 4, section 6).
                method = attach_prefix(model, PREFIX_LENGTH, seed=0, model_name=name, init="words",
                                       init_text=PREFIX_INIT_TEXT["summarise"], tokenizer=tok)
                out = run_tutorlib(method, batches, steps, lr)
            else:
                torch.manual_seed(0)
                method = peft.get_peft_model(model, peft.PrefixTuningConfig(task_type="CAUSAL_LM",
                                                                            num_virtual_tokens=PREFIX_LENGTH))
                out = run_trainer(method, rows, steps, batch_size, lr, tok.pad_token_id, "random")
            out["quality"] = summary_loss(method, test_batches) if first else None
            return {**out, "steps": steps}
        return run

    say(f"== prefix tuning P={PREFIX_LENGTH}, {name} on {dataset}: {steps} steps of {batch_size}, max {max_length} "
        f"tokens, lr {lr:g}, {repeats} interleaved repetitions; PEFT {peft.__version__}")
    kept = interleave({k: arm(k) for k in ("tutorlib", "trainer+peft")}, repeats)
    return {"model": name, "dataset": dataset, "steps": steps, "batch_size": batch_size, "max_length": max_length,
            "lr": lr, "repeats": repeats, "prefix_length": PREFIX_LENGTH,
            "quality_metric": f"test loss per summary token ({TEST_ITEMS['summarise']} articles; lower is better)",
            "rows": summarise_arms(kept, "tutorlib")}


COLUMNS = [("arm", "arm", "{}"), ("seconds", "epoch s", "{:.1f}"), ("vs_tutorlib", "vs tutorlib", "{:.2f}x"),
           ("cpu_seconds", "CPU-s", "{:.1f}"), ("cpu_vs_tutorlib", "CPU vs tutorlib", "{:.2f}x"),
           ("step_s", "step s", "{:.3f}"), ("padded_tokens", "tokens processed", "{:,}"),
           ("real_tokens", "real tokens", "{:,}"), ("padding_share", "padding", "{:.0%}"),
           ("memory_mb", "peak +MB", "{:.0f}"), ("quality", "quality", "{:.4f}")]


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__, device=False,
                                 extra=lambda p: p.add_argument("--only", default="sentiment,summarise",
                                                                help="sentiment, summarise or both"))
    warnings.filterwarnings("ignore")  # Trainer's and PEFT's notices would bury the tables
    mode = "quick" if args.quick else "full"
    result = {"mode": mode, "threads": args.threads}
    for part, compare in (("sentiment", sentiment_comparison), ("summarise", summarise_comparison)):
        if part in args.only:
            result[part] = compare(mode)
            say(common.table(result[part]["rows"], COLUMNS))
            say(f"   quality: {result[part]['quality_metric']}")
            common.save("trainer_compare", result)  # after each part: a long run keeps what it finished
    return result


if __name__ == "__main__":
    main()
