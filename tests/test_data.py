"""The offline datasets: sizes, seeded splits, rater fields, summaries, the cache, errors."""

import dataclasses
import math
import statistics

import datasets
import pytest

from tutorlib.loading import assets, data, readers
from tutorlib.loading.data import DATASETS, UnknownDatasetError, describe_datasets, load_dataset

# Row counts of the published files after the documented drops (see each split's description).
EXPECTED_SPLITS = {
    "movie-snippets": (8484, 1060, 1061),  # 10,605 snippets
    "rotten-tomatoes": (10201, 1275, 1276),  # 12,752 reviews: 13,905 rows - 1,097 plots - 56 repeats
    "nyt-leads": (394, 49, 50),  # 493 articles: 498 - 5 without their first sentence
    "aclsum": (300, 150, 300),  # the published 100 / 50 / 100 papers x 3 aspects
}


def _ids(dd):
    return {split: dd[split]["id"] for split in data.SPLITS}


@pytest.mark.real
@pytest.mark.parametrize("name", list(EXPECTED_SPLITS))
def test_offline_set_has_stable_sizes_columns_and_disjoint_splits(name):
    first, again = load_dataset(name), load_dataset(name)
    assert tuple(len(first[s]) for s in data.SPLITS) == EXPECTED_SPLITS[name]
    assert tuple(first["train"].column_names) == DATASETS[name].columns
    ids, ids_again = _ids(first), _ids(again)
    assert ids == ids_again  # same rows, same order
    train, val, test = (set(ids[s]) for s in data.SPLITS)
    assert len(train) + len(val) + len(test) == sum(EXPECTED_SPLITS[name])  # ids unique
    assert not (train & val or train & test or val & test)
    assert first["train"].info.description  # what was dropped, in words


@pytest.mark.real
def test_a_different_seed_shuffles_differently_and_is_cached_apart():
    zero, one = load_dataset("movie-snippets", seed=0), load_dataset("movie-snippets", seed=1)
    assert [len(one[s]) for s in data.SPLITS] == [len(zero[s]) for s in data.SPLITS]
    assert zero["train"]["id"][:20] != one["train"]["id"][:20]
    assert set(zero["test"]["id"]) != set(one["test"]["id"])
    assert data.cache_path("movie-snippets", 0) != data.cache_path("movie-snippets", 1)
    assert (data.cache_path("movie-snippets", 1) / "dataset_dict.json").is_file()


@pytest.mark.real
def test_movie_snippet_rater_fields_agree_with_each_other():
    movies = load_dataset("movie-snippets")
    rows = datasets.concatenate_datasets([movies[s] for s in data.SPLITS]).to_pandas()
    assert len(rows) == 10605
    for r in rows.itertuples():
        ratings = list(r.ratings)
        assert r.n_raters == len(ratings) >= 15
        assert all(-4 <= x <= 4 for x in ratings)
        assert math.isclose(statistics.fmean(ratings), r.rating, abs_tol=1e-6)
        assert math.isclose(statistics.pstdev(ratings), r.rater_std, abs_tol=1e-4)
        assert r.frac_positive == sum(x > 0 for x in ratings) / len(ratings)
        assert r.label == (1 if r.rating > 0 else 0)
    assert 0 <= rows.frac_positive.min() and rows.frac_positive.max() <= 1
    assert rows.label.nunique() == 2 and (rows.text.str.len() > 0).all()
    assert "''" not in " ".join(rows.text)  # the source's two-apostrophe quotes became "
    assert movies["train"].features["label"].names == ["negative", "positive"]


@pytest.mark.real
def test_nyt_leads_are_first_sentences_removed_from_the_document():
    nyt = load_dataset("nyt-leads")
    rows = datasets.concatenate_datasets([nyt[s] for s in data.SPLITS]).to_pandas()
    first = rows[rows.id == "1"].iloc[0]  # the file's first line is article 1, sentence 1
    assert first.summary.startswith("On Dec. 19, around noon, New York City's Union Square")
    assert first.document.startswith("Events include sprinting")
    assert (rows.summary.str.strip().str.len() > 0).all()
    assert (rows.document.str.strip().str.len() > 0).all()
    # A document is the rest of an article: several sentences, far longer than its lead.
    assert rows.document.str.split().str.len().median() > 4 * rows.summary.str.split().str.len().median()
    assert not any(s in d for s, d in zip(rows.summary, rows.document))


