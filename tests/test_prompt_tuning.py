"""Prompt tuning: only the prompt trains, it starts from a text's embeddings, the mask, positions and labels
are right on every family (padding changes nothing, generate agrees with forward), and it saves alone."""

import doctest

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.prompt import PromptError, PromptTunedModel, attach_prompt
from tutorlib.methods.registry import load_checkpoint
from tutorlib.training.loop import TrainConfig, train
from tutorlib.training.parameters import parameter_summary

FAMILIES = ["tiny-gpt2", "tiny-bert", "tiny-llama"]
TEXTS = ["the cat sat on the mat", "hi", "warm and funny"]


@pytest.mark.parametrize("name", FAMILIES)
def test_only_the_prompt_trains_and_it_starts_from_the_words(name):
    model, tok = load_model(name)
    tuned = attach_prompt(model, 7, init="words", init_text="good", tokenizer=tok)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert trainable == ["prompt"] + (["model.head.weight", "model.head.bias"] if name == "tiny-bert" else [])
    assert parameter_summary(tuned).trainable == 7 * 64 + (64 * 2 + 2 if name == "tiny-bert" else 0)  # P x d (+ head)
    ids = tok("good", add_special_tokens=False)["input_ids"]  # 4 characters, repeated to fill 7
    expected = tuned.model.get_input_embeddings() if name != "tiny-bert" else tuned.model.encoder.get_input_embeddings()
    torch.testing.assert_close(tuned.prompt, expected.weight[torch.tensor((ids * 2)[:7])])
    frozen = {k: v.clone() for k, v in tuned.model.state_dict().items() if "head" not in k}
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    if name == "tiny-bert":
        labels = torch.tensor([1, 0, 1])
    else:
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    start = tuned.prompt.detach().clone()
    train(tuned, [{**batch, "labels": labels}], TrainConfig(steps=2, lr=1e-2, seed=0), progress=False)
    assert not torch.equal(tuned.prompt, start)
    assert all(torch.equal(v, tuned.model.state_dict()[k]) for k, v in frozen.items())


@pytest.mark.parametrize("name", FAMILIES)
def test_padding_changes_nothing_and_outputs_cover_the_real_tokens(name):
    """Each text alone and inside a padded batch (left padding for decoders, right for BERT) gives the same
    outputs: the prompt's mask columns and the positions counted from the first real token are right."""
    model, tok = load_model(name)
    tuned = attach_prompt(model, 5, seed=3).eval()
    side = "right" if name == "tiny-bert" else "left"
    batch = tok(TEXTS, return_tensors="pt", padding=True, padding_side=side)  # BERT's token_type_ids included
    with torch.no_grad():
        together = tuned(**batch).logits
        for i, text in enumerate(TEXTS):
            alone = tuned(**tok([text], return_tensors="pt")).logits[0]
            if name == "tiny-bert":  # (labels,): the classifier pools the real tokens only
                torch.testing.assert_close(together[i], alone, atol=1e-5, rtol=0)
            else:  # (T, vocab): the prompt's positions are cut off
                real = batch["attention_mask"][i].bool()
                assert together.shape[1] == batch["input_ids"].shape[1]
                torch.testing.assert_close(together[i][real], alone, atol=1e-5, rtol=0)
        plain = load_model(name)[0](**tok(TEXTS[:1], return_tensors="pt")).logits
        assert (tuned(**tok(TEXTS[:1], return_tensors="pt")).logits - plain).abs().max() > 1e-3  # the prompt matters


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_generate_reads_the_prompt_as_forward_does(name):
    model, tok = load_model(name)
    tuned = attach_prompt(model, 5, seed=1).eval()
    batch = tok(TEXTS, return_tensors="pt", padding=True, padding_side="left")
    out = tuned.generate(**batch, max_new_tokens=4, do_sample=False, output_scores=True, return_dict_in_generate=True)
    ids = out.sequences if hasattr(out, "sequences") else out
    assert torch.equal(ids[:, :batch["input_ids"].shape[1]], batch["input_ids"])  # input first, as a plain model's
    with torch.no_grad():
        first = tuned(**batch).logits[:, -1]  # (B, vocab): forward's next-token scores
    assert torch.equal(ids[:, batch["input_ids"].shape[1]], first.argmax(-1))
    for i, text in enumerate(TEXTS):  # the same continuation alone as in a left-padded batch
        alone = tuned.generate(**tok([text], return_tensors="pt"), max_new_tokens=4, do_sample=False)
        assert torch.equal(alone[0, -4:], ids[i, -4:])


