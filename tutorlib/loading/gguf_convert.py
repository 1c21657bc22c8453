"""From a quantised GGUF file to an ordinary fp32 Hugging Face folder, once.

SmolLM2-135M reaches the kit as ``SmolLM2-135M-Instruct.Q4_1.gguf``: the llama.cpp format, with
every weight matrix stored in 4 bits (blocks of 32 numbers share one fp16 scale and one minimum).
transformers can read it (``from_pretrained(folder, gguf_file=...)``, with the ``gguf`` package),
but it must *dequantise* every block back to float32 first, which takes tens of seconds. So the kit
does that once and saves the result as a normal folder (``config.json``, ``model.safetensors``,
tokenizer files) that later loads in about a second::

    >>> from tutorlib.loading.gguf_convert import convert_gguf
    >>> folder = convert_gguf(gguf_path, cache / "converted" / "smollm2-135m", stamp="sha256 ...")  # doctest: +SKIP

Note: the weights you get are the 4-bit values written back as fp32 (513 MiB), not the original
bf16 checkpoint; they are very close, and the kit treats them as *the* SmolLM2-135M.

Crash safety: everything is written into a hidden ``.part`` folder beside the target
(:func:`tutorlib.files.atomic_folder`), a ``CONVERTED`` marker is written last, and only then is the
folder renamed into place. A folder without the
right marker is never trusted: it is deleted and the conversion runs again.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch

from tutorlib.files import atomic_folder, remove_abandoned_parts

MARKER = "CONVERTED"  # written last: its presence (with the right stamp) means "complete"


def is_converted(out_dir: Path, stamp: str) -> bool:
    """True when ``out_dir`` holds a complete conversion of the source described by ``stamp``."""
    marker = Path(out_dir) / MARKER
    return marker.is_file() and marker.read_text() == stamp


def convert_gguf(gguf_path: Path, out_dir: Path, *, stamp: str, max_length: int | None = None) -> Path:
    """Dequantise ``gguf_path`` into an fp32 Hugging Face folder at ``out_dir`` (atomically); return it.

    Args:
        gguf_path: the ``.gguf`` file (a causal LM that transformers' GGUF reader supports).
        out_dir: the folder to create; skipped if it already holds a conversion with ``stamp``.
        stamp: text that identifies the source (e.g. its sha256); a different stamp re-converts.
        max_length: the tokenizer's ``model_max_length`` (GGUF files leave it unset: ~1e30).

    Peak memory is about 1.1 GiB (the dequantised weights plus the reader's buffers).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if is_converted(out_dir, stamp):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_parts(out_dir)

    print(f"tutorlib: converting {gguf_path.name} to fp32 safetensors, once "
          f"(30-60 s on a laptop CPU; later loads take ~1 s) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with atomic_folder(out_dir) as part:  # replaces a stale or incomplete earlier attempt
        quantised = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
        model = _plain_copy(quantised)
        del quantised
        model.save_pretrained(part)
        del model
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        if max_length is not None:
            tok.model_max_length = max_length
        tok.save_pretrained(part)
        for f in part.iterdir():  # safetensors writes 0600; a shared (workshop) cache must be readable
            f.chmod(0o644)
        (part / MARKER).write_text(stamp)  # last: a folder without it is incomplete
    print(f"tutorlib: converted in {time.perf_counter() - start:.0f} s -> {out_dir}", file=sys.stderr)
    return out_dir


def _plain_copy(quantised):
    """The same weights in a fresh model without the GGUF flag, which ``save_pretrained`` refuses.

    The dequantised model remembers it came from a GGUF (``config.quantization_config``) and
    transformers will not serialise such a model. A fresh model of the same class, built on the
    "meta" device (no memory, no random init), takes the tensors over without copying them.
    """
    config = copy.deepcopy(quantised.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = type(quantised)(config)
    model.load_state_dict(quantised.state_dict(), assign=True, strict=True)
    model.tie_weights()  # SmolLM2 shares the embedding and the output matrix
    model.generation_config = quantised.generation_config
    return model
