"""The terminology metric on hand-made cases, and its place in a summarisation comparison."""

import json
import math

import pytest
from datasets import Dataset, DatasetDict

from tutorlib.experiments.compare import compare
from tutorlib.tasks import terminology
from tutorlib.tasks.terminology import Vocabulary, domain_terms, occurs, score_terminology


def test_terms_match_whole_words_case_insensitively_and_tolerate_plurals():
    assert occurs("Adenosine Triphosphate", "hydrolysis of adenosine triphosphate (ATP)")
    assert occurs("2,4-Dinitrophenol", "uncoupled by 2,4-dinitrophenol.")
    assert occurs("Erythrocytes", "a single erythrocyte")  # MeSH plural, abstract singular
    assert occurs("Antibodies", "the antibody bound")
    assert occurs("Lipoprotein", "plasma lipoproteins")
    assert not occurs("Lead", "leading to a rise")  # inside another word: no
    assert not occurs("Rat", "a pirate")
    assert not occurs("Adenosine Triphosphate", "adenosine was added; triphosphate later")  # not consecutive
    assert not occurs("Gas", "the ga value")  # short words are not shortened


def test_domain_terms_are_indexed_terms_found_in_the_abstract_without_check_tags_or_repeats():
    doc = "Calcium uptake by rat liver mitochondria was measured in male rats."
    terms = domain_terms(doc, mesh_terms=["Mitochondria, Liver", "Calcium", "Rats", "Male", "Kinetics"],
                         chemicals=["calcium", "Ruthenium Red"])
    assert terms == ["Calcium"]  # "Mitochondria, Liver" is not written that way; Rats/Male are check tags
    assert domain_terms(doc) == []


def test_recall_and_invented_terms_on_hand_made_items():
    documents = ["Troponin binds calcium in muscle.",
                 "Insulin lowers glucose.",
                 "We describe a new method."]
    summaries = ["Troponin in muscle.",  # keeps 1 of 2 terms
                 "Insulin lowers blood glucose and raises glycogen.",  # keeps 2 of 2, invents Glycogen
                 "A method for measuring cholesterol."]  # no terms to keep; invents Cholesterol
    mesh = [["Troponin", "Calcium", "Humans"], ["Insulin"], ["Research Design"]]
    chemicals = [[], ["Glucose"], []]
    vocabulary = ["Troponin", "Calcium", "Insulin", "Glucose", "Glycogen", "Cholesterol"]
    report = score_terminology(documents, summaries, mesh, chemicals, vocabulary)
    assert [it["recall"] for it in report["items"]] == [0.5, 1.0, None]
    assert report["term_items"] == 2 and report["items_without_terms"] == 1
    assert report["term_recall"] == pytest.approx(0.75)
    assert report["term_recall_se"] == pytest.approx(0.25)  # std([0.5, 1.0], ddof=1) / sqrt(2)
    assert report["generated_terms"] == 5  # Troponin; Insulin, Glucose, Glycogen; Cholesterol
    assert report["invented_terms"] == 2 and report["invented_rate"] == pytest.approx(0.4)
    assert report["summaries_with_invented"] == 2


def test_a_copy_of_the_abstract_keeps_every_term_and_invents_none():
    docs = ["Hemoglobin carries oxygen in erythrocytes."]
    report = score_terminology(docs, docs, [["Hemoglobin", "Erythrocytes"]], [["Oxygen"]],
                               Vocabulary(["Hemoglobin", "Erythrocytes", "Oxygen", "Iron"]))
    assert report["term_recall"] == 1.0 and report["invented_terms"] == 0 and report["invented_rate"] == 0.0
    assert report["term_recall_se"] is None  # one item: no standard error


def test_no_terms_anywhere_gives_none_not_zero():
    report = score_terminology(["Plain words."], ["Plain."], [[]], [[]], [])
    assert report["term_recall"] is None and report["invented_rate"] is None and report["items_without_terms"] == 1


