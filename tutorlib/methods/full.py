"""Full fine-tuning: the baseline. Every weight of the pretrained model trains.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.full import prepare_full_finetuning
    >>> model, tok = load_model("tiny-gpt2")
    >>> tuned = prepare_full_finetuning(model)
    >>> batch = tok(["a short text"], return_tensors="pt")
    >>> out = tuned(**batch, labels=batch["input_ids"])       # out.loss, out.logits
    >>> all(p.requires_grad for p in tuned.parameters())
    True

:class:`FullFineTunedModel` has the same interface as :class:`tutorlib.methods.prefix.model.PrefixTunedModel`
(``forward(**batch)`` with ``.loss``, trainable parameters = those with ``requires_grad``,
``save_checkpoint`` / ``load_checkpoint``, ``generate``), so one training loop serves both methods.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tutorlib.loading.architectures import model_name_of
from tutorlib.loading.models import head_of, pretrained_part
from tutorlib.methods import checkpoints
from tutorlib.methods.devices import to_model_device
from tutorlib.methods.registry import Method, MethodSetup, register


class FullFineTunedModel(nn.Module):
    """A model all of whose weights train; build it with :func:`prepare_full_finetuning`."""

    method = "full"

    def __init__(self, model: nn.Module, *, model_name: str = ""):
        super().__init__()
        self.model = model
        self.head = head_of(model)  # "causal-lm", "classification" or "encoder"
        self.model_name = model_name

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        """input_ids, attention_mask: (B, T); labels as the model expects -> the model's output (.loss, .logits)."""
        input_ids, attention_mask, labels = to_model_device(self, input_ids, attention_mask, labels)
        if labels is not None:
            kwargs["labels"] = labels
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, **generate_kwargs):
        """The model's own ``generate`` (causal LMs); batch with left padding. Returns (B, T + new) ids."""
        if self.head != "causal-lm":
            raise ValueError(f"generate needs a causal language model; this one is a {self.head} model.")
        input_ids, attention_mask = to_model_device(self, input_ids, attention_mask)  # inputs follow the model
        generate_kwargs.setdefault("pad_token_id", self.model.config.pad_token_id)
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: every parameter (tied weights once)."""
        return {name: p.detach() for name, p in self.model.named_parameters()}

    def save_checkpoint(self, folder) -> list[Path]:
        """Write ``model.safetensors`` (the whole state dict) and ``tutorlib_checkpoint.json``; returns the paths."""
        info = {"method": self.method, "model_name": self.model_name, **checkpoints.base_model_facts(self.model)}
        return checkpoints.save_module(folder, self.model, info, checkpoints.FULL_FILE)

    @classmethod
    def load_checkpoint(cls, folder, model: nn.Module | None = None) -> FullFineTunedModel:
        """Rebuild a saved fully fine-tuned model. ``model``: a model of the same architecture to load the
        weights into (loaded by the recorded name when omitted)."""
        info = checkpoints.read_info(folder, expect_method=cls.method)
        model = checkpoints.base_model_for(info, model)
        checkpoints.load_module_weights(model, folder, checkpoints.FULL_FILE)
        return prepare_full_finetuning(model, model_name=info["model_name"])


def prepare_full_finetuning(model: nn.Module, *, model_name: str | None = None) -> FullFineTunedModel:
    """Make every weight of ``model`` trainable and wrap it with the kit's method interface.

    Args:
        model: any Hugging Face model or tutorlib SequenceClassifier (changed in place: all
            ``requires_grad`` set to True).
        model_name: recorded in checkpoints; default: the name the model was loaded by.
    """
    if getattr(model, "method", None) is not None:
        raise ValueError(f"This model is already wrapped for {model.method!r} training; pass the plain model "
                         f"(for a prefix-tuned one: .detach_prefix()).")
    for p in model.parameters():
        p.requires_grad_(True)
    name = model_name if model_name is not None else model_name_of(pretrained_part(model).config)
    return FullFineTunedModel(model, model_name=name)


def _wrap(model: nn.Module, setup: MethodSetup) -> FullFineTunedModel:
    return prepare_full_finetuning(model, model_name=setup.model_name)


FULL = register(Method(
    name="full", description="full fine-tuning: every weight trains", heads=("classification", "causal-lm"),
    wrap=_wrap, learning_rate=5e-5, load_checkpoint=FullFineTunedModel.load_checkpoint, colour="#c0392b"))
"""Learning rate 5e-5: full fine-tuning moves pretrained weights, so it takes small steps; larger ones
overwrite what pretraining learned. On SmolLM2 (nyt-leads, 15 steps of 4 x 128 tokens) it brings the
held-out loss from 3.83 to 3.49."""
