r"""Reductions over the point axis that also run with the points sharded over devices.

Every function takes ``axis_name``. With ``axis_name=None`` (one device) it is the plain
operation on the whole array; inside ``jax.shard_map`` with the rows of the point axis split
over the mesh axis ``axis_name`` (each device holding a contiguous block of rows, device
$p$ rows $[p\,n_{loc}, (p+1)\,n_{loc})$) it combines the devices' small partial results
(``k``-, ``m``- or trials-sized), never the points themselves. The single-device and the
sharded algorithms are therefore one code: the caller passes ``axis_name`` through.

This is the one home of the collectives of jaxclust (``psum``, ``pmax``, ``all_gather`` of
candidates); the algorithms in ``cluster``, ``ot``, ``sdp`` and ``ood`` and the geometries of
``_core.costs`` call these helpers rather than ``jax.lax`` collectives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp as _lse

__all__ = [
    "axis_size",
    "combine_logsumexp",
    "count_le",
    "cumsum",
    "global_top",
    "logsumexp_rows",
    "merge_top_k",
    "pmax",
    "psum",
    "row_mask",
    "row_offset",
    "take_rows",
]


def psum(v, axis_name):
    """Sum of per-device partial results (a pytree) over ``axis_name``; ``v`` itself on one
    device."""
    return v if axis_name is None else jax.lax.psum(v, axis_name)


def pmax(v, axis_name):
    """Maximum of per-device partial results over ``axis_name``; ``v`` itself on one
    device."""
    return v if axis_name is None else jax.lax.pmax(v, axis_name)


def axis_size(axis_name) -> int | jax.Array:
    """Number of devices along ``axis_name`` (1 on one device)."""
    return 1 if axis_name is None else jax.lax.psum(1, axis_name)


def row_offset(n_local: int, axis_name):
    """Global index of this device's first row (0 on one device)."""
    return 0 if axis_name is None else jax.lax.axis_index(axis_name) * n_local


def row_mask(n_local: int, n: int, axis_name):
    """Mask of this device's rows that are real points (global index ``< n``; the rows past
    ``n`` are padding)."""
    return jnp.arange(n_local) + row_offset(n_local, axis_name) < n


def take_rows(x, idx, axis_name):
    """``x[idx]`` for global row indices ``idx``: the owner of each row contributes it
    (one ``psum`` of ``len(idx)`` rows)."""
    if axis_name is None:
        return x[idx]
    n_local = x.shape[0]
    local = idx - row_offset(n_local, axis_name)
    own = (local >= 0) & (local < n_local)
    rows = x[jnp.clip(local, 0, n_local - 1)]
    return jax.lax.psum(jnp.where(own.reshape(own.shape + (1,) * (rows.ndim - own.ndim)),
                                  rows, jnp.zeros_like(rows)), axis_name)


def global_top(values, k: int, axis_name):
    """Global indices of the ``k`` largest ``values`` in the order of a stable descending
    sort (ties: the lower index first), from each device's local top ``k`` (an all-gather of
    ``k`` values and indices per device)."""
    if axis_name is None:
        return jax.lax.top_k(values, k)[1]
    n_local = values.shape[0]
    if n_local < k:
        values = jnp.pad(values, (0, k - n_local), constant_values=-jnp.inf)
    v, i = jax.lax.top_k(values, k)
    i = jnp.where(i < n_local, i + row_offset(n_local, axis_name), jnp.iinfo(jnp.int32).max)
    v, i = (jax.lax.all_gather(t, axis_name).reshape(-1) for t in (v, i))
    _, i = jax.lax.sort((-v, i), num_keys=2)
    return i[:k]


def merge_top_k(top, k: int, axis_name):
    """The ``k`` largest values per row among the devices' per-row top-``k`` lists ``top``
    ``(q, k)`` (descending; an all-gather of ``q k`` values per device)."""
    if axis_name is None:
        return top
    cand = jax.lax.all_gather(top, axis_name, axis=1, tiled=True)  # (q, P k)
    return jax.lax.top_k(cand, k)[0]


def cumsum(p, axis_name):
    """Inclusive cumulative sum along the (global) point axis and the global total."""
    c = jnp.cumsum(p)
    if axis_name is None:
        return c, c[-1]
    totals = jax.lax.all_gather(c[-1], axis_name)
    before = jnp.arange(totals.shape[0]) < jax.lax.axis_index(axis_name)
    return c + jnp.sum(jnp.where(before, totals, 0.0)), jnp.sum(totals)


def count_le(cdf, u, axis_name):
    """``searchsorted(cdf, u, side="right")`` over the global (sorted) ``cdf``."""
    if axis_name is None:
        return jnp.searchsorted(cdf, u, side="right")
    return jax.lax.psum(jnp.sum(cdf[None, :] <= u[:, None], axis=1), axis_name)


def logsumexp_rows(v, axis_name, mask=None, *, keepdims: bool = False):
    r"""Log-sum-exp over the (global) row axis 0 of ``v``; rows with ``mask`` False take no
    part.

    Sharded: each device's log-sum-exp $\ell^{(p)}$ is combined as
    $M + \log\sum_p \exp(\ell^{(p)} - M)$ with $M = \max_p \ell^{(p)}$ (one ``pmax`` and one
    ``psum`` of the trailing shape), which stays finite when every $\ell^{(p)}$ is large.
    """
    if mask is not None:
        v = jnp.where(mask.reshape(mask.shape + (1,) * (v.ndim - 1)), v, -jnp.inf)
    local = _lse(v, axis=0, keepdims=keepdims)
    return combine_logsumexp(local, axis_name)


def combine_logsumexp(lse, axis_name):
    """The global log-sum-exp from per-device ones (stable: global max first)."""
    if axis_name is None:
        return lse
    top = jax.lax.pmax(jax.lax.stop_gradient(lse), axis_name)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    return top + jnp.log(jax.lax.psum(jnp.exp(lse - top), axis_name))
