r"""Data-parallel k-means and mini-batch k-means over points sharded along their first axis.

Both run the single-device cores of `jaxclust.cluster` under ``jax.shard_map`` with
``axis_name="points"``: every device works on its own rows and the devices exchange only
the small reductions (centre sums and masses, the inertia, the k-means++ potentials and
CDF totals, the rows of chosen centres).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec
from jaxtyping import Array, Float, PRNGKeyArray

from .._core import checks
from .._core.collectives import global_top, psum, row_mask, take_rows
from .._core.restarts import best_restart
from ..cluster.lloyd import (
    KMeansResult,
    all_finite,
    check_algorithm,
    check_kmeans_options,
    check_spherical,
    greedy_plusplus,
    lloyd_iterations,
    with_envelope_gradients,
)
from ..cluster.minibatch import (
    check_minibatch_options,
    fit_stream,
    initial_centres,
    seeding_subset,
)
from ._mesh import (
    AXIS,
    ShardedPoints,
    check_points,
    check_values_now,
    not_applicable,
    replicated,
)

__all__ = ["kmeans", "minibatch_kmeans"]

_RESULT_SPECS = KMeansResult(PartitionSpec(), PartitionSpec(AXIS), PartitionSpec(),
                             PartitionSpec(), PartitionSpec())


def _weights_travel(weights) -> None:
    not_applicable("weights", weights, None, "the weights travel with the points; pass them "
                   "to shard(x, mesh, weights=w) (or build ShardedPoints(x, w, n, mesh)).")


def _tol_abs(x, n, tol):
    """``tol * mean(var(x, axis=0))`` over the n real rows (scikit-learn's scale)."""
    if tol <= 0:
        return jnp.zeros((), x.dtype)
    real = row_mask(x.shape[0], n, AXIS)[:, None]
    mean = psum(jnp.sum(jnp.where(real, x, 0.0), axis=0), AXIS) / n
    var = psum(jnp.sum(jnp.where(real, (x - mean[None, :]) ** 2, 0.0), axis=0), AXIS) / n
    return tol * jnp.mean(var)


_NO_MASS = "`points.weights` sums to 0; give some point a positive weight."
_BAD_X = ("`points.x` contains NaN or Inf; clean or mask the input (give masked points zero "
          "weight) before calling.")
_BAD_W = "`points.weights` has NaN, Inf or negative entries; sample weights must be >= 0."


def _checked_blocks(x, w):
    """Value checks of a device's block of points and weights, inside ``shard_map``.

    The verdicts are global (``psum`` of per-device counts), so every device raises
    together. A check outside ``shard_map`` would run on one device only: XLA would copy
    the sharded array there, and when it fails the other devices would wait forever at the
    next collective.
    """
    bad_x = psum(jnp.sum(~jnp.isfinite(x)), AXIS) > 0
    bad_w = psum(jnp.sum(~jnp.isfinite(w) | (w < 0)), AXIS) > 0
    x = checks.ensure(x, bad_x, _BAD_X)
    # overflow of squared distances: a global verdict, and only for finite data (the NaN
    # message above comes first)
    huge = psum(checks.sq_norm_overflow(x).astype(jnp.int32), AXIS) > 0
    x = checks.ensure(x, huge & ~bad_x, checks.overflow_message("points.x", x.dtype))
    w = checks.ensure(w, bad_w, _BAD_W)
    return x, checks.ensure(w, psum(jnp.sum(w), AXIS) <= 0, _NO_MASS)


def kmeans(
    points: ShardedPoints,
    k: int,
    *,
    key: PRNGKeyArray,
    init: str | Float[Array, "k d"] = "k-means++",
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    weights: None = None,
    chunk_size: int | None = None,
    callback: None = None,
    spherical: bool = False,
    algorithm: str = "auto",
) -> KMeansResult:
    r"""k-means (k-means++ seeding, Lloyd) on points sharded over a device mesh.

    The same algorithm, options and result as [`jaxclust.cluster.kmeans`][jaxclust.cluster.kmeans]
    (weights come from ``points.weights``), run data-parallel: each of the $P$ devices
    assigns its $n/P$ rows and forms partial centre sums; per Lloyd iteration the devices
    all-reduce only the $k \times d$ sums, the $k$ masses and a label-change count. The
    k-means++ draws use the same random numbers as the single-device call (inverse-CDF
    draws from a global CDF built from per-device totals), so from the same key the result
    equals the single-device result up to float32 rounding of the reductions. That
    rounding can flip a discrete choice of the seeding when two options tie to about
    $10^{-6}$ relative (two candidates lowering the $n$-term potential equally, or a draw
    within rounding of a CDF boundary), which becomes likely for $n \gtrsim 10^6$: the
    seeds, and the local optimum reached, then differ. Lloyd's iterations from given
    centres (``init=`` an array) agree at any scale.

    Args:
      points: from [`shard`][jaxclust.distributed.shard].
      k: number of clusters (static), ``1 <= k <= points.n``.
      key: PRNG key; the same key as the single-device call gives the same centres.
      init: ``"k-means++"``, ``"random"`` or initial centres ``(k, d)``.
      n_init: restarts (``vmap`` over keys); the lowest inertia wins (the first of those
        within a relative 1e-5 of it, as in :func:`jaxclust.cluster.kmeans`).
      max_iter: Lloyd iteration budget.
      tol: relative tolerance on the centre shift.
      weights: must be ``None``: the weights travel with the points
        (``shard(x, mesh, weights=w)``). Kept so that the signature is that of the
        single-device function.
      chunk_size: rows per block of the assignment on each device (``None``: automatic).
      callback: must be ``None`` (no progress callback from the devices of a mesh).
      spherical: spherical (cosine) k-means, as in
        [`jaxclust.cluster.kmeans`][jaxclust.cluster.kmeans] (static).
      algorithm: ``"auto"`` or ``"lloyd"``: both run Lloyd's iterations on the mesh
        (``"hamerly"``, the single-device bound-pruned iterations, is not available for
        sharded points and raises a ValueError).

    Returns:
      A [`KMeansResult`][jaxclust.cluster.KMeansResult]; ``labels`` is ``(n_pad,)``, sharded
      like the points (padding rows included): use
      [`gather`][jaxclust.distributed.gather]``(res.labels, points.n)`` for a host array.

    Raises:
      ValueError: ``points`` not a ``ShardedPoints``, ``k`` outside ``[1, n]``, bad options,
        weights summing to zero, ``weights`` or ``callback`` given.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (50, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (50, 2)) - 5.0])
      >>> res = jd.kmeans(jd.shard(x), 2, key=jax.random.key(2))
      >>> sorted(jnp.bincount(jd.gather(res.labels, 100)).tolist())
      [50, 50]

    References:
      Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 1982. Arthur &
      Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007.
    """
    check_points(points)
    _weights_travel(weights)
    not_applicable("callback", callback, None, "pass None (no progress reports from a mesh).")
    checks.check_num_clusters(k, points.n, rows_of="points")
    check_kmeans_options(max_iter, n_init, tol, chunk_size)
    check_spherical(spherical)
    check_algorithm(algorithm, spherical)
    if algorithm == "hamerly":
        raise ValueError("`algorithm`='hamerly' does not apply to the sharded function: use "
                         "'lloyd' or 'auto' (Lloyd's iterations on the mesh).")
    x_in = points.x.astype(jnp.promote_types(points.x.dtype, jnp.float32))
    w_in = points.weights.astype(x_in.dtype)
    check_values_now(points)  # concrete points: a ValueError now
    x, w = jax.lax.stop_gradient(x_in), jax.lax.stop_gradient(w_in)
    d = x.shape[1]
    if isinstance(init, str):
        if init not in ("k-means++", "random"):
            raise ValueError(f"`init` must be 'k-means++', 'random' or an array of centres, "
                             f"got {init!r}.")
        c0 = None
        checks.check_key(key)
    else:
        c0 = checks.as_float_array(init, "init", dtype=x.dtype)
        if c0.shape != (k, d):
            raise ValueError(f"`init` centres must have shape ({k}, {d}) (`k` = {k} rows), got "
                             f"{tuple(c0.shape)}.")
        c0 = checks.check_sq_norms(checks.check_finite(c0, "init"), "init")
        c0 = replicated(jax.lax.stop_gradient(c0), points.mesh)
    res = _kmeans(x, w, key, c0, k=k, n=points.n, mesh=points.mesh, init=init if c0 is None
                  else None, n_init=n_init, max_iter=max_iter, tol=float(tol),
                  chunk_size=chunk_size, spherical=spherical)
    return with_envelope_gradients(x_in, w_in, res, spherical)


@partial(jax.jit, static_argnames=("k", "n", "mesh", "init", "n_init", "max_iter", "tol",
                                   "chunk_size", "spherical"))
def _kmeans(x, w, key, c0, *, k, n, mesh, init, n_init, max_iter, tol, chunk_size, spherical):
    n_pad = x.shape[0]
    if c0 is None:
        keys = jax.random.split(key, n_init)
        # Gumbel noise of the weighted choice of "random", generated with the points'
        # sharding: each device computes its own rows, and row i is the number the
        # single-device call draws for point i (k-means++ needs none: its draws are
        # inverse-CDF draws from a global CDF)
        if init == "random":
            noise = jax.vmap(lambda kk: jax.random.gumbel(kk, (n_pad,), x.dtype))(keys)
        else:
            noise = jnp.zeros((n_init, n_pad), x.dtype)
        noise = jax.lax.with_sharding_constraint(
            noise, NamedSharding(mesh, PartitionSpec(None, AXIS)))
    else:
        keys = noise = jnp.zeros((), x.dtype)

    def body(x, w, keys, noise, c0):
        x, w = _checked_blocks(x, w)
        tol_abs = _tol_abs(x, n, tol)
        # the distances around the points' mean, as the single-device kmeans
        # (cluster.lloyd.origin); padding rows are zeros
        mu = psum(jnp.sum(x, axis=0, keepdims=True), AXIS) / n
        around = None if spherical else mu
        if c0 is not None:
            return lloyd_iterations(x, w, c0, max_iter, tol_abs, chunk_size, True, AXIS, None,
                                    spherical, around)

        def one(kk, g):
            if init == "k-means++":
                start = greedy_plusplus(x, k, kk, w, None, AXIS, mu)
            else:  # jax.random.choice(kk, n, (k,), replace=False, p=w / sum(w))
                idx = global_top(g + jnp.log(w / psum(jnp.sum(w), AXIS)), k, AXIS)
                start = take_rows(x, idx, AXIS)
            return lloyd_iterations(x, w, start, max_iter, tol_abs, chunk_size, True, AXIS,
                                    None, spherical, around)

        runs = jax.vmap(one)(keys, noise)
        best = best_restart(runs.inertia)
        return jax.tree_util.tree_map(lambda t: t[best], runs)

    specs = (PartitionSpec(AXIS), PartitionSpec(AXIS), PartitionSpec(),
             PartitionSpec(None, AXIS) if c0 is None else PartitionSpec(), PartitionSpec())
    return jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=_RESULT_SPECS,
                         check_vma=False)(x, w, keys, noise, c0)


