"""Domain terminology in generated summaries: does a summary keep the source's technical terms, and does
it write technical terms the source never used?

    >>> from tutorlib.tasks.terminology import domain_terms, score_terminology
    >>> doc = "Adenosine triphosphate binds to the purified ATPase of rat erythrocytes."
    >>> domain_terms(doc, mesh_terms=["Erythrocytes", "Rats", "Kinetics"], chemicals=["Adenosine Triphosphate"])
    ['Erythrocytes', 'Adenosine Triphosphate']
    >>> report = score_terminology([doc], ["ATPase of erythrocytes binds adenosine triphosphate and calcium"],
    ...                            [["Erythrocytes", "Rats"]], [["Adenosine Triphosphate"]],
    ...                            vocabulary=["Erythrocytes", "Adenosine Triphosphate", "Calcium"])
    >>> report["term_recall"], report["invented_terms"], report["generated_terms"]
    (1.0, 1, 3)

**Which words are domain terms.** ROUGE counts every shared word alike, so a summary can score well
while dropping every technical term. Here the domain terms of one item are the names NLM's indexers
attached to the article, its MeSH descriptors and the substances of its ChemicalList, *that also occur
in the abstract*. The indexers' lists say which concepts the article is about, in a controlled
vocabulary, without anyone here choosing words; requiring that a term occurs in the abstract keeps only
terms a summariser could have read (a MeSH heading like "Hydrogen-Ion Concentration" rarely appears
verbatim), so a recall of 1.0 is reachable. The MeSH *check tags* (:data:`MESH_CHECK_TAGS`: Humans,
Animals, Rats, Male, Adult, ...) are left out: they describe the study's subjects, not its topic. Some
remaining terms are common words (Water, Kinetics, Proteins): the measure is a floor-level check on
vocabulary, not a judgement of scientific accuracy.

**How a term is matched.** Case-insensitively, on whole words: text and term are cut into runs of letters
and digits (so "2,4-dinitrophenol" and "2,4-Dinitrophenol" match, while "rat" does not match inside
"pirate"), and the term must appear as consecutive words. The last word may differ by a plural ending
("Erythrocytes" matches "erythrocyte", "Antibodies" matches "antibody"), since MeSH writes headings in
the plural and abstracts often use the singular. No other stemming: looser matching would count
unrelated words.

**The two numbers.**

* *terminology recall* of an item = the share of its domain terms the generated summary reproduces;
  reported as the mean over items that have at least one domain term, with its standard error, and the
  number of items that had none (they say nothing about terminology and are left out).
* *invented terms*: the terms a checker can recognise are those of the whole dataset's vocabulary (every
  MeSH descriptor and chemical name of every split, check tags left out). A recognised term in a summary
  that occurs nowhere in its abstract is invented. The rate = invented / all recognised terms in the
  summaries (pooled over items), beside how many summaries invent at least one. A term outside that
  vocabulary goes unseen, so the rate is a lower bound on invention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

# MeSH check tags (NLM): who or what was studied, attached to most articles whatever their subject.
MESH_CHECK_TAGS = frozenset(t.lower() for t in [
    "Humans", "Animals", "Male", "Female", "Pregnancy", "Infant, Newborn", "Infant", "Child, Preschool",
    "Child", "Adolescent", "Young Adult", "Adult", "Middle Aged", "Aged", "Aged, 80 and over",
    "Cats", "Cattle", "Chick Embryo", "Cricetinae", "Dogs", "Guinea Pigs", "Horses", "Mice", "Rabbits",
    "Rats", "Sheep", "Swine", "In Vitro Techniques",
])
_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits, any alphabet; punctuation separates words

Words = tuple[str, ...]


def words(text: str) -> Words:
    """Lower-cased words of ``text``: "2,4-Dinitrophenol (DNP)" -> ("2", "4", "dinitrophenol", "dnp")."""
    return tuple(_WORD.findall(text.lower()))


def _forms(term: str) -> set[Words]:
    """The word sequences that count as ``term``: as written, and with its last word singular/plural."""
    base = words(term)
    if not base:
        return set()
    last, head = base[-1], base[:-1]
    endings = {last, last + "s"}
    if last.endswith("ies") and len(last) > 4:
        endings.add(last[:-3] + "y")  # antibodies -> antibody
    elif last.endswith("s") and len(last) > 4:
        endings.add(last[:-1])  # erythrocytes -> erythrocyte (not "gas" -> "ga")
    if last.endswith("y") and len(last) > 3:
        endings.add(last[:-1] + "ies")  # antibody -> antibodies
    return {head + (e,) for e in endings}


def _ngrams(text_words: Words, longest: int) -> set[Words]:
    """Every run of 1..``longest`` consecutive words of a text: a term occurs if one of its forms is here."""
    return {text_words[i:i + n] for n in range(1, longest + 1) for i in range(len(text_words) - n + 1)}


def _longest(terms: Iterable[str]) -> int:
    return max((len(words(t)) for t in terms), default=1)


def occurs(term: str, text: str) -> bool:
    """True when ``term`` appears in ``text`` as whole words (case-insensitive, plural-tolerant)."""
    return bool(_forms(term) & _ngrams(words(text), _longest([term])))


def _unique_terms(terms: Iterable[str]) -> list[str]:
    """Terms without check tags and without case-insensitive repeats, in their first-seen order."""
    seen, kept = set(), []
    for term in terms:
        key = words(term)
        if key and term.lower() not in MESH_CHECK_TAGS and key not in seen:
            seen.add(key)
            kept.append(term)
    return kept


def domain_terms(document: str, mesh_terms: Sequence[str] = (), chemicals: Sequence[str] = ()) -> list[str]:
    """The item's domain terms: its MeSH descriptors and chemical names (check tags left out) that occur
    in ``document``, each once, MeSH terms first."""
    candidates = _unique_terms([*mesh_terms, *chemicals])
    present = _ngrams(words(document), _longest(candidates))
    return [t for t in candidates if _forms(t) & present]


class Vocabulary:
    """Every recognisable domain term of a dataset, for finding the terms a summary uses."""

    def __init__(self, terms: Iterable[str]):
        self.terms = _unique_terms(terms)
        self._by_form = {form: term for term in self.terms for form in _forms(term)}
        self.longest = _longest(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def find(self, text: str) -> list[str]:
        """The vocabulary terms occurring in ``text``, each once, in vocabulary order."""
        found = {self._by_form[g] for g in _ngrams(words(text), self.longest) if g in self._by_form}
        return [t for t in self.terms if t in found]


def dataset_vocabulary(splits) -> Vocabulary:
    """The :class:`Vocabulary` of every ``mesh_terms`` and ``chemicals`` list in every split of a
    ``DatasetDict`` (or of one ``Dataset``)."""
    parts = splits.values() if hasattr(splits, "values") else [splits]
    return Vocabulary(term for part in parts for column in ("mesh_terms", "chemicals")
                      for terms in part[column] for term in terms)


def has_terms(dataset) -> bool:
    """True when a dataset carries the indexers' term lists (``mesh_terms`` and ``chemicals`` columns)."""
    return {"mesh_terms", "chemicals"} <= set(getattr(dataset, "column_names", []))


