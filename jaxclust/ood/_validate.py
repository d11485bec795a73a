"""Shared input validation of ``jaxclust.ood`` (shapes at trace time, values through
``checks.ensure_value``: NumPy on concrete host arrays, ``equinox.error_if`` when traced)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._core import checks


def compute_dtype(*arrays) -> jnp.dtype:
    """The common floating dtype, at least float32 (low precision accumulates there)."""
    dt = jnp.result_type(*arrays)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.result_type(float)
    return jnp.promote_types(dt, jnp.float32)


def matrix(x, name: str, hint: str = "(n, k)", *, min_cols: int = 1) -> jax.Array:
    """A finite 2-D float array with at least one row and ``min_cols`` columns."""
    arr = checks.as_float_array(x, name)
    checks.check_ndim(arr, name, 2, hint)
    if arr.shape[0] < 1:
        raise ValueError(f"`{name}` has no rows; pass at least one sample.")
    if arr.shape[1] < min_cols:
        raise ValueError(f"`{name}` must have at least {min_cols} column(s), got shape "
                         f"{tuple(arr.shape)}.")
    return checks.check_finite(arr, name)


def vector(x, name: str, size: int | None = None, size_hint: str = "n") -> jax.Array:
    arr = checks.as_float_array(x, name)
    checks.check_ndim(arr, name, 1, f"({size_hint},)")
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"`{name}` must have length {size_hint} = {size}, got {arr.shape[0]}.")
    return checks.check_finite(arr, name)


def finite_result(out: jax.Array, culprit: str, what: str) -> jax.Array:
    """``out``, raising ``ValueError`` when valid (finite) inputs overflowed the float type
    on the way (e.g. features of order 1e20 squared in float32): NaN never leaks silently."""
    dtype = jnp.result_type(out)
    return checks.ensure_value(out, lambda v, xp: ~xp.isfinite(v),
                               f"{what} is not finite in {dtype}: `{culprit}` is too large (an "
                               f"intermediate overflowed). Rescale `{culprit}` (e.g. "
                               "standardise the features) or compute in float64.")


def same_rows(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same number of rows "
                         f"(samples), got {a.shape[0]} and {b.shape[0]}.")


def features_match(x: jax.Array, d: int, name: str, fitted: str) -> None:
    if x.shape[1] != d:
        raise ValueError(f"`{name}` has {x.shape[1]} features but {fitted} has {d}; use the "
                         "features the statistics were fitted on.")


def temperature(t, name: str = "temperature"):
    return checks.check_positive_scalar(t, name, "Use a temperature > 0 (1 is no scaling).")


def percentile(p, name: str = "percentile", *, low_open: bool = False) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not (
            (0.0 < p if low_open else 0.0 <= p) and p < 100.0):
        interval = "(0, 100)" if low_open else "[0, 100)"
        raise ValueError(f"`{name}` must be a number in {interval}, got {p!r}.")
    return float(p)


def labels(y, name: str, n: int, num_classes: int | None, classes_name: str = "num_classes"):
    """``(labels, num_classes)``: 1-D integer labels of length ``n`` in ``[0, num_classes)``;
    ``num_classes`` is static, inferred eagerly when ``None``."""
    try:
        if y is None:
            raise TypeError
        arr = jnp.asarray(y)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be an array of integer class labels, "
                         f"got {type(y).__name__}.") from err
    checks.check_ndim(arr, name, 1, "(n,)")
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise ValueError(f"`{name}` must hold integer class labels, got dtype {arr.dtype}; "
                         "cast with .astype(int).")
    if arr.shape[0] != n:
        raise ValueError(f"`{name}` must have one label per sample ({n}), got {arr.shape[0]}.")
    if num_classes is None:
        if checks.is_traced(arr):
            raise ValueError(f"`{classes_name}` must be given (a static int) when `{name}` is "
                             "traced (under jit, vmap or grad): it fixes the output shape.")
        host = checks.host_view(arr)
        num_classes = int(np.max(host) if host is not None else jnp.max(arr)) + 1
    num_classes = checks.check_int(num_classes, classes_name)
    arr = checks.ensure_value(arr, lambda v, xp: (v < 0) | (v >= num_classes),
                              f"`{name}` must lie in [0, {classes_name}) = [0, {num_classes}).")
    return arr.astype(jnp.int32), num_classes


def static_int(v, name: str, low: int, high: int | None = None, why: str = "") -> int:
    v = checks.check_int(v, name, low=None, why="it fixes shapes")
    if v < low or (high is not None and v > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be in {rng}, got {v}. {why}".strip())
    return int(v)


@jax.jit
def row_ratio(h: jax.Array, t: jax.Array) -> jax.Array:
    """``h / t[:, None]`` in the compute dtype of ``h``, as a program of its own (for the
    learned-temperature score and loss). Fused into the log-sum-exp that follows, XLA:CPU
    rounds a ratio of order 1e20 differently where it takes the max and where it
    exponentiates (+-inf, even across an optimization barrier; test_nan_contract.py); apart,
    an eager call stays exact. Under an outer jit it is inlined (then the callers' finiteness
    checks report it)."""
    h = h.astype(compute_dtype(h))
    return h / t.astype(h.dtype)[:, None]


def normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """Unit rows; zero rows stay zero (finite gradient)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=True)
    pos = sq > 0
    return x * jnp.where(pos, jax.lax.rsqrt(jnp.where(pos, sq, 1.0)), 0.0)
