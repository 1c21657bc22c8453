"""The tasks the kit can compare methods on, by name: data columns, model head, batches, scores.

    >>> from tutorlib.tasks.registry import get_task
    >>> task = get_task("summarize")              # aliases are accepted
    >>> task.name, task.head, task.columns
    ('summarise', 'causal-lm', ('document', 'summary'))

Each task registers its :class:`Task` record at the end of its own module (``sentiment.py``,
``summarise.py``); :data:`TASK_MODULES` lists them. The comparison (:mod:`tutorlib.experiments`)
only ever calls a task through this record, never by testing its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

TASK_MODULES = ("tutorlib.tasks.sentiment", "tutorlib.tasks.summarise")
"""The modules that register a task."""


@dataclass(frozen=True)
class Column:
    """One column of a task's quality table: ``header`` over the row value ``key``.

    ``kind``: "number" (3 decimals), "interval" (the value and its 95% interval, read from
    ``key + "_ci95"``) or "count" (a whole number). A column that no method has a value for is left out
    (e.g. the rater columns on data without raters).
    """

    header: str
    key: str
    kind: str = "number"


@dataclass(frozen=True)
class Task:
    """One task: everything a comparison needs to know to train, score and report methods on it.

    Args:
        name: what a learner types (``--task sentiment``); ``aliases``: other spellings accepted.
        description: one line.
        head: the model head it needs: "classification" or "causal-lm" (see ``load_model(task=...)``).
        columns: what a dataset must have for this task.
        default_model, default_dataset: the offline model and data used unless told otherwise.
        generates: True when scoring generates text (then a budget has ``max_new_tokens``).
        make_batches: (rows, tokenizer, batch_size=, max_length=, shuffle=, seed=) -> training batches.
        prepare_rows: rows -> rows as the model should read them (e.g. aclsum's aspect written in).
        scoring_split: splits -> (the rows to score on, a note or None).
        describe_test: test rows -> extra counts for the report (e.g. clear/ambiguous items).
        evaluate: (model, tokenizer, test rows, batch_size=, max_length=, max_new_tokens=, gather=) ->
            (metrics dict, per-item predictions, a few examples); ``gather(predict, rows) -> list`` runs the
            per-row prediction (None: all rows here; several processes: each its share, then gathered).
        reference_rows: test rows as published -> rows no method trains for (majority class, ...).
        paired_test: (predictions of A, predictions of B) -> {test, p_value, ...} on the same items.
        main_metric: (row key, label) of the headline number; its uncertainty is read from
            ``key + "_ci95"`` (an interval) or ``key + "_se"`` (a standard error) when the row has one.
        quality_columns: the quality table (:class:`Column`).
    """

    name: str
    description: str
    head: str
    columns: tuple[str, ...]
    default_model: str
    default_dataset: str
    make_batches: Callable
    evaluate: Callable
    reference_rows: Callable
    paired_test: Callable
    main_metric: tuple[str, str]
    quality_columns: tuple[Column, ...]
    generates: bool = False
    aliases: tuple[str, ...] = ()
    prepare_rows: Callable = field(default=lambda rows: rows)
    scoring_split: Callable = field(default=lambda splits: (splits["test"], None))
    describe_test: Callable = field(default=lambda rows: {})


_TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add ``task`` to the registry (its module calls this once, when imported); returns it."""
    if _TASKS.setdefault(task.name, task) is not task:  # a second, different task under the same name
        raise ValueError(f"A task named {task.name!r} is already registered; choose another name.")
    return task


def all_tasks() -> list[Task]:
    """Every registered task, in the order of :data:`TASK_MODULES`."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return list(_TASKS.values())


def get_task(name: str | Task) -> Task:
    """The :class:`Task` called ``name`` (or one of its aliases, any case); a ValueError listing them.
    A :class:`Task` given instead of a name is returned as it is."""
    if isinstance(name, Task):
        return name
    wanted = str(name).lower()
    for task in all_tasks():
        if wanted == task.name or wanted in task.aliases:
            return task
    raise ValueError(f"Unknown task {name!r}; choose one of: {', '.join(t.name for t in all_tasks())}.")
