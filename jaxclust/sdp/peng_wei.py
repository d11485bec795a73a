r"""The Peng–Wei k-means SDP, solved by ADMM (``solver=ADMM(...)``) or Burer–Monteiro
(``solver=BurerMonteiro(...)``).

Problem (Peng & Wei 2007), for points $x_1, \dots, x_n$ and $D_{ij} = \lVert x_i - x_j\rVert^2$:

$$\min_Z \langle D, Z\rangle \quad\text{s.t.}\quad Z \succeq 0,\; Z \ge 0,\;
Z\mathbf 1 = \mathbf 1,\; \operatorname{tr} Z = k.$$

The membership matrix of a partition, $Z^*_{ij} = \mathbb 1[i, j \in G_a] / |G_a|$, is
feasible with $\langle D, Z^*\rangle = 2\times$ the k-means inertia, so the SDP is a convex
relaxation of k-means.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental.sparse.linalg import lobpcg_standard
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.fixed_point import iterate_blocks, sequential_vmap
from .._core.precision import highest_matmul_precision
from .._core.programs import EagerProgram
from .._core.results import with_summary_repr
from ..cluster.lloyd import kmeans_unvalidated
from . import burer_monteiro
from ._solver import ADMM, BurerMonteiro, _as_value
from .rounding import _embed

__all__ = ["ADMM_MAX_N", "ADMMStats", "BMStats", "KMeansSDPResult", "kmeans_sdp"]

#: Largest ``n`` accepted by ``solver=ADMM(...)`` (it stores a few dense ``n x n`` matrices
#: and eigendecomposes one per iteration); beyond it use ``BurerMonteiro``.
ADMM_MAX_N = 5000

# LOBPCG iterations per partial projection (warm-started from the previous eigenvectors)
_LOBPCG_ITERS = 4
# below this n a full eigh per iteration is about as fast as the partial projection
_PARTIAL_MIN_N = 100


@with_summary_repr
class ADMMStats(NamedTuple):
    r"""What [`ADMM`][jaxclust.sdp.ADMM] adds to a
    [`KMeansSDPResult`][jaxclust.sdp.KMeansSDPResult] (its ``stats``).

    Attributes:
      Z: the SDP solution ``(n, n)``: exactly PSD with $Z\mathbf 1 = \mathbf 1$ and
        $\operatorname{tr} Z = k$, nonnegative up to ``primal_residual``.
      dual_residual: $\rho \lVert W - W_{prev}\rVert_F / (1 + \lVert Y\rVert_F)$.
      gap: relative duality gap $(p - d) / (1 + |p| + |d|)$ between the objective $p$ and a
        certified lower bound $d$ on the optimum (with $D$ scaled to unit mean).
    """

    Z: Float[Array, "n n"]
    dual_residual: Float[Array, ""]
    gap: Float[Array, ""]


@with_summary_repr
class BMStats(NamedTuple):
    r"""What [`BurerMonteiro`][jaxclust.sdp.BurerMonteiro] adds to a
    [`KMeansSDPResult`][jaxclust.sdp.KMeansSDPResult] (its ``stats``).

    Attributes:
      factor: the nonnegative factor $U$ ``(n, r)`` with $Z = U U^\top$.
      multiplier: the Lagrange multiplier $y$ of $UU^\top\mathbf 1 = \mathbf 1$ for the
        centred objective, in the solver's scaled units, shape ``(n,)``.
    """

    factor: Float[Array, "n r"]
    multiplier: Float[Array, " n"]


@with_summary_repr
class KMeansSDPResult(NamedTuple):
    r"""Result of [`kmeans_sdp`][jaxclust.sdp.kmeans_sdp] (a pytree).

    The fields mean the same for every solver; what only one solver computes is in
    ``stats``, an [`ADMMStats`][jaxclust.sdp.ADMMStats] or a
    [`BMStats`][jaxclust.sdp.BMStats].

    Attributes:
      labels: rounded cluster labels ``(n,)``.
      objective: $\langle D, Z\rangle$ in the units of the squared distances.
      primal_residual: the relative infeasibility of the returned solution. ADMM:
        $\lVert Z - W\rVert_F / (1 + \lVert Z\rVert_F)$ (distance to the nonnegative copy
        $W$; the other constraints hold exactly); BM: $\lVert U U^\top \mathbf 1 -
        \mathbf 1\rVert_2 / \sqrt n$ (the other constraints hold exactly).
      n_iters: iterations run.
      converged: the solver's stopping test passed before its ``max_iter`` (ADMM: both
        residuals at most ``tol``; BM: the primal residual and the relative objective change),
        and the solution and objective are finite.
      stats: the solver's own statistics and solution.
    """

    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    primal_residual: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]
    stats: ADMMStats | BMStats

    @property
    def Z(self) -> Float[Array, "n n"]:  # noqa: N802 - the SDP's name for the solution
        r"""The SDP solution ``(n, n)``: ``stats.Z`` (ADMM), or $UU^\top$ formed from
        ``stats.factor`` (BM; an ``n x n`` matrix the solver itself never forms)."""
        if isinstance(self.stats, BMStats):
            f = self.stats.factor
            return f @ jnp.swapaxes(f, -1, -2)
        return self.stats.Z


def _project_simplex(v, total):
    """Euclidean projection of ``v`` (1-D) onto ``{mu >= 0, sum(mu) = total}`` (sort-based)."""
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - total
    j = jnp.arange(1, v.shape[0] + 1, dtype=v.dtype)
    ok = u - css / j > 0
    r = jnp.sum(ok)  # ok is a prefix of True
    tau = css[jnp.maximum(r - 1, 0)] / jnp.maximum(r, 1).astype(v.dtype)
    return jnp.maximum(v - tau, 0.0)


def _center(m):
    """$P M P$ with $P = I - \\mathbf 1 \\mathbf 1^\\top / n$ (double centring)."""
    m = m - jnp.mean(m, axis=0, keepdims=True)
    return m - jnp.mean(m, axis=1, keepdims=True)


def _project_c1(v, k, m=1):
    r"""Exact projection onto $C_1 = \{Z \succeq 0, Z\mathbf 1 = \mathbf 1, \operatorname{tr}
    Z = k\}$: $Z = \mathbf 1\mathbf 1^\top/n + V_\perp \operatorname{diag}(\mu) V_\perp^\top$
    with $(\lambda, V_\perp)$ the eigenpairs of $P V P$ on $\mathbf 1^\perp$ and $\mu$ the
    projection of $\lambda$ onto the simplex of total $k - 1$. Also returns the top ``m``
    eigenvectors and whether ``m`` of them or more carry weight."""
    n = v.shape[0]
    pvp = _center(0.5 * (v + v.T))
    # push the eigenvector 1/sqrt(n) (eigenvalue 0 of PVP) far below every other eigenvalue
    # so that the simplex projection gives it weight 0: beta > |lambda|_max + (k - 1)
    beta = jnp.sqrt(jnp.sum(pvp * pvp)) + k
    lam, vec = jnp.linalg.eigh(pvp - beta / n)
    mu = _project_simplex(lam, k - 1.0)
    z = jnp.full((n, n), 1.0 / n, v.dtype) + (vec * mu[None, :]) @ vec.T
    return z, vec[:, n - m:], jnp.sum(mu > 0) >= m


def _project_c1_partial(v, k, basis, n_iter):
    r"""$\Pi_{C_1}$ from the top ``m = basis.shape[1]`` eigenpairs only (LOBPCG warm-started
    from ``basis``, restricted to $\mathbf 1^\perp$). Exact when the smallest of them gets
    no weight (every other eigenvalue is below it, hence below the simplex threshold);
    returns ``(Z, eigenvectors, inexact)`` so that the caller falls back to ``eigh`` when
    the subspace is too small."""
    n = v.shape[0]
    pvp = _center(0.5 * (v + v.T))
    beta = jnp.sqrt(jnp.sum(pvp * pvp)) + k

    def op(q):  # PVP - beta 11^T/n: the direction 1 is pushed to the bottom
        return pvp @ q - (beta / n) * jnp.sum(q, axis=0, keepdims=True)

    x0 = basis - jnp.mean(basis, axis=0, keepdims=True)
    lam, vec, _ = lobpcg_standard(op, x0, m=n_iter)
    mu = _project_simplex(lam, k - 1.0)
    z = jnp.full((n, n), 1.0 / n, v.dtype) + (vec * mu[None, :]) @ vec.T
    return z, vec, mu[jnp.argmin(lam)] > 0


def _lower_bound(c, k):
    r"""$\min_{Z \in C_1} \langle C, Z\rangle = \mathbf 1^\top C \mathbf 1 / n + (k - 1)
    \lambda_{\min}(P C P |_{\mathbf 1^\perp})$."""
    n = c.shape[0]
    pcp = _center(0.5 * (c + c.T))
    beta = jnp.sqrt(jnp.sum(pcp * pcp)) + 1.0
    lam = jnp.linalg.eigvalsh(pcp + beta / n)
    return jnp.sum(c) / n + (k - 1.0) * lam[0]


def _initial_point(xc, k):
    r"""A feasible, low-rank start: $Z_0 = \mathbf 1\mathbf 1^\top/n + VV^\top$ with $V$ the
    top $k - 1$ left singular vectors of the centred data (orthogonal to $\mathbf 1$), the
    spectral relaxation of k-means. Its iterates stay near low rank, so the partial
    projection takes over sooner (at n = 400: 14 full eigendecompositions instead of 24).
    Falls back to the full-rank centre of $C_1$ when the data have rank below $k - 1$."""
    n, d = xc.shape
    dt = xc.dtype
    centre = jnp.full((n, n), 1.0 / n, dt) + (k - 1.0) / (n - 1.0) * _center(jnp.eye(n, dtype=dt))
    if d < k - 1:
        return centre
    u, sv, _ = jnp.linalg.svd(xc, full_matrices=False)
    v = u[:, : k - 1]
    low = jnp.full((n, n), 1.0 / n, dt) + v @ v.T
    ok = sv[k - 2] > 1e-6 * jnp.maximum(sv[0], jnp.finfo(dt).tiny)
    return jnp.where(ok, low, centre)


class _ADMMState(NamedTuple):
    """ADMM iterate: ``Z`` (in C1), its nonnegative copy ``W``, the scaled multiplier ``U``,
    the penalty, the last residuals and the partial projection's warm start."""

    z: Float[Array, "n n"]
    w: Float[Array, "n n"]
    u: Float[Array, "n n"]
    rho: Float[Array, ""]
    primal: Float[Array, ""]
    dual: Float[Array, ""]
    basis: Float[Array, "n m"]
    full_next: Bool[Array, ""]


