"""Pairwise costs and the two geometries the solvers work on.

A geometry knows how to produce its cost matrix ``C`` (``n x m``) and, more importantly, how
to evaluate the few reductions a solver needs *without* materialising ``C`` when asked to:

* ``lse(h, eps, axis)``: soft-minima ``LSE_j((h_j - C_ij) / eps)`` over rows or columns;
* ``plan_apply(f, g, eps, w, axis)``: ``P w`` or ``P^T w`` for ``P = exp((f + g - C) / eps)``;
* ``plan_dot(f, g, eps, W)``-style reductions through :meth:`Geometry.reduce`.

:class:`CostMatrix` holds a dense matrix. :class:`PointCloud` holds two point clouds and a
cost name; with ``chunk_size`` set it is *online*: every reduction runs over blocks of
``chunk_size`` rows (``jax.lax.map`` with a checkpointed body), so memory is
``O(chunk_size * m)`` in the forward and the backward pass alike.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

__all__ = ["COSTS", "CostMatrix", "Geometry", "PointCloud", "pairwise_cost", "safe_sqrt"]

COSTS = ("sqeuclidean", "euclidean", "cosine", "dot")


def safe_sqrt(s: Array) -> Array:
    # sqrt with a finite (zero) gradient at 0, so coincident points do not produce NaN.
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def pairwise_cost(x: Float[Array, "n d"], y: Float[Array, "m d"], cost: str) -> Float[Array, "n m"]:
    """Dense pairwise cost between the rows of ``x`` and ``y``.

    * ``"sqeuclidean"``: ``|x_i - y_j|^2`` (computed as ``|x|^2 + |y|^2 - 2 x.y``, a matmul);
    * ``"euclidean"``: ``|x_i - y_j|`` (zero-safe square root);
    * ``"cosine"``: ``1 - <x_i, y_j> / (|x_i| |y_j|)``, in ``[0, 2]``;
    * ``"dot"``: ``-<x_i, y_j>`` (larger similarity, smaller cost).
    """
    prec = jax.lax.Precision.HIGHEST
    if cost in ("sqeuclidean", "euclidean"):
        sq = (
            jnp.sum(x * x, axis=-1)[:, None]
            + jnp.sum(y * y, axis=-1)[None, :]
            - 2.0 * jnp.matmul(x, y.T, precision=prec)
        )
        sq = jnp.maximum(sq, 0.0)
        return sq if cost == "sqeuclidean" else safe_sqrt(sq)
    if cost == "cosine":
        xn = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), 1e-30))
        yn = y * jax.lax.rsqrt(jnp.maximum(jnp.sum(y * y, -1, keepdims=True), 1e-30))
        return 1.0 - jnp.matmul(xn, yn.T, precision=prec)
    if cost == "dot":
        return -jnp.matmul(x, y.T, precision=prec)
    raise ValueError(f"`cost` must be one of {COSTS}, got {cost!r}.")


class Geometry(eqx.Module):
    """Interface of a transport geometry (see the module docstring)."""

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def dtype(self):
        raise NotImplementedError

    @property
    def is_online(self) -> bool:
        return False

    def cost_matrix(self) -> Array:
        raise NotImplementedError

    def reduce(self, fn: Callable, row_args, col_args, axis: int):
        """Apply ``fn(C_rows, row_args_block, col_args)`` to blocks of rows of ``C``
        (``axis=1``) or of ``C^T`` (``axis=0``), concatenating the per-row outputs."""
        raise NotImplementedError

    # ---- reductions built on `reduce` -------------------------------------------------
    def lse(self, h: Array, eps, axis: int) -> Array:
        """``axis=1``: ``LSE_j((h_j - C_ij)/eps)`` (length n); ``axis=0``: over ``i``."""

        def fn(c, _, h):
            return logsumexp((h[None, :] - c) / eps, axis=1)

        return self.reduce(fn, None, h, axis)

    def plan_apply(self, f: Array, g: Array, eps, w: Array, axis: int) -> Array:
        """``axis=1``: ``P @ w`` (length n); ``axis=0``: ``P.T @ w`` (length m)."""
        rows, cols = (f, g) if axis == 1 else (g, f)

        def fn(c, r, cw):
            col, ww = cw
            return jnp.exp((r[:, None] + col[None, :] - c) / eps) @ ww

        return self.reduce(fn, rows, (cols, w), axis)

    def plan_cost_sums(self, f: Array, g: Array, eps):
        """Row sums of ``P`` and ``sum_ij P_ij C_ij`` in one pass."""

        def fn(c, r, col):
            p = jnp.exp((r[:, None] + col[None, :] - c) / eps)
            return jnp.stack([jnp.sum(p, 1), jnp.sum(p * c, 1)], axis=1)

        out = self.reduce(fn, f, g, 1)
        return out[:, 0], jnp.sum(out[:, 1])

    def plan(self, f: Array, g: Array, eps) -> Array:
        return jnp.exp((f[:, None] + g[None, :] - self.cost_matrix()) / eps)

    def cost_moments(self):
        """Mean and standard deviation of the entries of ``C`` (chunked when online)."""
        n, m = self.shape

        def fn(c, _, __):
            return jnp.stack([jnp.sum(c, 1), jnp.sum(c * c, 1)], axis=1)

        s = jnp.sum(self.reduce(fn, None, None, 1), axis=0) / (n * m)
        return s[0], jnp.sqrt(jnp.maximum(s[1] - s[0] ** 2, 0.0))


class CostMatrix(Geometry):
    """A dense cost matrix ``C`` of shape ``(n, m)``."""

    cost: Float[Array, "n m"]

    @property
    def shape(self):
        return self.cost.shape

    @property
    def dtype(self):
        return self.cost.dtype

    def cost_matrix(self):
        return self.cost

    def reduce(self, fn, row_args, col_args, axis):
        c = self.cost if axis == 1 else self.cost.T
        return fn(c, row_args, col_args)


class PointCloud(Geometry):
    """Two point clouds ``x`` (n x d) and ``y`` (m x d) with a named cost.

    For the Euclidean costs both clouds are centred on their joint mean first (the cost is
    translation invariant), which keeps the ``|x|^2 + |y|^2 - 2 x.y`` expansion accurate in
    float32 for data far from the origin.
    """

    x: Float[Array, "n d"]
    y: Float[Array, "m d"]
    cost_fn: str = eqx.field(static=True, default="sqeuclidean")
    chunk_size: int | None = eqx.field(static=True, default=None)

    @property
    def shape(self):
        return (self.x.shape[0], self.y.shape[0])

    @property
    def dtype(self):
        return self.x.dtype

    @property
    def is_online(self):
        return self.chunk_size is not None

    def _centred(self):
        if self.cost_fn in ("sqeuclidean", "euclidean"):
            n, m = self.shape
            centre = (jnp.sum(self.x, 0) + jnp.sum(self.y, 0)) / (n + m)
            return self.x - centre[None, :], self.y - centre[None, :]
        return self.x, self.y

    def cost_matrix(self):
        x, y = self._centred()
        return pairwise_cost(x, y, self.cost_fn)

    def reduce(self, fn, row_args, col_args, axis):
        x, y = self._centred()
        rows, cols = (x, y) if axis == 1 else (y, x)
        if self.chunk_size is None:
            return fn(pairwise_cost(rows, cols, self.cost_fn), row_args, col_args)

        size = rows.shape[0]
        c = self.chunk_size
        n_blocks = -(-size // c)
        pad = n_blocks * c - size

        def blocks(t):
            t = jnp.pad(t, [(0, pad)] + [(0, 0)] * (t.ndim - 1))
            return t.reshape(n_blocks, c, *t.shape[1:])

        @jax.checkpoint
        def body(args):
            r, ra = args
            return fn(pairwise_cost(r, cols, self.cost_fn), ra, col_args)

        out = jax.lax.map(body, (blocks(rows), jax.tree_util.tree_map(blocks, row_args)))
        return jax.tree_util.tree_map(lambda o: o.reshape(n_blocks * c, *o.shape[2:])[:size], out)
