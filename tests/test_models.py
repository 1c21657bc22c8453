"""load_model: tiny random models of each architecture (fast), and the two real offline models
(marked ``real``: they need the artifacts in the cache, as `tutorlib download --all` leaves them)."""

import time

import pytest
import torch
from torch import nn

from tutorlib.loading import models
from tutorlib.loading.models import KNOWN_MODELS, SequenceClassifier, UnknownModelError, load_model, load_tokenizer

# (name, head) pairs that make sense: BERT encoders cannot generate.
TINY_HEADS = [
    ("tiny-gpt2", "causal-lm"), ("tiny-gpt2", "encoder"), ("tiny-gpt2", "classification"),
    ("tiny-bert", "encoder"), ("tiny-bert", "classification"),
    ("tiny-llama", "causal-lm"), ("tiny-llama", "encoder"), ("tiny-llama", "classification"),
]


def _batch(tok, texts=("a short one", "and a somewhat longer sentence")):
    return tok(list(texts), return_tensors="pt", padding=True)  # input_ids, attention_mask: (B, T)


@pytest.mark.parametrize("name,head", TINY_HEADS)
def test_tiny_models_give_right_shapes(name, head):
    model, tok = load_model(name, head=head, num_labels=3)
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    batch = _batch(tok)
    B, T = batch["input_ids"].shape
    with torch.no_grad():
        out = model(**batch)
    if head == "causal-lm":
        assert out.logits.shape == (B, T, len(tok))
    elif head == "classification":
        assert isinstance(model, SequenceClassifier)
        assert out.logits.shape == (B, 3)
    else:
        assert out.last_hidden_state.shape == (B, T, model.config.hidden_size)
    assert torch.isfinite(out[0] if head != "encoder" else out.last_hidden_state).all()


def test_default_heads():
    assert isinstance(load_model("tiny-bert")[0], SequenceClassifier)
    assert hasattr(load_model("tiny-gpt2")[0], "generate")
    heads = [models.head_of(load_model(name)[0]) for name in ("tiny-bert", "tiny-gpt2")]
    assert heads == ["classification", "causal-lm"]
    assert models.head_of(load_model("tiny-llama", head="encoder")[0]) == "encoder"


