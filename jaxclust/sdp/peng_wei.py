r"""The Peng–Wei k-means SDP, solved by ADMM (``method="admm"``) or Burer–Monteiro
(``method="bm"``).

Problem (Peng & Wei 2007), for points $x_1, \dots, x_n$ and $D_{ij} = \lVert x_i - x_j\rVert^2$:

$$\min_Z \langle D, Z\rangle \quad\text{s.t.}\quad Z \succeq 0,\; Z \ge 0,\;
Z\mathbf 1 = \mathbf 1,\; \operatorname{tr} Z = k.$$

The membership matrix of a partition, $Z^*_{ij} = \mathbb 1[i, j \in G_a] / |G_a|$, is
feasible with $\langle D, Z^*\rangle = 2\times$ the k-means inertia, so the SDP is a convex
relaxation of k-means.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental.sparse.linalg import lobpcg_standard
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.precision import highest_matmul_precision
from .._core.results import with_summary_repr
from .rounding import _embed, _kmeans_labels

__all__ = ["ADMM_MAX_N", "KMeansSDPResult", "kmeans_sdp"]

#: Largest ``n`` accepted by ``method="admm"`` (it stores a few dense ``n x n`` matrices and
#: eigendecomposes one per iteration); beyond it use ``method="bm"``.
ADMM_MAX_N = 5000

# LOBPCG iterations per partial projection (warm-started from the previous eigenvectors)
_LOBPCG_ITERS = 4
# below this n a full eigh per iteration is about as fast as the partial projection
_PARTIAL_MIN_N = 100


@with_summary_repr
class KMeansSDPResult(NamedTuple):
    """Result of [`kmeans_sdp`][jaxclust.sdp.kmeans_sdp] (a pytree).

    Attributes:
      Z: the SDP solution ``(n, n)`` (``method="admm"``; exactly PSD with $Z\\mathbf 1 =
        \\mathbf 1$ and $\\operatorname{tr} Z = k$, nonnegative up to ``primal_residual``),
        or ``None`` (``method="bm"``).
      factor: the nonnegative factor $U$ ``(n, r)`` with $Z = U U^\\top$ (``method="bm"``),
        or ``None``.
      labels: rounded cluster labels ``(n,)``.
      objective: $\\langle D, Z\\rangle$ in the units of the squared distances.
      primal_residual: ADMM: $\\lVert Z - W\\rVert_F / (1 + \\lVert Z\\rVert_F)$ (distance to
        the nonnegative copy $W$); BM: $\\lVert U U^\\top \\mathbf 1 - \\mathbf 1\\rVert_2 /
        \\sqrt n$ (the trace is exact).
      dual_residual: ADMM: $\\rho \\lVert W - W_{prev}\\rVert_F / (1 + \\lVert Y\\rVert_F)$;
        BM: NaN.
      gap: relative duality gap $(p - d) / (1 + |p| + |d|)$ between the objective $p$ and a
        certified lower bound $d$ (ADMM, with $D$ scaled to unit mean); BM: NaN.
      n_iters: iterations run.
      converged: both residuals (ADMM; BM: the primal residual and the relative objective
        change) fell below ``tol`` before ``max_iter``, and the solution and objective are
        finite.
    """

    Z: Float[Array, "n n"] | None
    factor: Float[Array, "n r"] | None
    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    primal_residual: Float[Array, ""]
    dual_residual: Float[Array, ""]
    gap: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]


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


@partial(jax.jit, static_argnums=(1, 3, 4))
@highest_matmul_precision  # ADMM runs to tol 1e-7: no TF32 / bf16 products
def _admm(x, k, rho, max_iter, adaptive, tol):
    n = x.shape[0]
    dt = x.dtype
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    sq = jnp.sum(xc * xc, axis=1)
    d = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (xc @ xc.T), 0.0)
    d = d * (1.0 - jnp.eye(n, dtype=dt))
    scale = jnp.mean(d)
    scale = jnp.where(scale > 0, scale, 1.0)
    dn = d / scale  # unit-mean costs: the residuals and the default rho are scale-free
    rho0 = jnp.asarray(5.0 * n / k, dt) if rho is None else jnp.asarray(rho, dt) / scale
    alpha = 1.6  # over-relaxation (Boyd et al. 2011, Sec. 3.4.3)

    m = max(2 * k, k + 5)  # eigenpairs kept by the partial projection
    partial = max(5 * m, _PARTIAL_MIN_N) < n  # LOBPCG needs n > 5 m

    def project(arg, basis, full_next):
        if not partial:
            return _project_c1(arg, k)[0], basis, full_next

        def full(_):
            return _project_c1(arg, k, m)

        def part(_):
            z, vec, inexact = _project_c1_partial(arg, k, basis, _LOBPCG_ITERS)
            return jax.lax.cond(inexact, full, lambda _: (z, vec, jnp.asarray(False)), None)

        return jax.lax.cond(full_next, full, part, None)

    def body(s):
        z, w, u, r, it, _, _, basis, full_next = s
        z, basis, full_next = project(w - u - dn / r, basis, full_next)
        zh = alpha * z + (1.0 - alpha) * w
        w_new = jnp.maximum(zh + u, 0.0)
        u = u + zh - w_new
        rp = jnp.sqrt(jnp.sum((z - w_new) ** 2)) / (1.0 + jnp.sqrt(jnp.sum(z * z)))
        rd = r * jnp.sqrt(jnp.sum((w_new - w) ** 2)) / (1.0 + r * jnp.sqrt(jnp.sum(u * u)))
        if adaptive:  # residual balancing every 10 iterations (Boyd et al. 2011, Sec. 3.4.1)
            upd = (it % 10 == 9)
            fac = jnp.where(upd & (rp > 10.0 * rd), 2.0, jnp.where(upd & (rd > 10.0 * rp),
                                                                      0.5, 1.0)).astype(dt)
            r, u = r * fac, u / fac
        return z, w_new, u, r, it + 1, rp, rd, basis, full_next

    def cond(s):
        *_, it, rp, rd, _, _ = s
        return (it < max_iter) & ((rp > tol) | (rd > tol))

    z0 = _initial_point(xc, k)
    inf = jnp.asarray(jnp.inf, dt)
    basis0 = jnp.zeros((n, m if partial else 1), dt)
    init = (z0, z0, jnp.zeros((n, n), dt), rho0, jnp.asarray(0), inf, inf, basis0,
            jnp.asarray(True))
    z, w, u, r, it, rp, rd, _, _ = jax.lax.while_loop(cond, body, init)
    # certificate: N = max(-Y, 0) >= 0 is a valid multiplier of Z >= 0, hence
    # p* >= min_{Z in C1} <D - N, Z>  (Y = rho U is the ADMM multiplier of Z = W)
    nmul = jnp.maximum(-r * u, 0.0)
    nmul = 0.5 * (nmul + nmul.T)
    p = jnp.sum(dn * z)
    lb = _lower_bound(dn - nmul, k)
    gap = (p - lb) / (1.0 + jnp.abs(p) + jnp.abs(lb))
    obj = p * scale
    finite = jnp.all(jnp.isfinite(z)) & jnp.isfinite(obj)
    return z, obj, rp, rd, gap, it, (rp <= tol) & (rd <= tol) & finite


def _round(sol, k, key):
    """``round_labels(sol, k, key)`` without its input checks: the solution is the
    solver's, and a non-finite one (reported as ``converged=False``) must not be blamed on
    a ``sol`` the user never passed; its non-finite entries are zeroed for the rounding."""
    sol = jnp.where(jnp.isfinite(sol), sol, 0.0)
    return _kmeans_labels(_embed(sol, k), k, key, 4)


def _validate(x, k):
    x = checks.as_float_array(x, "x")
    checks.check_points(x, "x")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    n = x.shape[0]
    checks.check_num_clusters(k, n, sdp=True)
    return x, checks.check_sq_norms(checks.check_finite(x, "x"), "x")


def kmeans_sdp(
    x: Float[Array, "n d"],
    k: int,
    *,
    method: str = "admm",
    rho: float | None = None,
    max_iter: int | None = None,
    tol: float = 1e-5,
    key: PRNGKeyArray | None = None,
    adaptive_rho: bool = True,
    **bm_options: Any,
) -> KMeansSDPResult:
    r"""The Peng–Wei k-means SDP relaxation, by ADMM or by Burer–Monteiro.

    $$\min_Z \langle D, Z\rangle \quad\text{s.t.}\quad Z \succeq 0,\; Z \ge 0,\;
    Z\mathbf 1 = \mathbf 1,\; \operatorname{tr} Z = k, \qquad
    D_{ij} = \lVert x_i - x_j\rVert^2.$$

    **ADMM** (``method="admm"``, $n \le$ ``ADMM_MAX_N`` = 5000). With
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
    balancing every 10 iterations (``adaptive_rho``).

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

    **Burer–Monteiro** (``method="bm"``): $Z = U U^\top$, $U \ge 0$ of rank ``rank``
    (``bm_options``), solved by ``jaxclust.sdp._bm.bm_solve``; no ``n x n`` matrix is formed,
    for large ``n``. ``Z`` is then ``None`` and ``factor`` holds $U$.

    Labels are rounded by [`round_labels`][jaxclust.sdp.round_labels] (top-``k``
    eigenvectors, then k-means on the rows).

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters, ``2 <= k < n`` (static).
      method: ``"admm"`` or ``"bm"`` (static).
      rho: ADMM penalty in the units of $D$; ``None`` picks one from the scale of $D$.
      max_iter: iteration budget (static; default 10000 for ADMM).
      tol: tolerance on the relative residuals.
      key: PRNG key (rounding, BM initialisation); ``None`` uses ``jax.random.key(0)``.
      adaptive_rho: residual balancing of $\rho$ (ADMM).
      **bm_options: passed to the BM solver (e.g. ``rank``).

    Returns:
      A [`KMeansSDPResult`][jaxclust.sdp.KMeansSDPResult].

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

    References:
      Peng & Wei, "Approximating K-means-type clustering via semidefinite programming",
      SIAM J. Optim. 18(1), 2007. Boyd, Parikh, Chu, Peleato & Eckstein, "Distributed
      optimization and statistical learning via the alternating direction method of
      multipliers", Found. Trends Mach. Learn. 2011.
    """
    x, x_checked = _validate(x, k)
    n = x.shape[0]
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"`tol` must be a number > 0, got {tol!r}.")
    checks.check_int(max_iter, "max_iter", none_ok=True)
    key = jax.random.key(0) if key is None else checks.check_key(key)
    x = jax.lax.stop_gradient(x_checked)
    if method == "admm":
        if n > ADMM_MAX_N:
            raise ValueError(f"`x` has n = {n} points, more than method='admm' handles "
                             f"(n <= {ADMM_MAX_N}: dense n x n matrices and one eigh per "
                             "iteration); use method='bm' (Burer-Monteiro, low rank).")
        if bm_options:
            raise ValueError(f"unexpected options for method='admm': {sorted(bm_options)}.")
        if rho is not None:
            rho = checks.check_positive_scalar(rho, "rho")
        z, obj, rp, rd, gap, it, conv = _admm(x, k, rho, max_iter or 10000,
                                              bool(adaptive_rho), tol)
        labels = _round(z, k, key)
        return KMeansSDPResult(z, None, labels, obj, rp, rd, gap, it, conv)
    if method == "bm":
        try:
            from ._bm import bm_solve
        except ImportError as err:
            raise NotImplementedError("method='bm' needs jaxclust.sdp._bm (the Burer-Monteiro "
                                      "solver), which is not available in this build; use "
                                      "method='admm' for n <= "
                                      f"{ADMM_MAX_N}.") from err
        opts = dict(bm_options)
        if max_iter is not None:
            opts["max_iter"] = max_iter
        st = bm_solve(x, k, tol=tol, key=key, **opts)
        u = st.U
        labels = _round(u, k, key)
        nan = jnp.asarray(jnp.nan, u.dtype)
        return KMeansSDPResult(None, u, labels, st.objective, st.primal_residual, nan, nan,
                               st.n_iters, st.converged & jnp.isfinite(st.objective))
    raise ValueError(f"`method` must be 'admm' or 'bm', got {method!r}.")
