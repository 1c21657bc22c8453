"""One method's run inside a comparison: data once, then per method load -> wrap -> train -> evaluate -> save.

:func:`tutorlib.experiments.compare.compare` calls these; a lesson that wants one run by hand can too::

    spec = ComparisonSpec.create("sentiment", model="tiny-bert", dataset="tiny", methods="prefix", mode="fast")
    data = prepare_data(spec.task, spec.model, spec.dataset, tiny_data, spec.budget, seed=0)
    run = run_method(get_method("prefix"), spec=spec, data=data, checkpoint_root=Path("runs/x"), progress=False)
    run.row["accuracy"], run.row["median_step_seconds"]

A row is one flat dict: the method, its quality metrics, its :class:`tutorlib.training.measure.RunCost` fields
and its parameter accounting, so every method's row has the same keys.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from tutorlib.experiments import zero_shot_cache
from tutorlib.loading.data import load_dataset
from tutorlib.loading.models import load_model, load_tokenizer
from tutorlib.methods.registry import Method, MethodSetup
from tutorlib.tasks import terminology
from tutorlib.tasks.generation_batch import generation_batch_size
from tutorlib.tasks.metrics import paired_sign_flip_p
from tutorlib.tasks.registry import Task, get_task
from tutorlib.training.distributed import gather_in_order, process_count
from tutorlib.training.loop import History, TrainConfig, resolve_device, train
from tutorlib.training.measure import RunCost, run_cost
from tutorlib.training.memory_estimate import check_step_fits
from tutorlib.training.parameters import count_parameters, parameter_summary


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
    dataset_name: str = ""  # the name it was loaded by ("tiny-data" for hand-made data)


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


def prepare_data(task: str | Task, model_name: str, dataset_name: str, tiny_data, budget, seed: int,
                 split_seed: int = 0) -> PreparedData:
    """Load (or take) the splits (``split_seed``), cut them to the budget, tokenize once, build the training
    batches (shuffled by the training ``seed``)."""
    task = get_task(task)
    splits = tiny_data if tiny_data is not None else load_dataset(dataset_name, seed=split_seed)
    missing = [s for s in ("train", "test") if s not in splits]
    if missing:
        raise ValueError(f"The data has no {missing[0]!r} split (it has {list(splits)}); give train and test.")
    train_rows, test_rows = splits["train"], splits["test"]
    lacking = [c for c in task.columns if c not in train_rows.column_names or c not in test_rows.column_names]
    if lacking:
        raise ValueError(f"Dataset {dataset_name!r} has no {lacking[0]!r} column (it has {train_rows.column_names}); "
                         f"the {task.name} task needs {', '.join(task.columns)}. Datasets and their columns: "
                         f"`tutorlib doctor`.")
    test_rows, note = task.scoring_split(splits)
    if budget.train_examples:
        train_rows = train_rows.select(range(min(budget.train_examples, len(train_rows))))
    if budget.test_items:
        test_rows = test_rows.select(range(min(budget.test_items, len(test_rows))))
    published = test_rows
    train_rows, test_rows = task.prepare_rows(train_rows), task.prepare_rows(test_rows)
    tokenizer = load_tokenizer(model_name)  # checks the name early; every method's load_model reuses it
    batches = task.make_batches(train_rows, tokenizer, batch_size=budget.batch_size, max_length=budget.max_length,
                                shuffle=True, seed=seed)
    steps = budget.steps or len(batches)
    summary = {"train_examples": len(train_rows), "test_items": len(test_rows), "batches_per_epoch": len(batches),
               "epochs": steps / len(batches), "note": note, **task.describe_test(test_rows)}
    # Data that names its domain terms (MeSH headings, chemicals) is also scored on terminology.
    vocabulary = terminology.dataset_vocabulary(splits) if terminology.has_terms(test_rows) else None
    return PreparedData(tokenizer, batches, test_rows, published, steps, summary, vocabulary, dataset_name)


# ----------------------------------------------------------------------------- one method


def scoring_batch_size(task: Task, tuned, budget) -> int:
    """The budget's ``eval_batch_size``; None (a generating task's default) lets the kit choose the generation
    batch from the model and the free memory (:func:`tutorlib.tasks.generation_batch.generation_batch_size`)."""
    if budget.eval_batch_size is not None:
        return budget.eval_batch_size
    return generation_batch_size(tuned, max_length=budget.max_length)


def evaluate(task: Task, tuned, tokenizer, data: PreparedData, budget) -> tuple[dict, list, list]:
    """Score on the test rows -> (metrics, per-item predictions, examples). Launched on several processes,
    each predicts its slice of the test rows and all slices are gathered (the same metrics on every one)."""
    metrics, predictions, examples = task.evaluate(
        tuned, tokenizer, data.test, batch_size=budget.eval_batch_size, max_length=budget.max_length,
        max_new_tokens=budget.max_new_tokens, gather=gather_in_order)
    if data.term_vocabulary is not None:  # terminology recall and invented terms, per item and overall
        metrics.update(terminology.add_terminology(predictions, data.test, data.term_vocabulary))
    return metrics, predictions, examples


def run_method(method: Method, *, spec, data: PreparedData, checkpoint_root: Path, progress: bool = True,
               measure_energy: bool = True, use_cache: bool = True) -> MethodRun:
    """Fresh model -> wrap -> train (``data.steps`` steps) -> evaluate -> checkpoint -> one row.
    ``spec``: the :class:`~tutorlib.experiments.spec.ComparisonSpec` (task, model, budget, seed, prefix length,
    learning rates, device); the method's own per-parameter rates come from its record.
    ``use_cache``: a method that trains nothing (zero-shot) reuses the row an earlier comparison stored
    for the same model, test rows and generation settings (:mod:`tutorlib.experiments.zero_shot_cache`),
    and stores its own otherwise; False makes it again. One process only (several: always made).

    Raises:
        DoesNotFitError: one training step cannot fit in the device's free memory (checked first)."""
    if not use_cache or method.trains or process_count() > 1:
        return _run_method(method, spec=spec, data=data, checkpoint_root=checkpoint_root, progress=progress,
                           measure_energy=measure_energy)
    key, facts = zero_shot_cache.key_of(task=spec.task.name, method=method.name, model_name=spec.model,
                                        dataset_name=data.dataset_name, test_rows=data.test,
                                        max_length=spec.budget.max_length, max_new_tokens=spec.budget.max_new_tokens,
                                        seed=spec.seed, device=resolve_device(spec.device))
    with zero_shot_cache.locked(key) as path:
        stored = zero_shot_cache.load(key)
        if stored is not None:
            if progress:
                print(f"{method.name}: reused from the cache ({path}): an earlier comparison made it with the same "
                      f"model, test rows and generation settings (--no-cache makes it again)")
            return MethodRun(method.name, {**stored["row"], "from_cache": True}, None, stored["predictions"],
                             stored["examples"])
        run = _run_method(method, spec=spec, data=data, checkpoint_root=checkpoint_root, progress=progress,
                          measure_energy=measure_energy)
        zero_shot_cache.save(key, facts, run.row, run.predictions, run.examples)
        return run


