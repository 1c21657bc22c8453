"""The prefix itself: P trainable key/value vectors for every attention layer, and where they start.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.prefix.encoder import PrefixEncoder, prefix_shape
    >>> model, tok = load_model("tiny-llama")
    >>> shape = prefix_shape(model.config)          # 2 layers, 2 key/value heads (GQA), head_dim 16
    >>> encoder = PrefixEncoder(shape, prefix_length=5)
    >>> tuple(encoder(batch_size=3).shape)          # (B, layers, 2, kv_heads, P, head_dim)
    (3, 2, 2, 2, 5, 16)

Two parameterisations, both from the paper (Li & Liang 2021, section 4.3):

* direct: the prefix tensor (layers, 2, kv_heads, P, head_dim) is the parameter;
* reparameterised: a small embedding (P, hidden_size) goes through an MLP
  (Linear(hidden_size, mlp_hidden) -> tanh -> Linear(mlp_hidden, layers*2*kv_heads*head_dim)).
  The paper found this trains more stably; after training only the MLP's output is kept.

Where the prefix starts matters. Prefix keys far larger than the model's own keys swamp every
attention row (a measured failure: keys 3-4x too large and the MLP variant never left chance level).
So both starts are measured on the model itself:

* ``random_prefix``: random vectors scaled to the root-mean-square size of the model's own keys and
  values, layer by layer;
* ``words_prefix``: the model's own keys/values of P real tokens (the paper's initialisation trick).

The MLP variant is fitted at construction so that its first output equals the chosen start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tutorlib.loading.architectures import sizes_of
from tutorlib.methods.prefix.attention import switch_back_attention, switch_to_prefix_attention, uses_prefix_attention


@dataclass(frozen=True)
class PrefixShape:
    """The sizes a prefix must have to fit one model."""

    architecture: str  # "gpt2" | "bert" | "llama"
    layers: int  # attention layers, each gets its own prefix
    kv_heads: int  # key/value heads (fewer than query heads under GQA)
    head_dim: int  # size of one key or value vector
    hidden_size: int  # model width, the size of the MLP variant's input embedding
    max_positions: int  # position embeddings (or RoPE's trained range)

    def tensor_shape(self, prefix_length: int) -> tuple[int, int, int, int, int]:
        """(layers, 2, kv_heads, P, head_dim): the shape of one stored prefix; [l, 0] keys, [l, 1] values."""
        return (self.layers, 2, self.kv_heads, prefix_length, self.head_dim)


def prefix_shape(config) -> PrefixShape:
    """Read a :class:`PrefixShape` from a Hugging Face config.

    Raises:
        tutorlib.loading.architectures.UnsupportedModelError: a family the kit does not support.
    """
    sizes = sizes_of(config)  # the per-family facts: tutorlib.loading.architectures
    return PrefixShape(architecture=sizes.architecture, layers=sizes.layers, kv_heads=sizes.kv_heads,
                       head_dim=sizes.head_dim, hidden_size=sizes.hidden, max_positions=sizes.max_positions)


@torch.no_grad()
def model_key_values(hf_model, input_ids) -> torch.Tensor:
    """The keys and values a frozen model computes for one token sequence, in every layer.

    Args:
        hf_model: a Hugging Face GPT-2, BERT or Llama model (for a SequenceClassifier: ``.encoder``).
        input_ids: (T,) token ids; they take positions 0..T-1.

    Returns:
        (layers, 2, kv_heads, T, head_dim): [l, 0] keys and [l, 1] values of layer l, as attention
        sees them (after RoPE for Llama).
    """
    before = None if uses_prefix_attention(hf_model) else switch_to_prefix_attention(hf_model)
    was_training = hf_model.training
    hf_model.eval()
    recorder: dict = {}
    try:
        ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(1, -1)  # (1, T)
        hf_model(input_ids=ids, attention_mask=torch.ones_like(ids), attention_recorder=recorder)
    finally:
        hf_model.train(was_training)
        if before is not None:
            switch_back_attention(hf_model, before)
    layers = [torch.stack([recorder[i]["key"][0], recorder[i]["value"][0]]) for i in sorted(recorder)]
    return torch.stack(layers)  # (layers, 2, kv_heads, T, head_dim)


def words_prefix(hf_model, input_ids, prefix_length: int) -> torch.Tensor:
    """The paper's start: the model's own keys/values of the first P tokens of a real text.

    Args:
        input_ids: (T,) token ids with T >= prefix_length.
    Returns:
        (layers, 2, kv_heads, P, head_dim).
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(-1)
    if ids.numel() < prefix_length:
        raise ValueError(
            f"init='words' needs at least prefix_length={prefix_length} tokens of text, but init_text "
            f"gives {ids.numel()}. Use a longer init_text, a shorter prefix, or init='random'."
        )
    return model_key_values(hf_model, ids[:prefix_length]).clone()


