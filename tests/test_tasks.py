"""The two tasks: metrics on hand-made cases, batches, generation, evaluation on tiny models."""

import math

import numpy as np
import pytest
import torch
from datasets import Dataset

from tutorlib.loading.models import load_model
from tutorlib.tasks import batching, sentiment, summarise
from tutorlib.tasks.metrics import (
    accuracy,
    expected_calibration_error,
    macro_f1,
    mcnemar,
    pearson,
    wilson_interval,
)

# ----------------------------------------------------------------------------- metrics


def test_macro_f1_on_a_hand_made_confusion():
    labels = [1, 1, 1, 1, 0, 0]
    preds = [1, 1, 1, 0, 0, 1]
    # class 1: TP 3, FP 1, FN 1 -> 6/8; class 0: TP 1, FP 1, FN 1 -> 2/4
    assert macro_f1(preds, labels) == pytest.approx((0.75 + 0.5) / 2)
    # never predicting class 0 still counts class 0, with F1 = 0
    assert macro_f1([1, 1, 1, 1], [1, 1, 0, 0]) == pytest.approx((2 / 3 + 0) / 2)
    assert accuracy(preds, labels) == pytest.approx(4 / 6)


def test_ece_is_zero_for_a_perfect_confident_classifier():
    assert expected_calibration_error([1.0, 1.0, 1.0], [1, 1, 1]) == 0.0


def test_ece_on_a_hand_made_case():
    conf = [0.95, 0.95, 0.65, 0.65, 0.65, 0.55]
    right = [1, 0, 1, 1, 0, 1]
    # bins (0.9,1]: 2/6*|0.5-0.95|, (0.6,0.7]: 3/6*|2/3-0.65|, (0.5,0.6]: 1/6*|1-0.55|
    expected = 2 / 6 * 0.45 + 3 / 6 * (2 / 3 - 0.65) + 1 / 6 * 0.45
    assert expected_calibration_error(conf, right) == pytest.approx(expected)


def test_ece_bins_are_closed_on_the_right():
    # 0.7 belongs to (0.6, 0.7], not to (0.7, 0.8]: two bins of one item each
    assert expected_calibration_error([0.7, 0.8], [1, 0]) == pytest.approx(0.5 * 0.3 + 0.5 * 0.8)
    with pytest.raises(ValueError, match="logits"):
        expected_calibration_error([2.5], [1])


def test_mcnemar_exact_p_on_a_hand_made_table():
    # A right / B wrong on 8 items, A wrong / B right on 2, both right 3, both wrong 2
    labels = np.ones(15, dtype=int)
    a = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 2)
    b = np.array([0] * 8 + [1] * 2 + [1] * 3 + [0] * 2)
    # two-sided exact: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar(a, b, labels) == pytest.approx(112 / 1024)
    assert mcnemar(b, a, labels) == pytest.approx(112 / 1024)
    assert mcnemar(a, a, labels) == 1.0  # no discordant items


def test_wilson_interval_known_values():
    low, high = wilson_interval(0, 10)  # upper end is z^2 / (n + z^2) when nothing succeeds
    assert low == 0.0 and high == pytest.approx(1.96**2 / (10 + 1.96**2))
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(1 - high) and low < 0.5 < high
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_pearson():
    x = np.array([0.1, 0.4, 0.5, 0.9])
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert math.isnan(pearson(x, np.ones(4)))


# ----------------------------------------------------------------------------- sentiment


def _snippets(n=12, seed=0):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "dull", "great", "plot", "awful", "fun"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 9)))) + f" #{i}" for i in range(n)]
    stds = rng.uniform(0.3, 1.6, size=n).round(3).tolist()
    return Dataset.from_dict({
        "id": [f"m{i}" for i in range(n)], "text": texts, "label": [i % 2 for i in range(n)],
        "rater_std": stds, "frac_positive": rng.uniform(0, 1, size=n).tolist(),
    })


def test_ambiguity_split_counts_and_threshold_boundary():
    t = sentiment.AMBIGUITY_STD_THRESHOLD
    ds = Dataset.from_dict({"text": list("abcdef"), "label": [0] * 6,
                            "rater_std": [0.5, t, t + 0.01, 1.5, 0.0, t - 0.01]})
    clear, ambiguous = sentiment.ambiguity_split(ds)
    assert clear == [0, 1, 4, 5]  # exactly at the threshold counts as clear
    assert ambiguous == [2, 3]
    assert sentiment.add_ambiguity_column(ds)["is_ambiguous"] == [False, False, True, True, False, False]
    with pytest.raises(KeyError, match="rater"):
        sentiment.ambiguity_split(ds.remove_columns("rater_std"))


