"""Build hook: copy the reference results (``results/<name>/``) into the wheel as package data.

Everything else about the package is in ``pyproject.toml``. An installed kit (pip, Colab) then finds the
results the lessons read without a clone: ``tutorlib.experiments.reference``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESULT_FILES = ("results.json", "predictions.json", "table.txt")
SUMMARY_FILES = ("summary.json", "tuning.json", "refresh.json", "inference.json")
# ^ measurements that are not one comparison: seeds, tuning, and the claim experiments lesson 8 reads


class BuildWithReferenceResults(build_py):
    """``build_py`` plus the copy: results/<name>/{results.json, predictions.json, table.txt} ->
    tutorlib/reference_results/<name>/ in the build folder, and the other measurements' summaries."""

    def run(self):
        super().run()
        source = Path(__file__).resolve().parent / "results"
        target = Path(self.build_lib) / "tutorlib" / "reference_results"
        for measured in sorted(p for p in source.iterdir() if p.is_dir()):
            names = [n for n in RESULT_FILES + SUMMARY_FILES if (measured / n).is_file()]
            if not names:
                continue  # e.g. sentiment-runs/: one file per training run, read only through summary.json
            folder = target / measured.name
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copy2(measured / name, folder / name)


setup(cmdclass={"build_py": BuildWithReferenceResults})
