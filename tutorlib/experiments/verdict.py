"""What a comparison found, in words: who is ahead, how sure, and what the stored full-mode run says.

    >>> from tutorlib.experiments.verdict import verdict, legend
    >>> print(verdict(result))       # doctest: +SKIP
    full is ahead of prefix by 2.5 points of test accuracy (0.795 vs 0.770).
      How sure: McNemar exact p = 0.023: unlikely to be luck (p < 0.05) on these 1,061 test items.
      Full mode (results/sentiment, 266 steps): full ahead by 5.0 points (0.837 vs 0.787, p = 2.9e-06).
      This run agrees in sign.

The reference runs are the stored comparisons (:mod:`tutorlib.experiments.reference`): the full-mode ones
in ``results/`` and the workshop-mode ones in ``results/workshop/``, for the same task, model and data.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tutorlib.experiments.results import ComparisonResult, find_results
from tutorlib.experiments.tables import WIDTH, wrap
from tutorlib.tasks.registry import get_task

COST_LEGEND = {
    "step (median)": "wall-clock seconds per training step, the median after 2 warm-up steps",
    "CPU s/step": "this process's CPU seconds per step, all threads; '-' when energy was not measured (the energy "
                  "meter records it) or the method does not train",
    "energy": "an estimate (codecarbon, else CPU time x a typical power), never a meter reading; '-' when not "
              "measured (measure_energy=False, another process of a multi-process run) or the method does not train",
    "peak memory (increase)": "the process's peak during training, and its rise over the start of training",
}


def _sure(p: float) -> str:
    if p < 0.01:
        return "very unlikely to be luck (p < 0.01)"
    if p < 0.05:
        return "unlikely to be luck (p < 0.05)"
    return "could well be luck (p >= 0.05): this run alone does not say which method is better"


def _pair(result: ComparisonResult) -> tuple[str, str, dict] | None:
    """The first paired test on the task's main measure: (method a, method b, the test)."""
    for test in result.paired_tests:
        if "measure" not in test:  # the terminology tests name their measure; the main test does not
            return test["a"], test["b"], test
    return None


def _gap(result: ComparisonResult, a: str, b: str) -> tuple[float, float, float] | None:
    key = get_task(result.task).main_metric[0]
    try:
        va, vb = result.row(a).get(key), result.row(b).get(key)
    except KeyError:
        return None
    return None if va is None or vb is None else (va - vb, va, vb)


def _ahead(a: str, b: str, gap: float) -> str:
    return f"{a if gap > 0 else b} ahead by {100 * abs(gap):.1f} points" if gap else "a tie"


def stored_references(result: ComparisonResult, root=None) -> list[tuple[str, ComparisonResult]]:
    """Stored full- and workshop-mode comparisons of the same task, model and data: (folder label, result)."""
    from tutorlib.experiments.reference import reference_results_folder

    try:
        root = reference_results_folder() if root is None else Path(root)
    except FileNotFoundError:
        return []
    found = []
    for label, folder in (("results", root), ("results/workshop", root / "workshop")):
        if not folder.is_dir():
            continue
        for name, stored in find_results(folder).items():
            same = (stored.task, stored.model, stored.dataset) == (result.task, result.model, result.dataset)
            if same and stored.mode in ("full", "workshop"):
                found.append((f"{label}/{name}", stored))
    return sorted(found, key=lambda item: item[1].mode != "full")  # full mode first


def verdict(result: ComparisonResult, references: list[tuple[str, ComparisonResult]] | None = None) -> str:
    """The finding in words: the main measure's gap, the paired test's p-value read out, and each stored
    reference run's gap with whether this run agrees in sign. ``references``: default :func:`stored_references`."""
    pair = _pair(result)
    gap = _gap(result, *pair[:2]) if pair else None
    if pair is None or gap is None:
        return "What this run found: one method only, or one did not finish: nothing to compare."
    a, b, test = pair
    label = get_task(result.task).main_metric[1]
    lines = [f"What this run found ({result.mode} mode): {_ahead(a, b, gap[0])} of {label} "
             f"({a} {gap[1]:.3f} vs {b} {gap[2]:.3f}).",
             f"How sure: {test['test']} on the same {result.data_summary.get('test_items', '?'):,} test items, "
             f"p = {test['p_value']:.2g}: {_sure(test['p_value'])}."]
    if result.mode == "fast":
        lines.append("Fast mode shows that the machinery runs, not the answer: its gap may even have the other "
                     "sign. For a verdict, run --mode workshop (minutes) or full.")
    references = stored_references(result) if references is None else references
    for where, stored in references:
        ref = _gap(stored, a, b)
        if ref is None:
            continue
        p = next((t["p_value"] for t in stored.paired_tests if {t["a"], t["b"]} == {a, b} and "measure" not in t),
                 None)
        agrees = "agrees" if (ref[0] > 0) == (gap[0] > 0) else "does NOT agree"
        lines.append(f"{stored.mode.capitalize()} mode, stored ({where}, {stored.budget.get('steps')} steps): "
                     f"{_ahead(a, b, ref[0])} ({a} {ref[1]:.3f} vs {b} {ref[2]:.3f}"
                     + (f", p = {p:.2g}" if p is not None else "") + f"). This run {agrees} in sign.")
    if not references:
        lines.append("No stored full-mode run of this task, model and data to read it against.")
    return "\n".join(wrap(lines))


def legend(result: ComparisonResult) -> str:
    """What each column of the tables means, the task's quality columns first."""
    entries = {**get_task(result.task).legend, **COST_LEGEND}
    width = max(len(k) for k in entries)
    return "What the columns mean\n" + "\n".join(
        textwrap.fill(f"  {k:<{width}}  {v}", WIDTH, subsequent_indent=" " * (width + 4)) for k, v in entries.items())
