"""How the kit writes sizes and times, so every table, plot, widget and message agrees.

The rule: **sizes are binary**. 1 KiB = 1,024 bytes, 1 MiB = 1,024 KiB, 1 GiB = 1,024 MiB, written
with the IEC names (KiB, MiB, GiB) so nobody reads them as powers of 1,000. Memory is measured in
pages of 4 KiB and reported in MiB, so checkpoints, optimizer state and downloads use the same units:
a learner can set a 184 KiB checkpoint beside +898 MiB of memory without converting. Row keys ending
in ``_mb`` hold MiB; keys ending in ``_bytes`` hold bytes.

    >>> format_size(188_160)
    '184 KiB'
    >>> format_size(90_264_584)
    '86.1 MiB'
    >>> format_mib(1299.4)
    '1,299 MiB'
    >>> format_seconds(0.4831), format_seconds(136.2)
    ('0.483 s', '136 s')
"""

from __future__ import annotations

import math

KIB = 2**10  # bytes in one KiB
MIB = 2**20  # bytes in one MiB
GIB = 2**30  # bytes in one GiB


def _three_digits(value: float) -> str:
    """Three significant digits, never in scientific notation: 1.25, 86.1, 184, 1000."""
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_size(nbytes: float | None) -> str:
    """Bytes in words, binary units, three significant digits: '512 B', '184 KiB', '86.1 MiB', '1.00 GiB'.
    ``None`` (not measured) gives '-'."""
    if nbytes is None:
        return "-"
    if nbytes < 0:
        raise ValueError(f"format_size got {nbytes} bytes; a size cannot be negative. Pass a byte count "
                         f"(e.g. os.path.getsize(path) or checkpoint_bytes(paths)).")
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if nbytes >= scale:
            return f"{_three_digits(nbytes / scale)} {unit}"
    return f"{int(nbytes)} B"


def to_mib(nbytes: float) -> float:
    """Bytes as MiB (a float), the unit of every ``*_mb`` number the kit measures."""
    return nbytes / MIB


def format_mib(mib: float | None) -> str:
    """A memory figure already in MiB (peak memory, its increase), whole MiB with separators: '1,299 MiB'."""
    return "-" if mib is None else f"{mib:,.0f} MiB"


def format_seconds(seconds: float | None) -> str:
    """Seconds with three significant digits under 10 s ('0.483 s') and whole seconds above ('136 s')."""
    if seconds is None:
        return "-"
    return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:,.0f} s"


def format_by_key(key: str, value: float | None) -> str:
    """A row's value written by the unit its key names: ``*_bytes`` as a size, ``*_mb`` as MiB,
    ``*_seconds`` as seconds, anything else with three significant digits ('0.677', '1,234')."""
    if value is None:
        return "-"
    if key.endswith("_bytes"):
        return format_size(value)
    if key.endswith("_mb"):
        return format_mib(value)
    if key.endswith("_seconds"):
        return format_seconds(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else _three_digits(value)
