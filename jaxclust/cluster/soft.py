"""Differentiable k-means: soft k-means and Sinkhorn (size-constrained) k-means.

Both are fixed points of a centroid update ``c = F(c; x)``; their gradients come from the
implicit function theorem at the fixed point (``implicit=True``, memory independent of the
number of iterations) or from unrolling the iterations (``implicit=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.fixed_point import check_callback, gmres_solve, implicit_root, report_progress
from .._core.precision import HIGHEST  # centroid fixed points run to tol ~1e-6: no TF32
from .._core.programs import EagerProgram
from .._core.results import with_summary_repr
from ..ot.entropic import _trusted, default_epsilon, sinkhorn
from .lloyd import (
    _sq_dists,
    _unit_weights,
    _validate_token,
    _with_token,
    all_finite,
    greedy_plusplus,
    origin,
)

__all__ = ["SinkhornKMeansResult", "SoftKMeansResult", "sinkhorn_kmeans", "sinkhorn_kmeans_predict",
           "soft_kmeans", "soft_kmeans_predict"]


@with_summary_repr
class SoftKMeansResult(NamedTuple):
    """Result of [`soft_kmeans`][jaxclust.cluster.soft_kmeans] (a pytree).

    Attributes:
      centroids: fixed point of the soft update, shape ``(k, d)``.
      assignments: soft assignments (rows sum to one), shape ``(n, k)``.
      labels: ``argmax`` of the assignments, shape ``(n,)``.
      objective: the free energy
        $-T\\sum_i w_i \\log\\sum_j e^{-\\lVert x_i-c_j\\rVert^2/T}$ at the fixed point
        (minimised), a smooth surrogate of the k-means inertia; also readable as
        ``energy``.
      n_iters: iterations run.
      converged: the centroid shift fell below the tolerance before ``max_iter`` and every
        output is finite.
    """

    centroids: Float[Array, "k d"]
    assignments: Float[Array, "n k"]
    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def energy(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


@with_summary_repr
class SinkhornKMeansResult(NamedTuple):
    """Result of [`sinkhorn_kmeans`][jaxclust.cluster.sinkhorn_kmeans] (a pytree).

    Attributes:
      centroids: fixed point of the transport-weighted centroid update, shape ``(k, d)``.
      assignments: conditional assignment probabilities $P_{ij}/a_i$ (rows sum to one),
        shape ``(n, k)``; the column masses $\\sum_i P_{ij}$ equal the prescribed ``sizes``.
      labels: ``argmax`` of the assignments, shape ``(n,)``.
      objective: transport cost $\\langle P, C\\rangle$ (the size-constrained soft inertia,
        minimised); also readable as ``loss``.
      n_iters: outer (centroid) iterations run.
      converged: the centroid shift fell below the tolerance before ``max_iter``, the final
        assignment's Sinkhorn solve (the one ``assignments`` come from) met
        ``sinkhorn_tol``, and every output is finite.
    """

    centroids: Float[Array, "k d"]
    assignments: Float[Array, "n k"]
    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def loss(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


def _cluster_sizes(sizes, k: int, dtype) -> jax.Array:
    """The target cluster proportions ``b``: uniform for ``None``, else ``sizes`` (finite,
    > 0, one per cluster) normalised to sum to one."""
    if sizes is None:
        return jax.device_put(np.full((k,), 1.0 / k, dtype))  # NumPy: no XLA program
    b = checks.as_float_array(sizes, "sizes", dtype=dtype)
    if b.shape != (k,):
        raise ValueError(f"`sizes` must have shape ({k},), one per cluster, got "
                         f"{tuple(b.shape)}.")
    b = checks.ensure(b, ~(jnp.isfinite(b) & (b > 0)),
                      "`sizes` must be finite and > 0 (relative cluster sizes).")
    return b / jnp.sum(b)


def _check_iters(max_iter, tol, prefix=""):
    """``max_iter`` an int >= 1 and ``tol`` a number >= 0 (``prefix`` names the inner
    solver's options, e.g. ``sinkhorn_``)."""
    checks.check_int(max_iter, f"{prefix}max_iter")
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol >= 0):
        raise ValueError(f"`{prefix}tol` must be a number >= 0, got {tol!r}.")


