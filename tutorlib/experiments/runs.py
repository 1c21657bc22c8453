"""One method's run inside a comparison: data once, then per method load -> wrap -> train -> evaluate -> save.

:func:`tutorlib.experiments.compare.compare` calls these; a lesson that wants one run by hand can too::

    data = prepare_data("sentiment", "tiny-bert", "tiny", tiny_data, budget, seed=0, required=("text", "label"))
    run = run_method("prefix", task="sentiment", model_name="tiny-bert", data=data, budget=budget, lr=1e-2,
                     prefix_length=10, seed=0, checkpoint_root=Path("runs/x"), progress=False)
    run.row["accuracy"], run.row["median_step_seconds"]

A row is one flat dict: the method, its quality metrics, its :class:`tutorlib.training.measure.RunCost` fields
and its parameter accounting, so every method's row has the same keys.
"""

from __future__ import annotations

import gc
import itertools
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from tutorlib.loading.data import load_dataset
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.training.measure import RunCost, run_cost
from tutorlib.loading.models import load_model
from tutorlib.training.parameters import count_parameters, parameter_summary
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.tasks import sentiment, summarise, terminology
from tutorlib.tasks.metrics import mcnemar
from tutorlib.training.loop import History, TrainConfig, train

MODEL_TASK = {"sentiment": "classification", "summarise": "causal-lm"}  # the head each task needs


@dataclass
class PreparedData:
    """What every method of one comparison shares: the tokenizer, the very same training batches
    (a list of dicts of (B, T) tensors), the test rows, and ``summary`` (counts for the report)."""

    tokenizer: object
    batches: list
    test: object  # datasets.Dataset, what the methods are scored on
    test_as_published: object  # before any prompt change (aclsum's aspect): for the lead baseline
    steps: int
    summary: dict
    term_vocabulary: object = None  # a terminology.Vocabulary when the data carries MeSH/chemical terms


@dataclass
class MethodRun:
    """One method's outcome: ``row`` (flat dict), ``history`` (None for zero-shot), per-item
    ``predictions`` and a few ``examples`` (summaries)."""

    method: str
    row: dict
    history: History | None
    predictions: list
    examples: list


# ----------------------------------------------------------------------------- data, once


def with_aspect(dataset):
    """aclsum: one abstract has three reference summaries (challenge, approach, outcome). Without
    saying which one is wanted the task is ill-posed, so the aspect goes into the document's start:
    "Aspect: approach. <abstract>" (the start survives when a long document is cut)."""
    return dataset.map(lambda row: {"document": f"Aspect: {row['aspect']}. {row['document']}"})


def prepare_data(task: str, model_name: str, dataset_name: str, tiny_data, budget, seed: int,
                 required: tuple[str, ...]) -> PreparedData:
    """Load (or take) the splits, cut them to the budget, tokenize once, build the training batches."""
    splits = tiny_data if tiny_data is not None else load_dataset(dataset_name, seed=seed)
    missing = [s for s in ("train", "test") if s not in splits]
    if missing:
        raise ValueError(f"The data has no {missing[0]!r} split (it has {list(splits)}); give train and test.")
    train_rows, test_rows = splits["train"], splits["test"]
    lacking = [c for c in required if c not in train_rows.column_names or c not in test_rows.column_names]
    if lacking:
        raise ValueError(f"Dataset {dataset_name!r} has no {lacking[0]!r} column (it has {train_rows.column_names}); "
                         f"this task needs {', '.join(required)}. Sentiment sets: movie-snippets, rotten-tomatoes, "
                         f"sst2; summarisation sets: nyt-leads, aclsum.")
    note = None
    if task == "sentiment" and set(test_rows["label"]) - {0, 1} and "validation" in splits:
        test_rows, note = splits["validation"], "the test split has no labels (e.g. GLUE sst2): scored on validation"
    if budget.train_examples:
        train_rows = train_rows.select(range(min(budget.train_examples, len(train_rows))))
    if budget.test_items:
        test_rows = test_rows.select(range(min(budget.test_items, len(test_rows))))
    published = test_rows
    if "aspect" in test_rows.column_names and task == "summarise":
        train_rows, test_rows = with_aspect(train_rows), with_aspect(test_rows)
    _, tokenizer = load_model(model_name, task=MODEL_TASK[task], seed=seed)  # checks the name early; weights freed
    gc.collect()
    make = sentiment.make_batches if task == "sentiment" else summarise.make_batches
    batches = make(train_rows, tokenizer, batch_size=budget.batch_size, max_length=budget.max_length,
                   shuffle=True, seed=seed)
    steps = budget.steps or len(batches)
    summary = {"train_examples": len(train_rows), "test_items": len(test_rows), "batches_per_epoch": len(batches),
               "epochs": steps / len(batches), "note": note}
    if task == "sentiment" and "rater_std" in test_rows.column_names:
        clear, ambiguous = sentiment.ambiguity_split(test_rows)
        summary.update(clear_items=len(clear), ambiguous_items=len(ambiguous),
                       ambiguity_threshold=sentiment.AMBIGUITY_STD_THRESHOLD)
    if "aspect" in test_rows.column_names:
        summary["prompt"] = "the aspect is written into each document: 'Aspect: <aspect>. <abstract>'"
    vocabulary = terminology.dataset_vocabulary(splits) if terminology.has_terms(test_rows) else None
    return PreparedData(tokenizer, batches, test_rows, published, steps, summary, vocabulary)