@pytest.mark.real
def test_aclsum_one_row_per_paper_and_aspect_in_published_splits():
    acl = load_dataset("aclsum", seed=3)  # the seed does not move published splits
    assert _ids(acl) == _ids(load_dataset("aclsum"))
    papers = {s: {i.rsplit("/", 1)[0] for i in acl[s]["id"]} for s in data.SPLITS}
    assert [len(papers[s]) for s in data.SPLITS] == [100, 50, 100]
    assert not (papers["train"] & papers["test"] or papers["validation"] & papers["test"])
    rows = acl["test"].to_pandas()
    assert rows.aspect.value_counts().to_dict() == {a: 100 for a in readers.ASPECTS}
    assert (rows.summary.str.strip().str.len() > 0).all()
    assert rows.groupby(rows.id.str.rsplit("/", n=1).str[0]).summary.nunique().eq(3).all()
    assert not rows.document.str.contains(r" [,.;:)]", regex=True).any()  # detokenised


@pytest.mark.real
def test_rotten_tomatoes_has_no_empty_or_repeated_texts():
    rt = load_dataset("rotten-tomatoes")
    rows = datasets.concatenate_datasets([rt[s] for s in data.SPLITS]).to_pandas()
    assert rows.text.str.strip().str.len().min() > 0
    assert not rows.text.duplicated().any()
    assert set(rows.label) == {0, 1}
    assert rt["train"].features["label"].names == ["rotten", "fresh"]


@pytest.mark.real
def test_first_load_writes_the_cache_atomically_and_later_loads_only_read_it(
        tmp_path, monkeypatch):
    real_files = assets.cache_dir() / "files"  # where the verified artifacts already lie
    monkeypatch.setenv("TUTORLIB_CACHE", str(tmp_path))
    monkeypatch.setenv("TUTORLIB_WHEELHOUSE", str(real_files))
    calls = []
    info = data.DATASETS["nyt-leads"]
    monkeypatch.setitem(data.DATASETS, "nyt-leads",
                        dataclasses.replace(info, reader=lambda: calls.append(1) or info.reader()))
    first = load_dataset("nyt-leads")
    path = data.cache_path("nyt-leads")
    assert path.is_relative_to(tmp_path) and (path / "dataset_dict.json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    second = load_dataset("nyt-leads")
    assert calls == [1]  # parsed once, then read back from the cache
    assert _ids(first) == _ids(second)


def test_literal_text_fields_are_read_without_eval():
    assert readers._as_python("{'challenge': 'a', 'n': [1, 2]}") == {
        "challenge": "a", "n": [1, 2]}
    assert readers._as_python({"already": "parsed"}) == {"already": "parsed"}
    with pytest.raises(ValueError):
        readers._as_python("__import__('os').getcwd()")


def test_unknown_name_says_what_exists_and_that_hub_names_need_network():
    with pytest.raises(UnknownDatasetError) as err:
        load_dataset("movie_snippets")
    message = str(err.value)
    assert "Did you mean 'movie-snippets'" in message
    assert all(name in message for name in DATASETS)
    assert "need network" in message
    assert isinstance(err.value, ValueError)


def test_describe_datasets_lists_every_name_task_and_licence():
    table = describe_datasets()
    for info in DATASETS.values():
        assert info.name in table and info.licence in table and info.source in table
    assert "sst2" in table and "xsum" in table


def test_hub_sets_get_the_kit_columns_and_three_splits():
    # Shaped like SST-2 on the hub: "sentence"/"idx", and a test split whose labels are hidden (-1).
    def part(n, label):
        return datasets.Dataset.from_dict(
            {"idx": list(range(n)), "sentence": [f"s{i}" for i in range(n)], "label": [label] * n})

    raw = datasets.DatasetDict(train=part(100, 1), validation=part(10, 0), test=part(10, -1))
    out = data.normalise_hub_dataset(raw, seed=0)
    assert list(out) == list(data.SPLITS)
    assert {"id", "text", "label"} <= set(out["train"].column_names)
    assert out["test"]["label"] == [0] * 10  # the published validation became the test set
    assert (len(out["train"]), len(out["validation"])) == (90, 10)  # validation carved from train
    assert out["train"].features["id"] == datasets.Value("string")

    # Shaped like SAMSum: "dialogue" -> "document", and only a train split.
    only_train = datasets.DatasetDict(train=datasets.Dataset.from_dict(
        {"id": [str(i) for i in range(50)], "dialogue": ["d"] * 50, "summary": ["s"] * 50}))
    out = data.normalise_hub_dataset(only_train)
    assert [len(out[s]) for s in data.SPLITS] == [40, 5, 5]
    assert {"document", "summary"} <= set(out["test"].column_names)
