"""Inputs follow the model: a method whose weights sit on another device than its inputs moves them.

No GPU is needed: the method goes to PyTorch's "meta" device (shapes only, as a GPU would be for the
test: not the CPU), while the inputs stay on the CPU, as a lesson's tokenizer output does. The wrapped
model's own forward/generate is replaced by a recorder of the devices it receives.
"""

from types import SimpleNamespace

import pytest
import torch

from tutorlib import attach_prefix, load_model, prepare_full_finetuning
from tutorlib.methods.devices import model_device, to_model_device
from tutorlib.training.loop import resolve_device

METHODS = {"prefix": lambda m: attach_prefix(m, prefix_length=3), "full": prepare_full_finetuning}


def cpu_batch(tok, texts=("a short one", "and a longer second text")):
    return tok(list(texts), return_tensors="pt", padding=True)  # (B, T) on the CPU


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_forward_moves_cpu_inputs_to_the_models_device(name, method, monkeypatch):
    model, tok = load_model(name)
    tuned = METHODS[method](model).to("meta")
    seen = record_forward(tuned, monkeypatch)
    batch = cpu_batch(tok)
    assert batch["input_ids"].device.type == "cpu"
    tuned(**batch, labels=torch.zeros(2, dtype=torch.long))
    assert seen and {d.type for d in seen.values()} == {"meta"}, seen
    if method == "prefix":
        assert {"position_ids", "prefix_key_values"} <= set(seen)


def record_forward(tuned, monkeypatch) -> dict:
    """Replace the wrapped model's forward by one that records the device of every tensor it gets."""
    seen = {}

    def forward(**kwargs):
        seen.update({k: v.device for k, v in kwargs.items() if torch.is_tensor(v)})
        return SimpleNamespace(logits=None)

    monkeypatch.setattr(tuned.model, "forward", forward)
    return seen


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_generate_moves_cpu_inputs_to_the_models_device(name, method, monkeypatch):
    model, tok = load_model(name)
    tuned = METHODS[method](model).to("meta")
    seen = {}

    def fake_generate(input_ids, attention_mask, **kwargs):  # the wrapped model's generate, recording devices
        seen.update(ids=input_ids.device, mask=attention_mask.device,
                    positions=kwargs.get("position_ids", input_ids).device)
        return input_ids

    monkeypatch.setattr(tuned.model, "generate", fake_generate)
    tok.padding_side = "left"
    tuned.generate(**cpu_batch(tok), max_new_tokens=2)
    assert {d.type for d in seen.values()} == {"meta"}


def test_an_explicit_prefix_and_mask_follow_the_model_too(monkeypatch):
    model, tok = load_model("tiny-llama")
    tuned = attach_prefix(model, prefix_length=3)
    prefix = tuned.export_prefix()  # on the CPU
    tuned.to("meta")
    seen = record_forward(tuned, monkeypatch)
    tuned(**cpu_batch(tok), prefix=prefix, prefix_mask=torch.tensor([1, 0, 1]))
    assert seen["prefix_key_values"].type == "meta" and seen["prefix_visible"].type == "meta"


def test_model_device_and_to_model_device():
    layer = torch.nn.Linear(2, 2).to("meta")
    assert model_device(layer).type == "meta"
    assert model_device(torch.nn.ReLU()).type == "cpu"  # no weights: the CPU
    ids, nothing, number = to_model_device(layer, torch.ones(2), None, 3)
    assert ids.device.type == "meta" and nothing is None and number == 3


def test_tutorlib_device_setting_chooses_the_training_device(monkeypatch):
    monkeypatch.setenv("TUTORLIB_DEVICE", "cpu")
    assert resolve_device("auto").type == "cpu"
    assert resolve_device("meta").type == "meta"  # an explicit device= wins over the setting
    monkeypatch.setenv("TUTORLIB_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="TUTORLIB_DEVICE"):
        resolve_device("auto")
    monkeypatch.delenv("TUTORLIB_DEVICE")
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"  # a visible GPU is taken by default
