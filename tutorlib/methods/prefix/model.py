"""Prefix tuning: a frozen pretrained model plus P trainable key/value vectors in every layer.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.prefix.model import attach_prefix
    >>> model, tok = load_model("tiny-gpt2")
    >>> tuned = attach_prefix(model, prefix_length=10)
    >>> batch = tok(["a short text"], return_tensors="pt")
    >>> out = tuned(**batch, labels=batch["input_ids"])       # out.loss, out.logits (1, 12, 103)
    >>> [name for name, p in tuned.named_parameters() if p.requires_grad]
    ['prefix_encoder.prefix']

What trains: the prefix (and, for a :class:`~tutorlib.loading.models.SequenceClassifier`, its new linear
``head``: a classifier needs its own output layer). Every pretrained weight is frozen.

Positions: the prefix takes no position. Real tokens keep positions 0..T-1 (counted from the first
real token, so left padding changes nothing), and the model's own limit applies to them alone:
T <= max positions, whatever P is. ``positions_after_prefix=True`` instead gives real tokens
P..P+T-1, as the paper's cache-based implementation and PEFT do; then P + T must fit.

How the prefix gets into attention is in :mod:`tutorlib.methods.prefix.attention`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tutorlib.loading.architectures import UnsupportedModelError, model_name_of
from tutorlib.loading.models import SequenceClassifier, head_of, pretrained_part
from tutorlib.methods import checkpoints
from tutorlib.methods.devices import to_model_device
from tutorlib.methods.prefix.attention import switch_back_attention, switch_to_prefix_attention, uses_prefix_attention
from tutorlib.methods.prefix.encoder import (
    PrefixEncoder,
    PrefixShape,
    prefix_shape,
    random_prefix,
    words_prefix,
)
from tutorlib.methods.registry import Method, MethodSetup, register
from tutorlib.methods.start_text import start_token_ids


class PrefixError(ValueError):
    """A prefix-tuning mistake a learner can fix (too long, attached twice, wrong prefix shape, ...)."""


def positions_from_mask(attention_mask: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Position ids (B, T) counted from each row's first real token: left padding then changes nothing.
    attention_mask: (B, T), 1 = real token. Padding gets position ``offset`` (it is never attended to)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) + offset


class PrefixTunedModel(nn.Module):
    """A frozen model with a trainable prefix; build it with :func:`attach_prefix`.

    ``forward(input_ids, attention_mask=None, labels=None, ...)`` returns the wrapped model's own
    output (``.loss``, ``.logits``). The trainable parameters are exactly those with
    ``requires_grad``: ``prefix_encoder.*`` (and ``model.head.*`` for a SequenceClassifier).
    """

    method = "prefix"

    def __init__(self, model: nn.Module, prefix_encoder: PrefixEncoder, *, attention_before: str,
                 model_name: str = "", positions_after_prefix: bool = False):
        super().__init__()
        self.model = model
        self.prefix_encoder = prefix_encoder
        self.shape: PrefixShape = prefix_encoder.shape
        self.prefix_length = prefix_encoder.prefix_length
        self.head = head_of(model)  # "causal-lm", "classification" or "encoder"
        self.model_name = model_name
        self.positions_after_prefix = positions_after_prefix
        self._attention_before = attention_before

    # ---------------------------------------------------------------- inputs
    def _prefix_inputs(self, prefix, prefix_mask) -> dict:
        """The keyword arguments the prefix attention function reads: prefix_key_values
        (Bp, layers, 2, kv_heads, P, head_dim) and prefix_visible (Bp, P) or None."""
        if prefix is None:
            keys_values = self.prefix_encoder(1)  # (1, layers, 2, kv_heads, P, head_dim), shared by all rows
        else:
            keys_values = torch.stack(list(prefix)) if isinstance(prefix, (list, tuple)) else prefix
            keys_values, = to_model_device(self, keys_values)
            if keys_values.dim() == 5:  # one prefix for every row
                keys_values = keys_values.unsqueeze(0)
            want = self.shape.tensor_shape(keys_values.shape[-2])  # any P is allowed
            if keys_values.dim() != 6 or tuple(keys_values.shape[1:]) != want:
                raise PrefixError(f"prefix has shape {tuple(keys_values.shape)}; this model needs (B,) + {want} "
                                  f"= (rows, layers, 2, kv_heads, P, head_dim), or a list of {want} tensors.")
        visible = None
        if prefix_mask is not None:
            length = keys_values.shape[-2]
            visible = torch.as_tensor(prefix_mask, dtype=torch.bool, device=keys_values.device)
            visible = visible.expand(1, length) if visible.dim() == 0 else visible.reshape(-1, length)  # (B or 1, P)
        return {"prefix_key_values": keys_values, "prefix_visible": visible}

    def _check_length(self, needed_positions: int, what: str) -> None:
        limit = self.shape.max_positions
        if needed_positions <= limit:
            return
        if self.positions_after_prefix:
            why = f"({self.prefix_length} of them for the prefix: positions_after_prefix=True)"
        else:
            why = f"(the prefix takes no positions here, so its length {self.prefix_length} does not count)"
        raise PrefixError(f"{what} needs {needed_positions} positions {why}, but this model has {limit}. "
                          f"Truncate the input (e.g. tokenizer(..., truncation=True, max_length=...)).")

    # ---------------------------------------------------------------- forward and generate
    def forward(self, input_ids, attention_mask=None, labels=None, *, prefix=None, prefix_mask=None,
                position_ids=None, **kwargs):
        """Run the frozen model with the prefix in every layer.

        Args:
            input_ids: (B, T) token ids. attention_mask: (B, T), 1 = real token (default all ones).
            labels: as the wrapped model expects ((B, T) for causal LMs, -100 = ignore; (B,) classes).
            prefix: use this prefix instead of the trained one: (layers, 2, kv_heads, P, head_dim)
                for every row, (B, layers, 2, kv_heads, P, head_dim) or a list of B exported prefixes
                for one per row (one frozen model serving many prefixes).
            prefix_mask: True/False, or (P,) / (B, P) with 1 = visible. False hides the prefix: the
                output is then that of the model without one.
            position_ids: (B, T); default counted from the first real token (+P if positions_after_prefix).
            kwargs: passed to the wrapped model.
        Returns:
            The wrapped model's output: ``.logits`` (B, T, vocab) or (B, labels), ``.loss`` if labels.
        """
        input_ids, attention_mask, labels, position_ids = to_model_device(
            self, input_ids, attention_mask, labels, position_ids)  # inputs follow the model (CPU or GPU)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            offset = self.prefix_length if self.positions_after_prefix else 0
            position_ids = positions_from_mask(attention_mask, offset)
            needed = input_ids.shape[1] + offset  # known from the shape: no device sync
        else:
            needed = int(position_ids.max()) + 1
        self._check_length(needed, f"An input of {input_ids.shape[1]} tokens")
        if labels is not None:
            kwargs["labels"] = labels
        return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          **kwargs, **self._prefix_inputs(prefix, prefix_mask))

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, *, prefix=None, prefix_mask=None, **generate_kwargs):
        """``model.generate`` with the prefix in every layer and every step (causal LMs only).

        Batch with left padding (``tokenizer.padding_side = "left"``). ``prefix``/``prefix_mask`` as in
        :meth:`forward`; beams and ``num_return_sequences`` are handled. Returns (B, T + new) token ids.
        """
        if self.head != "causal-lm":
            raise PrefixError(f"generate needs a causal language model; this one is a {self.head} model.")
        input_ids, attention_mask = to_model_device(self, input_ids, attention_mask)  # inputs follow the model
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra_positions = self.prefix_length if self.positions_after_prefix else 0
        if self.positions_after_prefix:  # generate then adds one per new token
            generate_kwargs.setdefault("position_ids", positions_from_mask(attention_mask, extra_positions))
        new = generate_kwargs.get("max_new_tokens") or 0
        self._check_length(input_ids.shape[1] + new + extra_positions,
                           f"An input of {input_ids.shape[1]} tokens plus {new} new ones")
        generate_kwargs.setdefault("pad_token_id", self.model.config.pad_token_id)
        inputs = self._prefix_inputs(prefix, prefix_mask)
        rows = input_ids.shape[0]
        inputs = {k: (v.expand(rows, *v.shape[1:]) if v is not None and v.shape[0] == 1 else v)
                  for k, v in inputs.items()}  # one row per input row; generate's expansion repeats them

        def add_prefix(module, args, kwargs):  # generate calls forward itself, once per new token
            return args, {**kwargs, **inputs}

        handle = self.model.register_forward_pre_hook(add_prefix, with_kwargs=True)
        try:
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        finally:
            handle.remove()

    # ---------------------------------------------------------------- keeping the result
    def export_prefix(self) -> torch.Tensor:
        """The trained prefix alone, (layers, 2, kv_heads, P, head_dim)."""
        return self.prefix_encoder.export()

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: ``prefix`` plus every trainable weight of the model (the head)."""
        tensors = {"prefix": self.export_prefix()}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                tensors[f"model.{name}"] = p.detach().clone()
        return tensors

    def save_checkpoint(self, folder) -> list[Path]:
        """Write ``prefix.safetensors`` (prefix + head) and ``tutorlib_checkpoint.json`` (base model name,
        architecture, shapes) into ``folder``; returns the paths written."""
        return checkpoints.save_trained(
            folder, self, checkpoints.PREFIX_FILE, prefix_length=self.prefix_length, layers=self.shape.layers,
            kv_heads=self.shape.kv_heads, head_dim=self.shape.head_dim,
            positions_after_prefix=self.positions_after_prefix,
            trained_reparameterised=self.prefix_encoder.reparameterise)

    @classmethod
    def load_checkpoint(cls, folder, model: nn.Module | None = None) -> PrefixTunedModel:
        """Rebuild a saved prefix-tuned model. ``model``: the frozen base (a fresh one is loaded by the
        recorded name when omitted). The prefix comes back as a direct parameter."""
        info, tensors, model = checkpoints.read_trained(folder, checkpoints.PREFIX_FILE, cls.method, model)
        shape = prefix_shape(pretrained_part(model).config)
        if shape.tensor_shape(info["prefix_length"]) != tuple(tensors["prefix"].shape):
            raise PrefixError(f"This checkpoint's prefix {tuple(tensors['prefix'].shape)} was trained on "
                              f"{info['model_name'] or 'another model'}; it does not fit this model "
                              f"({shape.tensor_shape(info['prefix_length'])}).")
        tuned = attach_prefix(model, info["prefix_length"], init=tensors.pop("prefix"),
                              positions_after_prefix=info["positions_after_prefix"], model_name=info["model_name"])
        own = {f"model.{name}": p for name, p in tuned.model.named_parameters()}  # saved: the trainable ones
        checkpoints.copy_into(own, tensors, info, complete=False, error=PrefixError)
        return tuned

    def detach_prefix(self) -> nn.Module:
        """Remove the prefix: the model gets its own attention back, all weights trainable again."""
        hf_model = pretrained_part(self.model)
        switch_back_attention(hf_model, self._attention_before)
        for p in self.model.parameters():
            p.requires_grad_(True)
        return self.model


