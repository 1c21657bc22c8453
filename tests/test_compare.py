"""compare(): both methods under one budget, on tiny models and hand-made data (no real model, no files)."""

import json

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from tutorlib import cli
from tutorlib.experiments.compare import compare
from tutorlib.experiments.results import ComparisonResult
from tutorlib.methods.registry import get_method
from tutorlib.tasks.metrics import paired_sign_flip_p

WORDS_POS = ["great", "warm", "funny", "moving", "superb"]
WORDS_NEG = ["dull", "awful", "flat", "boring", "weak"]


def tiny_sentiment(n_train=40, n_test=24, seed=0) -> DatasetDict:
    """Short positive/negative snippets with made-up rater spread: half clear, half ambiguous."""
    rng = np.random.default_rng(seed)

    def rows(n, start):
        label = rng.integers(0, 2, n)
        words = [WORDS_POS if y else WORDS_NEG for y in label]
        return {"id": [str(start + i) for i in range(n)],
                "text": [f"a {rng.choice(w)} film, {rng.choice(w)}" for w in words],
                "label": label.tolist(),
                "rater_std": [0.5 if i % 2 else 1.2 for i in range(n)],
                "frac_positive": [float(np.clip(y * 0.8 + rng.normal(0, 0.1), 0, 1)) for y in label]}

    return DatasetDict(train=Dataset.from_dict(rows(n_train, 0)), test=Dataset.from_dict(rows(n_test, 1000)))


def tiny_summaries(n_train=12, n_test=4) -> DatasetDict:
    def rows(n, start):
        docs = [f"The council met on day {i}. It voted on roads. Rain fell." for i in range(start, start + n)]
        return {"id": [str(i) for i in range(start, start + n)], "document": docs,
                "summary": [f"Vote on day {i}." for i in range(start, start + n)]}

    return DatasetDict(train=Dataset.from_dict(rows(n_train, 0)), test=Dataset.from_dict(rows(n_test, 100)))


def run_sentiment(**kw):
    args = dict(model="tiny-bert", tiny_data=tiny_sentiment(), steps=3, mode="fast", progress=False,
                measure_energy=False)
    return compare("sentiment", **{**args, **kw})


QUALITY_KEYS = ["accuracy", "macro_f1", "clear_accuracy", "ambiguous_accuracy", "clear_macro_f1",
                "ambiguous_macro_f1", "ece", "rater_pearson", "rater_mae", "final_loss"]


def test_same_seed_gives_identical_rows_and_losses():
    a, b = run_sentiment(seed=3), run_sentiment(seed=3)
    for ra, rb in zip(a.rows, b.rows):
        assert {k: ra[k] for k in QUALITY_KEYS} == {k: rb[k] for k in QUALITY_KEYS}
        assert ra["trainable_params"] == rb["trainable_params"] and ra["checkpoint_bytes"] == rb["checkpoint_bytes"]
    assert a.histories["prefix"].loss == b.histories["prefix"].loss
    assert a.predictions == b.predictions
    other = run_sentiment(seed=4)
    assert other.histories["full"].loss != a.histories["full"].loss  # the seed matters


def test_rows_hold_quality_cost_and_parameters_for_each_method():
    result = run_sentiment(methods="full,prefix")
    full, prefix = result.row("full"), result.row("prefix")
    assert full["trainable_params"] == full["total_params"]  # every weight trains
    assert prefix["trainable_params"] < full["trainable_params"] / 10
    assert prefix["stored_params"] < full["stored_params"]
    assert prefix["checkpoint_bytes"] < full["checkpoint_bytes"]
    assert prefix["optimizer_state_bytes"] == 8 * prefix["trainable_params"]  # AdamW: 2 fp32 moments
    assert full["clear_n"] + full["ambiguous_n"] == full["n"] == 24
    assert result.data_summary["clear_items"] == 12 and result.data_summary["ambiguous_items"] == 12
    assert result.histories["full"].step == [1, 2, 3]  # the budget: same steps for each method
    test = result.paired_tests[0]
    assert (test["a"], test["b"], test["test"]) == ("full", "prefix", "McNemar exact") and 0 <= test["p_value"] <= 1
    assert result.references[0]["method"] == "majority class"
    assert list(result.to_dataframe()["method"]) == ["full", "prefix"]