# ----------------------------------------------------------------------------- one method


def wrap(method: str, model, prefix_length: int, seed: int, model_name: str, init_text: str | None = None,
         tokenizer=None):
    """The plain model -> the method's trainable form (or the model itself for zero-shot). A prefix
    starts random, or from the model's own keys/values of ``init_text`` when one is given."""
    if method == "full":
        return prepare_full_finetuning(model, model_name=model_name)
    if method in ("prefix", "prefix-mlp"):
        start = dict(init="words", init_text=init_text, tokenizer=tokenizer) if init_text else {}
        return attach_prefix(model, prefix_length, reparameterise=method == "prefix-mlp", seed=seed,
                             model_name=model_name, **start)
    return model  # zero-shot


def evaluate(task: str, tuned, tokenizer, data: PreparedData, budget) -> tuple[dict, list, list]:
    """Score on the test rows -> (metrics, per-item predictions, examples)."""
    if task == "sentiment":
        report = sentiment.evaluate_sentiment(tuned, data.test, tokenizer, batch_size=budget.eval_batch_size,
                                              max_length=budget.max_length)
        predictions = report.pop("predictions")
        report.pop("ambiguity_threshold", None)  # the same for every row: it is in the data summary
        return report, predictions, []
    report = summarise.evaluate_summaries(tuned, tokenizer, data.test, max_new_tokens=budget.max_new_tokens,
                                          batch_size=budget.eval_batch_size, max_length=budget.max_length)
    rouge_l = np.array([p["rougeL"] for p in report["predictions"]])  # (N,)
    metrics = {k: report[k] for k in ("rouge1", "rouge2", "rougeL", "n")}
    metrics["rougeL_se"] = float(rouge_l.std(ddof=1) / np.sqrt(len(rouge_l))) if len(rouge_l) > 1 else None
    if data.term_vocabulary is not None:  # terminology recall and invented terms, per item and overall
        metrics.update(terminology.add_terminology(report["predictions"], data.test, data.term_vocabulary))
    return metrics, report["predictions"], report["examples"]