def test_sentiment_batches_are_seeded_and_cover_every_example_once():
    _, tok = load_model("tiny-bert")
    ds = _snippets(23)
    first = sentiment.make_batches(ds, tok, batch_size=4, shuffle=True, seed=3)
    again = sentiment.make_batches(ds, tok, batch_size=4, shuffle=True, seed=3)
    other = sentiment.make_batches(ds, tok, batch_size=4, shuffle=True, seed=4)
    assert len(first) == 6 and all(set(b) == {"input_ids", "attention_mask", "labels"} for b in first)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(first, again) for k in x)
    texts = [t for b in first for t in tok.batch_decode(b["input_ids"], skip_special_tokens=True)]
    assert sorted(texts) == sorted(ds["text"])  # each snippet exactly once
    assert texts != [t for b in other for t in tok.batch_decode(b["input_ids"], skip_special_tokens=True)]


def test_length_grouping_reduces_padding():
    lengths = np.random.default_rng(0).integers(5, 100, size=400).tolist()

    def padding(batches):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)

    grouped = batching.length_grouped_batches(lengths, 16, shuffle=True, seed=0)
    plain = [list(range(i, i + 16)) for i in range(0, 400, 16)]
    assert sorted(i for b in grouped for i in b) == list(range(400))
    assert padding(grouped) < 0.2 * padding(plain)


def test_evaluate_sentiment_on_a_tiny_classifier():
    torch.manual_seed(0)
    model, tok = load_model("tiny-bert")
    ds = _snippets(12)
    report = sentiment.evaluate_sentiment(model, ds, tok, batch_size=5)
    preds = report["predictions"]
    assert [p["id"] for p in preds] == ds["id"]  # dataset order, whatever the batching
    assert report["n"] == 12 and report["clear_n"] + report["ambiguous_n"] == 12
    assert report["accuracy"] == pytest.approx(np.mean([p["pred"] == p["label"] for p in preds]))
    assert report["accuracy_ci95"][0] <= report["accuracy"] <= report["accuracy_ci95"][1]
    assert 0 <= report["ece"] <= 1 and -1 <= report["rater_pearson"] <= 1
    assert sum(p["is_ambiguous"] for p in preds) == report["ambiguous_n"]
    # the probabilities do not depend on the batching (indices map back to the right rows)
    one_by_one = sentiment.predict_positive(model, ds, tok, batch_size=1)
    assert np.allclose(one_by_one, [p["prob_positive"] for p in preds], atol=1e-5)
    assert not model.training


def test_evaluate_sentiment_without_raters():
    model, tok = load_model("tiny-bert")
    ds = _snippets(6).remove_columns(["rater_std", "frac_positive"])
    report = sentiment.evaluate_sentiment(model, ds, tok)
    assert report["n"] == 6 and report["clear_accuracy"] is None and report["rater_mae"] is None


def test_sentiment_batches_train_a_classifier():
    model, tok = load_model("tiny-bert")
    batch = sentiment.make_batches(_snippets(8), tok, batch_size=8)[0]
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)


# ----------------------------------------------------------------------------- summarisation


def _articles():
    return Dataset.from_dict({
        "id": ["a1", "a2", "a3"],
        "document": ["The council met on Monday. It voted to close the old bridge.",
                     "Rain fell for a week.",
                     "Scientists found water on a distant moon. The find surprised many."],
        "summary": ["Bridge to close.", "A wet week.", "Water found on a moon."],
    })


def test_summary_batches_mask_all_but_the_summary():
    _, tok = load_model("tiny-gpt2")
    ds = _articles()
    batches = summarise.make_batches(ds, tok, batch_size=2, max_length=128, shuffle=True, seed=1)
    seen = []
    for b in batches:
        assert b["labels"].shape == b["input_ids"].shape == b["attention_mask"].shape
        assert (b["labels"][b["attention_mask"] == 0] == -100).all()  # no loss on padding
        for ids, labels in zip(b["input_ids"], b["labels"]):
            kept = ids[labels != -100].tolist()
            assert kept[-1] == tok.eos_token_id  # the model learns to stop
            seen.append(tok.decode(kept[:-1]))
            assert torch.equal(ids[labels != -100], labels[labels != -100])
    assert sorted(seen) == sorted(" " + s for s in ds["summary"])