@highest_matmul_precision  # ADMM runs to tol 1e-7: no TF32 / bf16 products
def _admm_one(x, rho, tol, *, k, max_iter, adaptive, default_rho):
    n = x.shape[0]
    dt = x.dtype
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    sq = jnp.sum(xc * xc, axis=1)
    d = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (xc @ xc.T), 0.0)
    d = d * (1.0 - jnp.eye(n, dtype=dt))
    scale = jnp.mean(d)
    scale = jnp.where(scale > 0, scale, 1.0)
    dn = d / scale  # unit-mean costs: the residuals and the default rho are scale-free
    rho0 = jnp.asarray(5.0 * n / k, dt) if default_rho else rho / scale
    alpha = 1.6  # over-relaxation (Boyd et al. 2011, Sec. 3.4.3)

    m = max(2 * k, k + 5)  # eigenpairs kept by the partial projection
    use_partial = max(5 * m, _PARTIAL_MIN_N) < n  # LOBPCG needs n > 5 m

    def project(arg, basis, full_next):
        if not use_partial:
            return _project_c1(arg, k)[0], basis, full_next

        # the partial projection unless a full one is due; then the full one if that was
        # due or the partial one was inexact (each traced once: a smaller program)
        def part(_):
            return _project_c1_partial(arg, k, basis, _LOBPCG_ITERS)

        def skip(_):
            return jnp.zeros((n, n), dt), basis, jnp.asarray(True)

        z, vec, need_full = jax.lax.cond(full_next, skip, part, None)
        return jax.lax.cond(need_full, lambda _: _project_c1(arg, k, m),
                            lambda _: (z, vec, jnp.asarray(False)), None)

    def block(s, it):  # one ADMM iteration (a block of one: the residuals are free)
        z, basis, full_next = project(s.w - s.u - dn / s.rho, s.basis, s.full_next)
        zh = alpha * z + (1.0 - alpha) * s.w
        w_new = jnp.maximum(zh + s.u, 0.0)
        u = s.u + zh - w_new
        r = s.rho
        rp = jnp.sqrt(jnp.sum((z - w_new) ** 2)) / (1.0 + jnp.sqrt(jnp.sum(z * z)))
        rd = r * jnp.sqrt(jnp.sum((w_new - s.w) ** 2)) / (1.0 + r * jnp.sqrt(jnp.sum(u * u)))
        if adaptive:  # residual balancing every 10 iterations (Boyd et al. 2011, Sec. 3.4.1)
            upd = (it % 10 == 9)
            fac = jnp.where(upd & (rp > 10.0 * rd), 2.0, jnp.where(upd & (rd > 10.0 * rp),
                                                                      0.5, 1.0)).astype(dt)
            r, u = r * fac, u / fac
        return _ADMMState(z, w_new, u, r, rp, rd, basis, full_next)

    z0 = _initial_point(xc, k)
    inf = jnp.asarray(jnp.inf, dt)
    init = _ADMMState(z0, z0, jnp.zeros((n, n), dt), rho0, inf, inf,
                      jnp.zeros((n, m if use_partial else 1), dt), jnp.asarray(True))
    # stop unless a residual is above tol (a NaN residual stops the loop too)
    s, it = iterate_blocks(block, init, max_blocks=max_iter,
                           done=lambda s, _: ~((s.primal > tol) | (s.dual > tol)),
                           unrolled=False)
    z, rp, rd = s.z, s.primal, s.dual
    # certificate: N = max(-Y, 0) >= 0 is a valid multiplier of Z >= 0, hence
    # p* >= min_{Z in C1} <D - N, Z>  (Y = rho U is the ADMM multiplier of Z = W)
    nmul = jnp.maximum(-s.rho * s.u, 0.0)
    nmul = 0.5 * (nmul + nmul.T)
    p = jnp.sum(dn * z)
    lb = _lower_bound(dn - nmul, k)
    gap = (p - lb) / (1.0 + jnp.abs(p) + jnp.abs(lb))
    obj = p * scale
    finite = jnp.all(jnp.isfinite(z)) & jnp.isfinite(obj)
    return z, obj, rp, rd, gap, it, (rp <= tol) & (rd <= tol) & finite


