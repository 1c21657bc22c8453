"""Sphinx configuration of the course site: the README, the lessons, the pages of docs/ and the API.

    make docs          # = sphinx-build -W --keep-going -n -c docs . build/site, then scripts/docs_links.py

The site is built from the repository's own files, never from copies: the source folder is the
repository root and ``include_patterns`` picks the files that become pages. Three things are added
while the files are read (Sphinx's ``source-read`` event), so that no file needs a site-only line:

* the README, the site's front page, gets the hidden table of contents below (``SITE_TOC``);
* each lesson gets the outputs of one stored run (``docs/lesson_outputs/``, written by
  ``scripts/lesson_outputs.py``): the notebooks are stored without outputs and are not executed here;
* ``docs/api.md`` gets one entry per public name of ``tutorlib`` (``tutorlib.__all__``), grouped by the
  subpackage that defines it.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # autodoc imports the kit from this checkout, installed or not
sys.path.insert(0, str(ROOT / "scripts"))
from lesson_outputs import OUT as LESSON_OUTPUTS  # noqa: E402  (the run's store)
from lesson_outputs import source_sha  # noqa: E402  (and its fingerprint)

project = "tutorlib"
author = "the tutorlib authors"
copyright = "the tutorlib authors, MIT licence"
release = version = "0.2.0"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]  # napoleon: the kit's "Args:" docstrings
root_doc = "README"
# Only these files become pages; everything else in the repository is left alone.
include_patterns = ["README.md", "CONTRIBUTING.md", "docs/*.md", "notebooks/[0-9][0-9]_*.ipynb",
                    "bench/RESULTS.md", "tutorlib/course/THREAT_MODEL.md"]
exclude_patterns = ["build", ".venv*", "runs", "wheelhouse", "**/.ipynb_checkpoints"]

# The site's table of contents: (caption, documents). tests/test_docs.py checks that every lesson is in it.
SITE_TOC = [
    ("Lessons", [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]),
    ("Results", ["docs/results", "docs/neighbours", "docs/benchmarks", "bench/RESULTS"]),
    ("Teaching and grading", ["docs/teaching", "docs/grading", "tutorlib/course/THREAT_MODEL", "docs/data",
                              "docs/multi_gpu"]),
    ("Reference", ["docs/api", "CONTRIBUTING"]),
]

# --- notebooks: rendered from their stored outputs, never executed while building ----------------------
nb_execution_mode = "off"
nb_output_stderr = "remove"          # warnings and progress bars are not part of a lesson
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "html_image"]  # $...$ maths in lessons; <img> tags become images
myst_heading_anchors = 3             # [text](#a-heading) links inside a page

# --- API -----------------------------------------------------------------------------------------------
autodoc_typehints = "none"           # signatures without annotations: torch/transformers types need no index
autodoc_member_order = "bysource"
# Docstrings point at the modules and helpers behind the public names (``:mod:`tutorlib.training.distributed```)
# and at torch's and transformers' types; this site documents the public surface only, so those Python
# references stay plain text. Every other reference (pages, headings, images) must resolve.
nitpick_ignore_regex = [(r"py:.*", r".*")]

# --- HTML ----------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "tutorlib: full fine-tuning vs prefix tuning"
html_static_path = ["_static"]
html_css_files = ["site.css"]  # wide lesson outputs scroll in their cell
html_show_sourcelink = False
html_copy_source = False           # the sources are in the repository; the site holds pages only

def with_stored_outputs(notebook_json: str, stem: str) -> tuple[str, int]:
    """The notebook text with each code cell's stored outputs; also how many code cells changed since the run."""
    notebook = json.loads(notebook_json)
    stored_file = LESSON_OUTPUTS / f"{stem}.json"
    if not stored_file.exists():
        note = (f"```{{note}}\nNo stored run of this lesson yet: its code is shown without outputs "
                f"(`scripts/lesson_outputs.py --mode workshop --lessons {int(stem[:2])}` stores one).\n```")
        notebook["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": note, "id": "site-run-note"})
        return json.dumps(notebook), sum(cell["cell_type"] == "code" for cell in notebook["cells"])
    stored = json.loads(stored_file.read_text())
    stale = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        saved = stored["cells"].get(cell.get("id", ""))
        if saved is None or saved["source_sha256"] != source_sha(cell["source"]):
            stale += 1
            continue
        cell["outputs"], cell["execution_count"] = saved["outputs"], saved["execution_count"]
    run = stored["run"]
    note = (f"```{{note}}\nThe outputs on this page come from one run of the lesson in **{run['mode']}** mode "
            f"({run['date']}, {run['machine']}; `{run['command']}`), stored in "
            f"`docs/lesson_outputs/{stem}.json`. {run['meaning']} Widgets (progress bars, the cost explorer) "
            f"run only in Jupyter: open the lesson there to use them.")
    if stale:
        note += f" {stale} code cell(s) changed since that run and are shown without output."
    note += "\n```"
    notebook["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": note, "id": "site-run-note"})
    return json.dumps(notebook), stale


