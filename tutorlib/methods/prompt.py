"""Prompt tuning (Lester et al. 2021): P trainable input embeddings in front of the text, the model frozen.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.prompt import attach_prompt
    >>> model, tok = load_model("tiny-gpt2")
    >>> tuned = attach_prompt(model, prompt_length=10)
    >>> [name for name, p in tuned.named_parameters() if p.requires_grad]
    ['prompt']
    >>> batch = tok(["a short text"], return_tensors="pt")
    >>> out = tuned(**batch, labels=batch["input_ids"])       # out.logits (1, 12, 103): the real tokens only

The model reads P vectors that no token produced, then the text's own token embeddings:

    inputs = [prompt (P x d); embed(token 1); ...; embed(token T)]       d: the model's width

Only the prompt trains: P x d numbers (10 x 384 = 3,840 for MiniLM), the fewest of any method here.
A prefix (:mod:`tutorlib.methods.prefix`) puts trained keys and values into *every* layer; a prompt
only enters at the bottom, and every layer above turns it into keys and values with frozen weights.
Lester et al. found that this gap closes only for models of billions of parameters.

What changes around the prompt, for every family (GPT-2, BERT, Llama):

* attention mask: P ones in front (every token may attend to the prompt; causal models see it as the
  earliest tokens);
* positions: the prompt takes positions 0..P-1 and the real tokens P..P+T-1, counted from the first
  real token (left padding changes nothing); so P + T must fit in the model's positions;
* labels of a language model: P times -100 in front (the prompt is never predicted);
* BERT's token type ids: zeros for the prompt;
* the output: the P prompt positions are cut off, so logits (or a classifier's pooled features) cover
  the T real tokens only, as for every other method.

The start: the embeddings of a text's tokens (``init="words"``, repeated to fill P, as PEFT does), or
of P random vocabulary tokens (``init="vocab"``, Lester et al.'s "sampled vocabulary"): either is a
point the model already knows how to read, unlike random noise.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from tutorlib.loading.architectures import model_name_of, sizes_of
from tutorlib.loading.models import SequenceClassifier, head_of, head_parameters, pretrained_part
from tutorlib.methods import checkpoints
from tutorlib.methods.devices import to_model_device
from tutorlib.methods.prefix.model import positions_from_mask
from tutorlib.methods.registry import Method, MethodSetup, register
from tutorlib.methods.start_text import start_token_ids

PROMPT_FILE = "prompt.safetensors"


class PromptError(ValueError):
    """A prompt-tuning mistake a learner can fix (too long, attached twice, a prompt of the wrong width)."""


class PromptTunedModel(nn.Module):
    """A frozen model that reads a trainable prompt before every text; build it with :func:`attach_prompt`.

    Trainable: ``prompt`` (P, d) (and ``model.head.*`` for a SequenceClassifier, whose head is new).
    """

    method = "prompt"

    def __init__(self, model: nn.Module, prompt: torch.Tensor, *, model_name: str = ""):
        super().__init__()
        self.model = model
        self.prompt = nn.Parameter(prompt.detach().clone())  # (P, d)
        self.prompt_length = prompt.shape[0]
        self.head = head_of(model)  # "causal-lm", "classification" or "encoder"
        self.model_name = model_name

    # ---------------------------------------------------------------- the inputs around the prompt
    def _check_length(self, tokens: int, what: str) -> None:
        limit = sizes_of(pretrained_part(self.model).config).max_positions
        if self.prompt_length + tokens > limit:
            raise PromptError(f"{what} plus the {self.prompt_length} prompt vectors need {self.prompt_length + tokens} "
                              f"positions, but this model has {limit}. Truncate the input (e.g. tokenizer(..., "
                              f"truncation=True, max_length={limit - self.prompt_length})) or use a shorter prompt.")

    def _with_prompt(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids, attention_mask (B, T) -> inputs_embeds (B, P+T, d) and the mask (B, P+T), prompt first."""
        embeds = pretrained_part(self.model).get_input_embeddings()(input_ids)  # (B, T, d)
        rows = input_ids.shape[0]
        prompt = self.prompt.to(embeds.dtype).expand(rows, -1, -1)  # (B, P, d)
        visible = torch.ones(rows, self.prompt_length, dtype=attention_mask.dtype, device=attention_mask.device)
        return torch.cat([prompt, embeds], dim=1), torch.cat([visible, attention_mask], dim=1)

    def _add_prompt(self, module, args, kwargs):
        """Forward pre-hook of the Hugging Face model: token ids -> [prompt; token embeddings], and the mask,
        positions, labels and token types made P longer to match."""
        if args:
            raise PromptError("Pass the inputs by name (input_ids=..., attention_mask=...).")
        input_ids = kwargs.pop("input_ids")
        mask = kwargs.get("attention_mask")
        mask = torch.ones_like(input_ids) if mask is None else mask
        kwargs["inputs_embeds"], kwargs["attention_mask"] = self._with_prompt(input_ids, mask)
        P = self.prompt_length
        rows = input_ids.shape[0]
        positions = kwargs.get("position_ids")
        if positions is None:  # prompt 0..P-1, then each row's real tokens from P on (padding skipped)
            kwargs["position_ids"] = positions_from_mask(kwargs["attention_mask"])
        else:  # the caller's positions of the real tokens, moved behind the prompt
            prompt_positions = torch.arange(P, device=positions.device).expand(rows, P)
            kwargs["position_ids"] = torch.cat([prompt_positions, positions + P], dim=1)
        if kwargs.get("token_type_ids") is not None:
            types = kwargs["token_type_ids"]
            kwargs["token_type_ids"] = torch.cat([types.new_zeros(rows, P), types], 1)
        labels = kwargs.get("labels")
        if labels is not None and labels.dim() == 2:  # a language model's: the prompt is never predicted
            kwargs["labels"] = torch.cat([labels.new_full((rows, P), -100), labels], dim=1)
        keep = kwargs.get("logits_to_keep")
        if torch.is_tensor(keep) and keep.dim() == 2:  # (B, T) positions to project: none of the prompt's
            kwargs["logits_to_keep"] = torch.cat([keep.new_zeros(rows, P), keep], dim=1)
        return args, kwargs

    def _drop_prompt_positions(self, module, args, kwargs, output):
        """Forward hook: keep the T real tokens of the logits (causal LM) or hidden states (an encoder).
        Logits of chosen positions only (``logits_to_keep`` a mask: (N, vocab)) hold no prompt position."""
        for key in ("logits", "last_hidden_state"):
            if getattr(output, key, None) is not None:
                if key == "logits" and output.logits.dim() == 2:
                    break
                setattr(output, key, getattr(output, key)[:, self.prompt_length:])
                break
        return output

    @contextlib.contextmanager
    def _prompt_in_place(self):
        """While inside: every call of the Hugging Face model reads the prompt first."""
        hf_model = pretrained_part(self.model)
        before = hf_model.register_forward_pre_hook(self._add_prompt, with_kwargs=True)
        after = hf_model.register_forward_hook(self._drop_prompt_positions, with_kwargs=True)
        try:
            yield
        finally:
            before.remove()
            after.remove()

    # ---------------------------------------------------------------- forward and generate
    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        """Run the frozen model with the prompt in front of every row.

        Args:
            input_ids: (B, T). attention_mask: (B, T), 1 = real token (default all ones).
            labels: as the wrapped model expects ((B, T) for causal LMs, -100 = ignore; (B,) classes).
            kwargs: passed to the wrapped model (``position_ids`` (B, T) of the real tokens are moved behind the
                prompt).
        Returns:
            The wrapped model's output over the real tokens: ``.logits`` (B, T, vocab) or (B, labels), ``.loss``.
        """
        input_ids, attention_mask, labels = to_model_device(self, input_ids, attention_mask, labels)
        self._check_length(input_ids.shape[1], f"An input of {input_ids.shape[1]} tokens")
        if labels is not None:
            kwargs["labels"] = labels
        with self._prompt_in_place():
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, **generate_kwargs):
        """``model.generate`` reading the prompt first (causal LMs; batch with left padding).
        Returns (B, T + new) token ids: the input, then the new tokens, as a plain model's generate
        (with ``return_dict_in_generate=True``: its output, ``.sequences`` so completed)."""
        if self.head != "causal-lm":
            raise PromptError(f"generate needs a causal language model; this one is a {self.head} model.")
        input_ids, attention_mask = to_model_device(self, input_ids, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        self._check_length(input_ids.shape[1] + (generate_kwargs.get("max_new_tokens") or 0),
                           f"An input of {input_ids.shape[1]} tokens plus "
                           f"{generate_kwargs.get('max_new_tokens')} new ones")
        embeds, mask = self._with_prompt(input_ids, attention_mask)  # (B, P+T, d), (B, P+T)
        generate_kwargs.setdefault("pad_token_id", self.model.config.pad_token_id)
        out = self.model.generate(inputs_embeds=embeds, attention_mask=mask, **generate_kwargs)
        new = out.sequences if hasattr(out, "sequences") else out  # (B x returned sequences, new): no input ids
        rows = input_ids.repeat_interleave(new.shape[0] // input_ids.shape[0], dim=0)  # beams / several returned
        sequences = torch.cat([rows, new], dim=1)  # (B, T + new)
        if hasattr(out, "sequences"):  # return_dict_in_generate=True: the scores etc. stay as they are
            out.sequences = sequences
            return out
        return sequences

    # ---------------------------------------------------------------- keeping the result
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: ``prompt`` (P, d) and a classifier's head; the model is not stored."""
        return {"prompt": self.prompt.detach(), **{n: p.detach() for n, p in head_parameters(self.model).items()}}

    def save_checkpoint(self, folder) -> list[Path]:
        """Write ``prompt.safetensors`` and ``tutorlib_checkpoint.json``; returns the paths."""
        return checkpoints.save_trained(folder, self, PROMPT_FILE, prompt_length=self.prompt_length)

    @classmethod
    def load_checkpoint(cls, folder, model: nn.Module | None = None) -> PromptTunedModel:
        """Rebuild a saved prompt-tuned model. ``model``: the frozen base (a fresh one is loaded by the
        recorded name when omitted)."""
        info, tensors, model = checkpoints.read_trained(folder, PROMPT_FILE, cls.method, model)
        tuned = attach_prompt(model, info["prompt_length"], init=tensors.pop("prompt"), model_name=info["model_name"])
        checkpoints.copy_into(head_parameters(tuned.model), tensors, info, error=PromptError)
        return tuned


def _initial_prompt(embedding: nn.Embedding, prompt_length: int, init, init_text, tokenizer, seed: int) -> torch.Tensor:
    """The starting prompt (P, d) for ``init`` = "vocab" | "words" | a tensor."""
    weight = embedding.weight.detach()  # (vocab, d)
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (prompt_length, weight.shape[1]):
            raise PromptError(f"init has shape {tuple(init.shape)}; this model needs "
                              f"({prompt_length}, {weight.shape[1]}) "
                              f"= (prompt_length, the model's width).")
        return init.to(weight.dtype)
    if init == "vocab":  # P tokens drawn at random: a start the model knows how to read
        ids = torch.randint(0, weight.shape[0], (prompt_length,), generator=torch.Generator().manual_seed(seed))
        return weight[ids.to(weight.device)].clone()
    if init != "words":
        raise PromptError(f"init must be 'vocab', 'words' or a (P, d) tensor; got {init!r}.")
    ids = start_token_ids(init_text, tokenizer, error=PromptError, needed_for="token embeddings start the prompt")
    ids = torch.as_tensor(ids * -(-prompt_length // len(ids)))[:prompt_length]  # repeated to fill P
    return weight[ids.to(weight.device)].clone()


def attach_prompt(model: nn.Module, prompt_length: int = 10, *, init="vocab", init_text=None, tokenizer=None,
                  seed: int = 0, train_head: bool = True, model_name: str | None = None) -> PromptTunedModel:
    """Freeze ``model`` and put ``prompt_length`` trainable input embeddings in front of every text.

    Args:
        model: a Hugging Face causal LM or a :class:`~tutorlib.loading.models.SequenceClassifier`
            (changed in place: frozen).
        prompt_length: P, the number of prompt vectors (Lester et al.: 20-100; past 20 it mattered little).
        init: "vocab" (the embeddings of P random vocabulary tokens), "words" (those of ``init_text``'s
            tokens, repeated to fill P) or a (P, d) tensor.
        init_text: a string (with ``tokenizer``) or token ids, for ``init="words"``.
        seed: seeds the "vocab" start.
        train_head: a classifier's new head trains too (it has no pretrained weights).
        model_name: recorded in checkpoints; default: the name the model was loaded by.
    """
    if getattr(model, "method", None) is not None:
        raise PromptError(f"This model is already wrapped for {model.method!r} training; pass the plain model.")
    if isinstance(prompt_length, bool) or not isinstance(prompt_length, int) or prompt_length < 1:
        raise PromptError(f"prompt_length must be a whole number >= 1 (got {prompt_length!r}); Lester et al. used "
                          "1-150.")
    hf_model = pretrained_part(model)
    limit = sizes_of(hf_model.config).max_positions
    if prompt_length >= limit:
        raise PromptError(f"prompt_length {prompt_length} leaves no position for the text: this model has {limit}.")
    start = _initial_prompt(hf_model.get_input_embeddings(), prompt_length, init, init_text, tokenizer, seed)
    for p in model.parameters():  # the pretrained network never changes
        p.requires_grad_(False)
    if isinstance(model, SequenceClassifier) and train_head:  # its head is new: it must learn too
        for p in model.head.parameters():
            p.requires_grad_(True)
    name = model_name if model_name is not None else model_name_of(hf_model.config)
    return PromptTunedModel(model, start, model_name=name)


def _wrap(model: nn.Module, setup: MethodSetup) -> PromptTunedModel:
    start = {}
    if setup.prefix_init_text:  # the same instruction text a prefix starts from, here as token embeddings
        start = dict(init="words", init_text=setup.prefix_init_text, tokenizer=setup.tokenizer)
    return attach_prompt(model, setup.prefix_length, seed=setup.seed, model_name=setup.model_name, **start)


def _describe_start(init_text: str | None) -> str:
    """How :func:`_wrap`'s prompt starts, for a comparison's table."""
    if init_text:
        return f"the input embeddings of the tokens of {init_text!r} (the first P, repeated if fewer)"
    return "the input embeddings of P random vocabulary tokens"


PROMPT = register(Method(
    name="prompt", description="prompt tuning: P trainable input embeddings before the text, the model frozen",
    heads=("classification", "causal-lm"), wrap=_wrap, learning_rate=1e-2,
    load_checkpoint=PromptTunedModel.load_checkpoint, describe_start=_describe_start, colour="#17a589"))
"""Learning rate 1e-2, chosen on movie-snippets' validation split with MiniLM under the fast sentiment budget
(``bench/neighbours_lr.py --fast --methods prompt``, ``bench/results/neighbours_lr-fast-prompt.json``):
3e-3 0.637, 1e-2 0.713, 3e-2 0.700 accuracy; not tuned in full mode or for summarisation. P = the comparison's
prefix length (10 by default), so the prompt and the prefix get the same number of virtual tokens. It starts from
the task's start text as the prefix does, but as the text's token embeddings, not the model's keys/values of it
(the comparison's table says which)."""
