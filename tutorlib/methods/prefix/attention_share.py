"""How much attention the prefix takes: the share of each real token's attention that lands on it.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.prefix.model import attach_prefix
    >>> from tutorlib.methods.prefix.attention_share import prefix_attention_share
    >>> model, tok = load_model("tiny-bert")
    >>> tuned = attach_prefix(model, prefix_length=4)
    >>> batch = tok(["a short text"], return_tensors="pt")
    >>> tuple(prefix_attention_share(tuned, batch["input_ids"], batch["attention_mask"]).shape)  # one per layer
    (2,)

Every attention row is a softmax: its weights add up to 1 over [prefix; tokens]. The part on the P
prefix positions is what the prefix contributes to that token's output; the rest carries the text.
A prefix whose keys are far larger than the model's own wins almost every row (share near 1): the
tokens then hardly see each other any more, and a classifier cannot read the review. That is how
the MLP-reparameterised prefix of the prototype collapsed to chance accuracy (see lesson 4).
"""

from __future__ import annotations

import math

import torch


def attention_weights_with_prefix(q, k, prefix_k, mask=None, causal=False, scale=None) -> torch.Tensor:
    """The attention weights over [prefix; tokens]: softmax(Q [Kp; K]^T * scale + mask).

    Args:
        q: queries (B, H, T, d). k: keys of the real tokens (B, H_kv, T, d), H_kv divides H (GQA).
        prefix_k: prefix keys (B or 1, H_kv, P, d).
        mask: optional (B, T), 1 = real token; padded keys get weight 0. The prefix is always visible.
        causal: token t sees tokens 0..t (and the whole prefix).
        scale: multiplies the scores; default 1 / sqrt(d).

    Returns:
        (B, H, T, P + T): each row sums to 1; columns 0..P-1 are the prefix positions.
    """
    B, H, T, d = q.shape
    P = prefix_k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    keys = torch.cat([prefix_k.expand(B, -1, -1, -1), k], dim=2)  # (B, H_kv, P+T, d)
    keys = keys.repeat_interleave(H // keys.shape[1], dim=1)  # (B, H, P+T, d): one copy per query head
    scores = q @ keys.transpose(-1, -2) * scale  # (B, H, T, P+T)
    allowed = torch.ones(B, 1, T, P + T, dtype=torch.bool, device=q.device)  # (B, 1, T, P+T)
    if mask is not None:
        allowed[..., P:] &= mask.bool()[:, None, None, :]
    if causal:
        allowed[..., P:] &= torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)


@torch.no_grad()
def prefix_attention_share(tuned, input_ids, attention_mask=None, prefix=None) -> torch.Tensor:
    """The average share of attention the prefix receives, layer by layer.

    Args:
        tuned: a :class:`~tutorlib.methods.prefix.model.PrefixTunedModel`.
        input_ids: (B, T) token ids. attention_mask: (B, T), 1 = real token (default all real).
        prefix: the prefix to measure, (layers, 2, kv_heads, P, head_dim); default the model's own.

    Returns:
        (layers,) floats in [0, 1]: the attention weight on the prefix positions, averaged over the
        real query tokens, the heads and the batch. 0: the prefix is ignored; 1: nothing else is seen.
    """
    if getattr(tuned, "method", None) != "prefix":
        raise TypeError("prefix_attention_share needs a prefix-tuned model: tutorlib.methods.prefix.model.attach_prefix(model, P).")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if prefix is None:
        prefix = tuned.export_prefix()  # (layers, 2, kv_heads, P, d)
    was_training = tuned.training
    tuned.eval()  # no dropout: the weights are those of inference
    recorder: dict = {}
    try:
        tuned(input_ids=input_ids, attention_mask=attention_mask, prefix=prefix, attention_recorder=recorder)
    finally:
        tuned.train(was_training)
    causal = tuned.task == "causal-lm"
    real = attention_mask.bool()  # (B, T): average over real query tokens only
    P = prefix.shape[-2]
    shares = []
    for layer in sorted(recorder):
        r = recorder[layer]
        weights = attention_weights_with_prefix(r["query"], r["key"], prefix[layer, 0].unsqueeze(0),
                                                attention_mask, causal)  # (B, H, T, P+T)
        on_prefix = weights[..., :P].sum(-1).mean(1)  # (B, T): averaged over heads
        shares.append(on_prefix[real].mean())
    return torch.stack(shares)  # (layers,)
