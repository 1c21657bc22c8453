"""Many prefixes on one frozen model: a mixed batch equals each row run alone with its own prefix."""

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.prefix.model import PrefixError, attach_prefix
from tutorlib.methods.prefix.serving import PrefixBank

TEXTS = ["the cat sat on the mat", "hello", "prefix tuning, row three"]
LENGTHS = {"reviews": 4, "news": 2, "science": 7}  # three tasks, three prefix lengths


def make_bank(name, positions_after_prefix=False):
    model, tok = load_model(name)
    tuned = attach_prefix(model, 4, positions_after_prefix=positions_after_prefix, seed=0).eval()
    bank = PrefixBank(tuned)
    g = torch.Generator().manual_seed(1)
    for task, length in LENGTHS.items():  # strong random prefixes, so that each visibly steers its row
        bank.add(task, 3 * torch.randn(tuned.shape.tensor_shape(length), generator=g))
    return bank, tuned, tok


def alone(tuned, tok, text, prefix, **kwargs):
    with torch.no_grad():
        return tuned(**tok([text], return_tensors="pt"), prefix=prefix, **kwargs).logits[0]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-bert"])
def test_mixed_batch_equals_each_row_alone(name):
    bank, tuned, tok = make_bank(name)
    names = ["news", "science", "reviews"]
    batch = tok(TEXTS, padding=True, padding_side="right", return_tensors="pt")
    with torch.no_grad():
        together = bank(names, **batch).logits
    for i, (text, task) in enumerate(zip(TEXTS, names)):
        expected = alone(tuned, tok, text, bank.prefixes[task])
        got = together[i] if tuned.head == "classification" else together[i, :expected.shape[0]]  # real tokens
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        other = alone(tuned, tok, text, bank.prefixes[names[(i + 1) % 3]])
        assert (other - expected).abs().max() > 1e-3  # the prefix matters, so the match means something


def test_same_name_on_every_row_needs_no_mask_and_matches():
    bank, tuned, tok = make_bank("tiny-gpt2")
    prefix, mask = bank.batch_prefix(["reviews", "reviews"])
    assert mask is None and tuple(prefix.shape) == (2,) + tuned.shape.tensor_shape(4)
    prefix, mask = bank.batch_prefix(["news", "science"])
    assert prefix.shape[4] == 7 and mask.tolist() == [[True] * 2 + [False] * 5, [True] * 7]
    assert torch.all(prefix[0, :, :, :, 2:] == 0)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_mixed_generation_equals_each_row_alone(name):
    bank, tuned, tok = make_bank(name)
    names = ["science", "news", "reviews"]
    batch = tok(TEXTS, padding=True, padding_side="left", return_tensors="pt")
    settings = dict(max_new_tokens=6, do_sample=False)
    together = bank.generate(names, **batch, **settings)[:, batch["input_ids"].shape[1]:]
    for i, (text, task) in enumerate(zip(TEXTS, names)):
        one = tok([text], return_tensors="pt")
        expected = tuned.generate(**one, prefix=bank.prefixes[task], **settings)[0, one["input_ids"].shape[1]:]
        assert torch.equal(together[i], expected), text


def test_positions_after_prefix_count_from_each_rows_own_length():
    bank, tuned, tok = make_bank("tiny-gpt2", positions_after_prefix=True)
    names = ["science", "news", "reviews"]
    batch = tok(TEXTS, padding=True, padding_side="right", return_tensors="pt")
    with torch.no_grad():
        together = bank(names, **batch).logits
    for i, (text, task) in enumerate(zip(TEXTS, names)):
        T, P = len(tok(text)["input_ids"]), LENGTHS[task]
        expected = alone(tuned, tok, text, bank.prefixes[task], position_ids=torch.arange(P, P + T)[None])
        torch.testing.assert_close(together[i, :T], expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(PrefixError, match="different lengths"):
        bank.generate(names, **tok(TEXTS, padding=True, padding_side="left", return_tensors="pt"), max_new_tokens=2)


def test_bank_takes_trained_models_and_checkpoints(tmp_path):
    model, tok = load_model("tiny-llama")
    tuned = attach_prefix(model, 3, seed=2)
    bank = PrefixBank(tuned)
    bank.add("own", tuned)
    tuned.save_checkpoint(tmp_path / "ckpt")
    bank.add("saved", tmp_path / "ckpt")
    assert torch.equal(bank.prefixes["own"], bank.prefixes["saved"])
    assert bank.names == ["own", "saved"] and len(bank) == 2 and "own" in bank
    assert bank.stored_bytes() == 2 * tuned.export_prefix().numel() * 4
    bank.remove("own")
    assert bank.names == ["saved"]


def test_mistakes_get_clear_errors():
    bank, tuned, tok = make_bank("tiny-gpt2")
    batch = tok(TEXTS[:2], padding=True, return_tensors="pt")
    with pytest.raises(KeyError, match="holds"):
        bank(["reviews", "sports"], **batch)
    with pytest.raises(ValueError, match="one name per row"):
        bank(["reviews"], **batch)
    other, _ = load_model("tiny-llama")
    with pytest.raises(PrefixError, match="another model"):
        bank.add("wrong", attach_prefix(other, 2).export_prefix())
    with pytest.raises(PrefixError, match="PrefixTunedModel"):
        PrefixBank(load_model("tiny-gpt2")[0])
