"""The paper at small scale: four of Li & Liang's findings re-run on a laptop budget, beside their numbers.

    .venv/bin/python bench/paper.py --quick        # or: bench/run.py --only paper

Paper: Xiang Lisa Li and Percy Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation",
arXiv:2101.00190v1 (January 2021). Its numbers below are quoted from that arXiv text; the ACL 2021
version (long paper 353) revised the tables and figures, and its numbers are NOT quoted here (not verified).

Our scale: MiniLM-L6 (22.7M, BERT) on movie-snippet sentiment (binary accuracy on a fixed validation
subset), a few dozen updates per run, one seed in quick mode. The paper: GPT-2 medium / BART-large on
generation (table-to-text BLEU, XSUM ROUGE), epochs of training, 10 models per low-data point. So only
the *direction* of each finding can be compared, and quick-mode differences within the 95% interval
(about +-5 points on 300 items) are noise. Written: bench/paper.png.
"""

from __future__ import annotations

import time

import common
import numpy as np
import torch
from common import say
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from tutorlib.loading.data import load_dataset
from tutorlib.loading.models import load_model
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.tasks.metrics import wilson_interval
from tutorlib.tasks.sentiment import make_batches, predict_positive
from tutorlib.training.loop import TrainConfig, TrainingDiverged, train

MODEL = "minilm-l6"
QUICK = dict(eval_items=300, batch_size=16, max_length=64, epochs=5, min_steps=15, max_steps=30, seeds=[0],
             lengths=[1, 10, 50, 200], emb_lengths=[10], sizes=[50, 100, 200, 500], full_data_steps=30)
FULL = dict(eval_items=None, batch_size=16, max_length=64, epochs=10, min_steps=50, max_steps=400, seeds=[0, 1, 2],
            lengths=[1, 5, 10, 20, 50, 100, 200], emb_lengths=[1, 10, 20], sizes=[50, 100, 200, 500],
            full_data_steps=400)
# One learning rate per method, shared by the trainable part and the new classifier head (tutorlib.training.loop
# has one lr). "prefix-mlp (own lr)": the MLP at 1e-4, the head at 1e-2 (see train_with_two_rates).
LEARNING_RATE = {"full": 1e-4, "prefix": 1e-2, "prefix-mlp": 1e-2, "embedding-only": 1e-2}
MLP_OWN_LR = 1e-4

PAPER = {  # arXiv:2101.00190v1; "not verified" = read off a figure we could not see, so not quoted
    "length": "Fig. 4: score rises with P up to a threshold (P=200 for XSUM summarisation, P=10 for "
              "table-to-text), then drops slightly; exact values not verified.",
    "embedding": "Table 4 (E2E, GPT-2 medium, BLEU): PREFIX 69.7; EMB-1 48.1, EMB-10 62.2, EMB-20 61.9.",
    "low_data": "Sec. 6.3 / Fig. 3 (E2E, XSUM; 50/100/200/500 examples, 10 models each): prefix-tuning beats "
                "fine-tuning by 2.9 BLEU on average, the gap narrowing with more data; per-point values not verified.",
    "mlp": "Sec. 4.3: updating the prefix directly 'leads to unstable optimization and a slight drop in "
           "performance', so the paper trains it through an MLP (at lr 5e-5, Sec. 5.3); no number in the main text.",
}


class EmbeddingOnlyPrompt(nn.Module):
    """The paper's embedding-only ablation (Sec. 7.2): P trainable input *embeddings* before the tokens;
    every layer above computes them (a prefix sets every layer's keys/values directly). The frozen
    classifier's mean pooling covers the real tokens only; its head trains, as with the prefix."""

    def __init__(self, classifier, prompt_length: int, seed: int = 0):
        super().__init__()
        self.classifier, self.prompt_length = classifier, prompt_length
        classifier.requires_grad_(False)
        classifier.head.requires_grad_(True)
        words = classifier.encoder.get_input_embeddings().weight  # (vocab, D)
        ids = torch.randint(1000, words.shape[0], (prompt_length,), generator=torch.Generator().manual_seed(seed))
        self.prompt = nn.Parameter(words[ids].detach().clone())  # (P, D): start from real words, as the paper did

    def forward(self, input_ids, attention_mask, labels=None):
        c, B = self.classifier, input_ids.shape[0]
        embeds = torch.cat([self.prompt.expand(B, -1, -1),
                            c.encoder.get_input_embeddings()(input_ids)], 1)  # (B, P+T, D)
        ones = torch.ones(B, self.prompt_length, dtype=attention_mask.dtype, device=attention_mask.device)
        mask = torch.cat([ones, attention_mask], 1)  # (B, P+T)
        hidden = c.encoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # (B, P+T, D)
        hidden = hidden[:, self.prompt_length:]  # (B, T, D)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        logits = c.head(c.dropout(pooled))  # (B, 2)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