def score_terminology(documents: Sequence[str], summaries: Sequence[str], mesh_terms: Sequence[Sequence[str]],
                      chemicals: Sequence[Sequence[str]], vocabulary: Vocabulary | Iterable[str]) -> dict:
    """Terminology recall and invented terms of generated ``summaries`` (one per document).

    Returns ``term_recall`` (mean over items with domain terms; None if no item has any),
    ``term_recall_se`` (its standard error; None below 2 items), ``term_items`` (items with terms),
    ``items_without_terms``, ``generated_terms`` (recognised terms in all summaries), ``invented_terms``
    (those absent from their abstract), ``invented_rate`` (invented / generated; None if nothing was
    recognised), ``summaries_with_invented`` and ``items``: per item {terms, kept, recall, invented},
    with ``recall`` None for an item without terms.
    """
    n = len(documents)
    if not (len(summaries) == len(mesh_terms) == len(chemicals) == n):
        raise ValueError(f"Give one summary, one MeSH list and one chemical list per document: got {n} documents, "
                         f"{len(summaries)} summaries, {len(mesh_terms)} MeSH lists, {len(chemicals)} chemical lists.")
    vocab = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary)
    items = []
    for document, summary, mesh, chem in zip(documents, summaries, mesh_terms, chemicals):
        terms = domain_terms(document, mesh, chem)
        kept = [t for t in terms if occurs(t, summary)]
        generated = vocab.find(summary)
        invented = [t for t in generated if not occurs(t, document)]
        items.append({"terms": len(terms), "kept": len(kept), "recall": len(kept) / len(terms) if terms else None,
                      "generated": len(generated), "invented": len(invented)})
    recalls = np.array([it["recall"] for it in items if it["recall"] is not None], dtype=float)  # (items with terms,)
    generated = sum(it["generated"] for it in items)
    invented = sum(it["invented"] for it in items)
    return {
        "term_recall": float(recalls.mean()) if len(recalls) else None,
        "term_recall_se": float(recalls.std(ddof=1) / np.sqrt(len(recalls))) if len(recalls) > 1 else None,
        "term_items": int(len(recalls)), "items_without_terms": int(n - len(recalls)),
        "generated_terms": int(generated), "invented_terms": int(invented),
        "invented_rate": invented / generated if generated else None,
        "summaries_with_invented": int(sum(it["invented"] > 0 for it in items)),
        "items": items,
    }