def run_method(method: str, *, task: str, model_name: str, data: PreparedData, budget, lr: float | None,
               prefix_length: int, seed: int, checkpoint_root: Path, progress: bool = True,
               measure_energy: bool = True, prefix_init_text: str | None = None,
               lr_by_name: dict[str, float] | None = None) -> MethodRun:
    """Fresh model -> wrap -> train (``data.steps`` steps) -> evaluate -> checkpoint -> one row.
    ``lr_by_name``: own rates for some parameters (see :class:`~tutorlib.training.loop.TrainConfig`)."""
    model, tokenizer = load_model(model_name, task=MODEL_TASK[task], seed=seed)  # a fresh copy per method
    tuned = wrap(method, model, prefix_length, seed, model_name, prefix_init_text, tokenizer)
    history = None
    if method != "zero-shot":
        config = TrainConfig(steps=data.steps, lr=lr, lr_by_name=lr_by_name, seed=seed, measure_energy=measure_energy)
        history = train(tuned, data.batches, config, progress=progress)
        if history.interrupted:  # stopping: no evaluation of a half-trained model
            return MethodRun(method, {"method": method, "interrupted": True, "steps_done": len(history.loss)},
                             history, [], [])
    started = time.perf_counter()
    quality, predictions, examples = evaluate(task, tuned, tokenizer, data, budget)
    eval_seconds = time.perf_counter() - started
    if history is None:
        cost = {f.name: None for f in fields(RunCost)}
        cost.update(steps=0, trainable_params=0, total_params=count_parameters(tuned).total, checkpoint_bytes=0)
        stored = 0
    else:
        paths = tuned.save_checkpoint(Path(checkpoint_root) / method)
        cost = run_cost(history, tuned, paths, name=method).to_dict()
        stored = parameter_summary(tuned).stored
    cost.pop("name")
    losses = history.loss if history is not None else []
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    energy = history.energy if history is not None else None
    row = {"method": method, "lr": lr, "lr_by_name": lr_by_name, "interrupted": False, **quality,
           "final_loss": float(np.mean(tail)) if tail else None, "eval_seconds": eval_seconds, **cost,
           # CPU-seconds of this process per step (all threads): far less sensitive than wall time to
           # other programs sharing the cores; None without an energy meter (it records them).
           "cpu_seconds_per_step": energy.cpu_seconds / len(losses) if energy and losses else None,
           "stored_params": stored,
           "trainable_fraction": cost["trainable_params"] / cost["total_params"] if cost["total_params"] else 0.0}
    del tuned, model
    gc.collect()  # the next method's memory is measured from here: free this one's model first
    return MethodRun(method, row, history, predictions, examples)


# ----------------------------------------------------------------------------- references and paired tests


def reference_rows(task: str, data: PreparedData) -> list[dict]:
    """Rows no method has to train for, to read the methods against: lead sentence / majority class."""
    if task == "summarise":
        rows = [{"method": "lead sentence", **summarise.lead_baseline(data.test_as_published)}]
        if data.term_vocabulary is not None:  # the abstract's first sentence and the authors' own title
            terms = terminology.reference_terminology(data.test, data.term_vocabulary)
            rows = [{**rows[0], **terms["lead sentence"]}, {"method": "reference title", **terms["reference title"]}]
        return rows
    labels = np.asarray(list(data.test["label"]))
    return [{"method": "majority class", "accuracy": float(max(np.mean(labels == c) for c in np.unique(labels)))}]


def paired_sign_flip_p(a: np.ndarray, b: np.ndarray, draws: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomisation test of mean(a - b) = 0: flip the sign of each item's difference
    at random (what "no difference" would allow) and count how often the mean is as far from 0."""
    diff = np.asarray(a, float) - np.asarray(b, float)  # (N,)
    observed = abs(diff.mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, len(diff)))  # (draws, N)
    extreme = np.sum(np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12)
    return float((extreme + 1) / (draws + 1))


def build_paired_tests(task: str, runs: list[MethodRun]) -> list[dict]:
    """Every pair of finished methods, scored item by item on the same test rows.

    Sentiment: exact McNemar test on right/wrong. Summarise: paired sign-flip test on ROUGE-L."""
    done = [r for r in runs if r.predictions]
    tests = []
    for a, b in itertools.combinations(done, 2):
        if task == "sentiment":
            labels = [p["label"] for p in a.predictions]
            pa, pb = [p["pred"] for p in a.predictions], [p["pred"] for p in b.predictions]
            right_a = np.array(pa) == np.array(labels)
            right_b = np.array(pb) == np.array(labels)
            tests.append({"a": a.method, "b": b.method, "test": "McNemar exact", "p_value": mcnemar(pa, pb, labels),
                          "only_a_right": int(np.sum(right_a & ~right_b)),
                          "only_b_right": int(np.sum(~right_a & right_b))})
        else:
            ra, rb = [p["rougeL"] for p in a.predictions], [p["rougeL"] for p in b.predictions]
            tests.append({"a": a.method, "b": b.method, "test": "paired sign-flip on ROUGE-L",
                          "p_value": paired_sign_flip_p(np.array(ra), np.array(rb)),
                          "mean_difference": float(np.mean(ra) - np.mean(rb))})
            ta, tb = terminology.paired_recalls(a.predictions, b.predictions)  # (N,) items with domain terms
            if len(ta):
                tests.append({"a": a.method, "b": b.method, "test": "paired sign-flip on terminology recall",
                              "p_value": paired_sign_flip_p(ta, tb), "mean_difference": float(np.mean(ta - tb)),
                              "measure": "terminology recall", "items": len(ta)})
    return tests