def _transport_update(p, x, c):
    """Centroid update ``(P^T x)_j / sum_i P_ij``; a column without (finite) mass, which
    only an inner solve that failed produces (e.g. a tiny ``epsilon``), keeps its centroid
    (never NaN; the failed solve shows in ``converged``)."""
    mass = jnp.sum(p, axis=0)
    ok = (mass > 0) & jnp.all(jnp.isfinite(p), axis=0)
    new = jnp.matmul(p.T, x, precision=HIGHEST) / jnp.where(ok, mass, 1.0)[:, None]
    return jnp.where(ok[:, None] & jnp.isfinite(new), new, c)


def _initial_centroids(x, k_or_centroids, key, w, name="k_or_centroids"):
    """``k`` (k-means++ from ``key``) or given centroids ``(k, d)``; returns ``(k, c0,
    key)``: ``c0`` is None when the solver's program seeds with :func:`_seeded` (one compiled
    program per eager call), else the checked centroids (and ``key`` None)."""
    if checks.is_int(k_or_centroids):
        k = k_or_centroids
        if key is None:
            raise ValueError(f"`key` is required when `{name}` is a number of clusters "
                             "(k-means++ seeding); pass key=jax.random.key(0) or initial "
                             "centroids.")
        checks.check_key(key)
        return k, None, key
    c0 = checks.as_float_array(k_or_centroids, name, dtype=x.dtype)
    if c0.ndim != 2 or c0.shape[1] != x.shape[1]:
        raise ValueError(f"`{name}` must be an int k or centroids of shape (k, {x.shape[1]}), "
                         f"got shape {tuple(c0.shape)}.")
    return c0.shape[0], checks.check_sq_norms(checks.check_finite(c0, name), name), None


def _seeded(x, w, c0, key, k):
    """``c0``, or when it is None greedy k-means++ centres drawn with ``key`` (constants:
    no gradient flows into the seeding)."""
    if c0 is not None:
        return c0
    return jax.lax.stop_gradient(greedy_plusplus(jax.lax.stop_gradient(x), k, key, w, None))


def _adjoint(residual, tol):
    """GMRES on ``(dF/dc - I)^T w = c_bar``; well posed at a stable fixed point."""

    def solve(z, params, z_bar):
        _, vjp = jax.vjp(lambda zz: residual(zz, params), z)
        return gmres_solve(lambda v: vjp(v)[0], z_bar, tol=tol)

    return solve


def _fixed_point(update, c0, params, *, max_iter, tol_abs, implicit, callback=None):
    """Iterate ``c <- update(c, params)`` until ``max|dc| <= tol_abs``; differentiable."""

    def forward(args, c0):  # no closure over traced arrays: custom_vjp requirement
        params, tol_abs = args

        def cond(s):
            _, it, shift = s
            return (it < max_iter) & (shift > tol_abs)

        def body(s):
            c, it, _ = s
            new = update(c, params)
            shift = jnp.max(jnp.abs(new - c))
            report_progress(callback, it + 1, shift, cond(s))  # cond: False on finished lanes
            return new, it + 1, shift

        c, it, shift = jax.lax.while_loop(
            cond, body, (c0, jnp.asarray(0), jnp.asarray(jnp.inf, c0.dtype)))
        return c, (it, shift <= tol_abs)

    if implicit:
        residual = lambda c, args: update(c, args[0]) - c
        adj_tol = 1e-10 if c0.dtype == jnp.float64 else 1e-6
        solver = implicit_root(forward, residual, _adjoint(residual, adj_tol))
        return solver((params, tol_abs), jax.lax.stop_gradient(c0))

    # unrolled: a fixed budget of steps, frozen once converged (reverse-mode through scan)
    def step(carry, _):
        c, it, done = carry
        new = update(c, params)
        shift = jnp.max(jnp.abs(new - c))
        report_progress(callback, it + 1, shift, ~done)
        c = jnp.where(done, c, new)
        it = it + jnp.where(done, 0, 1)
        return (c, it, done | (shift <= tol_abs)), None

    init = (c0, jnp.asarray(0), jnp.asarray(False))
    (c, it, done), _ = jax.lax.scan(jax.checkpoint(step), init, None, length=max_iter)
    return c, (it, done)


