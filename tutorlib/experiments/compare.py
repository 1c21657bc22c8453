"""Full fine-tuning vs prefix tuning on one task, under one budget: the kit's main measurement.

    >>> from tutorlib.experiments.compare import compare
    >>> result = compare("sentiment", fast=True)      # doctest: +SKIP  (minilm-l6, a few minutes on a CPU)
    >>> print(result.table())                         # doctest: +SKIP  quality and cost, one row per method
    >>> result.rows[0]["ambiguous_accuracy"]          # doctest: +SKIP
    >>> result.save("runs/sentiment")                 # doctest: +SKIP  results.json + PNG plots

Fair by construction: every method gets a *fresh* copy of the same pretrained model, the same
batches in the same order, the same number of steps and the same seed. Only what trains differs,
and its learning rate (:data:`LEARNING_RATES`, each method's documented default).

Methods: ``full`` (every weight), ``prefix`` (the prefix is the parameter), ``prefix-mlp`` (the
paper's MLP reparameterisation; stored as a plain prefix afterwards), ``zero-shot`` (summarise
only: the pretrained model as it is, no training; a sentiment classifier's head is new, so it
has no zero-shot answer).

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

TASK_ALIASES = {"summarize": "summarise", "summarisation": "summarise", "summarization": "summarise"}


@dataclass(frozen=True)
class TaskDefaults:
    """The offline model and data a task uses unless told otherwise, and the methods it allows."""

    model: str
    dataset: str
    methods: tuple[str, ...]
    columns: tuple[str, ...]  # what a dataset must have for this task


TASKS = {
    "sentiment": TaskDefaults("minilm-l6", "movie-snippets", ("full", "prefix", "prefix-mlp"), ("text", "label")),
    "summarise": TaskDefaults("smollm2-135m", "nyt-leads", ("zero-shot", "full", "prefix", "prefix-mlp"),
                              ("document", "summary")),
}

METHODS = {
    "full": "full fine-tuning: every weight trains",
    "prefix": "prefix tuning: P trainable key/value vectors per layer, the model frozen",
    "prefix-mlp": "prefix tuning through the paper's MLP (more parameters while training, a plain prefix stored)",
    "zero-shot": "no training: the pretrained model as it is (summarise only)",
}

# Peak learning rates (AdamW, 10% warm-up, linear decay). Full fine-tuning moves pretrained weights:
# small steps. A prefix has no pretrained knowledge of its own to preserve: ~200x larger steps. Checked:
# MiniLM prefix 1e-2 trains (STACK.md); SmolLM2 on nyt-leads, 15 steps of 4 x 128 tokens, held-out loss
# (3.83 at the start): prefix 3e-3 -> 3.70, 1e-2 -> 3.56; full 5e-5 -> 3.49. prefix-mlp's rate is its MLP's:
# the MLP's output moves by about (hidden width) x lr per step, so it needs ~100x less than a plain prefix
# (bench/paper.py, MiniLM: MLP 1e-4 with the head at 1e-2 -> 0.69-0.72 accuracy; one shared rate 0.53-0.57).
# Not tuned on SmolLM2.
LEARNING_RATES = {
    ("sentiment", "full"): 5e-5, ("sentiment", "prefix"): 1e-2, ("sentiment", "prefix-mlp"): 1e-4,
    ("summarise", "full"): 5e-5, ("summarise", "prefix"): 1e-2, ("summarise", "prefix-mlp"): 1e-4,
}
# A new classifier head trained next to prefix-mlp's MLP keeps the plain prefix's rate (see above).
HEAD_LEARNING_RATE = 1e-2


# How each task's prefix starts. Measured on SmolLM2 (nyt-leads, held-out loss of 16 articles): without a
# prefix 3.85; with a random prefix as large as the model's own keys/values 11.1 (no better than guessing
# among 49k tokens), and 15 steps at lr 1e-2 only bring it to 7.8; with the model's own keys/values of
# an instruction sentence (init="words") 3.83, a sane start. MiniLM trains well from a random start (STACK.md), so
# sentiment keeps it (None = random). The text names no domain, so the news and the scientific
# dataset start from the same place (its first 10 tokens: "Summarise the following text in one short sentence").
PREFIX_INIT_TEXT = {"sentiment": None,
                    "summarise": "Summarise the following text in one short sentence."}


@dataclass(frozen=True)
class Budget:
    """How much data and compute each method gets: the same for every method of one comparison.

    ``train_examples``/``test_items``: None = the whole split (else its first N rows; the splits are
    already shuffled). ``steps``: None = one pass over the training batches. ``max_new_tokens``:
    the summary length limit when generating (summarise only).
    """

    train_examples: int | None
    steps: int | None
    batch_size: int
    max_length: int
    test_items: int | None
    eval_batch_size: int
    max_new_tokens: int = 0


BUDGETS = {
    # Fast (the README's main job, CI): a few minutes for both methods on a 2-core CPU.
    ("sentiment", True): Budget(512, 32, 16, 64, 300, 64),
    ("summarise", True): Budget(32, 8, 4, 128, 10, 8, max_new_tokens=24),
    # Full: sentiment one epoch of the whole train split (266 steps of 32); summarisation 75 steps of
    # 4 examples (one epoch of aclsum, 3/4 of nyt-leads) at 256 tokens, every test document.
    ("sentiment", False): Budget(None, None, 32, 64, None, 64),
    ("summarise", False): Budget(None, 75, 4, 256, None, 8, max_new_tokens=48),
    # Workshop (TUTORLIB_MODE=workshop): minutes, and the same sign and rough size as full mode (docs/teaching.md).
    ("sentiment", "workshop"): Budget(None, 96, 32, 64, None, 64),
    ("summarise", "workshop"): Budget(None, 25, 4, 192, 20, 8, max_new_tokens=32),
}


def compare(task: str, *, model: str | None = None, dataset: str | None = None,
            methods: Sequence[str] | str = ("full", "prefix"), steps: int | None = None, prefix_length: int = 10,
            seed: int = 0, fast: bool | None = None, out_dir=None, progress: bool = True, tiny_data=None,
            learning_rates: dict[str, float] | None = None, measure_energy: bool = True,
            budget: dict | None = None) -> ComparisonResult:
    """Train and evaluate each method on ``task`` under one budget; return the :class:`ComparisonResult`.

    Args:
        task: "sentiment" or "summarise".
        model: a model name (default: minilm-l6 for sentiment, smollm2-135m for summarise).
        dataset: a dataset name (default: movie-snippets / nyt-leads); ``aclsum`` gets its aspect
            written into each document ("Aspect: approach. ..."), or the task would be ill-posed.
        methods: names from :data:`METHODS`, as a sequence or a comma-separated string.
        steps: training steps per method (default: the budget's; see :data:`BUDGETS`).
        prefix_length: P, virtual tokens per layer for the prefix methods.
        seed: seeds the model's new weights, the prefix start, the batch order and dropout.
        fast: True the small budget, False the full one; None (default) follows ``tutorlib.mode()``
            (``TUTORLIB_MODE=fast|workshop|full``, or ``TUTORLIB_FAST=1``).
        out_dir: a folder for results.json, predictions.json, table.txt, the PNG plots and the
            checkpoints (``<method>/``); None writes nothing (``result.save(folder)`` later).
        progress: progress bars and one line per stage.
        tiny_data: a ``DatasetDict`` (train/validation/test) used instead of loading ``dataset``;
            for tests and lessons with hand-made data.
        learning_rates: per-method overrides of :data:`LEARNING_RATES`, e.g. ``{"prefix": 3e-3}``.
        measure_energy: estimate each run's energy (codecarbon, else CPU-time; the method is recorded).
        budget: overrides of the mode's :class:`Budget`, e.g. ``{"test_items": 4, "max_new_tokens": 16}``
            for a lesson that must finish in seconds (whole numbers >= 1; None for "all" where allowed).

    Raises:
        ValueError: an unknown task, method, model or dataset (the message lists the valid ones),
            ``steps`` < 1, a method that does not fit the task, a dataset without the task's columns.
        OSError: ``out_dir`` cannot be written (checked before anything trains).
    """
    from tutorlib.experiments.runs import build_paired_tests, prepare_data, reference_rows, run_method

    started, load_at_start = time.perf_counter(), environment().get("load_average_1_5_15_min")
    task = check_task(task)
    methods = check_methods(task, methods)
    size = "workshop" if fast is None and mode() == "workshop" else None
    fast = fast_mode() if fast is None else bool(fast)
    overrides = check_budget(task, budget)
    budget = replace(BUDGETS[(task, size or fast)], **overrides)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1 (got {steps!r}): with no training step there "
                             f"is nothing to compare. Leave it out for the budget's default.")
        budget = replace(budget, steps=steps)
    if isinstance(prefix_length, bool) or not isinstance(prefix_length, int) or prefix_length < 1:
        raise ValueError(f"prefix_length must be a whole number >= 1 (got {prefix_length!r}); the paper used 10-200.")
    lrs = check_learning_rates(task, methods, learning_rates)
    model = model or TASKS[task].model
    dataset_name = dataset or ("tiny-data" if tiny_data is not None else TASKS[task].dataset)
    check_model_fits(task, model)

    say = print if progress else (lambda *a, **k: None)
    with OutputFolder(out_dir) as folder:  # checks out_dir now; removes the staging folder on any error
        data = prepare_data(task, model, dataset_name, tiny_data, budget, seed, required=TASKS[task].columns)
        budget = replace(budget, steps=data.steps)
        say(f"compare: {task} | {model} on {dataset_name} | {size or ('fast' if fast else 'full')} mode | "
            f"{budget.steps} steps of {budget.batch_size} | methods {', '.join(methods)} | seed {seed}")
        runs = []
        for method in methods:
            say(f"\n== {method} ({METHODS[method]})" + (f"; lr {lrs[method]:g}" if method in lrs else ""))
            run = run_method(method, task=task, model_name=model, data=data, budget=budget, lr=lrs.get(method),
                             prefix_length=prefix_length, prefix_init_text=PREFIX_INIT_TEXT[task], seed=seed,
                             lr_by_name={"model.head.": HEAD_LEARNING_RATE}
                             if method == "prefix-mlp" and task == "sentiment" else None,
                             checkpoint_root=folder.checkpoints,
                             progress=progress, measure_energy=measure_energy)
            runs.append(run)
            if run.history is not None and run.history.interrupted:
                say(f"\ncompare: {method} was interrupted; the remaining methods are skipped and no output "
                    f"folder is written (result.interrupted is True).")
                break
        result = ComparisonResult(
            task=task, model=model, dataset=dataset_name, fast=fast, seed=seed, prefix_length=prefix_length,
            budget=asdict(budget), data_summary=data.summary, rows=[r.row for r in runs],
            histories={r.method: r.history for r in runs if r.history is not None},
            predictions={r.method: r.predictions for r in runs}, examples={r.method: r.examples for r in runs},
            references=reference_rows(task, data), paired_tests=build_paired_tests(task, runs),
            learning_rates={m: lrs[m] for m in methods if m in lrs}, prefix_init_text=PREFIX_INIT_TEXT[task],
            interrupted=any(r.history is not None and r.history.interrupted for r in runs),
            environment={**environment(), "load_average_at_start": load_at_start},
            wall_seconds=time.perf_counter() - started)
        if folder.path is not None and not result.interrupted:
            result.save(folder.staging)
            folder.commit()
            say(f"\ncompare: wrote {folder.path} ({', '.join(sorted(p.name for p in folder.path.iterdir()))})")
    return result


# ----------------------------------------------------------------------------- checking what was asked


def check_task(task: str) -> str:
    """The canonical task name, or a ValueError listing the tasks."""
    name = TASK_ALIASES.get(str(task).lower(), str(task).lower())
    if name not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of: {', '.join(TASKS)}.")
    return name


def check_methods(task: str, methods: Sequence[str] | str) -> list[str]:
    """Method names as a list (a comma-separated string works too); errors for unknown or unfit ones."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    names = [m for m in names if m]
    if not names:
        raise ValueError(f"No method given; choose from: {', '.join(TASKS[task].methods)}.")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown method {unknown[0]!r}; choose from: "
                         + "; ".join(f"{k} ({v})" for k, v in METHODS.items() if k in TASKS[task].methods) + ".")
    unfit = [m for m in names if m not in TASKS[task].methods]
    if unfit:
        raise ValueError(f"Method {unfit[0]!r} does not fit the {task} task: a sentiment classifier's head is new "
                         f"(random), so the untrained model has no answer to score. Methods for {task}: "
                         f"{', '.join(TASKS[task].methods)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"A method is listed twice in {names}; list each once.")
    return names


def check_budget(task: str, overrides: dict | None) -> dict:
    """Budget overrides, checked: known fields, whole numbers >= 1 (None = all, for data sizes and steps)."""
    overrides = dict(overrides or {})
    known = set(Budget.__dataclass_fields__)
    for name, value in overrides.items():
        if name not in known:
            raise ValueError(f"Unknown budget field {name!r}; the fields are: {', '.join(sorted(known))}.")
        may_be_all = name in ("train_examples", "test_items", "steps")
        if value is None and may_be_all:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"budget[{name!r}] must be a whole number >= 1{' or None (all)' if may_be_all else ''}; "
                             f"got {value!r}.")
    if task == "sentiment" and "max_new_tokens" in overrides:
        raise ValueError("max_new_tokens is a summarisation setting (summary length); sentiment does not generate.")
    return overrides


def check_learning_rates(task: str, methods: list[str], overrides: dict[str, float] | None) -> dict[str, float]:
    """The learning rate of every trained method: the documented default unless overridden."""
    overrides = dict(overrides or {})
    for name, lr in overrides.items():
        if name not in METHODS or name == "zero-shot":
            raise ValueError(f"learning_rates has {name!r}; give rates for: full, prefix, prefix-mlp.")
        if not isinstance(lr, (int, float)) or lr <= 0:
            raise ValueError(f"The learning rate of {name!r} must be a number > 0 (got {lr!r}).")
    return {m: float(overrides.get(m, LEARNING_RATES[(task, m)])) for m in methods if m != "zero-shot"}


def check_model_fits(task: str, model: str) -> None:
    """A known BERT encoder cannot summarise (it cannot generate): say so before anything loads."""
    from tutorlib.loading.models import KNOWN_MODELS

    info = KNOWN_MODELS.get(model)
    if task == "summarise" and info is not None and info.architecture == "bert":
        causal = [m.name for m in KNOWN_MODELS.values() if m.architecture != "bert"]
        raise ValueError(f"{model!r} is a BERT encoder and cannot generate summaries; for summarise use a causal "
                         f"LM: {', '.join(causal)}.")
