"""Batching shared by every task: group items of similar length, pad them into (B, T) tensors.

    >>> from tutorlib.tasks.batching import length_grouped_batches, pad_right
    >>> length_grouped_batches([5, 1, 4, 2], batch_size=2, shuffle=False)
    [[1, 3], [2, 0]]
    >>> ids, mask = pad_right([[7, 8, 9], [5]], pad_id=0)
    >>> ids.tolist(), mask.tolist()
    ([[7, 8, 9], [5, 0, 0]], [[1, 1, 1], [1, 0, 0]])

Training pads on the right (the text first, padding after); generation pads on the left, so that
every prompt ends in the last column and the next token of every row is generated in the same place.
"""

from __future__ import annotations

import numpy as np
import torch


def length_grouped_batches(lengths: list[int], batch_size: int, shuffle: bool, seed: int = 0,
                           window: int = 50) -> list[list[int]]:
    """Split item indices into batches of similar length, so a batch wastes little on padding.

    With ``shuffle``: shuffle all indices (seeded), sort each window of ``window * batch_size``
    items by length, cut it into batches, then shuffle the batch order. Items stay random across
    epochs (seed), yet neighbours in a batch have similar lengths. Without ``shuffle`` (for
    evaluation): all items sorted by length, the least padding possible. Every index appears in
    exactly one batch; the last batch may be smaller.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    chunk = window * batch_size if shuffle else max(len(lengths), 1)
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort([lengths[i] for i in part], kind="stable")]
        batches += [part[i:i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token lists on the right -> input_ids (B, T) and attention_mask (B, T), 1 = real token."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)  # (B, T)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids, mask


def pad_left(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad on the left -> input_ids (B, T), attention_mask (B, T): every prompt then ends at the
    last column, so the next token of every row is generated in the same place."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)  # (B, T)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask
