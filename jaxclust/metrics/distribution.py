r"""Distances between two sample sets: the energy distance and the (RBF) maximum mean
discrepancy, with unbiased (U-statistic) estimators.

Both are computed from the full pairwise distance matrices (memory $O((n+m)^2)$); both are
differentiable in the samples (used to score generative models against held-out data).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._core import checks
from .clustering import pow2_scale

__all__ = ["energy_distance", "mmd"]

_HI = jax.lax.Precision.HIGHEST


def _prep(x, y):
    x = checks.check_finite(checks.as_float_array(x, "x"), "x")
    y = checks.check_finite(checks.as_float_array(y, "y"), "y")
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"`x` and `y` must be 1-D (n,) or 2-D (n, d) sample sets, got shapes "
                         f"{x.shape} and {y.shape}. Flatten images with x.reshape(n, -1).")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"`x` and `y` must have the same number of features, got "
                         f"{x.shape[1]} and {y.shape[1]}.")
    # low-precision inputs accumulate in float32
    dtype = jnp.promote_types(jnp.promote_types(x.dtype, y.dtype), jnp.float32)
    return x.astype(dtype), y.astype(dtype)


def _normalise(x, y):
    """``(x', y', s)`` with ``x = s x' + mu`` (same for ``y``): centred at the joint mean, so
    that ``|a|^2 + |b|^2 - 2 a.b`` does not cancel catastrophically for samples far from the
    origin, and divided by a power of two ``s`` of the centred magnitude, so that the squares
    neither overflow (1e20) nor underflow (1e-20) in float32. Both metrics are
    translation-invariant; the energy distance is 1-homogeneous and the MMD invariant when
    the bandwidth is scaled alike. No gradient flows through ``mu`` and ``s``."""
    mu = jax.lax.stop_gradient(
        (jnp.sum(x, axis=0) + jnp.sum(y, axis=0)) / (x.shape[0] + y.shape[0]))
    x, y = x - mu[None, :], y - mu[None, :]
    s = pow2_scale(jnp.maximum(jnp.max(jnp.abs(x)), jnp.max(jnp.abs(y))))
    return x / s, y / s, s


def _sq_dists(a, b):
    d2 = (jnp.sum(a * a, axis=1)[:, None] + jnp.sum(b * b, axis=1)[None, :]
          - 2.0 * jnp.matmul(a, b.T, precision=_HI))
    return jnp.maximum(d2, 0.0)


def _self_sq_dists(a):
    n = a.shape[0]
    return _sq_dists(a, a) * (1.0 - jnp.eye(n, dtype=a.dtype))


def _check_sizes(x, y, unbiased):
    if unbiased and (x.shape[0] < 2 or y.shape[0] < 2):
        raise ValueError("the unbiased estimators need at least 2 samples in `x` and in `y`; "
                         f"got {x.shape[0]} and {y.shape[0]} (or pass unbiased=False).")


def _within_mean(K, unbiased):
    n = K.shape[0]
    off = jnp.sum(K * (1.0 - jnp.eye(n, dtype=K.dtype)))
    diag = jnp.sum(jnp.diagonal(K))
    return off / (n * (n - 1)) if unbiased else (off + diag) / (n * n)


def _dist(d2, mask):
    """``sqrt(d2)`` with a finite gradient where ``mask`` is False (the result is 0 there)."""
    safe = jnp.where(mask, d2, 1.0)
    return jnp.where(mask, jnp.sqrt(safe), 0.0)


def energy_distance(x: Float[Array, "n ..."], y: Float[Array, "m ..."], *,
                    unbiased: bool = True) -> Float[Array, ""]:
    r"""Squared energy distance between the samples ``x`` and ``y`` (shape ``(n,)`` or
    ``(n, d)``):

    $$
      \mathcal E^2(P, Q) = 2\,\mathbb E\lVert X - Y\rVert - \mathbb E\lVert X - X'\rVert
      - \mathbb E\lVert Y - Y'\rVert \;\ge 0,
    $$

    zero iff $P = Q$. With ``unbiased=True`` the within-sample terms average over the
    $n(n-1)$ pairs $i \ne i'$ (a U-statistic, unbiased, may be slightly negative); with
    ``unbiased=False`` over all $n^2$ pairs (the V-statistic, whose square root is
    ``scipy.stats.energy_distance`` in 1-D). The gradient is finite everywhere (the
    distance of a point to itself contributes zero).

    Example:
      >>> import jax
      >>> from jaxclust.metrics.distribution import energy_distance
      >>> x = jax.random.normal(jax.random.key(0), (200, 2))
      >>> y = jax.random.normal(jax.random.key(1), (200, 2)) + 2.0
      >>> bool(energy_distance(x, y) > 1.0), float(energy_distance(x, x[::-1], unbiased=False))
      (True, 0.0)

    References:
      Székely & Rizzo, "Energy statistics: A class of statistics based on distances",
      J. Statistical Planning and Inference, 2013.
    """
    x, y = _prep(x, y)
    _check_sizes(x, y, unbiased)
    return _energy(x, y, unbiased)


@functools.partial(jax.jit, static_argnums=2)
def _energy(x, y, unbiased):
    x, y, s = _normalise(x, y)
    return s * _energy_unit(x, y, unbiased)


def _energy_unit(x, y, unbiased):
    d2xy, d2xx, d2yy = _sq_dists(x, y), _self_sq_dists(x), _self_sq_dists(y)
    dxy = _dist(d2xy, d2xy > 0)
    dxx = _dist(d2xx, d2xx > 0)
    dyy = _dist(d2yy, d2yy > 0)
    return 2.0 * jnp.mean(dxy) - _within_mean(dxx, unbiased) - _within_mean(dyy, unbiased)


def mmd(x: Float[Array, "n ..."], y: Float[Array, "m ..."], *,
        bandwidth: float | Float[Array, " b"], unbiased: bool = True) -> Float[Array, ""]:
    r"""Squared maximum mean discrepancy with a (sum of) Gaussian RBF kernel(s)
    $k(a, b) = \sum_\ell \exp(-\lVert a - b\rVert^2 / 2h_\ell^2)$, ``bandwidth`` $h$ a
    scalar or a 1-D array of bandwidths:

    $$
      \mathrm{MMD}^2 = \mathbb E\,k(X, X') + \mathbb E\,k(Y, Y') - 2\,\mathbb E\,k(X, Y).
    $$

    ``unbiased=True``: the U-statistic of Gretton et al. (within-sample pairs $i \ne i'$);
    ``unbiased=False``: the V-statistic (all pairs, non-negative).

    Example:
      >>> import jax
      >>> from jaxclust.metrics.distribution import mmd
      >>> x = jax.random.normal(jax.random.key(0), (200, 2))
      >>> y = jax.random.normal(jax.random.key(1), (200, 2)) + 2.0
      >>> bool(mmd(x, y, bandwidth=1.0) > 0.3)
      True

    References:
      Gretton, Borgwardt, Rasch, Schölkopf, Smola, "A Kernel Two-Sample Test", JMLR 2012.
    """
    x, y = _prep(x, y)
    _check_sizes(x, y, unbiased)
    h = checks.as_float_array(bandwidth, "bandwidth").astype(x.dtype)
    if h.ndim > 1:
        raise ValueError(f"`bandwidth` must be a scalar or 1-D, got shape {h.shape}.")
    h = jnp.atleast_1d(h)
    h = checks.ensure(h, ~(jnp.isfinite(h) & (h > 0)), "`bandwidth` must be finite and > 0.")
    return _mmd(x, y, h, unbiased)


@functools.partial(jax.jit, static_argnums=3)
def _mmd(x, y, h, unbiased):
    x, y, s = _normalise(x, y)
    h = h / s

    def kernel(d2):
        # k = 1 at d2 = 0 even when 2 h^2 underflows to 0 (no 0 / 0)
        z = d2[None, :, :] / (2.0 * h[:, None, None] ** 2)
        return jnp.sum(jnp.where(d2[None, :, :] > 0, jnp.exp(-z), 1.0), axis=0)

    kxx = kernel(_self_sq_dists(x))
    kyy = kernel(_self_sq_dists(y))
    kxy = kernel(_sq_dists(x, y))
    return _within_mean(kxx, unbiased) + _within_mean(kyy, unbiased) - 2.0 * jnp.mean(kxy)