def test_the_tokenizer_is_read_once_and_every_method_gets_fresh_weights(monkeypatch):
    from tutorlib.loading import models

    reads, weights = [], []
    real_tokenizer, real_load = models.tiny_tokenizer, models._load_tiny
    monkeypatch.setattr(models, "tiny_tokenizer", lambda arch: reads.append(arch) or real_tokenizer(arch))

    def counted_load(*args):
        model, tok = real_load(*args)
        weights.append(model)
        return model, tok

    monkeypatch.setattr(models, "_load_tiny", counted_load)
    result = run_sentiment(methods="head-only,full,prefix")
    assert len(reads) == 1  # for the data; each method reuses it
    assert len(weights) == 3 and len({id(m) for m in weights}) == 3  # one fresh model per method, none for the data
    assert [row["method"] for row in result.rows] == ["head-only", "full", "prefix"]


def test_prefix_mlp_trains_its_head_at_its_own_rate():
    result = run_sentiment(methods="prefix,prefix-mlp")
    mlp = result.row("prefix-mlp")
    assert mlp["lr"] == 1e-4 and mlp["lr_by_name"] == {"model.head.": 1e-2}
    assert result.row("prefix")["lr_by_name"] is None  # the plain prefix and its head share 1e-2
    assert "prefix-mlp 0.0001 (model.head.* 0.01)" in result.table()
    assert mlp["stored_params"] == result.row("prefix")["stored_params"]  # the MLP is dropped when stored


def test_table_names_every_metric_of_the_issue():
    result = run_sentiment(measure_energy=True)
    table = result.table()
    for words in ["accuracy [95% CI]", "macro-F1", "clear acc", "ambiguous acc", "ECE", "rater r", "step (median)",
                  "tokens/s", "train time", "peak memory", "optimizer state", "checkpoint", "energy",
                  "trainable params", "McNemar", "rater std > 0.82", "12 clear + 12 ambiguous", "CPU s/step",
                  "start: prefix from random vectors as large as the model's own keys/values"]:
        assert words in table, words
    assert all(r["energy_kwh"] is not None and r["energy_method"] in table for r in result.rows)


def test_table_says_what_each_method_started_from():
    """The start line names each method that reads the task's start text, in its own words: a prefix of keys and
    values, a prompt of input embeddings; LoRA and full fine-tuning read none and are not named."""
    table = run_sentiment(methods="full,prefix,prompt,lora", steps=1).table()
    assert ("start: prefix from random vectors as large as the model's own keys/values; prompt from the input "
            "embeddings of P random vocabulary tokens") in " ".join(table.split())
    starts = {name: get_method(name).describe_start("Summarise this.") for name in ("prefix", "prefix-mlp", "prompt")}
    assert starts["prefix"] == starts["prefix-mlp"] == "the model's own keys/values of 'Summarise this.'"
    assert starts["prompt"] == (
        "the input embeddings of the tokens of 'Summarise this.' (the first P, repeated if fewer)")
    assert not get_method("lora").reads_init_text and not get_method("full").reads_init_text