def test_classification_loss_trains_the_head():
    model, tok = load_model("tiny-bert", head="classification", num_labels=2)
    out = model(**_batch(tok), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert out.loss.item() > 0 and model.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_same_seed_same_weights_other_seed_other_weights(name):
    def weights(seed):
        return torch.cat([p.flatten() for p in load_model(name, seed=seed)[0].parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_tiny_llama_uses_grouped_query_attention():
    cfg = load_model("tiny-llama")[0].config
    assert cfg.num_attention_heads > cfg.num_key_value_heads  # the prefix must use the kv head count


def test_padding_token_is_set_for_every_tiny_model():
    for name in ("tiny-gpt2", "tiny-bert", "tiny-llama"):
        model, tok = load_model(name)
        assert tok.pad_token is not None and model.config.pad_token_id == tok.pad_token_id


def test_unknown_name_lists_known_names_quickly():
    start = time.perf_counter()
    with pytest.raises(UnknownModelError) as err:
        load_model("no-such-model-xyz")
    assert time.perf_counter() - start < 20  # offline: no network retries (they took ~45 s)
    for known in ("tiny-gpt2", "minilm-l6", "smollm2-135m"):
        assert known in str(err.value)


@pytest.mark.parametrize("name", ["tiny-bert", "minilm-l6", "bert-base-uncased"])
def test_an_encoder_cannot_be_a_causal_lm(name):
    with pytest.raises(ValueError, match="cannot generate"):
        load_model(name, head="causal-lm")  # refused before anything is loaded


def test_unknown_head_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown head 'summarise'; choose one of causal-lm, classification, encoder"):
        load_model("tiny-gpt2", head="summarise")


def test_the_old_task_keyword_names_head():
    """A notebook written when the head was called task= is told the new name, not given a silent default."""
    with pytest.raises(TypeError, match=r"takes head=, not task=: write load_model\(name, head='classification'\)"):
        load_model("tiny-bert", task="classification")
    with pytest.raises(TypeError, match="unexpected keyword argument.*'heads'"):
        load_model("tiny-bert", heads="classification")


def test_a_tokenizer_is_reused_only_for_the_model_it_was_read_for():
    """A comparison reads the tokenizer once and loads a fresh model per method with it; a tokenizer of another
    model (its ids would index the wrong embeddings) or any other object is refused, not silently used."""
    model, tok = load_model("tiny-llama")
    again, same = load_model("tiny-llama", tokenizer=tok)
    assert same is tok and again is not model
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)
    alone = load_tokenizer("tiny-gpt2")
    assert load_model("tiny-gpt2", tokenizer=alone)[1] is alone and alone.pad_token is not None
    with pytest.raises(ValueError, match=r"load_model\('tiny-gpt2'\) returned; this one was read for 'tiny-llama'"):
        load_model("tiny-gpt2", tokenizer=tok)
    with pytest.raises(ValueError, match="did not come from load_tokenizer or load_model"):
        load_model("tiny-llama", tokenizer=object())
    with pytest.raises(UnknownModelError, match="tiny-gpt2"):
        load_tokenizer("no-such-model-xyz")


def test_known_models_table():
    table = models.describe_models()
    assert all(name in table for name in KNOWN_MODELS)
    assert {m.architecture for m in KNOWN_MODELS.values()} == {"gpt2", "bert", "llama"}


def test_prepare_offline_model_refuses_other_names():
    with pytest.raises(UnknownModelError, match="minilm-l6, smollm2-135m"):
        models.prepare_offline_model("tiny-gpt2")


def test_a_crashed_conversion_leaves_nothing_that_is_trusted(tmp_path, monkeypatch):
    import transformers

    from tutorlib.loading import gguf_convert

    class HalfWritten:
        def save_pretrained(self, folder):
            (folder / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
            (folder / "model.safetensors").write_bytes(b"half")
            raise OSError("No space left on device")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(gguf_convert, "_plain_copy", lambda quantised: HalfWritten())
    out = tmp_path / "converted" / "smollm2-135m"
    with pytest.raises(OSError, match="No space"):
        gguf_convert.convert_gguf(tmp_path / "model.gguf", out, stamp="sha v1")
    assert not out.exists() and list(out.parent.iterdir()) == []  # no folder, no .part left behind

    out.mkdir()  # e.g. copied from an older kit: a folder without the right marker is not trusted
    assert not gguf_convert.is_converted(out, "sha v1")
    (out / gguf_convert.MARKER).write_text("other-sha v1")
    assert not gguf_convert.is_converted(out, "sha v1")
    (out / gguf_convert.MARKER).write_text("sha v1")
    assert gguf_convert.is_converted(out, "sha v1")


# ----------------------------------------------------------------------------- real offline models


@pytest.mark.real
def test_minilm_embeddings_put_paraphrases_together():
    model, tok = load_model("minilm-l6", head="encoder")
    assert type(model).__name__ == "BertModel" and model.config.hidden_size == 384
    sentences = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    batch = _batch(tok, sentences)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (3, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (3, T, 1)
    emb = nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)  # (3, 384)
    paraphrase, unrelated = (emb[0] @ emb[1]).item(), (emb[0] @ emb[2]).item()
    assert paraphrase > 0.6 and unrelated < 0.3, (paraphrase, unrelated)  # random weights: both ~0.9+


@pytest.mark.real
def test_minilm_classifier_has_only_a_new_head():
    model, _ = load_model("minilm-l6", num_labels=2, seed=0)
    assert isinstance(model, SequenceClassifier) and model.head.weight.shape == (2, 384)
    assert torch.equal(model.head.weight, load_model("minilm-l6", num_labels=2, seed=0)[0].head.weight)


@pytest.mark.real
def test_smollm2_completes_a_fact_and_is_converted_once(monkeypatch):
    from tutorlib.loading import gguf_convert

    model, tok = load_model("smollm2-135m")  # converts on the very first call only

    def convert_again(*args, **kwargs):
        raise AssertionError("a second load must reuse the converted folder")

    monkeypatch.setattr(gguf_convert, "convert_gguf", convert_again)
    folder = models.prepare_offline_model("smollm2-135m")
    assert (folder / "model.safetensors").is_file() and (folder / gguf_convert.MARKER).is_file()
    assert 134.4e6 < sum(p.numel() for p in model.parameters()) < 134.6e6
    assert model.config.num_key_value_heads == 3 and next(model.parameters()).dtype == torch.float32
    assert tok.pad_token is not None and model.config.pad_token_id == tok.pad_token_id
    assert tok.eos_token == "<|im_end|>"  # the instruct model's end of turn (ChatML)
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


@pytest.mark.real
def test_smollm2_as_encoder_and_classifier():
    encoder, tok = load_model("smollm2-135m", head="encoder")
    assert type(encoder).__name__ == "LlamaModel"
    clf, _ = load_model("smollm2-135m", head="classification", num_labels=2)
    batch = _batch(tok)
    with torch.no_grad():
        assert clf(**batch).logits.shape == (2, 2)


def test_the_module_examples_run():
    """The examples at the top of loading/models.py and in load_tokenizer run (the real-model lines are skipped)."""
    import doctest

    from tutorlib.loading import models

    result = doctest.testmod(models)
    assert result.failed == 0 and result.attempted >= 5
