"""Full fine-tuning vs prefix tuning on one task, under one budget: the kit's main measurement.

    >>> from tutorlib.experiments.compare import compare
    >>> result = compare("sentiment", fast=True)      # doctest: +SKIP  (minilm-l6, a few minutes on a CPU)
    >>> print(result.table())                         # doctest: +SKIP  quality and cost, one row per method
    >>> result.rows[0]["ambiguous_accuracy"]          # doctest: +SKIP
    >>> result.save("runs/sentiment")                 # doctest: +SKIP  results.json + PNG plots

Fair by construction: every method gets a *fresh* copy of the same pretrained model, the same
batches in the same order, the same number of steps and the same seed. Only what trains differs,
and its learning rate (:data:`LEARNING_RATES`, each method's documented default).

Methods and tasks come from their registries (:mod:`tutorlib.methods.registry`,
:mod:`tutorlib.tasks.registry`): each method says which tasks it fits and its default learning rate,
each task its data columns, model head, batches, scores and reference rows. This module only
orchestrates them.

The output folder (``out_dir``) is checked before anything runs, written in a hidden sibling
folder, and renamed into place only when every method has finished: a crash or Ctrl-C leaves
nothing half-written. Ctrl-C during training stops that method after its current step; the
comparison then stops too, returns what finished (``result.interrupted`` is True) and writes no
folder, because a half-trained method would not be under the same budget (``result.save(folder)``
keeps it anyway if you want it). Only a hard kill (``kill -9``, power loss) can leave a hidden
``.NAME.partial-*`` folder beside ``out_dir``; nothing reads it, delete it. Checkpoints go to ``out_dir/<method>/``; without ``out_dir``
they are written to a temporary folder, measured and deleted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from tutorlib import fast_mode, mode
from tutorlib.experiments.results import ComparisonResult, OutputFolder, environment
from tutorlib.methods.registry import all_methods, describe_methods, get_method, method_names
from tutorlib.tasks.registry import Task, all_tasks, get_task


def _default_learning_rates() -> dict[tuple[str, str], float]:
    """(task, method) -> the method's documented default rate on that task, for every trained method."""
    return {(task.name, method.name): method.learning_rate_for(task.name)
            for task in all_tasks() for method in all_methods() if method.trains and method.fits(task.head)}


LEARNING_RATES = _default_learning_rates()
"""Peak learning rates (AdamW, 10% warm-up, linear decay) by (task, method); each method's module says
why its rate (e.g. :data:`tutorlib.methods.prefix.model.PREFIX`)."""


# How each task's prefix starts. Measured on SmolLM2 (nyt-leads, held-out loss of 16 articles): without a
# prefix 3.85; with a random prefix as large as the model's own keys/values 11.1 (no better than guessing
# among 49k tokens), and 15 steps at lr 1e-2 only bring it to 7.8; with the model's own keys/values of
# an instruction sentence (init="words") 3.83, a sane start. MiniLM trains well from a random start (the
# README's sentiment table), so sentiment keeps it (None = random). The text names no domain, so the news
# and the scientific dataset start from the same place (its first 10 tokens: "Summarise the following
# text in one short sentence").
PREFIX_INIT_TEXT = {"sentiment": None,
                    "summarise": "Summarise the following text in one short sentence."}


@dataclass(frozen=True)
class RunBudget:
    """How much data and compute each method gets: the same for every method of one comparison.

    ``train_examples``/``test_items``: None = the whole split (else its first N rows; the splits are
    already shuffled). ``steps``: None = one pass over the training batches. ``max_new_tokens``:
    the length limit of generated text (tasks that generate). ``eval_batch_size``: None = chosen from
    the model and the free memory (:mod:`tutorlib.tasks.generation_batch`; each row records the one used).
    """

    train_examples: int | None
    steps: int | None
    batch_size: int
    max_length: int
    test_items: int | None
    eval_batch_size: int | None
    max_new_tokens: int = 0


