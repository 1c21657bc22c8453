"""Build hook: copy the reference results (``results/<name>/``) into the wheel as package data.

Everything else about the package is in ``pyproject.toml``. An installed kit (pip, Colab) then finds the
results the lessons read without a clone: ``tutorlib.experiments.reference``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESULT_FILES = ("results.json", "predictions.json", "table.txt")
EXPERIMENT_FILES = ("refresh.json", "inference.json")  # the claim experiments lesson 8 reads


class BuildWithReferenceResults(build_py):
    """``build_py`` plus the copy: results/<name>/{results.json, predictions.json, table.txt} and
    results/<name>/{refresh.json, inference.json} -> tutorlib/reference_results/<name>/ in the build
    folder (top-level folders only)."""

    def run(self):
        super().run()
        source = Path(__file__).resolve().parent / "results"
        target = Path(self.build_lib) / "tutorlib" / "reference_results"
        for results_json in sorted(source.glob("*/results.json")):
            folder = target / results_json.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            for name in RESULT_FILES:
                if (results_json.parent / name).is_file():
                    shutil.copy2(results_json.parent / name, folder / name)
        for experiment in sorted(p for name in EXPERIMENT_FILES for p in source.glob(f"*/{name}")):
            folder = target / experiment.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(experiment, folder / experiment.name)


setup(cmdclass={"build_py": BuildWithReferenceResults})
