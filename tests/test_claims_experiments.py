"""The measurements behind the source text's claims, on tiny models: refresh updates, inference and
serving costs, time to a target, prefix sizes from published configs."""

import numpy as np
import pytest
import torch
from test_compare import tiny_sentiment
from transformers import GPT2Config, LlamaConfig

from tutorlib.experiments.inference import inference_costs, serving_costs
from tutorlib.experiments.refresh import data_slices, load_refresh, refresh_experiment, swap_in
from tutorlib.experiments.time_to_target import accuracy_targets_table, smoothed_curve, time_to_target
from tutorlib.loading.models import load_model
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.training.parameters import count_parameters
from tutorlib.training.prefix_sizes import prefix_size_table, total_parameters

# ----------------------------------------------------------------------------- refresh


def test_data_slices_are_disjoint_and_in_order():
    rows = tiny_sentiment(n_train=40)["train"]
    slices = data_slices(rows, updates=4, examples_per_update=None)
    assert [len(s) for s in slices] == [10, 10, 10, 10]
    assert [s["id"][0] for s in slices] == ["0", "10", "20", "30"]
    with pytest.raises(ValueError, match="fewer updates"):
        data_slices(rows, updates=3, examples_per_update=20)
    with pytest.raises(ValueError, match="whole number"):
        data_slices(rows, updates=0, examples_per_update=None)


@pytest.mark.parametrize("method", ["full", "prefix"])
def test_swap_in_copies_the_shipped_weights_back(tmp_path, method):
    model, _ = load_model("tiny-bert", head="classification")
    tuned = prepare_full_finetuning(model) if method == "full" else attach_prefix(model, 3)
    tuned.save_checkpoint(tmp_path)
    saved = {k: v.clone() for k, v in tuned.checkpoint_tensors().items()}
    with torch.no_grad():
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(1.0)  # the serving copy is out of date
    assert swap_in(tuned, tmp_path) >= 0
    for key, value in tuned.checkpoint_tensors().items():
        assert torch.equal(value, saved[key]), key


def test_refresh_experiment_reports_every_update():
    result = refresh_experiment(model="tiny-bert", tiny_data=tiny_sentiment(n_train=32, n_test=16), updates=2,
                                examples_per_update=16, mode="fast")
    rows = result["updates"]
    assert [(r["method"], r["update"]) for r in rows] == [("full", 1), ("full", 2), ("prefix", 1), ("prefix", 2)]
    full, prefix = rows[0], rows[2]
    assert prefix["ship_bytes"] < full["ship_bytes"] / 5  # a prefix + head against every weight
    assert rows[1]["cumulative_train_seconds"] == pytest.approx(rows[0]["train_seconds"] + rows[1]["train_seconds"])
    assert all(0 <= r["accuracy"] <= 1 and r["steps"] == 1 for r in rows)  # 16 rows in batches of 16
    with pytest.raises(ValueError, match="'full' and 'prefix'"):
        refresh_experiment(model="tiny-bert", tiny_data=tiny_sentiment(), methods=("head-only",))


def test_load_refresh_says_how_to_make_a_missing_result(tmp_path):
    with pytest.raises(FileNotFoundError, match="tutorlib refresh"):
        load_refresh(tmp_path)


# ----------------------------------------------------------------------------- inference and serving


def test_inference_costs_with_and_without_a_prefix():
    report = inference_costs("tiny-gpt2", prefix_length=4, batch_size=2, seq_len=8, repeats=2)
    model, _ = load_model("tiny-gpt2")
    assert report["weight_bytes"] == 4 * count_parameters(model).total  # fp32: the whole model, both ways
    shape = attach_prefix(model, 4).shape
    assert report["prefix_bytes"] == 4 * 4 * shape.layers * 2 * shape.kv_heads * shape.head_dim
    assert report["with prefix"]["latency_s"] > 0 and report["without prefix"]["latency_s"] > 0


def test_serving_costs_formula_and_measurement():
    rows = serving_costs("tiny-gpt2", tasks=(1, 3, 50), measure_copies_up_to=3)
    one, three, fifty = rows
    assert one["full_formula_mb"] == pytest.approx(one["model_mb"])
    assert three["full_formula_mb"] == pytest.approx(3 * one["model_mb"])
    assert fifty["prefix_formula_mb"] == pytest.approx(one["model_mb"] + 50 * one["prefix_mb_each"])
    assert three["full_measured"] and not fifty["full_measured"] and fifty["full_measured_mb"] is None
    assert three["full_measured_mb"] > one["full_measured_mb"]  # two more copies are really held
    assert fifty["prefix_formula_mb"] < fifty["full_formula_mb"] / 10
    with pytest.raises(ValueError, match="whole numbers"):
        serving_costs("tiny-gpt2", tasks=(0,))


# ----------------------------------------------------------------------------- time to a target


def test_smoothed_curve_is_a_moving_mean():
    times, means = smoothed_curve([1.0] * 5, [4.0, 2.0, 0.0, 2.0, 4.0], window=2)
    assert times.tolist() == [1, 2, 3, 4, 5]
    assert means.tolist() == [4.0, 3.0, 1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="one time per value"):
        smoothed_curve([1.0], [1.0, 2.0])


def test_time_to_target_first_crossing_or_none():
    assert time_to_target([1, 2, 3], [0.5, 0.7, 0.9], 0.7, higher_is_better=True) == 2
    assert time_to_target([1, 2, 3], [3.0, 2.0, 1.5], 1.0, higher_is_better=False) is None
    refresh = {"updates": [{"method": "prefix", "cumulative_train_seconds": t, "accuracy": a}
                           for t, a in ((10, 0.6), (20, 0.72))]}
    (row,) = accuracy_targets_table(refresh, [0.7])
    assert (row["seconds"], row["update"]) == (20, 2)


# ----------------------------------------------------------------------------- prefix sizes


def test_prefix_size_table_matches_a_real_prefix_and_model():
    config = GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=64)
    model, _ = load_model("tiny-gpt2")
    assert total_parameters(model.config) == count_parameters(model).total  # meta-device count = real count
    tiny = prefix_size_table((1, 10), configs={"tiny": model.config})
    tuned = attach_prefix(model, 10)
    assert tiny[1]["prefix_params"] == tuned.export_prefix().numel()
    (row,) = prefix_size_table((10,), configs={"gpt2-like": config})
    assert row["prefix_params"] == 10 * 2 * 2 * 32 and row["few_thousand"]
    gqa = LlamaConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=100)
    (row,) = prefix_size_table((1,), configs={"gqa": gqa})
    assert row["prefix_params"] == 3 * 2 * 2 * 8  # kv heads x head dim, not the hidden size
    with pytest.raises(ValueError, match="whole numbers"):
        prefix_size_table((0,))


def test_published_models_are_far_from_a_few_thousand_at_p10():
    rows = {(r["model"], r["prefix_length"]): r for r in prefix_size_table((1, 10))}
    assert rows[("GPT-2 small", 10)]["prefix_params"] == 184_320
    assert rows[("GPT-2 small", 10)]["total_params"] == 124_439_808  # the published count
    assert not any(r["few_thousand"] for (name, p), r in rows.items() if p == 10)
    assert np.isclose(rows[("Llama-2-7B", 1)]["prefix_params"], 32 * 2 * 4096)
