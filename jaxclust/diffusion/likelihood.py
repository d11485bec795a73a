r"""Exact likelihood of a score model through the probability-flow ODE, with the exact or the
Hutchinson divergence, dequantisation and bits per dimension.

Along the probability-flow ODE $\dot x = F(x, t) = f(t)x - \tfrac12 g(t)^2 s(x, t)$ the
log-density obeys the instantaneous change of variables
$\frac{\mathrm d}{\mathrm dt}\log p_t(x_t) = -\nabla\cdot F(x_t, t)$, so

$$
  \log p_{t_0}(x) = \log p_T(x_T) + \int_{t_0}^{T} \nabla\cdot F(x_t, t)\,\mathrm dt,
$$

with $p_T$ replaced by the prior. References: Chen et al., "Neural Ordinary Differential
Equations", NeurIPS 2018; Grathwohl et al., "FFJORD", ICLR 2019 (Hutchinson estimator);
Song et al., ICLR 2021, Sec. 4.3 and App. D.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.results import with_summary_repr
from ._utils import (
    ODE_METHODS,
    bcast,
    call_user,
    callable_nan_message,
    check_batched,
    check_choice,
    check_int,
    check_result,
    check_sde,
    odeint,
)
from .sde import AbstractSDE

__all__ = ["LikelihoodResult", "bits_per_dim", "dequantize", "divergence", "ode_likelihood"]

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


@with_summary_repr
class LikelihoodResult(NamedTuple):
    """Result of [`ode_likelihood`][jaxclust.diffusion.ode_likelihood] (a pytree).

    Attributes:
      logp: $\\log p_{t_0}(x)$ per sample, shape ``(n,)`` (nats).
      z: the end point $x_T$ of the ODE, shape of ``x``.
      prior_logp: $\\log \\pi(x_T)$ under the SDE's prior, shape ``(n,)``.
      delta_logp: $\\int_{t_0}^T \\nabla\\cdot F\\,\\mathrm dt$, shape ``(n,)``;
        ``logp = prior_logp + delta_logp``.
    """

    logp: Float[Array, " n"]
    z: Float[Array, "n ..."]
    prior_logp: Float[Array, " n"]
    delta_logp: Float[Array, " n"]


def _probe(key, shape, dtype, noise):
    if noise == "rademacher":
        return jax.random.rademacher(key, shape, dtype)
    return jax.random.normal(key, shape, dtype)


def divergence(fn: Callable, x: Float[Array, "n ..."], key: PRNGKeyArray | None = None, *,
               method: str = "exact", noise: str = "rademacher", n_probes: int = 1,
               probes: Array | None = None) -> Float[Array, " n"]:
    r"""Per-sample divergence $\nabla\cdot F(x_i) = \operatorname{tr} \partial F_i/\partial x_i$
    of a batched vector field ``fn(x) -> (n, *data_shape)`` whose samples do not interact.

    * ``"exact"``: the trace of the Jacobian of each sample, from $D$ Jacobian-vector
      products along the coordinate axes (for small $D$).
    * ``"hutchinson"``: $\frac1m\sum_{j=1}^m v_j^\top J v_j$ with ``n_probes`` random
      probes $v_j$ (``"rademacher"`` or ``"gaussian"``, $\mathbb E[vv^\top] = I$), one
      Jacobian-vector product each: unbiased; for a symmetric $J$ the variance of one probe
      is $2\sum_{k\ne l} J_{kl}^2$ (Rademacher) or $2\lVert J\rVert_F^2$ (Gaussian).
      ``probes`` (shape ``(n_probes, n, *data_shape)``) fixes them instead of ``key``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import divergence
      >>> x = jnp.ones((2, 3))
      >>> divergence(lambda x: -2.0 * x, x).tolist()  # trace of -2 I_3
      [-6.0, -6.0]

    References:
      Hutchinson, "A Stochastic Estimator of the Trace of the Influence Matrix for Laplacian
      Smoothing Splines", 1989.
    """
    check_choice(method, "method", DIVERGENCES)
    check_choice(noise, "noise", PROBES)
    x = checks.as_float_array(x, "x")
    if x.ndim < 1:
        raise ValueError("`x` must have a leading batch axis, shape (n, *data_shape).")
    x = checks.check_finite(x, "x")
    return check_result(_divergence(fn, x, key, method, noise, n_probes, probes),
                        callable_nan_message("fn", "the divergence is"))


def _divergence(fn, x, key, method, noise, n_probes, probes):
    n = x.shape[0]
    if method == "exact":
        # D Jacobian-vector products along the coordinate directions, each applied to every
        # sample at once (the Jacobian of independent samples is block diagonal)
        dim = math.prod(x.shape[1:])

        def column(j):
            e = jnp.broadcast_to(jax.nn.one_hot(j, dim, dtype=x.dtype), (n, dim))
            _, jv = jax.jvp(fn, (x,), (e.reshape(x.shape),))
            return jv.reshape(n, dim)[:, j]

        return jnp.sum(jax.vmap(column)(jnp.arange(dim)), axis=0)
    if probes is None:
        if key is None:
            raise ValueError("`key` is required for method='hutchinson' (or pass `probes`).")
        n_probes = check_int(n_probes, "n_probes")
        probes = _probe(checks.check_key(key), (n_probes,) + x.shape, x.dtype, noise)
    elif probes.shape[1:] != x.shape:
        raise ValueError(f"`probes` must have shape (n_probes, *x.shape) = (m, {x.shape}), got "
                         f"{probes.shape}.")

    def est(v):
        _, jv = jax.jvp(fn, (x,), (v,))
        return jnp.sum((v * jv).reshape(n, -1), axis=1)

    return jnp.mean(jax.lax.map(est, probes), axis=0)


def ode_likelihood(score_fn: Callable, x: Float[Array, "n ..."], sde: AbstractSDE,
                   key: PRNGKeyArray | None = None, *, n_steps: int = 100,
                   method: str = "rk4", divergence_method: str = "exact",
                   noise: str = "rademacher", n_probes: int = 1, t0: float = 1e-5
                   ) -> LikelihoodResult:
    r"""Log-likelihood $\log p_{t_0}(x)$ of a batch under the probability-flow ODE of
    ``score_fn``, integrated from ``t0`` to $T$ with ``n_steps`` fixed steps of ``method``
    (``"euler"``, ``"heun"``, ``"rk4"``), the divergence ``"exact"`` or ``"hutchinson"``
    (probes drawn once from ``key`` and kept along the trajectory, as in FFJORD).

    For data quantised to ``n_bins`` levels, feed ``dequantize(key, x)`` and convert with
    [`bits_per_dim`][jaxclust.diffusion.bits_per_dim].

    Args:
      score_fn: batched ``score_fn(x, t)``, e.g. from
        [`as_score_fn`][jaxclust.diffusion.as_score_fn].
      x: data, shape ``(n, *data_shape)``.
      sde: the forward SDE.
      key: PRNG key, required for ``divergence_method="hutchinson"``.
      n_steps: ODE steps.
      method: fixed-step integrator.
      divergence_method: ``"exact"`` (small $D$) or ``"hutchinson"`` (large $D$).
      noise: Hutchinson probes, ``"rademacher"`` or ``"gaussian"``.
      n_probes: Hutchinson probes averaged at each evaluation.
      t0: start time (the likelihood is that of $p_{t_0}$, close to the data).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import VPSDE, ode_likelihood
      >>> x = jnp.array([[0.5, -1.0]])
      >>> res = ode_likelihood(lambda x, t: -x, x, VPSDE(), n_steps=10)  # data N(0, I)
      >>> exact = -0.5 * float((x ** 2).sum()) - jnp.log(2 * jnp.pi)
      >>> bool(abs(float(res.logp[0]) - float(exact)) < 1e-4)
      True

    References:
      Song et al., ICLR 2021; Grathwohl et al., ICLR 2019.
    """
    check_sde(sde)
    check_choice(method, "method", ODE_METHODS)
    check_choice(divergence_method, "divergence_method", DIVERGENCES)
    check_choice(noise, "noise", PROBES)
    n_steps = check_int(n_steps, "n_steps")
    checks.check_positive_scalar(t0, "t0", "Start at e.g. 1e-5.")
    x = check_batched(x, "x")
    n = x.shape[0]
    probes = None
    if divergence_method == "hutchinson":
        if key is None:
            raise ValueError("`key` is required for divergence_method='hutchinson'.")
        n_probes = check_int(n_probes, "n_probes")
        probes = _probe(checks.check_key(key), (n_probes,) + x.shape, x.dtype, noise)
    T = sde.horizon
    ts = jnp.linspace(jnp.asarray(t0, x.dtype), jnp.asarray(T, x.dtype), n_steps + 1)
    ts = checks.ensure(ts, ~(jnp.asarray(t0) < T), "`t0` must be smaller than the SDE's "
                       "horizon T.")

    def velocity(state, t):
        xt, _ = state
        tb = jnp.broadcast_to(t, (n,)).astype(x.dtype)
        f, g2 = sde._f_g2(tb)

        def field(v):
            s = call_user(score_fn, "score_fn", v, tb, data="`x`")
            return bcast(f, v) * v - 0.5 * bcast(g2, v) * s

        dx = field(xt)
        div = _divergence(field, xt, None, divergence_method, noise, n_probes, probes)
        return dx, div

    z, delta = odeint(velocity, (x, jnp.zeros((n,), x.dtype)), ts, method)
    # a NaN/Inf score (or divergence) at any step reaches z and delta: one check at the end
    z, delta = check_result((z, delta), callable_nan_message(
        "score_fn", "the log-likelihood is", "or the ODE overflowed: use more `n_steps` or "
        "a larger `t0`"))
    prior = check_result(sde._prior_logp(z), "the prior log-density of the ODE's end point is "
                         "below the float range: `x` is too large for the dtype (or the SDE's "
                         "prior scale too small for it); rescale the data, e.g. to [-1, 1].")
    return LikelihoodResult(logp=prior + delta, z=z, prior_logp=prior, delta_logp=delta)


def dequantize(key: PRNGKeyArray, x: Int[Array, "n ..."], *, n_bins: int = 256,
               low: float = 0.0, high: float = 1.0) -> Float[Array, "n ..."]:
    r"""Uniform dequantisation of integer data $k \in \{0, \dots, B-1\}$ to
    $y = \ell + (h - \ell)(k + u)/B$, $u \sim \mathcal U[0, 1)$, a continuous variable on
    $[\ell, h)$ whose density lower-bounds the discrete likelihood (see
    [`bits_per_dim`][jaxclust.diffusion.bits_per_dim]).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import dequantize
      >>> y = dequantize(jax.random.key(0), jnp.array([[0, 255]]), low=-1.0, high=1.0)
      >>> bool((y >= -1).all() and (y < 1).all())
      True

    References:
      Theis, van den Oord, Bethge, "A note on the evaluation of generative models", ICLR 2016.
    """
    n_bins = check_int(n_bins, "n_bins", minimum=2)
    if not high > low:
        raise ValueError(f"`high` must be > `low`, got low={low}, high={high}.")
    xf = checks.as_float_array(x, "x")
    xf = checks.ensure(xf, (xf < 0) | (xf > n_bins - 1) | (xf != jnp.round(xf)),
                       f"`x` must hold integers in [0, n_bins - 1] = [0, {n_bins - 1}].")
    u = jax.random.uniform(checks.check_key(key), xf.shape, xf.dtype)
    return low + (high - low) * (xf + u) / n_bins


def bits_per_dim(logp: Float[Array, "*n"], n_dims: int, *, n_bins: int = 256,
                 low: float = 0.0, high: float = 1.0) -> Float[Array, "*n"]:
    r"""Bits per dimension of quantised data from the log-density ``logp`` (nats) of its
    dequantised version $y$ on $[\ell, h)^D$ (as produced by
    [`dequantize`][jaxclust.diffusion.dequantize]):

    $$
      \mathrm{bpd} = \frac{-\log p(y) - D\log\frac{h-\ell}{B}}{D\log 2}
      \;\ge\; \frac{-\log P(k)}{D \log 2},
    $$

    since $P(k) \ge \mathbb E_u[p(y)]\,((h-\ell)/B)^D$ (Jensen): an upper bound on the
    discrete model's bits per dimension.

    Example:
      >>> import math
      >>> from jaxclust.diffusion import bits_per_dim
      >>> float(bits_per_dim(0.0, 1))  # uniform density on [0, 1): 8 bits at 256 levels
      8.0

    References:
      Theis et al., ICLR 2016; Ho et al., NeurIPS 2020.
    """
    n_dims = check_int(n_dims, "n_dims")
    n_bins = check_int(n_bins, "n_bins", minimum=2)
    if not high > low:
        raise ValueError(f"`high` must be > `low`, got low={low}, high={high}.")
    logp = checks.check_finite(checks.as_float_array(logp, "logp"), "logp")
    return (-logp - n_dims * math.log((high - low) / n_bins)) / (n_dims * math.log(2.0))