@functools.cache
def _admm(k, max_iter, adaptive, default_rho):
    """One compiled ADMM program per static configuration; under ``vmap`` the problems run
    one after another (each to its own iteration count, and the projection's data-dependent
    ``cond`` stays a branch instead of running both sides). Called as ``program(n, x, rho,
    tol)``: an eager solve of a small problem on CPU (n <= :data:`_QUICK_MAX_N`) compiles
    with the quick XLA options of :mod:`jaxclust._core.programs`. Measured at n = 300,
    d = 8, k = 4 (2-core Xeon, load ~5): compile 2.34 -> 0.56 s of CPU time, run 0.55 ->
    0.62 s (the eigendecompositions are LAPACK calls either way); the same iterations,
    objective within 5e-6 relative and Z within 1e-7 of the default program (float32
    rounding of the fused elementwise code). Under jit / vmap the caller's program and
    options apply."""
    # the outer jit caches the trace of the custom_vmap for eager calls
    fn = sequential_vmap(partial(_admm_one, k=k, max_iter=max_iter, adaptive=adaptive,
                                 default_rho=default_rho))
    return EagerProgram(fn, quick_work=_QUICK_MAX_N)


_QUICK_MAX_N = 500


def _run_admm(x, rho, tol, k, solver, default_rho):
    return _admm(k, solver.max_iter, solver.adaptive_rho, default_rho)(x.shape[0], x, rho, tol)


