"""Quoted numbers against the stored runs they come from: a re-run that changes a number fails here.

Two marker forms, in README.md, bench/RESULTS.md, docs/*.md and the lessons' markdown cells. Both are HTML
comments, invisible when rendered.

**One number**: right after a number quoted from a stored result, the file and the value::

    0.787<!--from results/sentiment/results.json rows[prefix].accuracy-->

**A span** (a table row, an interval, a list of p-values): every number between the two comments is checked,
in order, against one value each; the counts must match, so a number cannot hide in a span::

    <!--span results/sentiment/results.json: rows[full].accuracy; rows[full].accuracy_ci95.0;
    rows[full].accuracy_ci95.1-->0.837 [0.814, 0.858]<!--/span-->

A value is a path, or a small expression of paths and numbers with spaced operators evaluated left to right
(``rows[prefix].median_step_seconds / rows[full].median_step_seconds``, ``across_seeds.gap_all.mean * 100``,
``wall_seconds // 60``, ``wall_seconds % 60``). ``+-0.010`` is read as the absolute value; an operand
``FILE.json:path`` reads another file. A value that starts with ``FILE.json: `` (a space after the colon) switches
the file for itself and the values after it.

The path is dotted keys; ``name[method]`` picks the item of a list whose ``method`` is that name; a number
key picks a list item by position (``per_seed.0.gap_all``). The number must equal the stored value rounded to
as many decimals as the text writes (commas allowed; ``2.9e-6``: to the mantissa's decimals; a trailing ``%``
means the value is a fraction written as a percentage; `` x100`` after a single marker's path, e.g. for
accuracy points, the same without the sign).

The claims blocks (``<!-- claims:KIND -->`` ... ``<!-- /claims -->``) are checked differently: each must equal
what :mod:`tutorlib.experiments.claims` renders from ``results/claims.json``, and that file must equal what the
stored results give.
"""

import functools
import json
import re
from pathlib import Path

import pytest

from tutorlib.experiments import claims as claims_module

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"(?:(?<![\w.])(?:\+-|[-+]))?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?"
MARKED = re.compile(rf"(?P<number>{NUMBER})(?P<percent>%?)\s*<!--from (?P<file>\S+) (?P<path>\S+)"
                    r"(?P<scale> x100)?\s*-->")
SPAN = re.compile(r"<!--span (?P<file>\S+?\.json):(?P<values>[^>]*?)-->(?P<text>.*?)<!--/span-->", re.S)
NUMBER_IN_TEXT = re.compile(rf"(?P<number>{NUMBER})(?P<percent>%?)")
STEP = re.compile(r"(?P<key>[A-Za-z_][\w-]*|\d+)(?:\[(?P<pick>[^\]]+)\])?")
OPERATORS = {"/": lambda a, b: a / b, "*": lambda a, b: a * b, "-": lambda a, b: a - b, "+": lambda a, b: a + b,
             "//": lambda a, b: a // b, "%": lambda a, b: a % b}


@functools.cache
def _stored(file: str):
    return json.loads((ROOT / file).read_text())


def stored_value(file: str, path: str) -> float:
    """The value at ``path`` in the JSON file ``file`` (relative to the repository)."""
    value = _stored(file)
    for part in path.split("."):
        step = STEP.fullmatch(part)
        if step is None:
            raise ValueError(f"bad path step {part!r} in {path!r}")
        value = value[int(step["key"])] if step["key"].isdigit() else value[step["key"]]
        if step["pick"] is not None:
            value = next(item for item in value if item.get("method") == step["pick"])
    return float(value)


def evaluate(file: str, expression: str) -> float:
    """A path, or ``operand OP operand OP ...`` (spaced operators, left to right), from ``file``."""
    tokens = re.findall(r"(?:\[[^\]]*\]|\S)+", expression)  # spaces inside a [pick] stay in its token
    if len(tokens) % 2 == 0:
        raise ValueError(f"bad expression {expression!r}: operands and spaced operators alternate")

    def operand(token):  # a number, a path in ``file``, or OTHER_FILE.json:path
        if re.fullmatch(r"[\d.]+(e[-+]?\d+)?", token):
            return float(token)
        other, colon, path = token.partition(".json:")
        return stored_value(other + ".json", path) if colon else stored_value(file, token)

    value = operand(tokens[0])
    for op, token in zip(tokens[1::2], tokens[2::2]):
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} in {expression!r}")
        value = OPERATORS[op](value, operand(token))
    return value


def quoted_numbers(text: str):
    """(number, "%" / " x100" / "", file, path) for every single-number marker."""
    for match in MARKED.finditer(text):
        yield match["number"], match["percent"] or match["scale"] or "", match["file"], match["path"]


