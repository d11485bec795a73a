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

import dataclasses
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from . import collectives

__all__ = ["COSTS", "NAMED_COSTS", "CostMatrix", "Geometry", "Minkowski", "PCost", "PNormP",
           "PointCloud", "SqPNorm", "pairwise_cost", "resolve_cost", "safe_sqrt"]

COSTS = ("sqeuclidean", "euclidean", "cosine", "dot")
#: every cost name ``resolve_cost`` accepts (``"manhattan"`` is ``Minkowski(1)``)
NAMED_COSTS = COSTS + ("manhattan",)


def safe_sqrt(s: Array) -> Array:
    # sqrt with a finite (zero) gradient at 0, so coincident points do not produce NaN.
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def _abs_pow(t: Array, p: float) -> Array:
    # |t|^p with derivative 0 at t = 0 (a subgradient for p = 1; a convention for p < 1, where
    # |t|^p has no finite derivative at 0)
    a = jnp.abs(t)
    pos = a > 0
    return jnp.where(pos, jnp.where(pos, a, 1.0) ** p, 0.0)


def _safe_pow(s: Array, r: float) -> Array:
    # s^r for s >= 0 with derivative 0 at s = 0 (coincident points: no NaN)
    pos = s > 0
    return jnp.where(pos, jnp.where(pos, s, 1.0) ** r, 0.0)


@dataclasses.dataclass(frozen=True)
class PCost:
    """A cost ``phi(sum_k |x_k - y_k|^p)`` (translation invariant); hashable by ``p``, so
    equal costs share a compiled program. Called on two points ``(d,)`` it is a custom cost
    ``c(x_i, y_j)``; :func:`pairwise_cost` evaluates it on all pairs directly."""

    p: float

    def __post_init__(self):
        name = type(self).__name__
        p = self.p
        try:
            ok = (not isinstance(p, (bool, str)) and math.isfinite(float(p))
                  and float(p) > 0)
        except (TypeError, ValueError, jax.errors.ConcretizationTypeError):
            ok = False
        if not ok:
            raise ValueError(f"`cost`: {name}(p) needs a concrete, finite Python number p > 0 "
                             f"(static: a new p compiles a new program), got p={p!r}.")
        object.__setattr__(self, "p", float(p))

    def _outer(self, s: Array) -> Array:  # sum_k |t_k|^p -> cost (zero-safe derivative)
        raise NotImplementedError

    def _plain(self, s):  # the same map with plain `**` (NumPy or JAX; no derivative needed)
        raise NotImplementedError

    def matrix(self, x: Float[Array, "n d"], y: Float[Array, "m d"]) -> Float[Array, "n m"]:
        """All pairs: ``(n, m)`` (forms the ``(n, m, d)`` differences)."""
        s = jnp.sum(_abs_pow(x[:, None, :] - y[None, :, :], self.p), axis=-1)
        return self._outer(s)

    def __call__(self, u: Float[Array, " d"], v: Float[Array, " d"]) -> Float[Array, ""]:
        return self._outer(jnp.sum(_abs_pow(u - v, self.p), axis=-1))

    def bound(self, rx: Array, ry: Array) -> Array:
        """An upper bound of the cost from bounds ``rx``, ``ry`` of the points' p-norms
        (triangle inequality; for p < 1, ``sum |t|^p`` is subadditive instead)."""
        p = self.p
        return self._plain((rx + ry) ** p if p >= 1 else rx ** p + ry ** p)


class Minkowski(PCost):
    r"""The Minkowski distance $c(x, y) = \lVert x - y\rVert_p = (\sum_k |x_k - y_k|^p)^{1/p}$
    (SciPy's ``cdist(..., "minkowski", p=p)``; ``Minkowski(1)`` is ``cost="manhattan"``,
    ``Minkowski(2)`` the Euclidean distance).

    Gradient at coincident points: 0 (a subgradient of the norm at 0, as for ``"euclidean"``);
    for ``p = 1`` the derivative of $|t|$ at $t = 0$ is taken as 0, a subgradient.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ot import Minkowski
      >>> float(Minkowski(1)(jnp.array([0.0, 0.0]), jnp.array([3.0, -4.0])))
      7.0
    """

    def _outer(self, s):
        return s if self.p == 1.0 else _safe_pow(s, 1.0 / self.p)

    def _plain(self, s):
        return s ** (1.0 / self.p)


