"""Sentiment: movie snippets -> batches -> accuracy on clear and on ambiguous reviews.

    >>> from tutorlib.tasks.sentiment import make_batches, evaluate_sentiment, ambiguity_split
    >>> batches = make_batches(ds["train"], tokenizer, batch_size=32)      # doctest: +SKIP
    >>> clear, ambiguous = ambiguity_split(ds["test"])                    # doctest: +SKIP
    >>> report = evaluate_sentiment(model, ds["test"], tokenizer)         # doctest: +SKIP
    >>> report["clear_accuracy"], report["ambiguous_accuracy"]            # doctest: +SKIP

The claim under test is that full fine-tuning may beat prefix tuning on *nuanced* sentiment.
"Nuanced" is measured, not guessed: each movie snippet was rated by 15-29 people on a -4..+4
scale, and a snippet is **ambiguous** when those people disagree, i.e. when the standard
deviation of their ratings is above :data:`AMBIGUITY_STD_THRESHOLD`.

Dataset columns used: ``text``, ``label`` (1 = positive), and, where the data has raters
(``movie-snippets``), ``id``, ``rater_std`` and ``frac_positive``. ``rotten-tomatoes`` has no
raters: its reports leave the clear/ambiguous and rater-agreement entries as ``None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tutorlib.tasks.metrics import (
    accuracy,
    expected_calibration_error,
    macro_f1,
    mcnemar,
    pearson,
    wilson_interval,
)
from tutorlib.tasks.registry import Column, RunBudget, Task, register

if TYPE_CHECKING:
    import torch
# torch (and the batching helpers that use it) is imported inside the functions that need it: the command
# line reads this task's record (names, budgets) to check its options without loading torch.

AMBIGUITY_STD_THRESHOLD = 0.82
"""A snippet is ambiguous when its raters' standard deviation is *above* this (in rating points).

