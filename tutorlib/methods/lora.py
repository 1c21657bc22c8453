"""LoRA (Hu et al. 2021): frozen weights W plus a trainable low-rank update on a few linear layers.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.lora import attach_lora
    >>> model, tok = load_model("tiny-llama")
    >>> tuned = attach_lora(model, rank=4)                    # default targets: the query and value projections
    >>> [name for name, p in tuned.named_parameters() if p.requires_grad][:2]
    ['model.model.layers.0.self_attn.q_proj.lora_A', 'model.model.layers.0.self_attn.q_proj.lora_B']
    >>> batch = tok(["a short text"], return_tensors="pt")
    >>> out = tuned(**batch, labels=batch["input_ids"])       # out.loss, out.logits (1, 12, 103)

A chosen linear layer ``y = x W^T + b`` (W: out x in) becomes

    y = x W^T + b + (alpha / r) * x A^T B^T          A: r x in, B: out x r, r << in, out

W and b stay frozen; only A and B train: r * (in + out) numbers instead of in * out. B starts at zero,
so the first forward pass is exactly the pretrained model's, and A starts random (PEFT's init,
Kaiming-uniform), so that B's gradient (which is proportional to A x) is not zero.

Serving: ``merge()`` adds (alpha / r) B A into W once. The model then has its original shape and
cost: no extra matrix product, no extra key or value in attention (unlike a prefix, which adds P
keys and values to every attention call). ``unmerge()`` subtracts it again (equal to W up to fp32
rounding). A checkpoint holds A and B alone (and a classifier's new head): kilobytes, not the model.

Which layers: Hu et al. adapt the attention query and value projections; each family's names for them
are in its :class:`~tutorlib.loading.architectures.Architecture` record (``lora_targets``, e.g. Llama's
``("q_proj", "v_proj")``). ``targets=`` takes any names of linear layers (e.g. add ``"key"``, or the
MLP's). GPT-2 computes query, key and value in one fused matrix (``c_attn``), so on GPT-2 the default
adapts all three, as PEFT does.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from tutorlib.loading.architectures import UnsupportedModelError, architecture_of, model_name_of
from tutorlib.loading.models import SequenceClassifier, head_parameters, pretrained_part
from tutorlib.methods import checkpoints
from tutorlib.methods.full import FullFineTunedModel
from tutorlib.methods.registry import Method, MethodSetup, register

LORA_FILE = "lora.safetensors"

class LoRAError(ValueError):
    """A LoRA mistake a learner can fix (no such layer, a bad rank, attached twice, a checkpoint that does not fit)."""


class LoRALinear(nn.Module):
    """One frozen linear layer plus its trainable low-rank update: base(x) + (alpha / r) * x A^T B^T.

    ``base``: an ``nn.Linear`` (weight out x in) or GPT-2's ``Conv1D`` (weight in x out); it is kept
    as it is, frozen. ``lora_A``: (r, in), ``lora_B``: (out, r), zero at the start.
    """

    def __init__(self, base: nn.Module, rank: int, alpha: float, dropout: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.base = base
        self.transposed = isinstance(base, Conv1D)  # Conv1D computes x @ W + b: W is (in, out)
        out_features, in_features = self.base_weight_out_in().shape
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, dtype=weight.dtype, device=weight.device))
        # PEFT's init (Kaiming-uniform with a = sqrt(5), nn.Linear's own): uniform in +-1/sqrt(in).
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def base_weight_out_in(self) -> torch.Tensor:
        """The frozen weight as (out, in), whatever way the layer stores it."""
        return self.base.weight.T if self.transposed else self.base.weight

    def delta_weight(self) -> torch.Tensor:
        """The update LoRA adds to W: (alpha / r) * B A, (out, in)."""
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) -> (..., out). Merged: the base layer alone (the update is inside its weight)."""
        out = self.base(x)
        if self.merged:
            return out
        low_rank = self.dropout(x) @ self.lora_A.T  # (..., r): the only extra activations kept
        return out + self.scale * (low_rank @ self.lora_B.T)  # (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + (alpha / r) B A; the forward pass is then the plain layer's (no extra cost)."""
        if not self.merged:
            delta = self.delta_weight().to(self.base.weight.dtype)
            self.base.weight += delta.T if self.transposed else delta
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W <- W - (alpha / r) B A: the frozen weight again (up to rounding), the update kept apart."""
        if self.merged:
            delta = self.delta_weight().to(self.base.weight.dtype)
            self.base.weight -= delta.T if self.transposed else delta
            self.merged = False

    def extra_repr(self) -> str:
        out_features, in_features = self.lora_B.shape[0], self.lora_A.shape[1]
        return f"in={in_features}, out={out_features}, rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


class LoRATunedModel(FullFineTunedModel):
    """A frozen model whose chosen linear layers carry a trainable low-rank update; build it with
    :func:`attach_lora`.

    Trainable: every ``lora_A``/``lora_B`` (and ``model.head.*`` for a SequenceClassifier, whose head is new).
    ``forward`` and ``generate`` are full fine-tuning's (the model's own): the update lives inside the
    layers. What differs is what trains and what a checkpoint keeps.
    """

    method = "lora"

    def __init__(self, model: nn.Module, layers: dict[str, LoRALinear], *, targets: tuple[str, ...], rank: int,
                 alpha: float, dropout: float, model_name: str = ""):
        super().__init__(model, model_name=model_name)
        self.targets, self.rank, self.alpha, self.dropout = targets, rank, alpha, dropout
        self._layer_names = list(layers)  # paths inside self.model; the layers themselves live there

    def lora_layers(self) -> dict[str, LoRALinear]:
        """Path inside ``self.model`` -> its :class:`LoRALinear`, in model order."""
        modules = dict(self.model.named_modules())
        return {name: modules[name] for name in self._layer_names}

    # ---------------------------------------------------------------- serving
    @property
    def merged(self) -> bool:
        """True after :meth:`merge`: the updates are inside the frozen weights."""
        return all(layer.merged for layer in self.lora_layers().values())

    def merge(self) -> LoRATunedModel:
        """Add every update into its weight, for serving: the same outputs, the plain model's cost.
        Train no further while merged (A and B would get no gradient): :meth:`unmerge` first."""
        for layer in self.lora_layers().values():
            layer.merge()
        return self

    def unmerge(self) -> LoRATunedModel:
        """Take every update back out of its weight (training can go on)."""
        for layer in self.lora_layers().values():
            layer.unmerge()
        return self

    # ---------------------------------------------------------------- keeping the result
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: every ``<layer>.lora_A`` (r, in) and ``<layer>.lora_B`` (out, r), and a
        classifier's head; the frozen weights are not stored."""
        tensors = {}
        for name, layer in self.lora_layers().items():
            tensors[f"{name}.lora_A"] = layer.lora_A.detach()
            tensors[f"{name}.lora_B"] = layer.lora_B.detach()
        return {**tensors, **{n: p.detach() for n, p in head_parameters(self.model).items()}}

    def save_checkpoint(self, folder) -> list[Path]:
        """Write ``lora.safetensors`` (A, B, a classifier's head) and ``tutorlib_checkpoint.json``; returns the
        paths."""
        return checkpoints.save_trained(folder, self, LORA_FILE, targets=list(self.targets), rank=self.rank,
                                        alpha=self.alpha, dropout=self.dropout)

    @classmethod
    def load_checkpoint(cls, folder, model: nn.Module | None = None) -> LoRATunedModel:
        """Rebuild a saved LoRA model (unmerged). ``model``: the frozen base (a fresh one is loaded by the
        recorded name when omitted)."""
        info, tensors, model = checkpoints.read_trained(folder, LORA_FILE, cls.method, model)
        family = pretrained_part(model).config.model_type
        if family != info["architecture"]:
            raise LoRAError(f"The checkpoint in {folder} was trained on {info['model_name'] or 'a model'} "
                            f"({info['architecture']}); this model is a {family}: load the model it was trained on.")
        tuned = attach_lora(model, rank=info["rank"], alpha=info["alpha"], targets=tuple(info["targets"]),
                            dropout=info["dropout"], model_name=info["model_name"])
        own = {f"{n}.{k}": getattr(layer, k) for n, layer in tuned.lora_layers().items() for k in ("lora_A", "lora_B")}
        checkpoints.copy_into({**own, **head_parameters(tuned.model)}, tensors, info, error=LoRAError)
        return tuned