def _soft_update(c, params):
    x, w, t = params  # x centred (see _soft_kmeans_fn): no shifted copy per iteration
    r = jax.nn.softmax(-_sq_dists(x, c, jnp.sum(x * x, axis=1)) / t, axis=1) * w[:, None]
    mass = jnp.sum(r, axis=0)
    return (jnp.matmul(r.T, x, precision=HIGHEST)
            / jnp.maximum(mass, jnp.finfo(x.dtype).tiny)[:, None])


def soft_kmeans(
    x: Float[Array, "n d"],
    k_or_centroids: int | Float[Array, "k d"],
    *,
    temperature: float | Float[Array, ""],
    key: PRNGKeyArray | None = None,
    weights: Float[Array, " n"] | None = None,
    max_iter: int = 100,
    tol: float = 1e-5,
    implicit: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> SoftKMeansResult:
    r"""Soft k-means: the fixed point of the soft (annealed) centroid update.

    With temperature $T$, responsibilities and centroids satisfy

    $$
        r_{ij} = \frac{e^{-\lVert x_i - c_j\rVert^2/T}}{\sum_l e^{-\lVert x_i - c_l\rVert^2/T}},
        \qquad
        c_j = \frac{\sum_i w_i r_{ij} x_i}{\sum_i w_i r_{ij}},
    $$

    a stationary point of the free energy
    $E(c) = -T\sum_i w_i\log\sum_j e^{-\lVert x_i - c_j\rVert^2/T}$, which tends to the
    k-means inertia as $T \to 0$ (each update decreases $E$: it is an EM step for an
    isotropic mixture with variance $T/2$ and equal weights). The iteration starts from
    k-means++ centres (``k`` and ``key``) or from given centroids.

    **Gradient mode.** ``implicit=True`` (default): the implicit function theorem at the
    fixed point, $\partial c^\star = (I - \partial_c F)^{-1}\partial_\theta F$, solved by
    GMRES on vector-Jacobian products of one update; memory and time do not grow with the
    number of forward iterations, and the initial centroids receive no gradient.
    ``implicit=False`` unrolls ``max_iter`` steps (frozen after convergence) in a
    checkpointed scan. Gradients flow to ``x``, ``weights``, ``temperature`` and (with
    ``implicit=False``) given initial centroids. The assignments and energy are recomputed
    from $c^\star$ outside the solver, so their gradients include the direct dependence on
    ``x``; by the envelope theorem $\nabla_x E = \partial_x E$ at the fixed point.

    Args:
      x: points ``(n, d)``.
      k_or_centroids: number of clusters (k-means++ seeding from ``key``) or initial
        centroids ``(k, d)``.
      temperature: $T > 0$, in the units of squared distances.
      key: PRNG key for the seeding (required with an int ``k``).
      weights: non-negative sample weights ``(n,)``.
      max_iter: iteration budget (forward; the unrolled mode's length).
      tol: stop when the largest centroid coordinate change is below
        ``tol * sqrt(mean(var(x, axis=0)))``.
      implicit: implicit (default) or unrolled differentiation.
      callback: optional progress report ``callback(iteration, error)`` called on the host
        after every update (``error``: the largest centroid coordinate change), through
        ``jax.debug.callback``; static. ``None`` (default) leaves the compiled program
        unchanged.

    Returns:
      A [`SoftKMeansResult`][jaxclust.cluster.SoftKMeansResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import soft_kmeans
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (40, 2)) + 4.0,
      ...                      jax.random.normal(jax.random.key(1), (40, 2)) - 4.0])
      >>> res = soft_kmeans(x, 2, temperature=1.0, key=jax.random.key(2))
      >>> bool(res.converged), res.assignments.shape
      (True, (80, 2))
      >>> g = jax.grad(lambda x: soft_kmeans(x, 2, temperature=1.0,
      ...                                    key=jax.random.key(2)).energy)(x)
      >>> g.shape
      (80, 2)

    References:
      Rose, Gurewitz & Fox, "Statistical mechanics and phase transitions in clustering",
      Phys. Rev. Lett. 1990 (deterministic annealing). Bai, Kolter & Koltun, "Deep
      Equilibrium Models", NeurIPS 2019 (implicit differentiation of fixed points).
    """
    check_callback(callback)  # first: a static option, no computation
    x, w, token = _validate_token(x, k_or_centroids if isinstance(k_or_centroids, int) else 1,
                                  weights)
    w = _unit_weights(x, w)
    _check_iters(max_iter, tol)
    t = checks.check_positive_scalar(temperature, "temperature",
                                     "It is in units of squared distance; try the data variance.")
    t = jnp.asarray(t, x.dtype)
    k, c0, key = _initial_centroids(x, k_or_centroids, key, w)
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"`k_or_centroids` must give 1 <= k <= n = {x.shape[0]}, got k = {k}.")
    res = _soft_kmeans(x.size * k, x, w, t, c0, key, _plus(tol, token), k, max_iter,
                       implicit, callback)
    return _with_token(res, token)