def _initial_prefix(hf_model, shape, prefix_length, init, init_text, tokenizer, seed):
    """The starting prefix (layers, 2, kv_heads, P, head_dim) for ``init`` = "random" | "words" | a tensor."""
    if isinstance(init, torch.Tensor):
        return init
    if init not in ("random", "words"):
        raise PrefixError(f"init must be 'random', 'words' or a prefix tensor; got {init!r}.")
    ids = start_token_ids(init_text, tokenizer, error=PrefixError,
                          needed_for="keys/values start the prefix" if init == "words" else None)
    if init == "words":
        return words_prefix(hf_model, ids, prefix_length)
    if ids is None:  # measure the model's key/value sizes on random tokens
        ids = torch.randint(0, hf_model.config.vocab_size, (32,), generator=torch.Generator().manual_seed(seed))
    return random_prefix(hf_model, shape, prefix_length, ids, seed)


def attach_prefix(model: nn.Module, prefix_length: int = 10, *, reparameterise: bool = False,
                  init="random", init_text=None, tokenizer=None, mlp_hidden: int = 512,
                  positions_after_prefix: bool = False, train_head: bool = True,
                  model_name: str | None = None, seed: int = 0) -> PrefixTunedModel:
    """Freeze ``model`` and give every attention layer a trainable prefix of ``prefix_length`` vectors.

    Args:
        model: a GPT-2, BERT or Llama-family Hugging Face model, or a tutorlib SequenceClassifier.
            It is changed in place (frozen, attention switched); ``detach_prefix()`` undoes that.
        prefix_length: P >= 1 virtual tokens.
        reparameterise: train through the paper's MLP (see :class:`PrefixEncoder`).
        init: "random" (random vectors as large as the model's own keys/values), "words" (the model's
            own keys/values of ``init_text``'s first P tokens) or a (layers, 2, kv_heads, P, head_dim) tensor.
        init_text: a string (with ``tokenizer``) or token ids; for "random" it only calibrates the scale.
        positions_after_prefix: real tokens take positions P..P+T-1 (PEFT's convention) instead of 0..T-1.
        train_head: for a SequenceClassifier, train its new head together with the prefix.
        model_name: recorded in checkpoints; default: the name the model was loaded by.
        seed: seeds the random start.
    Returns:
        a :class:`PrefixTunedModel`.
    """
    hf_model = pretrained_part(model)
    if isinstance(model, PrefixTunedModel) or uses_prefix_attention(hf_model):
        raise PrefixError("This model already has a prefix attached. Train that PrefixTunedModel, call its "
                          ".detach_prefix() first, or load a fresh model.")
    if not hasattr(hf_model, "config"):
        raise UnsupportedModelError(f"{type(model).__name__} is not a Hugging Face model; attach_prefix needs one of "
                                    f"the supported architectures (tutorlib.loading.models.load_model gives them).")
    if not isinstance(prefix_length, int) or prefix_length < 1:
        raise PrefixError(f"prefix_length must be a whole number >= 1 (got {prefix_length!r}); the paper used 10-200.")
    shape = prefix_shape(hf_model.config)
    start = _initial_prefix(hf_model, shape, prefix_length, init, init_text, tokenizer, seed)
    encoder = PrefixEncoder(shape, prefix_length, reparameterise=reparameterise, mlp_hidden=mlp_hidden, start=start)
    for p in model.parameters():  # the pretrained network never changes
        p.requires_grad_(False)
    if isinstance(model, SequenceClassifier) and train_head:  # its head is new: it must learn too
        for p in model.head.parameters():
            p.requires_grad_(True)
    before = switch_to_prefix_attention(hf_model)
    name = model_name if model_name is not None else model_name_of(hf_model.config)
    return PrefixTunedModel(model, encoder, attention_before=before, model_name=name,
                            positions_after_prefix=positions_after_prefix)