def test_mismatched_lengths_say_what_was_given():
    with pytest.raises(ValueError, match="2 documents, 1 summaries"):
        score_terminology(["a", "b"], ["a"], [[], []], [[], []], [])


def test_vocabulary_is_built_from_every_split_and_drops_check_tags():
    splits = DatasetDict(train=Dataset.from_dict({"mesh_terms": [["Humans", "Insulin"]], "chemicals": [["Glucose"]]}),
                         test=Dataset.from_dict({"mesh_terms": [["insulin"]], "chemicals": [["Heme"]]}))
    vocab = terminology.dataset_vocabulary(splits)
    assert vocab.terms == ["Insulin", "Glucose", "Heme"]
    assert vocab.find("heme and INSULIN") == ["Insulin", "Heme"]
    assert terminology.has_terms(splits["train"]) and not terminology.has_terms(Dataset.from_dict({"a": [1]}))


def tiny_biochem(n_train=12, n_test=4) -> DatasetDict:
    """Hand-made abstract -> title pairs with MeSH and chemical lists, shaped like pubmed-biochem."""
    def rows(n, start):
        ids = [str(start + i) for i in range(n)]
        return {"id": ids,
                "document": [f"Insulin binding to rat liver cells was measured at {i} degrees. Glucose rose."
                             for i in range(start, start + n)],
                "summary": [f"Insulin binding at {i} degrees." for i in range(start, start + n)],
                "journal": ["J Biol Chem"] * n,
                "mesh_terms": [["Insulin", "Rats", "Liver"]] * n, "chemicals": [["Glucose", "Glycogen"]] * n}

    return DatasetDict(train=Dataset.from_dict(rows(n_train, 0)), test=Dataset.from_dict(rows(n_test, 100)))


def test_compare_reports_terminology_with_paired_tests_and_can_keep_texts_out_of_files(tmp_path):
    result = compare("summarise", model="tiny-gpt2", tiny_data=tiny_biochem(), methods="zero-shot,prefix",
                     steps=2, mode="fast", progress=False, measure_energy=False)
    for method in ("zero-shot", "prefix"):
        row = result.row(method)
        assert row["term_items"] == 4 and row["items_without_terms"] == 0
        assert 0 <= row["term_recall"] <= 1 and row["generated_terms"] >= row["invented_terms"] >= 0
        assert all("term_recall" in p and "terms_invented" in p for p in result.predictions[method])
    by_name = {r["method"]: r for r in result.references}
    assert by_name["lead sentence"]["invented_terms"] == 0  # a sentence of the abstract invents nothing
    assert by_name["reference title"]["term_recall"] == pytest.approx(1 / 3)  # keeps Insulin of 3 terms
    tests = [t for t in result.paired_tests if t["test"] == "paired sign-flip on terminology recall"]
    assert len(tests) == 1 and tests[0]["items"] == 4 and 0 < tests[0]["p_value"] <= 1
    table = result.table()
    for words in ["term recall", "invented", "reference title (reference)", "terminology recall difference"]:
        assert words in table

    result.share_text = False  # what compare() sets for pubmed-biochem
    result.save(tmp_path / "out", plots=False)
    saved = {name: (tmp_path / "out" / name).read_text() for name in ("results.json", "predictions.json", "table.txt")}
    assert not any("Insulin binding" in text for text in saved.values())  # no document, reference or summary
    predictions = json.loads(saved["predictions.json"])
    assert all("prediction" not in p and "id" in p and "rougeL" in p for p in predictions["prefix"])
    assert json.loads(saved["results.json"])["examples"] == {}
    assert math.isclose(json.loads(saved["results.json"])["rows"][1]["term_recall"],
                        result.row("prefix")["term_recall"])


def test_summaries_without_term_lists_keep_the_plain_rouge_table():
    plain = tiny_biochem().remove_columns(["mesh_terms", "chemicals"])
    result = compare("summarise", model="tiny-gpt2", tiny_data=plain, methods="zero-shot",
                     mode="fast", progress=False, measure_energy=False)
    assert "term_recall" not in result.row("zero-shot") and "term recall" not in result.table()