def spans(text: str):
    """(the span's text, [(file, expression), ...]) for every span marker."""
    for match in SPAN.finditer(text):
        file, values = match["file"], []
        for value in match["values"].split(";"):
            value = " ".join(value.split())
            switch = re.match(r"(\S+\.json):\s+(.*)", value)
            if switch:
                file, value = switch[1], switch[2]
            values.append((file, value))
        yield match["text"], values


def check(number: str, percent: str, file: str, path: str) -> str | None:
    """None when the quoted number matches the stored value; else what differs."""
    return check_value(number, percent, evaluate(file, path), f"{file} {path}")


def check_value(number: str, percent: str, value: float, source: str) -> str | None:
    """None when ``number`` (as written) is ``value`` rounded as the text rounds it; else what differs."""
    value *= 100 if percent else 1
    if number.startswith("+-"):  # "+-0.010": a margin or a standard error, written without its sign
        number, value = number[2:], abs(value)
    mantissa, _, exponent = number.replace(",", "").lower().partition("e")
    scale = 10.0 ** int(exponent) if exponent else 1.0
    written = float(mantissa)
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    if round(value / scale, decimals) != pytest.approx(written, abs=10 ** -decimals / 2):
        return f"{number}{percent} quoted, {source} = {value:.{decimals + 2}g}" if exponent else \
            f"{number}{percent} quoted, {source} = {value:.{decimals + 2}f}"
    return None


def check_span(text: str, values) -> list[str]:
    """Every number of a span against its value, in order; the counts must match."""
    numbers = [(m["number"], m["percent"]) for m in NUMBER_IN_TEXT.finditer(text)]
    if len(numbers) != len(values):
        return [f"span {text.strip()[:60]!r}: {len(numbers)} numbers, {len(values)} values"]
    problems = [check_value(n, p, evaluate(file, expr), f"{file} {expr}")
                for (n, p), (file, expr) in zip(numbers, values)]
    return [p for p in problems if p]


def sources():
    for page in ("README.md", "bench/RESULTS.md"):
        yield page, (ROOT / page).read_text()
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
        for span_text, values in spans(text):
            found += len(values)
            wrong += [f"{name}: {problem}" for problem in check_span(span_text, values)]
    assert found > 0, "no marked number found: the convention is <!--from FILE PATH--> after the number"
    assert not wrong, "numbers that their stored results contradict:\n" + "\n".join(wrong)


def test_every_from_marker_follows_the_number_it_checks():
    """A marker written before its number (or after a word) matches nothing, so its number would go unchecked."""
    loose = []
    for name, text in sources():
        markers = [m.start() for m in re.finditer(r"(?<!`)<!--from ", text)]  # `<!--from ...-->` in code explains it
        checked = {m.start("number") + len(m["number"]) + len(m["percent"]) for m in MARKED.finditer(text)}
        for at in markers:
            if not any(text[end:at].strip() == "" for end in checked if end <= at):
                loose.append(f"{name}: ...{text[max(0, at - 40):at + 60]!r}")
    assert not loose, "markers that follow no number (write the number first):\n" + "\n".join(loose)


def test_the_check_catches_a_wrong_number():
    text = "prefix 0.797<!--from results/sentiment/results.json rows[prefix].accuracy-->"
    (quote,) = quoted_numbers(text)
    assert check(*quote) is not None
    assert check("0.787", "", "results/sentiment/results.json", "rows[prefix].accuracy") is None
    assert check("2.9e-6", "", "results/sentiment/results.json", "paired_tests.0.p_value") is None
    assert check("2.8e-6", "", "results/sentiment/results.json", "paired_tests.0.p_value") is not None


def _nudged(number: str) -> str:
    """The number with its last digit (of the mantissa) changed by one: a different quote, same precision."""
    mantissa, e, exponent = number.partition("e")
    last = int(mantissa[-1])
    return mantissa[:-1] + str(last - 1 if last else 1) + e + exponent


def test_changing_any_number_of_any_span_fails_the_check():
    """Each number inside a span is read: an interval end, an ECE or a p-value like 2.9e-6, changed, fails."""
    checked = 0
    for name, text in sources():
        for span_text, values in spans(text):
            numbers = list(NUMBER_IN_TEXT.finditer(span_text))
            for match in numbers:
                wrong = span_text[:match.start("number")] + _nudged(match["number"]) + span_text[match.end("number"):]
                assert check_span(wrong, values), f"{name}: {match['number']} in {span_text.strip()[:60]!r} is not read"
                checked += 1
    assert checked >= 100, f"only {checked} numbers in spans: the results tables lost their span markers"


