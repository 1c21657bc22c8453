"""Every per-family fact the kit uses, in one table: GPT-2, BERT and Llama.

    >>> from transformers import LlamaConfig
    >>> from tutorlib.loading.architectures import architecture_of, sizes_of
    >>> config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    >>> architecture_of(config).kind
    'decoder'
    >>> sizes_of(config).kv_heads, sizes_of(config).head_dim
    (2, 16)

A model family differs from another in a few facts: whether it reads the whole text at once
(an *encoder*, which classifies) or left to right (a *decoder*, which can generate), how wide and how
many its feed-forward matrices are, and the names Hugging Face gives its parameters and layers. The
prefix shapes, the FLOP count, the parameter groups, LoRA's default layers, the cost widget and the model
loader read those facts from here, so supporting a new family means adding one :class:`Architecture`
entry (and the attention adapter in :mod:`tutorlib.methods.prefix.attention`).

This module is also the only place that reads transformers' config attributes by name
(``num_key_value_heads``, ``head_dim``, ``_name_or_path``, ...): a transformers upgrade that renames
one is fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tutorlib.registry import Registry


@dataclass(frozen=True)
class Architecture:
    """What the kit knows about one model family (``config.model_type``).

    ``parameter_names``: group -> regular expression found in that family's parameter names (see
    :mod:`tutorlib.training.parameter_groups`); ``layer_names``: the expression whose group 1 is a
    transformer block's index. ``lora_targets``: the names (last part of the path) of the linear layers LoRA
    adapts by default, the attention query and value projections (Hu et al. 2021, section 7.1; see
    :mod:`tutorlib.methods.lora`).
    """

    name: str  # config.model_type: "gpt2" | "bert" | "llama"
    title: str  # for people: the family and the kit's models of it
    kind: str  # "encoder" (reads the whole text, classifies) | "decoder" (left to right, generates)
    mlp_matrices: int  # feed-forward weight matrices per block: 2 (up, down) or 3 (gate, up, down)
    parameter_names: dict[str, str]
    layer_names: str
    config_class: str  # the transformers config class, for the kit's tiny random model of the family
    tiny_sizes: dict  # that tiny model's config: 2 layers, 64 wide, 4 heads, 128 positions
    lora_targets: tuple[str, ...]  # the query and value projections' names


ARCHITECTURES: Registry[Architecture] = Registry("model family", {name: __name__ for name in ("gpt2", "bert", "llama")})
"""Every model family, by ``config.model_type`` (see :mod:`tutorlib.registry`); registered just below."""

for _family in [
    Architecture(
        "gpt2", "GPT-2 family (gpt2, distilgpt2, tiny-gpt2)", "decoder", 2,
        parameter_names={"norms": r"\bln_", "attention": r"\battn\.", "mlp": r"\bmlp\.",
                         "embeddings": r"\bwte\b|\bwpe\b", "head": r"(^|\.)lm_head\."},
        layer_names=r"\.h\.(\d+)\.", config_class="GPT2Config",
        tiny_sizes=dict(n_positions=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=2, eos_token_id=3),
        lora_targets=("c_attn",)),  # query, key and value in one fused matrix: LoRA adapts all three, as PEFT does
    Architecture(
        "bert", "BERT family (bert-base-uncased, all-MiniLM-L6-v2 'minilm-l6', tiny-bert)", "encoder", 2,
        parameter_names={"norms": r"LayerNorm", "attention": r"\battention\.",
                         "mlp": r"\bintermediate\.|\blayer\.\d+\.output\.", "embeddings": r"\bembeddings\.",
                         "head": r"(^|\.)(classifier|pooler)\."},
        layer_names=r"\.layer\.(\d+)\.", config_class="BertConfig",
        tiny_sizes=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=128),
        lora_targets=("query", "value")),
    Architecture(
        "llama", "Llama family (SmolLM2 'smollm2-135m', tiny-llama)", "decoder", 3,
        parameter_names={"norms": r"layernorm|(^|\.)norm\.", "attention": r"\bself_attn\.", "mlp": r"\bmlp\.",
                         "embeddings": r"\bembed_tokens\.", "head": r"(^|\.)(lm_head|score)\."},
        layer_names=r"\.layers\.(\d+)\.", config_class="LlamaConfig",
        tiny_sizes=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=2, eos_token_id=3),
        lora_targets=("q_proj", "v_proj")),
]:
    ARCHITECTURES.register(_family)


class UnsupportedModelError(ValueError):
    """A model whose family (``config.model_type``) is not in :data:`ARCHITECTURES`."""


def supported_models() -> str:
    """The supported families, one per line, for error messages."""
    return "\n".join(f"  {a.name:<6} {a.title}" for a in ARCHITECTURES.values())


def architecture_of(config_or_name) -> Architecture:
    """The :class:`Architecture` of a Hugging Face config (or of a ``model_type`` string).

    Raises:
        UnsupportedModelError: a family the kit does not know; the message lists those it does.
    """
    name = config_or_name if isinstance(config_or_name, str) else getattr(config_or_name, "model_type", None)
    family = ARCHITECTURES.find(name) if isinstance(name, str) else None
    if family is None:
        raise UnsupportedModelError(
            f"The kit supports these model families:\n{supported_models()}\n"
            f"This model's config says model_type={name!r}. Load one of the models above "
            f"(tutorlib.load_model), or use full fine-tuning, which trains any model.")
    return family


def is_encoder(config_or_name) -> bool:
    """True for an encoder (BERT family: a config or its ``model_type``): it classifies, it cannot generate."""
    return architecture_of(config_or_name).kind == "encoder"


@dataclass(frozen=True)
class ModelSizes:
    """The sizes of a transformer, read once from its config."""

    architecture: str  # config.model_type
    layers: int  # transformer blocks, one attention layer each
    hidden: int  # d, the model width
    heads: int  # query heads
    kv_heads: int  # key/value heads (fewer than query heads under grouped-query attention)
    head_dim: int  # size of one key, query or value vector
    mlp_width: int  # the feed-forward layer's inner size
    mlp_matrices: int  # 2 (up, down) or 3 (gate, up, down)
    vocab: int
    max_positions: int  # position embeddings (or RoPE's trained range)


def sizes_of(config) -> ModelSizes:
    """Read :class:`ModelSizes` from a GPT-2, BERT or Llama-family config (any transformers version
    the kit pins: GPT-2's own names ``n_layer``/``n_embd`` are mapped by its config class)."""
    family = architecture_of(config)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    mlp_width = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * config.hidden_size
    return ModelSizes(architecture=family.name, layers=config.num_hidden_layers, hidden=config.hidden_size,
                      heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                      head_dim=head_dim, mlp_width=mlp_width, mlp_matrices=family.mlp_matrices,
                      vocab=config.vocab_size, max_positions=config.max_position_embeddings)


def model_name_of(config) -> str:
    """The name a model was loaded by (``load_model``'s name or a hub id); "" when unknown.

    transformers keeps it in a private config attribute; this function is the kit's one reader of it.
    """
    return getattr(config, "_name_or_path", "") or ""


def set_model_name(config, name: str) -> None:
    """Record ``name`` in ``config`` so that checkpoints reload the model by the kit's name."""
    config._name_or_path = name
