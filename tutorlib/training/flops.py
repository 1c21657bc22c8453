"""How much arithmetic one training step needs, and the limit that sets for the speed-up of prefix tuning,
LoRA and prompt tuning over full fine-tuning.

    >>> from transformers import GPT2Config
    >>> from tutorlib.training.flops import step_flops, prefix_full_limit
    >>> config = GPT2Config(n_layer=12, n_embd=768, n_head=12)          # GPT-2 small
    >>> full = step_flops(config, batch_size=4, seq_len=128, method="full")
    >>> round(full.total / 1e12, 2)                                      # TFLOPs per step
    0.39
    >>> round(prefix_full_limit(config, 4, 128, prefix_length=10), 3)  # prefix step / full step, at best
    0.669

Why a limit at all. A training step of a matrix multiplication ``y = x @ W`` costs three products of
the same size: the forward one, the gradient for the input (``dx = dy @ W^T``, so that earlier layers
can learn) and the gradient for the weight (``dW = x^T @ dy``). Full fine-tuning does all three:
about 3x the forward arithmetic. Prefix tuning freezes ``W``, so it skips ``dW``, but it still needs
``dx`` in every layer, because the prefix of layer 1 only learns from gradients that flow back through
layers L..2. So its step needs about 2x the forward arithmetic: a prefix step can be at best about
**2/3** of a full step, never 1/10. Corrections, all counted below:

* attention's own products (``Q K^T`` and ``weights @ V``) have no weights: both methods need both
  of their gradients, which pulls the ratio *up* (towards 1) for long sequences;
* the prefix adds ``P`` key/value columns to every attention row (more work, ratio up);
* the LM head (hidden -> vocabulary) is a big frozen matrix: prefix tuning skips its weight gradient too;
* layer 1's query/key/value projections read the frozen embeddings: prefix tuning needs no input
  gradient there (ratio down, a little), and no gradient for layer 1's queries.

Conventions: a multiply-add is 2 FLOPs; only matrix products are counted (they are >95% of the
arithmetic; softmax, norms, activations and the optimizer are memory-bound and cost time, not FLOPs,
which is why a measured ratio on a CPU misses this limit). Attention is counted dense: all ``T x (P+T)``
scores, also the causal half that a fused kernel may skip.

The two neighbours have steps of their own shape (``method="lora"`` and ``method="prompt"``):

* LoRA freezes ``W`` as well, but adds two thin products ``(x A^T) B^T`` on each adapted layer
  (``2 x tokens x r x (in + out)``), and *those* need their weight gradients (dA, dB) and their input
  gradients. Every other product is the prefix's: no dW, dx everywhere but layer 1's Q/K/V. At r = 8 on
  the query and value the thin products are ~1% of the arithmetic: LoRA's limit is about the prefix's.
  Merged for serving, it costs exactly the plain model (:func:`serving_overhead`).
* Prompt tuning's P vectors are P more tokens that go through *every* layer: the whole model runs on
  T + P tokens, forward and backward, and since the prompt is layer 1's input, even layer 1 needs
  every input gradient. So its step costs about 2 x forward(T + P): above the prefix's 2/3 by about
  (T + P) / T, and it costs that much more at inference too.
"""

from __future__ import annotations

from dataclasses import dataclass

from tutorlib.loading.architectures import ModelSizes, sizes_of


