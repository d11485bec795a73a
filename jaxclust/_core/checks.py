"""Input validation in two tiers.

* Shapes, ranks and static options are checked at trace time and raise ``ValueError``.
* Values (NaN, negative weights, mass balance ...) are checked eagerly when the array is
  concrete, raising ``ValueError``; when traced (under ``jit``/``vmap``/``grad``) the same
  message is attached through :func:`equinox.error_if`, which raises at run time (the JAX
  runtime error then carries the message).

Every message names the argument, says what was wrong and how to fix it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_ndim",
    "check_num_clusters",
    "check_positive_scalar",
    "ensure",
    "is_traced",
]


def is_traced(*xs) -> bool:
    """True when any leaf of ``xs`` is a JAX tracer (inside jit, vmap, grad ...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def ensure(x, bad, message: str):
    """Return ``x``, raising ``ValueError(message)`` when ``bad`` holds.

    ``bad`` is a boolean array (any True element fails). Eagerly this raises a plain
    ``ValueError``; under tracing the check travels with ``x`` via :func:`equinox.error_if`,
    so the caller must use the returned value.
    """
    if not is_traced(x, bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(message)
        return x
    return eqx.error_if(x, jnp.any(bad), "ValueError: " + message)


def as_float_array(x, name: str, *, dtype=None) -> jax.Array:
    """Convert to a floating JAX array; integer and bool inputs become the default float."""
    try:
        arr = jnp.asarray(x)
    except TypeError as err:  # e.g. strings, objects
        raise ValueError(f"`{name}` must be an array of numbers, got {type(x).__name__}.") from err
    if dtype is not None:
        return arr.astype(dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def check_ndim(x: jax.Array, name: str, ndim: int, shape_hint: str) -> None:
    """Trace-time rank check."""
    if x.ndim != ndim:
        raise ValueError(
            f"`{name}` must be {ndim}-D with shape {shape_hint}, got shape {tuple(x.shape)}."
            + (" For a batch of problems, use jax.vmap over the leading axis." if x.ndim > ndim
               else "")
        )


def check_finite(x: jax.Array, name: str) -> jax.Array:
    """Value check: no NaN or Inf."""
    return ensure(x, ~jnp.isfinite(x), f"`{name}` contains NaN or Inf; clean or mask the input "
                                       "(give masked points zero weight) before calling.")


def row_weights(weights, n: int, rows_of: str) -> jax.Array:
    """Sample weights ``(n,)``, one per row of ``rows_of``: shape (trace time), finite and
    ``>= 0`` (value checks)."""
    w = as_float_array(weights, "weights")
    if w.shape != (n,):
        raise ValueError(f"`weights` must have shape ({n},) (one per row of `{rows_of}`), got "
                         f"{tuple(w.shape)}.")
    w = check_finite(w, "weights")
    return ensure(w, w < 0, "`weights` has negative entries; weights must be >= 0.")


def check_positive_scalar(value, name: str, hint: str = ""):
    """``value > 0`` for a Python number (trace time) or an array (value check)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"`{name}` must be a finite number > 0, got {value}. {hint}".strip())
        return value
    arr = jnp.asarray(value)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
    return ensure(arr, ~(jnp.isfinite(arr) & (arr > 0)),
                  f"`{name}` must be a finite number > 0. {hint}".strip())


def check_num_clusters(k, n: int, *, sdp: bool = False) -> None:
    """Trace-time check of a number of clusters: a Python int in ``[1, n]``, or with ``sdp``
    in ``[2, n)`` (the SDP relaxations are trivial for ``k = 1`` and ``k = n``)."""
    if not (isinstance(k, int) and not isinstance(k, bool)):
        raise ValueError(f"`k` must be a Python int (it fixes the output shape), got {k!r}.")
    if sdp and not 2 <= k < n:
        raise ValueError(f"`k` must satisfy 2 <= k < n = {n}, got {k}; the SDP is trivial for "
                         "k = 1 or k = n.")
    if not 1 <= k <= n:
        raise ValueError(f"`k` must be in [1, n] = [1, {n}], got {k}.")
