"""Prefix tuning, proven on the three tiny architectures: GPT-2 (absolute positions), BERT
(bidirectional), Llama (RoPE, grouped-query attention with 4 query / 2 key-value heads).

Tolerances: float32 on CPU. Outputs that should agree exactly up to summation order are compared
with atol 1e-5 (measured differences are 0 to 3e-7)."""

import copy
import json

import pytest
import torch

from tutorlib.loading.architectures import UnsupportedModelError
from tutorlib.loading.models import load_model
from tutorlib.methods.checkpoints import CheckpointError
from tutorlib.methods.prefix.encoder import PrefixEncoder, model_key_values, prefix_shape
from tutorlib.methods.prefix.model import PrefixError, PrefixTunedModel, attach_prefix
from tutorlib.methods.prefix.reference import reference_attention_with_prefix
from tutorlib.methods.registry import load_checkpoint

ALL = ["tiny-gpt2", "tiny-llama", "tiny-bert"]
CAUSAL = ["tiny-gpt2", "tiny-llama"]
TEXTS = ["the cat sat on the mat", "hello", "prefix tuning"]
ATOL = 1e-5


def tuned_pair(name, prefix_length=4, **kwargs):
    """(untouched copy of the model, prefix-tuned model, tokenizer), both in eval mode."""
    model, tok = load_model(name)
    plain = copy.deepcopy(model)
    return plain, attach_prefix(model, prefix_length, **kwargs).eval(), tok


def real_tokens(tensor, mask):
    """The rows of (B, T, ...) at real (unpadded) positions, or the whole tensor for (B, labels) outputs."""
    return tensor[mask.bool()] if tensor.dim() == 3 else tensor


# ----------------------------------------------------------------------------- the prefix encoder


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("reparameterise", [False, True])
def test_encoder_shapes_follow_key_value_heads(name, reparameterise):
    model, _ = load_model(name)
    shape = prefix_shape(model.config)
    start = torch.randn(shape.tensor_shape(6))
    encoder = PrefixEncoder(shape, 6, reparameterise=reparameterise, start=start)
    kv_heads = 2 if name == "tiny-llama" else 4  # GQA: keys/values have fewer heads than queries
    assert encoder(3).shape == (3, 2, 2, kv_heads, 6, 16)
    assert encoder.export().shape == (2, 2, kv_heads, 6, 16)
    # the MLP is fitted so that it starts exactly where the direct prefix starts
    torch.testing.assert_close(encoder.export(), start, atol=1e-4, rtol=1e-4)


def test_random_start_is_as_large_as_the_models_own_keys_and_values():
    plain, tuned, tok = tuned_pair("tiny-llama", prefix_length=20)
    real = model_key_values(plain, tok("some ordinary words to measure", return_tensors="pt").input_ids[0])
    prefix = tuned.export_prefix()
    ratio = prefix.pow(2).mean(dim=(2, 3, 4)).sqrt() / real.pow(2).mean(dim=(2, 3, 4)).sqrt()  # (layers, 2)
    assert ratio.min() > 0.7 and ratio.max() < 1.4, ratio


def test_words_start_is_the_models_own_key_values():
    plain, tok = load_model("tiny-gpt2")
    text = "summarise the following article"
    tuned = attach_prefix(copy.deepcopy(plain), 5, init="words", init_text=text, tokenizer=tok)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids[0, :5]
    torch.testing.assert_close(tuned.export_prefix(), model_key_values(plain, ids), atol=0, rtol=0)


# ----------------------------------------------------------------------------- proofs of correctness