def minibatch_kmeans(
    points: ShardedPoints,
    k: int,
    *,
    key: PRNGKeyArray,
    batch_size: int = 1024,
    max_steps: int = 100,
    init: str | Float[Array, "k d"] = "k-means++",
    weights: None = None,
    reassignment_ratio: float = 0.01,
    max_no_improvement: int | None = 10,
    chunk_size: int | None = None,
    spherical: bool = False,
) -> KMeansResult:
    r"""Mini-batch k-means on points sharded over a device mesh.

    The same algorithm, options and result as
    [`jaxclust.cluster.minibatch_kmeans`][jaxclust.cluster.minibatch_kmeans] (weights from
    ``points.weights``). The batches are global point indices drawn from the key, as in the
    single-device call, so the stream does not depend on the number of devices; each
    device contributes the batch rows it owns, and per step the devices all-reduce the
    $k \times d$ batch sums, the $k$ batch masses and the batch inertia (plus the rows of
    reassigned centres). The seeding subset of ``3 * batch_size`` indices is drawn
    replicated (an $O(n)$ permutation of indices on every device, no data moved); its rows
    come from their owners. The final assignment is sharded. From the same key the result
    equals the single-device result up to float32 rounding of the sums.

    The per-step work (assigning the ``batch_size`` rows) is not divided among the
    devices: mini-batch k-means is cheap per step; what sharding buys is memory for
    ``n`` and a parallel final assignment.

    Args:
      points: from [`shard`][jaxclust.distributed.shard].
      k: number of clusters (static).
      key: PRNG key (seeding, batches, reassignments).
      batch_size: points per step.
      max_steps: step budget.
      init: ``"k-means++"`` or initial centres ``(k, d)``.
      weights: must be ``None``: the weights travel with the points (as in
        [`kmeans`][jaxclust.distributed.kmeans]).
      reassignment_ratio: see [`minibatch_kmeans_update`][jaxclust.cluster.minibatch_kmeans_update].
      max_no_improvement: early-stopping patience (``None``: run all steps).
      chunk_size: rows per block of the final assignment on each device.
      spherical: spherical (cosine) k-means, as in
        [`jaxclust.cluster.minibatch_kmeans`][jaxclust.cluster.minibatch_kmeans] (static).

    Returns:
      A [`KMeansResult`][jaxclust.cluster.KMeansResult] with sharded, padded ``labels``
      ``(n_pad,)`` (see [`gather`][jaxclust.distributed.gather]).

    Raises:
      ValueError: as the single-device function.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (500, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (500, 2)) - 5.0])
      >>> res = jd.minibatch_kmeans(jd.shard(x), 2, key=jax.random.key(2), batch_size=64)
      >>> sorted(jnp.bincount(jd.gather(res.labels, 1000)).tolist())
      [500, 500]

    References:
      Sculley, "Web-Scale K-Means Clustering", WWW 2010.
    """
    check_points(points)
    _weights_travel(weights)
    checks.check_num_clusters(k, points.n, rows_of="points")
    checks.check_key(key)
    check_minibatch_options(batch_size, max_steps, max_no_improvement, reassignment_ratio,
                             chunk_size)
    check_spherical(spherical)
    x_in = points.x.astype(jnp.promote_types(points.x.dtype, jnp.float32))
    w_in = points.weights.astype(x_in.dtype)
    check_values_now(points)  # concrete points: a ValueError now
    xs, ws = jax.lax.stop_gradient(x_in), jax.lax.stop_gradient(w_in)
    c0 = initial_centres(init, k, xs.shape[1], xs.dtype)
    if c0 is not None:
        c0 = replicated(c0, points.mesh)
    patience = max_no_improvement or max_steps + 1
    c, lab, inertia, it, stall = _minibatch(
        xs, ws, key, c0, k=k, n=points.n, mesh=points.mesh, batch_size=batch_size,
        ratio=float(reassignment_ratio), max_steps=max_steps, patience=patience,
        chunk_size=chunk_size, spherical=spherical)
    converged = (stall >= patience) & all_finite(c, inertia)
    res = KMeansResult(c, lab.astype(jnp.int32), inertia, it, converged)
    # the inertia's partial derivative at the final centres (which carry no gradient), as
    # the single-device function
    return with_envelope_gradients(x_in, w_in, res, spherical)._replace(centroids=c)


