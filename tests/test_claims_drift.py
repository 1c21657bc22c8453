"""Quoted numbers against the stored runs they come from: a re-run that changes a number fails here.

The marker convention, in README.md, docs/*.md and the lessons' markdown cells: right after a number quoted
from a stored result, an HTML comment (invisible when rendered) names the file and the value::

    0.787<!--from results/sentiment/results.json rows[prefix].accuracy-->

The path is dotted keys; ``name[method]`` picks the item of a list whose ``method`` is that name; a
number key picks a list item by position (``per_seed.0.gap_all``). The number must equal the stored value
rounded to as many decimals as the text writes (commas allowed; a trailing ``%`` means the value is a
fraction written as a percentage; `` x100`` after the path, e.g. for accuracy points, the same without
the sign).
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"(?P<number>[-+]?\d[\d,]*(?:\.\d+)?)(?P<percent>%?)\s*<!--from (?P<file>\S+) (?P<path>\S+)"
                    r"(?P<scale> x100)?\s*-->")
STEP = re.compile(r"(?P<key>[A-Za-z_][\w-]*|\d+)(?:\[(?P<pick>[^\]]+)\])?")


def stored_value(file: str, path: str) -> float:
    """The value at ``path`` in the JSON file ``file`` (relative to the repository)."""
    value = json.loads((ROOT / file).read_text())
    for part in path.split("."):
        step = STEP.fullmatch(part)
        if step is None:
            raise ValueError(f"bad path step {part!r} in {path!r}")
        value = value[int(step["key"])] if step["key"].isdigit() else value[step["key"]]
        if step["pick"] is not None:
            value = next(item for item in value if item.get("method") == step["pick"])
    return float(value)


def quoted_numbers(text: str):
    for match in MARKED.finditer(text):
        yield match["number"], match["percent"] or match["scale"] or "", match["file"], match["path"]


def check(number: str, percent: str, file: str, path: str) -> str | None:
    """None when the quoted number matches the stored value; else what differs."""
    written = float(number.replace(",", ""))
    decimals = len(number.split(".")[1]) if "." in number else 0
    value = stored_value(file, path) * (100 if percent else 1)
    if round(value, decimals) != pytest.approx(written, abs=10 ** -decimals / 2):
        return f"{number}{percent} quoted, {file} {path} = {value:.{decimals + 2}f}"
    return None


def sources():
    yield "README.md", (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        yield f"docs/{doc.name}", doc.read_text()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        yield notebook.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_every_marked_number_matches_its_stored_result():
    found, wrong = 0, []
    for name, text in sources():
        for quote in quoted_numbers(text):
            found += 1
            problem = check(*quote)
            if problem:
                wrong.append(f"{name}: {problem}")
    assert found > 0, "no marked number found: the convention is <!--from FILE PATH--> after the number"
    assert not wrong, "numbers that their stored results contradict:\n" + "\n".join(wrong)


def test_the_check_catches_a_wrong_number():
    text = "prefix 0.797<!--from results/sentiment/results.json rows[prefix].accuracy-->"
    (quote,) = quoted_numbers(text)
    assert check(*quote) is not None
    assert check("0.787", "", "results/sentiment/results.json", "rows[prefix].accuracy") is None


def test_the_lessons_that_quote_stored_runs_keep_their_quotes_checkable():
    """Lessons 6-8 quote the stored runs in their prose: each keeps its quoted numbers marked."""
    counts = {name: sum(1 for _ in quoted_numbers(text)) for name, text in sources()}
    for lesson in ("06_ambiguous_sentiment.ipynb", "07_summarisation.ipynb", "08_choosing_a_method.ipynb"):
        assert counts.get(lesson, 0) >= 5, f"{lesson}: {counts.get(lesson, 0)} marked numbers; its quotes lost their markers"
