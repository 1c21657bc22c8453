"""Zero-shot: the pretrained model as it is, no training. The row every trained method must beat.

It needs a model that already answers the task: a causal LM can be prompted to summarise, but a
sentiment classifier's head is new (random), so an untrained classifier has no answer to score.
"""

from __future__ import annotations

from torch import nn

from tutorlib.methods.registry import Method, MethodSetup, register


def _as_it_is(model: nn.Module, setup: MethodSetup) -> nn.Module:
    return model


ZERO_SHOT = register(Method(
    name="zero-shot", description="no training: the pretrained model as it is (causal LMs only)",
    heads=("causal-lm",), wrap=_as_it_is, learning_rate=None, colour="#7f8c8d"))