def _matching_layers(hf_model: nn.Module, targets: tuple[str, ...]) -> list[str]:
    """Paths of the linear layers whose own name (the last part of the path) is one of ``targets``."""
    return [name for name, module in hf_model.named_modules()
            if name.rsplit(".", 1)[-1] in targets and isinstance(module, (nn.Linear, Conv1D))]


def attach_lora(model: nn.Module, rank: int = 8, alpha: float | None = None, *, targets: tuple[str, ...] | None = None,
                dropout: float = 0.0, seed: int = 0, train_head: bool = True,
                model_name: str | None = None) -> LoRATunedModel:
    """Freeze ``model`` and give each target linear layer a trainable low-rank update (B A, B = 0 at the start).

    Args:
        model: a Hugging Face causal LM or a :class:`~tutorlib.loading.models.SequenceClassifier`
            (changed in place: frozen, its target layers replaced by :class:`LoRALinear`).
        rank: r, the rank of the update (Hu et al.: 1-8 suffice for the attention projections).
        alpha: the update is scaled by alpha / r; default alpha = r (scale 1: Hu et al. set alpha to the
            first r they tried and did not tune it).
        targets: names of the linear layers to adapt (the last part of their path, e.g. ``("query", "value")``);
            default: the family's query and value projections (its Architecture's ``lora_targets``).
        dropout: dropout on the input of the low-rank path only (0: none, PEFT's default).
        seed: seeds A's random start.
        train_head: a classifier's new head trains too (it has no pretrained weights).
        model_name: recorded in checkpoints; default: the name the model was loaded by.
    """
    if getattr(model, "method", None) is not None:
        raise LoRAError(f"This model is already wrapped for {model.method!r} training; pass the plain model.")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise LoRAError(f"rank must be a whole number >= 1 (got {rank!r}); Hu et al. used 1-64, 8 is common.")
    alpha = float(rank if alpha is None else alpha)
    if alpha <= 0:
        raise LoRAError(f"alpha must be > 0 (got {alpha!r}); the update is scaled by alpha / rank.")
    hf_model = pretrained_part(model)
    family = hf_model.config.model_type
    if targets is None:
        try:
            targets = architecture_of(hf_model.config).lora_targets
        except UnsupportedModelError as err:
            raise LoRAError(f"No default LoRA targets for model family {family!r}: pass targets=(...) with the names "
                            f"of its query and value projections.\n{err}") from None
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    names = _matching_layers(hf_model, targets)
    found = {n.rsplit(".", 1)[-1] for n in names}
    missing = [t for t in targets if t not in found]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in hf_model.named_modules()
                         if isinstance(m, (nn.Linear, Conv1D))})
        raise LoRAError(f"No linear layer named {missing[0]!r} in this {family} model; targets= takes names of "
                        f"its linear layers: {', '.join(linear)}.")
    for p in model.parameters():  # the pretrained network never changes
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    prefix = "encoder." if isinstance(model, SequenceClassifier) else ""
    layers = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = hf_model.get_submodule(parent_name)
        layer = LoRALinear(getattr(parent, child), rank, alpha, dropout, generator=generator)
        setattr(parent, child, layer)
        layers[prefix + name] = layer
    if isinstance(model, SequenceClassifier) and train_head:  # its head is new: it must learn too
        for p in model.head.parameters():
            p.requires_grad_(True)
    name = model_name if model_name is not None else model_name_of(hf_model.config)
    return LoRATunedModel(model, layers, targets=targets, rank=rank, alpha=alpha, dropout=dropout, model_name=name)


def _wrap(model: nn.Module, setup: MethodSetup) -> LoRATunedModel:
    return attach_lora(model, seed=setup.seed, model_name=setup.model_name)


LORA = register(Method(
    name="lora",
    description="LoRA: a trainable rank-8 update (alpha/r) B A on the attention query and value, the model frozen",
    heads=("classification", "causal-lm"), wrap=_wrap, learning_rate=1e-2,
    load_checkpoint=LoRATunedModel.load_checkpoint, colour="#d68910"))
"""Learning rate 1e-2, chosen on movie-snippets' validation split with MiniLM under the fast sentiment budget
(32 steps of 16; ``bench/neighbours_lr.py --fast --methods lora``, results in
``bench/results/neighbours_lr-fast-lora.json``): 1e-3 0.567, 3e-3 0.733, 1e-2 0.783 accuracy. Far above Hu et
al.'s 4e-4 to 5e-4 (RoBERTa-base, many epochs): in a few steps B must grow from zero and the new classifier
head trains at the same rate. 1e-2 is the top of the grid; not tuned in full mode or for summarisation."""
