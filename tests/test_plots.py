"""Plots (return Figures) and widgets' arithmetic (checked against the real models' counts)."""

import pytest
from matplotlib.figure import Figure

from tutorlib.course.widgets import LiveLossCurve, cost_explorer, cost_table_html, method_costs
from tutorlib.experiments import plots
from tutorlib.experiments.results import ComparisonResult
from tutorlib.loading.models import load_model
from tutorlib.methods.full import prepare_full_finetuning
from tutorlib.methods.prefix.model import attach_prefix
from tutorlib.training.loop import History, TrainConfig, train
from tutorlib.training.parameters import parameter_summary


def made_up_result(task="sentiment") -> ComparisonResult:
    """A hand-made result: plots must not need a training run."""
    def row(method, acc, trainable, step):
        return {"method": method, "accuracy": acc, "accuracy_ci95": [acc - 0.03, acc + 0.03],
                "clear_accuracy": acc + 0.05, "clear_accuracy_ci95": [acc + 0.01, acc + 0.09],
                "ambiguous_accuracy": acc - 0.07, "ambiguous_accuracy_ci95": [acc - 0.11, acc - 0.03],
                "rougeL": acc / 3, "rougeL_se": 0.01, "trainable_params": trainable, "total_params": 22_000_000,
                "median_step_seconds": step, "peak_memory_increase_mb": 900 * step,
                "optimizer_state_bytes": 8 * trainable, "checkpoint_bytes": 4 * trainable + 300,
                "energy_kwh": 1e-4 * step, "energy_method": "codecarbon"}

    histories = {m: History(step=[1, 2, 3], loss=[0.7, 0.6, last]) for m, last in (("full", 0.3), ("prefix", 0.4))}
    return ComparisonResult(task=task, model="minilm-l6", dataset="movie-snippets", mode="full", seed=0,
                            prefix_length=10, budget={"steps": 3}, rows=[row("full", 0.85, 22_000_000, 1.0),
                                                                          row("prefix", 0.81, 46_850, 0.65)],
                            data_summary={"clear_items": 519, "ambiguous_items": 542, "ambiguity_threshold": 0.82},
                            histories=histories, references=[{"method": "majority class", "accuracy": 0.52}])


@pytest.mark.parametrize("draw", [plots.plot_quality_vs_parameters, plots.plot_costs, plots.plot_clear_vs_ambiguous])
def test_each_plot_returns_a_figure(draw):
    assert isinstance(draw(made_up_result()), Figure)


def test_costs_use_a_log_scale_where_sizes_differ_by_orders_of_magnitude():
    axes = plots.plot_costs(made_up_result()).axes
    scales = {ax.get_title(): ax.get_yscale() for ax in axes}
    assert scales["optimizer state (bytes, log)"] == "log" and scales["checkpoint on disk (bytes, log)"] == "log"
    assert scales["step time (s, median)"] == "linear"
    assert len(axes) == 5


def test_clear_vs_ambiguous_draws_the_wilson_intervals_and_refuses_results_without_raters():
    ax = plots.plot_clear_vs_ambiguous(made_up_result()).axes[0]
    assert len(ax.patches) == 4  # 2 methods x (clear, ambiguous)
    assert len(ax.containers) >= 2 and any(c.__class__.__name__ == "ErrorbarContainer" for c in ax.containers)
    no_raters = made_up_result("summarise")
    for row in no_raters.rows:
        row.update(clear_accuracy=None, ambiguous_accuracy=None)
    with pytest.raises(ValueError, match="human raters"):
        plots.plot_clear_vs_ambiguous(no_raters)
    assert "clear_vs_ambiguous" not in plots.result_figures(no_raters)


def test_training_curves_accept_a_result_or_histories():
    result = made_up_result()
    assert isinstance(plots.plot_training_curves(result), Figure)
    assert len(plots.plot_training_curves(result.histories).axes[0].lines) == 4  # raw + smoothed per method
    with pytest.raises(ValueError, match="No training history"):
        plots.plot_training_curves({})


def test_result_figures_pick_what_fits():
    assert set(plots.result_figures(made_up_result())) == {"quality_vs_parameters", "costs", "training_curves",
                                                          "clear_vs_ambiguous"}


# ----------------------------------------------------------------------------- widgets' arithmetic


@pytest.mark.parametrize("name, reparameterise", [("tiny-gpt2", False), ("tiny-llama", False), ("tiny-bert", False),
                                                   ("tiny-gpt2", True), ("tiny-bert", True)])
def test_method_costs_match_the_real_wrapped_models(name, reparameterise):
    full_row, prefix_row = method_costs(name, 7, reparameterise=reparameterise)
    model, _ = load_model(name)
    full = parameter_summary(prepare_full_finetuning(model))
    assert (full_row["total_params"], full_row["trainable_params"], full_row["stored_params"]) == \
        (full.total, full.trainable, full.stored)
    model, _ = load_model(name)
    tuned = parameter_summary(attach_prefix(model, 7, reparameterise=reparameterise))
    assert (prefix_row["total_params"], prefix_row["trainable_params"], prefix_row["stored_params"]) == \
        (tuned.total, tuned.trainable, tuned.stored)
    assert prefix_row["optimizer_state_bytes"] == 8 * tuned.trainable
    assert prefix_row["checkpoint_bytes"] == 4 * tuned.stored


def test_cost_table_and_explorer_build():
    html = cost_table_html(method_costs("tiny-bert", 10))
    assert "AdamW state" in html and "10 virtual tokens" in html and "classifier head" in html
    box = cost_explorer(models=("tiny-gpt2", "tiny-llama"))
    model, length, mlp = box.children[0].children
    before = box.children[1].value
    length.value = 50  # the table follows the slider
    assert box.children[1].value != before and "50 virtual tokens" in box.children[1].value
    with pytest.raises(ValueError, match="prefix_length"):
        method_costs("tiny-gpt2", 0)


def test_live_loss_curve_is_an_eval_fn_with_the_right_steps():
    model, tok = load_model("tiny-gpt2")
    batch = dict(tok(["a tiny batch of text"] * 2, return_tensors="pt"))
    batch["labels"] = batch["input_ids"].clone()
    config = TrainConfig(steps=5, eval_every=2, eval_at_start=True, lr=1e-2)
    curve = LiveLossCurve([batch], config, show=False)
    history = train(attach_prefix(model, 4), [batch], config, eval_fn=curve, progress=False)
    assert curve.steps == [0, 2, 4, 5] == [e["step"] for e in history.evals]
    assert curve.losses == pytest.approx([e["eval_loss"] for e in history.evals])
    assert curve.losses[-1] < curve.losses[0]  # memorising one batch: the loss falls
    assert isinstance(curve.figure(), Figure)
