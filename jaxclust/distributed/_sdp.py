r"""Sharded Burer–Monteiro solver of the Peng–Wei k-means SDP: the rows of the factor
$U$ live with the rows of the data."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxtyping import PRNGKeyArray

from .._core import checks
from .._core.collectives import psum, row_mask
from ..sdp import ADMM, BurerMonteiro
from ..sdp.burer_monteiro import bm_iterate, check_bm_options, membership_start, project_factor
from ..sdp.peng_wei import BMStats, KMeansSDPResult
from ._cluster import kmeans as sharded_kmeans
from ._mesh import AXIS, ShardedPoints, check_points, check_values_now

__all__ = ["kmeans_sdp"]


@partial(jax.jit, static_argnames=("k", "rank", "max_iter", "check_every", "init"))
def _solve(points, key, tol, beta, step, *, k, rank, max_iter, check_every, init):
    mesh, n = points.mesh, points.n
    x = points.x.astype(jnp.promote_types(points.x.dtype, jnp.float32))
    dt = x.dtype
    n_pad = x.shape[0]
    row_sharding = NamedSharding(mesh, P(AXIS))
    k_init, k_noise, k_pow = jax.random.split(key, 3)
    # the random draw of the single-device solver's start, row for row: the same (n, r)
    # numbers (counter-based, so each device can produce its block), zero rows for padding
    u_raw = jax.random.uniform(k_noise, (n, rank), dt)
    u_raw = jax.lax.with_sharding_constraint(jnp.pad(u_raw, ((0, n_pad - n), (0, 0))),
                                             row_sharding)
    if init == "kmeans":  # the labels of the single-device start, by the sharded k-means
        real = jax.lax.with_sharding_constraint((jnp.arange(n_pad) < n).astype(dt),
                                             row_sharding)
        lab = sharded_kmeans(ShardedPoints(x, real, n, mesh), k, key=k_init).labels
    else:
        lab = jnp.zeros((n_pad,), jnp.int32)

    def body(x, u_raw, lab, k_pow, tol, beta, step):
        tol = checks.ensure(tol, ~(tol > 0), "`tol` must be a finite number > 0.")
        beta = checks.ensure(beta, ~(beta > 0), "`beta` must be a finite number > 0; try 1.")
        step = checks.ensure(step, ~(step > 0), "`step` must be a finite number > 0; try 1.")
        bad = psum(jnp.sum(~jnp.isfinite(x)), AXIS) > 0  # same verdict everywhere
        x = checks.ensure(x, bad, "`points.x` contains NaN or Inf; clean the input before "
                          "calling.")
        huge = psum(checks.sq_norm_overflow(x).astype(jnp.int32), AXIS) > 0
        x = checks.ensure(x, huge & ~bad, checks.overflow_message("points.x", x.dtype))
        mask = row_mask(x.shape[0], n, AXIS)
        mf = mask.astype(dt)[:, None]
        mean = psum(jnp.sum(x * mf, axis=0, keepdims=True), AXIS) / n
        xc = (x - mean) * mf
        sq = jnp.sum(xc * xc, axis=1)
        scale = psum(jnp.sum(sq), AXIS) / n
        scale = jnp.where(scale > 0, scale, 1.0)
        xs = xc / jnp.sqrt(scale)
        if init == "kmeans":
            u0 = membership_start(lab, u_raw, k, rank, n, axis_name=AXIS, row_mask=mask)
        else:
            u0 = project_factor(u_raw, k, AXIS)
        st = bm_iterate(xc, sq, xs, u0, k_pow, tol, beta, step, n=n, k=k, max_iter=max_iter,
                        check_every=check_every, axis_name=AXIS, row_mask=mask)
        # rounding embedding: top-k eigenvectors of the r x r Gram U^T U (psum'd) give the
        # best rank-k factor U V_k of Z = U U^T without any n x n (or n-sized) exchange
        gram = psum(st.U.T @ st.U, AXIS)
        _, vec = jnp.linalg.eigh(gram)
        emb = st.U @ vec[:, ::-1][:, :k]
        return (st.U, emb, st.n_iters, st.converged, st.objective, st.primal_residual,
                st.multiplier)

    rows, rep = P(AXIS), P()
    return jax.shard_map(
        body, mesh=mesh, in_specs=(rows, rows, rows, rep, rep, rep, rep),
        out_specs=(rows, rows, rep, rep, rep, rep, rows), check_vma=False,
    )(x, u_raw, lab, k_pow, tol, beta, step)


def _scalar(value, name, dtype):
    """A numeric option of the solver as a scalar of ``dtype``: Python numbers were checked
    when the ``BurerMonteiro`` was built; arrays are checked inside the sharded solve
    (``_solve``), where every device checks its copy (a check outside ``shard_map`` would
    run on one device)."""
    arr = jnp.asarray(value, dtype)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
    return arr


def _round(emb, points, k, key):
    """k-means (k-means++ seeding, 4 restarts) on the sharded rows of the embedding: the
    rounding of :func:`jaxclust.sdp.round_labels`, with the data left in place."""
    real = (jnp.arange(emb.shape[0]) < points.n).astype(emb.dtype)  # weight 1: unweighted
    real = jax.lax.with_sharding_constraint(real, NamedSharding(points.mesh, P(AXIS)))
    pts = ShardedPoints(emb, real, points.n, points.mesh)
    return sharded_kmeans(pts, k, key=key, n_init=4).labels


def kmeans_sdp(
    points: ShardedPoints,
    k: int,
    *,
    solver: BurerMonteiro = BurerMonteiro(),
    key: PRNGKeyArray | None = None,
) -> KMeansSDPResult:
    r"""The Peng–Wei k-means SDP by Burer–Monteiro with the rows of the factor sharded.

    The same iterations as ``jaxclust.sdp.kmeans_sdp(x, k, solver=BurerMonteiro(...))``: a
    projected gradient step on the nonnegative factor $U \in \mathbb R^{n\times r}$ and a
    multiplier step on $y$ per iteration (see ``jaxclust.sdp.burer_monteiro``), from the
    same start (``init="random"``: the same uniform draw; ``"kmeans"``: the membership
    factor of the sharded [`kmeans`][jaxclust.distributed.kmeans] plus the same noise).
    Row $i$ of $U$, of $y$ and of the data stay on the device that owns point $i$; every
    sum over the points ($U^\top\mathbf 1$, $X^\top U$, $U^\top w$, the norms of the
    projection and of the residual, the power iteration for the step size) is a ``psum`` of
    $O(dr)$ numbers per iteration. The labels are rounded as in
    [`round_labels`][jaxclust.sdp.round_labels], without an $n\times n$ matrix: the top-$k$
    eigenvectors $V_k$ of the $r\times r$ Gram $U^\top U$ (``psum``'d) give the embedding
    $U V_k$ (the best rank-$k$ factor of $Z = UU^\top$), clustered by the sharded
    [`kmeans`][jaxclust.distributed.kmeans] (k-means++, 4 restarts).

    Results equal the single-device call with the same ``key`` up to float32 rounding
    (objective to ~1e-5 relative, identical labels on well-separated data).

    Args:
      points: sharded points (from [`shard`][jaxclust.distributed.shard]); weights only mark
        the padding (all real points count once, as in the single-device SDP).
      k: number of clusters, ``2 <= k < n`` (static).
      solver: a [`BurerMonteiro`][jaxclust.sdp.BurerMonteiro] (rank, tolerance, budget,
        penalty, step, start), as for the single-device function (whose signature this
        is). ``ADMM`` raises: it works on the $n \times n$ matrix $Z$, which sharded points
        never form.
      key: PRNG key (start of ``U``, rounding); ``None`` uses ``jax.random.key(0)``.

    Returns:
      A [`KMeansSDPResult`][jaxclust.sdp.KMeansSDPResult] whose ``stats`` is a
      [`BMStats`][jaxclust.sdp.BMStats]: ``stats.factor`` ``(n_pad, r)``,
      ``stats.multiplier`` ``(n_pad,)`` and ``labels`` ``(n_pad,)`` sharded (padding rows of
      the factor are zero, their labels meaningless: use
      [`gather`][jaxclust.distributed.gather] with ``points.n``).

    Raises:
      ValueError: ``points`` is not a ``ShardedPoints``, ``solver`` is not a
        ``BurerMonteiro``, or bad ``k``, ``rank`` or options.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> centres = jnp.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
      >>> x = jnp.repeat(centres, 10, axis=0) + jax.random.normal(jax.random.key(0), (30, 2))
      >>> res = jd.kmeans_sdp(jd.shard(x), 3, key=jax.random.key(1))
      >>> sorted(jnp.bincount(jd.gather(res.labels, 30)).tolist())
      [10, 10, 10]

    References:
      Zhuang, Chen, Yang & Zhang, "Statistically Optimal K-means Clustering via Nonnegative
      Low-rank Semidefinite Programming", ICLR 2024. Peng & Wei, "Approximating K-means-type
      clustering via semidefinite programming", SIAM J. Optim. 2007.
    """
    check_points(points)
    if isinstance(solver, ADMM):
        raise ValueError("`solver` ADMM works on the n x n matrix Z, which sharded points never "
                         "form; pass solver=jaxclust.sdp.BurerMonteiro(...) (the rows of its "
                         "factor stay with the points).")
    if not isinstance(solver, BurerMonteiro):
        raise ValueError("`solver` must be a jaxclust.sdp.BurerMonteiro, got "
                         f"{type(solver).__name__}.")
    n = points.n
    rank = check_bm_options(k, n, solver.rank, solver.max_iter, solver.check_every)
    check_values_now(points, weights=False)  # concrete points: a ValueError now
    key = jax.random.key(0) if key is None else checks.check_key(key)
    dt = jnp.promote_types(points.x.dtype, jnp.float32)
    tol, beta, step = (_scalar(getattr(solver, f), f, dt) for f in ("tol", "beta", "step"))
    n_checks = -(-solver.max_iter // solver.check_every)
    u, emb, n_iters, converged, obj, res, mult = _solve(
        jax.lax.stop_gradient(points), key, tol, beta, step, k=k, rank=rank,
        max_iter=n_checks * solver.check_every, check_every=solver.check_every,
        init=solver.init)
    labels = _round(emb, points, k, key)
    return KMeansSDPResult(labels, obj, res, n_iters, converged & jnp.isfinite(obj),
                           BMStats(u, mult))