def plain_bars(app, what, name, obj, options, lines) -> None:
    """autodoc-process-docstring: a ``|`` in a docstring is a bar (``|accuracy - confidence|``), never an
    RST substitution."""
    lines[:] = [line.replace("|", "\\|") for line in lines]


def constant_entry(name: str, value) -> str:
    """A public constant, with the comment docstring it has in the module that defines it."""
    from sphinx.pycode import ModuleAnalyzer

    for module_name, module in sorted(sys.modules.items()):
        if module_name.startswith("tutorlib.") and getattr(module, name, None) is value:
            doc = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", name))
            if doc:
                body = "\n".join(f"   {line}".rstrip() for line in doc)
                return (f"```{{eval-rst}}\n.. py:data:: tutorlib.{name}\n\n{body}\n"
                        f"   Defined in ``{module_name}``.\n```\n")
    return f"```{{eval-rst}}\n.. py:data:: tutorlib.{name}\n   :value: {value!r}\n```\n"


def api_page() -> str:
    """Autodoc entries for ``tutorlib.__all__``, grouped by the subpackage that defines each name."""
    import tutorlib

    groups: dict[str, list[str]] = {}
    for name in tutorlib.__all__:
        value = getattr(tutorlib, name)
        if inspect.ismodule(value):
            groups.setdefault("Modules used as namespaces", []).append(
                f"```{{eval-rst}}\n.. py:module:: {value.__name__}\n   :no-index:\n```\n\n`tutorlib.{name}` is "
                f"`{value.__name__}`: {inspect.getdoc(value).splitlines()[0]}\n")
            continue
        home = getattr(value, "__module__", None) if (inspect.isfunction(value) or inspect.isclass(value)) else None
        if home is None:
            groups.setdefault("Constants", []).append(constant_entry(name, value))
            continue
        directive = "autoclass" if inspect.isclass(value) else "autofunction"
        options = "\n   :members:" if inspect.isclass(value) else ""
        groups.setdefault(".".join(home.split(".")[:2]), []).append(
            f"```{{eval-rst}}\n.. {directive}:: tutorlib.{name}{options}\n```\n")
    return "\n".join(f"## `{group}`\n\n" + "\n".join(entries) for group, entries in groups.items())


def add_site_parts(app, docname: str, source: list[str]) -> None:
    """Sphinx source-read: the front page's table of contents, the lessons' outputs, the API entries."""
    if docname == root_doc:
        source[0] += "\n" + "\n".join(f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(docs) + "\n```\n"
                                      for caption, docs in SITE_TOC)
    elif docname.startswith("notebooks/"):
        source[0], stale = with_stored_outputs(source[0], docname.split("/", 1)[1])
        if stale:
            from sphinx.util import logging
            logging.getLogger(__name__).info(f"{docname}: {stale} code cells without a stored output "
                                             f"(`scripts/lesson_outputs.py --mode workshop` stores a new run)")
    elif docname == "docs/api":
        source[0] += "\n" + api_page()


def front_page_as_index(app, exception) -> None:
    """The front page is README.html; index.html sends a visitor there (GitHub Pages serves index.html)."""
    if exception is None and app.builder.format == "html":
        (Path(app.outdir) / "index.html").write_text(
            '<!DOCTYPE html><meta charset="utf-8"><title>tutorlib</title>'
            '<meta http-equiv="refresh" content="0; url=README.html"><a href="README.html">tutorlib</a>\n')


def setup(app):
    app.connect("source-read", add_site_parts)
    app.connect("autodoc-process-docstring", plain_bars)
    app.connect("build-finished", front_page_as_index)