BUDGETS = {
    # Fast (the README's main job, CI): a few minutes for both methods on a 2-core CPU.
    ("sentiment", True): RunBudget(512, 32, 16, 64, 300, 64),
    ("summarise", True): RunBudget(32, 8, 4, 128, 10, None, max_new_tokens=24),
    # Full: sentiment one epoch of the whole train split (266 steps of 32); summarisation 75 steps of
    # 4 examples (one epoch of aclsum, 3/4 of nyt-leads) at 256 tokens, every test document.
    ("sentiment", False): RunBudget(None, None, 32, 64, None, 64),
    ("summarise", False): RunBudget(None, 75, 4, 256, None, None, max_new_tokens=48),
    # Workshop (TUTORLIB_MODE=workshop): minutes, and the same sign and rough size as full mode (docs/teaching.md).
    ("sentiment", "workshop"): RunBudget(None, 96, 32, 64, None, 64),
    ("summarise", "workshop"): RunBudget(None, 25, 4, 192, 20, None, max_new_tokens=32),
}


def compare(task: str, *, model: str | None = None, dataset: str | None = None,
            methods: Sequence[str] | str = ("full", "prefix"), steps: int | None = None, prefix_length: int = 10,
            seed: int = 0, fast: bool | None = None, out_dir=None, progress: bool = True, tiny_data=None,
            learning_rates: dict[str, float] | None = None, measure_energy: bool = True,
            budget: dict | None = None, split_seed: int = 0, device: str = "auto",
            overwrite: bool = False, use_cache: bool = True) -> ComparisonResult:
    """Train and evaluate each method on ``task`` under one budget; return the :class:`ComparisonResult`.

    Args:
        task: a registered task: "sentiment" or "summarise".
        model: a model name (default: the task's, minilm-l6 for sentiment, smollm2-135m for summarise).
        dataset: a dataset name (default: the task's, movie-snippets / nyt-leads); ``aclsum`` gets its
            aspect written into each document ("Aspect: approach. ..."), or the task would be ill-posed.
        methods: registered method names (``full``, ``prefix``, ...), as a sequence or a comma-separated string.
        steps: training steps per method (default: the budget's; see :data:`BUDGETS`).
        prefix_length: P, virtual tokens per layer for the prefix methods.
        seed: the training seed: the model's new weights, the prefix start, the batch order and dropout.
        split_seed: which rows of a dataset without published splits go to train/validation/test
            (kept apart from ``seed``, so that runs at several seeds differ by training noise alone).
        fast: True the small budget, False the full one; None (default) follows ``tutorlib.mode()``
            (``TUTORLIB_MODE=fast|workshop|full``, or ``TUTORLIB_FAST=1``).
        out_dir: a folder for results.json, predictions.json, table.txt, the PNG plots and the
            checkpoints (``<method>/``); None writes nothing (``result.save(folder)`` later).
        overwrite: replace an earlier comparison in ``out_dir`` (without it, such a folder is refused).
        progress: progress bars and one line per stage.
        tiny_data: a ``DatasetDict`` (train/validation/test) used instead of loading ``dataset``;
            for tests and lessons with hand-made data.
        learning_rates: per-method overrides of :data:`LEARNING_RATES`, e.g. ``{"prefix": 3e-3}``.
        measure_energy: estimate each run's energy (codecarbon, else CPU-time; the method is recorded).
        device: where every method trains and is scored: "auto" (``TUTORLIB_DEVICE``, else a GPU if there
            is one, else the CPU), "cpu", "cuda", "cuda:1", ...
        budget: overrides of the mode's :class:`RunBudget`, e.g. ``{"test_items": 4, "max_new_tokens": 16}``
            for a lesson that must finish in seconds (whole numbers >= 1; None for "all" where allowed).
        use_cache: reuse the zero-shot row an earlier comparison stored for the same model, test rows and
            generation settings (:mod:`tutorlib.experiments.zero_shot_cache`); False makes it again.

    Raises:
        ValueError: an unknown task, method, model or dataset (the message lists the valid ones),
            ``steps`` < 1, a method that does not fit the task, a dataset without the task's columns.
        OSError: ``out_dir`` cannot be written, or holds an earlier comparison and ``overwrite`` is False
            (both checked before anything trains).
        DoesNotFitError: a training step cannot fit in memory (a ValueError; checked before it trains).
    """
    from tutorlib.training.distributed import is_main_process
    from tutorlib.experiments.runs import build_paired_tests, prepare_data, reference_rows, run_method
    from tutorlib.loading.data import shares_text

    started, load_at_start = time.perf_counter(), environment().get("load_average_1_5_15_min")
    task = check_task(task)
    methods = check_methods(task, methods)
    size = "workshop" if fast is None and mode() == "workshop" else None
    fast = fast_mode() if fast is None else bool(fast)
    run_mode = size or ("fast" if fast else "full")  # in words, for the log line and the saved result
    overrides = check_budget(task, budget)
    budget = replace(BUDGETS[(task.name, size or fast)], **overrides)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1 (got {steps!r}): with no training step there "
                             f"is nothing to compare. Leave it out for the budget's default.")
        budget = replace(budget, steps=steps)
    if isinstance(prefix_length, bool) or not isinstance(prefix_length, int) or prefix_length < 1:
        raise ValueError(f"prefix_length must be a whole number >= 1 (got {prefix_length!r}); the paper used 10-200.")
    lrs = check_learning_rates(task, methods, learning_rates)
    model = model or task.default_model
    dataset_name = dataset or ("tiny-data" if tiny_data is not None else task.default_dataset)
    check_model_fits(task, model)

    say = print if progress and is_main_process() else (lambda *a, **k: None)
    # Checks out_dir now; removes the staging folder on any error. Only the main process writes a folder.
    with OutputFolder(out_dir if is_main_process() else None, overwrite=overwrite) as folder:
        data = prepare_data(task, model, dataset_name, tiny_data, budget, seed, split_seed=split_seed)
        budget = replace(budget, steps=data.steps)
        say(f"compare: {task.name} | {model} on {dataset_name} | {run_mode} mode | "
            f"{budget.steps} steps of {budget.batch_size} | methods {', '.join(methods)} | seed {seed}"
            + (f" (split seed {split_seed})" if split_seed != 0 else ""))
        runs = []
        for method in methods:
            say(f"\n== {method} ({get_method(method).description})"
                + (f"; lr {lrs[method]:g}" if method in lrs else ""))
            run = run_method(method, task=task, model_name=model, data=data, budget=budget, lr=lrs.get(method),
                             prefix_length=prefix_length, prefix_init_text=PREFIX_INIT_TEXT.get(task.name), seed=seed,
                             lr_by_name=get_method(method).parameter_learning_rates.get(task.name),
                             checkpoint_root=folder.checkpoints, device=device,
                             progress=progress, measure_energy=measure_energy, use_cache=use_cache)
            runs.append(run)
            if run.history is not None and run.history.interrupted:
                say(f"\ncompare: {method} was interrupted; the remaining methods are skipped and no output "
                    f"folder is written (result.interrupted is True).")
                break
        result = ComparisonResult(
            task=task.name, model=model, dataset=dataset_name, fast=fast, mode=run_mode,
            seed=seed, prefix_length=prefix_length,
            budget=asdict(budget), data_summary=data.summary, rows=[r.row for r in runs],
            histories={r.method: r.history for r in runs if r.history is not None},
            predictions={r.method: r.predictions for r in runs}, examples={r.method: r.examples for r in runs},
            references=reference_rows(task, data), paired_tests=build_paired_tests(task, runs),
            learning_rates={m: lrs[m] for m in methods if m in lrs}, prefix_init_text=PREFIX_INIT_TEXT.get(task.name),
            share_text=tiny_data is not None or shares_text(dataset_name),
            interrupted=any(r.history is not None and r.history.interrupted for r in runs),
            environment={**environment(), "load_average_at_start": load_at_start},
            wall_seconds=time.perf_counter() - started)
        if folder.path is not None and not result.interrupted:
            result.save(folder.staging)
            folder.commit()
            say(f"\ncompare: wrote {folder.path} ({', '.join(sorted(p.name for p in folder.path.iterdir()))})")
    return result