def _round(sol, k, key):
    """``round_labels(sol, k, key)`` without its input checks: the solution is the
    solver's, and a non-finite one (reported as ``converged=False``) must not be blamed on
    a ``sol`` the user never passed; its non-finite entries are zeroed for the rounding."""
    sol = jnp.where(jnp.isfinite(sol), sol, 0.0)
    # the embedding is finite by construction: k-means without a second validation (eagerly
    # it compiles its own single program, quick for small problems)
    return kmeans_unvalidated(_embed(sol, k), k, key=key, n_init=4).labels


def _validate(x, k):
    """The points, once, at the public boundary (``kmeans_sdp``, ``la_sdp``): shape, ``k``,
    finite values and representable squared distances; promoted to float32 or wider."""
    x = checks.as_float_array(x, "x")
    checks.check_points(x, "x")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    checks.check_num_clusters(k, x.shape[0], sdp=True)
    if checks.is_traced(x):
        return checks.check_sq_norms(checks.check_finite(x, "x"), "x")
    # concrete points: both value checks as one compiled program (op-by-op they compile a
    # dozen small ones on a first call); a failing check reruns to raise its own message
    nonfinite, overflow = _value_flags(x)
    if bool(nonfinite) or bool(overflow):
        return checks.check_sq_norms(checks.check_finite(x, "x"), "x")
    return x


