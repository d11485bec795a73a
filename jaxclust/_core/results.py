"""A short ``repr`` for result NamedTuples.

The default ``repr`` of a NamedTuple prints every array in full: a Sinkhorn result on
10,000 points fills the screen. :func:`summary_repr` prints one short entry per field
instead: the dtype and shape of an array (``f32[64]``, ``f32[3,64]``), the value of a
concrete scalar (``converged=True, n_iters=41, error=3.1e-07``), nested results, tuples and
dicts summarised the same way, and other pytrees (an Equinox network) as their type and
array count. It never reads a traced value, so it works inside ``jit``/``vmap`` (a batched
scalar is printed as its shape). A result class opts in with one line::

    class SinkhornResult(NamedTuple):
        f: Array
        ...
        __repr__ = summary_repr

(``__str__`` follows ``__repr__``; the arrays stay one attribute away: ``print(res.f)``.)
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

import jax
import numpy as np

__all__ = ["summary_repr"]

_SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16",
          "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint64": "u64",
          "uint32": "u32", "uint16": "u16", "uint8": "u8", "bool": "bool",
          "complex64": "c64", "complex128": "c128"}
_MAX_ITEMS = 8       # entries of a tuple / dict shown before "..."
_MAX_DEPTH = 3       # nesting levels shown before "..."


def _dtype_name(dtype) -> str:
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return "key"
    return _SHORT.get(str(dtype), str(dtype))


def _scalar(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.3g}"
        return text if any(c in text for c in ".ena") else text + ".0"  # 1.0, not 1
    if isinstance(value, (complex, np.complexfloating)):
        return f"{complex(value):.3g}"
    return repr(value)


def _array(x: Any) -> str:
    """``f32[3,64]``, or the value of a concrete scalar (never of a tracer)."""
    head = f"{_dtype_name(x.dtype)}[{','.join(str(int(n)) for n in x.shape)}]"
    if x.shape == () and not isinstance(x, jax.core.Tracer) and head.split("[")[0] != "key":
        try:
            return _scalar(np.asarray(x).item())
        except Exception:  # a deleted / donated buffer: the shape still says something
            return head
    return head


def _items(items: list[str], open_: str, close: str, total: int) -> str:
    more = ", ..." if total > len(items) else ""
    return open_ + ", ".join(items) + more + close


def _summary(value: Any, depth: int) -> str:
    if isinstance(value, (jax.Array, np.ndarray, jax.core.Tracer)):
        return _array(value)
    if value is None or isinstance(value, (bool, int, float, complex, str, np.generic)):
        return _scalar(value)
    if depth >= _MAX_DEPTH:
        return f"{type(value).__name__}(...)"
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a nested NamedTuple
        return _fields(value, depth + 1)
    if isinstance(value, (tuple, list)):
        parts = [_summary(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if isinstance(value, tuple):
            return _items(parts, "(", ",)" if len(value) == 1 else ")", len(value))
        return _items(parts, "[", "]", len(value))
    if isinstance(value, dict):
        parts = [f"{k!r}: {_summary(v, depth + 1)}" for k, v in
                 list(value.items())[:_MAX_ITEMS]]
        return _items(parts, "{", "}", len(value))
    if inspect.isroutine(value) or isinstance(value, functools.partial):
        fn = value.func if isinstance(value, functools.partial) else value
        return getattr(fn, "__qualname__", type(fn).__name__)
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(value)
              if isinstance(leaf, (jax.Array, np.ndarray, jax.core.Tracer))]
    if leaves and not (len(leaves) == 1 and leaves[0] is value):
        size = sum(int(np.prod(leaf.shape)) for leaf in leaves)
        return f"{type(value).__name__}({len(leaves)} arrays, {size:,} numbers)"
    text = repr(value)
    return text if len(text) <= 60 else f"{type(value).__name__}(...)"


def _fields(result: Any, depth: int) -> str:
    parts = [f"{name}={_summary(getattr(result, name), depth)}" for name in result._fields]
    return f"{type(result).__name__}({', '.join(parts)})"


def summary_repr(self: Any) -> str:
    """A one-line summary of a result NamedTuple: ``Name(field=summary, ...)``.

    Arrays are shown as ``dtype[shape]`` (``f32[64]``), concrete scalars by their value
    (floats with 3 significant digits), nested results, tuples and dicts recursively (at
    most 8 entries and 3 levels), other pytrees as their type and array count. Traced
    values are never read, so the repr also works under ``jit`` and ``vmap`` (a batched
    scalar appears as its shape).

    Example:
      >>> from typing import NamedTuple
      >>> import jax.numpy as jnp
      >>> from jaxclust._core.results import summary_repr
      >>> class Res(NamedTuple):
      ...     f: jnp.ndarray
      ...     converged: jnp.ndarray
      ...     n_iters: int
      ...     __repr__ = summary_repr
      >>> Res(jnp.zeros(64), jnp.asarray(True), 41)
      Res(f=f32[64], converged=True, n_iters=41)
    """
    return _fields(self, 0)


T = TypeVar("T", bound=type)


def with_summary_repr(cls: T) -> T:
    """Class decorator: ``summary_repr`` as the ``__repr__`` of a result NamedTuple.

    The same as ``__repr__ = summary_repr`` in the class body, in a form type checkers
    accept (mypy allows only fields, methods and docstrings in a NamedTuple body).

    Example:
      >>> from typing import NamedTuple
      >>> @with_summary_repr
      ... class Res(NamedTuple):
      ...     n_iters: int
      >>> Res(3), Res.__repr__ is summary_repr
      (Res(n_iters=3), True)
    """
    setattr(cls, "__repr__", summary_repr)  # noqa: B010  (mypy: a method cannot be assigned)
    return cls