# ----------------------------------------------------------------------------- checking what was asked


def check_task(task: str | Task) -> Task:
    """The registered :class:`Task` (aliases such as "summarize" accepted), or a ValueError listing the tasks."""
    return get_task(task)


def check_methods(task: Task, methods: Sequence[str] | str) -> list[str]:
    """Method names as a list (a comma-separated string works too); errors for unknown or unfit ones."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    names = [m for m in names if m]
    if not names:
        raise ValueError(f"No method given; choose from: {describe_methods(task.head)}.")
    unknown = [m for m in names if m not in method_names()]
    if unknown:
        raise ValueError(f"Unknown method {unknown[0]!r}; for {task.name} choose from: {describe_methods(task.head)}.")
    unfit = [get_method(m) for m in names if not get_method(m).fits(task.head)]
    if unfit:
        raise ValueError(f"Method {unfit[0].name!r} does not fit the {task.name} task ({unfit[0].description}): it "
                         f"works with {' or '.join(unfit[0].heads)} models, and {task.name} needs a {task.head} "
                         f"model. Methods for {task.name}: {', '.join(m.name for m in all_methods() if m.fits(task.head))}.")
    if len(set(names)) != len(names):
        raise ValueError(f"A method is listed twice in {names}; list each once.")
    return names


def check_budget(task: Task, overrides: dict | None) -> dict:
    """Budget overrides, checked: known fields, whole numbers >= 1 (None = all, for data sizes and steps)."""
    overrides = dict(overrides or {})
    known = set(RunBudget.__dataclass_fields__)
    for name, value in overrides.items():
        if name not in known:
            raise ValueError(f"Unknown budget field {name!r}; the fields are: {', '.join(sorted(known))}.")
        may_be_all = name in ("train_examples", "test_items", "steps")
        if value is None and may_be_all:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"budget[{name!r}] must be a whole number >= 1{' or None (all)' if may_be_all else ''}; "
                             f"got {value!r}.")
    if not task.generates and "max_new_tokens" in overrides:
        raise ValueError(f"max_new_tokens limits generated text (a summary's length); the {task.name} task does "
                         f"not generate.")
    return overrides


def check_learning_rates(task: Task, methods: list[str], overrides: dict[str, float] | None) -> dict[str, float]:
    """The learning rate of every trained method: the documented default unless overridden."""
    overrides = dict(overrides or {})
    trained = [m.name for m in all_methods() if m.trains]
    for name, lr in overrides.items():
        if name not in trained:
            raise ValueError(f"learning_rates has {name!r}; give rates for: {', '.join(trained)}.")
        if not isinstance(lr, (int, float)) or lr <= 0:
            raise ValueError(f"The learning rate of {name!r} must be a number > 0 (got {lr!r}).")
    return {m: float(overrides.get(m, get_method(m).learning_rate_for(task.name)))
            for m in methods if get_method(m).trains}


def check_model_fits(task: Task, model: str) -> None:
    """A known encoder (BERT) cannot generate: say so before anything loads when the task needs a causal LM."""
    from tutorlib.loading.architectures import is_encoder
    from tutorlib.loading.models import KNOWN_MODELS

    info = KNOWN_MODELS.get(model)
    if task.head == "causal-lm" and info is not None and is_encoder(info.architecture):
        causal = [m.name for m in KNOWN_MODELS.values() if not is_encoder(m.architecture)]
        raise ValueError(f"{model!r} is an encoder ({info.architecture}) and cannot generate text, which the "
                         f"{task.name} task needs; use a causal LM: {', '.join(causal)}.")