def _plus(tol, token):
    """``tol`` with the checks token of ``x`` added under ``jit`` (``lloyd._checks_token``:
    a zero scalar carrying ``x``'s NaN / Inf and overflow checks, so that they stop the
    solve before it starts without being attached to ``x``, which XLA would copy); the
    result gets it too (``lloyd._with_token``)."""
    return tol if token is None else tol + token


def _soft_kmeans_fn(x, w, t, c0, key, tol, k, max_iter, implicit, callback=None):
    # the fixed point of the centred points (one shifted copy of x; see lloyd.origin): the
    # update is translation-equivariant, so only the rounding of |x|^2 - 2 <x, c> + |c|^2
    # changes (no cancellation far from 0); the gradients flow through the shift
    mu = origin(x)
    x = x - mu
    c0 = _seeded(x, w, None if c0 is None else c0 - mu, key, k)
    xs = jax.lax.stop_gradient(x)  # centred: the mean variance is the mean square
    tol_abs = tol * jnp.sqrt(jnp.mean(xs * xs) - jnp.mean(jnp.mean(xs, axis=0) ** 2))
    c, (it, conv) = _fixed_point(_soft_update, c0, (x, w, t), max_iter=max_iter,
                                 tol_abs=tol_abs, implicit=implicit, callback=callback)
    logits = -_sq_dists(x, c, jnp.sum(x * x, axis=1)) / t
    r = jax.nn.softmax(logits, axis=1)
    energy = -t * jnp.sum(w * jax.nn.logsumexp(logits, axis=1))
    c = c + mu
    conv = conv & all_finite(c, r, energy)  # e.g. a temperature so small that r is NaN
    return SoftKMeansResult(c, r, jnp.argmax(r, axis=1).astype(jnp.int32), energy, it, conv)


# one program per eager call (quick to compile for small problems on CPU: work = n d k)
_soft_kmeans = EagerProgram(_soft_kmeans_fn, ("k", "max_iter", "implicit", "callback"))


