r"""Closed-form scores and denoisers of Gaussian mixtures and of mixtures of low-rank
Gaussians (MoLRG): exact oracles for tests and baselines.

If $x_0 \sim \sum_k \pi_k \mathcal N(\mu_k, \Sigma_k)$ and $x_t = \alpha x_0 + \sigma
\varepsilon$, then $x_t \sim \sum_k \pi_k \mathcal N(\alpha\mu_k, C_k)$ with
$C_k = \alpha^2\Sigma_k + \sigma^2 I$, and

$$
  \nabla\log p_t(x) = -\sum_k r_k(x)\, C_k^{-1}(x - \alpha\mu_k), \qquad
  \mathbb E[x_0 \mid x_t = x] = \sum_k r_k(x)\,\big(\mu_k + \alpha\Sigma_k C_k^{-1}
  (x - \alpha\mu_k)\big),
$$

with the posterior $r_k(x) = p(k \mid x_t = x)$. Tweedie's formula
$\mathbb E[x_0\mid x_t] = (x_t + \sigma^2\nabla\log p_t(x_t))/\alpha$ links the two.

A MoLRG has $\mu_k = 0$ and $\Sigma_k = U_kU_k^\top + \delta^2 I$ with orthonormal
$U_k \in \mathbb R^{D\times d}$ and an isotropic floor $\delta^2 \ge 0$; with
$c_0 = \alpha^2\delta^2 + \sigma^2$, $c_1 = \alpha^2$, Woodbury gives
$C_k^{-1} = c_0^{-1}(I - \tfrac{c_1}{c_0 + c_1}U_kU_k^\top)$ and
$\log\det C_k = D\log c_0 + d\log\tfrac{c_0+c_1}{c_0}$, so everything costs $O(KDd)$ per
point. The posterior then depends on $x$ only through the energies $\lVert U_k^\top
x\rVert^2$: denoising a MoLRG is soft subspace clustering (Wang et al., 2024).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.results import with_summary_repr
from ._utils import check_result
from .sde import AbstractSDE

__all__ = [
    "GaussianMixture",
    "MoLRG",
    "mixture_denoiser",
    "mixture_logp",
    "mixture_posterior",
    "mixture_sample",
    "mixture_score",
    "mixture_score_fn",
]

_HI = jax.lax.Precision.HIGHEST


@with_summary_repr
class GaussianMixture(NamedTuple):
    """A Gaussian mixture $\\sum_k \\pi_k \\mathcal N(\\mu_k, \\Sigma_k)$ (a pytree).

    Attributes:
      weights: $\\pi$, shape ``(K,)``, positive, summing to one.
      means: $\\mu$, shape ``(K, D)``.
      covs: full covariances $\\Sigma$, shape ``(K, D, D)``, symmetric positive
        semi-definite (definite when evaluated at $\\sigma = 0$).
    """

    weights: Float[Array, " K"]
    means: Float[Array, "K D"]
    covs: Float[Array, "K D D"]


@with_summary_repr
class MoLRG(NamedTuple):
    """A mixture of low-rank Gaussians $\\sum_k \\pi_k\\mathcal N(0, U_kU_k^\\top +
    \\delta^2 I)$ (a pytree).

    Attributes:
      weights: $\\pi$, shape ``(K,)``, positive, summing to one.
      bases: orthonormal bases $U_k$ of the subspaces, shape ``(K, D, d)``
        ($U_k^\\top U_k = I_d$).
      floor: isotropic variance floor $\\delta^2 \\ge 0$ (a scalar).
    """

    weights: Float[Array, " K"]
    bases: Float[Array, "K D d"]
    floor: Float[Array, ""] | float = 0.0


def _f32(a):
    """float16 / bfloat16 are computed in float32 (Cholesky and eigh need it, and the
    log-densities accumulate there)."""
    return a.astype(jnp.promote_types(a.dtype, jnp.float32))


def _validate(mixture, x=None):
    if not isinstance(mixture, (GaussianMixture, MoLRG)):
        raise ValueError(f"`mixture` must be a GaussianMixture or a MoLRG, got "
                         f"{type(mixture).__name__}.")
    w = _f32(checks.as_float_array(mixture.weights, "weights"))
    if w.ndim != 1:
        raise ValueError(f"`weights` must be 1-D with shape (K,), got {w.shape}.")
    K = w.shape[0]
    tol = 1e3 * jnp.finfo(w.dtype).eps
    w = checks.ensure(w, ~(jnp.all(w > 0) & (jnp.abs(jnp.sum(w) - 1) < tol)),
                      "`weights` must be positive and sum to one; normalise them (w / w.sum()).")
    if isinstance(mixture, GaussianMixture):
        means = checks.check_finite(_f32(checks.as_float_array(mixture.means, "means")), "means")
        covs = checks.check_finite(_f32(checks.as_float_array(mixture.covs, "covs")), "covs")
        if means.ndim != 2 or means.shape[0] != K:
            raise ValueError(f"`means` must have shape (K, D) with K = {K}, got {means.shape}.")
        D = means.shape[1]
        if covs.shape != (K, D, D):
            raise ValueError(f"`covs` must have shape (K, D, D) = {(K, D, D)}, got "
                             f"{covs.shape}.")
        covs = _check_covs(covs)
        mixture = GaussianMixture(w, means, covs)
    else:
        U = checks.check_finite(_f32(checks.as_float_array(mixture.bases, "bases")), "bases")
        if U.ndim != 3 or U.shape[0] != K or U.shape[2] > U.shape[1]:
            raise ValueError(f"`bases` must have shape (K, D, d) with K = {K} and d <= D, got "
                             f"{U.shape}.")
        D, d = U.shape[1], U.shape[2]
        gram = jnp.einsum("kDi,kDj->kij", U, U, precision=_HI)
        U = checks.ensure(U, jnp.max(jnp.abs(gram - jnp.eye(d, dtype=U.dtype)[None])) > 100 * tol,
                          "`bases` must have orthonormal columns (U_k^T U_k = I); orthonormalise "
                          "them, e.g. with jnp.linalg.qr.")
        floor = checks.as_float_array(mixture.floor, "floor")
        if floor.ndim != 0:
            raise ValueError(f"`floor` must be a scalar, got shape {floor.shape}.")
        floor = checks.ensure(floor, ~(jnp.isfinite(floor) & (floor >= 0)),
                              "`floor` must be a finite variance >= 0.")
        mixture = MoLRG(w, U, floor)
    if x is not None:
        x = checks.check_finite(_f32(checks.as_float_array(x, "x")), "x")
        if x.ndim != 2 or x.shape[1] != D:
            raise ValueError(f"`x` must have shape (n, D) with D = {D} (the mixture's "
                             f"dimension), got {x.shape}.")
    return mixture, x


def _check_covs(covs):
    """Symmetric (to ``sqrt(eps)`` relative) and positive semi-definite (smallest eigenvalue
    ``>= -sqrt(eps)`` times the largest magnitude) covariances: value checks, eager or
    under jit."""
    scale = jnp.maximum(jnp.max(jnp.abs(covs), axis=(1, 2)), jnp.finfo(covs.dtype).tiny)
    rtol = jnp.sqrt(jnp.finfo(covs.dtype).eps)
    asym = jnp.max(jnp.abs(covs - jnp.swapaxes(covs, 1, 2)), axis=(1, 2)) / scale
    covs = checks.ensure(covs, asym > rtol,
                         "`covs` must be symmetric (Sigma_k = Sigma_k^T); symmetrise them, "
                         "e.g. 0.5 * (covs + covs.transpose(0, 2, 1)).")
    low = jnp.min(jnp.linalg.eigvalsh(covs), axis=1) / scale
    return checks.ensure(covs, low < -16 * rtol,
                         "`covs` must be positive semi-definite (a covariance has no negative "
                         "eigenvalue); build them as L @ L.T (+ a small multiple of I).")


def _coefs(x, alpha, sigma):
    n = x.shape[0]
    a = checks.as_float_array(alpha, "alpha").astype(x.dtype)
    s = checks.as_float_array(sigma, "sigma").astype(x.dtype)
    for v, name in ((a, "alpha"), (s, "sigma")):
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != n):
            raise ValueError(f"`{name}` must be a scalar or have shape (n,) = ({n},), got "
                             f"{v.shape}.")
    a = checks.ensure(a, ~(jnp.isfinite(a) & (a > 0)), "`alpha` must be finite and > 0.")
    s = checks.ensure(s, ~(jnp.isfinite(s) & (s >= 0)), "`sigma` must be finite and >= 0.")
    return jnp.broadcast_to(a, (n,)), jnp.broadcast_to(s, (n,))


def _components(x, mix, a, s):
    """Per component for one point: log N(x; a mu_k, C_k) (K,), C_k^{-1}(x - a mu_k) (K, D),
    and E[x0 | x, k] (K, D)."""
    D = x.shape[0]
    if isinstance(mix, GaussianMixture):
        eye = jnp.eye(D, dtype=x.dtype)
        C = a * a * mix.covs + s * s * eye[None]
        L = jnp.linalg.cholesky(C)
        r = x[None, :] - a * mix.means  # (K, D)
        sol = jax.vmap(lambda Lk, rk: cho_solve((Lk, True), rk))(L, r)
        maha = jnp.sum(r * sol, axis=1)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)), axis=1)
        cond_mean = mix.means + a * jnp.einsum("kij,kj->ki", mix.covs, sol, precision=_HI)
    else:
        U, floor = mix.bases, mix.floor
        d = U.shape[2]
        c0 = a * a * floor + s * s
        c1 = a * a
        shrink = c1 / (c0 + c1)
        proj = jnp.einsum("kDd,D->kd", U, x, precision=_HI)  # U_k^T x
        back = jnp.einsum("kDd,kd->kD", U, proj, precision=_HI)  # U_k U_k^T x
        sol = (x[None, :] - shrink * back) / c0
        maha = (jnp.sum(x * x) - shrink * jnp.sum(proj * proj, axis=1)) / c0
        logdet = D * jnp.log(c0) + d * jnp.log((c0 + c1) / c0) * jnp.ones_like(maha)
        Usol = jnp.einsum("kDd,kD->kd", U, sol, precision=_HI)
        cond_mean = a * (jnp.einsum("kDd,kd->kD", U, Usol, precision=_HI) + floor * sol)
    logn = -0.5 * (D * math.log(2.0 * math.pi) + logdet + maha)
    return logn, sol, cond_mean


@functools.partial(jax.jit, static_argnums=0)
def _vmapped(fn, x, mixture, a, s):
    return jax.vmap(lambda xi, ai, si: fn(xi, mixture, ai, si))(x, a, s)


def _per_point(fn, x, mixture, alpha, sigma):
    if x is None:
        raise ValueError("`x` must be an array of points of shape (n, D), got None.")
    mixture, x = _validate(mixture, x)
    a, s = _coefs(x, alpha, sigma)
    return check_result(_vmapped(fn, x, mixture, a, s), _SINGULAR)


_SINGULAR = ("the result is NaN or Inf: `x`, `alpha` or `sigma` too large for the dtype "
             "(the noised covariances alpha^2 Sigma + sigma^2 I overflow), or a covariance in "
             "`covs` singular at sigma = 0 (the density does not exist; use sigma > 0 or "
             "positive-definite covariances).")


def _logp1(x, mix, a, s):
    logn, _, _ = _components(x, mix, a, s)
    return logsumexp(jnp.log(mix.weights) + logn)


def _post1(x, mix, a, s):
    logn, _, _ = _components(x, mix, a, s)
    return jax.nn.softmax(jnp.log(mix.weights) + logn)


def _score1(x, mix, a, s):
    logn, sol, _ = _components(x, mix, a, s)
    r = jax.nn.softmax(jnp.log(mix.weights) + logn)
    return -jnp.sum(r[:, None] * sol, axis=0)


def _denoise1(x, mix, a, s):
    logn, _, cond = _components(x, mix, a, s)
    r = jax.nn.softmax(jnp.log(mix.weights) + logn)
    return jnp.sum(r[:, None] * cond, axis=0)


def mixture_logp(x: Float[Array, "n D"], mixture: GaussianMixture | MoLRG,
                 alpha: Float[Array, "*n"] = 1.0, sigma: Float[Array, "*n"] = 0.0
                 ) -> Float[Array, " n"]:
    r"""Exact log-density $\log p_t(x)$ of $x_t = \alpha x_0 + \sigma\varepsilon$ with
    $x_0$ from ``mixture`` (module docstring); ``alpha``, ``sigma`` scalars or shape
    ``(n,)``. With the defaults it is the mixture's own log-density.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import GaussianMixture, mixture_logp
      >>> mix = GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
      >>> round(float(mixture_logp(jnp.zeros((1, 1)), mix, 0.6, 0.8)[0]), 4)  # N(0, 1)
      -0.9189
    """
    return _per_point(_logp1, x, mixture, alpha, sigma)


def mixture_posterior(x: Float[Array, "n D"], mixture: GaussianMixture | MoLRG,
                      alpha: Float[Array, "*n"] = 1.0, sigma: Float[Array, "*n"] = 0.0
                      ) -> Float[Array, "n K"]:
    r"""Posterior component probabilities $r_k(x) = p(k \mid x_t = x)$, shape ``(n, K)``.
    For a MoLRG with equal weights they are a softmax of the subspace energies
    $\tfrac{c_1}{2c_0(c_0+c_1)}\lVert U_k^\top x\rVert^2$: a soft subspace clustering.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import MoLRG, mixture_posterior
      >>> U = jnp.eye(2)[None, :, :, None].reshape(2, 2, 1)  # the two axes of the plane
      >>> r = mixture_posterior(jnp.array([[3.0, 0.1]]), MoLRG(jnp.ones(2) / 2, U, 0.01))
      >>> int(r.argmax())
      0
    """
    return _per_point(_post1, x, mixture, alpha, sigma)


def mixture_score(x: Float[Array, "n D"], mixture: GaussianMixture | MoLRG,
                  alpha: Float[Array, "*n"], sigma: Float[Array, "*n"]) -> Float[Array, "n D"]:
    r"""Exact score $\nabla_x\log p_t(x)$ of the noised mixture (module docstring).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import GaussianMixture, mixture_score
      >>> mix = GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
      >>> mixture_score(jnp.full((1, 1), 2.0), mix, 0.6, 0.8).tolist()  # N(0, 1): -x
      [[-2.0]]
    """
    return _per_point(_score1, x, mixture, alpha, sigma)


def mixture_denoiser(x: Float[Array, "n D"], mixture: GaussianMixture | MoLRG,
                     alpha: Float[Array, "*n"], sigma: Float[Array, "*n"]
                     ) -> Float[Array, "n D"]:
    r"""Exact posterior mean (MMSE denoiser) $\mathbb E[x_0 \mid x_t = x]$ of the noised
    mixture, computed from the per-component Gaussian posteriors (not from the score).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import GaussianMixture, mixture_denoiser
      >>> mix = GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
      >>> mixture_denoiser(jnp.full((1, 1), 2.0), mix, 0.6, 0.8).tolist()  # 0.6 x
      [[1.2000000476837158]]

    References:
      Efron, "Tweedie's Formula and Selection Bias", JASA 2011. Wang, Zhang, Gao, Qu et
      al., "Diffusion Models Learn Low-Dimensional Distributions via Subspace Clustering",
      2024 (MoLRG denoiser).
    """
    return _per_point(_denoise1, x, mixture, alpha, sigma)


def mixture_sample(key: PRNGKeyArray, mixture: GaussianMixture | MoLRG, n: int
                   ) -> tuple[Float[Array, "n D"], Int[Array, " n"]]:
    r"""Draw ``n`` points of the mixture and their component labels.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import MoLRG, mixture_sample
      >>> U = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (3, 5, 2)))[0]
      >>> x, labels = mixture_sample(jax.random.key(1), MoLRG(jnp.ones(3) / 3, U, 0.0), 4)
      >>> x.shape, labels.shape
      ((4, 5), (4,))
    """
    mixture, _ = _validate(mixture)
    n = checks.check_int(n, "n")
    return _sample(checks.check_key(key), mixture, n)


@functools.partial(jax.jit, static_argnums=2)
def _sample(key, mixture, n):
    k_lab, k_z, k_f = jax.random.split(key, 3)
    w = mixture.weights
    labels = jax.random.categorical(k_lab, jnp.log(w), shape=(n,))
    if isinstance(mixture, GaussianMixture):
        D = mixture.means.shape[1]
        # a symmetric square root from eigh: valid for singular (PSD) covariances too,
        # where a Cholesky factor would be NaN
        vals, vecs = jnp.linalg.eigh(mixture.covs)
        L = vecs * jnp.sqrt(jnp.maximum(vals, 0.0))[:, None, :]
        z = jax.random.normal(k_z, (n, D), w.dtype)
        x = mixture.means[labels] + jnp.einsum("nij,nj->ni", L[labels], z, precision=_HI)
    else:
        U = mixture.bases
        D, d = U.shape[1], U.shape[2]
        coef = jax.random.normal(k_z, (n, d), w.dtype)
        x = jnp.einsum("nDd,nd->nD", U[labels], coef, precision=_HI)
        x = x + jnp.sqrt(mixture.floor) * jax.random.normal(k_f, (n, D), w.dtype)
    return x, labels


def mixture_score_fn(mixture: GaussianMixture | MoLRG, sde: AbstractSDE) -> Callable:
    r"""The exact score of the mixture diffused by ``sde``, as a batched ``score_fn(x, t)``
    for the samplers and [`ode_likelihood`][jaxclust.diffusion.ode_likelihood].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import GaussianMixture, VPSDE, mixture_score_fn
      >>> mix = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(2)[None])
      >>> mixture_score_fn(mix, VPSDE())(jnp.ones((3, 2)), jnp.full((3,), 0.5)).shape
      (3, 2)
    """
    mixture, _ = _validate(mixture)

    def score_fn(x, t):
        # integer data are promoted to float (a float time must not be cast to int)
        x = checks.as_float_array(x, "x")
        t = checks.as_float_array(t, "t", dtype=x.dtype)
        alpha, sigma = sde._coefs(jnp.broadcast_to(t, (x.shape[0],)))
        return mixture_score(x, mixture, alpha, sigma)

    return score_fn
