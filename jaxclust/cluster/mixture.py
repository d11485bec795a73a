"""Gaussian mixture models fitted by expectation-maximisation, in log space."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.sparse.linalg import bicgstab
from jax.scipy.special import logsumexp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks, groups
from .._core.fixed_point import check_callback, implicit_root, iterate_blocks
from .._core.groups import map_groups
from .._core.programs import EagerProgram
from .._core.restarts import best_restart
from .._core.results import with_summary_repr
from .lloyd import kmeans_unvalidated

__all__ = ["GMMResult", "gmm", "gmm_aic", "gmm_bic", "gmm_log_prob", "gmm_n_parameters"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_ADJOINT_MAX_ITER = 500  # BiCGSTAB steps of the implicit gradient (two EM VJPs each)
_HI = jax.lax.Precision.HIGHEST  # float32 matmuls in full precision on every backend


@with_summary_repr
class GMMResult(NamedTuple):
    """Result of [`gmm`][jaxclust.cluster.gmm] (a pytree).

    Attributes:
      means: component means, shape ``(k, d)``.
      covariances: component covariances (``reg_covar`` included), shaped as in
        scikit-learn: ``(k, d, d)`` for ``"full"``, ``(d, d)`` for ``"tied"``, ``(k, d)``
        for ``"diag"``, ``(k,)`` for ``"spherical"``.
      weights: mixture weights, shape ``(k,)``, summing to one.
      responsibilities: posterior probabilities ``p(z_i = j | x_i)`` under the returned
        parameters, shape ``(n, k)``.
      objective: (weighted) mean log-likelihood per point under the returned
        parameters (maximised), as scikit-learn's ``GaussianMixture.score``; also
        readable as ``log_likelihood``.
      n_iters: EM iterations run (of the best restart).
      converged: the change of the mean log-likelihood fell below ``tol`` before
        ``max_iter``, also over the last M-step (from the previous parameters to the
        returned ones, whose ``log_likelihood`` is reported), and every returned array is
        finite.
    """

    means: Float[Array, "k d"]
    covariances: Float[Array, "..."]
    weights: Float[Array, " k"]
    responsibilities: Float[Array, "n k"]
    objective: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def labels(self) -> Int[Array, " n"]:
        """Most probable component of every point, shape ``(n,)``."""
        return jnp.argmax(self.responsibilities, axis=1)

    @property
    def log_likelihood(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


# --------------------------------------------------------------------------------------
# model: log densities, E-step, M-step


def _safe_cholesky(cov):
    """Lower Cholesky factors of ``(..., d, d)`` matrices that never come back NaN.

    A matrix whose factorisation fails (not positive definite to working precision, which
    EM only produces with ``reg_covar = 0`` and a component on fewer than ``d + 1`` points)
    is factorised again with ``sqrt(eps) * trace / d`` added to its diagonal. The first
    attempt only decides; gradients flow through the second, which is finite.
    """
    d = cov.shape[-1]
    first = jnp.linalg.cholesky(jax.lax.stop_gradient(cov))
    ok = jnp.all(jnp.isfinite(first), axis=(-2, -1))
    scale = jnp.abs(jnp.trace(jax.lax.stop_gradient(cov), axis1=-2, axis2=-1)) / d
    scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, 1.0)
    jitter = jnp.where(ok, 0.0, math.sqrt(jnp.finfo(cov.dtype).eps) * scale)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=cov.dtype), cov.shape)
    return jnp.linalg.cholesky(cov + jitter[..., None, None] * eye)


#: ``n d`` from which the steps run per component (a matrix product of ``n x d`` centred
#: points each, vectorised over the components or mapped in groups); below it they form the
#: ``(n, k, d)`` differences in one broadcast, which batches better. Measured (2-core AMD
#: EPYC, float32, E-step): n = 1000, d = 8, k = 4: broadcast 29 us, per component 72 us,
#: 64 problems vmapped 1.2 vs 2.2 ms; n = 1000, d = 32, k = 16: 682 vs 362 us; n = 20,000,
#: d = 64, k = 8: 59 vs 26 ms.
_PER_COMPONENT_POINTS = 1 << 14


def _broadcast(n: int, d: int, k: int) -> bool:
    """Whether a step forms all ``(n, k, d)`` differences at once (small problems)."""
    return n * d < _PER_COMPONENT_POINTS and n * k * d <= groups.DIFF_ENTRIES


def _log_gaussian(x, means, cov, cov_type):
    """``log N(x_i | mu_j, Sigma_j)``, shape ``(n, k)``, from exactly centred differences
    ``x_i - mu_j``: all at once for small problems, else per component, in groups
    (``_core.groups.map_groups``: past 2^22 entries of ``n k d``, so that the
    temporaries are O(n k + n d g), not O(n k d))."""
    n, d = x.shape
    k = means.shape[0]
    at_once = _broadcast(n, d, k)
    diff = x[:, None, :] - means[None, :, :] if at_once else None  # (n, k, d)
    if cov_type in ("full", "tied"):
        chol = _safe_cholesky(cov)  # (k, d, d) or (d, d)
        # inverse Cholesky factors (scikit-learn's precision Cholesky, transposed): matrix
        # products, several times faster than triangular solves of n right-hand sides
        eye = jnp.eye(d, dtype=x.dtype)
        inv = solve_triangular(chol, jnp.broadcast_to(eye, chol.shape), lower=True)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        logdet = jnp.broadcast_to(logdet, (k,))
        if at_once:
            y = jnp.einsum("nkd,ked->nke" if cov_type == "full" else "nkd,ed->nke", diff, inv,
                           precision=_HI)
            maha = jnp.sum(y * y, axis=2)
        else:
            def maha_of(mean, a):
                y = jnp.matmul(x - mean[None, :], a.T, precision=_HI)  # (n, d)
                return jnp.sum(y * y, axis=1)

            maha = (map_groups(maha_of, means, inv, entries=n * d) if cov_type == "full"
                    else map_groups(lambda mean: maha_of(mean, inv), means,
                                    entries=n * d)).T
    elif cov_type == "diag":
        logdet = jnp.sum(jnp.log(cov), axis=1)
        maha = (jnp.sum(diff * diff / cov[None, :, :], axis=2) if at_once else map_groups(
            lambda mean, var: jnp.sum((x - mean[None, :]) ** 2 / var[None, :], axis=1),
            means, cov, entries=n * d).T)
    else:  # spherical
        logdet = d * jnp.log(cov)
        maha = (jnp.sum(diff * diff, axis=2) / cov[None, :] if at_once else map_groups(
            lambda mean, var: jnp.sum((x - mean[None, :]) ** 2, axis=1) / var,
            means, cov, entries=n * d).T)
    return -0.5 * (d * math.log(2.0 * math.pi) + maha + logdet[None, :])


def _e_step(x, params, cov_type):
    """``(log p(x_i), log r_ij)``: per-point log-likelihood and log responsibilities."""
    means, cov, w = params
    weighted = _log_gaussian(x, means, cov, cov_type) + jnp.log(w)[None, :]
    log_norm = logsumexp(weighted, axis=1)
    return log_norm, weighted - log_norm[:, None]


_log_prob = jax.jit(_e_step, static_argnames="cov_type")


def _m_step(x, sw, resp, reg, cov_type):
    """Weighted maximum-likelihood parameters given responsibilities (scikit-learn's
    ``_estimate_gaussian_parameters``, with centred second moments)."""
    d = x.shape[1]
    rw = resp * sw[:, None]
    nk = jnp.sum(rw, axis=0) + 10.0 * jnp.finfo(x.dtype).eps
    means = jnp.matmul(rw.T, x, precision=_HI) / nk[:, None]
    n, k = resp.shape
    eye = jnp.eye(d, dtype=x.dtype)
    at_once = _broadcast(n, d, k)
    diff = x[:, None, :] - means[None, :, :] if at_once else None  # (n, k, d)
    if cov_type in ("full", "tied"):
        # sum_i r_ij (x_i - mu_j)(x_i - mu_j)^T per component, centred exactly
        s = (jnp.einsum("nk,nkd,nke->kde", rw, diff, diff, precision=_HI) if at_once
             else map_groups(
                 lambda r, mean: jnp.einsum("n,nd,ne->de", r, x - mean[None, :],
                                            x - mean[None, :], precision=_HI),
                 rw.T, means, entries=n * d))  # (k, d, d)
        if cov_type == "full":
            cov = s / nk[:, None, None] + reg * eye[None, :, :]
        else:
            cov = jnp.sum(s, axis=0) / jnp.sum(nk) + reg * eye
    else:  # sum_i r_ij (x_i - mu_j)^2 per feature
        sq = (jnp.einsum("nk,nkd->kd", rw, diff * diff, precision=_HI) if at_once
              else map_groups(
                  lambda r, mean: jnp.matmul(r, (x - mean[None, :]) ** 2, precision=_HI),
                  rw.T, means, entries=n * d))  # (k, d)
        var = sq / nk[:, None] + reg
        cov = var if cov_type == "diag" else jnp.mean(var, axis=1)
    return means, cov, nk / jnp.sum(nk)


def _em_step(params, theta, cov_type):
    """One EM iteration: returns the new parameters and the mean log-likelihood of the old."""
    x, sw, reg, _ = theta
    log_norm, log_resp = _e_step(x, params, cov_type)
    ll = jnp.sum(sw * log_norm) / jnp.sum(sw)
    return _m_step(x, sw, jnp.exp(log_resp), reg, cov_type), ll


def _make_solver(cov_type, max_iter, implicit, callback=None):
    """``(theta, params0) -> (params, (n_iters, converged, ll_prev))`` with the chosen gradient;
    ``theta = (x, sample weights, reg, tol)``."""

    def solve(theta, z0):
        tol = theta[3]

        def block(state, _):
            z, prev, _ = state
            new, ll = _em_step(z, theta, cov_type)
            return new, ll, ll - prev

        def done(state, _):
            return jnp.abs(state[2]) < tol

        dtype = z0[0].dtype
        state0 = (z0, jnp.asarray(-jnp.inf, dtype), jnp.asarray(jnp.inf, dtype))
        (z, prev, change), n_iters = iterate_blocks(
            block, state0, max_blocks=max_iter, done=done, unrolled=not implicit,
            callback=callback, progress=lambda st, k: (k + 1, jnp.abs(st[2])))
        # prev: the mean log-likelihood of the parameters before the last M-step
        return z, (n_iters, jnp.abs(change) < tol, jax.lax.stop_gradient(prev))

    if not implicit:
        return solve

    def residual(z, theta):
        new, _ = _em_step(z, theta, cov_type)
        return jax.tree_util.tree_map(jnp.subtract, new, z)

    def adjoint(z, theta, z_bar):
        # (J^T - I) w = z_bar with J = dT/dz, EM's own Jacobian: at a stable fixed point its
        # spectral radius is < 1 (the fraction of missing information) and I - J^T is well
        # conditioned unless EM itself is slow; BiCGSTAB on VJPs (not a Neumann series, which
        # diverges at the unstable fixed points a symmetric start can leave EM in)
        _, vjp = jax.vjp(lambda zz: _em_step(zz, theta, cov_type)[0], z)
        rtol = 1e-6 if z[0].dtype == jnp.float32 else 1e-12

        def matvec(u):  # (I - J^T) u
            return jax.tree_util.tree_map(jnp.subtract, u, vjp(u)[0])

        u, _ = bicgstab(matvec, z_bar, x0=z_bar, tol=rtol, atol=0.0, maxiter=_ADJOINT_MAX_ITER)
        return jax.tree_util.tree_map(jnp.negative, u)

    return implicit_root(solve, residual, adjoint)


def _fit_fn(x, sw, reg, tol, key, init_value, *, k, cov_type, init_kind, n_init, max_iter,
         implicit, callback=None):
    n = x.shape[0]
    sw = sw * (n / jnp.sum(sw))  # mean one
    # floor on the ridge: keeps every covariance positive definite in the working precision
    centre = jnp.sum(sw[:, None] * x, axis=0, keepdims=True) / n
    scale = jax.lax.stop_gradient(jnp.mean(jnp.sum(sw[:, None] * (x - centre) ** 2, 0) / n))
    reg = jnp.maximum(reg, jnp.finfo(x.dtype).eps * jnp.where(scale > 0, scale, 1.0))
    theta = (x, sw, reg, tol)
    solver = _make_solver(cov_type, max_iter, implicit, callback)

    def run_from(z0):
        z, (n_iters, converged, ll_prev) = solver(theta, z0)
        log_norm, log_resp = _e_step(x, z, cov_type)
        ll = jnp.sum(sw * log_norm) / jnp.sum(sw)
        resp = jnp.exp(log_resp)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(t)) for t in (*z, resp, ll)]))
        # the rule measured on what is returned: the last M-step changed the mean
        # log-likelihood (now at the returned parameters) by less than tol too
        last = jnp.abs(jax.lax.stop_gradient(ll) - ll_prev) < tol
        return GMMResult(z[0], z[1], z[2], resp, ll, n_iters, converged & last & finite)

    if init_kind == "params":
        means, cov, w = init_value
        return run_from((means, cov, w / jnp.sum(w)))
    if init_kind == "resp":
        resp = init_value / jnp.sum(init_value, axis=1, keepdims=True)
        return run_from(_m_step(x, sw, resp, reg, cov_type))

    xs = jax.lax.stop_gradient(x)

    def one(kk):
        if init_kind == "kmeans":
            # x and the weights are checked already: k-means without its checks (the same
            # iterates; the GMM's programs no longer trace and compile them once more)
            labels = kmeans_unvalidated(xs, k, key=kk, weights=jax.lax.stop_gradient(sw)
                                        ).labels
            resp = jax.nn.one_hot(labels, k, dtype=x.dtype)
        else:  # random
            u = jax.random.uniform(kk, (n, k), x.dtype, minval=1e-3, maxval=1.0)
            resp = u / jnp.sum(u, axis=1, keepdims=True)
        return run_from(_m_step(x, sw, resp, reg, cov_type))

    keys = jax.random.split(key, n_init)
    if n_init == 1:
        return one(keys[0])
    runs = jax.vmap(one)(keys)
    best = best_restart(runs.log_likelihood, maximize=True)  # NaN never wins
    return jax.tree_util.tree_map(lambda t: t[best], runs)


# one program per eager call, quick to compile for small problems on CPU (work = n k d
# restarts, times d for full covariances); under jit / vmap the caller's program applies
_fit = EagerProgram(_fit_fn, ("k", "cov_type", "init_kind", "n_init", "max_iter", "implicit",
                              "callback"))


# --------------------------------------------------------------------------------------
# validation


def _check_x(x):
    x = checks.as_float_array(x, "x")
    checks.check_points(x, "x")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_cov_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"`covariance_type` must be one of {COVARIANCE_TYPES}, got "
                         f"{covariance_type!r}.")


def _cov_shape(cov_type, k, d):
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[cov_type]


# value checks: every flag of one input comes from one jitted call (one compilation per
# shape instead of one per eager operation); under an outer jit they are traced and
# ``checks.ensure`` attaches them with ``eqx.error_if``


def _nonfinite_msg(name):
    return (f"`{name}` contains NaN or Inf; clean or mask the input (give masked points zero "
            "weight) before calling.")


@jax.jit
def _array_flags(a):
    """``(non-finite, negative, some row sums to <= 0)`` for a 1-D or 2-D array."""
    rows = jnp.sum(a, axis=-1) if a.ndim == 2 else jnp.sum(a)[None]
    return ~jnp.all(jnp.isfinite(a)), jnp.any(a < 0), jnp.any(rows <= 0)


@functools.partial(jax.jit, static_argnames="cov_type")
def _param_flags(means, cov, w, cov_type):
    tol = 1e-4 if w.dtype == jnp.float32 else 1e-10
    flags = [~jnp.all(jnp.isfinite(means)), ~jnp.all(jnp.isfinite(cov)),
             ~jnp.all(jnp.isfinite(w)), jnp.any(w < 0), jnp.abs(jnp.sum(w) - 1.0) > tol]
    if cov_type in ("full", "tied"):
        flags.append(jnp.any(jnp.abs(cov - jnp.swapaxes(cov, -1, -2))
                             > 1e-5 * (1.0 + jnp.abs(cov))))
        flags.append(~jnp.all(jnp.isfinite(jnp.linalg.cholesky(cov))))
    else:
        flags += [jnp.asarray(False), jnp.any(cov <= 0)]
    return tuple(flags)


def _check_params(means, covariances, weights, k, d, cov_type, dtype, prefix):
    """Shapes and values of mixture parameters; ``prefix`` names them in messages."""
    means = checks.as_float_array(means, prefix + "means", dtype=dtype)
    cov = checks.as_float_array(covariances, prefix + "covariances", dtype=dtype)
    w = checks.as_float_array(weights, prefix + "weights", dtype=dtype)
    for name, arr, shape in ((prefix + "means", means, (k, d)),
                             (prefix + "covariances", cov, _cov_shape(cov_type, k, d)),
                             (prefix + "weights", w, (k,))):
        if arr.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape} for k = {k}, d = {d} and "
                             f"covariance_type={cov_type!r}, got {tuple(arr.shape)}.")
    bad_m, bad_c, bad_w, neg_w, unnorm, asym, not_pd = _param_flags(means, cov, w, cov_type)
    means = checks.ensure(means, bad_m, _nonfinite_msg(prefix + "means"))
    means = checks.check_sq_norms(means, prefix + "means")
    cov = checks.ensure(cov, bad_c, _nonfinite_msg(prefix + "covariances"))
    w = checks.ensure(w, bad_w, _nonfinite_msg(prefix + "weights"))
    w = checks.ensure(w, neg_w, f"`{prefix}weights` has negative entries; mixture weights "
                                "must be >= 0.")
    w = checks.ensure(w, unnorm, f"`{prefix}weights` must sum to 1; divide them by their sum.")
    cov = checks.ensure(cov, asym, f"`{prefix}covariances` must be symmetric.")
    if cov_type in ("full", "tied"):
        msg = "must be positive definite; add a small multiple of the identity."
    else:
        msg = "(variances) must be > 0."
    cov = checks.ensure(cov, not_pd, f"`{prefix}covariances` {msg}")
    return means, cov, w


def _check_reg(reg_covar, dtype):
    if isinstance(reg_covar, (int, float)) and not isinstance(reg_covar, bool):
        if not (math.isfinite(reg_covar) and reg_covar >= 0):
            raise ValueError(f"`reg_covar` must be a finite number >= 0, got {reg_covar}.")
        return jax.device_put(np.asarray(reg_covar, dtype))  # NumPy: no XLA program
    reg = checks.as_float_array(reg_covar, "reg_covar", dtype=dtype)
    if reg.ndim != 0:
        raise ValueError(f"`reg_covar` must be a scalar, got shape {tuple(reg.shape)}.")
    bad, neg, _ = _array_flags(reg[None])
    return checks.ensure(reg, bad | neg, "`reg_covar` must be a finite number >= 0.")


# --------------------------------------------------------------------------------------
# public functions


def gmm_log_prob(
    x: Float[Array, "n d"],
    means: Float[Array, "k d"],
    covariances: Float[Array, "..."],
    weights: Float[Array, " k"],
    *,
    covariance_type: str = "full",
) -> tuple[Float[Array, " n"], Float[Array, "n k"]]:
    r"""Log-density of a Gaussian mixture and log-responsibilities, for scoring new data.

    $$\log p(x_i) = \log \sum_j \pi_j\, \mathcal N(x_i \mid \mu_j, \Sigma_j), \qquad
    \log r_{ij} = \log \pi_j + \log \mathcal N(x_i \mid \mu_j, \Sigma_j) - \log p(x_i),$$

    by a Cholesky factor of every $\Sigma_j$ and a log-sum-exp over components (scikit-learn's
    ``score_samples`` and ``predict_proba``, the latter in log space).

    Args:
      x: points, shape ``(n, d)``.
      means: component means ``(k, d)``.
      covariances: as in [`GMMResult`][jaxclust.cluster.GMMResult] for ``covariance_type``;
        symmetric positive definite (full, tied) or positive (diag, spherical).
      weights: mixture weights ``(k,)``, non-negative, summing to one.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.

    Returns:
      ``(log_prob, log_resp)`` of shapes ``(n,)`` and ``(n, k)``; ``argmax(log_resp, 1)``
      predicts the component.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster.mixture import gmm_log_prob
      >>> x = jnp.asarray([[0.0, 0.0], [3.0, 0.0]])
      >>> lp, lr = gmm_log_prob(x, jnp.asarray([[0.0, 0.0], [3.0, 0.0]]),
      ...                       jnp.ones(2), jnp.asarray([0.5, 0.5]),
      ...                       covariance_type="spherical")
      >>> lr.argmax(axis=1).tolist()
      [0, 1]

    References:
      Bishop, "Pattern Recognition and Machine Learning", Springer 2006, ch. 9.2.
    """
    x = _check_x(x)
    _check_cov_type(covariance_type)
    n, d = x.shape
    means_arr = checks.as_float_array(means, "means")
    if means_arr.ndim != 2 or means_arr.shape[1] != d:
        raise ValueError(f"`means` must have shape (k, {d}) to match `x`, got "
                         f"{tuple(means_arr.shape)}.")
    k = means_arr.shape[0]
    x = checks.ensure_value(x, lambda v, xp: ~xp.isfinite(v), _nonfinite_msg("x"))
    x = checks.check_sq_norms(x, "x")
    params = _check_params(means, covariances, weights, k, d, covariance_type, x.dtype, "")
    return _log_prob(x, params, cov_type=covariance_type)


def gmm(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    covariance_type: str = "full",
    reg_covar: float | Float[Array, ""] = 1e-6,
    max_iter: int = 100,
    tol: float = 1e-3,
    init: str | Float[Array, "n k"] | tuple = "kmeans",
    n_init: int = 1,
    weights: Float[Array, " n"] | None = None,
    implicit: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> GMMResult:
    r"""Gaussian mixture model fitted by expectation-maximisation (EM).

    Model: $p(x) = \sum_{j=1}^k \pi_j\, \mathcal N(x \mid \mu_j, \Sigma_j)$. With sample
    weights $w_i$ (default 1, rescaled to mean one) EM alternates, in log space:

    * **E-step** (log-sum-exp, $\log\mathcal N$ through a Cholesky factor of $\Sigma_j$):
      $\log r_{ij} = \log\pi_j + \log\mathcal N(x_i\mid\mu_j,\Sigma_j) - \log p(x_i)$;
    * **M-step**: $N_j = \sum_i w_i r_{ij} + 10\varepsilon$,
      $\pi_j = N_j / \sum_l N_l$, $\mu_j = \frac{1}{N_j}\sum_i w_i r_{ij} x_i$,
      $\Sigma_j = \frac{1}{N_j}\sum_i w_i r_{ij}(x_i-\mu_j)(x_i-\mu_j)^\top + \lambda I$
      ($\lambda$ = ``reg_covar``); ``"tied"`` pools the scatter of all components over
      $\sum_j N_j$, ``"diag"`` keeps its diagonal, ``"spherical"`` the mean of the diagonal.

    These are scikit-learn's ``GaussianMixture`` updates (same $10\varepsilon$, $\varepsilon$
    the machine epsilon of the dtype, same $\lambda$), so from the same initial parameters
    the iterates agree to rounding. EM stops when the mean log-likelihood
    $\frac{1}{\sum w}\sum_i w_i\log p(x_i)$ of the current parameters changes by less than
    ``tol`` between iterations (scikit-learn's rule) or after ``max_iter`` iterations; the
    returned responsibilities and ``log_likelihood`` are then evaluated at the returned
    parameters (``score`` / ``predict_proba`` of the fitted scikit-learn model).

    Degenerate components stay finite: the $10\varepsilon$ in $N_j$ keeps an empty
    component's weight positive (it sits at a finite mean with covariance $\lambda I$);
    $\lambda$ is raised to at least $\varepsilon\cdot\overline{\mathrm{var}}(x)$ (far below
    the default ``1e-6`` for standardised float32 data), and a covariance that is still not
    positive definite to working precision (only with ``reg_covar=0``) is factorised with a
    $\sqrt{\varepsilon}\,\mathrm{tr}(\Sigma)/d$ ridge. No NaN comes out of a finite input.

    Memory: every step forms the exactly centred differences $x_i - \mu_j$ (never the
    expanded $\|x\|^2 - 2x^\top\mu + \|\mu\|^2$), for all $k$ components at once while
    $n k d \le 2^{22}$ and otherwise for groups of components in turn, so the temporaries of a
    fit and of its gradient are $O(nk + nd\,g)$, not $O(nkd)$ (at $n$ = 40,000, $d = k = 32$:
    56 MB for the jitted fit and 226 MB for its implicit gradient, instead of 338 MB and
    2.8 GB). Full and tied covariances multiply the differences by the inverse Cholesky
    factor (scikit-learn's precision Cholesky), one matrix product per component.

    Differentiation (reverse mode, w.r.t. ``x``, ``weights`` and ``reg_covar``):

    * ``implicit=True`` (default): the forward pass is a ``lax.while_loop``; the gradient
      applies the implicit function theorem to the EM fixed point $\theta = T(\theta, x)$:
      $\bar x = \partial_x T^\top u$ with $(I - \partial_\theta T^\top)\, u = \bar\theta$,
      solved by BiCGSTAB on vector-Jacobian products of one EM step ($\partial_\theta T$
      has spectral radius below one at a stable fixed point, the fraction of missing
      information, so the system is well conditioned unless EM itself is slow). It is the
      derivative of the *converged* fit, exact up to how far the loop stopped from the
      fixed point; the log-likelihood rule can stop early where the likelihood is flat, so
      when gradients matter use a small ``tol`` (``1e-12`` in float64) or ``tol=0`` with a
      budget ``max_iter`` large enough to converge. Gradients through ``init`` are zero.
    * ``implicit=False``: a ``lax.scan`` over ``max_iter`` EM steps (each checkpointed;
      steps after convergence are skipped) differentiated by backpropagation: the exact
      derivative of the iterates actually computed, including the initial M-step.

    Args:
      x: points, shape ``(n, d)``.
      k: number of components (static).
      key: PRNG key for the initialisation; the same key gives the same result.
      covariance_type: ``"full"`` (``(k, d, d)``), ``"tied"`` (one ``(d, d)``),
        ``"diag"`` (``(k, d)``) or ``"spherical"`` (``(k,)``).
      reg_covar: non-negative ridge added to the covariance diagonals.
      max_iter: EM iteration budget (static).
      tol: threshold on the change of the mean log-likelihood (a Python number).
      init: ``"kmeans"`` (labels of [`kmeans`][jaxclust.cluster.kmeans] with k-means++
        seeding, as one-hot responsibilities, then an M-step: scikit-learn's
        ``init_params="kmeans"``), ``"random"`` (uniform random responsibilities, normalised
        per point, then an M-step), an array of initial responsibilities ``(n, k)``
        (non-negative, normalised per point here), or initial parameters
        ``(means, covariances, weights)`` (or a previous ``GMMResult``, to warm start).
      n_init: restarts for the string initialisations, run in parallel (``vmap`` over split
        keys); the highest final log-likelihood wins (the first of those within a relative
        1e-5 of it: restarts that reach the same fit agree on every backend).
      weights: non-negative sample weights ``(n,)`` (an integer weight acts as repeating the
        point); not to be confused with the mixture weights of the result.
      implicit: gradient mode, see above (static).
      callback: optional progress report ``callback(iteration, error)`` called on the host
        after every EM step (``error``: the change of the mean log-likelihood; once per
        restart), through ``jax.debug.callback``; static. ``None`` (default) leaves the
        compiled program unchanged.

    Returns:
      A [`GMMResult`][jaxclust.cluster.GMMResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster.mixture import gmm
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (60, 2)) - 4.0,
      ...                      0.5 * jax.random.normal(jax.random.key(1), (40, 2)) + 4.0])
      >>> res = gmm(x, 2, key=jax.random.key(2))
      >>> sorted(jnp.round(res.weights, 2).tolist()), bool(res.converged)
      ([0.4, 0.6], True)
      >>> res.covariances.shape, res.responsibilities.shape
      ((2, 2, 2), (100, 2))

    References:
      Dempster, Laird & Rubin, "Maximum likelihood from incomplete data via the EM
      algorithm", J. R. Stat. Soc. B 39(1), 1977. Bishop, "Pattern Recognition and Machine
      Learning", Springer 2006, ch. 9.
    """
    check_callback(callback)  # first: a static option, no computation
    x = _check_x(x)
    n, d = x.shape
    checks.check_num_clusters(k, n)
    _check_cov_type(covariance_type)
    checks.check_int(max_iter, "max_iter")
    checks.check_int(n_init, "n_init")
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol >= 0):
        raise ValueError(f"`tol` must be a Python number >= 0, got {tol!r}.")
    if not isinstance(implicit, bool):
        raise ValueError(f"`implicit` must be True or False, got {implicit!r}.")
    x = checks.ensure_value(x, lambda v, xp: ~xp.isfinite(v), _nonfinite_msg("x"))
    x = checks.check_sq_norms(x, "x")
    reg = _check_reg(reg_covar, x.dtype)
    tol = jax.device_put(np.asarray(tol, x.dtype))  # NumPy: no XLA program

    if weights is None:
        sw = jax.device_put(np.ones((n,), x.dtype))
    else:
        sw = checks.row_weights(weights, n, "x", dtype=x.dtype, positive_sum=True)

    init_value = None
    if isinstance(init, str):
        if init not in ("kmeans", "random"):
            raise ValueError(f"`init` must be 'kmeans', 'random', responsibilities (n, k) or "
                             f"(means, covariances, weights), got {init!r}.")
        init_kind = init
        checks.check_key(key)
    elif isinstance(init, (tuple, list)):
        if isinstance(init, GMMResult):
            init = (init.means, init.covariances, init.weights)
        if len(init) != 3:
            raise ValueError("`init` as a tuple must be (means, covariances, weights), got "
                             f"{len(init)} items.")
        init_kind = "params"
        init_value = _check_params(*init, k, d, covariance_type, x.dtype, "init ")
    else:
        init_kind = "resp"
        r = checks.as_float_array(init, "init", dtype=x.dtype)
        if r.shape != (n, k):
            raise ValueError(f"`init` as an array is the initial responsibilities and must "
                             f"have shape (n, k) = ({n}, {k}), got {tuple(r.shape)}; to start "
                             "from means, pass (means, covariances, weights).")
        bad, neg, zero = _array_flags(r)
        r = checks.ensure(r, bad, _nonfinite_msg("init"))
        r = checks.ensure(r, neg, "`init` responsibilities must be >= 0.")
        init_value = checks.ensure(r, zero, "`init` responsibilities must have a positive "
                                            "sum in every row.")

    work = n * k * d * n_init * (d if covariance_type == "full" else 1)
    return _fit(work, x, sw, reg, tol, key, init_value, k=k, cov_type=covariance_type,
                init_kind=init_kind, n_init=n_init, max_iter=max_iter, implicit=implicit,
                callback=callback)


# --------------------------------------------------------------------------------------
# model selection


def gmm_n_parameters(k: int, d: int, covariance_type: str = "full") -> int:
    """Free parameters of a ``k``-component mixture in ``d`` dimensions (scikit-learn's
    ``GaussianMixture._n_parameters``): ``k d`` means, ``k - 1`` weights and ``k d (d+1)/2``
    (full), ``d (d+1)/2`` (tied), ``k d`` (diag) or ``k`` (spherical) covariance entries."""
    _check_cov_type(covariance_type)
    cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d,
           "spherical": k}[covariance_type]
    return int(cov + k * d + k - 1)


def _criterion(x, means, covariances, weights, covariance_type, penalty):
    log_prob, _ = gmm_log_prob(x, means, covariances, weights,
                               covariance_type=covariance_type)
    n, d = jnp.shape(x)
    k = jnp.shape(means)[0]
    p = gmm_n_parameters(k, d, covariance_type)
    return -2.0 * jnp.sum(log_prob) + p * penalty(n)


def gmm_bic(
    x: Float[Array, "n d"],
    means: Float[Array, "k d"],
    covariances: Float[Array, "..."],
    weights: Float[Array, " k"],
    *,
    covariance_type: str = "full",
) -> Float[Array, ""]:
    r"""Bayesian information criterion of a Gaussian mixture on ``x`` (lower is better).

    $$\mathrm{BIC} = -2 \sum_{i=1}^n \log p(x_i) + p \log n,$$

    with $p$ = [`gmm_n_parameters`][jaxclust.cluster.mixture.gmm_n_parameters]: equal to
    scikit-learn's ``GaussianMixture.bic(x)`` for the same parameters. A function of the
    fitted parameters (as [`gmm_log_prob`][jaxclust.cluster.gmm_log_prob]), so it scores
    held-out data as well; differentiable in every array.

    Args:
      x: points, shape ``(n, d)``.
      means: the component means, shape ``(k, d)``, as in
        [`GMMResult`][jaxclust.cluster.GMMResult].
      covariances: the covariances in the layout of ``covariance_type``, as in
        [`GMMResult`][jaxclust.cluster.GMMResult].
      weights: the mixture weights, shape ``(k,)``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"`` (static).

    Returns:
      The BIC, a float scalar.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import gmm, gmm_bic
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (60, 2)) - 4.0,
      ...                      jax.random.normal(jax.random.key(1), (40, 2)) + 4.0])
      >>> bic = [float(gmm_bic(x, *r[:3])) for r in
      ...        (gmm(x, k, key=jax.random.key(2)) for k in (1, 2, 3))]
      >>> int(jnp.argmin(jnp.asarray(bic))) + 1
      2

    References:
      Schwarz, *Estimating the dimension of a model*, Annals of Statistics 6 (1978).
    """
    return _criterion(x, means, covariances, weights, covariance_type, np.log)


def gmm_aic(
    x: Float[Array, "n d"],
    means: Float[Array, "k d"],
    covariances: Float[Array, "..."],
    weights: Float[Array, " k"],
    *,
    covariance_type: str = "full",
) -> Float[Array, ""]:
    r"""Akaike information criterion of a Gaussian mixture on ``x`` (lower is better).

    $$\mathrm{AIC} = -2 \sum_{i=1}^n \log p(x_i) + 2p,$$

    with $p$ as in [`gmm_bic`][jaxclust.cluster.gmm_bic]: equal to scikit-learn's
    ``GaussianMixture.aic(x)``.

    Args:
      x: points, shape ``(n, d)``.
      means: the component means, shape ``(k, d)``, as in
        [`GMMResult`][jaxclust.cluster.GMMResult].
      covariances: the covariances in the layout of ``covariance_type``, as in
        [`GMMResult`][jaxclust.cluster.GMMResult].
      weights: the mixture weights, shape ``(k,)``.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"`` (static).

    Returns:
      The AIC, a float scalar.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import gmm_aic
      >>> x = jnp.asarray([[0.0], [2.0]])
      >>> round(float(gmm_aic(x, jnp.zeros((1, 1)), jnp.ones(1), jnp.ones(1),
      ...                     covariance_type="spherical")), 4)
      11.6758

    References:
      Akaike, *A new look at the statistical model identification*, IEEE Trans. Automatic
      Control 19 (1974).
    """
    return _criterion(x, means, covariances, weights, covariance_type,
                      lambda n: 2.0)