def sinkhorn_kmeans(
    x: Float[Array, "n d"],
    k_or_centroids: int | Float[Array, "k d"],
    *,
    key: PRNGKeyArray | None = None,
    epsilon: float | Float[Array, ""] | None = None,
    sizes: Float[Array, " k"] | None = None,
    weights: Float[Array, " n"] | None = None,
    max_iter: int = 50,
    tol: float = 1e-5,
    sinkhorn_tol: float = 1e-6,
    sinkhorn_max_iter: int = 2000,
    implicit: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> SinkhornKMeansResult:
    r"""k-means with prescribed cluster sizes: assignments by entropic optimal transport.

    Alternates an entropic OT assignment of the points (mass $a_i$, the normalised
    ``weights``) to the centroids (mass $b_j$, the normalised ``sizes``; uniform by default)
    with the transport-weighted centroid update:

    $$
        P = \arg\min_{P1 = a,\ P^\top 1 = b}\ \langle P, C(c)\rangle
            + \varepsilon\,\mathrm{KL}(P\,|\,a\otimes b),
        \quad C_{ij} = \lVert x_i - c_j\rVert^2,
        \qquad
        c_j = \frac{\sum_i P_{ij} x_i}{\sum_i P_{ij}} = \frac{(P^\top x)_j}{b_j}.
    $$

    Each step decreases $\langle P, C\rangle + \varepsilon\,\mathrm{KL}$ (block-coordinate
    descent), so no cluster can collapse or empty: the column masses are the sizes.
    The inner problems use [`jaxclust.ot.sinkhorn`][jaxclust.ot.sinkhorn], warm-started
    from the previous potentials; the assignments come from one more solve at the final
    centroids (from the loop's last potentials if its last solve converged, else cold),
    which must meet ``sinkhorn_tol`` for ``converged``.

    **Gradient mode.** ``implicit=True`` (default): implicit differentiation of the outer
    fixed point $c = F(c; x)$, where the vector-Jacobian products of $F$ go through the
    Sinkhorn solver's own implicit gradient; memory does not grow with the iterations.
    ``implicit=False`` unrolls ``max_iter`` outer steps (each inner solve still implicit).

    Args:
      x: points ``(n, d)``.
      k_or_centroids: number of clusters (k-means++ seeding from ``key``) or initial
        centroids ``(k, d)``.
      key: PRNG key for the seeding (required with an int ``k``).
      epsilon: entropic regularisation in units of squared distance (default:
        ``0.05 * std`` of the initial cost matrix, as ``jaxclust.ot.default_epsilon``; 1
        when all initial costs are equal, e.g. constant data, where every value gives the
        same plan).
      sizes: cluster sizes ``(k,)``, positive (normalised to sum one); default uniform.
      weights: non-negative point masses ``(n,)`` (normalised to sum one).
      max_iter: outer iteration budget.
      tol: stop when the largest centroid coordinate change is below
        ``tol * sqrt(mean(var(x, axis=0)))``.
      sinkhorn_tol: L1 marginal tolerance of each inner solve.
      sinkhorn_max_iter: iteration budget of each inner solve.
      implicit: implicit (default) or unrolled outer differentiation.
      callback: optional progress report ``callback(iteration, error)`` called on the host
        after every outer step (``error``: the largest centroid coordinate change), through
        ``jax.debug.callback``; static. ``None`` (default) leaves the compiled program
        unchanged.

    Returns:
      A [`SinkhornKMeansResult`][jaxclust.cluster.SinkhornKMeansResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import sinkhorn_kmeans
      >>> x = jax.random.normal(jax.random.key(0), (60, 2))
      >>> res = sinkhorn_kmeans(x, 3, key=jax.random.key(1), epsilon=0.1)
      >>> [round(float(s), 3) for s in res.assignments.sum(0) / 60]  # equal sizes
      [0.333, 0.333, 0.333]

    References:
      Cuturi & Doucet, "Fast Computation of Wasserstein Barycenters", ICML 2014 (k-means as
      OT with free centroids). Genevay, Dulac-Arnold & Vert, "Differentiable Deep Clustering
      with Cluster Size Constraints", 2019. Asano, Rupprecht & Vedaldi, "Self-labelling via
      simultaneous clustering and representation learning", ICLR 2020.
    """
    check_callback(callback)  # first: a static option, no computation
    x, w, token = _validate_token(x, k_or_centroids if isinstance(k_or_centroids, int) else 1,
                                  weights)
    w = _unit_weights(x, w)
    _check_iters(max_iter, tol)
    _check_iters(sinkhorn_max_iter, sinkhorn_tol, "sinkhorn_")
    k, c0, key = _initial_centroids(x, k_or_centroids, key, w)
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"`k_or_centroids` must give 1 <= k <= n = {x.shape[0]}, got k = {k}.")
    b = _cluster_sizes(sizes, k, x.dtype)
    if epsilon is not None:
        epsilon = jnp.asarray(checks.check_positive_scalar(
            epsilon, "epsilon", "It is in units of squared distance."), x.dtype)
    res = _sinkhorn_kmeans(x.shape[0] * k, x, w, b, epsilon, c0, key, _plus(tol, token), k,
                           max_iter, float(sinkhorn_tol), int(sinkhorn_max_iter), implicit,
                           callback)
    return _with_token(res, token)


