"""How a prefix enters attention: the arithmetic, and the one adapter that puts it into transformers.

Prefix tuning (Li & Liang 2021) gives every attention layer P extra key/value vectors that no token
produced. Each real token's query scores them alongside the real keys:

    out = softmax( Q [Kp; K]^T / sqrt(d) + mask ) [Vp; V]

:mod:`tutorlib.methods.prefix.reference` is that line in plain torch: the version the notebooks teach.

Everything that depends on the transformers version (5.x) lives in this file only:

* We register one attention function, ``"tutorlib_prefix"``, with ``transformers.AttentionInterface``
  and switch the model to it (``model.set_attn_implementation``). The same name is registered with
  ``masking_utils.AttentionMaskInterface``; without it transformers would skip building the padding
  mask for an unknown implementation and padded tokens would silently be attended to.
* The model hands our function its own queries/keys/values after its projections (and after RoPE
  for Llama), plus its own padding/causal mask over the T real tokens. We prepend the prefix keys and
  values and P mask columns, then call transformers' own SDPA attention. The mask stays [B, T] for
  the caller and no position id is consumed by the prefix.
* The prefix reaches the function as a keyword argument, ``prefix_key_values``: transformers 5 passes
  unknown forward keywords down to the attention function. Nothing is stored on the model, so a
  batch may carry a different prefix per row, and gradient checkpointing sees the same prefix.

Why not the cache route (``past_key_values=DynamicCache(prefix)``, PEFT's way)? It needs a [B, P+T]
mask (a [B, T] mask silently hides the last P tokens on GPT-2), shifts positions by P unless
position ids are passed, is mutated in place by every forward pass, is dropped by GPT-2 under
gradient checkpointing, and cannot hold a different prefix per row during generation.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "tutorlib_prefix"


# ----------------------------------------------------------------------------- the transformers adapter


def _match_batch(tensor, batch_size: int, what: str):
    """Repeat a (Bp, ...) tensor to (batch_size, ...): Bp = 1 is shared by all rows; generate repeats
    each input row k times in a row (beams, num_return_sequences), so Bp = batch_size / k."""
    rows = tensor.shape[0]
    if rows == batch_size:
        return tensor
    if rows == 1:
        return tensor.expand(batch_size, *tensor.shape[1:])
    if batch_size % rows == 0:
        return tensor.repeat_interleave(batch_size // rows, dim=0)
    raise ValueError(f"{what} has {rows} rows but the batch has {batch_size}: give one per row, or one for all.")


def _token_mask(attention_mask, batch_size, q_len, kv_len, causal, device):
    """The model's own mask over the real tokens as (B, 1, Tq, Tk), bool (True = may attend) or
    additive float. transformers passes None when no token is padded and SDPA's is_causal would do;
    we rebuild it because the prefix columns make the key axis longer than the query axis."""
    if attention_mask is not None:
        return attention_mask.expand(batch_size, -1, q_len, kv_len)
    allowed = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
    if causal:  # queries are the last q_len of the kv_len tokens (generation with a KV cache)
        allowed = allowed.tril(diagonal=kv_len - q_len)
    return allowed.expand(batch_size, 1, q_len, kv_len)


def prefix_attention_forward(module, query, key, value, attention_mask, *, prefix_key_values=None,
                             prefix_visible=None, attention_recorder=None, **kwargs):
    """transformers' attention call with a prefix prepended to the keys and values of this layer.

    Args:
        module: the model's attention module; ``module.layer_idx`` picks this layer's prefix.
        query: (B, H, Tq, d). key, value: (B, H_kv, Tk, d), already through RoPE for Llama.
        attention_mask: what the model built over the real tokens: (B, 1, Tq, Tk) bool or additive
            float, or None (no padding).
        prefix_key_values: (Bp, layers, 2, H_kv, P, d), [:, l, 0] keys and [:, l, 1] values of layer l;
            Bp = 1 (shared) or one per row. None: plain attention, exactly the model without a prefix.
        prefix_visible: optional (Bp, P) bool; False hides that prefix position (a fully hidden
            prefix gives the output of the model without one).
        attention_recorder: optional dict; filled with {layer_idx: {"query", "key", "value", "output"}}
            (keys/values of the real tokens only), for teaching and tests.
        kwargs: passed on to transformers' SDPA attention (scaling, dropout, ...).

    Returns:
        (output (B, Tq, H, d), None), the same contract as transformers' own attention functions.
    """
    record = {"query": query, "key": key, "value": value}
    if prefix_key_values is not None:
        batch, q_len, kv_len = query.shape[0], query.shape[2], key.shape[2]
        layer = _match_batch(prefix_key_values[:, module.layer_idx], batch, "prefix_key_values")  # (B, 2, H_kv, P, d)
        layer = layer.to(dtype=key.dtype, device=key.device)
        prefix_len = layer.shape[3]
        key = torch.cat([layer[:, 0], key], dim=2)  # (B, H_kv, P+Tk, d)
        value = torch.cat([layer[:, 1], value], dim=2)  # (B, H_kv, P+Tk, d)

        causal = kwargs.pop("is_causal", None)
        causal = getattr(module, "is_causal", True) if causal is None else causal
        tokens = _token_mask(attention_mask, batch, q_len, kv_len, causal, query.device)  # (B, 1, Tq, Tk)
        if prefix_visible is None:
            visible = torch.ones(batch, prefix_len, dtype=torch.bool, device=query.device)
        else:
            visible = _match_batch(prefix_visible.to(query.device).bool(), batch, "prefix_visible")  # (B, P)
        visible = visible[:, None, None, :].expand(batch, 1, q_len, prefix_len)  # (B, 1, Tq, P)
        if tokens.dtype != torch.bool:  # an additive mask: 0 = attend, very negative = hidden
            visible = torch.zeros_like(visible, dtype=tokens.dtype).masked_fill(~visible, torch.finfo(tokens.dtype).min)
        attention_mask = torch.cat([visible, tokens], dim=-1)  # (B, 1, Tq, P+Tk)
        kwargs["is_causal"] = False  # the mask above already holds the causal pattern
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_recorder is not None:
        attention_recorder[module.layer_idx] = {**record, "output": output}
    return output, weights


def register_prefix_attention() -> str:
    """Register the prefix attention function and its mask builder with transformers (idempotent);
    returns the name to give ``model.set_attn_implementation``."""
    AttentionInterface.register(ATTENTION_NAME, prefix_attention_forward)
    # SDPA's mask builder: (B, 1, Tq, Tk) bool masks, or None when no token is padded.
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME


def uses_prefix_attention(hf_model) -> bool:
    """True when this Hugging Face model already runs the prefix attention function."""
    config = getattr(hf_model, "config", None)
    return getattr(config, "_attn_implementation", None) == ATTENTION_NAME


def switch_to_prefix_attention(hf_model) -> str:
    """Make every attention layer of ``hf_model`` call :func:`prefix_attention_forward`; returns the
    implementation it used before (give it to :func:`switch_back_attention` to undo)."""
    before = hf_model.config._attn_implementation
    hf_model.set_attn_implementation(register_prefix_attention())
    return before


def switch_back_attention(hf_model, implementation: str) -> None:
    """Undo :func:`switch_to_prefix_attention`."""
    hf_model.set_attn_implementation(implementation)
