"""The command line as a new user meets it: an own CSV, an existing output folder, an impossible prefix,
the learning-rate and split options, and the seeds table (tiny models; no real model, no network)."""

import json

import pytest

from tutorlib import cli
from tutorlib.experiments.compare import compare
from tutorlib.experiments.seeds import seeds_table
from tutorlib.loading.models import load_model
from tutorlib.training.memory_estimate import DoesNotFitError, check_step_fits, step_memory_floor


def own_csv(tmp_path, n=40):
    words = ["a fine warm film", "a dull cold mess", "lovely and moving", "boring and flat"]
    path = tmp_path / "my_reviews.csv"
    path.write_text("text,label\n" + "\n".join(f"{words[i % 4]} {i},{int(i % 4 in (0, 2))}" for i in range(n)) + "\n")
    return path


def run_cli(*args):
    return cli.main(["compare", "--task", "sentiment", "--model", "tiny-bert", "--fast", "--steps", "2", *args])


def test_compare_runs_on_a_small_csv_of_ones_own(tmp_path, capsys):
    out = tmp_path / "mine"
    assert run_cli("--dataset", str(own_csv(tmp_path)), "--out", str(out), "--lr", "full=1e-4,prefix=3e-3") == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["dataset"].endswith("my_reviews.csv") and saved["learning_rates"] == {"full": 1e-4, "prefix": 3e-3}
    assert "Quality" in capsys.readouterr().out


def test_an_earlier_comparison_is_not_replaced_without_overwrite(tmp_path, capsys):
    out, data = tmp_path / "mine", str(own_csv(tmp_path))
    assert run_cli("--dataset", data, "--out", str(out), "--methods", "full") == 0
    before = (out / "results.json").read_text()
    assert run_cli("--dataset", data, "--out", str(out), "--methods", "prefix") == 2
    err = capsys.readouterr().err
    assert "already holds a comparison" in err and "sentiment: full" in err and "--overwrite" in err
    assert (out / "results.json").read_text() == before  # untouched
    assert run_cli("--dataset", data, "--out", str(out), "--methods", "prefix", "--overwrite") == 0
    assert [r["method"] for r in json.loads((out / "results.json").read_text())["rows"]] == ["prefix"]


def test_a_prefix_too_long_for_memory_is_refused_before_training(tmp_path, capsys, monkeypatch):
    # The case: --prefix-length 100000 was killed by the OOM killer a minute in. Free memory is set
    # to 2 GiB so the test means the same on any machine.
    monkeypatch.setattr("tutorlib.training.memory_estimate.free_memory", lambda device: 2 * 2**30)
    assert run_cli("--dataset", str(own_csv(tmp_path)), "--methods", "prefix", "--prefix-length", "100000",
                   "--out", str(tmp_path / "never")) == 2
    err = capsys.readouterr().err
    assert "needs at least" in err and "--prefix-length" in err and "available" in err
    assert not (tmp_path / "never").exists()


def test_memory_floor_grows_with_the_prefix_and_a_plain_step_fits():
    model, _ = load_model("tiny-gpt2")
    short = step_memory_floor(model, batch_size=2, seq_len=16, prefix_length=10)
    long = step_memory_floor(model, batch_size=2, seq_len=16, prefix_length=1000)
    assert long.attention > 30 * short.attention and long.weights == short.weights and short.logits > 0
    assert long.prefix == 100 * short.prefix > 0
    assert check_step_fits(model, batch_size=2, seq_len=16, prefix_length=10).total == short.total
    with pytest.raises(DoesNotFitError):
        check_step_fits(model, batch_size=2, seq_len=16, prefix_length=10**12)


def test_split_seed_is_not_the_training_seed(tmp_path):
    data = str(own_csv(tmp_path))
    kw = dict(model="tiny-bert", dataset=data, methods="prefix", mode="fast", steps=1, progress=False,
              measure_energy=False)
    a = compare("sentiment", seed=0, **kw)
    b = compare("sentiment", seed=1, **kw)  # another training seed, the same split
    c = compare("sentiment", seed=0, split_seed=1, **kw)  # the same training seed, another split
    ids = [[p["id"] for p in r.predictions["prefix"]] for r in (a, b, c)]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_bad_learning_rates_get_a_clear_error(tmp_path, capsys):
    assert run_cli("--dataset", str(own_csv(tmp_path)), "--lr", "full=fast", "--out", str(tmp_path / "x")) == 2
    assert "method=rate pairs" in capsys.readouterr().err


def test_seeds_table_reads_per_seed_rows_and_intervals():
    interval = {"mean": 0.03, "ci95": (0.01, 0.05), "sd": 0.01, "n": 3, "values": [0.02, 0.03, 0.04]}
    summary = {"a": "full", "b": "prefix", "learning_rates": {"full": 5e-5, "prefix": 1e-2}, "mode": "full",
               "per_seed": [{"seed": s, "split_seed": 0, "gap_all": 0.01 * (s + 2), "gap_clear": 0.02,
                             "gap_ambiguous": 0.04, "gap_difference": {"estimate": 0.02}, "mcnemar_p": 0.01,
                             "ood_gap": 0.05} for s in range(3)],
               "across_seeds": {"gap_all": interval}, "across_split_seeds": None}
    text = seeds_table(summary)
    assert "+2.0" in text and "+4.0" in text and "[+1.00, +5.00]" in text and "across training seeds" in text
