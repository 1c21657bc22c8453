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
tokens then hardly see each other any more, and a classifier cannot read the review. Measured on
MiniLM: an MLP-reparameterised prefix trained at learning rate 1e-2 grew keys of length 18-21 per head
(real tokens: 4.7-7.1) and its classifier stayed at chance accuracy (lesson 4 shows the effect).
"""

from __future__ import annotations

import torch

from tutorlib.methods.prefix.reference import attention_weights_with_prefix


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
        raise TypeError("prefix_attention_share needs a prefix-tuned model: "
                        "tutorlib.methods.prefix.model.attach_prefix(model, P).")
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
    causal = tuned.head == "causal-lm"
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
