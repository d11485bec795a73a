"""Differentiable clustering layers for neural networks, in Flax (NNX) and Equinox.

The same layers exist in both frameworks, each a thin wrapper over the pure functions of
[`jaxclust.cluster` losses](cluster.md#clustering-losses) and [`jaxclust.ot`][jaxclust.ot]:

* ``KMeansLayer``: learnable centroids; returns soft assignments and the soft k-means loss.
* ``SinkhornClusteringHead``: learnable prototypes on the sphere; returns cosine scores,
  SwAV's balanced codes and swapped-prediction loss.
* ``TemperatureHead`` and ``PrototypeHead``: OOD heads over [`jaxclust.ood`][jaxclust.ood]
  (learned temperature with the ablated-energy score; several prototypes per class).
* ``ScoreMLP`` and ``ScoreUNet``: time- (and class-) conditioned score networks for
  [`jaxclust.diffusion`][jaxclust.diffusion].

Import the framework you use explicitly; importing ``jaxclust.nn`` imports neither::

    from jaxclust.nn.equinox import KMeansLayer, SinkhornClusteringHead  # equinox (core)
    from jaxclust.nn.flax import KMeansLayer, SinkhornClusteringHead     # jaxclust[flax]

``jaxclust.nn.equinox`` and ``jaxclust.nn.flax`` are also reachable as attributes of
``jaxclust.nn`` (imported on first access).
"""

from __future__ import annotations

import importlib
import math

import jax
import jax.numpy as jnp

from .._core import checks

__all__ = ["equinox", "flax"]

_FRAMEWORKS = ("equinox", "flax")
_KINDS = ("softmax", "student_t")


def __getattr__(name: str):
    if name in _FRAMEWORKS:  # lazy: only the framework asked for is imported
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------
# helpers shared by the two frameworks (private)


def _check_size(value, name: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"`{name}` must be a Python int >= 1 (it fixes a parameter shape), "
                         f"got {value!r}.")
    return value


def _check_number(value, name: str, hint: str = "") -> float:
    """A static layer hyper-parameter: a finite Python number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a Python number > 0 (a static layer setting), "
                         f"got {value!r}.")
    checks.check_positive_scalar(value, name, hint)
    return float(value)


def _check_kind(kind) -> str:
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}, got {kind!r}.")
    return kind


def _initial(given, shape: tuple[int, int], name: str, key_name: str, draw):
    """Given initial parameters (checked against ``shape``) or ``draw()`` from a key."""
    if given is None:
        if draw is None:
            raise ValueError(f"`{key_name}` is required to initialise `{name}` at random; pass "
                             f"{key_name}=... or an initial array `{name}` of shape {shape}.")
        return draw()
    arr = checks.as_float_array(given, name)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(arr.shape)}.")
    return checks.check_finite(arr, name)


def _l2_normalize(v: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows divided by their norm (floored at ``eps``: zero rows stay finite, with a finite
    gradient)."""
    sq = jnp.sum(v * v, axis=-1, keepdims=True)
    return v * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def _prototype_scores(z, prototypes: jax.Array, name: str = "z") -> jax.Array:
    """Cosine scores ``normalize(z) @ normalize(prototypes).T`` for ``z (batch, d)``."""
    z = checks.as_float_array(z, name)
    k, d = prototypes.shape
    if z.ndim != 2 or z.shape[1] != d:
        raise ValueError(f"`{name}` must have shape (batch, {d}) (d = the prototypes' feature "
                         f"size), got {tuple(z.shape)}. For a batch of batches, use "
                         "jax.vmap.")
    z = checks.check_finite(z, name)
    dtype = jnp.result_type(z, prototypes)
    return _l2_normalize(z.astype(dtype)) @ _l2_normalize(prototypes.astype(dtype)).T


def _normal(key, shape, scale):
    return scale * jax.random.normal(key, shape)


def _prototype_scale(d: int) -> float:
    return 1.0 / math.sqrt(d)


def _two_views(z_a, z_b, prototypes: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Scores of two views of one batch (same shape, checked)."""
    s_a = _prototype_scores(z_a, prototypes, "z_a")
    s_b = _prototype_scores(z_b, prototypes, "z_b")
    if s_a.shape != s_b.shape:
        raise ValueError(f"`z_b` must have the same batch size as `z_a` ({s_a.shape[0]}; two "
                         f"views of one batch), got {s_b.shape[0]}.")
    return s_a, s_b
