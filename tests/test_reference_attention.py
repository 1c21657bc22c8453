"""The plain-torch prefix attention equals torch's own fused attention over the concatenated keys and
values: an oracle that shares no code with the kit."""

import doctest

import pytest
import torch
import torch.nn.functional as F

from tutorlib.methods.prefix import reference
from tutorlib.methods.prefix.reference import reference_attention_with_prefix


def test_docstring_examples_run():
    assert doctest.testmod(reference).failed == 0


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("H, H_kv", [(4, 4), (4, 2), (6, 1)])  # multi-head, grouped-query, multi-query
def test_reference_matches_torch_sdpa(causal, H, H_kv):
    g = torch.Generator().manual_seed(1)
    B, T, P, d = 2, 5, 3, 8
    q = torch.randn(B, H, T, d, generator=g)
    k, v = torch.randn(B, H_kv, T, d, generator=g), torch.randn(B, H_kv, T, d, generator=g)
    pk, pv = torch.randn(1, H_kv, P, d, generator=g), torch.randn(1, H_kv, P, d, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    # the oracle: build [prefix; tokens] and the (T, P+T) visibility by hand, then torch's SDPA
    keys = torch.cat([pk.expand(B, -1, -1, -1), k], 2).repeat_interleave(H // H_kv, dim=1)
    values = torch.cat([pv.expand(B, -1, -1, -1), v], 2).repeat_interleave(H // H_kv, dim=1)
    visible = torch.cat([torch.ones(B, T, P, dtype=torch.bool), mask.bool()[:, None, :].expand(B, T, T)], -1)
    if causal:
        visible[..., P:] &= torch.ones(T, T, dtype=torch.bool).tril()
    expected = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible[:, None])
    got = reference_attention_with_prefix(q, k, v, pk, pv, mask=mask, causal=causal)
    assert got.shape == (B, H, T, d)
    assert torch.allclose(got, expected, atol=1e-5)
