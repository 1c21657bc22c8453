"""Parameter accounting: the analytic prefix formula against the counted tensors, and the
total / trainable / stored numbers of both methods."""

import pytest
import torch

from tutorlib.loading.models import load_model
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.training.parameters import (
    count_parameters,
    explain_prefix_formula,
    parameter_summary,
    prefix_parameter_formula,
)

ALL = ["tiny-gpt2", "tiny-llama", "tiny-bert"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("prefix_length", [1, 7])
def test_formula_equals_the_exported_prefix(name, prefix_length):
    model, _ = load_model(name)
    config = model.config
    tuned = attach_prefix(model, prefix_length)
    assert tuned.export_prefix().numel() == prefix_parameter_formula(config, prefix_length)
    # by hand: P x layers x 2 x kv_heads x head_dim; Llama's GQA halves the key/value width here
    kv_width = 2 * 16 if name == "tiny-llama" else 64
    assert prefix_parameter_formula(config, prefix_length) == prefix_length * 2 * 2 * kv_width
    assert f"{prefix_parameter_formula(config, prefix_length):,}" in explain_prefix_formula(config, prefix_length)


def test_counting_sees_tied_weights_once_and_tracks_requires_grad():
    model, _ = load_model("tiny-gpt2")  # lm_head.weight is the embedding matrix
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.lm_head.weight is model.transformer.wte.weight
    count = count_parameters(model)
    assert count.total == sum(unique.values()) and count.trainable == count.total
    model.transformer.wte.weight.requires_grad_(False)
    assert count_parameters(model).frozen == model.transformer.wte.weight.numel()


@pytest.mark.parametrize("name", ALL)
def test_prefix_summary_trainable_and_stored(name):
    model, _ = load_model(name)
    base = count_parameters(model).total
    formula = prefix_parameter_formula(model.config, 10)
    direct = parameter_summary(attach_prefix(model, 10))
    head = 64 * 2 + 2 if name == "tiny-bert" else 0  # the classifier's new Linear(64, 2) trains and is kept
    assert (direct.method, direct.trainable, direct.stored) == ("prefix", formula + head, formula + head)
    assert direct.total == base + formula

    model, _ = load_model(name)
    mlp = parameter_summary(attach_prefix(model, 10, reparameterise=True, mlp_hidden=32))
    mlp_size = 10 * 64 + (64 * 32 + 32) + (32 * formula // 10 + formula // 10)  # embedding, Linear, Linear
    assert mlp.trainable == mlp_size + head  # while training: the whole MLP
    assert mlp.stored == formula + head  # afterwards: its output only
    assert 0 < direct.trainable_fraction < 0.2 and "stored" in str(direct)


@pytest.mark.parametrize("name", ALL)
def test_full_finetuning_trains_and_stores_everything(name):
    model, _ = load_model(name)
    summary = parameter_summary(prepare_full_finetuning(model))
    total = count_parameters(model).total
    assert (summary.method, summary.total, summary.trainable, summary.stored) == ("full", total, total, total)
    assert summary.as_dict()["trainable_fraction"] == 1.0
    assert sum(t.numel() for t in prepare_full_finetuning(load_model(name)[0]).checkpoint_tensors().values()) == total
    assert torch.is_tensor(next(iter(prepare_full_finetuning(model).checkpoint_tensors().values())))
