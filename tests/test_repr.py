"""Result NamedTuples print a short summary (``jaxclust._core.results.summary_repr``), not
every array: every public result class has it (discovered from the public modules'
``__all__``, so a new class without the line fails here), its length does not grow with
the arrays, and it works on traced values, under vmap and for nested results."""

from __future__ import annotations

import importlib
import pkgutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxclust
from jaxclust._core.results import summary_repr


def _public_namedtuples() -> dict[type, str]:
    """Every NamedTuple class named in the ``__all__`` of a public jaxclust module."""
    found: dict[type, str] = {}
    for info in pkgutil.walk_packages(jaxclust.__path__, "jaxclust."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (flax ...) that is not installed
            continue
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields"):
                found.setdefault(obj, f"{info.name}.{name}")
    return found


PUBLIC = _public_namedtuples()


def _big(cls: type):
    """An instance whose every field is a 10,000-element float32 array."""
    return cls(*[np.zeros(10_000, np.float32) for _ in cls._fields])


def test_discovery_finds_the_result_classes():
    names = {cls.__name__ for cls in PUBLIC}
    assert {"SinkhornResult", "KMeansResult", "FitResult", "KMeansSDPResult",
            "MahalanobisStats", "ModeCoverage"} <= names
    assert len(PUBLIC) >= 30


@pytest.mark.parametrize("cls", sorted(PUBLIC, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_every_public_result_has_the_short_repr(cls):
    assert cls.__repr__ is summary_repr, (
        f"{PUBLIC[cls]}: decorate it with `@with_summary_repr` (from jaxclust._core.results)")
    text = repr(_big(cls))
    # one short entry per field, whatever the array sizes (default repr: ~60 kB per field)
    assert len(text) < 40 + 30 * len(cls._fields), text
    assert text.startswith(cls.__name__ + "(") and "f32[10000]" in text


def test_summary_of_a_real_result():
    x = jax.random.normal(jax.random.key(0), (64, 2))
    res = jaxclust.ot.sinkhorn(x, x + 1.0, epsilon=0.5)
    text = repr(res)
    assert text.startswith("SinkhornResult(f=f32[64], g=f32[64], ")
    # concrete scalars show their values, arrays their dtype and shape
    assert f"converged={bool(res.converged)}" in text and f"n_iters={int(res.n_iters)}" in text
    assert str(res) == text and len(text) < 400
    # the default NamedTuple repr would print the 64 potentials
    assert len(tuple.__repr__(res)) > 2 * len(text)


class _Inner(NamedTuple):
    a: jax.Array
    err: jax.Array
    __repr__ = summary_repr


class _Outer(NamedTuple):
    inner: _Inner
    pair: tuple
    history: dict
    fn: object
    note: str | None = None
    __repr__ = summary_repr


def test_values_nesting_and_containers():
    out = _Outer(_Inner(jnp.ones((3, 4), jnp.int32), jnp.asarray(3.14159e-7)),
                 (jnp.asarray(True), 2.5), {"loss": np.zeros(5)}, jnp.sum)
    assert repr(out) == ("_Outer(inner=_Inner(a=i32[3,4], err=3.14e-07), pair=(True, 2.5), "
                         "history={'loss': f64[5]}, fn=sum, note=None)")


def test_under_jit_and_vmap():
    seen = []

    def f(x):
        res = _Inner(x, jnp.sum(x))
        seen.append(repr(res))  # traced: shapes only, no value is read
        return res

    jax.jit(f)(jnp.ones(4))
    jax.vmap(f)(jnp.ones((3, 4)))
    assert seen == ["_Inner(a=f32[4], err=f32[])", "_Inner(a=f32[4], err=f32[])"]
    batched = jax.vmap(lambda x: _Inner(x, jnp.sum(x)))(jnp.ones((3, 4)))
    assert repr(batched) == "_Inner(a=f32[3,4], err=f32[3])"  # batched scalars: a shape