def _describe_start(init_text: str | None) -> str:
    """How :func:`_wrapper`'s prefix starts, for a comparison's table."""
    if init_text:
        return f"the model's own keys/values of {init_text!r}"
    return "random vectors as large as the model's own keys/values"


def _wrapper(reparameterise: bool):
    def wrap(model: nn.Module, setup: MethodSetup) -> PrefixTunedModel:
        start = {}
        if setup.prefix_init_text:  # the model's own keys/values of a text, else random
            start = dict(init="words", init_text=setup.prefix_init_text, tokenizer=setup.tokenizer)
        return attach_prefix(model, setup.prefix_length, reparameterise=reparameterise, seed=setup.seed,
                             model_name=setup.model_name, **start)
    return wrap


PREFIX = register(Method(
    name="prefix", description="prefix tuning: P trainable key/value vectors per layer, the model frozen",
    heads=("classification", "causal-lm"), wrap=_wrapper(reparameterise=False), learning_rate=1e-2,
    load_checkpoint=PrefixTunedModel.load_checkpoint, describe_start=_describe_start, adds_prefix=True,
    colour="#2471a3"))
"""Learning rate 1e-2, about 200x full fine-tuning's: a prefix has no pretrained knowledge of its own to
preserve. Measured: MiniLM's prefix trains at 1e-2 (the README's sentiment table); SmolLM2 on nyt-leads,
15 steps of 4 x 128 tokens, held-out loss 3.83 at the start: prefix 3e-3 -> 3.70, 1e-2 -> 3.56."""

PREFIX_MLP = register(Method(
    name="prefix-mlp",
    description="prefix tuning through the paper's MLP (more parameters while training, a plain prefix stored)",
    heads=("classification", "causal-lm"), wrap=_wrapper(reparameterise=True), learning_rate=1e-4,
    parameter_learning_rates={"sentiment": {"model.head.": 1e-2}}, describe_start=_describe_start, adds_prefix=True,
    colour="#7d3c98"))
"""Learning rate 1e-4, the MLP's: its output moves by about (hidden width) x lr per step, so it needs ~100x
less than a plain prefix. A new classifier head beside it keeps the plain prefix's 1e-2. Measured with
bench/paper.py on MiniLM: MLP 1e-4 with the head at 1e-2 -> 0.69-0.72 accuracy; one shared rate 0.53-0.57.
Not tuned on SmolLM2. Its checkpoint is a plain prefix (the MLP is dropped), loaded as ``prefix``."""