_BATCHES: dict = {}


def train_with_two_rates(tuned, batches, steps: int, prefix_lr: float, head_lr: float, seed: int) -> None:
    """tutorlib.training.loop's step (AdamW, 10% warm-up then linear decay, clipping at 1) with two learning
    rates: the prefix encoder's and the head's. tutorlib.training.loop has one lr for everything, and the MLP
    variant needs a ~100x smaller one than the head: its output moves by ~(hidden width) x lr per step."""
    from transformers import get_scheduler

    torch.manual_seed(seed)
    groups = [{"params": list(tuned.prefix_encoder.parameters()), "lr": prefix_lr},
              {"params": list(tuned.model.head.parameters()), "lr": head_lr}]
    optimizer = torch.optim.AdamW(groups)
    schedule = get_scheduler("linear", optimizer, num_warmup_steps=round(0.1 * steps), num_training_steps=steps)
    tuned.train()
    for step in range(steps):
        loss = tuned(**batches[step % len(batches)]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    tuned.eval()


def run(kind: str, train_set, eval_set, settings: dict, seed: int, prefix_length: int = 10,
        steps: int | None = None) -> dict:
    """Train one method from a fresh MiniLM; kind: full | prefix | prefix-mlp | prefix-mlp-own-lr | embedding-only."""
    model, tok = load_model(MODEL, seed=seed)
    if kind == "full":
        tuned = prepare_full_finetuning(model)
    elif kind == "embedding-only":
        tuned = EmbeddingOnlyPrompt(model, prefix_length, seed)
    else:
        tuned = attach_prefix(model, prefix_length, reparameterise=kind.startswith("prefix-mlp"), seed=seed)
    key = (train_set._fingerprint, seed)
    if key not in _BATCHES:  # the same data and seed give the same batches: tokenize once
        _BATCHES[key] = make_batches(train_set, tok, settings["batch_size"], settings["max_length"],
                                     shuffle=True, seed=seed)
    batches = _BATCHES[key]
    if steps is None:  # a few epochs of a small set, capped: the budget of the paper's low-data runs, shrunk
        steps = min(settings["max_steps"], max(settings["min_steps"], settings["epochs"] * len(batches)))
    started = time.perf_counter()
    if kind == "prefix-mlp-own-lr":
        train_with_two_rates(tuned, batches, steps, MLP_OWN_LR, LEARNING_RATE["prefix"], seed)
    else:
        try:
            train(tuned, batches, TrainConfig(steps=steps, lr=LEARNING_RATE[kind], seed=seed), progress=False)
        except TrainingDiverged as err:  # a finding, not a crash: record chance-level behaviour
            say(f"     {kind} P={prefix_length} diverged at step {err.step}")
    probs = predict_positive(tuned, eval_set, tok, batch_size=64, max_length=settings["max_length"])
    labels = np.asarray(eval_set["label"])
    right = int(((probs > 0.5).astype(int) == labels).sum())
    return {"kind": kind, "prefix_length": prefix_length, "train_examples": len(train_set), "steps": steps,
            "seed": seed,
            "accuracy": right / len(labels), "ci95": wilson_interval(right, len(labels)),
            "trainable": sum(p.numel() for p in tuned.parameters() if p.requires_grad),
            "seconds": time.perf_counter() - started}


def mean_accuracy(runs: list[dict]) -> float:
    return float(np.mean([r["accuracy"] for r in runs]))


def show(title: str, rows: list[dict], paper: str) -> None:
    say(f"  -- {title}")
    say("\n".join("     " + line for line in common.table(rows, [
        ("setting", "setting", "{}"), ("accuracy", "accuracy", "{:.3f}"), ("ci", "95% CI (one seed)", "{}"),
        ("steps", "steps", "{}"), ("trainable", "trainable", "{:,}")]).splitlines()))
    say(f"     paper: {paper}")


def row(setting: str, runs: list[dict]) -> dict:
    lo, hi = runs[0]["ci95"]
    return {"setting": setting, "accuracy": mean_accuracy(runs), "ci": f"{lo:.2f}-{hi:.2f}", "steps": runs[0]["steps"],
            "trainable": runs[0]["trainable"], "runs": runs}


def plot(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), dpi=80)

    def err(rows):  # 95% Wilson interval of the first seed, as (below, above) bars
        return np.array([[r["accuracy"] - r["runs"][0]["ci95"][0], r["runs"][0]["ci95"][1] - r["accuracy"]]
                         for r in rows]).T

    length = results["prefix_length"]
    xs = [r["runs"][0]["prefix_length"] for r in length]
    axes[0].errorbar(xs, [r["accuracy"] for r in length], yerr=err(length), fmt="o-", capsize=3)
    axes[0].set(xscale="log", xticks=xs, xticklabels=[str(x) for x in xs], xlabel="prefix length P",
                ylabel="validation accuracy", title="prefix length (paper: Fig. 4)")
    emb = results["embedding_only"]
    axes[1].bar([r["setting"] for r in emb], [r["accuracy"] for r in emb], yerr=err(emb), capsize=3,
                color=["C0"] + ["C1"] * (len(emb) - 1))
    axes[1].set(title="full prefix vs embedding-only\n(paper: Table 4)", ylim=(0.4, 1))
    low = results["low_data"]
    for kind, color in (("full", "C3"), ("prefix", "C0")):
        pts = [r for r in low if r["kind"] == kind]
        axes[2].errorbar([r["train_examples"] for r in pts], [r["accuracy"] for r in pts], yerr=err(pts), fmt="o-",
                         capsize=3, color=color, label="fine-tuning" if kind == "full" else "prefix-tuning")
    sizes = sorted({r["train_examples"] for r in low})
    axes[2].set(xscale="log", xticks=sizes, xticklabels=[str(n) for n in sizes], xlabel="training examples",
                title="low data (paper: Fig. 3)")
    axes[2].legend(fontsize=7)
    axes[0].minorticks_off()
    axes[2].minorticks_off()
    mlp = results["mlp"]
    axes[3].bar([r["setting"] for r in mlp], [r["accuracy"] for r in mlp], yerr=err(mlp), capsize=3,
                color=["C0", "C2", "C2"])
    axes[3].tick_params(axis="x", labelsize=7)
    axes[3].set(title="MLP reparameterisation\n(paper: Sec. 4.3)", ylim=(0.4, 1))
    for ax in axes:
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    fig.suptitle(f"{MODEL} movie-snippet sentiment, small budgets (chance = 0.5)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> dict:
    args = common.part_arguments(argv, __doc__, device=False)
    s = QUICK if args.quick else FULL
    data = load_dataset("movie-snippets")
    eval_set = data["validation"] if s["eval_items"] is None else data["validation"].select(range(s["eval_items"]))
    say(f"== The paper at small scale: {MODEL}, movie-snippet sentiment, eval on {len(eval_set)} validation items, "
        f"seeds {s['seeds']}, batch {s['batch_size']}, {args.threads} thread(s); lr {LEARNING_RATE}, "
        f"MLP own lr {MLP_OWN_LR}")
    seeds, results = s["seeds"], {}
    full_set = data["train"]

    def runs(kind, train_set, **kw):
        return [run(kind, train_set, eval_set, s, seed, **kw) for seed in seeds]

    by_length = {p: runs("prefix", full_set, prefix_length=p, steps=s["full_data_steps"]) for p in s["lengths"]}
    results["prefix_length"] = [row(f"P={p}", r) for p, r in by_length.items()]
    show("prefix length", results["prefix_length"], PAPER["length"])

    reference = by_length.get(10) or runs("prefix", full_set, prefix_length=10, steps=s["full_data_steps"])
    results["embedding_only"] = [row("PREFIX-10", reference)] + [
        row(f"EMB-{p}", runs("embedding-only", full_set, prefix_length=p, steps=s["full_data_steps"]))
        for p in s["emb_lengths"]]
    show("full prefix vs embedding-only", results["embedding_only"], PAPER["embedding"])

    results["low_data"] = []
    for n in s["sizes"]:
        for kind in ("full", "prefix"):
            per_seed = [run(kind, full_set.shuffle(seed=seed).select(range(n)), eval_set, s, seed) for seed in seeds]
            results["low_data"].append({**row(f"{kind} n={n}", per_seed), "kind": kind, "train_examples": n})
    show("low data: fine-tuning vs prefix", results["low_data"], PAPER["low_data"])
    gaps = [p["accuracy"] - f["accuracy"] for f, p in zip(results["low_data"][::2], results["low_data"][1::2])]
    results["low_data_mean_gap"] = float(np.mean(gaps))
    say(f"     prefix - fine-tuning, mean over sizes: {100 * results['low_data_mean_gap']:+.1f} accuracy points")

    results["mlp"] = [row("direct", reference),
                      row("MLP, one lr", runs("prefix-mlp", full_set, prefix_length=10, steps=s["full_data_steps"])),
                      row("MLP, own lr",
                          runs("prefix-mlp-own-lr", full_set, prefix_length=10, steps=s["full_data_steps"]))]
    show("MLP reparameterisation on/off (P=10)", results["mlp"], PAPER["mlp"])

    path = common.ROOT / "bench" / "paper.png"
    plot(results, path)
    say(f"  plot: {path.relative_to(common.ROOT)}")
    out = {"mode": "quick" if args.quick else "full", "settings": s, "learning_rates": LEARNING_RATE,
           "mlp_own_lr": MLP_OWN_LR,
           "paper": PAPER, "paper_version": "arXiv:2101.00190v1", "eval_items": len(eval_set), **results}
    common.save("paper", out)
    return out


if __name__ == "__main__":
    main()