def _run_method(method: Method, *, spec, data: PreparedData, checkpoint_root: Path, progress: bool,
                measure_energy: bool) -> MethodRun:
    """:func:`run_method` without the cache."""
    task, budget, name = spec.task, spec.budget, method.name
    lr = spec.learning_rates.get(name)
    lr_by_name = method.parameter_learning_rates.get(task.name)
    # a fresh copy of the weights per method; the tokenizer read once for the data serves every method
    model, tokenizer = load_model(spec.model, head=task.head, seed=spec.seed, tokenizer=data.tokenizer)
    setup = MethodSetup(model_name=spec.model, seed=spec.seed, prefix_length=spec.prefix_length,
                        prefix_init_text=spec.prefix_init_text, tokenizer=tokenizer)
    where = resolve_device(spec.device)
    if method.trains:  # before wrapping: a prefix that does not fit is refused, not allocated
        check_step_fits(model, batch_size=budget.batch_size, seq_len=budget.max_length,
                        prefix_length=spec.prefix_length if method.adds_prefix else 0, device=where)
    tuned = method.wrap(model, setup)
    history = None
    if method.trains:
        # collect_garbage: the memory columns are compared side by side, so each run's baseline holds live
        # objects only (the one full collection of this method, before its timed steps).
        config = TrainConfig(steps=data.steps, lr=lr, lr_by_name=lr_by_name, seed=spec.seed,
                             measure_energy=measure_energy, device=spec.device, collect_garbage=True)
        history = train(tuned, data.batches, config, progress=progress)
        if history.interrupted:  # stopping: no evaluation of a half-trained model
            return MethodRun(name, {"method": name, "interrupted": True, "steps_done": len(history.loss)},
                             history, [], [])
    else:
        tuned.to(where)  # a method that does not train is scored where the others are
    budget = replace(budget, eval_batch_size=scoring_batch_size(task, tuned, budget))
    started = time.perf_counter()
    quality, predictions, examples = evaluate(task, tuned, tokenizer, data, budget)
    eval_seconds = time.perf_counter() - started
    if history is None:
        cost = {f.name: None for f in fields(RunCost)}
        cost.update(steps=0, trainable_params=0, total_params=count_parameters(tuned).total, checkpoint_bytes=0)
        stored = 0
    else:
        paths = tuned.save_checkpoint(Path(checkpoint_root) / name)
        cost = run_cost(history, tuned, paths, name=name).to_dict()
        stored = parameter_summary(tuned).stored
    cost.pop("name")
    losses = history.loss if history is not None else []
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    energy = history.energy if history is not None else None
    row = {"method": name, "lr": lr, "lr_by_name": lr_by_name, "interrupted": False, **quality,
           "final_loss": float(np.mean(tail)) if tail else None, "eval_seconds": eval_seconds,
           "eval_batch_size": budget.eval_batch_size, "from_cache": False, **cost,
           # CPU-seconds of this process per step (all threads): far less sensitive than wall time to
           # other programs sharing the cores; None without an energy meter (it records them).
           "cpu_seconds_per_step": energy.cpu_seconds / len(losses) if energy and losses else None,
           "stored_params": stored,
           "trainable_fraction": cost["trainable_params"] / cost["total_params"] if cost["total_params"] else 0.0}
    del tuned, model  # the next method's training collects what is left before it measures memory
    return MethodRun(name, row, history, predictions, examples)


