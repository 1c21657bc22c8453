"""The methods the kit can compare, by name: what each trains, for which tasks, at which learning rate.

    >>> from tutorlib.methods.registry import get_method, method_names
    >>> method_names()
    ['full', 'prefix', 'prefix-mlp', 'zero-shot', 'head-only', 'lora', 'prompt']
    >>> get_method("prefix").learning_rate_for("sentiment")
    0.01
    >>> get_method("zero-shot").fits("classification")    # an untrained classifier head has no answer
    False

Each method registers its :class:`Method` record at the end of its own module (``full.py``,
``prefix/model.py``, ...). :data:`METHOD_MODULES` declares them, name -> module, in listing order;
:func:`get_method` imports only the module of the method asked for. A new method is one new module that
calls :func:`register`, plus its line in :data:`METHOD_MODULES`: the comparison, its tables and plots,
and the CLI then know it (the CLI refuses an unknown name from that table, before importing torch).

Every trained method's wrapped model has the same interface: ``forward(**batch)`` with ``.loss``,
trainable parameters = those with ``requires_grad``, ``method`` (its checkpoint kind),
``checkpoint_tensors()``, ``save_checkpoint(folder)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tutorlib.registry import Registry

if TYPE_CHECKING:
    from torch import nn

METHOD_MODULES = {
    "full": "tutorlib.methods.full",
    "prefix": "tutorlib.methods.prefix.model",
    "prefix-mlp": "tutorlib.methods.prefix.model",
    "zero-shot": "tutorlib.methods.zero_shot",
    "head-only": "tutorlib.methods.head_only",
    "lora": "tutorlib.methods.lora",
    "prompt": "tutorlib.methods.prompt",
}
"""Method name -> the module that registers it, in the order the methods are listed."""


@dataclass(frozen=True)
class MethodSetup:
    """What a comparison tells every method when it wraps a freshly loaded model; each method reads
    what it needs. ``prefix_init_text``: the text whose keys/values start a prefix (None = random)."""

    model_name: str
    seed: int = 0
    prefix_length: int = 10
    prefix_init_text: str | None = None
    tokenizer: object = None


@dataclass(frozen=True)
class Method:
    """One way to adapt a pretrained model.

    Args:
        name: what a learner types (``--methods full,prefix``).
        description: one line, shown when the comparison runs and in error messages.
        heads: which model heads it works with (:data:`tutorlib.loading.models.HEADS`): a task whose
            model has another head cannot use it.
        wrap: (plain model, :class:`MethodSetup`) -> the model to train (or to score, if it does not train).
        learning_rate: its default peak learning rate (AdamW, 10% warm-up, linear decay); None when
            it does not train. Why that value: the docstring of the module that registers it.
        task_learning_rates: task -> a rate that differs from ``learning_rate`` on that task.
        parameter_learning_rates: task -> {parameter-name start: rate} for parameters that need
            their own rate (see :class:`tutorlib.training.loop.TrainConfig` ``lr_by_name``).
        load_checkpoint: (folder, model or None) -> the trained model, for checkpoints whose recorded
            method is ``name``; None when the method writes no checkpoint of its own kind.
        describe_start: for a method that starts from :attr:`MethodSetup.prefix_init_text`: (that text, or None
            when the task has none) -> what its trainable vectors started from, in a report's words (e.g. "the
            model's own keys/values of 'Summarise ...'"); the comparison's table prints it. None for a method that
            reads no start text.
        adds_prefix: it puts :attr:`MethodSetup.prefix_length` virtual tokens in front of every layer's
            keys and values (the memory check counts them before the model is wrapped).
        colour: its colour in every plot.
    """

    name: str
    description: str
    heads: tuple[str, ...]
    wrap: Callable[[nn.Module, MethodSetup], nn.Module]
    learning_rate: float | None
    task_learning_rates: Mapping[str, float] = field(default_factory=dict)
    parameter_learning_rates: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    load_checkpoint: Callable | None = None
    describe_start: Callable[[str | None], str] | None = None
    adds_prefix: bool = False
    colour: str = "#555555"

    @property
    def reads_init_text(self) -> bool:
        """Whether it starts from :attr:`MethodSetup.prefix_init_text` (then :attr:`describe_start` says how)."""
        return self.describe_start is not None

    @property
    def trains(self) -> bool:
        """False for a method that scores the pretrained model as it is."""
        return self.learning_rate is not None

    def fits(self, head: str) -> bool:
        """Whether this method works with a model of this head ("classification", "causal-lm")."""
        return head in self.heads

    def learning_rate_for(self, task: str) -> float | None:
        """The default learning rate on ``task`` (None: it does not train)."""
        return self.task_learning_rates.get(task, self.learning_rate)


METHODS: Registry[Method] = Registry("method", METHOD_MODULES)
"""Every method, by name (see :mod:`tutorlib.registry`)."""


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its module calls this once, when imported); returns it."""
    return METHODS.register(method)


def all_methods() -> list[Method]:
    """Every registered method, in the order of :data:`METHOD_MODULES`."""
    return METHODS.all()


def method_names() -> list[str]:
    """The names of every method (nothing is imported)."""
    return METHODS.names()


def find_method(name: str) -> Method | None:
    """The :class:`Method` called ``name``, or None (e.g. a saved result of a method no longer registered)."""
    return METHODS.find(name)


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``; a ValueError (:class:`~tutorlib.registry.UnknownNameError`)
    listing the methods otherwise."""
    return METHODS.get(name)


def load_checkpoint(folder, model: nn.Module | None = None) -> nn.Module:
    """Load any tutorlib checkpoint by the method it records (a PrefixTunedModel, FullFineTunedModel, ...).

    Args:
        folder: what ``save_checkpoint`` wrote.
        model: the base model to load into (a fresh one is loaded by the recorded name when omitted).
    """
    from tutorlib.methods.checkpoints import CheckpointError, read_info

    recorded = read_info(folder).get("method")
    method = METHODS.find(recorded) if recorded else None
    if method is None or method.load_checkpoint is None:
        kinds = [m.name for m in all_methods() if m.load_checkpoint is not None]
        raise CheckpointError(f"{folder}: unknown checkpoint method {recorded!r} (this kit loads: "
                              f"{', '.join(kinds)}).")
    return method.load_checkpoint(folder, model)
