"""Parity with PEFT 0.21.2, the reference implementation: prefix tuning on a tiny random GPT-2; LoRA and
prompt tuning on the tiny GPT-2, BERT and Llama (same start, same logits before and after one AdamW step).

Prefix: PEFT injects the prefix through the key/value cache, so the real tokens sit at positions P..P+T-1;
ours do the same with ``positions_after_prefix=True``. PEFT stores the prefix as one embedding
(num_virtual_tokens, layers * 2 * hidden): row p, column block (2*layer + k_or_v) holds that layer's
key (0) or value (1) of virtual token p for every head, heads side by side."""

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.lora import attach_lora
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.methods.prompt import attach_prompt

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
    new_tokens = out.sequences[:, batch["input_ids"].shape[1]:]
    scores = torch.stack(out.scores, dim=1)  # (B, steps, vocab)
    for i, text in enumerate(TEXTS):
        ids = tok([text], return_tensors="pt").input_ids
        expected_tokens, expected_scores = greedy_with_peft_forward(theirs, ids, 8)
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



# ----------------------------------------------------------------------------- LoRA and prompt tuning

FAMILIES = ["tiny-gpt2", "tiny-bert", "tiny-llama"]
PEFT_LORA_TARGETS = {"tiny-gpt2": ["c_attn"], "tiny-bert": ["query", "value"], "tiny-llama": ["q_proj", "v_proj"]}


def batch_and_labels(name, tok):
    """A right-padded batch and its labels: next tokens (-100 on padding) for an LM, classes for BERT."""
    batch = tok(TEXTS, padding=True, padding_side="right", return_tensors="pt")
    batch.pop("token_type_ids", None)  # all zeros here; PEFT's prompt tuning drops them
    if name == "tiny-bert":
        return batch, torch.tensor([1, 0, 1])
    return batch, batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)


def one_adamw_step(model, loss_of):
    """One AdamW step (lr 1e-2) on the trainable parameters, in eval mode (no dropout): both sides alike."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss_of().backward()
    optimizer.step()


def assert_same_real_logits(a, b, mask):
    """(B, T, V) or (B, labels) logits equal on the real tokens, to fp32 tolerance."""
    if a.dim() == 3:
        a, b = a[mask.bool()], b[mask.bool()]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_lora_matches_peft_before_and_after_one_step(name):
    ours_model, tok = load_model(name)
    peft_model, _ = load_model(name)  # same seed: identical weights (and classifier head)
    ours = attach_lora(ours_model, rank=4, alpha=8).eval()
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=PEFT_LORA_TARGETS[name],
                             fan_in_fan_out=name == "tiny-gpt2",  # GPT-2's Conv1D stores W as (in, out)
                             modules_to_save=["head"] if name == "tiny-bert" else None,
                             task_type=None if name == "tiny-bert" else "CAUSAL_LM")
    theirs = peft.get_peft_model(peft_model, config).eval()
    modules = dict(theirs.named_modules())
    layers = ours.lora_layers()
    assert layers and len(layers) == sum(1 for n in modules if n.endswith(".lora_A"))
    for path, layer in layers.items():  # the same start: B = 0, A in PEFT's Kaiming-uniform range
        twin = modules[f"base_model.model.{path}"]
        assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(twin.lora_B["default"].weight) == 0
        bound = 1 / layer.lora_A.shape[1] ** 0.5
        assert layer.lora_A.abs().max() <= bound and twin.lora_A["default"].weight.abs().max() <= bound
        assert layer.lora_A.shape == twin.lora_A["default"].weight.shape
        with torch.no_grad():  # then the very same numbers, and a B that is not zero, so the update shows
            layer.lora_B.normal_(0, 0.1)
            twin.lora_A["default"].weight.copy_(layer.lora_A)
            twin.lora_B["default"].weight.copy_(layer.lora_B)
    batch, labels = batch_and_labels(name, tok)
    plain, _ = load_model(name)
    with torch.no_grad():
        before = ours(**batch).logits
        assert_same_real_logits(before, theirs(**batch).logits, batch["attention_mask"])
        assert (before - plain(**batch).logits).abs().max() > 1e-3  # the update changes the output
    one_adamw_step(ours, lambda: ours(**batch, labels=labels).loss)
    one_adamw_step(theirs, lambda: theirs(**batch, labels=labels).loss)
    with torch.no_grad():
        after = ours(**batch).logits
        assert_same_real_logits(after, theirs(**batch).logits, batch["attention_mask"])
        assert (after - before).abs().max() > 1e-4  # the step moved something
    for path, layer in layers.items():
        torch.testing.assert_close(layer.lora_B, modules[f"base_model.model.{path}"].lora_B["default"].weight)


def prompt_pair(name, P=5):
    """Our prompt-tuned model and PEFT's, with the same prompt (the embeddings of a text)."""
    ours_model, tok = load_model(name)
    peft_model, _ = load_model(name)
    ours = attach_prompt(ours_model, P, init="words", init_text="a short start", tokenizer=tok).eval()
    if name == "tiny-bert":  # PEFT tunes the encoder; our classifier's pooling and head are applied by hand
        config = peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=P)
        theirs = peft.get_peft_model(peft_model.encoder, config).eval()
        theirs.head = peft_model.head  # a copy of ours (same seed), trained by their optimizer
        theirs.head.requires_grad_(True)
    else:
        config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)
        theirs = peft.get_peft_model(peft_model, config).eval()
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
    return ours, theirs, tok


def peft_prompt_logits(name, theirs, batch, P):
    """PEFT's logits over the real tokens: (B, T, V) for an LM; mean-pooled features -> head for BERT."""
    out = theirs(**batch)
    if name != "tiny-bert":
        return out.logits[:, P:]
    hidden = out.last_hidden_state[:, P:]  # (B, T, d): the real tokens
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    return theirs.head((hidden * mask).sum(1) / mask.sum(1))  # (B, labels)


@pytest.mark.parametrize("name", FAMILIES)
def test_prompt_tuning_matches_peft_before_and_after_one_step(name):
    P = 5
    ours, theirs, tok = prompt_pair(name, P)
    batch, labels = batch_and_labels(name, tok)
    with torch.no_grad():
        before = ours(**batch).logits
        assert_same_real_logits(before, peft_prompt_logits(name, theirs, batch, P), batch["attention_mask"])

    def their_loss():
        if name != "tiny-bert":
            return theirs(**batch, labels=labels).loss
        return torch.nn.functional.cross_entropy(peft_prompt_logits(name, theirs, batch, P), labels)

    one_adamw_step(ours, lambda: ours(**batch, labels=labels).loss)
    one_adamw_step(theirs, their_loss)
    torch.testing.assert_close(ours.prompt, theirs.prompt_encoder["default"].embedding.weight)
    with torch.no_grad():
        after = ours(**batch).logits
        assert_same_real_logits(after, peft_prompt_logits(name, theirs, batch, P), batch["attention_mask"])
        assert (after - before).abs().max() > 1e-4
