"""How many documents to summarise at once: chosen from the model's sizes and the memory free now.

    >>> from tutorlib.loading.models import load_model
    >>> model, _ = load_model("tiny-llama")
    >>> generation_batch_size(model, max_length=256, free_bytes=8 * 2**30)
    32

Greedy generation of a batch is one forward pass per new token over every row at once, so a larger batch
amortises the per-token work: on SmolLM2 (2 CPU threads, 48 new tokens) batches of 16 took 0.75x the
time of batches of 8. With left padding and an attention mask the rows do not see each other, so the
summaries are the same at any batch size (``tests/test_generation_batch.py`` checks 16 against 8).

Memory per row, counted generously in fp32: the prompt's logits over the whole vocabulary (T x V; the
first forward pass may keep them all), the keys and values of every layer (2 x layers x kv_heads x
head_dim x T) and one layer's activations (T x (hidden + MLP width)); the logits dominate (SmolLM2 at 256
tokens: 61 MiB a row, 50 of them logits), though transformers' ``generate`` keeps only the last position's.
The batch may use half of the free memory by that count, rounded down to a power of two, between 1 and
:data:`MOST_ROWS`: SmolLM2 at 256 tokens gets 16 rows with 2 GiB available, 32 with 4 GiB.
"""

from __future__ import annotations

import psutil
import torch

from tutorlib.loading.architectures import sizes_of

MOST_ROWS = {"cpu": 32, "cuda": 64}  # beyond these, longer batches mostly add padding on a 2-core CPU
SHARE_OF_FREE_MEMORY = 0.5  # of a generous count: transformers keeps only the last position's logits
BYTES_PER_NUMBER = 4  # fp32


def bytes_per_row(config, max_length: int) -> int:
    """Generous memory one generated row needs (bytes), from a model's config: logits, keys/values, activations."""
    sizes = sizes_of(config)
    logits = max_length * sizes.vocab
    keys_values = 2 * sizes.layers * sizes.kv_heads * sizes.head_dim * max_length
    activations = max_length * (sizes.hidden + sizes.mlp_width)
    return BYTES_PER_NUMBER * (logits + keys_values + activations)


def free_memory_bytes(device: torch.device) -> int:
    """Bytes free now: the GPU's free memory for a CUDA device, else the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)


def _config_of(model):
    """The transformers config of a model, or of the model a method wraps (prefix, full fine-tuning)."""
    for candidate in (model, getattr(model, "model", None)):
        config = getattr(candidate, "config", None)
        if config is not None and hasattr(config, "vocab_size"):
            return config
    raise TypeError(f"Cannot find a transformers config on {type(model).__name__} (looked at .config and "
                    f".model.config); give the generation batch size yourself (budget eval_batch_size, "
                    f"`tutorlib compare --eval-batch-size N`).")


def generation_batch_size(model, max_length: int, device: str | torch.device | None = None,
                          free_bytes: int | None = None) -> int:
    """Rows per ``generate`` call for ``model`` (or a method wrapping it) with prompts plus new tokens of at
    most ``max_length`` tokens: a power of two that fits half of ``free_bytes`` (default: free memory
    on ``device``, default: the model's), at least 1, at most 32 on a CPU and 64 on a GPU."""
    if device is None:
        first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        device = first.device if first is not None else "cpu"
    device = torch.device(device)
    free = free_memory_bytes(device) if free_bytes is None else free_bytes
    fits = int(SHARE_OF_FREE_MEMORY * free // bytes_per_row(_config_of(model), max_length))
    most = MOST_ROWS["cuda" if device.type == "cuda" else "cpu"]
    rows = 1
    while rows * 2 <= min(fits, most):
        rows *= 2
    return rows
