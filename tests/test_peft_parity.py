"""Parity with PEFT 0.21.2, the reference implementation, on a tiny random GPT-2.

PEFT injects the prefix through the key/value cache, so the real tokens sit at positions P..P+T-1;
ours do the same with ``positions_after_prefix=True``. PEFT stores the prefix as one embedding
(num_virtual_tokens, layers * 2 * hidden): row p, column block (2*layer + k_or_v) holds that layer's
key (0) or value (1) of virtual token p for every head, heads side by side."""

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.prefix.model import attach_prefix

peft = pytest.importorskip("peft", reason="PEFT is an optional extra: pip install 'tutorlib[peft]'")

pytestmark = [pytest.mark.peft, pytest.mark.filterwarnings("ignore::FutureWarning")]
P = 5
TEXTS = ["the cat sat on the mat", "hello", "prefix tuning"]


def to_peft_layout(prefix: torch.Tensor) -> torch.Tensor:
    """(layers, 2, kv_heads, P, head_dim) -> PEFT's (P, layers * 2 * kv_heads * head_dim)."""
    return prefix.permute(3, 0, 1, 2, 4).reshape(prefix.shape[3], -1)


@pytest.fixture(scope="module")
def pair():
    ours_model, tok = load_model("tiny-gpt2")
    peft_model, _ = load_model("tiny-gpt2")  # same seed: identical weights
    ours = attach_prefix(ours_model, P, positions_after_prefix=True, seed=1).eval()
    config = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)
    theirs = peft.get_peft_model(peft_model, config).eval()
    embedding = theirs.prompt_encoder["default"].embedding.weight
    assert embedding.shape == (P, 2 * 2 * 64)  # (num_virtual_tokens, layers * 2 * hidden)
    with torch.no_grad():
        embedding.copy_(to_peft_layout(3 * ours.export_prefix()))
        ours.prefix_encoder.prefix.mul_(3)  # a strong prefix, so that it visibly steers generation
    return ours, theirs, tok


def test_same_logits_as_peft(pair):
    ours, theirs, tok = pair
    batch = tok(TEXTS, padding=True, padding_side="right", return_tensors="pt")
    with torch.no_grad():
        a, b = ours(**batch).logits, theirs(**batch).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)


@torch.no_grad()
def greedy_with_peft_forward(theirs, input_ids, steps):
    """Greedy decoding by calling PEFT's forward on the whole text each step (no KV cache):
    returns the new token ids (steps,) and each step's logits (steps, vocab)."""
    ids, logits = input_ids, []
    for _ in range(steps):
        last = theirs(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
        logits.append(last)
        ids = torch.cat([ids, last.argmax().view(1, 1)], dim=1)
    return ids[0, input_ids.shape[1]:], torch.stack(logits)


def test_same_greedy_generation_as_peft(pair):
    """Our batched, left-padded, KV-cached generate against PEFT's forward decoded greedily."""
    ours, theirs, tok = pair
    batch = tok(TEXTS, padding=True, padding_side="left", return_tensors="pt")
    settings = dict(max_new_tokens=8, do_sample=False, output_scores=True, return_dict_in_generate=True)
    out = ours.generate(**batch, **settings)
    new_tokens, scores = out.sequences[:, batch["input_ids"].shape[1]:], torch.stack(out.scores, dim=1)  # (B, steps, vocab)
    for i, text in enumerate(TEXTS):
        expected_tokens, expected_scores = greedy_with_peft_forward(theirs, tok([text], return_tensors="pt").input_ids, 8)
        assert torch.equal(new_tokens[i], expected_tokens), text
        torch.testing.assert_close(scores[i], expected_scores, atol=1e-4, rtol=0)
    plain = ours.generate(**batch, **settings, prefix_mask=False)
    assert not torch.equal(torch.stack(plain.scores, 1), scores)  # the prefix matters, so the match means something


def test_peft_generate_drops_the_prefix_on_this_transformers(pair):
    """A measured PEFT 0.21.2 + transformers 5.24 bug, kept here so we notice when it is fixed.

    PEFT hands its prefix to generate's forward as the deprecated ``past_key_values`` while generate
    passes its own (empty) ``cache``; transformers keeps ``cache`` and ignores the prefix. What remains
    of prefix tuning is the position shift: PEFT's generate equals the model *without* a prefix at
    positions P..P+T-1. If this test fails, PEFT's generate has been fixed: compare against it directly.
    """
    ours, theirs, tok = pair
    one = tok(["hello"], return_tensors="pt")
    T = one["input_ids"].shape[1]
    settings = dict(max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True)
    peft_first = theirs.generate(**one, **settings, pad_token_id=tok.pad_token_id).scores[0]
    with torch.no_grad():
        no_prefix = ours(**one, prefix_mask=False, position_ids=torch.arange(P, P + T)[None]).logits[:, -1]
        with_prefix = theirs(**one).logits[:, -1]
    torch.testing.assert_close(peft_first, no_prefix, atol=1e-5, rtol=0)
    assert (peft_first - with_prefix).abs().max() > 1e-2

