"""Logits only at the labelled positions (training/label_logits.py): the same loss and the same training as
projecting every position, for each trained method on both causal-LM architectures; other models untouched."""

import pytest
import torch

from tutorlib import attach_lora, attach_prefix, attach_prompt, prepare_full_finetuning, prepare_head_only
from tutorlib.loading.models import load_model
from tutorlib.training.label_logits import label_positions, projects_label_positions_only, with_label_positions
from tutorlib.training.loop import TrainConfig, train

METHODS = {"full": prepare_full_finetuning, "prefix": lambda m: attach_prefix(m, prefix_length=3),
           "lora": attach_lora, "prompt": lambda m: attach_prompt(m, prompt_length=3)}


def summary_batch(tok):
    """Two rows right-padded, labels only on each row's last tokens (a document, then its summary)."""
    batch = dict(tok(["a long document, then its summary", "short text then"], return_tensors="pt", padding=True))
    labels = batch["input_ids"].clone()
    labels[:, :-4] = -100  # the "document": not predicted
    labels[batch["attention_mask"] == 0] = -100
    return {**batch, "labels": labels}


def test_each_position_predicts_the_next_label():
    labels = torch.tensor([[-100, 5, 6, -100], [-100, -100, -100, 9]])
    keep, targets = label_positions(labels)
    assert keep.tolist() == [[True, True, False, False], [False, False, True, False]]
    assert targets.tolist() == [5, 6, 9]


@pytest.mark.parametrize("model_name", ["tiny-gpt2", "tiny-llama"])
@pytest.mark.parametrize("method", list(METHODS))
def test_the_same_loss_and_gradients_as_every_position(model_name, method):
    torch.manual_seed(0)
    model, tok = load_model(model_name)
    tok.pad_token = tok.pad_token or tok.eos_token
    tuned = METHODS[method](model)
    assert projects_label_positions_only(tuned)
    batch = summary_batch(tok)
    results = []
    for b in (batch, with_label_positions(batch)):
        tuned.zero_grad()
        out = tuned(**b)
        out.loss.backward()
        results.append((out.loss.detach(), [p.grad.clone() for p in tuned.parameters() if p.requires_grad]))
    (every, every_grads), (labelled, labelled_grads) = results
    assert torch.allclose(every, labelled, atol=1e-6), (every, labelled)
    for a, b in zip(every_grads, labelled_grads):
        assert torch.allclose(a, b, atol=1e-6)
    with torch.no_grad():  # the logits kept are the labelled positions' rows of the full logits
        full_logits = tuned(**batch).logits
        kept = tuned(**with_label_positions(batch)).logits
    keep, _ = label_positions(batch["labels"])
    assert kept.shape == (int(keep.sum()), full_logits.shape[-1])
    assert torch.allclose(kept, full_logits[keep], atol=1e-5)


def test_train_takes_the_same_steps_either_way():
    histories = []
    for only in (False, True):
        model, tok = load_model("tiny-llama")
        tuned = attach_prefix(model, prefix_length=3)
        config = TrainConfig(steps=3, lr=1e-2, device="cpu", label_logits_only=only)
        histories.append(train(tuned, [summary_batch(tok)], config, progress=False).loss)
    assert histories[0] == pytest.approx(histories[1], abs=1e-5)


def test_other_models_and_batches_are_left_as_they_are():
    classifier, tok = load_model("tiny-bert")
    assert not projects_label_positions_only(prepare_head_only(classifier))
    assert not projects_label_positions_only(torch.nn.Linear(2, 2))  # a module of your own
    plain, _ = load_model("tiny-gpt2")
    assert projects_label_positions_only(plain)  # a Hugging Face causal LM as it is
    class_batch = {"input_ids": torch.ones(2, 5, dtype=torch.long), "labels": torch.tensor([0, 1])}
    assert with_label_positions(class_batch) is class_batch
