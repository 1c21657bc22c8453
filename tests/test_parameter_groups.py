"""Where parameters sit: every parameter lands in exactly one group, and the groups' sizes follow the config."""

import pytest

from tutorlib.loading.models import load_model
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.training.parameter_groups import (
    GROUPS,
    Place,
    count_by_group,
    count_by_layer,
    group_of,
    layer_of,
    place_of,
)
from tutorlib.training.parameters import count_parameters


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-bert", "tiny-llama"])
def test_groups_cover_every_parameter_once(name):
    model, _ = load_model(name)
    counts = count_by_group(model)
    assert list(counts)[:len(GROUPS)] == list(GROUPS)
    assert "other" not in counts, [n for n, _ in model.named_parameters() if group_of(n) == "other"]
    assert sum(counts.values()) == count_parameters(model).total


def test_gpt2_groups_match_the_config_by_hand():
    model, _ = load_model("tiny-gpt2")
    c = model.config
    d, layers, vocab = c.n_embd, c.n_layer, c.vocab_size
    counts = count_by_group(model)
    assert counts["embeddings"] == vocab * d + c.n_positions * d
    assert counts["attention"] == layers * (d * 3 * d + 3 * d + d * d + d)  # c_attn (Q,K,V) + c_proj
    assert counts["mlp"] == layers * (d * 4 * d + 4 * d + 4 * d * d + d)
    assert counts["norms"] == (2 * layers + 1) * 2 * d  # ln_1, ln_2 per block, ln_f; weight + bias
    assert counts["head"] == 0  # lm_head is tied to the token embedding


def test_llama_gqa_attention_and_untied_head():
    model, _ = load_model("tiny-llama")
    c = model.config
    d, kv = c.hidden_size, c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    counts = count_by_group(model)
    assert counts["attention"] == c.num_hidden_layers * (2 * d * d + 2 * d * kv)  # q, o full; k, v narrow
    assert counts["head"] == c.vocab_size * d  # tiny-llama does not tie its output layer


def test_bert_norms_inside_blocks_are_norms_not_attention():
    assert place_of("encoder.encoder.layer.3.attention.output.LayerNorm.weight") == Place(3, "norms")
    assert place_of("encoder.encoder.layer.3.attention.output.dense.weight") == Place(3, "attention")
    assert place_of("encoder.encoder.layer.3.output.dense.weight") == Place(3, "mlp")
    assert place_of("encoder.embeddings.LayerNorm.bias") == Place(None, "norms")
    assert place_of("model.norm.weight").label == "norms"
    assert layer_of("model.layers.12.mlp.up_proj.weight") == 12
    assert group_of("something.unknown") == "other"


def test_prefix_group_and_trainable_only():
    model, _ = load_model("tiny-bert")
    tuned = attach_prefix(model, 4)
    trainable = count_by_group(tuned, trainable_only=True)
    assert trainable["prefix"] == 4 * tuned.shape.layers * 2 * tuned.shape.kv_heads * tuned.shape.head_dim
    assert trainable["head"] == model.head.weight.numel() + model.head.bias.numel()
    assert trainable["attention"] == trainable["mlp"] == trainable["embeddings"] == 0


def test_count_by_layer_has_one_row_per_block():
    model, _ = load_model("tiny-bert")
    rows = count_by_layer(model)
    assert list(rows) == list(range(model.config.num_hidden_layers))
    assert rows[0] == rows[1] and set(rows[0]) == {"attention", "mlp", "norms"}