def test_summarise_with_zero_shot_lead_reference_and_examples(tmp_path):
    result = compare("summarise", model="tiny-gpt2", tiny_data=tiny_summaries(), methods="zero-shot,full,prefix",
                     steps=2, mode="fast", progress=False, measure_energy=False, out_dir=tmp_path / "out")
    zero = result.row("zero-shot")
    assert zero["trainable_params"] == 0 and zero["median_step_seconds"] is None and "zero-shot" not in result.histories
    assert all(0 <= result.row(m)["rougeL"] <= 1 for m in ("zero-shot", "full", "prefix"))
    assert result.references[0]["method"] == "lead sentence"
    assert len(result.examples["prefix"]) == 3
    assert len(result.paired_tests) == 3
    table = result.table()
    for words in ["ROUGE-1", "ROUGE-2", "ROUGE-L", "lead sentence (reference)", "sign-flip",
                  "start: prefix from the model's own keys/values of 'Summarise"]:
        assert words in table
    assert "reference :" in result.examples_text()
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"results.json", "predictions.json", "table.txt", "costs.png", "quality_vs_parameters.png",
            "training_curves.png", "full", "prefix"} <= set(saved)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_output_folder_is_complete_and_reloads(tmp_path):
    out = tmp_path / "deep" / "results"
    result = run_sentiment(out_dir=out)
    files = {p.name for p in out.iterdir()}
    assert {"results.json", "predictions.json", "table.txt", "quality_vs_parameters.png", "costs.png",
            "clear_vs_ambiguous.png", "training_curves.png"} <= files
    assert (out / "prefix" / "prefix.safetensors").is_file() and (out / "full" / "model.safetensors").is_file()
    data = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in data["rows"]] == ["full", "prefix"]
    again = ComparisonResult.load(out)
    assert again.rows == json.loads(json.dumps(data["rows"]))
    assert again.histories["prefix"].loss == result.histories["prefix"].loss
    assert again.table() == (out / "table.txt").read_text().rstrip("\n")
    with pytest.raises(FileExistsError, match="already holds a comparison"):
        run_sentiment(out_dir=out, seed=1)  # an earlier comparison is never replaced by accident
    assert json.loads((out / "results.json").read_text())["seed"] == 0
    run_sentiment(out_dir=out, seed=1, overwrite=True)  # asked for: replaced, whole
    assert json.loads((out / "results.json").read_text())["seed"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["results"]


@pytest.mark.parametrize("kwargs, words", [
    (dict(task="translate"), "Unknown task 'translate'; choose from: sentiment, summarise"),
    (dict(methods="full,adapter"), "Unknown method 'adapter'"),
    (dict(methods="zero-shot"), "does not fit the sentiment task"),
    (dict(methods="full,full"), "twice"),
    (dict(steps=0), "steps must be a whole number >= 1"),
    (dict(steps=-3), "steps must be"),
    (dict(prefix_length=0), "prefix_length"),
    (dict(learning_rates={"prefix": -1}), "learning rate"),
])
def test_learner_mistakes_get_clear_errors_before_any_work(kwargs, words, tmp_path):
    task = kwargs.pop("task", "sentiment")
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        compare(task, model="tiny-bert", tiny_data=tiny_sentiment(), mode="fast", progress=False,
                out_dir=tmp_path / "out", **kwargs)
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_bert_cannot_summarise_and_data_must_fit_the_task():
    with pytest.raises(ValueError, match="cannot generate"):
        compare("summarise", model="tiny-bert", tiny_data=tiny_summaries(), mode="fast", progress=False)
    with pytest.raises(ValueError, match="no 'text' column"):
        compare("sentiment", model="tiny-bert", tiny_data=tiny_summaries(), mode="fast", progress=False)


def test_unwritable_output_folder_fails_first_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="a_file is a file"):
        run_sentiment(out_dir=blocker / "results")
    with pytest.raises(OSError, match="is a file"):
        run_sentiment(out_dir=blocker)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="not replaced"):
        run_sentiment(out_dir=tmp_path / "precious")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "precious"]
    assert (tmp_path / "precious" / "notes.txt").read_text() == "mine"


def test_a_crash_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    import tutorlib.experiments.runs as runs

    real = runs.evaluate
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "evaluate", crash_on_second)
    with pytest.raises(RuntimeError, match="simulated"):
        run_sentiment(out_dir=tmp_path / "new" / "results")
    assert list(tmp_path.iterdir()) == []  # no staging folder, no half results, not even the parent


