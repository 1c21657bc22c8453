"""``learner`` in Jupyter: a solution's hidden tests run under nbval as they run in the grader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorlib.course.learner import InNotebook, LearnerError


@pytest.fixture
def notebook():
    namespace = {"torch": torch, "weights": torch.arange(6.0).reshape(2, 3), "model": torch.nn.Linear(2, 2)}
    exec("def double(x):\n    return x * 2\n\ndef kind(x):\n    return type(x).__name__", namespace)
    return namespace, InNotebook(namespace)


def test_values_cross_plain_data_both_ways_as_in_the_grader(notebook):
    _, learner = notebook
    weights = learner.value("weights")
    assert type(weights) is np.ndarray and weights.shape == (2, 3)  # a tensor comes back as an array
    assert learner.eval("weights.sum().item()") == 15.0
    assert learner.call("kind", torch.ones(2)) == "ndarray"  # an argument arrives as the grader sends it
    assert learner.call("double", [1, 2]) == [1, 2, 1, 2]
    assert learner.has("double") and not learner.has("missing")


def test_exec_defines_names_for_a_later_question(notebook):
    namespace, learner = notebook
    learner.exec("probe = double(21)")
    assert learner.eval("probe") == 42 and namespace["probe"] == 42


@pytest.mark.parametrize("ask, words", [
    (lambda learner: learner.value("model"), "cannot check"),  # an object never comes back
    (lambda learner: learner.eval("1 / 0"), "ZeroDivisionError"),  # the notebook's own error, as the grader says it
    (lambda learner: learner.value("missing"), "failed in your notebook"),
    (lambda learner: learner.call("double", object()), "not plain data"),  # nor goes there
])
def test_what_the_grader_would_refuse_is_refused_here_too(notebook, ask, words):
    _, learner = notebook
    with pytest.raises((LearnerError, TypeError), match=words):
        ask(learner)
