r"""The iterative likelihood-adjusted SDP (iLA-SDP) for clusters of different shapes.

**Model.** $x_i \sim \mathcal N(\mu_{k(i)}, \Sigma_{k(i)})$ independently, where the labels
$k(i)$, the means, the covariances and the proportions $\pi$ are all parameters (labels
as parameters: the *classification* likelihood of the observed points, no latent variable).
Write $G_k = \{i : k(i) = k\}$, $n_k = |G_k|$. Maximising over the means first gives
$\mu_k = \bar x_k$, and the within-group identity

$$\sum_{i\in G_k} (x_i - \bar x_k)^\top \Sigma_k^{-1} (x_i - \bar x_k) = \frac{1}{2n_k}
\sum_{i,j\in G_k} (x_i - x_j)^\top\Sigma_k^{-1}(x_i - x_j)$$

removes them altogether: with the group membership matrices
$Z_k = \mathbf 1_{G_k}\mathbf 1_{G_k}^\top / n_k$ and the Mahalanobis distance matrices
$D^{(k)}_{ij} = (x_i - x_j)^\top \Sigma_k^{-1} (x_i - x_j)$, minus twice the profile
log-likelihood is, up to a constant,

$$F(Z, \Sigma, \pi) = \sum_{k=1}^K \Bigl\langle Z_k,\; \tfrac12 D^{(k)} + \bigl(\log\det
\Sigma_k - 2\log\pi_k\bigr)\mathbf 1\mathbf 1^\top \Bigr\rangle$$

(because $\langle Z_k, D^{(k)}\rangle$ is twice the group's Mahalanobis scatter and
$\langle Z_k, \mathbf 1\mathbf 1^\top\rangle = n_k$); $F = -2\ell - nd\log 2\pi$ exactly at a
partition. No centroid appears: the
assignment is judged by pairwise distances only, which is what makes the SDP immune to bad
centroid configurations.

**Relaxation.** The matrices $Z_k$ of a partition are exactly the rank-one nonnegative PSD
matrices with $\operatorname{tr} Z_k = 1$ whose row sums add up to one,
$\sum_k Z_k\mathbf 1 = \mathbf 1$. Dropping the rank gives the group SDP

$$\min_{Z_1..Z_K} \sum_k \langle A_k, Z_k\rangle \quad\text{s.t.}\quad Z_k\succeq 0,\;
Z_k\ge 0,\; \operatorname{tr}Z_k = 1,\; \sum_k Z_k\mathbf 1 = \mathbf 1,$$

$A_k = D^{(k)} + 2(\log\det\Sigma_k - 2\log\pi_k)\mathbf 1\mathbf 1^\top$ ($2F$ in $Z$). When all
$\Sigma_k$ are equal (and $\pi$ uniform) $Z = \sum_k Z_k$ is feasible for the Peng–Wei SDP
with the same objective: iLA-SDP generalises the k-means SDP.

**Covariance step.** For fixed $Z$, $F$ is minimised in closed form. With soft group
weights $w_k = Z_k\mathbf 1$ ($\sum_k w_k = \mathbf 1$), $n_k = \mathbf 1^\top w_k$ and the
Laplacian $L(Z_k) = \operatorname{diag}(w_k) - Z_k \succeq 0$,

$$\tfrac12\langle Z_k, D^{(k)}\rangle = \operatorname{tr}\bigl(\Sigma_k^{-1} X^\top L(Z_k) X
\bigr) \;\Rightarrow\; \Sigma_k = \frac{X^\top L(Z_k)X}{n_k},\qquad \pi_k = \frac{n_k}{n},$$

the within-group scatter computed from pairs (again no centroid); for a partition it is the
group's sample covariance. ``reg_covar`` is added to its diagonal (as in EM) so that no
group collapses; ``"diag"`` and ``"spherical"`` keep the diagonal or the mean eigenvalue.
Alternating the SDP step and the covariance step is block-coordinate descent on one
objective $F$, so it cannot increase $F$ (up to the inner solver's tolerance and the
regularisation).

**SDP step.** Each $Z_k = U_kU_k^\top$ with a nonnegative factor $U_k\in\mathbb R^{n\times r}$,
$\lVert U_k\rVert_F = 1$ (rank $r$, default 2), and the augmented Lagrangian of
$\sum_k U_kU_k^\top\mathbf 1 = \mathbf 1$ is minimised by projected gradient steps with a
multiplier update, as in [`kmeans_sdp`][jaxclust.sdp.kmeans_sdp]'s ``BurerMonteiro``
solver. With
$Y_k = X\Sigma_k^{-1/2}$ (centred), $s_k = \operatorname{rowsq}(Y_k)$ and $c_k = U_k^\top
\mathbf 1$: $\langle A_k, U_kU_k^\top\rangle = 2 s_k^\top U_k c_k - 2\lVert Y_k^\top
U_k\rVert_F^2 + \gamma_k\lVert c_k\rVert^2$, $O(ndr)$ per group; no $n\times n$ matrix is
formed. The factors are warm-started from the previous outer iteration.

**Rounding.** $\hat k(i) = \arg\max_k (Z_k\mathbf 1)_i$.

References:
  Zhuang, Chen & Yang, "Likelihood Adjusted Semidefinite Programs for Clustering
  Heterogeneous Data", ICML 2023 (arXiv:2209.15097). Zhuang, Chen, Yang & Zhang,
  "Statistically Optimal K-means Clustering via Nonnegative Low-rank Semidefinite
  Programming", ICLR 2024.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.fixed_point import iterate_blocks
from .._core.precision import highest_matmul_precision
from .._core.results import with_summary_repr
from . import peng_wei
from ._solver import BurerMonteiro

__all__ = ["COVARIANCE_TYPES", "LASDPResult", "la_sdp"]

COVARIANCE_TYPES = ("full", "diag", "spherical")


@with_summary_repr
class LASDPResult(NamedTuple):
    """Result of [`la_sdp`][jaxclust.sdp.la_sdp] (a pytree).

    Attributes:
      factors: nonnegative factors ``(k, n, r)``; the group membership matrices are
        $Z_k = U_kU_k^\\top$ (see the ``Z`` property, which forms them).
      labels: rounded labels ``(n,)``, $\\arg\\max_k (Z_k\\mathbf 1)_i$.
      weights: soft group weights $(Z_k\\mathbf 1)_i$, shape ``(n, k)``; rows sum to one up to
        ``primal_residual``.
      means: group means ``(k, d)`` (weighted by ``weights``; reported, never used by the
        assignment).
      covariances: ``(k, d, d)`` (``reg_covar`` included; diagonal or scaled identity for
        ``"diag"`` / ``"spherical"``).
      proportions: $\\pi_k = n_k / n$, shape ``(k,)``.
      objective: $F(Z, \\Sigma, \\pi)$ of the module docstring at the returned factors and
        their covariance step, in nats: minus twice the profile classification
        log-likelihood, less the constant $nd\\log 2\\pi$.
      log_likelihood: classification log-likelihood of the rounded ``labels`` under the
        fitted Gaussians, $\\sum_i \\log \\pi_{\\hat k(i)} \\mathcal N(x_i; \\mu_{\\hat k(i)},
        \\Sigma_{\\hat k(i)})$.
      primal_residual: $\\lVert\\sum_k Z_k\\mathbf 1 - \\mathbf 1\\rVert / \\sqrt n$ of the last
        SDP step.
      n_outer: SDP + covariance rounds run.
      n_inner: SDP iterations of the last round.
      converged: the labels were stable and the objective changed by at most ``tol_outer``
        (relative) between the last two rounds, the last SDP step converged, and the
        factors, objective, log-likelihood, means and covariances are finite.
    """

    factors: Float[Array, "k n r"]
    labels: Int[Array, " n"]
    weights: Float[Array, "n k"]
    means: Float[Array, "k d"]
    covariances: Float[Array, "k d d"]
    proportions: Float[Array, " k"]
    objective: Float[Array, ""]
    log_likelihood: Float[Array, ""]
    primal_residual: Float[Array, ""]
    n_outer: Int[Array, ""]
    n_inner: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def Z(self) -> Float[Array, "k n n"]:  # noqa: N802 - the SDP's name for the solution
        """The group membership matrices $Z_k = U_kU_k^\\top$, shape ``(k, n, n)``."""
        return jnp.einsum("knr,kmr->knm", self.factors, self.factors)


def _project(v):
    """Projection onto ``{U >= 0, ||U||_F = 1}`` for each group (leading axis)."""
    p = jnp.maximum(v, 0.0)
    nrm = jnp.sqrt(jnp.sum(p * p, axis=(1, 2), keepdims=True))
    return p / jnp.where(nrm > 0, nrm, 1.0)


def _covariances(x, u, reg, cov_type):
    """Closed-form covariance step: ``X^T L(Z_k) X / n_k`` (+ reg), weights, means."""
    c = jnp.sum(u, axis=1)  # (k, r): U_k^T 1
    w = jnp.einsum("knr,kr->nk", u, c)  # (n, k): Z_k 1
    w = jnp.maximum(w, 0.0)
    nk = jnp.maximum(jnp.sum(w, axis=0), 10 * jnp.finfo(x.dtype).eps)
    xu = jnp.einsum("nd,knr->kdr", x, u)  # X^T U_k
    s_diag = jnp.einsum("nk,nd,ne->kde", w, x, x)  # X^T diag(w_k) X
    s = (s_diag - jnp.einsum("kdr,ker->kde", xu, xu)) / nk[:, None, None]
    s = 0.5 * (s + jnp.swapaxes(s, 1, 2))
    d = x.shape[1]
    eye = jnp.eye(d, dtype=x.dtype)
    if cov_type == "diag":
        s = jnp.diagonal(s, axis1=1, axis2=2)[:, :, None] * eye[None]
    elif cov_type == "spherical":
        s = (jnp.trace(s, axis1=1, axis2=2) / d)[:, None, None] * eye[None]
    cov = s + reg * eye[None]
    means = (w.T @ x) / nk[:, None]
    return cov, w, nk, means


def _costs(x, cov, nk, n, estimate_weights):
    """Whitened points ``Y_k``, their squared norms ``s_k`` and the offsets ``gamma_k``."""
    chol = jnp.linalg.cholesky(cov)  # Sigma_k = L L^T; Sigma_k^{-1/2} ~ L^{-1}
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    # y_k = L_k^{-1} (x - m): (x_i - x_j)^T Sigma_k^{-1} (x_i - x_j) = ||y_ki - y_kj||^2
    y = jax.vmap(lambda lk: jax.scipy.linalg.solve_triangular(lk, xc.T, lower=True).T)(chol)
    y = y - jnp.mean(y, axis=1, keepdims=True)
    gamma = 2.0 * logdet
    if estimate_weights:
        gamma = gamma - 4.0 * jnp.log(nk / n)
    gamma = gamma - jnp.mean(gamma)  # a common shift is constant on the feasible set
    return y, jnp.sum(y * y, axis=2), gamma, logdet


def _group_objective(u, y, s, gamma):
    """``sum_k <A_k, U_k U_k^T>`` in O(ndr) per group."""
    c = jnp.sum(u, axis=1)  # (k, r)
    yu = jnp.einsum("knd,knr->kdr", y, u)
    lin = jnp.einsum("kn,knr,kr->", s, u, c)
    return 2.0 * lin - 2.0 * jnp.sum(yu * yu) + jnp.sum(gamma * jnp.sum(c * c, axis=1))


def _a_matvec(v, y, s, gamma):
    """``A_k v_k`` for every group (``v``: (k, n)); power iteration on it."""
    one_v = jnp.sum(v, axis=1, keepdims=True)
    sv = jnp.sum(s * v, axis=1, keepdims=True)
    yyv = jnp.einsum("knd,kd->kn", y, jnp.einsum("knd,kn->kd", y, v))
    return s * one_v + sv - 2.0 * yyv + gamma[:, None] * one_v


def _spectral_bound(y, s, gamma, key, n_power=30):
    """max_k |lambda|_max(A_k) by power iteration."""
    v = jax.random.normal(key, s.shape, s.dtype)

    def body(_, v):
        w = _a_matvec(v, y, s, gamma)
        return w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True),
                               jnp.finfo(s.dtype).tiny)

    v = jax.lax.fori_loop(0, n_power, body, v / jnp.linalg.norm(v, axis=1, keepdims=True))
    return jnp.max(jnp.linalg.norm(_a_matvec(v, y, s, gamma), axis=1))


class _StepState(NamedTuple):
    """State of the group SDP step between two convergence checks."""

    u: Float[Array, "k n r"]
    mult: Float[Array, " n"]
    done: Bool[Array, ""]
    objective: Float[Array, ""]  # at the last check (scaled units)
    residual: Float[Array, ""]


class _Fit(NamedTuple):
    """The covariance step's Gaussian fit at the current factors."""

    cov: Float[Array, "k d d"]
    weights: Float[Array, "n k"]
    sizes: Float[Array, " k"]
    means: Float[Array, "k d"]
    logdet: Float[Array, " k"]


