"""The Colab install cell: one install URL (pyproject.toml's [project.urls]) everywhere, its helper, and
the reference results an installed kit carries."""

import glob
import types
from pathlib import Path

import nbformat
import tomllib

from tutorlib.course.colab import stale_modules
from tutorlib.experiments.reference import reference_results

ROOT = Path(__file__).resolve().parents[1]
URLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]


def test_every_notebook_installs_from_the_one_pinned_url():
    paths = sorted(glob.glob(str(ROOT / "notebooks/*.ipynb")) + glob.glob(str(ROOT / "solutions/*.ipynb"))
                   + glob.glob(str(ROOT / "exercises/*.ipynb")))
    assert len(paths) >= 20
    for path in paths:
        cell = nbformat.read(path, 4).cells[1].source
        assert f"tutorlib[energy] @ {URLS['Install']}" in cell, path
        assert f"-c {URLS['Lock']}" in cell, path
        assert 'find_spec("tutorlib") is None' in cell and "after_install()" in cell, path
    assert URLS["Install"] in (ROOT / "README.md").read_text()
    assert URLS["Lock"].endswith("requirements/colab.txt") and (ROOT / "requirements/colab.txt").is_file()


def test_stale_modules_names_a_library_replaced_under_a_running_kernel():
    import numpy

    loaded = {"numpy": types.SimpleNamespace(__version__="0.0.1"), "torch": None}
    assert stale_modules(loaded) == [f"numpy 0.0.1 -> {numpy.__version__}"]
    assert stale_modules({"numpy": numpy}) == []


def test_reference_results_are_found_without_a_path():
    found = reference_results()
    assert {"sentiment", "summarise-nyt-leads", "summarise-aclsum"} <= set(found)
    assert not found["sentiment"].fast
