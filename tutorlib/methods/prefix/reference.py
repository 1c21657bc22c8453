"""Attention with a prefix in plain torch: the arithmetic the lessons teach.

Prefix tuning (Li & Liang 2021) gives every attention layer P extra key/value vectors that no token
produced. Each real token's query scores them alongside the real keys:

    out = softmax( Q [Kp; K]^T * scale + mask ) [Vp; V]

:func:`attention_weights_with_prefix` computes the softmax part (the weights each token gives to the
P prefix positions and the T tokens); :func:`reference_attention_with_prefix` multiplies them by the
values. The transformers adapter (:mod:`tutorlib.methods.prefix.attention`) computes the same thing
with the model's own fused attention; the tests check both against this file.

    >>> import torch
    >>> q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)  # (B, H, T, d)
    >>> prefix_k, prefix_v = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)                 # P = 5
    >>> tuple(attention_weights_with_prefix(q, k, prefix_k).shape)                            # (B, H, T, P+T)
    (1, 2, 3, 8)
    >>> tuple(reference_attention_with_prefix(q, k, v, prefix_k, prefix_v).shape)             # (B, H, T, d)
    (1, 2, 3, 4)
"""

from __future__ import annotations

import math

import torch


def _with_prefix(prefix: torch.Tensor, tokens: torch.Tensor, query_heads: int) -> torch.Tensor:
    """[prefix; tokens] along the positions, one copy per query head.

    prefix (B or 1, H_kv, P, d) and tokens (B, H_kv, T, d) -> (B, H, P+T, d). With grouped-query
    attention (Llama: H_kv < H) each key/value head serves H / H_kv query heads."""
    both = torch.cat([prefix.expand(tokens.shape[0], -1, -1, -1), tokens], dim=2)  # (B, H_kv, P+T, d)
    return both.repeat_interleave(query_heads // both.shape[1], dim=1)  # (B, H, P+T, d)


def attention_weights_with_prefix(q, k, prefix_k, mask=None, causal=False, scale=None) -> torch.Tensor:
    """The attention weights over [prefix; tokens]: softmax(Q [Kp; K]^T * scale + mask).

    Args:
        q: queries (B, H, T, d).
        k: keys of the real tokens (B, H_kv, T, d); H_kv divides H (grouped-query attention).
        prefix_k: prefix keys (B or 1, H_kv, P, d).
        mask: optional (B, T) padding mask, 1 = real token; padded keys get weight 0. The prefix is
            always visible.
        causal: True for decoders: token t sees tokens 0..t (and the whole prefix).
        scale: multiplies the scores; default 1 / sqrt(d).

    Returns:
        (B, H, T, P + T): each row sums to 1; columns 0..P-1 are the prefix positions.
    """
    B, H, T, d = q.shape
    P = prefix_k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    keys = _with_prefix(prefix_k, k, H)  # (B, H, P+T, d)
    scores = q @ keys.transpose(-1, -2) * scale  # (B, H, T, P+T)
    allowed = torch.ones(B, 1, T, P + T, dtype=torch.bool, device=q.device)  # (B, 1, T, P+T)
    if mask is not None:  # padding keys are hidden from every query
        allowed[..., P:] &= mask.bool()[:, None, None, :]
    if causal:  # a token never sees later tokens; the prefix counts as "earlier"
        allowed[..., P:] &= torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)


def reference_attention_with_prefix(q, k, v, prefix_k, prefix_v, mask=None, causal=False, scale=None):
    """Attention over [prefix; tokens] in plain torch: softmax(Q [Kp; K]^T * scale + mask) [Vp; V].

    Args:
        q: queries (B, H, T, d).
        k, v: keys and values of the real tokens (B, H_kv, T, d). H_kv < H is grouped-query
            attention (Llama): each key/value head serves H / H_kv query heads.
        prefix_k, prefix_v: the prefix (B or 1, H_kv, P, d).
        mask, causal, scale: as in :func:`attention_weights_with_prefix`.

    Returns:
        (B, H, T, d): one output vector per query head and token.
    """
    weights = attention_weights_with_prefix(q, k, prefix_k, mask, causal, scale)  # (B, H, T, P+T)
    return weights @ _with_prefix(prefix_v, v, q.shape[1])  # (B, H, T, d)
