"""One frozen model, many prefixes: each row of a batch answers with its own task's or customer's prefix.

    >>> from tutorlib.loading.models import load_model
    >>> from tutorlib.methods.prefix.model import attach_prefix
    >>> from tutorlib.methods.prefix.serving import PrefixBank
    >>> model, tok = load_model("tiny-gpt2")
    >>> tuned = attach_prefix(model, prefix_length=5)
    >>> bank = PrefixBank(tuned)
    >>> bank.add("reviews", tuned.export_prefix())             # e.g. trained on movie reviews
    >>> bank.add("news", 2 * tuned.export_prefix()[:, :, :, :3])  # another task, another length (P=3)
    >>> batch = tok(["a film", "the vote"], padding=True, return_tensors="pt")
    >>> out = bank(["reviews", "news"], **batch)                # one forward pass, row 0 with "reviews"
    >>> tuple(out.logits.shape)
    (2, 8, 103)

Why this works (Li & Liang 2021, Sec. 8.2 "batching across users"): the model's weights are shared by
every row; a prefix only adds key/value columns to each row's own attention. Rows with different
prefixes therefore go through one forward pass, and the result equals running each row alone with its
own prefix (tests/test_serving.py proves it). Fine-tuned models cannot do this: every task has its own
copy of every weight, so a mixed batch needs one pass per model, and memory for every model.

Prefixes of different lengths share a batch by padding the shorter ones with hidden positions
(``prefix_mask`` = 0), which attention ignores exactly.
"""

from __future__ import annotations

import os

import torch

from tutorlib.methods import checkpoints
from tutorlib.methods.prefix.model import PrefixError, PrefixTunedModel, positions_from_mask


class PrefixBank:
    """Named prefixes for one frozen model; call it with a name per row to run a mixed batch.

    Args:
        tuned: the :class:`~tutorlib.methods.prefix.model.PrefixTunedModel` that serves every prefix (its frozen
            weights and its head are shared by all rows; its own trained prefix is not used unless
            added under a name).
    """

    def __init__(self, tuned: PrefixTunedModel):
        if not isinstance(tuned, PrefixTunedModel):
            raise PrefixError("PrefixBank needs a PrefixTunedModel "
                              "(tutorlib.methods.prefix.model.attach_prefix(model)), got "
                              f"{type(tuned).__name__}.")
        self.tuned = tuned
        self.prefixes: dict[str, torch.Tensor] = {}

    # ---------------------------------------------------------------- filling the bank
    def add(self, name: str, prefix) -> None:
        """Store a prefix under ``name``: a (layers, 2, kv_heads, P, head_dim) tensor, a trained
        PrefixTunedModel (its exported prefix), or a checkpoint folder saved by ``save_checkpoint``
        (only its prefix is used: every row shares the serving model's head)."""
        if isinstance(prefix, PrefixTunedModel):
            prefix = prefix.export_prefix()
        elif isinstance(prefix, (str, os.PathLike)):
            _, tensors = checkpoints.read_tensors(prefix, checkpoints.PREFIX_FILE, expect_method="prefix")
            prefix = tensors["prefix"]
        if not torch.is_tensor(prefix) or prefix.dim() != 5 or \
                tuple(prefix.shape) != self.tuned.shape.tensor_shape(prefix.shape[3]):
            got = tuple(prefix.shape) if torch.is_tensor(prefix) else type(prefix).__name__
            raise PrefixError(f"Prefix {name!r} has shape {got}; this model needs "
                              f"{self.tuned.shape.tensor_shape(1)[:3]} + (P, {self.tuned.shape.head_dim}) = "
                              "(layers, 2, "
                              f"kv_heads, P, head_dim): was it trained on another model?")
        self.prefixes[name] = prefix.detach()

    def remove(self, name: str) -> None:
        """Forget one prefix (a customer leaves): nothing else changes."""
        self._check([name])
        del self.prefixes[name]

    @property
    def names(self) -> list[str]:
        return list(self.prefixes)

    def __len__(self) -> int:
        return len(self.prefixes)

    def __contains__(self, name: str) -> bool:
        return name in self.prefixes

    def stored_bytes(self) -> int:
        """Bytes of all stored prefixes (what serving N tasks costs beyond the one shared model)."""
        return sum(p.numel() * p.element_size() for p in self.prefixes.values())

    # ---------------------------------------------------------------- a mixed batch
    def _check(self, names) -> None:
        unknown = [n for n in names if n not in self.prefixes]
        if unknown:
            raise KeyError(f"No prefix named {unknown[0]!r} in the bank; it holds {self.names or 'nothing yet'}. "
                           f"Add it first: bank.add({unknown[0]!r}, prefix).")

    def batch_prefix(self, names: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prefixes of a batch, one row per name, stacked.

        Returns:
            prefix: (B, layers, 2, kv_heads, P_max, head_dim), shorter prefixes padded with zeros at the end;
            prefix_mask: (B, P_max) bool, False on the padding; None when every prefix has the same length.
        """
        self._check(names)
        rows = [self.prefixes[n] for n in names]
        longest = max(p.shape[3] for p in rows)
        padded = [torch.nn.functional.pad(p, (0, 0, 0, longest - p.shape[3])) for p in rows]  # pad the P axis
        prefix = torch.stack(padded)  # (B, layers, 2, kv_heads, P_max, head_dim)
        if all(p.shape[3] == longest for p in rows):
            return prefix, None
        mask = torch.stack([torch.arange(longest) < p.shape[3] for p in rows])  # (B, P_max)
        return prefix, mask

    def _lengths(self, names) -> torch.Tensor:
        return torch.tensor([self.prefixes[n].shape[3] for n in names])  # (B,)

    def __call__(self, names: list[str], input_ids, attention_mask=None, **kwargs):
        """One forward pass in which row i uses the prefix named ``names[i]``.

        Args:
            names: B names, one per row (a name may repeat).
            input_ids, attention_mask: (B, T), as for the tuned model; other keywords pass through.
        Returns:
            The model's output (``.logits`` (B, T, vocab) or (B, labels)), equal to running each row alone.
        """
        if len(names) != input_ids.shape[0]:
            raise ValueError(f"{len(names)} names for a batch of {input_ids.shape[0]} rows: give one name per row.")
        prefix, mask = self.batch_prefix(names)
        device = input_ids.device
        if self.tuned.positions_after_prefix and "position_ids" not in kwargs:  # tokens start after their own P
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            kwargs["position_ids"] = positions_from_mask(attention_mask) + self._lengths(names).to(device)[:, None]
        return self.tuned(input_ids, attention_mask, prefix=prefix.to(device),
                          prefix_mask=None if mask is None else mask.to(device), **kwargs)

    def generate(self, names: list[str], input_ids, attention_mask=None, **generate_kwargs):
        """``tuned.generate`` with row i continued under the prefix named ``names[i]`` (left padding).
        Returns (B, T + new) token ids."""
        if len(names) != input_ids.shape[0]:
            raise ValueError(f"{len(names)} names for a batch of {input_ids.shape[0]} rows: give one name per row.")
        prefix, mask = self.batch_prefix(names)
        if self.tuned.positions_after_prefix and mask is not None:
            raise PrefixError("This model counts positions after the prefix (positions_after_prefix=True), so "
                              "rows with prefixes of different lengths would need different positions while "
                              "generating; generate each length group separately.")
        device = input_ids.device
        return self.tuned.generate(input_ids, attention_mask, prefix=prefix.to(device),
                                   prefix_mask=None if mask is None else mask.to(device), **generate_kwargs)