@pytest.mark.parametrize("name", CAUSAL)
def test_prefix_of_own_key_values_reproduces_the_full_sequence(name):
    """A prefix holding the model's own keys/values of a text s, with the continuation c at positions
    P..P+T-1, gives exactly the logits of running s + c in full: a prefix *is* a cached context."""
    plain, tuned, tok = tuned_pair(name)
    s = tok("the cat", return_tensors="pt").input_ids  # (1, P)
    c = tok(" sat on the mat", return_tensors="pt").input_ids  # (1, T)
    P, T = s.shape[1], c.shape[1]
    with torch.no_grad():
        full = plain(input_ids=torch.cat([s, c], dim=1)).logits[:, P:]  # logits of c after s
        prefix = model_key_values(plain, s[0])  # (layers, 2, kv_heads, P, head_dim)
        shifted = tuned(input_ids=c, prefix=prefix, position_ids=torch.arange(P, P + T)[None]).logits
        unshifted = tuned(input_ids=c, prefix=prefix).logits  # default: c keeps positions 0..T-1
        alone = plain(input_ids=c).logits
    torch.testing.assert_close(shifted, full, atol=ATOL, rtol=0)
    assert (alone - full).abs().max() > 1e-2  # the prefix really carries the context
    assert (unshifted - full).abs().max() > 1e-3  # and positions matter: the proof needs them to match


def test_bert_prefix_equals_a_full_run_where_prefix_tokens_see_only_themselves():
    """In a bidirectional encoder, s's keys/values would also depend on c in a full run. A prefix is
    context that every real token sees but that never looks back: a block mask reproduces it."""
    plain, tok = load_model("tiny-bert", head="encoder")
    tuned = attach_prefix(copy.deepcopy(plain), 4).eval()
    s = tok("the cat", add_special_tokens=False, return_tensors="pt").input_ids
    c = tok("sat down", return_tensors="pt").input_ids
    P, T = s.shape[1], c.shape[1]
    allowed = torch.ones(1, 1, P + T, P + T, dtype=torch.bool)  # (B, 1, queries, keys)
    allowed[:, :, :P, P:] = False  # prefix rows never see the real tokens
    with torch.no_grad():
        full = plain(input_ids=torch.cat([s, c], 1), attention_mask=allowed).last_hidden_state[:, P:]
        prefix = model_key_values(plain, s[0])
        out = tuned(input_ids=c, prefix=prefix, position_ids=torch.arange(P, P + T)[None]).last_hidden_state
    torch.testing.assert_close(out, full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_fully_masked_prefix_gives_the_model_without_prefix(name):
    plain, tuned, tok = tuned_pair(name)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = tuned(**batch, prefix_mask=False).logits
        shown = tuned(**batch).logits
        expected = plain(**batch).logits
    mask = batch["attention_mask"]
    torch.testing.assert_close(real_tokens(hidden, mask), real_tokens(expected, mask), atol=ATOL, rtol=0)
    assert (real_tokens(shown, mask) - real_tokens(expected, mask)).abs().max() > 1e-3


ATTENTION_OUTPUT = {  # the projection right after attention: its input is the attention output (B, T, H*d)
    "tiny-gpt2": lambda m: m.transformer.h[0].attn.c_proj,
    "tiny-llama": lambda m: m.model.layers[0].self_attn.o_proj,
    "tiny-bert": lambda m: m.encoder.encoder.layer[0].attention.output.dense,
}


@pytest.mark.parametrize("name", ALL)
def test_one_layer_matches_the_reference_arithmetic(name):
    """Layer 0's real attention output (caught by a hook on the next projection) equals
    softmax(Q [Kp; K]^T / sqrt(d) + mask) [Vp; V] computed in plain torch from the same Q, K, V."""
    _, tuned, tok = tuned_pair(name, prefix_length=3)
    side = "right" if name == "tiny-bert" else "left"
    batch = tok(TEXTS, padding=True, padding_side=side, return_tensors="pt")
    caught, recorder = {}, {}
    hook = ATTENTION_OUTPUT[name](tuned.model).register_forward_pre_hook(lambda mod, args: caught.update(x=args[0]))
    with torch.no_grad():
        tuned(**batch, attention_recorder=recorder)
    hook.remove()
    q, k, v = recorder[0]["query"], recorder[0]["key"], recorder[0]["value"]
    assert q.shape[1] == 4 and k.shape[1] == (2 if name == "tiny-llama" else 4)
    prefix = tuned.export_prefix()[0]  # layer 0: (2, kv_heads, P, head_dim)
    expected = reference_attention_with_prefix(q, k, v, prefix[0][None], prefix[1][None],
                                               mask=batch["attention_mask"], causal=name != "tiny-bert")
    B, H, T, d = expected.shape
    torch.testing.assert_close(caught["x"], expected.transpose(1, 2).reshape(B, T, H * d), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_training_step_changes_only_the_prefix_and_head(name):
    _, tuned, tok = tuned_pair(name, reparameterise=name == "tiny-llama")
    tuned.train()
    frozen_before = {n: p.detach().clone() for n, p in tuned.named_parameters() if not p.requires_grad}
    trainable_before = {n: p.detach().clone() for n, p in tuned.named_parameters() if p.requires_grad}
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 1]) if name == "tiny-bert" else \
        batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(tuned.parameters(), lr=1e-2, weight_decay=0.1)  # even given every parameter
    tuned(**batch, labels=labels).loss.backward()
    optimizer.step()
    expected = {"prefix_encoder.prefix"} if name != "tiny-llama" else \
        {"prefix_encoder.embedding.weight",
         *(f"prefix_encoder.mlp.{i}.{w}" for i in (0, 2) for w in ("weight", "bias"))}
    if name == "tiny-bert":
        expected |= {"model.head.weight", "model.head.bias"}
    assert set(trainable_before) == expected
    params = dict(tuned.named_parameters())
    for n, before in frozen_before.items():
        assert params[n].grad is None and torch.equal(params[n], before), n
    for n, before in trainable_before.items():
        assert params[n].grad is not None and not torch.equal(params[n], before), n


def test_gradient_checkpointing_keeps_the_prefix():
    """The prefix travels as a keyword argument, so recomputation in the backward pass still sees it."""
    grads = []
    for checkpointing in (False, True):
        _, tuned, tok = tuned_pair("tiny-gpt2")
        if checkpointing:
            tuned.model.activation_checkpointing_enable()
        tuned.train()
        for module in tuned.modules():  # no dropout: both runs must be comparable
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        batch = tok(TEXTS, padding=True, return_tensors="pt")
        tuned(**batch, labels=batch["input_ids"]).loss.backward()
        grads.append(tuned.prefix_encoder.prefix.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name,side", [(n, s) for n in ALL for s in ("left", "right")])
def test_padded_batch_equals_each_example_alone(name, side):
    _, tuned, tok = tuned_pair(name)
    batch = tok(TEXTS, padding=True, padding_side=side, return_tensors="pt")
    with torch.no_grad():
        together = tuned(**batch).logits
        for i, text in enumerate(TEXTS):
            alone = tuned(**tok([text], return_tensors="pt")).logits[0]
            row = together[i][batch["attention_mask"][i].bool()] if together.dim() == 3 else together[i]
            torch.testing.assert_close(row, alone, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_a_different_prefix_per_row_equals_each_row_alone(name):
    _, tuned, tok = tuned_pair(name)
    prefixes = [torch.randn_like(tuned.export_prefix()) for _ in TEXTS]
    batch = tok(TEXTS, padding=True, padding_side="right", return_tensors="pt")
    with torch.no_grad():
        together = tuned(**batch, prefix=prefixes).logits
        for i, text in enumerate(TEXTS):
            alone = tuned(**tok([text], return_tensors="pt"), prefix=prefixes[i]).logits[0]
            row = together[i][batch["attention_mask"][i].bool()] if together.dim() == 3 else together[i]
            torch.testing.assert_close(row, alone, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("name", CAUSAL)
def test_generation_uses_the_prefix_and_batches_like_one_by_one(name):
    plain, tuned, tok = tuned_pair(name, prefix_length=6)
    with torch.no_grad():
        tuned.prefix_encoder.prefix.mul_(3.0)  # a clearly non-trivial prefix
    prompts = ["the cat", "hello there", "a"]
    batch = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
    settings = dict(max_new_tokens=8, do_sample=False)
    together = tuned.generate(**batch, **settings)[:, batch["input_ids"].shape[1]:]
    for i, prompt in enumerate(prompts):
        one = tok([prompt], return_tensors="pt")
        alone = tuned.generate(**one, **settings)[0, one["input_ids"].shape[1]:]
        assert torch.equal(together[i], alone), (prompt, together[i], alone)
    without = plain.generate(**batch, **settings, pad_token_id=tok.pad_token_id)[:, batch["input_ids"].shape[1]:]
    hidden = tuned.generate(**batch, **settings, prefix_mask=False)[:, batch["input_ids"].shape[1]:]
    assert torch.equal(hidden, without)  # a hidden prefix generates what the plain model generates
    # A visible one changes what the model predicts at every step. (A tiny random model's argmax
    # may still agree, so compare the step scores, not only the tokens.)
    scores = dict(settings, output_scores=True, return_dict_in_generate=True)
    seen = tuned.generate(**batch, **scores).scores[0]
    unseen = tuned.generate(**batch, **scores, prefix_mask=False).scores[0]
    assert (seen - unseen).abs().max() > 1e-3


def test_generation_with_beams_and_a_prefix_per_row():
    _, tuned, tok = tuned_pair("tiny-llama")
    prefixes = [3 * torch.randn_like(tuned.export_prefix()) for _ in range(2)]
    batch = tok(["the cat", "hello"], padding=True, padding_side="left", return_tensors="pt")
    settings = dict(max_new_tokens=5, num_beams=2, num_return_sequences=2, do_sample=False)
    together = tuned.generate(**batch, prefix=prefixes, **settings)[:, batch["input_ids"].shape[1]:]
    for i, text in enumerate(["the cat", "hello"]):
        one = tok([text], return_tensors="pt")
        alone = tuned.generate(**one, prefix=prefixes[i], **settings)[:, one["input_ids"].shape[1]:]
        assert torch.equal(together[2 * i: 2 * i + 2], alone)


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("name", ALL)
def test_saved_prefix_loads_back_to_identical_logits(name, tmp_path):
    _, tuned, tok = tuned_pair(name, reparameterise=name == "tiny-gpt2")
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 1]) if name == "tiny-bert" else batch["input_ids"]
    optimizer = torch.optim.SGD([p for p in tuned.parameters() if p.requires_grad], lr=0.1)
    tuned(**batch, labels=labels).loss.backward()
    optimizer.step()  # so the head and prefix differ from any fresh start
    tuned.eval()
    paths = tuned.save_checkpoint(tmp_path)
    assert sorted(p.name for p in paths) == ["prefix.safetensors", "tutorlib_checkpoint.json"]
    info = json.loads((tmp_path / "tutorlib_checkpoint.json").read_text())
    assert info["method"] == "prefix" and info["architecture"] == name.removeprefix("tiny-")
    stored = set(info["tensors"])
    assert stored == ({"prefix", "model.head.weight", "model.head.bias"} if name == "tiny-bert" else {"prefix"})

    fresh, _ = load_model(name)  # same name and seed: the same frozen base weights
    loaded = PrefixTunedModel.load_checkpoint(tmp_path, model=fresh).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, tuned(**batch).logits, atol=0, rtol=0)
    assert not loaded.prefix_encoder.reparameterise  # only the MLP's output was kept