def _sinkhorn_kmeans_fn(x, w, b, eps, c0, key, tol, k, max_iter, stol, smax, implicit,
                        callback=None):
    c0 = _seeded(x, w, c0, key, k)
    a = w / jnp.sum(w)
    if eps is None:
        # 0.05 std of the costs; all costs equal (e.g. constant data) make it 0, and then
        # every epsilon gives the same plan a b^T: use 1
        eps = jax.lax.stop_gradient(default_epsilon(x, c0))
        eps = jnp.where(jnp.isfinite(eps) & (eps > 0), eps, jnp.ones((), eps.dtype))
    tol_abs = tol * jnp.sqrt(jnp.mean(jnp.var(jax.lax.stop_gradient(x), axis=0)))

    def solve_ot(x, c, a, b, eps, init=None):
        # inputs checked once, before the program (x, weights, sizes, epsilon; centroids
        # are weighted means of x): the inner solves skip their value checks, which would
        # otherwise run at every outer iteration and copy x (equinox returns it through a
        # conditional)
        with _trusted():
            return sinkhorn(x, c, a, b, epsilon=eps, tol=stol, max_iter=smax, init=init)

    def update(c, params):
        x, a, b, eps = params
        p = solve_ot(x, c, a, b, eps).plan
        return _transport_update(p, x, c)

    params = (x, a, b, eps)
    if implicit:
        # forward with warm-started inner solves; the same fixed point as `update`
        def forward(args, c0):
            (x, a, b, eps), tol_abs = args

            def cond(s):
                return (s[3] < max_iter) & (s[4] > tol_abs)

            def body(s):
                c, f, g, it, _, _ = s
                res = solve_ot(x, c, a, b, eps, (f, g))
                p = res.plan
                new = _transport_update(p, x, c)
                shift = jnp.max(jnp.abs(new - c))
                report_progress(callback, it + 1, shift, cond(s))
                return new, res.f, res.g, it + 1, shift, res.converged

            n = x.shape[0]
            init = (c0, jnp.zeros((n,), x.dtype), jnp.zeros((k,), x.dtype), jnp.asarray(0),
                    jnp.asarray(jnp.inf, x.dtype), jnp.asarray(False))
            c, f, g, it, shift, inner_ok = jax.lax.while_loop(cond, body, init)
            # the last solve's warm start: the loop's potentials if its last solve converged
            # (zeros, a cold start, otherwise); no gradient (`aux`)
            f, g = jnp.where(inner_ok, f, 0.0), jnp.where(inner_ok, g, 0.0)
            return c, (it, shift <= tol_abs, f, g)

        residual = lambda c, args: update(c, args[0]) - c
        adj_tol = 1e-10 if x.dtype == jnp.float64 else 1e-6
        c, (it, conv, f, g) = implicit_root(forward, residual, _adjoint(residual, adj_tol))(
            (params, tol_abs), jax.lax.stop_gradient(c0))
        # on slowly mixing problems (uniform sizes against unequal clusters) a cold last
        # solve may need more than `sinkhorn_max_iter` iterations where the loop's converged
        # potentials start it next to its solution; a loop whose last solve stalled (short of
        # `sinkhorn_tol` after its iterations) starts it cold: from its stalled potentials it
        # can stall again where a cold start converges. bench_batched's 64 problems of 64 /
        # 256 points: 25 / 9 not converged with cold last solves, 18 / 4 now (a subset); 40
        # seeded problems of 64 points: 8 -> 4. Always warm: 5, one of them newly unconverged
        # (tests/cluster/test_soft.py::test_sinkhorn_kmeans_converges_on_slowly_mixing...)
        init = (f, g)  # `aux` of implicit_root: no gradient
    else:
        c, (it, conv) = _fixed_point(update, c0, params, max_iter=max_iter, tol_abs=tol_abs,
                                     implicit=False, callback=callback)
        init = None
    res = solve_ot(x, c, a, b, eps, init)
    p = res.plan
    assign = p / jnp.maximum(jnp.sum(p, axis=1, keepdims=True), jnp.finfo(x.dtype).tiny)
    loss = res.linear_cost
    # the returned assignments come from this last solve: its marginals must be within
    # `sinkhorn_tol` too, and every output finite
    conv = conv & res.converged & all_finite(c, assign, loss)
    return SinkhornKMeansResult(c, assign, jnp.argmax(p, axis=1).astype(jnp.int32), loss,
                                it, conv)


