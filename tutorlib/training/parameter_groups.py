"""Where a model's parameters sit: embeddings, attention, MLP, norms, head, and in which layer.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.training.parameter_groups import count_by_group, place_of
    >>> model, tok = load_model("tiny-gpt2")
    >>> count_by_group(model)
    {'embeddings': 14784, 'attention': 33280, 'mlp': 66176, 'norms': 640, 'head': 0}
    >>> place_of("transformer.h.1.mlp.c_fc.weight")
    Place(layer=1, group='mlp')

The groups are read from the parameter *names* that Hugging Face gives each architecture (the
patterns are in :data:`tutorlib.loading.architectures.ARCHITECTURES`):

========== ====================================== ======================================== =============================
group      GPT-2                                  BERT                                     Llama (SmolLM2)
========== ====================================== ======================================== =============================
embeddings ``wte`` (tokens), ``wpe`` (positions)  ``embeddings.*_embeddings``              ``embed_tokens``
attention  ``attn.c_attn`` (Q, K, V), ``c_proj``  ``attention.self.*``, ``.output.dense``  ``self_attn.{q,k,v,o}_proj``
mlp        ``mlp.c_fc``, ``mlp.c_proj``           ``intermediate.dense``, ``output.dense`` ``mlp.{gate,up,down}_proj``
norms      ``ln_1``, ``ln_2``, ``ln_f``           ``LayerNorm``                            ``*layernorm``, ``norm``
head       ``lm_head`` (tied to ``wte``: 0 extra) ``head`` (the kit's classifier)          ``lm_head`` (tied in SmolLM2)
========== ====================================== ======================================== =============================

A tied weight (GPT-2's and SmolLM2's output layer *is* the token embedding) is one tensor and is
counted once, under embeddings. A prefix-tuned model adds the group ``prefix``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from tutorlib.loading.architectures import ARCHITECTURES

GROUPS = ("embeddings", "attention", "mlp", "norms", "head")
"""The groups every model has (some may hold 0 parameters); ``prefix`` and ``other`` appear when used."""

# Names the kit itself gives, whatever the family: a prefix's weights, a SequenceClassifier's head.
_KIT_NAMES = {"prefix": r"prefix_encoder\.", "head": r"(^|\.)head\."}
# Checked in this order: the first group whose pattern is found in the name wins. Norms come before
# attention because BERT's norms live inside its attention and output blocks (attention.output.LayerNorm).
_ORDER = ("prefix", "norms", "attention", "mlp", "embeddings", "head")


def _rule(group: str) -> re.Pattern:
    """One expression per group: the kit's own name or any family's (see ``loading/architectures.py``)."""
    patterns = [_KIT_NAMES[group]] if group in _KIT_NAMES else []
    patterns += [a.parameter_names[group] for a in ARCHITECTURES.values() if group in a.parameter_names]
    return re.compile("|".join(f"(?:{p})" for p in patterns))


_RULES = [(group, _rule(group)) for group in _ORDER]
_LAYER = re.compile("|".join(a.layer_names for a in ARCHITECTURES.values()))


@dataclass(frozen=True)
class Place:
    """Where one parameter sits: its transformer ``layer`` (None outside the blocks) and its ``group``."""

    layer: int | None
    group: str

    @property
    def label(self) -> str:
        """A short label for plots: 'layer 3', or the group for parameters outside the blocks."""
        return f"layer {self.layer}" if self.layer is not None else self.group


def group_of(name: str) -> str:
    """The group of a parameter name: one of :data:`GROUPS`, ``"prefix"``, or ``"other"`` if unknown."""
    for group, pattern in _RULES:
        if pattern.search(name):
            return group
    return "other"


def layer_of(name: str) -> int | None:
    """The transformer block a parameter belongs to (0 = nearest the input), None outside the blocks."""
    match = _LAYER.search(name)
    return int(next(g for g in match.groups() if g is not None)) if match else None


def place_of(name: str) -> Place:
    """Layer and group of a parameter name, e.g. ``place_of("encoder.encoder.layer.2.intermediate.dense.weight")``
    is ``Place(layer=2, group='mlp')``."""
    return Place(layer_of(name), group_of(name))


def count_by_group(model: nn.Module, trainable_only: bool = False) -> dict[str, int]:
    """Number of parameters in each group, in the order of :data:`GROUPS` (then ``prefix``, ``other``
    when present). The values add up to the model's total (tied weights once)."""
    counts = dict.fromkeys(GROUPS, 0)
    for name, p in model.named_parameters():  # yields a tied weight once
        if p.requires_grad or not trainable_only:
            group = group_of(name)
            counts[group] = counts.get(group, 0) + p.numel()
    return counts


def count_by_layer(model: nn.Module) -> dict[int, dict[str, int]]:
    """Parameters of each transformer block, by group: ``{layer: {group: count}}``, layers in order."""
    layers: dict[int, dict[str, int]] = {}
    for name, p in model.named_parameters():
        place = place_of(name)
        if place.layer is not None:
            row = layers.setdefault(place.layer, {})
            row[place.group] = row.get(place.group, 0) + p.numel()
    return dict(sorted(layers.items()))
