"""Grading, in one import: the checks a notebook's test cells call, and the autograder.

Inside a graded test cell (the learner sees a friendly message, not a bare assert)::

    from tutorlib.grading import check_equal, check_close, check_tensor, check_true
    check_equal("prefix parameter count", count_prefix_params(cfg, P=10), 2 * 4 * 10 * 256,
                hint="a prefix stores a key AND a value vector per layer and position")

Outside, to grade notebooks (what ``tutorlib grade`` runs)::

    report = grade_notebooks(["exercises/01_prefix.ipynb"], out_dir="grades", pass_mark=0.6)
    report.points, report.max_points, report.passed

The rules (which test cells run, what counts as a pass, timeouts) are in
:mod:`tutorlib.autograde`; how solutions become exercises is in :mod:`tutorlib.course`.
"""

import importlib

from tutorlib.checks import AnswerError, check_close, check_equal, check_finite, check_tensor, check_true

# The autograder pulls in nbformat/nbclient (about 1.5 s of imports, mostly jsonschema). A notebook
# only needs the checks, so the autograder's names are imported on first use (PEP 562).
_LAZY = {
    "tutorlib.autograde": ["find_solution", "grade_main", "grade_notebook", "grade_notebooks", "learner_message"],
    "tutorlib.course": ["build_exercises", "build_main", "check_exercises_in_sync"],
    "tutorlib.grade_report": ["GradeReport", "NotebookResult", "QuestionResult"],
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["AnswerError", "check_equal", "check_close", "check_tensor", "check_true", "check_finite", *_HOME]


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'tutorlib.grading' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
