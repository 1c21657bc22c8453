"""The README a newcomer reads and the course site built from the same files (docs/conf.py, `make docs`).

The site itself is built by `make docs` in CI (.ci/run); these tests check, in a second, what that build
relies on: the README's shape, the table of contents, the lessons' stored outputs and the link checker.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import docs_links  # noqa: E402
import lesson_outputs  # noqa: E402

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def site_config():
    spec = importlib.util.spec_from_file_location("site_conf", ROOT / "docs" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def test_the_readme_is_short_and_keeps_its_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160, "README.md is for a newcomer: move detail to a page under docs/"
    block = re.search(r"```bash\n(.*?)```", readme, re.S)[1].splitlines()
    assert [line.split("#")[0].strip() for line in block] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo:", "test:", "docs:"):
        assert re.search(rf"^{target}", makefile, re.M), f"the README names `make {target[:-1]}`"


def test_the_readme_links_resolve_to_files():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert "docs/results.md" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_the_site_lists_every_lesson_and_every_docs_page():
    conf = site_config()
    listed = [doc for _, docs in conf.SITE_TOC for doc in docs]
    for lesson in LESSONS:
        assert f"notebooks/{lesson.stem}" in listed, f"{lesson.name} is missing from the site's table of contents"
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.stem}" in listed, f"docs/{page.name} is missing from the site's table of contents"
    for doc in listed:
        assert any((ROOT / f"{doc}{suffix}").exists() for suffix in (".md", ".ipynb")), f"{doc}: no such page"
    assert len(listed) == len(set(listed))


def test_a_lesson_gets_the_outputs_of_the_run_where_its_code_is_unchanged(tmp_path, monkeypatch):
    conf = site_config()
    lesson = {"cells": [{"cell_type": "markdown", "id": "title", "source": "# A lesson", "metadata": {}},
                        {"cell_type": "code", "id": "same", "source": "print(1)", "outputs": [], "metadata": {}},
                        {"cell_type": "code", "id": "edited", "source": "print(3)", "outputs": [], "metadata": {}}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    shown = {"output_type": "stream", "name": "stdout", "text": "1\n"}
    stored = {"run": {"mode": "fast", "date": "2026-01-01", "machine": "a CPU", "command": "c", "meaning": "m"},
              "cells": {"same": {"source_sha256": conf.source_sha("print(1)"), "execution_count": 1,
                                 "outputs": [shown]},
                        "edited": {"source_sha256": conf.source_sha("print(2)"), "execution_count": 2,
                                   "outputs": [{"output_type": "stream", "name": "stdout", "text": "2\n"}]}}}
    (tmp_path / "01_x.json").write_text(json.dumps(stored))
    monkeypatch.setattr(conf, "LESSON_OUTPUTS", tmp_path)
    text, stale = conf.with_stored_outputs(json.dumps(lesson), "01_x")
    cells = {cell["id"]: cell for cell in json.loads(text)["cells"]}
    assert cells["same"]["outputs"] == [shown]
    assert cells["edited"]["outputs"] == [] and stale == 1
    note = cells["site-run-note"]["source"]
    assert "**fast** mode" in note and "1 code cell(s) changed" in note
    text, stale = conf.with_stored_outputs(json.dumps(lesson), "02_never_run")
    assert stale == 2 and "No stored run of this lesson yet" in json.loads(text)["cells"][1]["source"]


def test_the_stored_run_shows_lesson_5s_plots_with_its_current_code():
    """The site's screenshot page: lesson 5's stored outputs hold plots for cells whose code is unchanged.
    After editing lesson 5: `scripts/lesson_outputs.py --mode workshop --lessons 5` (or --mode fast)."""
    lesson = json.loads((ROOT / "notebooks" / "05_efficiency.ipynb").read_text())
    stored = json.loads((lesson_outputs.OUT / "05_efficiency.json").read_text())["cells"]
    current = {cell["id"]: lesson_outputs.source_sha(cell["source"]) for cell in lesson["cells"]}
    plots = [cell_id for cell_id, saved in stored.items() if current.get(cell_id) == saved["source_sha256"]
             and any("image/png" in out.get("data", {}) for out in saved["outputs"])]
    assert plots, "no stored plot of lesson 5 matches its code: store a new run of the lesson"


def test_stored_outputs_keep_what_a_reader_sees_without_machine_paths():
    outputs = [{"output_type": "stream", "name": "stdout", "text": f"cache in {Path.home()}/.cache, repo {ROOT}\n"},
               {"output_type": "stream", "name": "stderr", "text": "a warning\n"},
               {"output_type": "display_data", "metadata": {},
                "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "0%|  |"}},
               {"output_type": "display_data", "metadata": {},
                "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}]
    kept = lesson_outputs.kept_outputs(outputs, "test")
    assert [out["output_type"] for out in kept] == ["stream", "display_data"]
    assert kept[0]["text"] == "cache in ~/.cache, repo .\n"
    assert kept[1]["data"] == {"image/png": "iVBOR", "text/plain": "<Figure>"}
    with pytest.raises(SystemExit, match="ZeroDivisionError"):
        lesson_outputs.kept_outputs([{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "x",
                                      "traceback": []}], "test")


def test_the_link_check_finds_missing_files_anchors_and_images(tmp_path):
    (tmp_path / "index.html").write_text('<a href="page.html#here">ok</a> <a href="https://example.org/x">out</a>')
    (tmp_path / "page.html").write_text('<h1 id="here">x</h1><a href="#here">self</a>')
    assert docs_links.broken_links(tmp_path) == []
    (tmp_path / "bad.html").write_text('<a href="gone.html">a</a><a href="page.html#nowhere">b</a>'
                                       '<img src="_images/no.png">')
    problems = docs_links.broken_links(tmp_path)
    assert len(problems) == 3 and all(p.startswith("bad.html") for p in problems)
    assert any("no id 'nowhere'" in p for p in problems) and any("_images/no.png: no such file" in p for p in problems)
