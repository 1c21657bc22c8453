"""The prefix's share of attention: weights that match the reference attention, and shares that move
the way the arithmetic says they must."""

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.prefix.attention_share import prefix_attention_share
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.methods.prefix.reference import attention_weights_with_prefix, reference_attention_with_prefix


@pytest.mark.parametrize("causal", [False, True])
def test_weights_times_values_is_the_reference_attention(causal):
    g = torch.Generator().manual_seed(0)
    B, H, H_kv, T, P, d = 2, 4, 2, 5, 3, 8
    q, k, v = (torch.randn(B, H, T, d, generator=g), torch.randn(B, H_kv, T, d, generator=g),
               torch.randn(B, H_kv, T, d, generator=g))
    pk, pv = torch.randn(1, H_kv, P, d, generator=g), torch.randn(1, H_kv, P, d, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    w = attention_weights_with_prefix(q, k, pk, mask, causal)  # (B, H, T, P+T)
    values = torch.cat([pv.expand(B, -1, -1, -1), v], 2).repeat_interleave(H // H_kv, dim=1)
    expected = reference_attention_with_prefix(q, k, v, pk, pv, mask=mask, causal=causal)
    assert torch.allclose(w @ values, expected, atol=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(B, H, T))
    assert (w[1, :, :, P + 3:] == 0).all()  # padded keys get nothing
    if causal:
        assert (w[0, :, 0, P + 1:] == 0).all()  # the first token sees only the prefix and itself


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-llama"])
def test_loud_prefix_keys_take_almost_all_attention(name):
    model, tok = load_model(name)
    tuned = attach_prefix(model, 4)
    batch = tok(["a short text here", "and another"], return_tensors="pt", padding=True)
    share = prefix_attention_share(tuned, batch["input_ids"], batch["attention_mask"])
    assert share.shape == (tuned.shape.layers,)
    assert ((share > 0) & (share < 1)).all()
    loud = tuned.export_prefix()
    loud[:, 0] *= 1000  # prefix keys 1000x the model's size: each row's largest score is a prefix score
    loud_share = prefix_attention_share(tuned, batch["input_ids"], batch["attention_mask"], prefix=loud)
    assert (loud_share > 0.8).all() and (loud_share > share).all()


def test_share_is_the_mean_over_real_tokens_of_the_recorded_weights():
    model, tok = load_model("tiny-bert")
    tuned = attach_prefix(model, 3)
    tuned.eval()  # the recorded run below must see no dropout, as the share does
    batch = tok(["abc", "abcdefgh"], return_tensors="pt", padding=True)
    share = prefix_attention_share(tuned, batch["input_ids"], batch["attention_mask"])
    recorder = {}
    with torch.no_grad():
        tuned(**batch, attention_recorder=recorder)
    prefix = tuned.export_prefix()
    r = recorder[1]
    w = attention_weights_with_prefix(r["query"], r["key"], prefix[1, 0][None], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert torch.isclose(share[1], w[..., :3].sum(-1).mean(1)[real].mean())


def test_needs_a_prefix_tuned_model():
    model, tok = load_model("tiny-bert")
    with pytest.raises(TypeError, match="attach_prefix"):
        prefix_attention_share(model, torch.ones(1, 3, dtype=torch.long))
