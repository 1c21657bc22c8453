"""A comparison as plain text: what a terminal, a log file and a README can all show.

Two tables, one row per method: *quality* (what each method achieved) and *cost* (what it took),
then the paired tests and notes on how memory and energy were measured.
"""

from __future__ import annotations

import textwrap

MIB = 2**20


# ----------------------------------------------------------------------------- number formats


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(row: dict, prefix: str = "") -> str:
    acc, ci = row.get(f"{prefix}accuracy"), row.get(f"{prefix}accuracy_ci95")
    if acc is None:
        return "-"
    return f"{acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{acc:.3f}"


def size(nbytes) -> str:
    """Bytes in words: '512 B', '183.0 KB', '86.7 MB', '1.25 GB' (KB = 1,024 bytes, as the kit writes MiB)."""
    if nbytes is None:
        return "-"
    for unit, scale in (("GB", 2**30), ("MB", MIB), ("KB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{int(nbytes)} B"


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
    return "-" if peak is None else f"{peak:,.0f} MB (+{increase:,.0f})"


def _seconds(value) -> str:
    return "-" if value is None else (f"{value:.3f} s" if value < 10 else f"{value:,.0f} s")


def grid(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned others, two spaces between, a rule under the header."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


# ----------------------------------------------------------------------------- the tables

SENTIMENT_QUALITY = [
    ("accuracy [95% CI]", lambda r: _ci(r)), ("macro-F1", lambda r: _num(r.get("macro_f1"))),
    ("clear acc [95% CI]", lambda r: _ci(r, "clear_")), ("clear F1", lambda r: _num(r.get("clear_macro_f1"))),
    ("ambiguous acc [95% CI]", lambda r: _ci(r, "ambiguous_")),
    ("ambig. F1", lambda r: _num(r.get("ambiguous_macro_f1"))), ("ECE", lambda r: _num(r.get("ece"))),
    ("rater r", lambda r: _num(r.get("rater_pearson"))), ("rater MAE", lambda r: _num(r.get("rater_mae"))),
    ("final loss", lambda r: _num(r.get("final_loss"))),
]
SUMMARISE_QUALITY = [
    ("ROUGE-1", lambda r: _num(r.get("rouge1"))), ("ROUGE-2", lambda r: _num(r.get("rouge2"))),
    ("ROUGE-L", lambda r: _num(r.get("rougeL"))),
    ("+- s.e.", lambda r: _num(r.get("rougeL_se"))), ("docs", lambda r: str(r.get("n", "-"))),
    ("term recall", lambda r: _num(r.get("term_recall"))), ("recall s.e.", lambda r: _num(r.get("term_recall_se"))),
    ("invented", lambda r: "-" if r.get("invented_terms") is None
     else f"{r['invented_terms']}/{r['generated_terms']} ({_num(r.get('invented_rate'))})"),
    ("final loss", lambda r: _num(r.get("final_loss"))),
]
TERMINOLOGY_COLUMNS = ("term recall", "recall s.e.", "invented")  # shown only for data with MeSH/chemical terms
COST = [
    ("trainable params", lambda r: _params(r, "trainable_params")),
    ("stored params", lambda r: _params(r, "stored_params")),
    ("step (median)", lambda r: _seconds(r.get("median_step_seconds"))),
    ("CPU s/step", lambda r: _seconds(r.get("cpu_seconds_per_step"))),
    ("tokens/s", lambda r: "-" if r.get("tokens_per_second") is None else f"{r['tokens_per_second']:,.0f}"),
    ("train time", lambda r: _seconds(r.get("train_seconds"))),
    ("peak memory (increase)", _memory),
    ("optimizer state", lambda r: size(r.get("optimizer_state_bytes"))),
    ("checkpoint", lambda r: size(r.get("checkpoint_bytes"))),
    ("energy", _energy), ("eval time", lambda r: _seconds(r.get("eval_seconds"))),
]


def _header(result) -> list[str]:
    b, d = result.budget, result.data_summary
    mode = "fast mode" if result.fast else "full mode"
    lines = [f"{result.task.capitalize()}: {result.model} on {result.dataset} ({mode}, seed {result.seed}, "
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
    if any(r["method"].startswith("prefix") for r in result.rows):
        words = getattr(result, "prefix_init_text", None)
        lines.append("prefix start: " + (f"the model's own keys/values of {words!r}" if words
                                         else "random, as large as the model's own keys/values"))
    if result.interrupted:
        lines.append("INTERRUPTED: the last method did not finish its budget; its row holds no scores.")
    return lines


def format_table(result) -> str:
    """Header, quality table (with reference rows), paired tests, cost table, measurement notes."""
    quality = SENTIMENT_QUALITY if result.task == "sentiment" else SUMMARISE_QUALITY
    if result.task == "sentiment" and result.data_summary.get("clear_items") is None:
        quality = [c for c in quality if not c[0].startswith(("clear", "ambig", "rater"))]  # no raters
    done = [r for r in result.rows if not r.get("interrupted")]
    if result.task == "summarise" and not any(r.get("term_recall") is not None for r in done):
        quality = [c for c in quality if c[0] not in TERMINOLOGY_COLUMNS]
    rows = [[r["method"], *(fn(r) for _, fn in quality)] for r in done]
    rows += [[f"{r['method']} (reference)", *(fn(r) for _, fn in quality)] for r in result.references]
    parts = ["\n".join(_header(result)), "Quality\n" + grid(["method", *(h for h, _ in quality)], rows)]
    if result.paired_tests:
        lines = []
        for t in result.paired_tests:
            detail = (f"{t['a']} alone right on {t['only_a_right']}, {t['b']} alone right on {t['only_b_right']}"
                      if "only_a_right" in t else
                      f"mean {t.get('measure', 'ROUGE-L')} difference {t['mean_difference']:+.3f}"
                      + (f" over {t['items']} items with domain terms" if "items" in t else ""))
            lines.append(f"  {t['a']} vs {t['b']}: p = {t['p_value']:.3g} ({t['test']}; {detail})")
        parts.append("Paired tests (same test items; small p: unlikely to be luck)\n" + "\n".join(lines))
    cost_rows = [[r["method"], *(fn(r) for _, fn in COST)] for r in done]
    parts.append("Cost\n" + grid(["method", *(h for h, _ in COST)], cost_rows))
    parts.append("\n".join(_notes(done)))
    return "\n\n".join(parts)


def _notes(rows: list[dict]) -> list[str]:
    trained = [r for r in rows if r.get("median_step_seconds") is not None]
    notes = ["Step time: wall clock, median after 2 warm-up steps; CPU s/step: this process's CPU time (all "
             "threads) over the whole run / steps, which other programs sharing the cores disturb far less; train time: sum of "
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
