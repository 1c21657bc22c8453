"""Checks used inside a notebook's graded test cells: a friendly message instead of a bare assert.

A graded test cell calls these on the learner's answer. When an answer is wrong they raise
:class:`AnswerError` (an ``AssertionError``, so plain ``assert``-based tools still see a failed
test) whose message says what was checked, what was expected, what the learner gave, and a hint::

    >>> check_equal("prefix parameter count", 15360, 30720, hint="keys AND values: 2 * L * P * d")
    Traceback (most recent call last):
    ...
    tutorlib.course.checks.AnswerError: prefix parameter count is not right yet.
      expected: 30720
      got:      15360
      hint:     keys AND values: 2 * L * P * d

Each check returns ``None`` when the answer is right. Tensors may be torch tensors or numpy
arrays; torch is never imported here (a check works in a notebook without it).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

_PLAIN = (int, float, bool, complex, str, bytes, type(None))
_CONTAINERS = (list, tuple, set, frozenset)


class AnswerError(AssertionError):
    """A learner's answer is not right yet; the message says what was expected and gives a hint."""


def _show(value: Any, limit: int = 200) -> str:
    """A short, readable description of a value for a message (long reprs are cut)."""
    if _is_array(value):
        arr = _as_numpy(value)
        body = np.array2string(arr, threshold=8, edgeitems=2, precision=4)
        text = f"{type(value).__name__} of shape {tuple(arr.shape)}, dtype {_dtype(value)}: {body}"
    else:
        text = repr(value)
    text = " ".join(text.split())  # one line: tables and terminals stay readable
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(name: str, lines: list[tuple[str, str]], hint: str | None, headline: str | None = None):
    """Raise an AnswerError: a headline, then aligned 'label: value' lines, then the hint."""
    __tracebackhide__ = True  # pytest and IPython hide this frame: the learner sees their cell
    if hint:
        lines = lines + [("hint", hint)]
    width = max((len(label) for label, _ in lines), default=0) + 1
    body = "\n".join(f"  {(label + ':').ljust(width)} {text}" for label, text in lines)
    message = (headline or f"{name} is not right yet.") + ("\n" + body if body else "")
    raise AnswerError(message)


def _is_array(value: Any) -> bool:
    """A numpy array or a torch tensor, by exact type: an object that only looks like one (its own
    ``shape`` and ``dtype``) is not an answer a check can trust."""
    torch = sys.modules.get("torch")
    return type(value) is np.ndarray or (torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter))


def _plain_kind(value: Any, depth: int = 0) -> str | None:
    """None when ``value`` is plain data a check can compare without running the answer's own code
    (numbers, strings, None, arrays, tensors, and lists/tuples/sets/dicts of them); otherwise the
    name of the first type that is not."""
    if type(value) in _PLAIN or isinstance(value, np.generic) and type(value).__module__ == "numpy" or _is_array(value):
        return None
    if depth > 20:
        return "a structure nested more than 20 levels deep"
    if type(value) in _CONTAINERS:
        return next((kind for item in value if (kind := _plain_kind(item, depth + 1))), None)
    if type(value) is dict:
        return next((kind for item in [*value.keys(), *value.values()] if (kind := _plain_kind(item, depth + 1))), None)
    return type(value).__name__


def _require_plain(name: str, value: Any, hint: str | None) -> None:
    """Fail unless ``value`` is plain data: an object of the answer's own class could answer "equal"
    to anything (``__eq__``), so it is never compared."""
    __tracebackhide__ = True
    kind = _plain_kind(value)
    if kind is not None:
        _fail(name, [("got", f"a value of type {kind}"),
                     ("expected", "plain data: a number, string, None, a numpy array or torch tensor, or a "
                                  "list/tuple/set/dict of those")], hint)


def _dtype(value: Any) -> str:
    return str(value.dtype).replace("torch.", "")


