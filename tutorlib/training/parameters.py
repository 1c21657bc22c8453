"""Counting parameters: how many a model has, how many train, how many a checkpoint must keep.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.prefix.model import attach_prefix
    >>> from tutorlib.training.parameters import parameter_summary, prefix_parameter_formula
    >>> model, tok = load_model("tiny-gpt2")
    >>> prefix_parameter_formula(model.config, 10)           # P x layers x 2 x kv_heads x head_dim
    2560
    >>> parameter_summary(attach_prefix(model, 10)).stored
    2560

Three numbers tell the story of the two methods:

* total: every parameter in memory while training (base model + prefix encoder, MLP included);
* trainable: those the optimizer updates (and keeps two Adam moments for);
* stored: those a checkpoint must keep after training (the prefix alone, plus a classifier head).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from tutorlib.methods.prefix.encoder import prefix_shape


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a module: ``total`` and how many of them are ``trainable`` (requires_grad)."""

    total: int
    trainable: int

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def count_parameters(module: nn.Module) -> ParameterCount:
    """Count a module's parameters; shared (tied) weights count once, as they are one tensor."""
    params = list(module.parameters())  # parameters() yields a tied weight only once
    return ParameterCount(total=sum(p.numel() for p in params),
                          trainable=sum(p.numel() for p in params if p.requires_grad))


@dataclass(frozen=True)
class ParameterSummary:
    """The accounting of one training method on one model (numbers of parameters, not bytes)."""

    method: str  # "prefix" | "full"
    total: int  # in memory while training
    trainable: int  # updated by the optimizer
    stored: int  # kept in the checkpoint after training

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    @property
    def stored_fraction(self) -> float:
        return self.stored / self.total if self.total else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "trainable_fraction": self.trainable_fraction, "stored_fraction": self.stored_fraction}

    def __str__(self) -> str:
        return (f"{self.method}: total {self.total:,} | trainable {self.trainable:,} "
                f"({100 * self.trainable_fraction:.3f}%) | stored {self.stored:,} ({100 * self.stored_fraction:.3f}%)")


def parameter_summary(tuned: nn.Module) -> ParameterSummary:
    """Total / trainable / stored parameters of a PrefixTunedModel or FullFineTunedModel."""
    counted = count_parameters(tuned)
    stored = sum(t.numel() for t in tuned.checkpoint_tensors().values())
    return ParameterSummary(method=tuned.method, total=counted.total, trainable=counted.trainable, stored=stored)


def prefix_parameter_formula(config, prefix_length: int) -> int:
    """The size of a stored prefix, by hand: P x layers x 2 (key and value) x kv_heads x head_dim.

    ``config``: a Hugging Face config (GPT-2, BERT or Llama family). kv_heads x head_dim is the width of
    one layer's keys: the hidden size, or less under grouped-query attention (Llama).
    """
    s = prefix_shape(config)
    return prefix_length * s.layers * 2 * s.kv_heads * s.head_dim


def explain_prefix_formula(config, prefix_length: int) -> str:
    """The formula with this model's numbers filled in, e.g. '10 x 2 layers x 2 x 4 kv heads x 16 = 2,560'."""
    s = prefix_shape(config)
    return (f"{prefix_length} virtual tokens x {s.layers} layers x 2 (key, value) x {s.kv_heads} kv heads "
            f"x {s.head_dim} head dim = {prefix_parameter_formula(config, prefix_length):,}")
