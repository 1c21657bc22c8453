"""What a model handed to a method is: the pieces every method (full, prefix, ...) asks about.

The kit's models are either a Hugging Face model (a causal LM such as GPT-2 or SmolLM2, or a bare
encoder such as MiniLM) or a :class:`~tutorlib.loading.models.SequenceClassifier` (an encoder plus a
new linear head). A method needs to know which, and where the pretrained transformer is inside.

    >>> from tutorlib.loading.models import load_model
    >>> model, tok = load_model("tiny-gpt2")
    >>> task_of(model), pretrained_part(model) is model
    ('causal-lm', True)
"""

from __future__ import annotations

from torch import nn

from tutorlib.loading.models import SequenceClassifier


def pretrained_part(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside ``model``: ``.encoder`` of a SequenceClassifier, else the model."""
    return model.encoder if isinstance(model, SequenceClassifier) else model


def task_of(model: nn.Module) -> str:
    """"classification" (SequenceClassifier), "causal-lm" (has a language-model head) or "encoder"."""
    if isinstance(model, SequenceClassifier):
        return "classification"
    if hasattr(model, "generate") and model.get_output_embeddings() is not None:
        return "causal-lm"
    return "encoder"