def random_prefix(hf_model, shape: PrefixShape, prefix_length: int, calibration_ids, seed: int = 0) -> torch.Tensor:
    """Random keys/values as large (root-mean-square) as the model's own, layer by layer.

    Args:
        calibration_ids: (T,) token ids the model reads once to measure its key/value sizes.
        seed: seeds the random draw (the model's weights are untouched).
    Returns:
        (layers, 2, kv_heads, P, head_dim); each layer's keys (and values) have the RMS of the model's.
    """
    real = model_key_values(hf_model, calibration_ids)  # (layers, 2, kv_heads, T, head_dim)
    rms = real.pow(2).mean(dim=(2, 3, 4), keepdim=True).sqrt()  # (layers, 2, 1, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(shape.tensor_shape(prefix_length), generator=generator)  # unit RMS
    return noise * rms


class PrefixEncoder(nn.Module):
    """P virtual tokens' keys and values for every layer: the only weights prefix tuning trains.

    Args:
        shape: the model's sizes (:func:`prefix_shape`).
        prefix_length: P, the number of virtual tokens (>= 1).
        reparameterise: False: the prefix tensor is the parameter (layers*2*kv_heads*P*head_dim
            numbers). True: the paper's MLP produces it; more parameters while training, the same
            number stored afterwards (:meth:`export`).
        mlp_hidden: width of the MLP's hidden layer (the paper used 512 and 800).
        start: the initial prefix (layers, 2, kv_heads, P, head_dim); default small random values.
            The MLP is fitted so that its first output equals ``start``.
    """

    def __init__(self, shape: PrefixShape, prefix_length: int, *, reparameterise: bool = False,
                 mlp_hidden: int = 512, start: torch.Tensor | None = None):
        super().__init__()
        if prefix_length < 1:
            raise ValueError(f"prefix_length must be at least 1 (got {prefix_length}).")
        self.shape, self.prefix_length, self.reparameterise = shape, prefix_length, reparameterise
        if start is None:
            start = 0.02 * torch.randn(shape.tensor_shape(prefix_length))
        if tuple(start.shape) != shape.tensor_shape(prefix_length):
            raise ValueError(f"start has shape {tuple(start.shape)}; this model needs "
                             f"{shape.tensor_shape(prefix_length)} (layers, 2, kv_heads, P, head_dim).")
        start = start.detach().float()
        if not reparameterise:
            self.prefix = nn.Parameter(start.clone())  # (layers, 2, kv_heads, P, head_dim)
            return
        out = shape.layers * 2 * shape.kv_heads * shape.head_dim
        self.embedding = nn.Embedding(prefix_length, shape.hidden_size)  # P' in the paper: (P, D)
        self.mlp = nn.Sequential(nn.Linear(shape.hidden_size, mlp_hidden), nn.Tanh(), nn.Linear(mlp_hidden, out))
        self._fit_last_layer(start)

    @torch.no_grad()
    def _fit_last_layer(self, target: torch.Tensor) -> None:
        """Solve the last Linear layer (least squares, minimum norm) so the MLP outputs ``target``:
        with P <= mlp_hidden + 1 rows the fit is exact."""
        hidden = self.mlp[1](self.mlp[0](self.embedding.weight))  # (P, mlp_hidden)
        design = torch.cat([hidden, torch.ones(len(hidden), 1)], dim=1)  # (P, mlp_hidden + 1), last column: bias
        wanted = target.permute(3, 0, 1, 2, 4).reshape(self.prefix_length, -1)  # (P, layers*2*kv_heads*head_dim)
        solution = torch.linalg.pinv(design) @ wanted  # (mlp_hidden + 1, out)
        self.mlp[2].weight.copy_(solution[:-1].T)
        self.mlp[2].bias.copy_(solution[-1])

    def prefix_tensor(self) -> torch.Tensor:
        """The current prefix, (layers, 2, kv_heads, P, head_dim), differentiable."""
        if not self.reparameterise:
            return self.prefix
        flat = self.mlp(self.embedding.weight)  # (P, layers*2*kv_heads*head_dim)
        s = self.shape
        return flat.view(self.prefix_length, s.layers, 2, s.kv_heads, s.head_dim).permute(1, 2, 3, 0, 4)

    def forward(self, batch_size: int = 1) -> torch.Tensor:
        """The prefix for a batch: (B, layers, 2, kv_heads, P, head_dim), a broadcast view (no copy).
        ``out[:, l, 0]`` are layer l's keys and ``out[:, l, 1]`` its values, each (B, kv_heads, P, head_dim)."""
        prefix = self.prefix_tensor()
        return prefix.unsqueeze(0).expand(batch_size, *prefix.shape)

    @torch.no_grad()
    def export(self) -> torch.Tensor:
        """The trained prefix alone, (layers, 2, kv_heads, P, head_dim), detached: all that needs keeping
        after training (the MLP, if any, is dropped, as in the paper)."""
        return self.prefix_tensor().detach().clone().contiguous()