Measured on ``movieReviewSnippets_anonDataRatings.txt`` (VADER, ICWSM 2014; 10,605 snippets,
population std of 15-29 ratings each): median 0.8165 (= sqrt(2/3), a common exact value: 36
snippets have it), quartiles 0.676 / 1.059. 0.82 sits just above that median, so the data
splits into two halves, 5,321 clear (std <= 0.82) and 5,284 ambiguous (std > 0.82); no
snippet's std (5 decimals in the file) equals 0.82. Why not "raters split 30-70% positive":
that leaves 660 of 10,605 snippets (84 of the 1,061-item test split: a 95% interval of about +-11
points on each method's accuracy), too few to rank methods.
"""


# ----------------------------------------------------------------------------- ambiguity


def _column(dataset, name: str) -> list:
    if name not in dataset.column_names:
        raise KeyError(
            f"The dataset has no {name!r} column (it has {dataset.column_names}). Ambiguity and "
            f"rater agreement need the human ratings of 'movie-snippets'; 'rotten-tomatoes' has none."
        )
    return list(dataset[name])


def ambiguity_split(dataset, threshold: float = AMBIGUITY_STD_THRESHOLD) -> tuple[list[int], list[int]]:
    """Row indices of the clear and of the ambiguous snippets -> (clear_indices, ambiguous_indices).

    Ambiguous: ``rater_std > threshold``; a std exactly at the threshold counts as clear.
    Use ``dataset.select(indices)`` to get each part as a dataset.
    """
    stds = np.asarray(_column(dataset, "rater_std"), dtype=float)  # (N,)
    ambiguous = stds > threshold
    return np.flatnonzero(~ambiguous).tolist(), np.flatnonzero(ambiguous).tolist()


def add_ambiguity_column(dataset, threshold: float = AMBIGUITY_STD_THRESHOLD):
    """The same dataset with a boolean ``is_ambiguous`` column (``rater_std > threshold``)."""
    stds = _column(dataset, "rater_std")
    return dataset.add_column("is_ambiguous", [bool(s > threshold) for s in stds])


# ----------------------------------------------------------------------------- batches


def _tokenize(dataset, tokenizer, max_length: int) -> list[list[int]]:
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set one, e.g. tokenizer.pad_token = tokenizer.eos_token.")
    return tokenizer(list(dataset["text"]), truncation=True, max_length=max_length)["input_ids"]


def _batch(token_ids, labels, indices, pad_id) -> dict[str, torch.Tensor]:
    import torch

    from tutorlib.tasks.batching import pad_right

    input_ids, attention_mask = pad_right([token_ids[i] for i in indices], pad_id)
    return {"input_ids": input_ids, "attention_mask": attention_mask,  # (B, T), (B, T)
            "labels": torch.tensor([labels[i] for i in indices], dtype=torch.long)}  # (B,)


def make_batches(dataset, tokenizer, batch_size: int = 32, max_length: int = 128,
                 shuffle: bool = True, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Tokenize ``text`` and group it into padded batches for a classifier.

    Returns a list of dicts: ``input_ids`` (B, T) and ``attention_mask`` (B, T) right-padded
    to the longest item of the batch (at most ``max_length`` tokens), ``labels`` (B,) class ids.
    Batches are length-grouped (:func:`length_grouped_batches`): the same ``seed`` gives the
    same batches; call again with a new seed for each epoch.
    """
    from tutorlib.tasks.batching import length_grouped_batches

    token_ids = _tokenize(dataset, tokenizer, max_length)
    labels = list(dataset["label"])
    groups = length_grouped_batches([len(t) for t in token_ids], batch_size, shuffle, seed)
    return [_batch(token_ids, labels, g, tokenizer.pad_token_id) for g in groups]


# ----------------------------------------------------------------------------- evaluation


def predict_positive(model, dataset, tokenizer, batch_size: int = 32, max_length: int = 128) -> np.ndarray:
    """P(positive) for every row of ``dataset``, in dataset order -> (N,) floats in [0, 1].

    ``model`` is anything called as ``model(input_ids=..., attention_mask=...)`` that returns
    ``.logits`` of shape (B, 2): a classifier or a prefix-tuned one. It runs in eval mode (no
    dropout) and is put back in the mode it was in.
    """
    import torch

    from tutorlib.tasks.batching import length_grouped_batches

    token_ids = _tokenize(dataset, tokenizer, max_length)
    labels = list(dataset["label"])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs = np.zeros(len(token_ids))
    try:
        with torch.no_grad():
            for group in length_grouped_batches([len(t) for t in token_ids], batch_size, shuffle=False):
                batch = _batch(token_ids, labels, group, tokenizer.pad_token_id)
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits  # (B, 2)
                if logits.shape[-1] != 2:
                    raise ValueError(f"Sentiment needs 2 logits per item (negative, positive); got "
                                     f"{logits.shape[-1]}.")
                probs[group] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
    finally:
        model.train(was_training)
    return probs


def _scores(prefix: str, preds: np.ndarray, labels: np.ndarray) -> dict:
    """accuracy (+ 95% Wilson interval), macro-F1 and count for one group of items."""
    if len(labels) == 0:
        return {f"{prefix}n": 0, f"{prefix}accuracy": None, f"{prefix}accuracy_ci95": None, f"{prefix}macro_f1": None}
    right = int(np.sum(preds == labels))
    return {f"{prefix}n": len(labels), f"{prefix}accuracy": accuracy(preds, labels),
            f"{prefix}accuracy_ci95": wilson_interval(right, len(labels)),
            f"{prefix}macro_f1": macro_f1(preds, labels)}


def evaluate_sentiment(method_or_model, dataset, tokenizer, batch_size: int = 32, max_length: int = 128) -> dict:
    """Score a sentiment classifier on ``dataset``; every number the comparison reports.

    Returns a flat dict (floats in [0, 1] unless said otherwise):

    * ``n``, ``accuracy``, ``accuracy_ci95`` (low, high: 95% Wilson), ``macro_f1``;
    * the same on the two halves, prefixed ``clear_`` and ``ambiguous_`` (rater std <= or >
      ``ambiguity_threshold``); ``None`` when the data has no raters;
    * ``ece``: expected calibration error, 10 equal-width bins of the top-class probability;
    * ``rater_pearson``, ``rater_mae``: how the predicted P(positive) agrees with the share of
      human raters who rated the snippet positive (Pearson r in [-1, 1]; mean absolute error);
      ``None`` when the data has no raters;
    * ``predictions``: one dict per item, in dataset order, ``{id, prob_positive, pred, label,
      is_ambiguous}``, for paired tests (:func:`tutorlib.tasks.metrics.mcnemar`) and error analysis.
    """
    return score_sentiment(predict_positive(method_or_model, dataset, tokenizer, batch_size, max_length), dataset)


def score_sentiment(probs: np.ndarray, dataset) -> dict:
    """:func:`evaluate_sentiment`'s report from P(positive) for every row of ``dataset`` (N,), e.g. when the
    probabilities were computed by several processes and gathered."""
    probs = np.asarray(probs, dtype=float)  # (N,)
    preds = (probs > 0.5).astype(int)  # argmax of two logits: a tie goes to class 0
    labels = np.asarray(list(dataset["label"]), dtype=int)
    confidence = np.maximum(probs, 1 - probs)  # probability of the predicted class
    report = {**_scores("", preds, labels),
              "ece": expected_calibration_error(confidence, preds == labels, n_bins=10)}

    has_raters = "rater_std" in dataset.column_names
    ambiguous = np.zeros(len(labels), dtype=bool)
    if has_raters:
        _, ambiguous_idx = ambiguity_split(dataset)
        ambiguous[ambiguous_idx] = True
    report["ambiguity_threshold"] = AMBIGUITY_STD_THRESHOLD if has_raters else None
    for name, part in (("clear_", ~ambiguous), ("ambiguous_", ambiguous)):
        report.update(_scores(name, preds[part], labels[part]) if has_raters else
                      {k: None for k in _scores(name, preds[:0], labels[:0])})

    if "frac_positive" in dataset.column_names:
        share = np.asarray(list(dataset["frac_positive"]), dtype=float)  # (N,)
        report["rater_pearson"] = pearson(probs, share)
        report["rater_mae"] = float(np.mean(np.abs(probs - share)))
    else:
        report["rater_pearson"] = report["rater_mae"] = None

    ids = list(dataset["id"]) if "id" in dataset.column_names else list(range(len(labels)))
    report["predictions"] = [
        {"id": ids[i], "prob_positive": float(probs[i]), "pred": int(preds[i]), "label": int(labels[i]),
         "is_ambiguous": bool(ambiguous[i]) if has_raters else None}
        for i in range(len(labels))
    ]
    return report


# ----------------------------------------------------------------------------- the task, for comparisons


def scoring_split(splits) -> tuple:
    """The rows to score on: ``test``, or ``validation`` when the test labels are hidden (GLUE sst2's are -1)."""
    if set(splits["test"]["label"]) - {0, 1} and "validation" in splits:
        return splits["validation"], "the test split has no labels (e.g. GLUE sst2): scored on validation"
    return splits["test"], None


def describe_test(rows) -> dict:
    """How many test items are clear and ambiguous (only on data with raters)."""
    if "rater_std" not in rows.column_names:
        return {}
    clear, ambiguous = ambiguity_split(rows)
    return {"clear_items": len(clear), "ambiguous_items": len(ambiguous),
            "ambiguity_threshold": AMBIGUITY_STD_THRESHOLD}


def score(model, tokenizer, rows, *, batch_size: int, max_length: int, max_new_tokens: int = 0, gather=None):
    """:func:`evaluate_sentiment` as a comparison reads it -> (metrics, per-item predictions, no examples).

    ``gather(predict, rows) -> list``: how the rows are predicted, one result per row in order; None
    predicts them all here (several processes pass one that shares the rows out and gathers them)."""
    gather = gather or (lambda predict, rows: list(predict(rows)))
    probs = gather(lambda part: predict_positive(model, part, tokenizer, batch_size, max_length).tolist(), rows)
    report = score_sentiment(np.asarray(probs, dtype=float), rows)
    predictions = report.pop("predictions")
    report.pop("ambiguity_threshold", None)  # the same for every method: it is in the data summary
    return report, predictions, []


def majority_class(rows) -> list[dict]:
    """The reference row: always answer the most frequent test label."""
    labels = np.asarray(list(rows["label"]))
    return [{"method": "majority class", "accuracy": float(max(np.mean(labels == c) for c in np.unique(labels)))}]


def paired_test(a: list[dict], b: list[dict]) -> dict:
    """Two methods' predictions on the same items: McNemar's exact test on right/wrong."""
    labels = [p["label"] for p in a]
    pa, pb = [p["pred"] for p in a], [p["pred"] for p in b]
    right_a, right_b = np.array(pa) == np.array(labels), np.array(pb) == np.array(labels)
    return {"test": "McNemar exact", "p_value": mcnemar(pa, pb, labels),
            "only_a_right": int(np.sum(right_a & ~right_b)), "only_b_right": int(np.sum(~right_a & right_b))}


# How much each mode trains and scores (train examples, steps, batch, tokens, test items, eval batch).
BUDGETS = {
    # fast (tests, CI): a few minutes for both methods on a 2-core CPU; it shows the machinery, not the answer.
    "fast": RunBudget(512, 32, 16, 64, 300, 64),
    # workshop: minutes, and the same sign and rough size as full mode (docs/teaching.md).
    "workshop": RunBudget(None, 96, 32, 64, None, 64),
    # full: one epoch of the whole train split (266 steps of 32), every test item.
    "full": RunBudget(None, None, 32, 64, None, 64),
}

LEGEND = {
    "clear / ambiguous": "snippets the raters agreed on / split over (spread of ratings above 0.82 points)",
    "[95% CI]": "Wilson interval of the accuracy: a new test set would land in it 19 times in 20",
    "ECE": "expected calibration error: how far the confidence is from the accuracy (0 = honest; lower is better)",
    "rater r": "Pearson correlation of the model's P(positive) with the share of raters who said positive (higher "
               "is better; '-' on data without raters)",
    "rater MAE": "mean absolute gap between P(positive) and that share of raters, 0-1 (lower is better)",
    "final loss": "mean training loss over the last 10% of steps",
}

SENTIMENT = register(Task(
    name="sentiment", description="positive or negative movie snippets; accuracy on clear and ambiguous ones",
    head="classification", columns=("text", "label"), default_model="minilm-l6", default_dataset="movie-snippets",
    make_batches=make_batches, evaluate=score, reference_rows=majority_class, paired_test=paired_test,
    main_metric=("accuracy", "test accuracy"), scoring_split=scoring_split, describe_test=describe_test,
    quality_columns=(
        Column("accuracy [95% CI]", "accuracy", "interval"), Column("macro-F1", "macro_f1"),
        Column("clear acc [95% CI]", "clear_accuracy", "interval"), Column("clear F1", "clear_macro_f1"),
        Column("ambiguous acc [95% CI]", "ambiguous_accuracy", "interval"),
        Column("ambig. F1", "ambiguous_macro_f1"), Column("ECE", "ece"), Column("rater r", "rater_pearson"),
        Column("rater MAE", "rater_mae"), Column("final loss", "final_loss")),
    # MiniLM trains well from a random prefix (the README's sentiment table): no start text.
    budgets=BUDGETS, prefix_init_text=None, legend=LEGEND,
    shortest_max_length=16))  # the snippets' median is about 20 tokens: fewer leaves most of the words out
