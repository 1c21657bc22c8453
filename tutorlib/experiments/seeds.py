"""The sentiment comparison over several training seeds, one fixed data split: is the result training noise?

    tutorlib seeds --seeds 0,1,2 --lr full=5e-5,prefix=1e-2 --out results/sentiment-seeds

    >>> from tutorlib.experiments.seeds import run_seeds, summarise_seeds
    >>> runs = run_seeds(seeds=[0, 1, 2], learning_rates={"full": 5e-5, "prefix": 1e-2})   # doctest: +SKIP
    >>> summary = summarise_seeds(runs)                                                    # doctest: +SKIP
    >>> summary["across_seeds"]["gap_difference"]     # doctest: +SKIP  mean and 95% interval across seeds

The **split seed** fixes which reviews are train/validation/test; the **training seed** fixes the new
head's weights, the prefix's start, the batch order and dropout. Here the split stays put and only the
training seed changes, so the spread across seeds is training noise alone. Changing the split seed
(``--split-seeds``, one training seed) measures the other source of spread, reported on its own.

Each training run (one method, one rate, one seed) is scored in one pass on three item sets
(:func:`tutorlib.experiments.held_out.sentiment_score_sets`): validation (used only to choose a learning
rate, :mod:`tutorlib.experiments.tuning`), test (what is reported) and out-of-distribution
``rotten-tomatoes`` snippets. Every run is stored as one JSON file named after it; a file already
there is read back instead of trained again, so an interrupted measurement resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tutorlib import Mode
from tutorlib.experiments.held_out import datasets_concat, sentiment_score_sets
from tutorlib.experiments.interaction import bootstrap_gap_difference, mean_interval
from tutorlib.tasks.metrics import mcnemar
from tutorlib.tasks.sentiment import AMBIGUITY_STD_THRESHOLD

COST_FIELDS = ("steps", "train_seconds", "median_step_seconds", "trainable_params", "final_loss")


def run_name(method: str, lr: float, seed: int, split_seed: int) -> str:
    """The file name of one training run, e.g. ``full-lr5e-05-seed0-split0``."""
    return f"{method}-lr{lr:g}-seed{seed}-split{split_seed}"


def train_and_score(method: str, lr: float, *, seed: int, split_seed: int = 0, mode: Mode = "full",
                    model: str = "minilm-l6", train_splits=None, score_sets: dict | None = None,
                    prefix_length: int = 10, progress: bool = False) -> dict:
    """Train one method on the ``movie-snippets`` train split (``split_seed``) with ``compare``'s budget
    and code, then score it on every set of ``score_sets`` -> a JSON-ready record.

    Args:
        method: "full", "prefix" or "prefix-mlp".
        lr: its peak learning rate.
        seed: the training seed; split_seed: the data split's seed.
        mode: which of the sentiment task's budgets: "fast" (512 examples, 32 steps), "workshop" (96 steps)
            or "full" (one epoch).
        train_splits: a DatasetDict with "train" (and "validation") used instead of movie-snippets
            (tests with tiny data); score_sets: {name: Dataset with id, text, label, and rater_std
            where ambiguity is known}; default :func:`sentiment_score_sets`.

    The record holds per set: ``n``, ``accuracy``, ``clear_accuracy``/``ambiguous_accuracy`` where the
    set has raters, and per item ``right`` (0/1) and ``is_ambiguous`` (None without raters).
    """
    from datasets import DatasetDict

    from tutorlib.experiments.compare import compare
    from tutorlib.loading.data import load_dataset

    splits = train_splits if train_splits is not None else load_dataset("movie-snippets", seed=split_seed)
    sets = score_sets if score_sets is not None else sentiment_score_sets(split_seed)
    stacked = datasets_concat(list(sets.values()))  # every set scored in one pass, in this order
    result = compare("sentiment", model=model, dataset="movie-snippets", methods=[method], seed=seed, mode=mode,
                     tiny_data=DatasetDict(train=splits["train"], test=stacked), learning_rates={method: lr},
                     budget={"test_items": None}, prefix_length=prefix_length, progress=progress,
                     measure_energy=False)
    right = np.array([p["pred"] == p["label"] for p in result.predictions[method]], dtype=int)  # (N all sets,)
    row = result.rows[0]
    record = {"method": method, "lr": lr, "seed": seed, "split_seed": split_seed, "mode": mode,
              "model": model, "prefix_length": prefix_length, "cost": {k: row.get(k) for k in COST_FIELDS},
              "sets": {}}
    start = 0
    for name, rows in sets.items():
        part = right[start:start + len(rows)]  # (n,)
        start += len(rows)
        ambiguous = ([bool(s > AMBIGUITY_STD_THRESHOLD) for s in rows["rater_std"]]
                     if "rater_std" in rows.column_names else None)
        scores = {"n": len(part), "accuracy": float(part.mean())}
        if ambiguous is not None:
            amb = np.array(ambiguous)
            scores.update(clear_accuracy=float(part[~amb].mean()), ambiguous_accuracy=float(part[amb].mean()),
                          n_clear=int((~amb).sum()), n_ambiguous=int(amb.sum()))
        record["sets"][name] = {**scores, "ids": list(rows["id"]), "right": part.tolist(), "is_ambiguous": ambiguous}
    return record


def stored_run(runs_folder, method: str, lr: float, seed: int, split_seed: int = 0, mode: Mode = "full",
               **train_kwargs) -> dict:
    """The run's record from ``runs_folder/<run_name>.json``, training it first when the file is missing.

    The tuning grid and the seed runs share one such folder: a run both need is trained once."""
    path = Path(runs_folder) / f"{run_name(method, lr, seed, split_seed)}.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if record_mode(record) == mode:
            return record
        raise ValueError(f"{path} was measured in {record_mode(record)} mode, not {mode} mode; use another "
                         f"folder (--runs), or delete that file to measure it again.")
    record = train_and_score(method, lr, seed=seed, split_seed=split_seed, mode=mode, **train_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.rename(path)  # a reader never sees half a file
    return record


def record_mode(record: dict) -> Mode:
    """The mode a stored run was measured in (runs stored before the mode was recorded say only "fast")."""
    return record.get("mode") or ("fast" if record.get("fast") else "full")


def run_seeds(runs_folder, seeds, learning_rates: dict[str, float], split_seeds=(0,), mode: Mode = "full",
              progress: bool = True, **train_kwargs) -> list[dict]:
    """Every (split seed, training seed, method) run, full and prefix at their ``learning_rates``."""
    records = []
    for split_seed in split_seeds:
        for seed in seeds:
            for method, lr in learning_rates.items():
                if progress:
                    print(f"seeds: {method} lr {lr:g} | training seed {seed} | split seed {split_seed}", flush=True)
                records.append(stored_run(runs_folder, method, lr, seed, split_seed, mode, **train_kwargs))
    return records


def _pair_summary(a: dict, b: dict) -> dict:
    """One seed: method a vs b on the test set (gaps, McNemar) and the out-of-distribution set."""
    test_a, test_b = a["sets"]["test"], b["sets"]["test"]
    ra, rb = np.array(test_a["right"]), np.array(test_b["right"])  # (N,)
    labels = np.ones(len(ra), dtype=int)  # McNemar needs only right/wrong: "right" = predicting label 1
    out = {"seed": a["seed"], "split_seed": a["split_seed"],
           "accuracy": {a["method"]: test_a["accuracy"], b["method"]: test_b["accuracy"]},
           "gap_all": test_a["accuracy"] - test_b["accuracy"],
           "mcnemar_p": mcnemar(ra.tolist(), rb.tolist(), labels.tolist()),
           "only_a_right": int(np.sum((ra == 1) & (rb == 0))), "only_b_right": int(np.sum((ra == 0) & (rb == 1)))}
    if test_a.get("is_ambiguous") is not None:
        inter = bootstrap_gap_difference(ra, rb, test_a["is_ambiguous"], seed=a["seed"])
        out.update(gap_clear=inter["clear_gap"], gap_ambiguous=inter["ambiguous_gap"], gap_difference=inter)
    if "ood" in a["sets"]:
        oa, ob = np.array(a["sets"]["ood"]["right"]), np.array(b["sets"]["ood"]["right"])
        out.update(ood_accuracy={a["method"]: float(oa.mean()), b["method"]: float(ob.mean())},
                   ood_gap=float(oa.mean() - ob.mean()),
                   ood_mcnemar_p=mcnemar(oa.tolist(), ob.tolist(), [1] * len(oa)))
    return out


def summarise_seeds(records: list[dict], a: str = "full", b: str = "prefix") -> dict:
    """Per (split seed, seed): a vs b; then each number's mean and 95% interval across training seeds
    (split seed 0) and, when several split seeds were run, across split seeds (training seed 0)."""
    by_key = {(r["split_seed"], r["seed"], r["method"]): r for r in records}
    pairs = [_pair_summary(by_key[(sp, s, a)], by_key[(sp, s, b)])
             for (sp, s, m) in sorted(by_key) if m == a and (sp, s, b) in by_key]
    if not pairs:
        raise ValueError(f"No seed has both {a!r} and {b!r} runs; run both methods first.")

    def spread(rows: list[dict]) -> dict:
        numbers = {f"accuracy_{m}": [r["accuracy"][m] for r in rows] for m in (a, b)}
        numbers["gap_all"] = [r["gap_all"] for r in rows]
        if all("gap_difference" in r for r in rows):
            numbers.update(gap_clear=[r["gap_clear"] for r in rows], gap_ambiguous=[r["gap_ambiguous"] for r in rows],
                           gap_difference=[r["gap_difference"]["estimate"] for r in rows])
        if all("ood_gap" in r for r in rows):
            numbers.update({f"ood_accuracy_{m}": [r["ood_accuracy"][m] for r in rows] for m in (a, b)})
            numbers["ood_gap"] = [r["ood_gap"] for r in rows]
        return {name: mean_interval(v) for name, v in numbers.items()}

    training = [p for p in pairs if p["split_seed"] == 0]
    splits = [p for p in pairs if p["seed"] == 0]
    return {"a": a, "b": b, "learning_rates": {m: next(r["lr"] for r in records if r["method"] == m) for m in (a, b)},
            "mode": record_mode(records[0]), "per_seed": pairs,
            "across_seeds": spread(training) if training else None,
            "seeds": [p["seed"] for p in training],
            "across_split_seeds": spread(splits) if len({p["split_seed"] for p in splits}) > 1 else None,
            "split_seeds": sorted({p["split_seed"] for p in splits})}


def seeds_table(summary: dict) -> str:
    """:func:`summarise_seeds`' result as a table a reader can scan: per seed, then mean [95% interval]."""
    a, b = summary["a"], summary["b"]

    def points(x):
        return "-" if x is None else f"{100 * x:+.1f}"

    lines = [f"{a} - {b}, accuracy points (test split; learning rates {summary['learning_rates']})",
             f"{'seed':>6} {'split':>6} {'all':>7} {'clear':>7} {'ambig.':>7} {'ambig.-clear':>13} {'McNemar p':>10}"
             f" {'out-of-dist.':>13}"]
    for p in summary["per_seed"]:
        diff = p.get("gap_difference", {}).get("estimate")
        lines.append(f"{p['seed']:>6} {p['split_seed']:>6} {points(p['gap_all']):>7} {points(p.get('gap_clear')):>7} "
                     f"{points(p.get('gap_ambiguous')):>7} {points(diff):>13} {p['mcnemar_p']:>10.2g} "
                     f"{points(p.get('ood_gap')):>13}")
    for label, key in (("across training seeds", "across_seeds"), ("across split seeds", "across_split_seeds")):
        spread = summary.get(key)
        if not spread:
            continue
        lines.append(f"{label} (mean [95% interval]):")
        for name, stats in spread.items():
            scale = 100 if name.startswith(("gap", "ood_gap")) else 1
            unit = " points" if scale == 100 else ""
            ci = stats["ci95"]
            interval = f" [{scale * ci[0]:+.2f}, {scale * ci[1]:+.2f}]" if ci else " (one value: no interval)"
            lines.append(f"  {name:<22} {scale * stats['mean']:+.3f}{interval}{unit}")
    return "\n".join(lines)