def test_interrupted_training_stops_the_comparison_and_writes_nothing(tmp_path, monkeypatch):
    import tutorlib.experiments.runs as runs

    real_train = runs.train

    def interrupted_train(*args, **kwargs):
        history = real_train(*args, **kwargs)
        history.interrupted = True
        return history

    monkeypatch.setattr(runs, "train", interrupted_train)
    result = run_sentiment(out_dir=tmp_path / "out")
    assert result.interrupted and [r["method"] for r in result.rows] == ["full"]
    assert "INTERRUPTED" in result.table()
    assert list(tmp_path.iterdir()) == []


def test_cli_entry_point(tmp_path, capsys, monkeypatch):
    import tutorlib.experiments.compare as cmp

    real = cmp.compare
    monkeypatch.setattr(cmp, "compare", lambda spec, **kw: real(spec, **{**kw, "tiny_data": tiny_sentiment(),
                                                                         "progress": False, "measure_energy": False}))
    assert cli.main(["compare", "--task", "sentiment", "--model", "tiny-bert", "--steps", "2", "--prefix-length", "4",
                     "--fast", "--explain", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "Quality" in out and "Cost" in out and "Wall time" in out
    assert "What this run found (fast mode)" in out and "How sure: McNemar" in out and "What the columns mean" in out
    assert "ECE" in out.split("What the columns mean")[1] and "CPU s/step" in out.split("What the columns mean")[1]
    assert max(len(line) for line in out.splitlines()) <= 120
    assert (tmp_path / "cli" / "results.json").is_file()


def test_paired_sign_flip_test():
    a = np.linspace(0.2, 0.6, 30)
    assert paired_sign_flip_p(a, a) == 1.0  # no difference at all
    assert paired_sign_flip_p(a + 0.1, a) < 0.001  # every item better by the same amount
    noise = np.random.default_rng(0).normal(0, 0.1, 30)
    assert paired_sign_flip_p(a + noise, a - noise) == paired_sign_flip_p(a + noise, a - noise)  # seeded


def test_budget_overrides_shrink_a_run_and_are_checked():
    result = run_sentiment(budget={"test_items": 6, "batch_size": 8})
    assert result.row("full")["n"] == 6 and result.budget["batch_size"] == 8
    assert result.data_summary["batches_per_epoch"] == 5  # 40 items / 8
    with pytest.raises(ValueError, match="Unknown budget field 'epochs'"):
        run_sentiment(budget={"epochs": 2})
    with pytest.raises(ValueError, match="whole number >= 1"):
        run_sentiment(budget={"batch_size": 0})
    with pytest.raises(ValueError, match="does not generate"):
        run_sentiment(budget={"max_new_tokens": 8})


def test_find_results_loads_every_saved_comparison(tmp_path):
    from tutorlib.experiments.results import find_results

    run_sentiment(out_dir=tmp_path / "a", budget={"test_items": 6})
    (tmp_path / "not-a-result").mkdir()
    found = find_results(tmp_path)
    assert list(found) == ["a"] and found["a"].row("prefix")["n"] == 6
    with pytest.raises(FileNotFoundError, match="tutorlib compare"):
        find_results(tmp_path / "missing")


def test_a_workshop_run_says_workshop_mode_in_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORLIB_MODE", "workshop")
    out = tmp_path / "workshop"
    result = run_sentiment(mode=None, steps=2, out_dir=out)  # mode=None: the mode comes from TUTORLIB_MODE
    assert (result.mode, result.fast) == ("workshop", False)
    assert "(workshop mode, seed 0" in (out / "table.txt").read_text()
    assert ComparisonResult.load(out).mode == "workshop"
    # A result saved before workshop mode existed has no "mode": its mode comes from `fast`.
    data = json.loads((out / "results.json").read_text())
    del data["mode"]
    (out / "results.json").write_text(json.dumps(data))
    assert ComparisonResult.load(out).mode == "full"