class _Costs(NamedTuple):
    """The next group SDP's costs: whitened points, their squared norms, offsets."""

    y: Float[Array, "k n d"]
    s: Float[Array, "k n"]
    gamma: Float[Array, " k"]


class _OuterState(NamedTuple):
    """State of the SDP + covariance rounds."""

    u: Float[Array, "k n r"]
    mult: Float[Array, " n"]
    labels: Int[Array, " n"]
    done: Bool[Array, ""]  # labels stable, objective settled and the SDP step converged
    objective: Float[Array, ""]
    n_inner: Int[Array, ""]
    residual: Float[Array, ""]
    fit: _Fit
    costs: _Costs


def _sdp_step(u, mult, y, s, gamma, key, tol, beta, step, max_iter, check_every):
    """Augmented-Lagrangian projected gradient on the factors (warm started)."""
    kk, n, _ = u.shape
    dt = u.dtype
    scale = jnp.maximum(jnp.mean(s), jnp.finfo(dt).tiny)  # unit mean squared norm
    ys, ss, gs = y / jnp.sqrt(scale), s / scale, gamma / scale
    lam = _spectral_bound(ys, ss, gs, key)
    sqrt_n = math.sqrt(n)
    ones = jnp.ones((n,), dt)
    grad_f = jax.grad(_group_objective)

    def rowsum(u):
        return jnp.einsum("knr,kr->n", u, jnp.sum(u, axis=1))

    def it(u, m):
        v = rowsum(u) - ones
        w = m + beta * v
        c = jnp.sum(u, axis=1)
        g = grad_f(u, ys, ss, gs)
        g = g + w[None, :, None] * c[:, None, :] + jnp.einsum("knr,n->kr", u, w)[:, None, :]
        lip = 2.0 * lam + 3.0 * beta * n * kk + 2.0 * jnp.linalg.norm(m) * sqrt_n
        u = _project(u - (step / lip) * g)
        v = rowsum(u) - ones
        return u, m + beta * v, v

    def block(st, _):  # check_every iterations, then one convergence check
        def inner(_, umv):
            return it(umv[0], umv[1])

        u, m, v = jax.lax.fori_loop(0, check_every, inner, (st.u, st.mult, jnp.zeros((n,), dt)))
        f = _group_objective(u, ys, ss, gs)
        res = jnp.linalg.norm(v) / sqrt_n
        change = jnp.abs(f - st.objective) / jnp.maximum(jnp.abs(f), 1.0)
        return _StepState(u, m, (res <= tol) & (change <= tol), f, res)

    init = _StepState(u, mult, jnp.asarray(False), _group_objective(u, ys, ss, gs),
                      jnp.asarray(jnp.inf, dt))
    st, n_blocks = iterate_blocks(block, init, max_blocks=max_iter // check_every,
                                  done=lambda st, _: st.done, unrolled=False)
    res = jnp.linalg.norm(rowsum(st.u) - ones) / sqrt_n
    return st.u, st.mult, n_blocks * check_every, st.done, res


