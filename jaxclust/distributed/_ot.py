r"""Sharded entropic optimal transport: online Sinkhorn and SwAV codes with points split
over devices.

Both run under ``jax.shard_map`` over the 1-D mesh of :func:`jaxclust.distributed.make_mesh`:
every device holds its rows of ``x`` (or of the score matrix), the other side (``y``, the
prototypes) is replicated, and the only communication is the reduction over the point axis
of each iteration (a distributed log-sum-exp: ``pmax`` of the local maxima, ``psum`` of the
shifted local sums, ``O(m)`` numbers) and of the convergence test (one scalar).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxtyping import Array, Float

from .._core import checks
from .._core.costs import COSTS, PointCloud
from ..ot import _solver
from ..ot.assign import _swav_iterations
from ..ot.sinkhorn import SinkhornResult, _static_options, _tau, _weights
from ._mesh import AXIS, ShardedPoints, make_mesh

__all__ = ["sinkhorn", "swav_codes"]


# ------------------------------------------------------------------------------------------
# helpers


@jax.custom_jvp
def _no_grad(t):
    return t


@_no_grad.defjvp
def _no_grad_jvp(primals, tangents):
    raise ValueError(
        "jaxclust.distributed.sinkhorn does not support differentiation: the implicit "
        "(conjugate-gradient) adjoint of the solver is not written for sharded points. "
        "Differentiate jaxclust.ot.sinkhorn (chunk_size=... for large n) on one device, "
        "or wrap the inputs in jax.lax.stop_gradient if no gradient is needed.")


def _local_mask(n_local: int, n: int):
    """Real (non-padding) rows of this device's block of a row-sharded array."""
    start = jax.lax.axis_index(AXIS) * n_local
    return start + jnp.arange(n_local) < n


def _check_points(points, name: str = "points") -> None:
    if not isinstance(points, ShardedPoints):
        raise ValueError(f"`{name}` must be a jaxclust.distributed.ShardedPoints; build it with "
                         "jaxclust.distributed.shard(x, mesh).")


# ------------------------------------------------------------------------------------------
# Sinkhorn


@partial(jax.jit, static_argnames=("cost", "chunk_size", "cfg"))
def _sinkhorn(points, y, b, eps, ta, tb, *, cost, chunk_size, cfg):
    mesh, n = points.mesh, points.n
    dtype = y.dtype
    x = _no_grad(points.x.astype(dtype))
    w = _no_grad(points.weights.astype(dtype))
    y, b, eps, ta, tb = (_no_grad(t) for t in (y, b, eps, ta, tb))

    def body(x, w, y, b, eps, ta, tb):
        n_local = x.shape[0]
        mask = _local_mask(n_local, n)
        a = w / jax.lax.psum(jnp.sum(w), AXIS)  # source marginal: total mass 1
        geom = PointCloud(x, y, cost, chunk_size, mask, AXIS, n)
        params = _solver.Params(geom, a, b, eps, ta, tb, jnp.asarray(0.0, dtype))
        z0 = (jnp.zeros((n_local,), dtype), jnp.zeros((y.shape[0],), dtype))
        (f, g), (n_iters, errors, converged) = _solver.run(cfg, params, z0)
        return f, g, a, n_iters, errors, converged

    rows, rep = P(AXIS), P()
    f, g, a, n_iters, errors, converged = jax.shard_map(
        body, mesh=mesh, in_specs=(rows, rows, rep, rep, rep, rep, rep),
        out_specs=(rows, rep, rows, rep, rep, rep), check_vma=False,
    )(x, w, y, b, eps, ta, tb)
    # the result's geometry is the plain (global) point cloud: its properties (marginals,
    # apply, linear_cost) then run through XLA's automatic partitioning on the sharded arrays
    geom = PointCloud(x, y, cost, chunk_size)
    return SinkhornResult(f=f, g=g, n_iters=n_iters, converged=converged, errors=errors,
                          geom=geom, a=a, b=b, epsilon=eps, tau_a=ta, tau_b=tb, mass=None)


