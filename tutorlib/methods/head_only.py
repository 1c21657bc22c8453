"""Head-only training (a linear probe): the pretrained model frozen, only a new classification head trains.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.head_only import prepare_head_only
    >>> model, tok = load_model("tiny-bert")                  # a SequenceClassifier: encoder + new head
    >>> tuned = prepare_head_only(model)
    >>> [name for name, p in tuned.named_parameters() if p.requires_grad]
    ['model.head.weight', 'model.head.bias']

The lower bound of every classification comparison: how much of the task the pretrained sentence
features already solve with nothing but one linear layer (hidden -> labels) on top. A method that
trains more (a prefix, every weight) has to beat it to be worth its cost.

The encoder stays in eval mode while the head trains (no dropout inside it), so every example has
one fixed feature vector, as in a classic linear probe; the head's own dropout still applies.
No gradient flows into the encoder: its weights are frozen and its inputs are token ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tutorlib.loading.architectures import model_name_of
from tutorlib.loading.models import SequenceClassifier, head_parameters
from tutorlib.methods import checkpoints
from tutorlib.methods.registry import Method, MethodSetup, register

HEAD_FILE = "head.safetensors"


class HeadOnlyModel(nn.Module):
    """A frozen SequenceClassifier whose head alone trains; build it with :func:`prepare_head_only`."""

    method = "head-only"

    def __init__(self, model: SequenceClassifier, *, model_name: str = ""):
        super().__init__()
        self.model = model
        self.head = "classification"
        self.model_name = model_name

    def train(self, mode: bool = True) -> HeadOnlyModel:
        """Train mode for the head; the frozen encoder always stays in eval mode (fixed features)."""
        super().train(mode)
        self.model.encoder.eval()
        return self

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        """input_ids, attention_mask: (B, T); labels: (B,) -> output with .logits (B, num_labels), .loss."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: the head's weight (num_labels, hidden) and bias (num_labels,)."""
        return {name: p.detach() for name, p in head_parameters(self.model).items()}

    def save_checkpoint(self, folder) -> list[Path]:
        """Write ``head.safetensors`` and ``tutorlib_checkpoint.json`` (base model name, labels); returns the paths."""
        return checkpoints.save_trained(folder, self, HEAD_FILE)

    @classmethod
    def load_checkpoint(cls, folder, model: nn.Module | None = None) -> HeadOnlyModel:
        """Rebuild a saved head-only model. ``model``: the base SequenceClassifier (a fresh one is loaded by
        the recorded name when omitted); its head is replaced by the saved one."""
        info, tensors, model = checkpoints.read_trained(folder, HEAD_FILE, cls.method, model)
        tuned = prepare_head_only(model, model_name=info["model_name"])
        checkpoints.copy_into(head_parameters(model), tensors, info)
        return tuned


def prepare_head_only(model: nn.Module, *, model_name: str | None = None) -> HeadOnlyModel:
    """Freeze every weight of a classifier except its head, and wrap it with the kit's method interface.

    Args:
        model: a :class:`~tutorlib.loading.models.SequenceClassifier` (``load_model(name, head="classification")``);
            changed in place (frozen).
        model_name: recorded in checkpoints; default: the name the model was loaded by.
    """
    if getattr(model, "method", None) is not None:
        raise ValueError(f"This model is already wrapped for {model.method!r} training; pass the plain model.")
    if not isinstance(model, SequenceClassifier):
        raise ValueError(f"head-only training needs a classifier with a new head (got {type(model).__name__}): "
                         f"load it with load_model(name, head='classification'). A language model's output "
                         f"layer is pretrained, so training it alone is not a probe of the features.")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.head.parameters():
        p.requires_grad_(True)
    name = model_name if model_name is not None else model_name_of(model.config)
    return HeadOnlyModel(model, model_name=name)


def _wrap(model: nn.Module, setup: MethodSetup) -> HeadOnlyModel:
    return prepare_head_only(model, model_name=setup.model_name)


HEAD_ONLY = register(Method(
    name="head-only", description="linear probe: the model frozen, only a new classification head trains",
    heads=("classification",), wrap=_wrap, learning_rate=3e-3,
    load_checkpoint=HeadOnlyModel.load_checkpoint, colour="#1e8449"))
"""Learning rate 3e-3: a linear layer on fixed features has nothing pretrained to protect. Picked on
movie-snippets' validation split with MiniLM, one epoch of 266 steps (``bench/head_only_lr.py``, results in
``bench/results/head_only_lr.json``): 1e-3 0.753, 3e-3 0.767, 1e-2 0.761, 3e-2 0.757, 1e-1 0.760 accuracy;
every rate lies inside the others' 95% intervals, so the probe is insensitive to it in this range."""