# one program per eager call (quick to compile for small problems on CPU: work = n k, the
# size of each inner Sinkhorn problem, as for jaxclust.ot.sinkhorn)
_sinkhorn_kmeans = EagerProgram(_sinkhorn_kmeans_fn, ("k", "max_iter", "stol", "smax",
                                                      "implicit", "callback"))


# --------------------------------------------------------------------------------------
# prediction for new points


def _predict_inputs(x, centroids):
    c = checks.as_float_array(centroids, "centroids")
    checks.check_points(c, "centroids")
    xs = checks.as_float_array(x, "x", dtype=jnp.promote_types(c.dtype, jnp.float32))
    checks.check_points(xs, "x")
    if xs.shape[1] != c.shape[1]:
        raise ValueError(f"`x` must have {c.shape[1]} features like `centroids`, got "
                         f"{xs.shape[1]}.")
    xs = checks.check_sq_norms(checks.check_finite(xs, "x"), "x")
    c = checks.check_finite(c.astype(xs.dtype), "centroids")
    return xs, checks.check_sq_norms(c, "centroids")


def soft_kmeans_predict(
    x: Float[Array, "m d"],
    centroids: Float[Array, "k d"],
    *,
    temperature: float | Float[Array, ""],
) -> tuple[Int[Array, " m"], Float[Array, "m k"]]:
    r"""Soft assignments of new points to fitted soft k-means centroids.

    $q_{ij} = \operatorname{softmax}_j(-\lVert x_i - c_j\rVert^2 / T)$ at the temperature
    $T$ the centroids were fitted with: the E-step of
    [`soft_kmeans`][jaxclust.cluster.soft_kmeans], whose ``assignments`` it reproduces on the
    training points. A function of the fitted centroids, as
    [`kmeans_predict`][jaxclust.cluster.kmeans_predict]; differentiable in every input.

    Args:
      x: new points ``(m, d)``.
      centroids: fitted centroids ``(k, d)``, e.g. ``soft_kmeans(...).centroids``.
      temperature: $T > 0$, the value passed to ``soft_kmeans``.

    Returns:
      ``(labels, assignments)``: ``argmax`` ``(m,)`` and the soft assignments ``(m, k)``
      (rows sum to one).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import soft_kmeans, soft_kmeans_predict
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (30, 2)) + 4.0,
      ...                      jax.random.normal(jax.random.key(1), (30, 2)) - 4.0])
      >>> res = soft_kmeans(x, 2, temperature=1.0, key=jax.random.key(2))
      >>> labels, q = soft_kmeans_predict(x[:2], res.centroids, temperature=1.0)
      >>> bool(jnp.allclose(q, res.assignments[:2], atol=1e-5))
      True
    """
    xs, c = _predict_inputs(x, centroids)
    t = checks.check_positive_scalar(temperature, "temperature")
    q = jax.nn.softmax(-_sq_dists(xs, c) / jnp.asarray(t, xs.dtype), axis=1)
    return jnp.argmax(q, axis=1).astype(jnp.int32), q


