"""What one comparison is asked to do, checked once: :class:`ComparisonSpec`.

    >>> from tutorlib.experiments.spec import ComparisonSpec
    >>> spec = ComparisonSpec.create("sentiment", methods="full,prefix", mode="workshop", steps=40)
    >>> spec.model, spec.dataset, spec.methods, spec.budget.steps
    ('minilm-l6', 'movie-snippets', ('full', 'prefix'), 40)
    >>> spec.learning_rates["prefix"]
    0.01

The command line and the lessons build a spec with :meth:`ComparisonSpec.create` (task defaults filled
in, the mode's budget picked and overridden); :func:`tutorlib.experiments.compare.compare` and everything
below it read the spec instead of a dozen loose arguments. A spec is frozen and checks itself when made,
so a wrong setting is refused before any data or model is loaded, with the setting named as the caller
wrote it (``names``: ``--batch-size`` on the command line, ``budget['batch_size']`` in Python).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from tutorlib import Mode, check_mode
from tutorlib.experiments.output_folder import check_output_folder
from tutorlib.methods.registry import METHODS, get_method
from tutorlib.tasks.registry import RunBudget, Task, get_task
from tutorlib.validate import whole_number

PYTHON_NAMES = MappingProxyType({
    **{name: f"budget[{name!r}]" for name in RunBudget.__dataclass_fields__},
    "task": "task", "model": "model", "dataset": "dataset", "methods": "methods", "mode": "mode",
    "steps": "steps", "prefix_length": "prefix_length", "seed": "seed", "split_seed": "split_seed",
    "learning_rates": "learning_rates", "device": "device", "out": "out_dir=", "overwrite": "overwrite=True",
})
"""How each setting is named in error messages from Python (the command line passes its option names)."""

DATA_FILE_SUFFIXES = (".csv", ".jsonl", ".json")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class ComparisonSpec:
    """Everything one comparison is asked to do. Build it with :meth:`create`; it checks itself when made.

    Attributes:
        task: the :class:`~tutorlib.tasks.registry.Task`.
        model, dataset: names (or, for the dataset, a .csv/.jsonl/.json file of one's own).
        methods: registered method names, each once, each fitting the task's model head.
        mode: "fast", "workshop" or "full": which of the task's budgets ``budget`` started from.
        budget: the :class:`~tutorlib.tasks.registry.RunBudget` every method gets (overrides applied).
        prefix_length: P, virtual tokens per layer for the prefix methods.
        seed: the training seed; split_seed: which rows of a dataset without published splits go where.
        learning_rates: method -> peak learning rate, for every trained method of ``methods``.
        device: "auto", "cpu", "cuda", "cuda:1", "mps".
        out: the output folder (None: nothing written); overwrite: replace an earlier comparison there.
        names: setting -> how messages name it (:data:`PYTHON_NAMES`, or the command line's options).
    """

    task: Task
    model: str
    dataset: str
    methods: tuple[str, ...]
    mode: Mode
    budget: RunBudget
    learning_rates: Mapping[str, float]
    prefix_length: int = 10
    seed: int = 0
    split_seed: int = 0
    device: str = "auto"
    out: Path | None = None
    overwrite: bool = False
    names: Mapping[str, str] = field(default_factory=lambda: PYTHON_NAMES, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "learning_rates", MappingProxyType(dict(self.learning_rates)))
        self.check()

    @classmethod
    def create(cls, task: str | Task, *, model: str | None = None, dataset: str | None = None,
               methods: Sequence[str] | str = ("full", "prefix"), mode: Mode | None = None,
               steps: int | None = None, budget: Mapping | None = None, prefix_length: int = 10, seed: int = 0,
               split_seed: int = 0, learning_rates: Mapping[str, float] | None = None, device: str | None = "auto",
               out=None, overwrite: bool = False, names: Mapping[str, str] | None = None) -> ComparisonSpec:
        """The spec with the task's defaults filled in.

        Args:
            task: a task name (aliases such as "summarize" work) or a :class:`Task`.
            model, dataset: None = the task's offline default.
            methods: names, as a sequence or a comma-separated string.
            mode: None = the setting (:func:`tutorlib.mode`, ``TUTORLIB_MODE``).
            steps: training steps per method (None: the budget's).
            budget: overrides of the mode's :class:`RunBudget`, e.g. ``{"test_items": 4}``.
            learning_rates: per-method overrides of each method's documented default rate.
            names: how messages name each setting (the command line passes its option names).

        Raises:
            ValueError: an unknown or unfit name, a number out of range, a file that is missing or does
                not parse, a device this machine does not have; OSError: ``out`` cannot take the result.
        """
        names = {**PYTHON_NAMES, **(names or {})}
        # The checks that need no task record (nor torch) first, so that a slip is refused at once.
        for method in _split(methods):
            if method not in METHODS:
                _named(METHODS.get, method, names["methods"])  # the registry's "Unknown method ..." error
        if steps is not None:
            whole_number(steps, names["steps"], why="with no training step there is nothing to compare")
        whole_number(prefix_length, names["prefix_length"], why="the paper used 10-200 virtual tokens")
        if out is not None:
            check_output_folder(out, overwrite, names)
        check_device(device or "auto", names["device"])
        if dataset is not None:
            data_file_columns(dataset, names["dataset"])
        task = _named(get_task, task, names["task"])
        mode = check_mode(mode, names["mode"])
        chosen = replace(task.budget(mode), **check_budget(task, budget, names))
        if steps is not None:
            chosen = replace(chosen, steps=steps)
        check_fits_task(task, chosen, dataset or task.default_dataset, mode, names)
        method_list = check_methods(task, methods, names["methods"])  # loads the method modules (torch)
        return cls(task=task, model=model or task.default_model, dataset=dataset or task.default_dataset,
                   methods=tuple(method_list), mode=mode, budget=chosen,
                   learning_rates=check_learning_rates(task, method_list, learning_rates, names["learning_rates"]),
                   prefix_length=prefix_length, seed=seed, split_seed=split_seed, device=device or "auto",
                   out=None if out is None else Path(out), overwrite=overwrite, names=MappingProxyType(names))

    def check(self) -> None:
        """Refuse what cannot run; the cheap checks first (numbers, names, files), the device last."""
        n = self.names
        whole_number(self.prefix_length, n["prefix_length"], why="the paper used 10-200 virtual tokens")
        whole_number(self.seed, n["seed"], minimum=0)
        whole_number(self.split_seed, n["split_seed"], minimum=0)
        check_fits_task(self.task, self.budget, self.dataset, self.mode, n)
        check_methods(self.task, self.methods, n["methods"])
        if self.out is not None:
            check_output_folder(self.out, self.overwrite, n)
        check_device(self.device, n["device"])
        check_model_fits(self.task, self.model, n["model"])

    @property
    def prefix_init_text(self) -> str | None:
        """The words whose keys/values start a prefix on this task (None: random); the task's own choice."""
        return self.task.prefix_init_text

    def describe(self) -> dict:
        """The spec as JSON-able data (for a log line or a saved result)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("task", "names", "budget", "learning_rates")}
        return {**data, "task": self.task.name, "budget": asdict(self.budget),
                "learning_rates": dict(self.learning_rates), "out": None if self.out is None else str(self.out)}


def _split(methods: Sequence[str] | str) -> list[str]:
    """"full, prefix" or ["full", "prefix"] -> ["full", "prefix"]."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    return [m for m in names if m]


def _named(lookup, value, name: str):
    """``lookup(value)``, its ValueError re-worded to start with the setting's name."""
    try:
        return lookup(value)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


# ----------------------------------------------------------------------------- one check per setting


def check_methods(task: Task, methods: Sequence[str] | str, name: str = "methods") -> list[str]:
    """Method names as a list (a comma-separated string works too); errors for unknown, unfit or repeated ones.
    Unknown names are refused from the registry's table, before any method module (or torch) is imported."""
    names = _split(methods)
    if not names:
        fitting = ", ".join(m.name for m in METHODS.all() if m.fits(task.head))
        raise ValueError(f"{name}: no method given; for {task.name} choose from: {fitting}.")
    for method in names:
        _named(METHODS.get, method, name)  # the registry's "Unknown method ..." error
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: a method is listed twice in {names}; list each once.")
    unfit = [get_method(m) for m in names if not get_method(m).fits(task.head)]
    if unfit:
        m = unfit[0]
        raise ValueError(f"{name}: {m.name!r} does not fit the {task.name} task ({m.description}): it works with "
                         f"{' or '.join(m.heads)} models, and {task.name} needs a {task.head} model. Methods for "
                         f"{task.name}: {', '.join(x.name for x in METHODS.all() if x.fits(task.head))}.")
    return names


def check_budget(task: Task, overrides: Mapping | None, names: Mapping[str, str] = PYTHON_NAMES) -> dict:
    """Budget overrides, checked: known fields, whole numbers >= 1 (None = all, for data sizes and steps)."""
    overrides = dict(overrides or {})
    known = set(RunBudget.__dataclass_fields__)
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"Unknown budget field {key!r}; the fields are: {', '.join(sorted(known))}.")
        whole_number(value, names.get(key, f"budget[{key!r}]"),
                     may_be_none=key in ("train_examples", "test_items", "steps"))
    if not task.generates and "max_new_tokens" in overrides:
        raise ValueError(f"{names.get('max_new_tokens', 'max_new_tokens')} limits generated text (a summary's "
                         f"length); the {task.name} task does not generate.")
    return overrides


def check_learning_rates(task: Task, methods: list[str], overrides: Mapping[str, float] | None,
                         name: str = "learning_rates") -> dict[str, float]:
    """The learning rate of every trained method of ``methods``: the documented default unless overridden."""
    overrides = dict(overrides or {})
    trained = [m for m in methods if get_method(m).trains]
    for method, lr in overrides.items():
        if method not in trained:
            raise ValueError(f"{name} has a rate for {method!r}; this comparison trains: {', '.join(trained)}.")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"{name}: the learning rate of {method!r} must be a number > 0 (got {lr!r}).")
    return {m: float(overrides.get(m, get_method(m).learning_rate_for(task.name))) for m in trained}


def check_fits_task(task: Task, budget: RunBudget, dataset: str, mode: Mode,
                    names: Mapping[str, str] = PYTHON_NAMES) -> None:
    """The budget and a dataset file suit the task: items not cut too short (``--max-length 3`` would train
    on three tokens), the file's columns those the task reads."""
    if budget.max_length < task.shortest_max_length:
        raise ValueError(f"{names['max_length']} {budget.max_length} cuts every {task.name} item to "
                         f"{budget.max_length} tokens, too few to learn the task from; use at least "
                         f"{task.shortest_max_length} (the {mode} budget uses {task.budget(mode).max_length}).")
    columns = data_file_columns(dataset, names["dataset"])
    lacking = [c for c in task.columns if columns is not None and c not in columns]
    if lacking:
        raise ValueError(f"{names['dataset']}: {Path(dataset).name} has no {lacking[0]!r} column (it has "
                         f"{', '.join(columns) or 'none'}); the {task.name} task needs {', '.join(task.columns)}.")


def data_file_columns(dataset: str, name: str = "dataset") -> list[str] | None:
    """The columns of a dataset given as a file (it must exist and parse; read from its first row only);
    None for a dataset name (the loader checks those, and lists them)."""
    if not str(dataset).lower().endswith(DATA_FILE_SUFFIXES):
        return None
    path = Path(str(dataset)).expanduser()
    if not path.is_file():
        raise ValueError(f"{name}: no file {path}. Give the path of a .csv (header row), .jsonl or .json file, "
                         f"or a dataset name (`tutorlib doctor` lists them).")
    return _first_row_columns(path, name)


def _first_row_columns(path: Path, name: str) -> list[str]:
    """The column names of a data file, from its header (CSV) or first row object (JSON Lines, JSON)."""
    try:
        with path.open(encoding="utf-8") as f:
            if path.suffix.lower() == ".csv":
                return [c.strip() for c in next(csv.reader(f), [])]
            if path.suffix.lower() == ".jsonl":
                first = json.loads(next((line for line in f if line.strip()), "{}"))
            else:
                data = json.load(f)
                first = data[0] if isinstance(data, list) and data else data
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise ValueError(f"{name}: cannot parse {path.name} ({err}); save it as UTF-8 CSV with a header row, or "
                         f"as JSON rows.") from None
    if not isinstance(first, dict):
        raise ValueError(f"{name}: {path.name} holds no row objects ({{\"text\": ..., \"label\": ...}}).")
    return list(first)


def check_device(device: str, name: str = "device") -> None:
    """Refuse a device this machine does not have, before anything loads. A CPU-only torch build is
    recognised from its version without importing torch."""
    if not _DEVICE.match(str(device)):
        raise ValueError(f"{name}: {device!r} is not a device; use auto, cpu, cuda, cuda:N or mps.")
    if not str(device).startswith(("cuda", "mps")):
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        cpu_build = version("torch").endswith("+cpu")
    except PackageNotFoundError:
        cpu_build = False
    if str(device).startswith("cuda") and cpu_build:
        raise ValueError(f"{name}: {device} asked for, but this torch ({version('torch')}) is built for the CPU "
                         f"only. Use cpu or auto, or install a CUDA build of torch.")
    import torch

    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}: mps asked for, but this machine has no Apple GPU; use cpu or auto.")
    if str(device).startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            raise ValueError(f"{name}: {device} asked for, but this machine has {count} CUDA GPU(s); use "
                             f"{'cpu or auto' if count == 0 else f'cuda:0 to cuda:{count - 1}'}.")


def check_model_fits(task: Task, model: str, name: str = "model") -> None:
    """A known encoder (BERT) cannot generate: say so before anything loads when the task needs a causal LM."""
    from tutorlib.loading.architectures import is_encoder
    from tutorlib.loading.models import KNOWN_MODELS

    info = KNOWN_MODELS.get(model)
    if task.head == "causal-lm" and info is not None and is_encoder(info.architecture):
        causal = [m.name for m in KNOWN_MODELS.values() if not is_encoder(m.architecture)]
        raise ValueError(f"{name}: {model!r} is an encoder ({info.architecture}) and cannot generate text, which the "
                         f"{task.name} task needs; use a causal LM: {', '.join(causal)}.")
