"""Summarisation with a causal LM: prompt format -> training batches -> greedy summaries -> ROUGE.

    >>> from tutorlib.tasks.summarise import make_batches, evaluate_summaries, lead_baseline
    >>> batches = make_batches(ds["train"], tokenizer, batch_size=4, max_length=256)  # doctest: +SKIP
    >>> evaluate_summaries(model, tokenizer, ds["test"])["rougeL"]                    # doctest: +SKIP
    >>> lead_baseline(ds["test"])["rougeL"]                                           # doctest: +SKIP

A decoder-only model sees one sequence per example::

    Article: <document, cut to fit>\\nSummary: <summary><eos>
    |<------------- labels = -100 ------------>|<- loss here ->|

The loss is taken on the summary tokens (and the end-of-sequence token, so the model learns to
stop) only: the model is taught to *write* summaries, not to predict news articles. If the
example is longer than ``max_length`` the document is cut, never the summary (unless the summary
alone does not fit; then it is cut too, with a warning).

Dataset columns used: ``document``, ``summary`` and, for reports, ``id``.
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

import numpy as np

from tutorlib.tasks.metrics import paired_sign_flip_p
from tutorlib.tasks.registry import Column, RunBudget, Task, register

if TYPE_CHECKING:
    import torch
# torch (and the batching helpers that use it) is imported inside the functions that need it: the command
# line reads this task's record (names, budgets) to check its options without loading torch.

PROMPT_HEAD = "Article:"  # then " " + document
PROMPT_TAIL = "\nSummary:"  # then " " + summary + eos; generation starts right after this
IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy (and Hugging Face) skips
MIN_DOCUMENT_TOKENS = 16  # a summary is cut only if it would leave fewer document tokens than this


def _ids(tokenizer, text: str, first: bool = False) -> list[int]:
    # Only the very start of a sequence gets the tokenizer's special tokens (e.g. a Llama BOS).
    return tokenizer(text, add_special_tokens=first)["input_ids"]


def prompt_ids(tokenizer, document: str, max_tokens: int) -> list[int]:
    """Token ids of ``Article: <document>\\nSummary:``, the document cut so that the whole fits
    in ``max_tokens``. The same function builds training and generation prompts, so a model sees
    at test time exactly the token boundaries it was trained on."""
    head, tail = _ids(tokenizer, PROMPT_HEAD, first=True), _ids(tokenizer, PROMPT_TAIL)
    room = max_tokens - len(head) - len(tail)
    if room < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for the document; raise max_length.")
    return head + _ids(tokenizer, " " + document)[:room] + tail  # keep the start: news puts facts first


def encode_example(tokenizer, document: str, summary: str, max_length: int) -> tuple[list[int], list[int]]:
    """One training example -> (input_ids, labels), both lists of the same length <= max_length.

    ``labels`` is -100 on the prompt and a copy of ``input_ids`` on `` <summary><eos>``.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("The tokenizer has no eos token: the model could not learn where a summary ends.")
    target = _ids(tokenizer, " " + summary) + [tokenizer.eos_token_id]
    fixed = len(_ids(tokenizer, PROMPT_HEAD, first=True)) + len(_ids(tokenizer, PROMPT_TAIL))
    longest_target = max_length - fixed - MIN_DOCUMENT_TOKENS
    if len(target) > longest_target:
        if longest_target < 1:
            raise ValueError(f"max_length={max_length} is too short for a prompt and a summary; raise it.")
        warnings.warn(f"A summary of {len(target)} tokens does not fit in max_length={max_length}; "
                      f"it is cut to {longest_target} (and loses its eos). Raise max_length to keep it.",
                      stacklevel=3)
        target = target[:longest_target]
    prompt = prompt_ids(tokenizer, document, max_length - len(target))
    return prompt + target, [IGNORE_INDEX] * len(prompt) + target