def test_checkpoint_records_the_base_model_and_reloads_it_by_name(tmp_path):
    model, tok = load_model("tiny-llama")
    tuned = attach_prefix(model, 3, model_name="tiny-llama").eval()
    tuned.save_checkpoint(tmp_path)
    loaded = load_checkpoint(tmp_path)  # no model given: loaded by the recorded name
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(**batch).logits, tuned(**batch).logits, atol=0, rtol=0)
    anonymous = attach_prefix(load_model("tiny-llama")[0], 3, model_name="")
    anonymous.save_checkpoint(tmp_path / "anon")
    with pytest.raises(CheckpointError, match="model="):
        load_checkpoint(tmp_path / "anon")
    with pytest.raises(PrefixError, match="does not fit"):
        PrefixTunedModel.load_checkpoint(tmp_path, model=load_model("tiny-gpt2")[0])


# ----------------------------------------------------------------------------- errors a learner meets


def test_prefix_length_must_be_positive():
    model, _ = load_model("tiny-gpt2")
    for bad in (0, -3, 2.5):
        with pytest.raises(PrefixError, match="prefix_length"):
            attach_prefix(model, bad)


def test_too_long_input_names_the_limit_and_whether_the_prefix_counts():
    _, tuned, _ = tuned_pair("tiny-gpt2", prefix_length=10)
    ids = torch.full((1, 128), 10)
    tuned(input_ids=ids)  # 128 tokens fit 128 positions: this prefix takes none
    with pytest.raises(PrefixError, match="129 positions .the prefix takes no positions.*has 128"):
        tuned(input_ids=torch.full((1, 129), 10))
    with pytest.raises(PrefixError, match="positions"):
        tuned.generate(input_ids=ids[:, :120], max_new_tokens=20)
    _, shifted, _ = tuned_pair("tiny-gpt2", prefix_length=10, positions_after_prefix=True)
    with pytest.raises(PrefixError, match="130 positions .10 of them for the prefix"):
        shifted(input_ids=ids[:, :120])