def model_dims(config) -> ModelSizes:
    """The sizes that decide a transformer's arithmetic, from a GPT-2, BERT or Llama-family config
    (:func:`tutorlib.loading.architectures.sizes_of`; an unknown family raises a ValueError naming it)."""
    return sizes_of(config)


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step (or one forward pass), split by what spends them.

    ``forward``: the forward pass. ``backward_inputs``: gradients with respect to activations (every
    method that trains something below the top needs them). ``backward_weights``: gradients with respect
    to weight matrices (full fine-tuning: all; LoRA: its A and B alone). ``parts``: the forward pass by kind
    (``projections``, ``attention``, ``mlp``, ``lm_head``, ``lora``), for explanations.
    """

    forward: float
    backward_inputs: float
    backward_weights: float
    parts: dict

    @property
    def total(self) -> float:
        """forward + backward, in FLOPs."""
        return self.forward + self.backward_inputs + self.backward_weights


def _forward_parts(dims: ModelSizes, tokens: int, batch_size: int, seq_len: int, prefix_length: int,
                   lm_head: bool) -> dict:
    """Forward FLOPs of the whole model, by kind; tokens = batch_size * seq_len."""
    q_width, kv_width = dims.heads * dims.head_dim, dims.kv_heads * dims.head_dim
    per_layer_qkv = 2 * tokens * dims.hidden * (q_width + 2 * kv_width)  # x @ [Wq, Wk, Wv]
    per_layer_out = 2 * tokens * q_width * dims.hidden  # attention output projection
    per_layer_mlp = dims.mlp_matrices * 2 * tokens * dims.hidden * dims.mlp_width
    # Q K^T and weights @ V: every query head scores P + T keys of head_dim numbers.
    per_layer_attention = 2 * (2 * batch_size * dims.heads * seq_len * (prefix_length + seq_len) * dims.head_dim)
    return {
        "qkv": dims.layers * per_layer_qkv,
        "qkv_first_layer": per_layer_qkv,
        "projections": dims.layers * (per_layer_qkv + per_layer_out),
        "mlp": dims.layers * per_layer_mlp,
        "attention": dims.layers * per_layer_attention,
        "attention_first_layer": per_layer_attention,
        "lm_head": 2 * tokens * dims.hidden * dims.vocab if lm_head else 0,
    }


METHODS = ("full", "prefix", "lora", "prompt")
"""The step shapes counted here."""

LORA_ROLES = ("query", "key", "value", "output")
"""The attention projections LoRA may adapt, by role (the family's own layer names do not matter here)."""


def _lora_forward(dims: ModelSizes, tokens: int, rank: int, lora_on) -> int:
    """Forward FLOPs of LoRA's thin products (x A^T) B^T: 2 x tokens x r x (in + out) per adapted layer."""
    q_width, kv_width = dims.heads * dims.head_dim, dims.kv_heads * dims.head_dim
    widths = {"query": (dims.hidden, q_width), "key": (dims.hidden, kv_width), "value": (dims.hidden, kv_width),
              "output": (q_width, dims.hidden)}  # (in, out) of each projection
    unknown = [role for role in lora_on if role not in widths]
    if unknown:
        raise ValueError(f"lora_on has {unknown[0]!r}; choose among {', '.join(LORA_ROLES)} (GPT-2's fused c_attn "
                         f"is query, key and value).")
    if rank < 1:
        raise ValueError(f"lora_rank must be >= 1, got {rank!r}.")
    return dims.layers * sum(2 * tokens * rank * sum(widths[role]) for role in lora_on)


def step_flops(config, batch_size: int, seq_len: int, *, method: str = "full", prefix_length: int = 0,
               prompt_length: int = 0, lora_rank: int = 8, lora_on=("query", "value"),
               lm_head: bool = True, backward: bool = True) -> StepFlops:
    """FLOPs of one training step on a batch of ``batch_size`` x ``seq_len`` tokens (no padding).

    Args:
        config: a Hugging Face GPT-2, BERT or Llama config.
        method: "full" (every weight trains), "prefix" (frozen model, a trainable prefix of
            ``prefix_length`` key/value vectors in every layer), "lora" (frozen model, a rank ``lora_rank``
            update on the projections named in ``lora_on``: roles among :data:`LORA_ROLES`) or "prompt"
            (frozen model, ``prompt_length`` trainable input vectors before the text). Each method reads
            only its own shape arguments.
        lm_head: True for a causal LM (hidden -> vocabulary at every token: a batch with a label at every
            token; ``train()`` projects only the labelled positions, see training/label_logits.py); False for a
            classifier (its small head on the pooled vector is negligible and not counted).
        backward: False gives a forward pass only (inference): backward terms are 0.
    Returns:
        :class:`StepFlops` in FLOPs (multiply-add = 2).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    dims = model_dims(config)
    prefix = prefix_length if method == "prefix" else 0
    seq = seq_len + (prompt_length if method == "prompt" else 0)  # the prompt: P more tokens through every layer
    parts = _forward_parts(dims, batch_size * seq, batch_size, seq, prefix, lm_head)
    parts["lora"] = _lora_forward(dims, batch_size * seq_len, lora_rank, lora_on) if method == "lora" else 0
    matrices = parts["projections"] + parts["mlp"] + parts["lm_head"]  # products with a weight matrix
    forward = matrices + parts["attention"] + parts["lora"]
    if not backward:
        return StepFlops(forward, 0.0, 0.0, parts)
    if method == "full":
        # dx and dW for every weight product; attention: d(Q), d(K) and d(weights), d(V): 2x its forward.
        return StepFlops(forward, matrices + 2 * parts["attention"], matrices, parts)
    if method == "prompt":
        # dx for every weight product, layer 1's Q/K/V included (the prompt is their input); every
        # attention gradient; no dW. All on T + P tokens.
        return StepFlops(forward, matrices + 2 * parts["attention"], 0.0, parts)
    # Prefix and LoRA: dx for every weight product except layer 1's Q/K/V (their input, the embeddings,
    # is frozen). Prefix: attention needs every gradient (the prefix keys/values are among its inputs),
    # except layer 1's queries: a quarter of that layer's attention backward. LoRA: every attention
    # gradient is counted (at layer 1 d(K) could be skipped when the key is not adapted: a slight overcount).
    first_layer_queries = parts["attention_first_layer"] / 2 if method == "prefix" else 0
    inputs = matrices - parts["qkv_first_layer"] + 2 * parts["attention"] - first_layer_queries
    # LoRA's thin products: dx through them (dy B, then (dy B) A) and dA, dB: each as large as their forward.
    return StepFlops(forward, inputs + parts["lora"], parts["lora"], parts)


def method_full_limit(config, batch_size: int, seq_len: int, method: str, *, lm_head: bool = True, **shape) -> float:
    """The FLOP-count limit of (``method``'s step time) / (full fine-tuning's step time) on the same batch.
    ``shape``: the method's own arguments of :func:`step_flops` (``prefix_length``, ``prompt_length``,
    ``lora_rank``, ``lora_on``)."""
    step = step_flops(config, batch_size, seq_len, method=method, lm_head=lm_head, **shape)
    return step.total / step_flops(config, batch_size, seq_len, method="full", lm_head=lm_head).total


def serving_overhead(config, batch_size: int, seq_len: int, method: str, *, merged: bool = True,
                     lm_head: bool = True, **shape) -> float:
    """Forward FLOPs of a trained ``method`` at inference / those of the plain model.

    Full fine-tuning and merged LoRA: exactly 1 (the same matrices, other numbers). Unmerged LoRA: its
    thin products on top. Prefix: P more key/value columns in every attention call. Prompt: P more
    tokens through the whole model."""
    if method == "lora" and merged:
        return 1.0
    with_method = step_flops(config, batch_size, seq_len, method=method, lm_head=lm_head, backward=False, **shape)
    plain = step_flops(config, batch_size, seq_len, method="full", lm_head=lm_head, backward=False)
    return with_method.forward / plain.forward


def prefix_full_limit(config, batch_size: int, seq_len: int, prefix_length: int, *, lm_head: bool = True) -> float:
    """The FLOP-count limit of (prefix step time) / (full fine-tuning step time): the best a prefix step
    can do when time is proportional to arithmetic. About 2/3; see the module docstring for why."""
    prefix = step_flops(config, batch_size, seq_len, method="prefix", prefix_length=prefix_length, lm_head=lm_head)
    full = step_flops(config, batch_size, seq_len, method="full", lm_head=lm_head)
    return prefix.total / full.total


def inference_overhead(config, batch_size: int, seq_len: int, prefix_length: int, *, lm_head: bool = True) -> float:
    """Forward FLOPs with a prefix / without: the prefix only adds P key/value columns to attention."""
    with_prefix = step_flops(config, batch_size, seq_len, method="prefix", prefix_length=prefix_length,
                             lm_head=lm_head, backward=False)
    without = step_flops(config, batch_size, seq_len, method="full", lm_head=lm_head, backward=False)
    return with_prefix.forward / without.forward


def explain_limit(config, batch_size: int, seq_len: int, prefix_length: int, *, lm_head: bool = True) -> str:
    """A few lines, in words, of where the limit comes from for this model and batch."""
    full = step_flops(config, batch_size, seq_len, method="full", lm_head=lm_head)
    prefix = step_flops(config, batch_size, seq_len, method="prefix", prefix_length=prefix_length, lm_head=lm_head)
    share = {k: full.parts[k] / full.forward for k in ("projections", "mlp", "attention", "lm_head")}
    return (
        f"Full fine-tuning: forward {full.forward / 1e9:.1f} GFLOP + input gradients {full.backward_inputs / 1e9:.1f}"
        f" + weight gradients {full.backward_weights / 1e9:.1f} = {full.total / 1e9:.1f} GFLOP per step.\n"
        f"Prefix tuning (P={prefix_length}): forward {prefix.forward / 1e9:.1f} + input gradients "
        f"{prefix.backward_inputs / 1e9:.1f} + no weight gradients = {prefix.total / 1e9:.1f} GFLOP.\n"
        f"Limit: {prefix.total / full.total:.3f} (2/3 = 0.667). Forward share of the full model: projections "
        f"{share['projections']:.0%}, MLP {share['mlp']:.0%}, attention scores {share['attention']:.0%}, "
        f"LM head {share['lm_head']:.0%}."
    )
