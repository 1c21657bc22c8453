"""Plain data: the only thing that crosses from a learner's sandbox to the grader.

A hidden test never runs where the learner's code runs. It asks the sandbox for *values* (a
variable, the result of calling a learner's function) and compares them in the grader's own
process. What comes back must be data, not objects: an object of the learner's own class could
claim to equal anything, and unpickling could run the learner's code in the grader. So values
travel as JSON, with arrays and tensors as raw bytes plus dtype and shape:

    None, bool, int, float, str                  as themselves (inf and nan included)
    list, tuple, set, frozenset, dict            recursively ("__tuple__", "__set__", "__dict__" tags)
    numpy array, torch tensor, numpy scalar      {"__array__": {"dtype", "shape", "data": base64[, "scalar"]}}

Anything else is refused with a :class:`NotPlainData` error that names the type. Both directions
are bounded (depth, number of items, bytes), so a hostile value cannot exhaust the grader: a list
nested 100,000 deep is refused, not a ``RecursionError``.

On the way back, tensors arrive as numpy arrays (the grader compares numbers, not tensor objects),
and numpy numbers as numpy numbers; an array's bytes travel in this machine's byte order (a big-endian array
is converted first: the sandbox and the grader share one machine).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

MAX_DEPTH = 32  # nesting of containers
MAX_ITEMS = 1_000_000  # containers' items and strings' characters, counted over the whole value
MAX_BYTES = 64 * 2**20  # one encoded value
# Items a decoded value may hash (a set's items, a dict's keys that are not strings), and integers of 2**61 and
# more: Python hashes integers modulo 2**61 - 1 and tuples without a secret, so a learner can send values that
# all share one hash, and building a set of n of them takes n**2 steps in the grader (strings are hashed with a
# per-process secret and cost nothing here). 10,000 colliding items take a fraction of a second.
MAX_HASHED = 10_000
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64", "complex64", "complex128"}


class NotPlainData(TypeError):
    """A value the grader cannot take from a sandbox: not plain data, too deep or too large."""


class _Budget:
    def __init__(self):
        self.items = 0
        self.hashed = 0

    def spend(self, n: int) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise NotPlainData(f"the value is too large (more than {MAX_ITEMS:,} items)")

    def hash(self, n: int) -> None:
        self.hashed += n
        if self.hashed > MAX_HASHED:
            raise NotPlainData(f"the value holds more than {MAX_HASHED:,} set items, non-text dict keys and integers "
                               "of 2**61 or more together")


def _array(value: Any) -> np.ndarray | None:
    """A numpy view of a numpy array/scalar or a torch tensor (exact types only), else None."""
    if type(value) is np.ndarray or isinstance(value, np.generic) and type(value).__module__ == "numpy":
        return np.asarray(value)
    torch = _torch()
    if torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()  # numpy has no bfloat16: widen (exactly)
        return tensor.contiguous().numpy()
    return None


def _torch():
    import sys

    return sys.modules.get("torch")  # never import torch just to check a type


def to_plain(value: Any, depth: int = 0, budget: _Budget | None = None) -> Any:
    """``value`` as JSON-ready data; raises :class:`NotPlainData` for anything else."""
    budget = budget or _Budget()
    if depth > MAX_DEPTH:
        raise NotPlainData(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        budget.spend(len(value) if kind is str else 1)
        return value
    if kind is int:
        budget.spend(1)
        return value if abs(value) < 2**63 else {"__bigint__": str(value)}
    if kind is float:
        budget.spend(1)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if kind in (list, tuple, set, frozenset):
        budget.spend(len(value))
        items = [to_plain(v, depth + 1, budget) for v in value]
        if kind is list:
            return items
        return {"__tuple__": items} if kind is tuple else {"__set__": items}
    if kind is dict:
        budget.spend(len(value))
        if all(type(k) is str and not k.startswith("__") for k in value):
            return {k: to_plain(v, depth + 1, budget) for k, v in value.items()}
        return {"__dict__": [[to_plain(k, depth + 1, budget), to_plain(v, depth + 1, budget)]
                             for k, v in value.items()]}
    array = _array(value)
    if array is not None:
        if array.dtype.name not in _DTYPES:
            raise NotPlainData(f"an array of dtype {array.dtype} cannot be checked")
        budget.spend(array.size)
        if not array.dtype.isnative:  # big-endian: the bytes travel in this machine's order
            array = array.astype(array.dtype.newbyteorder("="))
        spec = {"dtype": array.dtype.name, "shape": list(array.shape),
                "data": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")}
        if isinstance(value, np.generic):
            spec["scalar"] = True  # a numpy number comes back as one (np.float64 is still a float)
        return {"__array__": spec}
    raise NotPlainData(f"a {kind.__module__}.{kind.__qualname__} is not plain data (numbers, strings, lists, "
                       "dicts, arrays or tensors)")


def dumps(value: Any) -> str:
    """Encode ``value`` (see :func:`to_plain`) as one line of JSON."""
    text = json.dumps(to_plain(value), allow_nan=False, separators=(",", ":"))
    if len(text) > MAX_BYTES:
        raise NotPlainData(f"the value is too large ({len(text) / 2**20:.0f} MiB encoded; at most "
                           f"{MAX_BYTES // 2**20} MiB)")
    return text


def loads(text: str | bytes) -> Any:
    """Decode what :func:`dumps` wrote, strictly: anything else raises :class:`NotPlainData`."""
    if len(text) > MAX_BYTES:
        raise NotPlainData("the encoded value is too large")
    try:
        raw = json.loads(text)
    except RecursionError:
        raise NotPlainData(f"the value is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:
        raise NotPlainData(f"not valid encoded data ({e})") from None
    return from_plain(raw)


def from_plain(raw: Any, depth: int = 0, budget: _Budget | None = None) -> Any:
    """The value :func:`to_plain` encoded (tensors come back as numpy arrays)."""
    budget = budget or _Budget()
    if depth > MAX_DEPTH:
        raise NotPlainData(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(raw)
    if raw is None or kind in (bool, int, float, str):
        budget.spend(len(raw) if kind is str else 1)
        if kind is int and abs(raw) >= 2**61 - 1:
            budget.hash(1)
        return raw
    if kind is list:
        budget.spend(len(raw))
        return [from_plain(v, depth + 1, budget) for v in raw]
    if kind is not dict:
        raise NotPlainData(f"unexpected {kind.__name__} in encoded data")
    budget.spend(len(raw))
    if len(raw) == 1:
        (tag, inner), = raw.items()
        if tag == "__tuple__" and type(inner) is list:
            return tuple(from_plain(v, depth + 1, budget) for v in inner)
        if tag == "__set__" and type(inner) is list:
            budget.hash(len(inner))
            items = [from_plain(v, depth + 1, budget) for v in inner]
            try:
                return set(items)
            except TypeError:
                raise NotPlainData("a set holds unhashable items") from None
        if tag == "__dict__" and type(inner) is list:
            budget.hash(len(inner))
            pairs = [from_plain(p, depth + 1, budget) for p in inner]
            if not all(type(p) is list and len(p) == 2 for p in pairs):
                raise NotPlainData("malformed dict in encoded data")
            try:
                return {k: v for k, v in pairs}
            except TypeError:
                raise NotPlainData("a dict has unhashable keys") from None
        if tag == "__bigint__" and type(inner) is str and len(inner) < 4000 and inner.lstrip("-").isdigit():
            budget.hash(1)
            return int(inner)
        if tag == "__float__" and inner in ("inf", "-inf", "nan"):
            return float(inner)
        if tag == "__array__" and type(inner) is dict:
            return _decode_array(inner, budget)
    if any(type(k) is not str or k.startswith("__") for k in raw):
        raise NotPlainData("unexpected tag in encoded data")
    return {k: from_plain(v, depth + 1, budget) for k, v in raw.items()}


def _decode_array(spec: dict, budget: _Budget) -> np.ndarray:
    dtype, shape, data = spec.get("dtype"), spec.get("shape"), spec.get("data")
    if dtype not in _DTYPES or type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape) \
            or type(data) is not str:
        raise NotPlainData("malformed array in encoded data")
    count = math.prod(shape)
    budget.spend(count)
    raw = base64.b64decode(data, validate=True)
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise NotPlainData("an array's bytes do not match its shape and dtype")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return array[()] if spec.get("scalar") is True and array.ndim == 0 else array