def sinkhorn_kmeans_predict(
    x: Float[Array, "m d"],
    centroids: Float[Array, "k d"],
    *,
    epsilon: float | Float[Array, ""],
    sizes: Float[Array, " k"] | None = None,
    weights: Float[Array, " m"] | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
) -> tuple[Int[Array, " m"], Float[Array, "m k"], Bool[Array, ""]]:
    r"""Size-constrained assignments of a batch of new points to fitted centroids.

    The assignment step of [`sinkhorn_kmeans`][jaxclust.cluster.sinkhorn_kmeans] at fixed
    centroids: the entropic transport plan $P$ from the batch (masses ``weights``) to the
    centroids (masses ``sizes``) at the fitted ``epsilon``, returned with its rows normalised,
    $P_{ij}/\sum_l P_{il} = \operatorname{softmax}_j((g_j - C_{ij})/\varepsilon)$ (which is
    $P_{ij}/a_i$ once the row marginal holds; a tiny ``epsilon`` gives one-hot rows). The
    size constraint holds **over the batch** (transductive, as SwAV's codes): a batch of
    one point gets ``sizes`` as its assignment, so use
    [`soft_kmeans_predict`][jaxclust.cluster.soft_kmeans_predict] or
    [`kmeans_predict`][jaxclust.cluster.kmeans_predict] for single points. On the training
    points with the fitted ``epsilon`` and ``sizes`` it reproduces the result's
    ``assignments`` (to the Sinkhorn tolerance). ``epsilon`` is required: the fit's default
    depends on its initial centroids, which the result does not keep.

    Args:
      x: new points ``(m, d)``.
      centroids: fitted centroids ``(k, d)``.
      epsilon: entropic regularisation used for the fit (> 0).
      sizes: relative cluster sizes ``(k,)`` (default uniform), as for the fit.
      weights: non-negative point masses ``(m,)`` (default uniform).
      tol: L1 marginal tolerance of the Sinkhorn solve.
      max_iter: its iteration budget.

    Returns:
      ``(labels, assignments, converged)``: ``argmax`` ``(m,)``, the assignments ``(m, k)``
      (rows sum to one) and whether the Sinkhorn solve met ``tol`` with finite output.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import sinkhorn_kmeans, sinkhorn_kmeans_predict
      >>> x = jax.random.normal(jax.random.key(0), (60, 2))
      >>> res = sinkhorn_kmeans(x, 3, key=jax.random.key(1), epsilon=0.1)
      >>> labels, q, ok = sinkhorn_kmeans_predict(x, res.centroids, epsilon=0.1)
      >>> bool(ok), bool(jnp.allclose(q, res.assignments, atol=1e-3))
      (True, True)
    """
    xs, c = _predict_inputs(x, centroids)
    k = c.shape[0]
    _check_iters(max_iter, tol)
    eps = jnp.asarray(checks.check_positive_scalar(epsilon, "epsilon",
                                                   "It is in units of squared distance."),
                      xs.dtype)
    b = _cluster_sizes(sizes, k, xs.dtype)
    if weights is None:
        a = jnp.full((xs.shape[0],), 1.0 / xs.shape[0], xs.dtype)
    else:
        a = checks.row_weights(weights, xs.shape[0], "x", dtype=xs.dtype, positive_sum=True)
        a = a / jnp.sum(a)
    # the log-domain solve divides costs (and potentials of their size) by eps: that must
    # stay finite (eps = 1e-30 still gives the hard assignment; 1e-38 overflows float32)
    big = jnp.finfo(xs.dtype).max
    cmax = jnp.max(_sq_dists(xs, c))
    eps = checks.ensure(eps, ~(cmax < eps * (big / 4)),
                        f"`epsilon` is too small for {jnp.dtype(xs.dtype).name}: the costs "
                        "divided by it overflow (it must exceed 4 max_ij |x_i - c_j|^2 / "
                        f"{big:.2g}). It is in units of squared distance; pass the fit's "
                        "epsilon or rescale the points.")
    res = sinkhorn(xs, c, a, b, epsilon=eps, tol=float(tol), max_iter=int(max_iter))
    # rows of the plan normalised, P_ij / sum_j P_ij = softmax_j((g_j - C_ij) / eps) (equal
    # to P_ij / a_i once the row marginal holds): shifted by the row maximum before the
    # division by eps, so that a tiny eps gives the hard assignment instead of inf / inf
    z = res.g[None, :] - res.geom.cost_matrix()
    z = z - jnp.max(z, axis=1, keepdims=True)
    q = jax.nn.softmax(z / eps, axis=1)
    converged = res.converged & jnp.all(jnp.isfinite(q))
    return jnp.argmax(q, axis=1).astype(jnp.int32), q, converged