def _factors_from_labels(labels, k, rank, dt, noise):
    n = labels.shape[0]
    memb = jax.nn.one_hot(labels, k, dtype=dt).T  # (k, n)
    size = jnp.maximum(jnp.sum(memb, axis=1, keepdims=True), 1.0)
    u = jnp.zeros((k, n, rank), dt).at[:, :, 0].set(memb / jnp.sqrt(size))
    return _project(u + noise)


def _classification_loglik(x, labels, means, cov, logdet, props):
    d = x.shape[1]
    diff = x - means[labels]
    chol = jnp.linalg.cholesky(cov)[labels]
    z = jax.vmap(lambda lk, r: jax.scipy.linalg.solve_triangular(lk, r, lower=True))(chol,
                                                                                      diff)
    return jnp.sum(jnp.log(props[labels]) - 0.5 * (jnp.sum(z * z, axis=1) + logdet[labels]
                                                   + d * math.log(2 * math.pi)))


@partial(jax.jit, static_argnames=("k", "rank", "cov_type", "estimate_weights", "max_outer",
                                   "max_iter", "check_every"))
@highest_matmul_precision  # covariances, SDP steps: full float32 products
def _la_sdp(x, labels0, key, reg, tol, tol_outer, beta, step, *, k, rank, cov_type,
            estimate_weights, max_outer, max_iter, check_every):
    n = x.shape[0]
    dt = x.dtype
    k_noise, k_pow = jax.random.split(key)
    noise = jax.random.uniform(k_noise, (k, n, rank), dt) * (1e-3 / math.sqrt(n))
    u0 = _factors_from_labels(labels0, k, rank, dt, noise)

    def cov_step(u):  # closed-form covariances, then the next SDP's costs and F
        cov, w, nk, means = _covariances(x, u, reg, cov_type)
        y, s, gamma, logdet = _costs(x, cov, nk, n, estimate_weights)
        c = jnp.sum(u, axis=1)
        full = logdet - (2.0 * jnp.log(nk / n) if estimate_weights else 0.0)
        f = (_group_objective(u, y, s, jnp.zeros_like(gamma)) / 2.0
             + jnp.sum(full * jnp.sum(c * c, axis=1)))  # F in nats
        return _Fit(cov, w, nk, means, logdet), _Costs(y, s, gamma), f

    def outer(st, i):
        u, mult, n_in, ok, res = _sdp_step(st.u, st.mult, *st.costs,
                                           jax.random.fold_in(k_pow, i), tol, beta, step,
                                           max_iter, check_every)
        fit, costs, f = cov_step(u)
        labels = jnp.argmax(fit.weights, axis=1)
        stable = jnp.all(labels == st.labels) & (
            jnp.abs(f - st.objective) <= tol_outer * jnp.maximum(jnp.abs(f), 1.0))
        return _OuterState(u, mult, labels, stable & ok, f, n_in, res, fit, costs)

    fit0, costs0, f0 = cov_step(u0)
    init = _OuterState(u0, jnp.zeros((n,), dt), labels0, jnp.asarray(False), f0,
                       jnp.asarray(0), jnp.asarray(jnp.inf, dt), fit0, costs0)
    st, n_out = iterate_blocks(outer, init, max_blocks=max_outer,
                               done=lambda st, _: st.done, unrolled=False)
    fit, u, f = st.fit, st.u, st.objective
    props = fit.sizes / jnp.sum(fit.sizes)
    ll = _classification_loglik(x, st.labels, fit.means, fit.cov, fit.logdet, props)
    finite = (jnp.all(jnp.isfinite(u)) & jnp.isfinite(f) & jnp.isfinite(ll)
              & jnp.all(jnp.isfinite(fit.cov)) & jnp.all(jnp.isfinite(fit.means)))
    return LASDPResult(u, st.labels, fit.weights, fit.means, fit.cov, props, f, ll,
                       st.residual, n_out, st.n_inner, st.done & finite)


