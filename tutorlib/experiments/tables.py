"""A comparison as plain text: what a terminal, a log file and a README can all show.

Two tables, one row per method: *quality* (what each method achieved) and *cost* (what it took),
then the paired tests and notes on how memory and energy were measured.
"""

from __future__ import annotations

import textwrap

from tutorlib.methods.registry import find_method
from tutorlib.tasks.registry import Column, get_task
from tutorlib.training.distributed import distributed_notes
from tutorlib.units import format_mib, format_seconds, format_size

# ----------------------------------------------------------------------------- number formats


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(value, ci) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def cell(column: Column, row: dict) -> str:
    """One quality cell: a number, a number with its 95% interval, or a count (see :class:`Column`)."""
    value = row.get(column.key)
    if column.kind == "interval":
        return _interval(value, row.get(f"{column.key}_ci95"))
    if column.kind == "count":
        return "-" if value is None else str(value)
    return _num(value)


def _params(row: dict, key: str) -> str:
    n, total = row.get(key), row.get("total_params")
    if n is None:
        return "-"
    share = f" ({100 * n / total:.3g}%)" if total and n else ""
    return f"{n:,}{share}"


def _energy(row: dict) -> str:
    kwh = row.get("energy_kwh")
    return "-" if kwh is None else f"{kwh * 1000:.3g} Wh ({row.get('energy_method')})"


def _memory(row: dict) -> str:
    peak, increase = row.get("peak_memory_mb"), row.get("peak_memory_increase_mb")
    return "-" if peak is None else f"{format_mib(peak)} (+{increase:,.0f})"


WIDTH = 120
"""The widest line a table prints: wider tables continue below, the method column repeated."""


