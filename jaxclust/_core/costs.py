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

**Row-sharded point clouds.** Inside ``jax.shard_map`` a :class:`PointCloud` may hold only
this device's rows of ``x`` (``axis_name`` set, ``row_mask`` marking the real rows, ``n_rows``
the global number of real rows): every reduction over the row index ``i`` (the column
log-sum-exp, ``P^T w``, the cost sums and moments, the centring) then combines the local
partial results with ``psum`` / ``pmax`` over ``axis_name`` (through
:mod:`jaxclust._core.collectives`), and masked (padding) rows take no part, so only ``O(m)``
numbers cross devices per reduction. Reductions over ``j`` stay local. Three hooks let one
implicit gradient serve one device and many (``ot._solver.implicit_pullback``):
``mask_rows`` (zero the padding rows), ``local`` (this device's rows with no collective, to
differentiate a device's share of a sum) and ``sum_replicated`` (add up the devices'
cotangents of the replicated leaves); on one device they are identities.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from . import collectives

__all__ = ["COSTS", "CostMatrix", "Geometry", "PointCloud", "pairwise_cost", "safe_sqrt"]

COSTS = ("sqeuclidean", "euclidean", "cosine", "dot")


def safe_sqrt(s: Array) -> Array:
    # sqrt with a finite (zero) gradient at 0, so coincident points do not produce NaN.
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def pairwise_cost(x: Float[Array, "n d"], y: Float[Array, "m d"],
                  cost: str | Callable) -> Float[Array, "n m"]:
    """Dense pairwise cost between the rows of ``x`` and ``y``.

    * ``"sqeuclidean"``: ``|x_i - y_j|^2`` (computed as ``|x|^2 + |y|^2 - 2 x.y``, a matmul);
    * ``"euclidean"``: ``|x_i - y_j|`` (zero-safe square root);
    * ``"cosine"``: ``1 - <x_i, y_j> / (|x_i| |y_j|)``, in ``[0, 2]``;
    * ``"dot"``: ``-<x_i, y_j>`` (larger similarity, smaller cost);
    * a callable ``c(x_i, y_j) -> scalar`` on two points ``(d,)``, evaluated by a double
      ``vmap`` (no centring: a custom cost need not be translation invariant).
    """
    if callable(cost):
        c = jax.vmap(jax.vmap(cost, in_axes=(None, 0)), in_axes=(0, None))(x, y)
        if c.shape != (x.shape[0], y.shape[0]):
            raise ValueError(f"`cost` must map two points of shape ({x.shape[1]},) to a scalar; "
                             f"on all pairs it returned shape {tuple(c.shape)} instead of "
                             f"{(x.shape[0], y.shape[0])}.")
        if not jnp.issubdtype(c.dtype, jnp.floating):
            raise ValueError(f"`cost` must return floating values, got dtype {c.dtype}.")
        return c.astype(jnp.result_type(x.dtype, y.dtype))
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

    # ---- hooks for row-sharded geometries (identities on one device) -------------------
    @property
    def is_sharded(self) -> bool:
        """Rows split over devices (reductions over ``i`` end with a collective)."""
        return False

    @property
    def n_rows(self) -> int:
        """Number of (real) rows over all devices."""
        return self.shape[0]

    def _row_potential(self, h: Array) -> Array:
        """A row potential entering a reduction over ``i`` (padding rows masked out)."""
        return h

    def _combine_lse(self, lse: Array) -> Array:
        """Combine per-device log-sum-exps over ``i`` into the global one."""
        return lse

    def allreduce_sum(self, t):
        """Sum of a per-device partial result over the devices (identity on one device)."""
        return t

    def row_sum(self, v: Array) -> Array:
        """``sum_i v_i`` over the real rows of all devices."""
        return jnp.sum(v, axis=0)

    def mask_rows(self, v: Array) -> Array:
        """``v`` with its padding rows (if any) set to zero."""
        return v

    def local(self) -> Geometry:
        """This device's rows of the geometry, with no collective and no row mask: its
        reductions over ``i`` run over all rows of this device, padding included (weight
        them with :meth:`mask_rows`; a mask by ``-inf`` potentials would give NaN
        derivatives in ``eps``). ``self`` on one device."""
        return self

    def sum_replicated(self, ct):
        """Cotangent of the geometry from per-device cotangents of :meth:`local` parts: the
        replicated leaves' cotangents summed over the devices (identity on one device)."""
        return ct

    def row_max(self, v: Array) -> Array:
        """``max_i v_i`` over the real rows of all devices."""
        return jnp.max(v, axis=0)

    def cost_scale(self) -> Array:
        """An upper bound of ``max |C_ij|`` (cheap; used to rescale sums of ``C**2``)."""
        raise NotImplementedError

    # ---- reductions built on `reduce` -------------------------------------------------
    def lse(self, h: Array, eps, axis: int) -> Array:
        """``axis=1``: ``LSE_j((h_j - C_ij)/eps)`` (length n); ``axis=0``: over ``i``."""

        def fn(c, _, h):
            return logsumexp((h[None, :] - c) / eps, axis=1)

        if axis == 1:
            return self.reduce(fn, None, h, axis)
        return self._combine_lse(self.reduce(fn, None, self._row_potential(h), axis))

    def plan_apply(self, f: Array, g: Array, eps, w: Array, axis: int) -> Array:
        """``axis=1``: ``P @ w`` (length n); ``axis=0``: ``P.T @ w`` (length m)."""
        rows, cols = (f, g) if axis == 1 else (g, self._row_potential(f))

        def fn(c, r, cw):
            col, ww = cw
            p = jnp.exp((r[:, None] + col[None, :] - c) / eps)
            return jnp.matmul(p, ww, precision=jax.lax.Precision.HIGHEST)  # as the dense plan

        out = self.reduce(fn, rows, (cols, w), axis)
        return out if axis == 1 else self.allreduce_sum(out)

    def plan_cost_sums(self, f: Array, g: Array, eps):
        """Row sums of ``P`` and ``sum_ij P_ij C_ij`` in one pass."""

        def fn(c, r, col):
            p = jnp.exp((r[:, None] + col[None, :] - c) / eps)
            return jnp.stack([jnp.sum(p, 1), jnp.sum(p * c, 1)], axis=1)

        out = self.reduce(fn, f, g, 1)
        return out[:, 0], self.row_sum(out[:, 1])

    def plan(self, f: Array, g: Array, eps) -> Array:
        return jnp.exp((f[:, None] + g[None, :] - self.cost_matrix()) / eps)

    def cost_moments(self):
        """Mean and standard deviation of the entries of ``C`` (chunked when online).

        The sums run on ``C * k`` with ``k`` a power of two near ``1 / max |C|`` (exact
        scaling, no gradient), so ``sum C**2`` cannot overflow while ``C`` itself is finite.
        """
        m = self.shape[1]
        scale = jax.lax.stop_gradient(self.cost_scale())
        ok = jnp.isfinite(scale) & (scale > 0)
        k = jnp.where(ok, jnp.exp2(-jnp.round(jnp.log2(jnp.where(ok, scale, 1.0)))), 1.0)

        def fn(c, _, __):
            c = c * k
            return jnp.stack([jnp.sum(c, 1), jnp.sum(c * c, 1)], axis=1)

        s = self.row_sum(self.reduce(fn, None, None, 1)) / (self.n_rows * m)
        return s[0] / k, jnp.sqrt(jnp.maximum(s[1] - s[0] ** 2, 0.0)) / k


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

    def cost_scale(self):
        return jnp.max(jnp.abs(self.cost), initial=0.0)

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
    cost_fn: str | Callable = eqx.field(static=True, default="sqeuclidean")
    chunk_size: int | None = eqx.field(static=True, default=None)
    # row sharding (inside shard_map only; see the module docstring)
    row_mask: Array | None = None
    axis_name: str | None = eqx.field(static=True, default=None)
    n_global: int | None = eqx.field(static=True, default=None)

    @property
    def shape(self):
        return (self.x.shape[0], self.y.shape[0])

    @property
    def dtype(self):
        return self.x.dtype

    @property
    def is_online(self):
        return self.chunk_size is not None

    @property
    def is_sharded(self):
        return self.axis_name is not None

    @property
    def n_rows(self):
        return self.shape[0] if self.axis_name is None else self.n_global

    def _row_potential(self, h):
        if self.row_mask is None:
            return h
        return jnp.where(self.row_mask, h, -jnp.inf)

    def _combine_lse(self, lse):
        return collectives.combine_logsumexp(lse, self.axis_name)

    def allreduce_sum(self, t):
        return collectives.psum(t, self.axis_name)

    def _masked(self, v, fill):
        if self.row_mask is None:
            return v
        mask = self.row_mask.reshape(self.row_mask.shape + (1,) * (v.ndim - 1))
        return jnp.where(mask, v, fill)

    def row_sum(self, v):
        return collectives.psum(jnp.sum(self._masked(v, 0), axis=0), self.axis_name)

    def mask_rows(self, v):
        return self._masked(v, 0)

    def local(self):
        if self.axis_name is None:
            return self
        return PointCloud(self.x, self.y, self.cost_fn, self.chunk_size)

    def sum_replicated(self, ct):
        if self.axis_name is None:
            return ct
        return eqx.tree_at(lambda t: t.y, ct, collectives.psum(ct.y, self.axis_name))

    def row_max(self, v):
        return collectives.pmax(jnp.max(self._masked(v, -jnp.inf), axis=0), self.axis_name)

    def cost_scale(self):
        x, y = self._centred()
        nx = self.row_max(jnp.sum(jnp.square(x), 1))
        ny = jnp.max(jnp.sum(jnp.square(y), 1))
        if self.cost_fn == "sqeuclidean":
            return 2.0 * (nx + ny)  # |x - y|^2 <= 2 |x|^2 + 2 |y|^2
        if self.cost_fn == "euclidean":
            return jnp.sqrt(nx) + jnp.sqrt(ny)
        if self.cost_fn == "dot":
            return jnp.sqrt(nx) * jnp.sqrt(ny)
        if callable(self.cost_fn):  # no bound known: the largest |C_ij|, one (chunked) pass
            big = self.reduce(lambda c, _, __: jnp.max(jnp.abs(c), axis=1), None, None, 1)
            return self.row_max(big)
        return jnp.asarray(2.0, x.dtype)  # cosine, in [0, 2]

    def _centred(self):
        if self.cost_fn in ("sqeuclidean", "euclidean"):
            m = self.shape[1]
            total = self.n_rows + m
            # the mean as a sum of pre-divided terms: no overflow for values near the max
            centre = self.row_sum(self.x / total) + jnp.sum(self.y / total, 0)
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