def _as_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like as a numpy array."""
    if hasattr(value, "detach"):  # torch.Tensor: leave the graph, come to the CPU
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()  # numpy has no bfloat16
        return value.numpy()
    return np.asarray(value)


def _numbers(value: Any, like: Any = None) -> np.ndarray:
    """``value`` as float64 numbers to compare, or complex128 where ``like`` (the expected value) is complex.
    Raises TypeError for anything else: text, True/False, objects, and a complex number where a real one is
    expected (``astype(float)`` would drop its imaginary part with no more than a warning)."""
    array = _as_numpy(value)
    complex_expected = like is not None and _as_numpy(like).dtype.kind == "c"
    if array.dtype.kind not in ("iufc" if complex_expected else "iuf"):
        raise TypeError(f"numbers of dtype {array.dtype} are not the numbers asked for")
    return array.astype(np.complex128 if complex_expected else np.float64)


def _none_note(got: Any) -> list[tuple[str, str]]:
    """The commonest slip: a function that prints or forgets to return."""
    if got is None:
        return [("note", "your answer is None: did the function forget to `return` its result?")]
    return []


def _is_numpy(value: Any) -> bool:
    return _is_array(value) or isinstance(value, np.generic)


def _same(got: Any, expected: Any, depth: int = 0) -> bool:
    """Whether ``got`` equals ``expected`` as :func:`check_equal` means it: arrays (and numpy numbers) of the same
    shape and values; True/False only for True/False (Python says ``True == 1``); containers of the same kind,
    item by item. Never the truth value of numpy's element-wise ``==`` (``[48] == np.int64(48)`` is
    ``array([True])``, and a one-element array is "true")."""
    if depth > 40:
        return False
    if _is_numpy(got) or _is_numpy(expected):
        a, b = _as_numpy(got), _as_numpy(expected)
        if a.shape != b.shape or (a.dtype.kind == "b") != (b.dtype.kind == "b"):
            return False
        try:
            return bool(np.array_equal(a, b))
        except (TypeError, ValueError):
            return False
    if (type(got) is bool) != (type(expected) is bool):
        return False
    if type(got) in (list, tuple) or type(expected) in (list, tuple):
        return type(got) is type(expected) and len(got) == len(expected) and \
            all(_same(g, e, depth + 1) for g, e in zip(got, expected))
    if type(got) is dict and type(expected) is dict:
        return got.keys() == expected.keys() and all(_same(got[k], expected[k], depth + 1) for k in expected)
    try:
        result = got == expected
    except Exception:  # noqa: BLE001 - things that refuse ==: they are not equal
        return False
    return result if type(result) is bool else False


def check_equal(name: str, got: Any, expected: Any, hint: str | None = None) -> None:
    """Check that ``got == expected`` exactly (numbers, strings, lists, dicts, arrays, tensors).

    Use :func:`check_close` for floating-point results and :func:`check_tensor` for tensors
    whose shape matters. Raises :class:`AnswerError` with expected/got/hint when they differ.
    """
    __tracebackhide__ = True
    _require_plain(name, got, hint)
    same = _same(got, expected)
    if not same:
        lines = [("expected", _show(expected)), ("got", _show(got))] + _none_note(got)
        if got is not None and type(got) is not type(expected) and not _is_array(expected):
            lines.append(("type", f"expected a {type(expected).__name__}, got a {type(got).__name__}"))
        _fail(name, lines, hint)


def check_close(
    name: str,
    got: Any,
    expected: Any,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str | None = None,
) -> None:
    """Check a number (or array) equals ``expected`` within ``atol + rtol * |expected|``.

    ``rtol`` is relative (1e-2 = within 1%), ``atol`` absolute, in the units of the answer.
    """
    __tracebackhide__ = True
    _require_plain(name, got, hint)
    if got is None or isinstance(got, (str, bytes)):
        _fail(name, [("expected", f"a number close to {_show(expected)}"), ("got", _show(got))]
              + _none_note(got), hint)
    try:
        a, b = _numbers(got, like=expected), _numbers(expected, like=expected)
    except (TypeError, ValueError):
        _fail(name, [("expected", f"a number close to {_show(expected)}"), ("got", _show(got))], hint)
    if a.shape != b.shape and not (a.size == 1 and b.size == 1):  # 0-d and (1,) alike, never broadcast
        _fail(name, [("expected shape", str(tuple(b.shape))), ("got shape", str(tuple(a.shape)))], hint)
    if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=False):
        diff = float(np.max(np.abs(a - b))) if a.size else float("nan")
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        off = f"off by {diff:.3g}" + (f" ({diff / scale:.2%} of the expected size)" if scale else "")
        _fail(name, [("expected", _show(expected)), ("got", _show(got)), ("difference", off),
                     ("tolerance", f"rtol={rtol:g}, atol={atol:g}")], hint)


def check_tensor(
    name: str,
    got: Any,
    expected_shape: Sequence[int | None] | None = None,
    expected: Any = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    hint: str | None = None,
) -> None:
    """Check a tensor's shape, then (optionally) its values.

    ``expected_shape`` is a tuple like ``(B, H, P, d)``; ``None`` in it means "any size here".
    ``expected`` (a tensor/array of the same shape) is compared with ``|got - expected| <=
    atol + rtol * |expected|``. NaN or inf in ``got`` always fails: the usual sign of a blow-up.
    """
    __tracebackhide__ = True
    if not _is_array(got):
        _fail(name, [("expected", "a tensor" + (f" of shape {tuple(expected_shape)}" if expected_shape else "")),
                     ("got", f"{type(got).__name__}: {_show(got)}")] + _none_note(got), hint)
    shape = tuple(got.shape)
    if expected_shape is not None:
        want = tuple(expected_shape)
        fits = len(shape) == len(want) and all(w is None or w == s for s, w in zip(shape, want))
        if not fits:
            shown = "(" + ", ".join("any" if w is None else str(w) for w in want) + ")"
            _fail(name, [("expected shape", shown), ("got shape", str(shape))], hint,
                  headline=f"{name} has the wrong shape.")
    arr = _as_numpy(got)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        _fail(name, [("got", _show(got)), ("problem", "it contains NaN or inf values")], hint)
    if expected is not None:
        want_arr = _as_numpy(expected)
        if want_arr.shape != arr.shape:
            _fail(name, [("expected shape", str(tuple(want_arr.shape))), ("got shape", str(shape))], hint,
                  headline=f"{name} has the wrong shape.")
        try:
            a, b = _numbers(arr, like=want_arr), _numbers(want_arr, like=want_arr)
        except TypeError:
            _fail(name, [("expected", f"numbers like {_show(expected)}"), ("got", _show(got))], hint)
        bad = ~np.isclose(a, b, rtol=rtol, atol=atol)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            _fail(name, [("expected", _show(expected)), ("got", _show(got)),
                         ("first difference", f"at index {where}: expected {b[where]:.6g}, got {a[where]:.6g}"),
                         ("wrong entries", f"{int(bad.sum())} of {bad.size} (max |difference| "
                                           f"{float(np.max(np.abs(a - b))):.3g}, atol={atol:g}, rtol={rtol:g})")],
                  hint)


def check_true(name: str, condition: Any, expected: str, hint: str | None = None) -> None:
    """Check that ``condition`` holds; ``expected`` says in words what should be true.

    Example: ``check_true("frozen base", all(not p.requires_grad for p in model.parameters()),
    "every weight of the base model is frozen", hint="call p.requires_grad_(False)")``.
    """
    __tracebackhide__ = True
    if type(condition) not in (bool, np.bool_):  # an object's own __bool__ could say anything
        _fail(name, [("expected", expected), ("got", f"a condition of type {type(condition).__name__}, "
                                                     "not True or False")], hint)
    if not condition:
        _fail(name, [("expected", expected), ("got", "it is not so")], hint)


def check_finite(name: str, value: Any, hint: str | None = None) -> None:
    """Check a number or tensor has no NaN/inf (a loss that blew up, a division by zero)."""
    __tracebackhide__ = True
    _require_plain(name, value, hint)
    try:
        ok = bool(np.all(np.isfinite(_numbers(value, like=value))))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        _fail(name, [("expected", "finite numbers (no NaN or inf)"), ("got", _show(value))]
              + _none_note(value), hint)