# ----------------------------------------------------------------------------- references and paired tests


def reference_rows(task: str | Task, data: PreparedData) -> list[dict]:
    """Rows no method has to train for, to read the methods against (lead sentence, majority class); on
    data with domain terms, also the terminology of the lead sentence and of the authors' own title."""
    rows = get_task(task).reference_rows(data.test_as_published)
    if data.term_vocabulary is not None:
        terms = terminology.reference_terminology(data.test, data.term_vocabulary)
        rows = [{**row, **terms.get(row["method"], {})} for row in rows]
        rows.append({"method": "reference title", **terms["reference title"]})
    return rows


def build_paired_tests(task: str | Task, runs: list[MethodRun]) -> list[dict]:
    """Every pair of finished methods, scored item by item on the same test rows (the task's paired test)."""
    task = get_task(task)
    done = [r for r in runs if r.predictions]
    tests = []
    for a, b in itertools.combinations(done, 2):
        tests.append({"a": a.method, "b": b.method, **task.paired_test(a.predictions, b.predictions)})
        ta, tb = terminology.paired_recalls(a.predictions, b.predictions)  # (N,) items with domain terms
        if len(ta):
            tests.append({"a": a.method, "b": b.method, "test": "paired sign-flip on terminology recall",
                          "p_value": paired_sign_flip_p(ta, tb), "mean_difference": float(np.mean(ta - tb)),
                          "measure": "terminology recall", "items": len(ta)})
    return tests