@jax.jit
def _value_flags(x):
    return jnp.any(~jnp.isfinite(x)), checks.sq_norm_overflow(x)


def _check_solver(solver):
    if isinstance(solver, type) and solver in (ADMM, BurerMonteiro):
        raise ValueError(f"`solver` must be an instance such as {solver.__name__}(), got the "
                         "class itself.")
    if not isinstance(solver, (ADMM, BurerMonteiro)):
        raise ValueError(f"`solver` must be ADMM(...) or BurerMonteiro(...) from jaxclust.sdp, "
                         f"got {type(solver).__name__} {solver!r}"[:200] + ".")


def _solve(x, k, solver, key) -> KMeansSDPResult:
    """``kmeans_sdp`` on validated points (shared with ``la_sdp``'s initial partition)."""
    n, dt = x.shape[0], x.dtype
    if isinstance(solver, BurerMonteiro):
        st = burer_monteiro._solve_validated(x, k, solver, key)
        return KMeansSDPResult(_round(st.U, k, key), st.objective, st.primal_residual,
                               st.n_iters, st.converged & jnp.isfinite(st.objective),
                               BMStats(st.U, st.multiplier))
    if n > ADMM_MAX_N:
        raise ValueError(f"`x` has n = {n} points, more than solver=ADMM() handles "
                         f"(n <= {ADMM_MAX_N}: dense n x n matrices and one eigh per "
                         "iteration); use solver=BurerMonteiro() (low rank, no n x n matrix).")
    default_rho = solver.rho is None
    rho = jnp.zeros((), dt) if default_rho else _as_value(solver.rho, "rho", dt)
    tol = _as_value(solver.tol, "tol", dt)
    z, obj, rp, rd, gap, it, conv = _run_admm(x, rho, tol, k, solver, default_rho)
    return KMeansSDPResult(_round(z, k, key), obj, rp, it, conv, ADMMStats(z, rd, gap))


