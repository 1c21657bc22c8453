"""The kit's one check of a whole-number setting (steps, batch size, prefix length, ...).

    >>> from tutorlib.validate import whole_number
    >>> whole_number(8, "steps")
    8
    >>> whole_number(0, "--steps", why="with no training step there is nothing to compare")
    Traceback (most recent call last):
    ...
    ValueError: --steps must be a whole number >= 1 (got 0): with no training step there is nothing to compare.
"""

from __future__ import annotations


def whole_number(value, name: str, *, minimum: int = 1, may_be_none: bool = False, why: str = "") -> int | None:
    """``value`` when it is a whole number >= ``minimum`` (None too when ``may_be_none``: "all"); else a
    ValueError that names the setting as the caller wrote it (``name``: "steps", "--batch-size", ...)."""
    if value is None and may_be_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"a whole number >= {minimum}" + (" or None (all)" if may_be_none else "")
        raise ValueError(f"{name} must be {allowed} (got {value!r})" + (f": {why}." if why else "."))
    return value
