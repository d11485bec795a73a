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
from .._core.collectives import psum, row_mask
from .._core.costs import COSTS, PointCloud
from ..ot.assign import swav_iterations
from ..ot.entropic import (
    SinkhornResult,
    check_static_options,
    check_tau,
    potentials_pullback,
    solve_potentials,
)
from ._mesh import (
    AXIS,
    ShardedPoints,
    check_points,
    check_values_now,
    make_mesh,
    not_applicable,
)

__all__ = ["sinkhorn", "swav_codes"]


# ------------------------------------------------------------------------------------------
# helpers


def _scalar(value, name: str, dtype):
    """A scalar option: Python numbers are range-checked now, arrays in ``_check_values``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if name == "epsilon":
            checks.check_positive_scalar(value, name, "It is absolute, in the units of the cost.")
        else:
            check_tau(value, name, dtype)
        return jnp.asarray(value, dtype)
    arr = jnp.asarray(value, dtype)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
    return arr


def _check_values(y, b, eps, ta, tb):
    """Value checks of Sinkhorn's replicated inputs: eager (``ValueError`` now) or, traced,
    inside ``shard_map`` where every device checks its own copy and all raise together (an
    ``equinox.error_if`` on a replicated array outside ``shard_map`` runs on one device and
    leaves the others waiting at the next collective)."""
    y = checks.check_finite(y, "y")
    b = checks.ensure(b, ~jnp.isfinite(b) | (b < 0), "`b` must be finite and >= 0.")
    rtol = float(jnp.finfo(b.dtype).eps) ** 0.5 / 3
    b = checks.ensure(b, (ta == 1.0) & (tb == 1.0) & (jnp.abs(jnp.sum(b) - 1.0) > rtol),
                      "`b` must sum to 1 (the points' weights are normalised to mass 1) for "
                      "balanced OT; normalise it, or relax the marginals with tau < 1.")
    eps = checks.ensure(eps, ~(jnp.isfinite(eps) & (eps > 0)),
                        "`epsilon` must be a finite number > 0.")
    ta = checks.ensure(ta, ~((ta > 0) & (ta <= 1)), "`tau_a` must be in (0, 1].")
    tb = checks.ensure(tb, ~((tb > 0) & (tb <= 1)), "`tau_b` must be in (0, 1].")
    return y, b, eps, ta, tb


def _check_rows(x, a):
    """Value checks of the sharded points and their normalised weights, inside
    ``shard_map`` with a global verdict (``psum`` of per-device counts): every device
    raises together."""
    bad_x = psum(jnp.sum(~jnp.isfinite(x)), AXIS) > 0
    x = checks.ensure(x, bad_x, "`points.x` contains NaN or Inf; clean or mask the input "
                      "(give masked points zero weight) before calling.")
    bad_a = psum(jnp.sum(~jnp.isfinite(a) | (a < 0)), AXIS) > 0
    a = checks.ensure(a, bad_a, "`points.weights` must be finite and >= 0 with a positive "
                      "sum.")
    return x, a


# ------------------------------------------------------------------------------------------
# Sinkhorn


def _sharded_solver(*, mesh, n, cost, chunk_size, opts):
    """``(x, a, y, b, eps, tau_a, tau_b) -> (f, g, n_iters, errors, converged)`` under
    ``shard_map``: the solve of ``jaxclust.ot.sinkhorn`` on a row-sharded point cloud, and its
    implicit gradient (the same function as on one device, ``potentials_pullback``, run on
    every device: its adjoint CG and residual VJP take their reductions over the rows from
    the sharded geometry)."""
    rows, rep = P(AXIS), P()
    ins = (rows, rows, rep, rep, rep, rep, rep)

    def geometry(x, y):
        return PointCloud(x, y, cost, chunk_size, row_mask(x.shape[0], n, AXIS), AXIS, n)

    def forward_body(x, a, y, b, eps, ta, tb):
        y, b, eps, ta, tb = _check_values(y, b, eps, ta, tb)
        x, a = _check_rows(x, a)
        return solve_potentials(geometry(x, y), a, b, eps, ta, tb, **opts)

    forward = jax.shard_map(forward_body, mesh=mesh, in_specs=ins,
                            out_specs=(rows, rep, rep, rep, rep), check_vma=False)

    def backward_body(x, a, y, b, eps, ta, tb, f, g, f_bar, g_bar):
        ct_geom, ga, gb, geps, gta, gtb = potentials_pullback(
            geometry(x, y), a, b, eps, ta, tb, f, g, f_bar, g_bar)
        return ct_geom.x, ga, ct_geom.y, gb, geps, gta, gtb

    backward = jax.shard_map(backward_body, mesh=mesh, in_specs=ins + (rows, rep, rows, rep),
                             out_specs=ins, check_vma=False)

    @jax.custom_vjp
    def solve(x, a, y, b, eps, ta, tb):
        return forward(x, a, y, b, eps, ta, tb)

    def solve_fwd(*args):
        out = forward(*args)
        return out, (args, out[0], out[1])

    def solve_bwd(res, cts):
        args, f, g = res
        return backward(*args, f, g, cts[0], cts[1])

    solve.defvjp(solve_fwd, solve_bwd)
    return solve


@partial(jax.jit, static_argnames=("cost", "chunk_size", "opts"))
def _sinkhorn(points, y, b, eps, ta, tb, *, cost, chunk_size, opts):
    dtype = y.dtype
    x = points.x.astype(dtype)
    w = points.weights.astype(dtype)
    a = w / jnp.sum(w)  # source marginal: total mass 1 (one scalar all-reduce)
    solve = _sharded_solver(mesh=points.mesh, n=points.n, cost=cost, chunk_size=chunk_size,
                            opts=dict(opts))
    f, g, n_iters, errors, converged = solve(x, a, y, b, eps, ta, tb)
    # the result's geometry is the plain (global) point cloud: its properties (marginals,
    # apply, linear_cost) then run through XLA's automatic partitioning on the sharded arrays
    geom = PointCloud(x, y, cost, chunk_size)
    return SinkhornResult(f=f, g=g, n_iters=n_iters, converged=converged, errors=errors,
                          geom=geom, a=a, b=b, epsilon=eps, tau_a=ta, tau_b=tb, mass=None)


def sinkhorn(
    points: ShardedPoints,
    y: Float[Array, "m d"],
    a: None = None,
    b: Float[Array, " m"] | None = None,
    *,
    epsilon: float | Float[Array, ""],
    cost: str = "sqeuclidean",
    tau_a: float | Float[Array, ""] = 1.0,
    tau_b: float | Float[Array, ""] = 1.0,
    mass: None = None,
    tol: float = 1e-3,
    max_iter: int = 2000,
    check_every: int = 10,
    init: None = None,
    epsilon_init: None = None,
    epsilon_decay: float = 0.9,
    implicit: bool = True,
    chunk_size: int | None = None,
    mode: str = "auto",
    callback: None = None,
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

    Differentiation (w.r.t. the points, their weights, ``y``, ``b``, ``epsilon``, ``tau``) is
    implicit, as ``implicit=True`` on one device: the adjoint system
    $\begin{pmatrix} D_a & P \\ P^\top & D_b \end{pmatrix} w = \varepsilon\,\bar z$ is
    solved by Jacobi-preconditioned conjugate gradients whose inner products and $P^\top w$
    products are ``psum``'d ($m + 2$ numbers per CG step), and each device differentiates its
    share of $\langle w, r(z, \theta)\rangle$ locally (``psum`` of the replicated
    parameters' cotangents). Gradients equal the single-device ones (1e-13 in float64).

    Args:
      points: the sharded source points (from [`shard`][jaxclust.distributed.shard]); their
        weights, normalised to sum 1, are the source marginal $a$.
      y: target points ``(m, d)``, replicated on every device.
      a: must be ``None``: the source weights are ``points.weights``
        (``shard(x, mesh, weights=a)``). The signature is that of the single-device
        function; its options that cannot apply to sharded points (``a``, ``mass``,
        ``init``, ``epsilon_init``, ``implicit=False``, ``callback``) raise a ``ValueError``
        unless left at their defaults.
      b: target weights ``(m,)`` summing to 1 (default uniform ``1/m``).
      epsilon: entropic regularisation (absolute, > 0).
      cost: ``"sqeuclidean"``, ``"euclidean"``, ``"cosine"`` or ``"dot"``.
      tau_a: relaxation of the source marginal in (0, 1]; 1 is exact.
      tau_b: relaxation of the target marginal in (0, 1]; 1 is exact.
      mass: must be ``None`` (no partial OT on sharded points).
      tol: tolerance on the L1 marginal error.
      max_iter: iteration budget.
      check_every: iterations between convergence checks.
      init: must be ``None`` (cold start).
      epsilon_init: must be ``None`` (no epsilon annealing).
      epsilon_decay: only with ``epsilon_init``; leave at 0.9.
      implicit: must be ``True`` (implicit differentiation).
      chunk_size: rows per cost block of the online evaluation (the sharded solve is always
        online); ``None``: 512.
      mode: ``"auto"`` or ``"log"``: both run the log-domain iterations (as ``"auto"`` does
        on one device for an online problem).
      callback: must be ``None``.

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
        options (as in ``jaxclust.ot.sinkhorn``).

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
    check_points(points)
    not_applicable("a", a, None, "the source weights are points.weights; pass them to "
                   "shard(x, mesh, weights=a).")
    not_applicable("mass", mass, None, "partial OT is not available on sharded points; pass "
                   "None (or relax the marginals with tau_a/tau_b < 1).")
    not_applicable("init", init, None, "warm starts are not available on sharded points; "
                   "pass None.")
    not_applicable("epsilon_init", epsilon_init, None, "epsilon annealing is not available "
                   "on sharded points; pass None.")
    not_applicable("epsilon_decay", epsilon_decay, 0.9, "it sets the annealing schedule, "
                   "which sharded points do not have; leave it at 0.9.")
    not_applicable("implicit", implicit, True, "the sharded solve is differentiated "
                   "implicitly only; pass implicit=True.")
    not_applicable("callback", callback, None, "pass None (no progress reports from a mesh).")
    if mode not in ("auto", "log"):
        raise ValueError(f"`mode` must be 'auto' or 'log' (both run the log-domain iterations "
                         f"on sharded points), got {mode!r}.")
    check_static_options(tol, max_iter, check_every, "auto", None, 0.9)
    chunk_size = 512 if chunk_size is None else chunk_size
    # concrete points: a ValueError now (traced ones are checked inside shard_map)
    check_values_now(points, overflow=False,
                     bad_w="`points.weights` must be finite and >= 0 with a positive sum.")
    if cost not in COSTS:
        raise ValueError(f"`cost` must be one of {COSTS}, got {cost!r}.")
    checks.check_int(chunk_size, "chunk_size", why="rows per cost block")
    y = checks.as_float_array(y, "y")
    checks.check_ndim(y, "y", 2, "(m, d)")
    if y.shape[0] == 0:
        raise ValueError("`y` has no rows (shape (0, d)); pass at least one target point.")
    if y.shape[1] != points.x.shape[1]:
        raise ValueError(f"`y` must have as many features as the points, {points.x.shape[1]}, "
                         f"got {y.shape[1]}.")
    dtype = jnp.promote_types(jnp.result_type(points.x.dtype, y.dtype), jnp.float32)
    y = y.astype(dtype)
    m = y.shape[0]
    # shapes and Python numbers now; values (NaN, signs, masses) eagerly when concrete, and
    # in any case inside the sharded solve (see _check_values)
    if b is None:
        b = jnp.full((m,), 1.0 / m, dtype)
    b = checks.as_float_array(b, "b", dtype=dtype)
    if b.shape != (m,):
        raise ValueError(f"`b` must have shape ({m},) to match `y`, got {tuple(b.shape)}.")
    eps, ta, tb = (_scalar(v, name, dtype) for v, name in
                   ((epsilon, "epsilon"), (tau_a, "tau_a"), (tau_b, "tau_b")))
    if not checks.is_traced(y, b, eps, ta, tb):
        y, b, eps, ta, tb = _check_values(y, b, eps, ta, tb)
    opts = (("tol", float(tol)), ("max_iter", max_iter), ("check_every", check_every))
    rep = NamedSharding(points.mesh, P())
    if not checks.is_traced(y, b):
        y, b = jax.device_put(y, rep), jax.device_put(b, rep)
    return _sinkhorn(points, y, b, eps, ta, tb, cost=cost,
                     chunk_size=min(chunk_size, max(points.n_pad // points.num_devices, m)),
                     opts=opts)


# ------------------------------------------------------------------------------------------
# SwAV codes


@partial(jax.jit, static_argnames=("n", "mesh", "n_iter"))
def _swav(scores, eps, *, n, mesh, n_iter):
    def body(s, eps):
        # the value check runs on the blocks (outside shard_map, a check on the sharded array
        # would make XLA replicate it), with a global verdict so every device raises
        bad = psum(jnp.sum(~jnp.isfinite(s)), AXIS) > 0
        s = checks.ensure(s, bad, "`scores` contains NaN or Inf; clean or mask the input "
                          "before calling.")
        mask = row_mask(s.shape[0], n, AXIS)
        return swav_iterations(s, eps, n_iter, axis_name=AXIS, row_mask=mask)

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
    checks.check_int(n_iter, "n_iter")
    eps = checks.check_positive_scalar(epsilon, "epsilon")
    if isinstance(scores, ShardedPoints):
        check_values_now(scores, "scores", overflow=False, weights=False)
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
            x = checks.check_finite(x, "scores")  # eager: raises now (before placement)
            x = jax.device_put(x, NamedSharding(mesh, P(AXIS)))
    checks.check_ndim(x, "scores", 2, "(batch, k)")
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    out = _swav(jax.lax.stop_gradient(x), jnp.asarray(eps, dtype), n=n, mesh=mesh,
                n_iter=n_iter)
    return out.astype(x.dtype)
