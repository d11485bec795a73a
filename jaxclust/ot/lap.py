"""Exact linear assignment on the device: the Hungarian method with potentials.

A jittable, vmappable counterpart of ``scipy.optimize.linear_sum_assignment`` for small
problems (the cost is ``O(n^2 m)`` work in ``n`` sequential augmentations, each a
shortest-path search of at most ``m`` vectorised steps): no host callback, static shapes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._core import checks
from .._core.results import with_summary_repr

__all__ = ["LinearAssignment", "linear_sum_assignment"]


@with_summary_repr
class LinearAssignment(NamedTuple):
    """An optimal assignment (a pytree).

    Attributes:
      rows: row indices ``0..min(n, m) - 1`` of the assigned pairs, increasing (as SciPy).
      cols: the column assigned to each of ``rows``.
      cost: the total cost ``sum_k C[rows_k, cols_k]`` of the given matrix (differentiable in
        it: the gradient is the assignment's indicator matrix).
    """

    rows: Int[Array, " k"]
    cols: Int[Array, " k"]
    cost: Float[Array, ""]


def _hungarian(c):
    """Rows of ``c`` (n x m, n <= m) to distinct columns at minimum total cost.

    Shortest augmenting paths with dual potentials ``u`` (rows) and ``v`` (columns), as in
    Kuhn-Munkres / Jonker-Volgenant: row ``i`` is inserted by a Dijkstra search over reduced
    costs ``c_ij - u_i - v_j >= 0``; the potentials stay feasible, so the result is exact for
    any real costs (ties may be broken differently from SciPy: same total cost).
    Index 0 of the column arrays is a virtual column (the e-maxx formulation), rows are
    1-based in ``p``.
    """
    n, m = c.shape
    dtype = c.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    cpad = jnp.pad(c, ((1, 0), (1, 0)))  # 1-based rows and columns
    cols = jnp.arange(m + 1)

    def insert_row(i, state):
        u, v, p, way = state
        p = p.at[0].set(i)

        def search_cond(s):
            _, _, p, _, j0, _, _ = s
            return p[j0] != 0

        def search_body(s):
            u, v, p, way, j0, minv, used = s
            used = used.at[j0].set(True)
            i0 = p[j0]
            cur = cpad[i0] - u[i0] - v
            better = (~used) & (cur < minv)
            minv = jnp.where(better, cur, minv)
            way = jnp.where(better, j0, way)
            free = jnp.where(used, inf, minv)
            free = free.at[0].set(inf)
            j1 = jnp.argmin(free).astype(jnp.int32)
            delta = free[j1]
            u = u.at[p].add(jnp.where(used, delta, 0.0))
            v = jnp.where(used, v - delta, v)
            minv = jnp.where(used, minv, minv - delta)
            return u, v, p, way, j1, minv, used

        minv = jnp.full((m + 1,), inf)
        used = jnp.zeros((m + 1,), bool)
        u, v, p, way, j0, _, _ = jax.lax.while_loop(
            search_cond, search_body, (u, v, p, way, jnp.asarray(0, jnp.int32), minv, used))

        def back_cond(s):
            return s[1] != 0

        def back_body(s):
            p, j0 = s
            j1 = way[j0]
            return p.at[j0].set(p[j1]), j1

        p, _ = jax.lax.while_loop(back_cond, back_body, (p, j0))
        return u, v, p, way

    init = (jnp.zeros((n + 1,), dtype), jnp.zeros((m + 1,), dtype),
            jnp.zeros((m + 1,), jnp.int32), jnp.zeros((m + 1,), jnp.int32))
    _, _, p, _ = jax.lax.fori_loop(1, n + 1, insert_row, init)
    # column j (1-based) holds row p[j] - 1 (0: unassigned); invert to the column of each row
    col_of_row = jnp.zeros((n + 1,), jnp.int32).at[p].set(cols.astype(jnp.int32))
    return col_of_row[1:] - 1


@functools.partial(jax.jit, static_argnames="maximize")
def _solve(cost, maximize: bool):
    c = -cost if maximize else cost
    transpose = c.shape[0] > c.shape[1]
    if transpose:
        c = c.T
    c = jax.lax.stop_gradient(c)
    # shift to a non-negative range (exactness does not need it; it keeps the sums tame)
    c = c - jnp.min(c)
    col = _hungarian(c)
    k = c.shape[0]
    if transpose:  # rows of the original matrix are the columns found: sort them
        order = jnp.argsort(col)
        rows, cols = col[order], jnp.arange(k)[order]
    else:
        rows, cols = jnp.arange(k), col
    return LinearAssignment(rows, cols, jnp.sum(cost[rows, cols]))


def linear_sum_assignment(
    cost: Float[Array, "n m"],
    *,
    maximize: bool = False,
) -> LinearAssignment:
    r"""Exact linear assignment, jittable and vmappable (SciPy's ``linear_sum_assignment``).

    $$
    \min_{\sigma} \sum_{i} C_{i \sigma(i)}
    $$

    over injective maps from the rows to the columns (from the columns to the rows when
    ``n > m``; ``maximize=True`` maximises). Solved by the Hungarian method in its
    shortest-augmenting-path form (Kuhn 1955; Jonker & Volgenant 1987): ``min(n, m)``
    augmentations, each a Dijkstra search over reduced costs kept non-negative by dual
    potentials. **Guarantee**: the assignment is optimal for any finite real costs, exactly
    (not up to an auction's ``n * eps``); with ties, another optimal assignment than SciPy's
    may be returned (the same total cost). Cost ``O(min(n,m)^2 max(n,m))`` as a sequential
    loop of vector steps: meant for small problems (a contingency table, ``n <= ~1000``).
    Under ``vmap`` every problem runs to the longest search of the batch.

    Args:
      cost: the cost matrix ``(n, m)``, finite.
      maximize: maximise the total instead (static).

    Returns:
      :class:`LinearAssignment` ``(rows, cols, cost)``, ``min(n, m)`` pairs with ``rows``
      increasing, as SciPy returns them.

    Raises:
      ValueError: ``cost`` not 2-D, empty or not finite.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ot import linear_sum_assignment
      >>> res = linear_sum_assignment(jnp.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0],
      ...                                        [3.0, 2.0, 2.0]]))
      >>> res.cols.tolist(), float(res.cost)
      ([1, 0, 2], 5.0)

    References:
      Kuhn, *The Hungarian method for the assignment problem*, Naval Res. Logist. Q. 2
      (1955); Jonker & Volgenant, *A shortest augmenting path algorithm for dense and sparse
      linear assignment problems*, Computing 38 (1987).
    """
    if not isinstance(maximize, bool):
        raise ValueError(f"`maximize` must be a Python bool, got {maximize!r}.")
    c = checks.as_float_array(cost, "cost")
    checks.check_ndim(c, "cost", 2, "(n, m)")
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"`cost` is empty (shape {tuple(c.shape)}); pass at least one row "
                         "and one column.")
    c = checks.ensure(c, ~jnp.isfinite(c), "`cost` contains NaN or Inf; the assignment is "
                      "exact for finite costs only: forbid a pair with a large finite cost "
                      "(e.g. 1e6 times the largest allowed one) instead of Inf.")
    return _solve(c, maximize)