def kmeans_sdp(
    x: Float[Array, "n d"],
    k: int,
    *,
    solver: ADMM | BurerMonteiro = ADMM(),
    key: PRNGKeyArray | None = None,
) -> KMeansSDPResult:
    r"""The Peng–Wei k-means SDP relaxation, by ADMM or by Burer–Monteiro.

    $$\min_Z \langle D, Z\rangle \quad\text{s.t.}\quad Z \succeq 0,\; Z \ge 0,\;
    Z\mathbf 1 = \mathbf 1,\; \operatorname{tr} Z = k, \qquad
    D_{ij} = \lVert x_i - x_j\rVert^2.$$

    The solver is an object holding exactly its own options (as in optimistix):
    ``solver=ADMM(rho=..., adaptive_rho=..., tol=..., max_iter=...)`` (default) or
    ``solver=BurerMonteiro(rank=..., tol=..., max_iter=..., beta=..., step=...,
    check_every=..., init=...)``. An option of the other solver raises a ``ValueError``
    naming it; none is ever ignored.

    **ADMM** ([`ADMM`][jaxclust.sdp.ADMM], $n \le$ ``ADMM_MAX_N`` = 5000). With
    $C_1 = \{Z \succeq 0, Z\mathbf 1 = \mathbf 1, \operatorname{tr} Z = k\}$ and
    $C_2 = \{W \ge 0\}$ the problem is $\min \langle D, Z\rangle + I_{C_1}(Z) + I_{C_2}(W)$
    s.t. $Z = W$: a two-block ADMM (Boyd et al. 2011), convergent for every $\rho > 0$,
    with both projections exact. Scaled multiplier $U = Y / \rho$, over-relaxation
    $\alpha = 1.6$:

    $$Z^{+} = \Pi_{C_1}\!\big(W - U - D/\rho\big),\quad
    \hat Z = \alpha Z^{+} + (1 - \alpha) W,\quad
    W^{+} = \max(\hat Z + U, 0),\quad U^{+} = U + \hat Z - W^{+}.$$

    $\Pi_{C_1}$ is closed-form up to one eigendecomposition: $Z \mathbf 1 = \mathbf 1$
    splits $Z = \mathbf 1\mathbf 1^\top / n + M$ with $M = P M P$,
    $P = I - \mathbf 1\mathbf 1^\top / n$; then $Z \succeq 0 \iff M \succeq 0$ and
    $\operatorname{tr} M = k - 1$, and the Frobenius-nearest such $M$ to $P V P$ keeps its
    eigenvectors on $\mathbf 1^\perp$ and projects its eigenvalues onto the simplex
    $\{\mu \ge 0, \sum\mu = k - 1\}$. Only the eigenvalues above the simplex threshold
    matter, and near the solution there are about $k - 1$ of them: for $n > 100$ each
    projection first computes the top $m = \max(2k, k + 5)$ eigenpairs by LOBPCG
    (4 iterations, warm-started from the previous eigenvectors, $O(n^2 m)$) and falls back
    to a full ``eigh`` ($O(n^3)$) only when the smallest of them still carries weight (if
    it does not, neither does any other eigenvalue, which all lie below it, so the partial
    projection equals the full one up to the accuracy of the Ritz pairs: 1e-8 to 1e-11
    relative on a 6-sigma mixture at n = 200, and the same iterations and objective).
    The iterations start from the feasible low-rank point $\mathbf 1\mathbf 1^\top/n +
    VV^\top$ ($V$: top $k - 1$ principal directions of the data); the first ones, while the
    iterate is still far from low rank, use ``eigh``.
    $D$ is scaled to unit mean internally (``rho`` is in the units of
    $D$; the default is $5 n / k$ in the scaled units) and $\rho$ is adapted by residual
    balancing every 10 iterations (``adaptive_rho``). ``stats`` is an
    [`ADMMStats`][jaxclust.sdp.ADMMStats] (``Z``, ``dual_residual``, ``gap``).

    Stopping: primal residual $\lVert Z - W\rVert_F / (1 + \lVert Z\rVert_F)$ and dual
    residual $\rho\lVert W^{+} - W\rVert_F / (1 + \lVert Y\rVert_F)$ both at most ``tol``.

    Duality-gap certificate: for any symmetric $N \ge 0$ and feasible $Z$,
    $\langle D, Z\rangle \ge \langle D - N, Z\rangle \ge \min_{Z' \in C_1}\langle D - N,
    Z'\rangle = \mathbf 1^\top (D - N)\mathbf 1 / n + (k - 1)\,\lambda_{\min}\big(P(D - N)P
    |_{\mathbf 1^\perp}\big) =: d$, a valid lower bound on the optimum. We take
    $N = \max(-Y, 0)$ from the ADMM multiplier ($Y \le 0$ is the multiplier of $W \ge 0$ at
    the solution, where the bound is tight) and report
    $(p - d) / (1 + |p| + |d|)$ with $p = \langle D, Z\rangle$, both in the unit-mean
    scaling of $D$. Since the returned $Z$ is nonnegative only up to the primal residual,
    $p$ may fall below the optimum by that order.

    **Burer–Monteiro** ([`BurerMonteiro`][jaxclust.sdp.BurerMonteiro]): $Z = U U^\top$,
    $U \ge 0$ of rank ``rank``, by a projected-gradient augmented Lagrangian method
    (``jaxclust.sdp.burer_monteiro``); no ``n x n`` matrix is formed, for large ``n``.
    ``stats`` is a [`BMStats`][jaxclust.sdp.BMStats] (``factor`` $U$, ``multiplier``); the
    ``Z`` property forms $UU^\top$ on demand.

    Under ``jax.vmap`` the problems are solved one after another inside the compiled
    program (each to its own iteration count: a batched loop would run every problem to the
    slowest one's), then rounded together; every lane equals the unbatched solve.

    Labels are rounded by [`round_labels`][jaxclust.sdp.round_labels] (top-``k``
    eigenvectors, then k-means on the rows).

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters, ``2 <= k < n`` (static).
      solver: [`ADMM`][jaxclust.sdp.ADMM] (default ``ADMM()``) or
        [`BurerMonteiro`][jaxclust.sdp.BurerMonteiro], with its options.
      key: PRNG key (rounding, BM initialisation); ``None`` uses ``jax.random.key(0)``.

    Returns:
      A [`KMeansSDPResult`][jaxclust.sdp.KMeansSDPResult].

    Raises:
      ValueError: ``x`` not 2-D, empty or not finite, ``k`` outside ``[2, n)``, ``solver``
        not an ``ADMM`` or ``BurerMonteiro`` instance, a bad option value, or ``n`` above
        ``ADMM_MAX_N`` with ``ADMM``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.sdp import kmeans_sdp, membership_matrix
      >>> centres = jnp.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
      >>> x = jnp.repeat(centres, 10, axis=0) + jax.random.normal(jax.random.key(0), (30, 2))
      >>> res = kmeans_sdp(x, 3)
      >>> bool(res.converged), sorted(jnp.bincount(res.labels).tolist())
      (True, [10, 10, 10])
      >>> truth = membership_matrix(jnp.repeat(jnp.arange(3), 10), 3)
      >>> bool(jnp.linalg.norm(res.Z - truth) < 1e-2 * jnp.linalg.norm(truth))
      True
      >>> from jaxclust.sdp import BurerMonteiro
      >>> bm = kmeans_sdp(x, 3, solver=BurerMonteiro(rank=6), key=jax.random.key(1))
      >>> bm.stats.factor.shape, bool(bm.converged)
      ((30, 6), True)

    References:
      Peng & Wei, "Approximating K-means-type clustering via semidefinite programming",
      SIAM J. Optim. 18(1), 2007. Boyd, Parikh, Chu, Peleato & Eckstein, "Distributed
      optimization and statistical learning via the alternating direction method of
      multipliers", Found. Trends Mach. Learn. 2011.
    """
    _check_solver(solver)
    x = jax.lax.stop_gradient(_validate(x, k))
    key = jax.random.key(0) if key is None else checks.check_key(key)
    return _solve(x, k, solver, key)
