"""Logits only where the loss reads them: a language model's vocabulary projection at the labelled positions.

A causal language model's training loss is the cross-entropy of the next token at every position whose
label is not -100. For summarisation most positions are the document (label -100) and only the summary
is predicted, yet by default the model projects *every* position onto the whole vocabulary:

    hidden (B, T, d)  @  output layer (d, vocab)  ->  logits (B, T, vocab)

For SmolLM2 (d = 576, vocab = 49,152) that projection is about a fifth of the forward pass, and the same
again twice in the backward pass. Keeping only the N positions that have a label gives the same loss and
the same gradients (the other positions never entered the loss) for a fraction of that work:

    hidden (B, T, d)  ->  hidden at the labelled positions (N, d)  ->  logits (N, vocab)

Hugging Face causal LMs take this as two arguments: ``logits_to_keep`` (a (B, T) boolean mask of the
positions to project) and ``shift_labels`` (N,) (each kept position's next token). The training loop adds
them when the model is one of the kit's wrapped causal LMs or a Hugging Face causal LM
(``TrainConfig(label_logits_only=False)`` switches it off).

    >>> labels = torch.tensor([[-100, -100, 7, 8]])      # (B, T): predict 7 and 8 only
    >>> keep, targets = label_positions(labels)
    >>> keep.tolist(), targets.tolist()                   # position t predicts the token at t + 1
    ([[False, True, True, False]], [7, 8])
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import nn

IGNORE_INDEX = -100  # a label that is not predicted (the prompt, the document, padding)


def label_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token labels (B, T) -> (keep (B, T) bool: positions whose next token is a label, targets (N,)).

    Position t predicts the token at t + 1, so the last position predicts nothing."""
    shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # (B, T): the label at t + 1
    keep = shifted != IGNORE_INDEX
    return keep, shifted[keep]


def projects_label_positions_only(model: nn.Module) -> bool:
    """Whether ``model(**batch, logits_to_keep=, shift_labels=)`` gives the loss over the labelled positions:
    one of the kit's wrapped causal LMs (they pass both to the Hugging Face model), or a Hugging Face causal LM
    whose forward takes ``logits_to_keep``. Any other module (a classifier, a model of your own) gets the batch
    as it is."""
    model = getattr(model, "module", model)  # DistributedDataParallel around it
    if getattr(model, "head", None) == "causal-lm":
        model = getattr(model, "model", None)  # the kit's wrappers keep the Hugging Face model here
    forward = getattr(model, "forward", None)
    return (forward is not None and hasattr(model, "get_output_embeddings")
            and "logits_to_keep" in inspect.signature(forward).parameters)


def with_label_positions(batch: Mapping) -> Mapping:
    """``batch`` with ``logits_to_keep`` and ``shift_labels`` added when its ``labels`` are next-token labels
    (B, T) of the same shape as ``input_ids``; otherwise ``batch`` unchanged."""
    labels, input_ids = batch.get("labels"), batch.get("input_ids")
    if not torch.is_tensor(labels) or labels.dim() != 2 or input_ids is None or labels.shape != input_ids.shape:
        return batch
    keep, targets = label_positions(labels)
    return {**batch, "logits_to_keep": keep, "shift_labels": targets}