def la_sdp(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    init_labels: Int[ArrayLike, " n"] | None = None,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    estimate_weights: bool = True,
    rank: int = 2,
    max_outer: int = 20,
    max_iter: int = 20_000,
    tol: float = 1e-6,
    tol_outer: float = 1e-4,
    beta: float = 1.0,
    step: float = 1.0,
    check_every: int = 10,
) -> LASDPResult:
    r"""Iterative likelihood-adjusted SDP clustering (iLA-SDP) for Gaussian clusters of
    different shapes.

    Alternates (i) the group SDP

    $$\min_{Z_1..Z_K} \sum_k \bigl\langle D^{(k)} + 2(\log\det\Sigma_k - 2\log\pi_k)
    \mathbf 1\mathbf 1^\top,\; Z_k\bigr\rangle \;\;\text{s.t.}\;\; Z_k\succeq 0,\;
    Z_k\ge 0,\; \operatorname{tr}Z_k = 1,\; \textstyle\sum_k Z_k\mathbf 1 = \mathbf 1$$

    ($D^{(k)}$ the squared Mahalanobis distances under $\Sigma_k$), solved by a nonnegative
    low-rank factorisation $Z_k = U_kU_k^\top$, with (ii) the closed-form update
    $\Sigma_k = X^\top(\operatorname{diag}(Z_k\mathbf 1) - Z_k)X / n_k$ (+ ``reg_covar``),
    $\pi_k = n_k / n$. Both steps decrease one objective, minus twice the profile
    classification log-likelihood; the derivation is in the module docstring and the SDP
    guide. No centroid is estimated by the assignment step. The initial partition is
    [`kmeans_sdp`][jaxclust.sdp.kmeans_sdp]'s (``solver=BurerMonteiro()``) unless
    ``init_labels`` is given. Labels and factors carry no gradient (``stop_gradient``).

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters (static), ``2 <= k < n``.
      key: PRNG key (initial SDP, factor noise, power iterations).
      init_labels: initial partition ``(n,)`` with values in ``[0, k)``; default: the
        rounded k-means SDP.
      covariance_type: ``"full"``, ``"diag"`` or ``"spherical"`` (static).
      reg_covar: added to the covariances' diagonals (units of ``x`` squared), as in EM.
      estimate_weights: include $-2\log\pi_k$ (unequal cluster sizes) (static).
      rank: columns of each factor $U_k$ (static, ``1 <= rank <= n``).
      max_outer: SDP + covariance rounds (static).
      max_iter: SDP iterations per round (static; rounded up to ``check_every``).
      tol: SDP tolerance (primal residual and relative objective change).
      tol_outer: relative change of the objective between rounds at which to stop (with
        stable labels). The objective depends on the SDP step's residual off-cluster mass,
        so it is only reproducible to about ``tol`` times the data's dynamic range: 1e-4 is
        reached in float32; much smaller values spend ``max_outer`` rounds on rounding.
      beta: augmented Lagrangian penalty (scaled units, as in ``kmeans_sdp``).
      step: step as a fraction of the curvature bound.
      check_every: SDP iterations between convergence checks (static).

    Returns:
      An [`LASDPResult`][jaxclust.sdp.LASDPResult].

    Raises:
      ValueError: ``x`` not 2-D or not finite, ``k`` outside ``[2, n)``, a bad option or
        ``init_labels`` of the wrong shape or range.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.sdp import la_sdp
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> wide = 3.0 * jax.random.normal(k1, (40, 2))
      >>> tight = jnp.array([[6.0, 0.0]]) + 0.3 * jax.random.normal(k2, (20, 2))
      >>> res = la_sdp(jnp.concatenate([wide, tight]), 2, key=jax.random.key(1))
      >>> res.labels.shape, res.weights.shape, bool(res.converged)
      ((60,), (60, 2), True)

    References:
      Zhuang, Chen & Yang, "Likelihood Adjusted Semidefinite Programs for Clustering
      Heterogeneous Data", ICML 2023.
    """
    x = jax.lax.stop_gradient(peng_wei._validate(x, k))  # the only check of `x`
    n = x.shape[0]
    checks.check_key(key)
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"`covariance_type` must be one of {COVARIANCE_TYPES}, got "
                         f"{covariance_type!r}.")
    for name, val, lo in (("rank", rank, 1), ("max_outer", max_outer, 1),
                          ("max_iter", max_iter, 1), ("check_every", check_every, 1)):
        checks.check_int(val, name, low=lo)
    if rank > n:
        raise ValueError(f"`rank` must be at most n = {n}, got {rank}.")
    for name, val in (("tol", tol), ("tol_outer", tol_outer), ("reg_covar", reg_covar)):
        if isinstance(val, (int, float)) and not (math.isfinite(val) and val >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {val}.")
    beta = checks.check_positive_scalar(beta, "beta", "The penalty is in scaled units; try 1.")
    step = checks.check_positive_scalar(step, "step", "A fraction of 1/L; try 1.")
    k_init, k_run = jax.random.split(key)
    if init_labels is None:
        labels0 = peng_wei._solve(x, k, BurerMonteiro(), k_init).labels
    else:
        labels0 = jnp.asarray(init_labels)
        if labels0.shape != (n,) or not jnp.issubdtype(labels0.dtype, jnp.integer):
            raise ValueError(f"`init_labels` must be an integer array of shape ({n},), got "
                             f"{labels0.dtype} {tuple(labels0.shape)}.")
        labels0 = checks.ensure(labels0, jnp.any((labels0 < 0) | (labels0 >= k)),
                                f"`init_labels` must take values in [0, {k}).")
    n_checks = -(-max_iter // check_every)
    return _la_sdp(x, labels0.astype(jnp.int32), k_run, jnp.asarray(reg_covar, x.dtype),
                   jnp.asarray(tol, x.dtype), jnp.asarray(tol_outer, x.dtype),
                   jnp.asarray(beta, x.dtype), jnp.asarray(step, x.dtype), k=k, rank=rank,
                   cov_type=covariance_type, estimate_weights=bool(estimate_weights),
                   max_outer=max_outer, max_iter=n_checks * check_every,
                   check_every=check_every)