@partial(jax.jit, static_argnames=("k", "n", "mesh", "batch_size", "ratio", "max_steps",
                                   "patience", "chunk_size", "spherical"))
def _minibatch(xs, ws, key, c0, *, k, n, mesh, batch_size, ratio, max_steps, patience,
               chunk_size, spherical):
    b = min(batch_size, n)
    k_init, k_loop = jax.random.split(key)
    # the seeding subset, drawn as the single-device call draws it (replicated indices)
    subset = (seeding_subset(jax.random.split(k_init)[0], n, min(n, 3 * b)) if c0 is None
              else jnp.zeros((), jnp.int32))

    def body(xs, ws, k_init, k_loop, c0, subset):
        xs, ws = _checked_blocks(xs, ws)
        c, lab, dist, it, stall = fit_stream(xs, ws, k, n, b, k_init, k_loop, c0, ratio, max_steps,
                                       patience, chunk_size, AXIS,
                                       subset if c0 is None else None, spherical)
        return c, lab, psum(jnp.sum(ws * dist), AXIS), it, stall

    rep = PartitionSpec()
    return jax.shard_map(
        body, mesh=mesh, in_specs=(PartitionSpec(AXIS), PartitionSpec(AXIS), rep, rep, rep, rep),
        out_specs=(rep, PartitionSpec(AXIS), rep, rep, rep), check_vma=False,
    )(xs, ws, k_init, k_loop, c0, subset)
