"""The item sets a sentiment run is scored on: validation (for choosing), test (for reporting) and an
out-of-distribution set (a new source of reviews the model never trained on).

    >>> from tutorlib.experiments.held_out import sentiment_score_sets
    >>> sets = sentiment_score_sets(split_seed=0, ood_items=2000)     # doctest: +SKIP
    >>> {name: len(rows) for name, rows in sets.items()}               # doctest: +SKIP
    {'validation': 1060, 'test': 1061, 'ood': 2000}

The out-of-distribution set is ``rotten-tomatoes``: critic snippets labelled fresh/rotten by the site,
not by raters. About half of its snippets are also in ``movie-snippets``; a snippet whose normalised
text (:func:`normalise_text`) occurs anywhere in ``movie-snippets`` (any split) is dropped, so no
scored item was ever trained on, nor is it a copy of a validation or test item. It has no raters, so
the clear/ambiguous split cannot be made there: only overall accuracy is compared.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from tutorlib.loading.data import load_dataset

SCORED_COLUMNS = ("id", "text", "label")  # what every scored set keeps (rotten-tomatoes has no raters)


def normalise_text(text: str) -> str:
    """Lower case, accents folded (NFKD), every run of non-letters/digits one space: two copies of a
    snippet that differ only in quotes, punctuation or spacing give the same string."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", " ", folded.lower()).strip()


def out_of_distribution(in_domain, new_source, items: int | None = None, seed: int = 0):
    """``new_source`` rows whose normalised text occurs in no split of ``in_domain`` -> a Dataset.

    Args:
        in_domain: a ``DatasetDict`` (or list of Datasets) the model may have seen.
        new_source: a ``Dataset`` with ``text`` and ``label``.
        items: keep a seeded random sample of this many (None: all that remain).
        seed: seeds that sample.
    """
    parts = in_domain.values() if hasattr(in_domain, "values") else in_domain
    seen = {normalise_text(t) for part in parts for t in part["text"]}
    keep = [i for i, t in enumerate(new_source["text"]) if normalise_text(t) not in seen]
    if items is not None and items < len(keep):
        keep = sorted(np.random.default_rng(seed).choice(keep, size=items, replace=False).tolist())
    return new_source.select(keep)


def sentiment_score_sets(split_seed: int = 0, ood_items: int | None = 2000, ood_seed: int = 0) -> dict:
    """``movie-snippets`` validation and test (split with ``split_seed``) and the out-of-distribution
    ``rotten-tomatoes`` sample -> {"validation", "test", "ood"}: Datasets."""
    movies = load_dataset("movie-snippets", seed=split_seed)
    tomatoes = load_dataset("rotten-tomatoes", seed=0)
    pool = datasets_concat([tomatoes[s] for s in ("train", "validation", "test")])
    return {"validation": movies["validation"], "test": movies["test"],
            "ood": out_of_distribution(movies, pool, items=ood_items, seed=ood_seed)}


def datasets_concat(parts: list):
    """Stack Datasets keeping only ``id``, ``text`` and ``label`` (label as a plain integer), so sets
    with different extra columns or label names can be scored in one pass."""
    import datasets

    plain = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                               "label": datasets.Value("int64")})
    return datasets.concatenate_datasets(
        [p.select_columns(list(SCORED_COLUMNS)).cast(plain) for p in parts])
