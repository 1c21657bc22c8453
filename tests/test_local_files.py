"""Your own data file -> splits, and the clear errors for bad files; the gap-difference statistics."""

import json

import numpy as np
import pytest

from tutorlib.experiments.interaction import bootstrap_gap_difference, gap_difference, mean_interval
from tutorlib.loading.data import load_dataset
from tutorlib.loading.local_files import LocalDataError


def write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_is_split_80_10_10_with_ids(tmp_path):
    f = write_csv(tmp_path / "mine.csv", [f"review {i},{i % 2}" for i in range(20)])
    splits = load_dataset(str(f))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert set(splits["train"]["label"]) <= {0, 1} and splits["train"]["id"][0].startswith("row-")


def test_jsonl_with_split_column_keeps_it(tmp_path):
    f = tmp_path / "mine.jsonl"
    rows = [{"document": f"doc {i}", "summary": f"s {i}", "split": "test" if i < 3 else "train"} for i in range(13)]
    f.write_text("\n".join(json.dumps(r) for r in rows))
    splits = load_dataset(str(f))
    assert len(splits["test"]) == 3 and len(splits["train"]) + len(splits["validation"]) == 10


@pytest.mark.parametrize("rows,header,message", [
    (["a,1"] * 12, "words,stars", r"has the columns \[words, stars\]"),
    ([f"r{i},{i % 3}" for i in range(12)], "text,label", "labels must be 0"),
    (["a,1", ",0"] * 6, "text,label", "empty 'text'"),
    (["a,1"] * 4, "text,label", "at least 10"),
])
def test_bad_files_get_clear_errors(tmp_path, rows, header, message):
    with pytest.raises(LocalDataError, match=message):
        load_dataset(str(write_csv(tmp_path / "bad.csv", rows, header)))


def test_missing_file(tmp_path):
    with pytest.raises(LocalDataError, match="no such file"):
        load_dataset(str(tmp_path / "nothere.csv"))


def test_gap_difference_known_answer():
    ambiguous = np.array([0] * 100 + [1] * 100, bool)
    a = np.ones(200)  # A always right
    b = np.r_[np.ones(90), np.zeros(10), np.ones(60), np.zeros(40)]  # B: 10% wrong on clear, 40% on ambiguous
    assert gap_difference(a, b, ambiguous) == pytest.approx(0.30)
    boot = bootstrap_gap_difference(a, b, ambiguous, draws=2000)
    assert boot["ci95"][0] > 0.15 and boot["p_value"] < 0.01
    same = bootstrap_gap_difference(a, np.r_[b[:100], b[:100]], ambiguous, draws=2000)
    assert same["estimate"] == pytest.approx(0.0) and same["ci95"][0] < 0 < same["ci95"][1]


def test_mean_interval_three_seeds():
    out = mean_interval([1.0, 2.0, 3.0])
    half_width = 4.302653 / np.sqrt(3)  # t(0.975, 2) / sqrt(n)
    assert out["mean"] == 2.0 and out["ci95"] == pytest.approx((2 - half_width, 2 + half_width))
