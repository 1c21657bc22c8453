"""Build hook: copy the reference results (``results/<name>/``) into the wheel as package data.

Everything else about the package is in ``pyproject.toml``. An installed kit (pip, Colab) then finds the
results the lessons read without a clone: ``tutorlib.experiments.reference``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESULT_FILES = ("results.json", "predictions.json", "table.txt")


class BuildWithReferenceResults(build_py):
    """``build_py`` plus the copy: results/<name>/{results.json, predictions.json, table.txt} ->
    tutorlib/reference_results/<name>/ in the build folder (top-level comparisons only)."""

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


setup(cmdclass={"build_py": BuildWithReferenceResults})