def test_attaching_twice_is_refused_and_detaching_restores_the_model():
    plain, tuned, tok = tuned_pair("tiny-bert")
    with pytest.raises(PrefixError, match="already has a prefix"):
        attach_prefix(tuned)
    with pytest.raises(PrefixError, match="already has a prefix"):
        attach_prefix(tuned.model)
    model = tuned.detach_prefix().eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, plain(**batch).logits, atol=0, rtol=0)
    assert all(p.requires_grad for p in model.parameters())
    attach_prefix(model, 2)  # and it can take a new one


def test_unsupported_models_get_a_list_of_supported_ones():
    from transformers import OPTConfig, OPTForCausalLM

    opt = OPTForCausalLM(OPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                   num_attention_heads=2, max_position_embeddings=32, word_embed_proj_dim=16))
    for model in (opt, torch.nn.Linear(3, 3)):
        with pytest.raises(UnsupportedModelError, match="(?s)gpt2.*bert.*llama|Hugging Face model"):
            attach_prefix(model)


def test_other_mistakes_get_clear_errors():
    _, tuned, tok = tuned_pair("tiny-bert")
    with pytest.raises(PrefixError, match="causal language model"):
        tuned.generate(input_ids=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(PrefixError, match="prefix has shape"):
        tuned(input_ids=torch.ones(1, 3, dtype=torch.long), prefix=torch.zeros(2, 2, 3, 3, 16))
    model, tok = load_model("tiny-gpt2")
    with pytest.raises(PrefixError, match="init_text"):
        attach_prefix(model, 4, init="words")
    with pytest.raises(ValueError, match="at least prefix_length"):
        attach_prefix(model, 40, init="words", init_text="too short", tokenizer=tok)


@pytest.mark.real
def test_default_starts_on_minilm_are_as_large_as_real_tokens():
    """The measured failure this guards against: an MLP prefix whose keys were 3-4x the size of real
    tokens' swamped attention and never trained. Both default starts match real sizes per vector."""
    model, tok = load_model("minilm-l6")
    ids = tok("a gripping, beautifully acted film that never lets go", return_tensors="pt").input_ids[0]
    real = model_key_values(model.encoder, ids).norm(dim=-1).mean(dim=(2, 3))  # (layers, 2)
    for reparameterise in (False, True):
        prefix = attach_prefix(load_model("minilm-l6")[0], 10, reparameterise=reparameterise).export_prefix()
        ratio = prefix.norm(dim=-1).mean(dim=(2, 3)) / real
        assert ratio.min() > 0.7 and ratio.max() < 1.5, ratio
