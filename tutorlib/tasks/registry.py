"""The tasks the kit can compare methods on, by name: data columns, model head, batches, scores.

    >>> from tutorlib.tasks.registry import get_task
    >>> task = get_task("summarize")              # aliases are accepted
    >>> task.name, task.head, task.columns
    ('summarise', 'causal-lm', ('document', 'summary'))

Each task registers its :class:`Task` record at the end of its own module (``sentiment.py``,
``summarise.py``); :data:`TASK_MODULES` declares them. The comparison (:mod:`tutorlib.experiments`)
only ever calls a task through this record, never by testing its name: its budgets per mode and
its prefix start text included, so a new task touches no experiment code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tutorlib import MODES, Mode
from tutorlib.registry import Registry
from tutorlib.validate import whole_number

TASK_MODULES = {"sentiment": "tutorlib.tasks.sentiment", "summarise": "tutorlib.tasks.summarise"}
"""Task name -> the module that registers it, in listing order."""

TASK_ALIASES = {"summarize": "summarise", "summarisation": "summarise", "summarization": "summarise"}
"""Other spellings a learner may type -> the task's name (any case)."""


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

    def __post_init__(self):
        for name in ("train_examples", "steps", "test_items", "eval_batch_size"):
            whole_number(getattr(self, name), f"budget[{name!r}]", may_be_none=True)
        for name in ("batch_size", "max_length"):
            whole_number(getattr(self, name), f"budget[{name!r}]")
        whole_number(self.max_new_tokens, "budget['max_new_tokens']", minimum=0)


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
        name: what a learner types (``--task sentiment``); other spellings: :data:`TASK_ALIASES`.
        description: one line.
        head: the model head it needs: "classification" or "causal-lm" (see ``load_model``).
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
        budgets: mode ("fast", "workshop", "full") -> its :class:`RunBudget` (every mode has one).
        prefix_init_text: the words whose keys/values start a prefix on this task (None: a random start);
            why: the task module's comment.
        shortest_max_length: the fewest tokens per item that still leave the task well posed; a budget
            that cuts items shorter is refused (``--max-length 3`` would train on three tokens).
        legend: column header -> what it means, printed under the quality table.
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
    budgets: Mapping[Mode, RunBudget]
    prefix_init_text: str | None = None
    shortest_max_length: int = 16
    legend: Mapping[str, str] = field(default_factory=dict)
    generates: bool = False
    prepare_rows: Callable = field(default=lambda rows: rows)
    scoring_split: Callable = field(default=lambda splits: (splits["test"], None))
    describe_test: Callable = field(default=lambda rows: {})


    def __post_init__(self):
        missing = [m for m in MODES if m not in self.budgets]
        if missing:
            raise ValueError(f"Task {self.name!r} has no budget for {', '.join(missing)} mode; give one per mode.")

    def budget(self, mode: Mode) -> RunBudget:
        """The :class:`RunBudget` of this task in ``mode``."""
        return self.budgets[mode]


TASKS: Registry[Task] = Registry("task", TASK_MODULES, TASK_ALIASES)
"""Every task, by name (see :mod:`tutorlib.registry`)."""


def register(task: Task) -> Task:
    """Add ``task`` to the registry (its module calls this once, when imported); returns it."""
    return TASKS.register(task)


def all_tasks() -> list[Task]:
    """Every registered task, in the order of :data:`TASK_MODULES`."""
    return TASKS.all()


def get_task(name: str | Task) -> Task:
    """The :class:`Task` called ``name`` (or one of its aliases, any case); a ValueError listing them.
    A :class:`Task` given instead of a name is returned as it is."""
    return name if isinstance(name, Task) else TASKS.get(name)