def add_terminology(predictions: list[dict], dataset, vocabulary: Vocabulary) -> dict:
    """Score the per-item ``predictions`` (dicts with ``prediction``, in ``dataset`` order) and write each
    item's counts into its dict (``terms``, ``terms_kept``, ``term_recall``, ``terms_invented``); return
    the summary numbers of :func:`score_terminology` (without ``items``)."""
    report = score_terminology(list(dataset["document"]), [p["prediction"] for p in predictions],
                               list(dataset["mesh_terms"]), list(dataset["chemicals"]), vocabulary)
    for row, item in zip(predictions, report.pop("items")):
        row.update(terms=item["terms"], terms_kept=item["kept"], term_recall=item["recall"],
                   terms_invented=item["invented"])
    return report


def paired_recalls(predictions_a: list[dict], predictions_b: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Two methods' per-item terminology recall on the items that have domain terms: two (N,) arrays,
    item by item, ready for a paired test."""
    pairs = [(a["term_recall"], b["term_recall"]) for a, b in zip(predictions_a, predictions_b)
             if a.get("term_recall") is not None and b.get("term_recall") is not None]
    return np.array([a for a, _ in pairs], dtype=float), np.array([b for _, b in pairs], dtype=float)


def reference_terminology(dataset, vocabulary: Vocabulary) -> dict[str, dict]:
    """Terminology of two texts no model wrote, to read the methods against: ``lead sentence`` (the
    abstract's first sentence: it invents nothing by construction) and ``reference title`` (the authors'
    own title: how much of the abstract's terminology a human summary keeps, and how often it names
    terms the abstract does not use). Each value is :func:`score_terminology` without ``items``."""
    from tutorlib.tasks.summarise import lead_sentence

    documents = list(dataset["document"])
    lists = list(dataset["mesh_terms"]), list(dataset["chemicals"])
    texts = {"lead sentence": [lead_sentence(d) for d in documents], "reference title": list(dataset["summary"])}
    scores = {name: score_terminology(documents, summaries, *lists, vocabulary) for name, summaries in texts.items()}
    return {name: {k: v for k, v in report.items() if k != "items"} for name, report in scores.items()}