def grid(headers: list[str], rows: list[list[str]], width: int = WIDTH) -> str:
    """Left-aligned first column, right-aligned others, two spaces between, a rule under the header.
    Columns that would pass ``width`` characters go to a second block below (first column repeated)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    blocks, current = [], [0]
    for i in range(1, len(headers)):
        if current[1:] and sum(widths[j] + 2 for j in current) + widths[i] > width:
            blocks.append(current)
            current = [0]
        current.append(i)
    blocks.append(current)

    def line(cells, columns):
        return "  ".join(str(cells[i]).ljust(widths[i]) if i == 0 else str(cells[i]).rjust(widths[i])
                         for i in columns)
    return "\n\n".join("\n".join([line(headers, cols), "  ".join("-" * widths[i] for i in cols),
                                   *(line(r, cols) for r in rows)]) for cols in blocks)


def wrap(lines: list[str], width: int = WIDTH) -> list[str]:
    """Each line wrapped at ``width`` characters, continuations indented by two spaces."""
    return [part for text in lines for part in textwrap.wrap(text, width, subsequent_indent="  ") or [""]]


# ----------------------------------------------------------------------------- the tables

COST = [
    ("trainable params", lambda r: _params(r, "trainable_params")),
    ("stored params", lambda r: _params(r, "stored_params")),
    ("step (median)", lambda r: format_seconds(r.get("median_step_seconds"))),
    ("CPU s/step", lambda r: format_seconds(r.get("cpu_seconds_per_step"))),
    ("tokens/s", lambda r: "-" if r.get("tokens_per_second") is None else f"{r['tokens_per_second']:,.0f}"),
    ("train time", lambda r: format_seconds(r.get("train_seconds"))),
    ("peak memory (increase)", _memory),
    ("optimizer state", lambda r: format_size(r.get("optimizer_state_bytes"))),
    ("checkpoint", lambda r: format_size(r.get("checkpoint_bytes"))),
    ("energy", _energy), ("eval time", lambda r: format_seconds(r.get("eval_seconds"))),
]


def _header(result) -> list[str]:
    b, d = result.budget, result.data_summary
    lines = [f"{result.task.capitalize()}: {result.model} on {result.dataset} ({result.mode} mode, seed {result.seed}, "
             f"prefix length {result.prefix_length})",
             f"train: {d['train_examples']:,} items, {b['steps']} steps x batch {b['batch_size']} "
             f"({d['epochs']:.2f} epochs), max {b['max_length']} tokens; same batches and steps for every method"]
    test = f"test: {d['test_items']:,} items"
    if d.get("clear_items") is not None:
        test += (f" = {d['clear_items']:,} clear + {d['ambiguous_items']:,} ambiguous "
                 f"(ambiguous: rater std > {d['ambiguity_threshold']})")
    if b.get("max_new_tokens"):
        test += f"; greedy summaries of at most {b['max_new_tokens']} new tokens"
    lines.append(test)
    lines += [f"note: {d[k]}" for k in ("note", "prompt") if d.get(k)]
    if result.learning_rates:
        own = {row["method"]: row.get("lr_by_name") for row in result.rows if row.get("lr_by_name")}
        lines.append("learning rates: " + ", ".join(
            f"{m} {lr:g}" + "".join(f" ({name}* {rate:g})" for name, rate in (own.get(m) or {}).items())
            for m, lr in result.learning_rates.items()))
    starts = _starts(result)
    if starts:
        lines.append("start: " + "; ".join(f"{', '.join(names)} from {start}" for start, names in starts.items()))
    if result.interrupted:
        lines.append("INTERRUPTED: the last method did not finish its budget; its row holds no scores.")
    return lines


def _starts(result) -> dict[str, list[str]]:
    """What each method that reads the task's start text started from (its record's words) -> those methods."""
    words = getattr(result, "prefix_init_text", None)
    starts: dict[str, list[str]] = {}
    for row in result.rows:
        method = find_method(row["method"])
        if method is not None and method.reads_init_text:
            starts.setdefault(method.describe_start(words), []).append(method.name)
    return starts


def format_table(result) -> str:
    """Header, quality table (with reference rows), paired tests, cost table, measurement notes."""
    done = [r for r in result.rows if not r.get("interrupted")]
    # The task's columns, less those no method has a value for (e.g. rater agreement on data without raters).
    quality = [c for c in get_task(result.task).quality_columns if any(r.get(c.key) is not None for r in done)]
    rows = [[r["method"], *(cell(c, r) for c in quality)] for r in done]
    rows += [[f"{r['method']} (reference)", *(cell(c, r) for c in quality)] for r in result.references]
    parts = ["\n".join(wrap(_header(result))), "Quality\n" + grid(["method", *(c.header for c in quality)], rows)]
    if result.paired_tests:
        lines = []
        for t in result.paired_tests:
            detail = (f"{t['a']} alone right on {t['only_a_right']}, {t['b']} alone right on {t['only_b_right']}"
                      if "only_a_right" in t else
                      f"mean {t.get('measure', 'ROUGE-L')} difference {t['mean_difference']:+.3f}"
                      + (f" over {t['items']} items with domain terms" if "items" in t else ""))
            lines.append(f"  {t['a']} vs {t['b']}: p = {t['p_value']:.3g} ({t['test']}; {detail})")
        parts.append("Paired tests (same test items; small p: unlikely to be luck)\n" + "\n".join(wrap(lines)))
    cost_rows = [[r["method"], *(fn(r) for _, fn in COST)] for r in done]
    parts.append("Cost\n" + grid(["method", *(h for h, _ in COST)], cost_rows))
    parts.append("\n".join(wrap(_notes(done) + distributed_notes(result.environment))))
    return "\n\n".join(parts)


def _notes(rows: list[dict]) -> list[str]:
    trained = [r for r in rows if r.get("median_step_seconds") is not None]
    notes = ["Step time: wall clock, median after 2 warm-up steps; CPU s/step: this process's CPU time (all "
             "threads) over the whole run / steps, which other programs sharing the cores disturb far less; "
             "train time: sum of "
             "step times (no evaluation, no loading)."]
    kinds = {r.get("memory_kind") for r in trained}
    if "cpu-rss" in kinds:
        notes.append("Peak memory: whole-process resident memory (cpu-rss) during training; the increase over "
                     "the memory in use when training started is the fair side-by-side number.")
    if "cuda-allocated" in kinds:
        notes.append("Peak memory: peak of allocated CUDA tensors (cuda-allocated) during training.")
    notes.append("Optimizer state: AdamW's two moments per trainable parameter. Checkpoint: bytes on disk.")
    details = {(r.get("energy_method"), (r.get("energy_details") or "").split(";")[0]) for r in trained
               if r.get("energy_kwh") is not None}
    for method, detail in sorted(details, key=str):
        notes.append(f"Energy ({method}): an estimate, not a meter reading: {detail}.")
    if len({m for m, _ in details}) > 1:
        notes.append("WARNING: energy was estimated by different methods; do not compare those numbers.")
    return notes


def format_examples(result, width: int = 110) -> str:
    """Each example document once, its reference, then every method's summary of it."""
    methods = [m for m, ex in result.examples.items() if ex]
    if not methods:
        return "No examples (only summarisation keeps them)."
    blocks = []
    for i, first in enumerate(result.examples[methods[0]]):
        lines = [f"Example {i + 1} ({first['id']}): {textwrap.shorten(first['document_head'], width)}",
                 f"  reference : {textwrap.shorten(first['reference'], width)}"]
        for m in methods:
            if i < len(result.examples[m]):
                lines.append(f"  {m:<10}: {textwrap.shorten(result.examples[m][i]['prediction'] or '(empty)', width)}")
        blocks.append("\n".join(lines))
    return "Examples\n" + "\n\n".join(blocks)