def sinkhorn(
    points: ShardedPoints,
    y: Float[Array, "m d"],
    b: Float[Array, " m"] | None = None,
    *,
    epsilon: float | Float[Array, ""],
    cost: str = "sqeuclidean",
    tau_a: float | Float[Array, ""] = 1.0,
    tau_b: float | Float[Array, ""] = 1.0,
    tol: float = 1e-3,
    max_iter: int = 2000,
    check_every: int = 10,
    chunk_size: int = 512,
) -> SinkhornResult:
    r"""Entropic OT between row-sharded points and a replicated point cloud (online Sinkhorn).

    Solves the same problem as [`jaxclust.ot.sinkhorn`][jaxclust.ot.sinkhorn] in its online
    mode, for $x$ sharded along its rows over the mesh of ``points`` and $y$, $b$ replicated.
    With $a$ the point weights normalised to total mass 1 (padding rows have $a_i = 0$),
    each iteration is

    $$
        g_j \leftarrow \varepsilon\log b_j - \tau_b\,\varepsilon\,
        \mathrm{LSE}_i\big((f_i - C_{ij})/\varepsilon\big),\qquad
        f_i \leftarrow \varepsilon\log a_i - \tau_a\,\varepsilon\,
        \mathrm{LSE}_j\big((g_j - C_{ij})/\varepsilon\big).
    $$

    The $f$-update is local to each device. The $g$-update's log-sum-exp over $i$ is global:
    each device computes $\ell_j^{(p)}$ over its rows, then
    $\mathrm{LSE}_j = M_j + \log\sum_p \exp(\ell^{(p)}_j - M_j)$ with
    $M_j = \max_p \ell^{(p)}_j$ (one ``pmax`` and one ``psum`` of $m$ numbers); the L1
    marginal error of the stopping test is one ``psum``'d scalar. Padding rows are masked out
    of every reduction over $i$. Each device stores ``O(n/P * d + m * d)`` numbers plus one
    cost block of ``chunk_size`` rows; no ``n x m`` array and no all-gather of the points.

    The result equals the single-device ``jaxclust.ot.sinkhorn(x, y, a, b, chunk_size=...)``
    up to float32 rounding of the reductions (the same iterations and stopping test).

    Differentiation is not supported (the implicit adjoint is not written for sharded
    points): differentiating raises a ``ValueError``.

    Args:
      points: the sharded source points (from [`shard`][jaxclust.distributed.shard]); their
        weights, normalised to sum 1, are the source marginal $a$.
      y: target points ``(m, d)``, replicated on every device.
      b: target weights ``(m,)`` summing to 1 (default uniform ``1/m``).
      epsilon: entropic regularisation (absolute, > 0).
      cost: ``"sqeuclidean"``, ``"euclidean"``, ``"cosine"`` or ``"dot"``.
      tau_a: relaxation of the source marginal in (0, 1]; 1 is exact.
      tau_b: relaxation of the target marginal in (0, 1]; 1 is exact.
      tol: tolerance on the L1 marginal error.
      max_iter: iteration budget.
      check_every: iterations between convergence checks.
      chunk_size: rows per cost block of the online evaluation.

    Returns:
      A [`SinkhornResult`][jaxclust.ot.SinkhornResult] whose ``f`` and ``a`` are sharded and
      padded (``(n_pad,)``; use [`gather`][jaxclust.distributed.gather] with ``points.n``),
      ``g`` and the convergence record replicated. ``geom`` is the global (padded) point
      cloud, so ``.apply``, ``.marginals``, ``.linear_cost`` and ``.reg_cost`` give the
      single-device values; they are evaluated outside the sharded solve, by XLA's automatic
      partitioning, which gathers ``f`` and the points onto every device (fine for moderate
      ``n``; ``.plan`` forms ``n x m``).

    Raises:
      ValueError: ``points`` is not a ``ShardedPoints``, shape mismatches, bad weights or
        options (as in ``jaxclust.ot.sinkhorn``), or on differentiation.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> x = jax.random.normal(jax.random.key(0), (50, 2))
      >>> y = jax.random.normal(jax.random.key(1), (8, 2)) + 1.0
      >>> res = jd.sinkhorn(jd.shard(x), y, epsilon=0.5)
      >>> bool(res.converged), jd.gather(res.f, 50).shape, res.g.shape
      (True, (50,), (8,))

    References:
      Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
      Chizat, Peyré, Schmitzer, Vialard, "Scaling Algorithms for Unbalanced Optimal Transport
      Problems", Math. Comp. 2018.
    """
    _check_points(points)
    _static_options(tol, max_iter, check_every, "auto", None, 0.9)
    if cost not in COSTS:
        raise ValueError(f"`cost` must be one of {COSTS}, got {cost!r}.")
    if not (isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1):
        raise ValueError(f"`chunk_size` must be an int >= 1 (rows per cost block), got "
                         f"{chunk_size!r}.")
    y = checks.as_float_array(y, "y")
    checks.check_ndim(y, "y", 2, "(m, d)")
    if y.shape[1] != points.x.shape[1]:
        raise ValueError(f"`y` must have as many features as the points, {points.x.shape[1]}, "
                         f"got {y.shape[1]}.")
    dtype = jnp.promote_types(jnp.result_type(points.x.dtype, y.dtype), jnp.float32)
    y = checks.check_finite(y.astype(dtype), "y")
    m = y.shape[0]
    b = _weights(b, m, "b", dtype, "y")
    ta, tb = _tau(tau_a, "tau_a", dtype), _tau(tau_b, "tau_b", dtype)
    rtol = float(jnp.finfo(dtype).eps) ** 0.5 / 3
    b = checks.ensure(b, ((ta == 1.0) & (tb == 1.0)) & (jnp.abs(jnp.sum(b) - 1.0) > rtol),
                      "`b` must sum to 1 (the points' weights are normalised to mass 1) for "
                      "balanced OT; normalise it, or relax the marginals with tau < 1.")
    eps = jnp.asarray(checks.check_positive_scalar(
        epsilon, "epsilon", "It is absolute, in the units of the cost."), dtype)
    cfg = _solver.Config(tol=float(tol), max_iter=max_iter, check_every=check_every,
                         mode="log", partial=False, eps_init=None, eps_decay=0.9,
                         implicit=True)
    rep = NamedSharding(points.mesh, P())
    if not checks.is_traced(y, b):
        y, b = jax.device_put(y, rep), jax.device_put(b, rep)
    return _sinkhorn(points, y, b, eps, ta, tb, cost=cost,
                     chunk_size=min(chunk_size, max(points.n_pad // points.num_devices, m)),
                     cfg=cfg)


# ------------------------------------------------------------------------------------------
# SwAV codes


@partial(jax.jit, static_argnames=("n", "mesh", "n_iter"))
def _swav(scores, eps, *, n, mesh, n_iter):
    def body(s, eps):
        mask = _local_mask(s.shape[0], n)
        return _swav_iterations(s, eps, n_iter, axis_name=AXIS, row_mask=mask)

    return jax.shard_map(body, mesh=mesh, in_specs=(P(AXIS), P()), out_specs=P(AXIS),
                         check_vma=False)(scores, eps)


def swav_codes(
    scores: ShardedPoints | Float[Array, "batch k"],
    *,
    epsilon: float = 0.05,
    n_iter: int = 3,
    mesh: jax.sharding.Mesh | None = None,
) -> Float[Array, "batch k"]:
    r"""SwAV's balanced codes for a batch of scores sharded over devices.

    The same codes as [`jaxclust.ot.swav_codes`][jaxclust.ot.swav_codes]: ``n_iter`` rounds
    of column (prototype) then row (sample) normalisation of $\exp(S/\varepsilon)$ in the log
    domain. Rows live on their device, so the row normalisation is local; the column
    log-sum-exp over the batch is global: per-device log-sum-exps of the $K$ columns are
    combined by a ``pmax`` and a ``psum`` ($2K$ numbers per round). Padding rows take no part
    in the column sums; their output rows carry no meaning: drop them with
    [`gather`][jaxclust.distributed.gather]. Equal to the single-device codes of the real
    rows up to float32 rounding.

    Args:
      scores: ``(batch, k)`` scores, either a [`ShardedPoints`][jaxclust.distributed.ShardedPoints]
        (from ``shard(scores)``, padding handled) or an array whose batch is divisible by the
        number of devices (sharded along its rows over ``mesh``).
      epsilon: temperature of the codes (> 0).
      n_iter: Sinkhorn rounds (>= 1).
      mesh: the mesh for an array input (default: the array's own mesh if it is sharded by
        a ``NamedSharding``, else ``make_mesh()``); ignored for ``ShardedPoints``.

    Returns:
      ``(batch_pad, k)`` codes sharded along the batch (``batch_pad = batch`` for an array
      input), rows of real samples summing to 1. No gradient flows (``stop_gradient``).

    Raises:
      ValueError: bad rank, non-finite scores, ``epsilon <= 0``, ``n_iter < 1``, or an array
        batch not divisible by the number of devices.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> s = jax.random.normal(jax.random.key(0), (61, 4))
      >>> q = jd.gather(jd.swav_codes(jd.shard(s), epsilon=0.5), 61)
      >>> q.shape, bool(abs(q.sum(1) - 1).max() < 1e-5)
      ((61, 4), True)

    References:
      Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
      Assignments" (SwAV), NeurIPS 2020.
    """
    if not (isinstance(n_iter, int) and not isinstance(n_iter, bool) and n_iter >= 1):
        raise ValueError(f"`n_iter` must be an int >= 1, got {n_iter!r}.")
    eps = checks.check_positive_scalar(epsilon, "epsilon")
    if isinstance(scores, ShardedPoints):
        x, n, mesh = scores.x, scores.n, scores.mesh
    else:
        x = checks.as_float_array(scores, "scores")
        checks.check_ndim(x, "scores", 2, "(batch, k)")
        if mesh is not None and (not isinstance(mesh, jax.sharding.Mesh)
                                 or tuple(mesh.axis_names) != (AXIS,)):
            raise ValueError(f"`mesh` must be a 1-D jax.sharding.Mesh with axis name {AXIS!r}; "
                             "build it with jaxclust.distributed.make_mesh().")
        if mesh is None:
            sh = getattr(x, "sharding", None)
            own = sh.mesh if isinstance(sh, NamedSharding) else None
            mesh = own if own is not None and tuple(own.axis_names) == (AXIS,) else make_mesh()
        n_dev = int(mesh.devices.size)
        n = int(x.shape[0])
        if n % n_dev:
            raise ValueError(f"`scores` has batch {n}, not divisible by the {n_dev} devices; "
                             "pass jaxclust.distributed.shard(scores) (pads with zero-weight "
                             "rows) instead.")
        if not checks.is_traced(x):
            x = jax.device_put(x, NamedSharding(mesh, P(AXIS)))
    checks.check_ndim(x, "scores", 2, "(batch, k)")
    x = checks.check_finite(x, "scores")
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    out = _swav(jax.lax.stop_gradient(x), jnp.asarray(eps, dtype), n=n, mesh=mesh,
                n_iter=n_iter)
    return out.astype(x.dtype)
