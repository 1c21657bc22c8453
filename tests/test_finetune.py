"""Full fine-tuning: same interface as prefix tuning, every weight trains, checkpoints round-trip."""

import json
from pathlib import Path

import pytest
import torch

import tutorlib
from tutorlib.loading.models import load_model
from tutorlib.methods.checkpoints import CheckpointError, checkpoint_bytes
from tutorlib.methods.full import FullFineTunedModel, prepare_full_finetuning
from tutorlib.methods.prefix.model import PrefixTunedModel, attach_prefix
from tutorlib.methods.registry import load_checkpoint

ALL = ["tiny-gpt2", "tiny-llama", "tiny-bert"]
TEXTS = ["the cat sat on the mat", "hello", "prefix tuning"]


def labels_for(name, batch):
    if name == "tiny-bert":
        return torch.tensor([0, 1, 1])
    return batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)


@pytest.mark.parametrize("name", ALL)
def test_every_weight_trains(name):
    model, tok = load_model(name)
    for p in model.parameters():
        p.requires_grad_(False)  # even a model someone froze before
    tuned = prepare_full_finetuning(model).train()
    assert tuned.method == "full" and all(p.requires_grad for p in tuned.parameters())
    before = {n: p.detach().clone() for n, p in tuned.named_parameters()}
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    tuned(**batch, labels=labels_for(name, batch)).loss.backward()
    torch.optim.SGD(tuned.parameters(), lr=0.1).step()
    changed = [n for n, p in tuned.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > 0.8 * len(before)  # (a few, e.g. unused position rows, get no gradient)


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip_gives_identical_logits(name, tmp_path):
    model, tok = load_model(name)
    tuned = prepare_full_finetuning(model, model_name=name).train()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    tuned(**batch, labels=labels_for(name, batch)).loss.backward()
    torch.optim.SGD(tuned.parameters(), lr=0.1).step()
    tuned.eval()
    paths = tuned.save_checkpoint(tmp_path)
    assert sorted(p.name for p in paths) == ["model.safetensors", "tutorlib_checkpoint.json"]
    info = json.loads((tmp_path / "tutorlib_checkpoint.json").read_text())
    assert (info["method"], info["model_name"], info["architecture"]) == ("full", name, name.removeprefix("tiny-"))
    for loaded in (FullFineTunedModel.load_checkpoint(tmp_path, model=load_model(name)[0]), load_checkpoint(tmp_path)):
        assert isinstance(loaded, FullFineTunedModel)
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(**batch).logits, tuned(**batch).logits, atol=0, rtol=0)


def test_checkpoint_records_the_head_and_reads_one_that_called_it_task(tmp_path):
    prepare_full_finetuning(load_model("tiny-bert", num_labels=3)[0], model_name="tiny-bert").save_checkpoint(tmp_path)
    info_file = tmp_path / "tutorlib_checkpoint.json"
    info = json.loads(info_file.read_text())
    assert (info["head"], info["num_labels"]) == ("classification", 3) and "task" not in info
    info["task"] = info.pop("head")  # how checkpoints written before the word "head" record it
    info_file.write_text(json.dumps(info))
    loaded = load_checkpoint(tmp_path)
    assert (loaded.head, loaded.model.head.out_features) == ("classification", 3)
    del info["task"]
    info_file.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="does not record its model's head"):
        load_checkpoint(tmp_path)


def test_full_checkpoint_is_far_larger_than_a_prefix_checkpoint(tmp_path):
    full = prepare_full_finetuning(load_model("tiny-gpt2")[0]).save_checkpoint(tmp_path / "full")
    prefix = attach_prefix(load_model("tiny-gpt2")[0], 10).save_checkpoint(tmp_path / "prefix")
    assert checkpoint_bytes(full) > 20 * checkpoint_bytes(prefix)


def test_loading_the_wrong_kind_of_checkpoint_says_so(tmp_path):
    attach_prefix(load_model("tiny-gpt2")[0], 2).save_checkpoint(tmp_path / "p")
    with pytest.raises(CheckpointError, match="'prefix' checkpoint"):
        FullFineTunedModel.load_checkpoint(tmp_path / "p", model=load_model("tiny-gpt2")[0])
    prepare_full_finetuning(load_model("tiny-gpt2")[0]).save_checkpoint(tmp_path / "f")
    with pytest.raises(CheckpointError, match="'full' checkpoint"):
        PrefixTunedModel.load_checkpoint(tmp_path / "f", model=load_model("tiny-gpt2")[0])
    with pytest.raises(CheckpointError, match="not a tutorlib checkpoint"):
        load_checkpoint(tmp_path / "nothing-here")


def test_generate_and_wrapping_mistakes():
    model, tok = load_model("tiny-llama")
    tuned = prepare_full_finetuning(model).eval()
    batch = tok(["the cat", "a"], padding=True, padding_side="left", return_tensors="pt")
    out = tuned.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    with pytest.raises(ValueError, match="causal language model"):
        prepare_full_finetuning(load_model("tiny-bert")[0]).generate(input_ids=torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="already wrapped"):
        prepare_full_finetuning(attach_prefix(load_model("tiny-gpt2")[0], 2))


def test_checkpoint_code_never_unpickles():
    """safetensors only: torch.load would run arbitrary code from a downloaded file."""
    package = Path(tutorlib.__file__).parent
    for module in package.rglob("*.py"):
        assert "torch.load(" not in module.read_text(), module
