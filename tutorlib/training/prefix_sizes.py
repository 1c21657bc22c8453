"""How big is a prefix, really? The kit's formula on the configs of well-known models, computed offline.

    >>> rows = prefix_size_table(prefix_lengths=(1, 10))
    >>> [r["prefix_params"] for r in rows if r["model"] == "GPT-2 small"]
    [18432, 184320]

The source text says prefix tuning "typically introduces only a few thousand trainable parameters",
against "hundreds of millions or billions" for full fine-tuning. The size of a prefix is
P x layers x 2 (key, value) x kv_heads x head_dim (:func:`tutorlib.training.parameters.prefix_parameter_formula`),
so it grows with the model's depth and width: the table shows for which models and prefix lengths
"a few thousand" is true.

The configs below are the published ones (each model's ``config.json`` on the Hugging Face hub), written
here as numbers so nothing is downloaded. Total parameters are counted by building each model on
PyTorch's ``meta`` device: shapes only, no memory, no weights.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, BertConfig, GPT2Config, LlamaConfig

from tutorlib.training.parameters import prefix_parameter_formula

# name -> the config as published (only the fields that set the shapes; the rest are the defaults).
KNOWN_CONFIGS = {
    "MiniLM-L6 (minilm-l6)": BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                                        num_attention_heads=12, intermediate_size=1536),
    "SmolLM2-135M (smollm2-135m)": LlamaConfig(vocab_size=49152, hidden_size=576, num_hidden_layers=30,
                                               num_attention_heads=9, num_key_value_heads=3,
                                               intermediate_size=1536, tie_word_embeddings=True,
                                               max_position_embeddings=8192),
    "BERT-base": BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072),
    "GPT-2 small": GPT2Config(n_embd=768, n_layer=12, n_head=12),
    "GPT-2 medium": GPT2Config(n_embd=1024, n_layer=24, n_head=16),
    "GPT-2 large": GPT2Config(n_embd=1280, n_layer=36, n_head=20),
    "Llama-2-7B": LlamaConfig(vocab_size=32000, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                              num_key_value_heads=32, intermediate_size=11008, tie_word_embeddings=False),
}

# "A few thousand": the words read literally, at most 9,999 parameters.
FEW_THOUSAND = 10_000


def total_parameters(config) -> int:
    """Parameters of the bare model a config describes (no task head), counted on the meta device."""
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied weights are one parameter, counted once


def prefix_size_table(prefix_lengths=(1, 10, 200), configs: dict | None = None) -> list[dict]:
    """One row per model and prefix length P.

    Returns dicts: model, prefix_length, prefix_params, total_params, fraction (prefix / total),
    few_thousand (prefix_params < 10,000) and times_few_thousand (prefix_params / 5,000, "a few
    thousand" taken as 5,000: how far off the phrase is).
    """
    bad = [p for p in prefix_lengths if isinstance(p, bool) or not isinstance(p, int) or p < 1]
    if bad:
        raise ValueError(f"Prefix lengths are whole numbers >= 1 (got {bad[0]!r}); the paper used 1-200.")
    rows = []
    for name, config in (configs or KNOWN_CONFIGS).items():
        total = total_parameters(config)
        for p in prefix_lengths:
            size = prefix_parameter_formula(config, p)
            rows.append({"model": name, "prefix_length": p, "prefix_params": size, "total_params": total,
                         "fraction": size / total, "few_thousand": size < FEW_THOUSAND,
                         "times_few_thousand": size / 5_000})
    return rows