def test_spans_count_their_numbers():
    text = "<!--span results/sentiment/results.json: rows[full].accuracy-->0.837 and 0.5<!--/span-->"
    ((span_text, values),) = spans(text)
    assert check_span(span_text, values) == ["span '0.837 and 0.5': 2 numbers, 1 values"]
    text = ("<!--span results/sentiment/results.json: "
            "rows[prefix].median_step_seconds / rows[full].median_step_seconds;"
            " results/sentiment-seeds/summary.json: across_seeds.gap_all.ci95.0 * 100-->0.62x, [+0.7<!--/span-->")
    ((span_text, values),) = spans(text)
    assert values[1][0] == "results/sentiment-seeds/summary.json"
    assert check_span(span_text, values) == []


def test_the_lessons_that_quote_stored_runs_keep_their_quotes_checkable():
    """Lessons 6-8 quote the stored runs in their prose: each keeps its quoted numbers marked."""
    counts = {name: sum(1 for _ in quoted_numbers(text)) + sum(len(v) for _, v in spans(text))
              for name, text in sources()}
    for lesson in ("06_ambiguous_sentiment.ipynb", "07_summarisation.ipynb", "08_choosing_a_method.ipynb"):
        assert counts.get(lesson, 0) >= 5, \
            f"{lesson}: {counts.get(lesson, 0)} marked numbers; its quotes lost their markers"


# ----------------------------------------------------------------------------- the claims, from one file


def _flat(value, path=""):
    """{dotted path: leaf} of a JSON value, so two files can be compared leaf by leaf."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}.{i}").items()}
    return {path: value}


def test_claims_json_is_what_the_stored_results_give():
    stored, fresh = (_flat(json.loads(text)) for text in (
        (ROOT / "results" / "claims.json").read_text(), json.dumps(claims_module.build_claims(ROOT))))
    hint = f"results/claims.json is out of date: run `{claims_module.COMMAND} --render` and commit it"
    assert stored.keys() == fresh.keys(), hint
    for key, value in fresh.items():  # words exactly; numbers to the last few bits a machine may differ in
        same = value == pytest.approx(stored[key], rel=1e-9) if isinstance(value, float) else value == stored[key]
        assert same, f"{hint}: {key} is {value!r}, stored {stored[key]!r}"


def test_every_claims_block_equals_its_rendering():
    claims = json.loads((ROOT / "results" / "claims.json").read_text())
    blocks = {}
    for name, text in sources():
        for block in claims_module.BLOCK.finditer(text):
            blocks.setdefault(block["kind"], []).append(name)
            assert block["body"] == claims_module.render(block["kind"], claims), (
                f"{name}: the claims:{block['kind']} block differs from results/claims.json; run "
                f"`{claims_module.COMMAND} --render`")
    assert set(blocks) == {"table", "map", "short"}, f"claims blocks found: {blocks}"
    assert "08_choosing_a_method.ipynb" in blocks["map"] and "01_setup_and_map.ipynb" in blocks["short"]


def test_rendering_works_in_any_markdown_page(tmp_path):
    """A claims block moved to another page (docs/results.md, say) is rendered there too."""
    claims = json.loads((ROOT / "results" / "claims.json").read_text())
    page = tmp_path / "results.md"
    page.write_text("# Results\n\n<!-- claims:table -->\nstale\n<!-- /claims -->\n\nafter\n")
    assert claims_module.rewrite_page(page, claims)
    text = page.read_text()
    assert "stale" not in text and text.endswith("<!-- /claims -->\n\nafter\n")
    assert claims["claims"][0]["verdict"].replace("|", "\\|") in text
    assert not claims_module.rewrite_page(page, claims)  # already current: unchanged
    with pytest.raises(ValueError, match="table, map, short"):
        claims_module.render("poster", claims)


def test_no_verdict_calls_a_failed_equivalence_sufficient():
    """"No evidence of a difference" is never "suffices": where equivalence fails, the words say so."""
    claims = json.loads((ROOT / "results" / "claims.json").read_text())
    for key in ("news", "biochemistry", "biochemistry_terms"):
        evidence = claims["evidence"][key]
        assert evidence["equivalent"] == (evidence["tost_p"] < claims["equivalence"]["alpha"])
    text = " ".join(c["verdict"] for c in claims["claims"])
    failed = sum(not claims["evidence"][k]["equivalent"] for k in ("news", "biochemistry_terms"))
    assert text.count("no difference detected; not shown equivalent") == failed
    nuanced = next(c for c in claims["claims"] if c["id"] == "nuanced")
    assert nuanced["short"] == "partly; did not survive seeds"
    rapid = next(c for c in claims["claims"] if c["id"] == "rapid-iteration")
    assert all(name in rapid["verdict"] for name in claims_module.COMPARISONS)  # every stored run
    for name, text in sources():
        assert not re.search(r"(suffice|keeps? up|is level)[^.|]*no (evidence of a )?difference", text), name


def test_a_missing_stored_result_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="results/sentiment/results.json is missing.*run"):
        claims_module.build_claims(tmp_path)