class PNormP(PCost):
    r"""$c(x, y) = \lVert x - y\rVert_p^p / p = \frac1p \sum_k |x_k - y_k|^p$, ott-jax's
    ``costs.PNormP(p)`` (``PNormP(2)`` is half the squared Euclidean distance).

    Gradient: $\partial c / \partial x_k = \mathrm{sign}(t_k) |t_k|^{p-1}$, $t = x - y$;
    at $t_k = 0$ it is 0 (for ``p = 1``: the subgradient 0 of $|t|$).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ot import PNormP
      >>> float(PNormP(3)(jnp.array([1.0, 0.0]), jnp.array([-1.0, 1.0])))
      3.0
    """

    def _outer(self, s):
        return s / self.p

    def _plain(self, s):
        return s / self.p


class SqPNorm(PCost):
    r"""$c(x, y) = \tfrac12 \lVert x - y\rVert_p^2$, ott-jax's ``costs.SqPNorm(p)``
    (``SqPNorm(2)`` is half the squared Euclidean distance). Gradient 0 at coincident points.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ot import SqPNorm
      >>> float(SqPNorm(1)(jnp.array([0.0, 0.0]), jnp.array([1.0, -2.0])))
      4.5
    """

    def _outer(self, s):
        return 0.5 * _safe_pow(s, 2.0 / self.p)

    def _plain(self, s):
        return 0.5 * s ** (2.0 / self.p)


def resolve_cost(cost):
    """The cost a solver works with: a name of :data:`COSTS`, a callable (p-norm costs
    included), with ``"manhattan"`` turned into ``Minkowski(1)``; anything else raises a
    ``ValueError`` naming ``cost``."""
    if isinstance(cost, str):
        if cost == "manhattan":
            return Minkowski(1.0)
        if cost in COSTS:
            return cost
    elif callable(cost):
        return cost
    raise ValueError(f"`cost` must be one of {NAMED_COSTS}, a p-norm cost (Minkowski(p), "
                     f"PNormP(p), SqPNorm(p) from jaxclust.ot) or a callable c(x_i, y_j) -> "
                     f"scalar, got {cost!r}.")


def pairwise_cost(x: Float[Array, "n d"], y: Float[Array, "m d"],
                  cost: str | Callable) -> Float[Array, "n m"]:
    """Dense pairwise cost between the rows of ``x`` and ``y``.

    * ``"sqeuclidean"``: ``|x_i - y_j|^2`` (computed as ``|x|^2 + |y|^2 - 2 x.y``, a matmul);
    * ``"euclidean"``: ``|x_i - y_j|`` (zero-safe square root);
    * ``"cosine"``: ``1 - <x_i, y_j> / (|x_i| |y_j|)``, in ``[0, 2]``;
    * ``"dot"``: ``-<x_i, y_j>`` (larger similarity, smaller cost);
    * ``"manhattan"``: ``sum_k |x_ik - y_jk|`` (``Minkowski(1)``);
    * a p-norm cost :class:`Minkowski`, :class:`PNormP`, :class:`SqPNorm`: on all pairs at
      once (an ``(n, m, d)`` array of differences);
    * a callable ``c(x_i, y_j) -> scalar`` on two points ``(d,)``, evaluated by a double
      ``vmap`` (no centring: a custom cost need not be translation invariant).
    """
    if isinstance(cost, str) and cost == "manhattan":
        cost = Minkowski(1.0)
    if isinstance(cost, PCost):
        return cost.matrix(x, y)
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
        if isinstance(self.cost_fn, PCost):  # |x - y|_p <= |x|_p + |y|_p
            p = self.cost_fn.p
            rx = self.row_max(_safe_pow(jnp.sum(_abs_pow(x, p), 1), 1.0 / p))
            ry = jnp.max(_safe_pow(jnp.sum(_abs_pow(y, p), 1), 1.0 / p))
            return self.cost_fn.bound(rx, ry)
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
