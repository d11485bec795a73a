"""Mini-batch k-means: a streaming centroid update for training loops, and a convenience fit."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.collectives import psum, row_offset, take_rows
from .._core.programs import EagerProgram
from .._core.results import with_summary_repr
from .lloyd import (
    KMeansResult,
    _finite_and_representable,
    _normalize_rows,
    _unit_weights,
    _validate_optional,
    _validate_token,
    _with_token,
    all_finite,
    assign_near_centres,
    check_spherical,
    greedy_plusplus,
    with_envelope_gradients,
)

__all__ = [
    "MiniBatchKMeansState",
    "minibatch_kmeans",
    "minibatch_kmeans_init",
    "minibatch_kmeans_update",
]


@with_summary_repr
class MiniBatchKMeansState(NamedTuple):
    """State of mini-batch k-means (a pytree; carry it through a training loop).

    Attributes:
      centroids: current centres ``(k, d)``.
      counts: total weight assigned to each centre so far ``(k,)`` (the inverse learning
        rates).
      n_since_reassign: points seen since the last low-count reassignment.
      step: number of updates applied.
    """

    centroids: Float[Array, "k d"]
    counts: Float[Array, " k"]
    n_since_reassign: Int[Array, ""]
    step: Int[Array, ""]


def minibatch_kmeans_init(centroids: Float[Array, "k d"]) -> MiniBatchKMeansState:
    """Start mini-batch k-means from given centres (e.g. ``kmeans_plusplus`` on a sample).

    Example:
      >>> import jax
      >>> from jaxclust.cluster import kmeans_plusplus, minibatch_kmeans_init
      >>> x = jax.random.normal(jax.random.key(0), (256, 2))
      >>> state = minibatch_kmeans_init(kmeans_plusplus(x, 4, key=jax.random.key(1)))
      >>> state.counts.tolist()
      [0.0, 0.0, 0.0, 0.0]
    """
    c = checks.as_float_array(centroids, "centroids")
    checks.check_ndim(c, "centroids", 2, "(k, d)")
    c = checks.check_finite(c.astype(jnp.promote_types(c.dtype, jnp.float32)), "centroids")
    c = checks.check_sq_norms(c, "centroids")
    k = c.shape[0]
    return MiniBatchKMeansState(c, jnp.zeros((k,), c.dtype), jnp.asarray(0, jnp.int32),
                                jnp.asarray(0, jnp.int32))


def _check_ratio(reassignment_ratio):
    if not (isinstance(reassignment_ratio, (int, float)) and 0 <= reassignment_ratio <= 1):
        raise ValueError(f"`reassignment_ratio` must be a number in [0, 1], got "
                         f"{reassignment_ratio!r}.")


def check_minibatch_options(batch_size, max_steps, max_no_improvement, reassignment_ratio,
                            chunk_size):
    """The static options of ``minibatch_kmeans`` (shared with the sharded version)."""
    for name, v in (("batch_size", batch_size), ("max_steps", max_steps)):
        checks.check_int(v, name)
    checks.check_int(max_no_improvement, "max_no_improvement", none_ok=True)
    checks.check_int(chunk_size, "chunk_size", none_ok=True)
    _check_ratio(reassignment_ratio)


def initial_centres(init, k: int, d: int, dtype):
    """``None`` for k-means++ seeding, or the given centres ``(k, d)`` (checked, constant)."""
    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(f"`init` must be 'k-means++' or centres (k, d), got {init!r}.")
        return None
    c0 = checks.as_float_array(init, "init", dtype=dtype)
    if c0.shape != (k, d):
        raise ValueError(f"`init` centres must have shape ({k}, {d}) (`k` = {k} rows), got "
                         f"{tuple(c0.shape)}.")
    return jax.lax.stop_gradient(_finite_and_representable(c0, "init"))


def _update(state, xb, wb, key, ratio, axis_name=None, spherical=False):
    """One step. With ``axis_name`` (inside ``shard_map``) every device holds the whole batch
    with the rows it does not own zeroed (weight 0); the batch statistics are summed over
    the devices and a reassigned centre takes its row from the owner. ``spherical``: assign
    by inner product and put the updated (and reassigned) centres back on the unit
    sphere."""
    c, counts, n_since, step = state
    k = c.shape[0]
    lab, dist = assign_near_centres(xb, c, None, spherical)
    inertia = jnp.sum(wb * dist)
    sums = jax.ops.segment_sum(wb[:, None] * xb, lab, num_segments=k)
    wsum = jax.ops.segment_sum(wb, lab, num_segments=k)
    inertia, sums, wsum = psum((inertia, sums, wsum), axis_name)
    total = counts + wsum
    new = (c * counts[:, None] + sums) / jnp.where(total > 0, total, 1.0)[:, None]
    c = jnp.where((wsum > 0)[:, None], new, c)
    counts = total
    n_since = n_since + xb.shape[0]
    if key is not None and ratio > 0:
        # scikit-learn's rule: every ~10 k points (or when a centre has no weight), move the
        # centres whose weight is below `ratio * max` to random points of the batch
        b = xb.shape[0]
        due = jnp.any(counts == 0) | (n_since >= 10 * k)
        low = counts < ratio * jnp.max(counts)
        rank = jnp.argsort(jnp.argsort(counts))
        low = low & (rank < max(int(0.5 * b), 0)) & due
        perm = jax.random.permutation(key, b)
        slot = jnp.clip(jnp.cumsum(low) - 1, 0, b - 1)
        rows = xb[perm[slot]]
        if axis_name is not None:  # the owner holds the row, the others zeros
            rows = psum(jnp.where(low[:, None], rows, 0.0), axis_name)
        c = jnp.where(low[:, None], rows, c)
        floor = jnp.min(jnp.where(low, jnp.inf, counts))
        counts = jnp.where(low, jnp.where(jnp.isfinite(floor), floor, counts), counts)
        n_since = jnp.where(due, 0, n_since)
    if spherical:
        c = _normalize_rows(c)
    return MiniBatchKMeansState(c, counts, n_since.astype(jnp.int32), step + 1), inertia


def minibatch_kmeans_update(
    state: MiniBatchKMeansState,
    batch: Float[Array, "b d"],
    *,
    weights: Float[Array, " b"] | None = None,
    key: PRNGKeyArray | None = None,
    reassignment_ratio: float = 0.01,
    spherical: bool = False,
) -> tuple[MiniBatchKMeansState, Float[Array, ""]]:
    r"""One mini-batch k-means step (Sculley 2010, with scikit-learn's per-centre rates).

    Each point of the batch is assigned to its nearest centre; a centre that received batch
    weight $s_j$ with batch sum $S_j$ moves to the running mean of everything it has seen,

    $$
        c_j \leftarrow \frac{W_j c_j + S_j}{W_j + s_j}, \qquad W_j \leftarrow W_j + s_j,
    $$

    i.e. a gradient step on the batch inertia with learning rate $1/W_j$. With ``key`` and
    ``reassignment_ratio > 0``, centres whose weight fell below ``reassignment_ratio`` times
    the largest are periodically moved to random batch points (scikit-learn's rule, which
    revives dead centres). Without ``key`` the step is deterministic. Centroids are
    differentiable in ``batch`` at fixed labels (mostly useful for streaming features).
    With ``spherical`` (online spherical k-means) the points go to the centre of largest
    inner product and the centres are put back on the unit sphere after the step (the
    state's centres are normalised first), as in [`kmeans`][jaxclust.cluster.kmeans].

    Args:
      state: from [`minibatch_kmeans_init`][jaxclust.cluster.minibatch_kmeans_init] or a
        previous update.
      batch: points ``(b, d)``.
      weights: non-negative sample weights ``(b,)``.
      key: PRNG key for the low-count reassignment (optional).
      reassignment_ratio: threshold of the reassignment, in [0, 1].
      spherical: centres on the unit sphere, assignment by inner product.

    Returns:
      ``(new_state, batch_inertia)``, the inertia of the batch before the update.

    Example:
      >>> import jax
      >>> from jaxclust.cluster import minibatch_kmeans_init, minibatch_kmeans_update
      >>> x = jax.random.normal(jax.random.key(0), (512, 2))
      >>> state = minibatch_kmeans_init(x[:3])
      >>> step = jax.jit(minibatch_kmeans_update)
      >>> for batch in x.reshape(4, 128, 2):
      ...     state, loss = step(state, batch)
      >>> int(state.step), float(state.counts.sum())
      (4, 512.0)

    References:
      Sculley, "Web-Scale K-Means Clustering", WWW 2010.
    """
    if not isinstance(state, MiniBatchKMeansState):
        raise ValueError("`state` must be a MiniBatchKMeansState (from minibatch_kmeans_init).")
    state = state._replace(centroids=_finite_and_representable(state.centroids,
                                                                "state.centroids"))
    _check_ratio(reassignment_ratio)
    check_spherical(spherical)
    xb = checks.as_float_array(batch, "batch", dtype=state.centroids.dtype)
    checks.check_ndim(xb, "batch", 2, "(b, d)")
    d = state.centroids.shape[1]
    if xb.shape[1] != d:
        raise ValueError(f"`batch` must have {d} features like the centroids, got "
                         f"{xb.shape[1]}.")
    xb, wb = _validate_optional(xb, 1, weights, name="batch")
    if key is not None:
        checks.check_key(key)
    return _update_program(xb.size * state.centroids.shape[0], state, xb, wb, key,
                           ratio=reassignment_ratio, spherical=spherical)


def _update_fn(state, xb, wb, key, *, ratio, spherical):
    if spherical:
        state = state._replace(centroids=_normalize_rows(state.centroids))
    return _update(state, xb, _unit_weights(xb, wb), key, ratio, None, spherical)


# one compiled program per eager call (see jaxclust._core.programs.EagerProgram)
_update_program = EagerProgram(_update_fn, ("ratio", "spherical"))


def minibatch_kmeans(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    batch_size: int = 1024,
    max_steps: int = 100,
    init: str | Float[Array, "k d"] = "k-means++",
    weights: Float[Array, " n"] | None = None,
    reassignment_ratio: float = 0.01,
    max_no_improvement: int | None = 10,
    chunk_size: int | None = None,
    spherical: bool = False,
) -> KMeansResult:
    r"""Fit mini-batch k-means on an in-memory array (batches drawn with replacement).

    Seeds with k-means++ on a random subset of ``3 * batch_size`` points (or uses the given
    centres), then applies [`minibatch_kmeans_update`][jaxclust.cluster.minibatch_kmeans_update]
    to random batches. Stops after ``max_steps`` or, with ``max_no_improvement``, when an
    exponentially weighted average of the batch inertia (scikit-learn's smoothing,
    $\alpha = 2b/(n+1)$) has not improved for that many consecutive steps (reported as
    ``converged``). Labels and inertia are those of the whole data set against the final
    centres (with ``chunk_size`` rows per block).

    **Gradient mode.** The fit is a stochastic stream, not a fixed point, so there is no
    exact derivative: the centroids are treated as constants (no gradient) and the
    ``inertia``'s gradient is its partial derivative at the final centres,
    $2 w_i (x_i - c_{l_i})$, a useful loss signal but not the total derivative. Use
    [`kmeans`][jaxclust.cluster.kmeans] (envelope) or
    [`soft_kmeans`][jaxclust.cluster.soft_kmeans] for exact gradients.

    Args:
      x: points ``(n, d)``.
      k: number of clusters (static).
      key: PRNG key (seeding, batches, reassignments).
      batch_size: points per step.
      max_steps: step budget.
      init: ``"k-means++"`` or initial centres ``(k, d)``.
      weights: non-negative sample weights ``(n,)``.
      reassignment_ratio: see ``minibatch_kmeans_update``.
      max_no_improvement: early-stopping patience (``None``: run all steps).
      chunk_size: rows per block of the final assignment.
      spherical: spherical (cosine) k-means as in [`kmeans`][jaxclust.cluster.kmeans]:
        centres on the unit sphere (the seeds are normalised, then every step's centres),
        assignment by largest inner product.

    Returns:
      A [`KMeansResult`][jaxclust.cluster.KMeansResult] (``n_iters`` counts steps).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import minibatch_kmeans
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (500, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (500, 2)) - 5.0])
      >>> res = minibatch_kmeans(x, 2, key=jax.random.key(2), batch_size=64)
      >>> sorted(jnp.bincount(res.labels).tolist())
      [500, 500]

    References:
      Sculley, "Web-Scale K-Means Clustering", WWW 2010.
    """
    x_in, w_in, token = _validate_token(x, k, weights)  # traced: checks on a token, not on x
    checks.check_key(key)
    xs = jax.lax.stop_gradient(x_in)
    ws = None if w_in is None else jax.lax.stop_gradient(w_in)
    n, d = xs.shape
    check_minibatch_options(batch_size, max_steps, max_no_improvement, reassignment_ratio, None)
    check_spherical(spherical)
    b = min(batch_size, n)
    c0 = initial_centres(init, k, d, xs.dtype)
    patience = max_no_improvement or max_steps + 1
    res = _fit_program((n + max_steps * b) * d * k, xs, ws, key, c0, k=k, b=b,
                       ratio=reassignment_ratio, max_steps=max_steps, patience=patience,
                       chunk_size=chunk_size, spherical=spherical)
    # the inertia's partial derivative at the final centres (which carry no gradient)
    return _with_token(with_envelope_gradients(x_in, w_in, res, spherical)._replace(
        centroids=res.centroids), token)


def _fit_fn(xs, ws, key, c0, *, k, b, ratio, max_steps, patience, chunk_size, spherical):
    """The whole eager fit as one compiled program (eager calls compile once per shapes and
    static options)."""
    n = xs.shape[0]
    ws = _unit_weights(xs, ws)
    k_init, k_loop = jax.random.split(key)
    c, lab, dist, it, stall = fit_stream(xs, ws, k, n, b, k_init, k_loop, c0, ratio,
                                         max_steps, patience, chunk_size, None,
                                         spherical=spherical)
    inertia = jnp.sum(ws * dist)
    converged = (stall >= patience) & all_finite(c, inertia)
    return KMeansResult(c, lab.astype(jnp.int32), inertia, it, converged)


_fit_program = EagerProgram(_fit_fn, ("k", "b", "ratio", "max_steps", "patience",
                                      "chunk_size", "spherical"))


def seeding_subset(key, n, m):
    """Global indices of the k-means++ seeding subset (uniform, without replacement)."""
    return jax.random.choice(key, n, (m,), replace=False)


def fit_stream(xs, ws, k, n, b, k_init, k_loop, c0, ratio, max_steps, patience, chunk_size,
               axis_name, subset=None, spherical=False):
    """Seeding, the stream of batches and the final assignment. ``n`` is the global number
    of points; with ``axis_name`` the rows of ``xs``/``ws`` are this device's block and
    ``subset`` the seeding indices (drawn outside ``shard_map``). Batches are global indices
    drawn from the key, so the stream does not depend on the number of devices."""
    n_local = xs.shape[0]
    if c0 is None:
        m = min(n, 3 * b)
        k1, k2 = jax.random.split(k_init)
        idx = seeding_subset(k1, n, m) if subset is None else subset
        xi, wi = take_rows(xs, idx, axis_name), take_rows(ws, idx, axis_name)
        c0 = greedy_plusplus(xi, k, k2, wi + (jnp.sum(wi) <= 0), None)
    if spherical:
        c0 = _normalize_rows(c0)
    alpha = min(1.0, 2.0 * b / (n + 1))

    def batch(idx):
        if axis_name is None:
            return xs[idx], ws[idx]
        local = idx - row_offset(n_local, axis_name)
        own = (local >= 0) & (local < n_local)
        local = jnp.clip(local, 0, n_local - 1)
        return (jnp.where(own[:, None], xs[local], 0.0), jnp.where(own, ws[local], 0.0))

    def cond(s):
        _, it, _, _, stall = s
        return (it < max_steps) & (stall < patience)

    def body(s):
        state, it, ewa, best, stall = s
        kb, kr = jax.random.split(jax.random.fold_in(k_loop, it))
        idx = jax.random.randint(kb, (b,), 0, n)
        xb, wb = batch(idx)
        state, inertia = _update(state, xb, wb, kr, ratio, axis_name, spherical)
        batch_mean = inertia / jnp.maximum(psum(jnp.sum(wb), axis_name),
                                           jnp.finfo(xs.dtype).tiny)
        ewa = jnp.where(it == 0, batch_mean, ewa * (1 - alpha) + batch_mean * alpha)
        improved = ewa < best
        return (state, it + 1, ewa, jnp.minimum(best, ewa), jnp.where(improved, 0, stall + 1))

    inf = jnp.asarray(jnp.inf, xs.dtype)
    state, it, _, _, stall = jax.lax.while_loop(
        cond, body, (minibatch_kmeans_init(c0), jnp.asarray(0), inf, inf, jnp.asarray(0)))
    lab, dist = assign_near_centres(xs, state.centroids, chunk_size, spherical)
    return state.centroids, lab, dist, it, stall