def make_batches(dataset, tokenizer, batch_size: int = 4, max_length: int = 256,
                 shuffle: bool = True, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Training batches for a causal LM: a list of dicts of (B, T) tensors.

    ``input_ids`` and ``attention_mask`` right-padded (padding after the text, as training
    wants); ``labels`` = -100 everywhere except the summary tokens and their eos. Hugging Face
    causal LMs shift the labels by one inside ``forward``, so labels line up with input_ids here.
    Batches are length-grouped and deterministic for a given ``seed``.
    """
    from tutorlib.tasks.batching import length_grouped_batches, pad_right

    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set one, e.g. tokenizer.pad_token = tokenizer.eos_token.")
    examples = [encode_example(tokenizer, d, s, max_length)
                for d, s in zip(dataset["document"], dataset["summary"])]
    batches = []
    for group in length_grouped_batches([len(ids) for ids, _ in examples], batch_size, shuffle, seed):
        input_ids, attention_mask = pad_right([examples[i][0] for i in group], tokenizer.pad_token_id)
        labels, _ = pad_right([examples[i][1] for i in group], IGNORE_INDEX)  # padding: no loss
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return batches


# ----------------------------------------------------------------------------- generation


def _first_line(tokenizer, new_ids: list[int]) -> str:
    if tokenizer.eos_token_id in new_ids:
        new_ids = new_ids[:new_ids.index(tokenizer.eos_token_id)]
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    # A model that has not been tuned often starts with a line break; the summary is the first
    # line that has words in it, not the empty line before it.
    return text.strip().split("\n", 1)[0].strip()


def _device(model) -> torch.device:
    import torch

    if getattr(model, "device", None) is not None:
        return torch.device(model.device)
    params = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return params.device if params is not None else torch.device("cpu")


def generate_summaries(model, tokenizer, documents: list[str], max_new_tokens: int = 60,
                       batch_size: int = 8, max_length: int = 256) -> list[str]:
    """Greedy summaries of ``documents`` -> one string per document, in order.

    Prompts are cut to ``max_length - max_new_tokens`` tokens and left-padded; each output ends
    at the first eos, or at the first newline after its first words (leading blank lines are
    skipped: untuned models often start with one). ``model`` is anything with a Hugging Face style
    ``generate(input_ids=, attention_mask=, max_new_tokens=, do_sample=False, pad_token_id=)``
    that returns (B, T + new) ids, prompt first: a causal LM or a prefix-tuned one.
    """
    import torch

    from tutorlib.tasks.batching import length_grouped_batches, pad_left

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if max_new_tokens >= max_length:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be below max_length={max_length}.")
    prompts = [prompt_ids(tokenizer, d, max_length - max_new_tokens) for d in documents]
    device = _device(model)
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()  # no dropout while generating
    summaries: list[str] = [""] * len(prompts)
    try:
        with torch.no_grad():
            # Similar lengths together: less padding, and fewer rows waiting on a long prompt.
            for group in length_grouped_batches([len(p) for p in prompts], batch_size, shuffle=False):
                input_ids, attention_mask = pad_left([prompts[i] for i in group], pad_id)  # (B, T)
                out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                     max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
                new_tokens = out[:, input_ids.shape[1]:].tolist()  # (B, <= max_new_tokens)
                for i, ids in zip(group, new_tokens):
                    summaries[i] = _first_line(tokenizer, ids)
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return summaries


# ----------------------------------------------------------------------------- scores


def rouge_scores(predictions: list[str], references: list[str], per_item: bool = False) -> dict:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (Porter stemming), each a float in [0, 1].

    ROUGE-n counts overlapping word n-grams, ROUGE-L the longest common word subsequence.
    With ``per_item`` the dict also holds ``items``: one {rouge1, rouge2, rougeL} per pair,
    for paired comparisons.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references; give one each.")
    if not predictions:
        raise ValueError("ROUGE of zero summaries is undefined; the dataset is empty.")
    from rouge_score import rouge_scorer  # here, not at the top: it imports nltk (~1 s)

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    items = [{k: s.fmeasure for k, s in scorer.score(ref, pred).items()}  # score(target, prediction)
             for pred, ref in zip(predictions, references)]
    means = {k: float(np.mean([item[k] for item in items])) for k in ("rouge1", "rouge2", "rougeL")}
    return {**means, "items": items} if per_item else means


def lead_sentence(document: str) -> str:
    """The document's first sentence (cut after the first ., ! or ? followed by a space)."""
    return re.split(r"(?<=[.!?])\s+", document.strip(), maxsplit=1)[0]


def lead_baseline(dataset) -> dict:
    """ROUGE of the first sentence of each document as its summary: the cheap row to beat.

    Note: in ``nyt-leads`` the reference *is* an article's lead, so the document holds the
    sentences after it, and this baseline takes the second sentence of the article.
    """
    return {**rouge_scores([lead_sentence(d) for d in dataset["document"]], list(dataset["summary"])),
            "n": len(dataset)}


def evaluate_summaries(model, tokenizer, dataset, max_new_tokens: int = 60, batch_size: int = 8,
                       max_length: int = 256, n_examples: int = 3) -> dict:
    """Generate a summary for every row of ``dataset`` and score it against ``summary``.

    Returns ``rouge1``, ``rouge2``, ``rougeL`` (mean F1 in [0, 1]), ``n``, ``examples`` (the first
    ``n_examples`` rows as {id, document_head (first 200 characters), reference, prediction}) and
    ``predictions`` (every row as {id, prediction, rouge1, rouge2, rougeL}, in dataset order).
    """
    predictions = generate_summaries(model, tokenizer, list(dataset["document"]), max_new_tokens, batch_size,
                                     max_length)
    return score_summaries(predictions, dataset, n_examples)


def score_summaries(predictions: list[str], dataset, n_examples: int = 3) -> dict:
    """:func:`evaluate_summaries`'s report from a generated summary for every row of ``dataset``, e.g. when
    the summaries were generated by several processes and gathered."""
    documents, references = list(dataset["document"]), list(dataset["summary"])
    scores = rouge_scores(predictions, references, per_item=True)
    ids = list(dataset["id"]) if "id" in dataset.column_names else list(range(len(documents)))
    examples = [{"id": ids[i], "document_head": documents[i][:200], "reference": references[i],
                 "prediction": predictions[i]} for i in range(min(n_examples, len(documents)))]
    rows = [{"id": ids[i], "prediction": predictions[i], **scores["items"][i]} for i in range(len(ids))]
    return {"rouge1": scores["rouge1"], "rouge2": scores["rouge2"], "rougeL": scores["rougeL"],
            "n": len(documents), "examples": examples, "predictions": rows}


# ----------------------------------------------------------------------------- the task, for comparisons


def with_aspect(rows):
    """aclsum: one abstract has three reference summaries (challenge, approach, outcome). Without
    saying which one is wanted the task is ill-posed, so the aspect goes into the document's start:
    "Aspect: approach. <abstract>" (the start survives when a long document is cut). Rows without an
    ``aspect`` column are returned as they are."""
    if "aspect" not in rows.column_names:
        return rows
    return rows.map(lambda row: {"document": f"Aspect: {row['aspect']}. {row['document']}"})


def describe_test(rows) -> dict:
    """Says how the prompt was changed, when it was (aclsum's aspect)."""
    if "aspect" not in rows.column_names:
        return {}
    return {"prompt": "the aspect is written into each document: 'Aspect: <aspect>. <abstract>'"}


def score(model, tokenizer, rows, *, batch_size: int, max_length: int, max_new_tokens: int, gather=None):
    """:func:`evaluate_summaries` as a comparison reads it -> (ROUGE and its standard error, per-item
    predictions, a few examples).

    ``gather(predict, rows) -> list``: how the rows are predicted, one result per row in order; None
    predicts them all here (several processes pass one that shares the rows out and gathers them)."""
    gather = gather or (lambda predict, rows: list(predict(rows)))
    summaries = gather(lambda part: generate_summaries(model, tokenizer, list(part["document"]), max_new_tokens,
                                                       batch_size, max_length), rows)
    report = score_summaries(summaries, rows)
    rouge_l = np.array([p["rougeL"] for p in report["predictions"]])  # (N,)
    metrics = {k: report[k] for k in ("rouge1", "rouge2", "rougeL", "n")}
    metrics["rougeL_se"] = float(rouge_l.std(ddof=1) / np.sqrt(len(rouge_l))) if len(rouge_l) > 1 else None
    return metrics, report["predictions"], report["examples"]


def lead_sentence_row(rows) -> list[dict]:
    """The reference row: each document's first sentence as its summary (:func:`lead_baseline`)."""
    return [{"method": "lead sentence", **lead_baseline(rows)}]


def paired_test(a: list[dict], b: list[dict]) -> dict:
    """Two methods' summaries of the same documents: paired sign-flip test on ROUGE-L."""
    ra, rb = [p["rougeL"] for p in a], [p["rougeL"] for p in b]
    return {"test": "paired sign-flip on ROUGE-L", "p_value": paired_sign_flip_p(np.array(ra), np.array(rb)),
            "mean_difference": float(np.mean(ra) - np.mean(rb))}


# How much each mode trains and scores (train examples, steps, batch, tokens, test items, eval batch, summary tokens).
BUDGETS = {
    "fast": RunBudget(32, 8, 4, 128, 10, None, max_new_tokens=24),
    # workshop: minutes, and the same sign and rough size as full mode (docs/teaching.md).
    "workshop": RunBudget(None, 25, 4, 192, 20, None, max_new_tokens=32),
    # full: 75 steps of 4 examples (one epoch of aclsum, 3/4 of nyt-leads) at 256 tokens, every test document.
    "full": RunBudget(None, 75, 4, 256, None, None, max_new_tokens=48),
}

# How a summarisation prefix starts. Measured on SmolLM2 (nyt-leads, held-out loss of 16 articles): without a
# prefix 3.85; with a random prefix as large as the model's own keys/values 11.1 (no better than guessing
# among 49k tokens), and 15 steps at lr 1e-2 only bring it to 7.8; with the model's own keys/values of
# an instruction sentence (init="words") 3.83, a sane start. The text names no domain, so the news
# and the scientific dataset start from the same place (its first 10 tokens: "Summarise the following
# text in one short sentence").
PREFIX_INIT_TEXT = "Summarise the following text in one short sentence."

LEGEND = {
    "ROUGE-1/2/L": "word, word-pair and longest-common-sequence overlap with the reference summary, 0-1",
    "+- s.e.": "standard error of the mean ROUGE-L over the test documents",
    "term recall": "share of the reference's domain terms (MeSH, chemicals) the summary names",
    "invented terms": "domain terms in the summary that are in neither the document nor the reference",
    "final loss": "mean training loss over the last 10% of steps",
}

SUMMARISE = register(Task(
    name="summarise", description="one-sentence summaries of news leads or scientific abstracts; ROUGE",
    head="causal-lm", columns=("document", "summary"),
    default_model="smollm2-135m", default_dataset="nyt-leads", generates=True, make_batches=make_batches,
    prepare_rows=with_aspect, describe_test=describe_test, evaluate=score, reference_rows=lead_sentence_row,
    paired_test=paired_test, main_metric=("rougeL", "ROUGE-L F1"),
    quality_columns=(Column("ROUGE-1", "rouge1"), Column("ROUGE-2", "rouge2"), Column("ROUGE-L", "rougeL"),
                     Column("+- s.e.", "rougeL_se"), Column("docs", "n", "count"),
                     # Only on data that names its domain terms (tutorlib.tasks.terminology):
                     Column("term recall", "term_recall"), Column("recall s.e.", "term_recall_se"),
                     Column("invented terms", "invented_terms", "count"), Column("invented rate", "invented_rate"),
                     Column("final loss", "final_loss")),
    budgets=BUDGETS, prefix_init_text=PREFIX_INIT_TEXT, legend=LEGEND,
    shortest_max_length=64))  # the prompt, a lead paragraph and a one-sentence summary need about this many
