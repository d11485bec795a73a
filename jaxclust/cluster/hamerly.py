"""Lloyd's iterations with Hamerly's distance bounds: the same iterates, fewer distances.

Package-internal; used by :func:`jaxclust.cluster.kmeans` with ``algorithm="hamerly"`` (and by
``"auto"`` on large problems).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._core.fixed_point import cond_lazy, report_progress
from .._core.precision import HIGHEST
from .lloyd import KMeansResult, _moved, all_finite, nearest_two, relocate_farthest

__all__ = ["hamerly_iterations", "hamerly_rows"]


def hamerly_rows(k: int) -> int:
    """Rows per block of the pruned assignment: about ``2**20`` score entries (4 MiB in
    float32), between 256 and 8192 rows."""
    return int(min(8192, max(256, (1 << 20) // k)))


def _pair_half_gaps(c, margin):
    """``s_j = min_{l != j} |c_j - c_l| / 2``, rounded down by ``margin`` (a squared length)."""
    k = c.shape[0]
    c_sq = jnp.sum(c * c, axis=1)
    g = c_sq[:, None] + c_sq[None, :] - 2.0 * jnp.matmul(c, c.T, precision=HIGHEST)
    g = jnp.where(jnp.eye(k, dtype=bool), jnp.inf, g)
    return 0.5 * jnp.sqrt(jnp.maximum(jnp.min(g, axis=1) - margin, 0.0))


def _compact(mask):
    """``(order, pos)``: the indices of the True entries of ``mask`` first (in order), then
    ``n`` (the stable compaction of :func:`jnp.nonzero` with ``size=n``), and each entry's
    position in that list (``pos[i]``, meaningful where ``mask[i]``), by a cumulative sum
    and one scatter (measured on the 2-core CPU at n = 100,000: half of ``nonzero``'s time;
    an ``associative_scan`` was faster still but added ~0.5 s of compile time)."""
    n = mask.shape[0]
    pos = jnp.cumsum(mask.astype(jnp.int32)) - 1
    order = jnp.full((n,), n, jnp.int32).at[jnp.where(mask, pos, n)].set(
        jnp.arange(n, dtype=jnp.int32), mode="drop", unique_indices=True)
    return order, pos


def _assign_pruned(x, x_sq, c, lab, upper, lower, rows, slack, around=None):
    """Exact nearest centre of every point, recomputed only where the bounds allow a change.

    ``upper[i] >= |x_i - c_{lab_i}|`` and ``lower[i] <= min_{j != lab_i} |x_i - c_j|`` on
    entry (the bounds of Hamerly 2010). A point keeps its label when ``upper <= max(lower,
    s_{lab})``, ``s`` half the gap of its centre to the nearest other centre (triangle
    inequality); every other point gets its two smallest distances from a matrix product in
    compacted blocks of ``rows``. Returns the labels and the refreshed bounds. ``slack[i]``
    bounds the rounding of a squared distance of point ``i`` computed as
    ``|x|^2 - 2 <x, c> + |c|^2``: bounds are widened by it, so a point whose two nearest
    centres are within rounding of each other is always recomputed (as Lloyd would).
    ``around``: ``c`` and ``x_sq`` are given around that point, and each gathered block of
    rows is moved alike (``lloyd.origin``)."""
    n, k = x.shape[0], c.shape[0]
    c_sq = jnp.sum(c * c, axis=1)
    half_gap = _pair_half_gaps(c, 4.0 * jnp.max(slack))
    bound = jnp.maximum(lower, half_gap[jnp.clip(lab, 0, k - 1)])
    need = ~(upper <= bound) | (lab < 0)
    count = jnp.sum(need.astype(jnp.int32))
    order, pos = _compact(need)
    n_blocks = (count + rows - 1) // rows
    order = jnp.concatenate([order, jnp.full((rows,), n, order.dtype)])  # slices stay in range

    # results go to compact buffers (in order of `order`) by in-place slice updates, and
    # to their points by one gather after the loop (point i's row is pos[i])
    buf_lab = jnp.zeros((n + rows,), jnp.int32)
    buf_up = jnp.zeros((n + rows,), x.dtype)
    buf_lo = jnp.zeros((n + rows,), x.dtype)

    def body(carry):
        b, buf_lab, buf_up, buf_lo = carry
        idx = jax.lax.dynamic_slice(order, (b * rows,), (rows,))
        safe = jnp.minimum(idx, n - 1)
        a1, m1, m2 = nearest_two(_moved(x[safe], around), c, c_sq)
        xs, sl = x_sq[safe], slack[safe]
        up = jnp.sqrt(jnp.maximum(xs + m1, 0.0) + sl)
        lo = jnp.sqrt(jnp.maximum(xs + m2 - sl, 0.0))
        at = (b * rows,)
        return (b + 1, jax.lax.dynamic_update_slice(buf_lab, a1, at),
                jax.lax.dynamic_update_slice(buf_up, up, at),
                jax.lax.dynamic_update_slice(buf_lo, lo, at))

    _, buf_lab, buf_up, buf_lo = jax.lax.while_loop(
        lambda s: s[0] < n_blocks, body,
        (jnp.asarray(0, n_blocks.dtype), buf_lab, buf_up, buf_lo))
    at = jnp.clip(pos, 0, n - 1)
    lab = jnp.where(need, buf_lab[at], lab)
    upper = jnp.where(need, buf_up[at], upper)
    lower = jnp.where(need, buf_lo[at], lower)
    return lab, upper, lower, count


def hamerly_iterations(x, w, centers, max_iter, tol_abs, rows, weighted=True, callback=None,
                       around=None, tol_rel=None):
    """:func:`jaxclust.cluster.lloyd.lloyd_iterations` (one device, not spherical) with
    Hamerly's bounds: each iteration assigns every point to its nearest centre exactly as
    Lloyd does, computing distances only for the points whose bounds do not rule out a
    change. Same stopping rules, same empty-cluster relocation, same result fields.

    The bounds move with the centres: after an update with displacements
    ``delta_j = |c'_j - c_j|``, ``upper += delta_{lab}`` and ``lower -= max_{j != lab}
    delta_j`` (Hamerly 2010), each rounded outwards.

    ``around`` (``(1, d)``): the iterations run in coordinates around that point, as
    Lloyd's (``lloyd.origin``), the gathered blocks of rows moved as they are used; the
    centres are given and returned in the points' own coordinates. ``tol_rel``: as in
    ``lloyd_iterations``, the tolerance relative to the mean variance."""
    n, d = x.shape
    k = centers.shape[0]
    dtype = x.dtype
    if around is not None:
        centers = centers - around
    x_sq = jnp.sum(_moved(x, around) ** 2, axis=1)
    if tol_rel is not None:  # as in lloyd_iterations (the barrier: no moved copy of x)
        x_sq = jax.lax.optimization_barrier(x_sq)
        tol_abs = tol_rel * jnp.sum(x_sq) / (n * d)
    eps = jnp.finfo(dtype).eps
    # rounding of |x|^2 - 2 <x, c> + |c|^2 in float: a few ulps of |x|^2 + |c|^2 (d terms
    # of the dot product each round; the bound is generous, it costs only a few more rows).
    # With `around` the terms are those around it (x_sq = |x - m|^2, c - m); moving a row
    # rounds each coordinate by at most eps |x - m|, which changes a squared distance by at
    # most ~eps (|x - m|^2 + |c - m|^2): inside the same bound
    grow = 1.0 + 8.0 * eps

    def slack_for(c):
        c_sq_max = jnp.maximum(jnp.max(jnp.sum(c * c, axis=1)), 0.0)
        return (4.0 * d + 16.0) * eps * (x_sq + c_sq_max)

    def update(c, lab, upper, lower):
        """Centres from the labels ``lab`` of ``c``; the bounds moved with them."""
        xm = _moved(x, around)
        xw = w[:, None] * xm if weighted else xm
        sums = jax.ops.segment_sum(xw, lab, num_segments=k)
        mass = jax.ops.segment_sum(w, lab, num_segments=k)
        new = sums / jnp.where(mass > 0, mass, 1.0)[:, None]
        empty = mass <= 0

        def relocate():  # as Lloyd: to the points farthest from their centre
            cl = c[lab]
            dist = w * jnp.maximum(x_sq - 2.0 * jnp.sum(_moved(x, around) * cl, axis=1)
                                   + jnp.sum(cl * cl, 1), 0.0)
            return relocate_farthest(x, dist, empty, new, around)

        new = cond_lazy(jnp.any(empty), relocate, new)
        # move the bounds with the centres (rounded outwards)
        delta = jnp.sqrt(jnp.sum((new - c) ** 2, axis=1)) * grow
        top2 = jax.lax.top_k(delta, 2)[0] if k > 1 else jnp.stack([delta[0], delta[0]])
        other = jnp.where(delta[lab] >= top2[0], top2[1], top2[0])
        return new, (upper + delta[lab]) * grow, (lower - other) / grow

    # One loop for the iterations and the final assignment, so that the compiled program
    # holds one copy of the pruned assignment: every trip assigns the points to the current
    # centres; while the stopping rules allow, the centres are then updated (an iteration),
    # otherwise the trip was the final assignment and the loop ends.
    def body(s):
        c, lab_old, upper, lower, it, shift, same, _ = s
        go = (it < max_iter) & (shift > tol_abs) & ~same  # Lloyd's stopping rules
        lab, upper, lower, _ = _assign_pruned(x, x_sq, c, lab_old, upper, lower, rows,
                                              slack_for(c), around)
        new, up_new, lo_new = update(c, lab, upper, lower)
        new_shift = jnp.sum((new - c) ** 2)
        changed = jnp.sum(lab != lab_old)
        report_progress(callback, it + 1, new_shift, go)
        pick = lambda a, b: jnp.where(go, a, b)  # noqa: E731
        return (pick(new, c), lab, pick(up_new, upper), pick(lo_new, lower),
                it + go.astype(it.dtype), pick(new_shift, shift),
                pick((changed == 0) & (it > 0), same), ~go)

    init = (centers, jnp.full((n,), -1, jnp.int32), jnp.full((n,), jnp.inf, dtype),
            jnp.zeros((n,), dtype), jnp.asarray(0), jnp.asarray(jnp.inf, dtype),
            jnp.asarray(False), jnp.asarray(False))
    c, lab, upper, lower, it, shift, same, _ = jax.lax.while_loop(
        lambda s: ~s[7], body, init)
    cl = c[lab]
    dist = jnp.maximum(x_sq - 2.0 * jnp.sum(_moved(x, around) * cl, axis=1)
                       + jnp.sum(cl * cl, axis=1), 0.0)
    inertia = jnp.sum(w * dist)
    c = c if around is None else c + around
    return KMeansResult(c, lab, inertia, it,
                        ((shift <= tol_abs) | same) & all_finite(c, inertia))
