"""Choosing a method: your budgets in, measured rows in, a recommendation out, with the reason.

    >>> from tutorlib.experiments.decide import Budget, recommend
    >>> rows = [
    ...     {"method": "full", "accuracy": 0.85, "trainable_params": 22_700_000,
    ...      "median_step_seconds": 1.0, "checkpoint_bytes": 91_000_000},
    ...     {"method": "prefix", "accuracy": 0.81, "trainable_params": 47_000,
    ...      "median_step_seconds": 0.65, "checkpoint_bytes": 190_000},
    ... ]
    >>> recommend(rows, Budget(min_quality=0.80)).method           # both pass: the cheaper one
    'prefix'
    >>> recommend(rows, Budget(min_quality=0.83)).method           # only full fine-tuning is good enough
    'full'
    >>> print(recommend(rows, Budget(min_quality=0.83)))
    Recommendation: full. The only method within every budget (prefix breaks: accuracy 0.81 < floor 0.83).

The rule, written so that a learner can apply it by hand:

1. A method is **feasible** when its measured row meets every limit that the budget sets (a limit
   left as ``None`` is not checked). Limits are upper bounds, except the quality floor.
2. No feasible method: no recommendation (``method`` is ``None``); the reason lists what each breaks.
3. One feasible method: that one.
4. Several: ``prefer="cheapest"`` (default) takes the one with the fewest stored bytes per
   customer, then the shortest step, then the fewest trainable parameters; ``prefer="quality"``
   takes the highest quality (ties: the cheapest).

A row is a dict (one per method) with ``method`` and the measured numbers under the names that
:class:`tutorlib.training.measure.RunCost` and the task evaluations use (see :data:`LIMITS`); the rows of a
``tutorlib.experiments.compare`` result have them. Quality is whatever metric the budget names
(``quality_metric``): ``accuracy``, ``ambiguous_accuracy``, ``rougeL``, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping, Sequence

from tutorlib.units import format_mib, format_seconds, format_size

# budget field -> (row key, words for a reason, how to show a value)
LIMITS: dict[str, tuple[str, str, str]] = {
    "max_trainable_params": ("trainable_params", "trainable parameters", "count"),
    "max_step_seconds": ("median_step_seconds", "step time", "seconds"),
    "max_train_seconds": ("train_seconds", "training time", "seconds"),
    "max_memory_mb": ("peak_memory_increase_mb", "peak memory increase", "mb"),
    "max_stored_bytes_per_customer": ("checkpoint_bytes", "stored bytes per customer", "bytes"),
}
PREFERENCES = ("cheapest", "quality")
# "cheapest": fewer stored bytes first, then shorter steps, then fewer trainable parameters
CHEAPEST_ORDER = ("checkpoint_bytes", "median_step_seconds", "trainable_params")


@dataclass(frozen=True)
class Budget:
    """What a deployment can afford; ``None`` means "no limit on this".

    Units: parameters are counts, seconds are wall-clock seconds (step: median after warm-up),
    memory is MiB of peak increase while training (``peak_memory_increase_mb``: the fair side-by-side
    number), stored bytes are bytes on disk per customer (a prefix checkpoint, or a whole model).
    ``min_quality`` is a floor on ``quality_metric`` (e.g. accuracy 0.8, rougeL 0.25).
    """

    max_trainable_params: int | None = None
    max_step_seconds: float | None = None
    max_train_seconds: float | None = None
    max_memory_mb: float | None = None
    max_stored_bytes_per_customer: int | None = None
    min_quality: float | None = None
    quality_metric: str = "accuracy"
    prefer: str = "cheapest"

    def __post_init__(self):
        if self.prefer not in PREFERENCES:
            raise ValueError(f"Budget(prefer={self.prefer!r}): choose one of {', '.join(PREFERENCES)}.")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith(("max_", "min_")) and value is not None and value < 0:
                raise ValueError(f"Budget({f.name}={value}): a limit cannot be negative; use None for no limit.")

    def limits(self) -> dict[str, float]:
        """The limits this budget sets, ``{budget field: value}`` (those that are not None)."""
        active = {name: getattr(self, name) for name in LIMITS if getattr(self, name) is not None}
        if self.min_quality is not None:
            active["min_quality"] = self.min_quality
        return active


@dataclass(frozen=True)
class Check:
    """One method against one limit: the measured ``value``, the ``limit`` and whether it is ``ok``."""

    method: str
    limit_name: str  # a Budget field, e.g. "max_step_seconds"
    what: str  # in words, e.g. "step time"
    value: float
    limit: float
    ok: bool
    note: str = ""  # e.g. a confidence interval that straddles the quality floor

    def __str__(self) -> str:
        unit = "count" if self.limit_name == "min_quality" else LIMITS[self.limit_name][2]
        sign = (">=" if self.ok else "<") if self.limit_name == "min_quality" else ("<=" if self.ok else ">")
        floor = "floor " if self.limit_name == "min_quality" else ""
        return f"{self.what} {show(self.value, unit)} {sign} {floor}{show(self.limit, unit)}"


@dataclass
class Recommendation:
    """``method`` ("full", "prefix", ... or None when nothing fits), the ``reason`` in a sentence or two,
    every ``checks`` made, and the ``feasible`` methods (those within every limit), in row order."""

    method: str | None
    reason: str
    checks: list[Check] = field(default_factory=list)
    feasible: list[str] = field(default_factory=list)

    def table(self) -> str:
        """A plain-text table: one line per method and limit, with pass/fail."""
        lines = [f"{'method':<8} {'limit':<30} {'measured':>12} {'limit value':>12}  result"]
        for c in self.checks:
            unit = "count" if c.limit_name == "min_quality" else LIMITS[c.limit_name][2]
            lines.append(f"{c.method:<8} {c.what:<30} {show(c.value, unit):>12} {show(c.limit, unit):>12}  "
                         f"{'ok' if c.ok else 'BREAKS'}{'  ' + c.note if c.note else ''}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"Recommendation: {self.method or 'none'}. {self.reason}"


def show(value: float, unit: str) -> str:
    """A number for a sentence: bytes as KiB/MiB/GiB (:mod:`tutorlib.units`), counts with separators."""
    if unit == "bytes":
        return format_size(value)
    if unit == "seconds":
        return format_seconds(value)
    if unit == "mb":
        return format_mib(value)
    if isinstance(value, float) and value < 10:
        return f"{value:.3g}"
    return f"{value:,.0f}"


def _value(row: Mapping, key: str, budget_field: str):
    if key not in row or row[key] is None:
        known = ", ".join(sorted(k for k, v in row.items() if v is not None and not isinstance(v, (list, dict))))
        raise KeyError(f"The {row.get('method', '?')!r} row has no {key!r} (needed by {budget_field}). It has: "
                       f"{known}. Measure it, or leave {budget_field}=None.")
    return row[key]


def check_row(row: Mapping, budget: Budget) -> list[Check]:
    """Every limit of ``budget`` checked against one measured ``row`` (a dict with ``method``)."""
    method = str(row.get("method", "?"))
    checks = []
    for name, limit in budget.limits().items():
        if name == "min_quality":
            value = float(_value(row, budget.quality_metric, "min_quality"))
            note = ""
            interval = row.get(f"{budget.quality_metric}_ci95")
            if interval and interval[0] < limit <= interval[1]:
                note = (f"uncertain: its 95% interval [{interval[0]:.3f}, {interval[1]:.3f}] contains the floor; "
                        f"test on more items before relying on it")
            checks.append(Check(method, name, budget.quality_metric, value, limit, value >= limit, note))
        else:
            key, words, _ = LIMITS[name]
            value = _value(row, key, name)
            checks.append(Check(method, name, words, value, limit, value <= limit))
    return checks


def _cheapness(row: Mapping) -> tuple:
    return tuple(row.get(key) if row.get(key) is not None else float("inf") for key in CHEAPEST_ORDER)


def _why_cheaper(best: Mapping, others: Sequence[Mapping]) -> str:
    """The first measured quantity that tells the chosen row from the next cheapest one."""
    nxt = min(others, key=_cheapness)
    for key in CHEAPEST_ORDER:
        a, b = best.get(key), nxt.get(key)
        if a is not None and b is not None and a != b:
            unit = {"checkpoint_bytes": "bytes", "median_step_seconds": "seconds"}.get(key, "count")
            words = {"checkpoint_bytes": "stores", "median_step_seconds": "steps in",
                     "trainable_params": "trains"}[key]
            extra = " parameters" if key == "trainable_params" else (" per customer" if unit == "bytes" else "")
            return f"it {words} {show(a, unit)}{extra} vs {show(b, unit)} for {nxt['method']}"
    return f"it costs the same as {nxt['method']} on every measured count and comes first"


def recommend(rows: Sequence[Mapping], budget: Budget | None = None) -> Recommendation:
    """Apply the rule in the module docstring to measured ``rows`` (one dict per method).

    Args:
        rows: e.g. ``[{"method": "full", "accuracy": 0.85, "median_step_seconds": 1.0, ...}, ...]``;
            only the keys the budget's limits need must be present (:data:`LIMITS`).
        budget: the limits; default ``Budget()`` (no limit: the cheapest method wins).
    Returns:
        a :class:`Recommendation`; ``str(rec)`` is one readable line, ``rec.table()`` every check.
    """
    budget = budget or Budget()
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("recommend needs at least one measured row (one dict per method).")
    methods = [str(r.get("method", "")) for r in rows]
    if "" in methods or len(set(methods)) != len(methods):
        raise ValueError(f"Each row needs its own 'method' name; got {methods}.")
    per_method = {m: check_row(r, budget) for m, r in zip(methods, rows)}
    checks = [c for m in methods for c in per_method[m]]
    feasible = [m for m in methods if all(c.ok for c in per_method[m])]

    def breaks(m: str) -> str:
        return "; ".join(str(c) for c in per_method[m] if not c.ok)

    if not feasible:
        reason = ("No method meets every budget (" + "; ".join(f"{m} breaks: {breaks(m)}" for m in methods)
                  + "). Relax a limit, or measure again with a larger training budget.")
        return Recommendation(None, reason, checks, feasible)
    if len(feasible) == 1:
        chosen = feasible[0]
        others = [f"{m} breaks: {breaks(m)}" for m in methods if m != chosen]
        reason = "The only method within every budget" + (f" ({'; '.join(others)})." if others else ".")
    else:
        candidates = [r for r in rows if r["method"] in feasible]
        if budget.prefer == "quality":
            metric = budget.quality_metric
            for r in candidates:
                _value(r, metric, "prefer='quality'")
            best = max(candidates, key=lambda r: (r[metric], tuple(-x for x in _cheapness(r))))
            rest = [r for r in candidates if r is not best]
            reason = (f"{len(feasible)} methods meet every budget; {best['method']} has the highest "
                      f"{metric} ({best[metric]:.3g} vs "
                      + ", ".join(f"{r[metric]:.3g} for {r['method']}" for r in rest)
                      + ").")
        else:
            best = min(candidates, key=_cheapness)
            rest = [r for r in candidates if r is not best]
            reason = (f"{len(feasible)} methods meet every budget; {best['method']} is the cheapest: "
                      f"{_why_cheaper(best, rest)}.")
        chosen = best["method"]
    notes = [c.note for c in per_method[chosen] if c.note]
    if notes:
        reason += " Note: " + "; ".join(notes) + "."
    return Recommendation(chosen, reason, checks, feasible)


def storage_for_customers(customers: int, *, base_model_bytes: int, full_checkpoint_bytes: int,
                          prefix_checkpoint_bytes: int) -> dict[str, int]:
    """Bytes on disk to serve ``customers`` tuned variants of one model.

    Full fine-tuning keeps one whole model per customer: ``customers x full_checkpoint_bytes``.
    Prefix tuning keeps the frozen base model once plus one prefix per customer:
    ``base_model_bytes + customers x prefix_checkpoint_bytes``. Returns ``{"full": ..., "prefix": ...}``.
    """
    if customers < 0:
        raise ValueError(f"customers must be >= 0; got {customers}.")
    return {"full": customers * full_checkpoint_bytes,
            "prefix": base_model_bytes + customers * prefix_checkpoint_bytes}


def break_even_customers(*, base_model_bytes: int, full_checkpoint_bytes: int, prefix_checkpoint_bytes: int) -> int:
    """The smallest number of customers for which prefixes on a shared base need fewer bytes than
    whole fine-tuned models: the smallest N with N*full > base + N*prefix. Raises if it never happens."""
    saved_per_customer = full_checkpoint_bytes - prefix_checkpoint_bytes
    if saved_per_customer <= 0:
        raise ValueError("A prefix checkpoint is not smaller than a full one here, so prefixes never save storage.")
    return base_model_bytes // saved_per_customer + 1