def test_truncation_cuts_the_document_and_keeps_the_summary():
    _, tok = load_model("tiny-gpt2")
    document = "Long story. " * 40  # 480 characters: far more than 64 tokens
    ids, labels = summarise.encode_example(tok, document, "Short.", max_length=64)
    assert len(ids) == len(labels) == 64
    assert tok.decode([i for i, label in zip(ids, labels) if label != -100]) == " Short.<eos>"
    prompt = [i for i, label in zip(ids, labels) if label == -100]
    assert tok.decode(prompt).startswith("Article: Long story. Long")
    tail = tok(summarise.PROMPT_TAIL, add_special_tokens=False)["input_ids"]
    assert prompt[-len(tail):] == tail  # the prompt still ends with "\nSummary:"
    with pytest.warns(UserWarning, match="does not fit"):  # only a summary too long on its own is cut
        ids, labels = summarise.encode_example(tok, "Short doc.", "word " * 30, max_length=64)
    head = tok(summarise.PROMPT_HEAD)["input_ids"]
    room_for_summary = 64 - len(head) - len(tail) - summarise.MIN_DOCUMENT_TOKENS
    assert len(ids) <= 64 and sum(label != -100 for label in labels) == room_for_summary


def test_loss_on_summary_batches_is_finite():
    model, tok = load_model("tiny-llama")
    batch = summarise.make_batches(_articles(), tok, batch_size=3, max_length=128)[0]
    assert torch.isfinite(model(**batch).loss)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_batched_generation_with_left_padding_matches_one_by_one(name):
    model, tok = load_model(name)
    docs = ["Short one.", "A much longer document about a bridge, a council and a vote.", "Mid length text."]
    batched = summarise.generate_summaries(model, tok, docs, max_new_tokens=8, batch_size=3, max_length=128)
    single = [summarise.generate_summaries(model, tok, [d], max_new_tokens=8, batch_size=1, max_length=128)[0]
              for d in docs]
    assert batched == single
    assert any(s for s in batched)  # the comparison is not between empty strings


class _ByteTokenizer:
    """Just enough of a tokenizer for the stop rule: one id per character, eos = 0."""

    eos_token_id = 0

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids if i != 0)


def test_generation_stops_at_newline_and_eos():
    tok = _ByteTokenizer()
    assert summarise._first_line(tok, [ord(c) for c in " Bridge shut.\nArticle: more"]) == "Bridge shut."
    assert summarise._first_line(tok, [ord(c) for c in " A wet week."] + [0, 66, 67]) == "A wet week."
    assert summarise._first_line(tok, [ord(c) for c in "\n\n Late start.\nMore"]) == "Late start."


def test_rouge_identical_is_one_and_disjoint_is_zero():
    same = summarise.rouge_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    apart = summarise.rouge_scores(["dogs bark loudly"], ["the cat sat on the mat"])
    assert apart == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    both = summarise.rouge_scores(["a b c", "x y"], ["a b c", "p q"], per_item=True)
    assert both["rouge1"] == pytest.approx(0.5) and len(both["items"]) == 2


def test_lead_baseline():
    ds = Dataset.from_dict({"document": ["Rain fell all week. Roads closed.", "Hi! There."],
                            "summary": ["Rain fell all week.", "Bye."]})
    assert summarise.lead_sentence("Rain fell all week. Roads closed.") == "Rain fell all week."
    scores = summarise.lead_baseline(ds)
    assert scores["rouge1"] == pytest.approx(0.5) and scores["n"] == 2


def test_evaluate_summaries_on_a_tiny_model():
    model, tok = load_model("tiny-gpt2")
    report = summarise.evaluate_summaries(model, tok, _articles(), max_new_tokens=6, batch_size=2,
                                          max_length=128, n_examples=2)
    assert report["n"] == 3 and len(report["examples"]) == 2 and len(report["predictions"]) == 3
    assert [p["id"] for p in report["predictions"]] == ["a1", "a2", "a3"]
    assert all(0 <= report[k] <= 1 for k in ("rouge1", "rouge2", "rougeL"))


# ----------------------------------------------------------------------------- real data


@pytest.mark.real
def test_threshold_splits_the_real_ratings_near_the_median():
    import tarfile

    from tutorlib.loading import assets

    path = assets.extract("vader", "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
    with tarfile.open(path) as tar:
        raw = tar.extractfile("hutto_ICWSM_2014/movieReviewSnippets_anonDataRatings.txt").read()
    stds = np.array([float(line.split("\t")[2]) for line in raw.decode("latin-1").splitlines() if line.strip()])
    share = np.mean(stds > sentiment.AMBIGUITY_STD_THRESHOLD)
    assert len(stds) == 10605 and 0.45 < share < 0.55  # two halves of about the same size
    # the file has 5 decimals: no snippet sits exactly on the line, so rounding cannot move one
    assert np.min(np.abs(stds - sentiment.AMBIGUITY_STD_THRESHOLD)) > 1e-5