def test_the_prompt_is_never_a_label():
    """The LM loss over the real tokens alone: P times -100 go in front of the labels."""
    model, tok = load_model("tiny-llama")
    tuned = attach_prompt(model, 6).eval()
    batch = tok(TEXTS[:1], return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[:, 0] = -100  # no term for the first token (it would be predicted from the prompt's last vector)
    with torch.no_grad():
        out = tuned(**batch, labels=labels)
    by_hand = torch.nn.functional.cross_entropy(out.logits[0, :-1], labels[0, 1:])
    torch.testing.assert_close(out.loss, by_hand)


def test_checkpoint_is_the_prompt_alone_and_round_trips(tmp_path):
    model, tok = load_model("tiny-bert", seed=1)
    tuned = attach_prompt(model, 4, seed=2)
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    train(tuned, [{**batch, "labels": torch.tensor([1, 0, 1])}], TrainConfig(steps=2, lr=1e-2, seed=0), progress=False)
    paths = tuned.save_checkpoint(tmp_path)
    assert sorted(p.name for p in paths) == ["prompt.safetensors", "tutorlib_checkpoint.json"]
    assert parameter_summary(tuned).stored == 4 * 64 + 64 * 2 + 2
    loaded = load_checkpoint(tmp_path, load_model("tiny-bert", seed=1)[0])
    assert isinstance(loaded, PromptTunedModel) and loaded.prompt_length == 4
    tuned.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, tuned(**batch).logits)
    another_size = r"head\.(weight|bias) has shape \(2,.*does not fit this model.s \(3,.*tiny-bert with 2 labels"
    with pytest.raises(PromptError, match=another_size):
        load_checkpoint(tmp_path, load_model("tiny-bert", num_labels=3)[0])  # a head of another size
    with pytest.raises(PromptError, match="holds 'head.bias', which this model does not have"):
        load_checkpoint(tmp_path, load_model("tiny-bert", head="encoder")[0])  # no head at all


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_prompt_and_prefix_read_the_same_start_text(name):
    """One reading of the start text for both: a prompt's vectors are the embeddings of the very tokens whose
    keys/values start the prefix, as a string with its tokenizer or as the ids themselves."""
    from tutorlib.methods import start_text
    from tutorlib.methods.prefix.encoder import words_prefix
    from tutorlib.methods.prefix.model import PrefixError, attach_prefix

    assert doctest.testmod(start_text).failed == 0
    model, tok = load_model(name)
    ids = start_text.start_token_ids("great film", tok)
    assert ids == tok("great film", add_special_tokens=False)["input_ids"] and len(ids) == 10
    assert start_text.start_token_ids(torch.tensor(ids)) == ids and start_text.start_token_ids(None) is None
    prompt = attach_prompt(load_model(name)[0], 10, init="words", init_text="great film", tokenizer=tok)
    torch.testing.assert_close(prompt.prompt, model.get_input_embeddings().weight[torch.tensor(ids)])
    prefix = attach_prefix(load_model(name)[0], 10, init="words", init_text=ids)
    torch.testing.assert_close(prefix.export_prefix(), words_prefix(load_model(name)[0], ids, 10))
    for attach, error, words in ((attach_prompt, PromptError, "token embeddings start the prompt"),
                                 (attach_prefix, PrefixError, "keys/values start the prefix")):
        with pytest.raises(error, match=f"needs init_text .and tokenizer=.: the text whose {words}"):
            attach(load_model(name)[0], 4, init="words", init_text="", tokenizer=tok)
        with pytest.raises(error, match="pass tokenizer= as well"):
            attach(load_model(name)[0], 4, init="words", init_text="great")


def test_mistakes_get_clear_errors():
    model, tok = load_model("tiny-gpt2")  # 128 positions
    with pytest.raises(PromptError, match="prompt_length must be a whole number"):
        attach_prompt(model, 0)
    with pytest.raises(PromptError, match="leaves no position"):
        attach_prompt(model, 128)
    with pytest.raises(PromptError, match="pass tokenizer="):
        attach_prompt(model, 4, init="words", init_text="hello")
    with pytest.raises(PromptError, match=r"\(4, 64\)"):
        attach_prompt(model, 4, init=torch.zeros(3, 64))
    tuned = attach_prompt(model, 10)
    with pytest.raises(PromptError, match="truncation=True, max_length=118"):
        tuned(torch.ones(1, 120, dtype=torch.long))
    with pytest.raises(PromptError, match="already wrapped"):
        attach_prompt(tuned)
