"""The reference results the README quotes and lessons 6-8 read, with or without a clone.

In a clone (or an editable install) they are the repository's ``results/`` folder. An installed kit
(``pip install``, Colab) carries a copy as package data, ``tutorlib/reference_results/``: the build
copies each comparison's results.json, predictions.json and table.txt there, and the claim experiments'
refresh.json and inference.json (see ``setup.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from tutorlib.experiments.results import ComparisonResult, find_results

PACKAGE_ROOT = Path(__file__).resolve().parents[1]          # .../tutorlib
CLONE_RESULTS = PACKAGE_ROOT.parent / "results"              # a clone's results/ beside the package
PACKAGED_RESULTS = PACKAGE_ROOT / "reference_results"        # the copy inside an installed kit


def reference_results_folder() -> Path:
    """The folder holding the reference comparisons: the clone's ``results/`` when there is one, else the
    copy installed with the kit.

    Raises:
        FileNotFoundError: neither exists (a kit built without its results); says how to get them.
    """
    for folder in (CLONE_RESULTS, PACKAGED_RESULTS):
        if folder.is_dir() and any(folder.glob("*/results.json")):
            return folder
    raise FileNotFoundError(f"No reference results in {CLONE_RESULTS} or {PACKAGED_RESULTS}. Reinstall the kit from "
                            "its git tag (the README's install line), or run "
                            "`tutorlib compare ... --out results/NAME`.")


def reference_results() -> dict[str, ComparisonResult]:
    """Every reference comparison by name, e.g. ``reference_results()["sentiment"]`` (see :func:`find_results`)."""
    return find_results(reference_results_folder())


def reference_measurement(name: str) -> dict:
    """A stored measurement that is not one comparison, by its file under the reference results, e.g.
    ``reference_measurement("sentiment-seeds/summary.json")`` (``tutorlib seeds``) or
    ``"sentiment-tuning/tuning.json"`` (``tutorlib tune``).

    Raises:
        FileNotFoundError: it was not measured into this copy of the results; says which command makes it.
    """
    path = reference_results_folder() / name
    if not path.is_file():
        raise FileNotFoundError(f"No {name} in {reference_results_folder()}: it is made by `tutorlib seeds` / "
                                f"`tutorlib tune` (see the README's Results section).")
    return json.loads(path.read_text())
