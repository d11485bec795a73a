r"""Linear diffusion SDEs as pytrees, and conversions between network parametrisations.

Every SDE here is linear, $\mathrm{d}x = f(t)\,x\,\mathrm{d}t + g(t)\,\mathrm{d}w$ on
$t \in [0, T]$, so its perturbation kernel is Gaussian,
$x_t \mid x_0 \sim \mathcal N(\alpha_t x_0, \sigma_t^2 I)$ and
$x_t = \alpha_t x_0 + \sigma_t \varepsilon$. An SDE object only knows the scalar schedules
$(\alpha_t, \sigma_t, f, g)$: data may have any shape. Batched arrays have a leading axis
``n`` and times are scalars or shape ``(n,)``.

References:
  Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
  ICLR 2021 (VP, sub-VP, VE SDEs; reverse SDE; probability-flow ODE). Nichol & Dhariwal,
  "Improved Denoising Diffusion Probabilistic Models", ICML 2021 (cosine schedule).
  Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion Models", ICLR 2022
  (v-parametrisation).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._core import checks
from ._utils import bcast, check_choice, check_coef, check_like, check_result

__all__ = [
    "AbstractSDE",
    "CosineVPSDE",
    "PARAMETRISATIONS",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "eps_to_score",
    "eps_to_v",
    "eps_to_x0",
    "from_eps",
    "score_to_eps",
    "to_eps",
    "v_to_eps",
    "x0_to_eps",
]

PARAMETRISATIONS = ("eps", "score", "x0", "v")


def _concrete(v) -> bool:
    return not checks.is_traced(v)


def _check_param(value, name: str, *, lower: float = 0.0, strict: bool = True):
    """Eager check of an SDE hyper-parameter (skipped when traced)."""
    if not _concrete(value):
        return
    v = np.asarray(value, dtype=float)
    bad = ~np.isfinite(v) | ((v <= lower) if strict else (v < lower))
    if np.any(bad):
        rel = ">" if strict else ">="
        raise ValueError(f"`{name}` must be a finite number {rel} {lower}, got {value}.")


class AbstractSDE(eqx.Module):
    r"""A linear SDE $\mathrm{d}x = f(t) x\,\mathrm{d}t + g(t)\,\mathrm{d}w$ on $[0, T]$.

    Subclasses define the marginal schedule $(\alpha_t, \sigma_t)$, the coefficients
    $(f(t), g(t)^2)$ and the prior scale. All methods are pure, jittable and vmappable; the
    public ones check that times lie in ``[0, T]`` (``ValueError``, also under ``jit``).
    """

    # ----- to be defined by subclasses (unchecked, any-shape t) ---------------------------
    @abc.abstractmethod
    def _coefs(self, t):
        """``(alpha_t, sigma_t)`` for times ``t``."""

    @abc.abstractmethod
    def _f_g2(self, t):
        """``(f(t), g(t)**2)``."""

    @property
    @abc.abstractmethod
    def horizon(self):
        """The final time ``T``."""

    @property
    def prior_std(self):
        """Standard deviation of the prior $\\mathcal N(0, s^2 I)$ (1 for VP-type SDEs)."""
        return 1.0

    # ----- validation ---------------------------------------------------------------------
    def check_time(self, t) -> Array:
        """``t`` as a float array, with a ``ValueError`` if any entry is NaN or outside
        ``[0, T]``."""
        t = checks.as_float_array(t, "t")
        T = self.horizon
        return checks.ensure(
            t, ~((t >= 0) & (t <= T)),
            "`t` must lie in [0, T] (T is the SDE's horizon, T = "
            f"{T if _concrete(T) else 'traced'}); got a time outside it or NaN. Sample times "
            "in [eps_t, T] with a small eps_t > 0.")

    # ----- public API ---------------------------------------------------------------------
    def marginal_coefs(self, t: Float[Array, "*n"]) -> tuple[Array, Array]:
        r"""Mean coefficient and standard deviation $(\alpha_t, \sigma_t)$ of
        $x_t \mid x_0 \sim \mathcal N(\alpha_t x_0, \sigma_t^2 I)$, shaped like ``t``.

        Example:
          >>> from jaxclust.diffusion import VPSDE
          >>> a, s = VPSDE().marginal_coefs(0.5)
          >>> round(float(a ** 2 + s ** 2), 6)
          1.0
        """
        return self._coefs(self.check_time(t))

    def marginal(self, x0: Float[Array, "n ..."], t: Float[Array, "*n"]
                 ) -> tuple[Array, Array]:
        r"""Mean $\alpha_t x_0$ (shape of ``x0``) and std $\sigma_t$ (shape of ``t``) of the
        perturbation kernel $p_{0t}(x_t \mid x_0)$. ``t`` is a scalar or has shape ``(n,)``.

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxclust.diffusion import VESDE
          >>> mean, std = VESDE(sigma_min=0.01, sigma_max=50.0).marginal(jnp.ones((2, 3)), 1.0)
          >>> mean.shape, float(std)
          ((2, 3), 50.0)
        """
        x0 = checks.check_finite(checks.as_float_array(x0, "x0"), "x0")
        alpha, sigma = self.marginal_coefs(t)
        _check_batch_time(x0, alpha, "x0")
        return bcast(alpha, x0).astype(x0.dtype) * x0, sigma

    def perturb(self, x0: Float[Array, "n ..."], t: Float[Array, "*n"],
                noise: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
        r"""$x_t = \alpha_t x_0 + \sigma_t \varepsilon$ for given noise $\varepsilon$.

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxclust.diffusion import VPSDE
          >>> VPSDE().perturb(jnp.zeros((1, 2)), 0.0, jnp.ones((1, 2))).shape
          (1, 2)
        """
        x0 = checks.check_finite(checks.as_float_array(x0, "x0"), "x0")
        noise = checks.as_float_array(noise, "noise")
        if noise.shape != x0.shape:
            raise ValueError(f"`noise` must have the shape of `x0`, {x0.shape}; got "
                             f"{noise.shape}.")
        noise = checks.check_finite(noise, "noise")
        alpha, sigma = self.marginal_coefs(t)
        _check_batch_time(x0, alpha, "x0")
        return bcast(alpha, x0) * x0 + bcast(sigma, x0) * noise

    def drift_diffusion(self, x: Float[Array, "n ..."], t: Float[Array, "*n"]
                        ) -> tuple[Array, Array]:
        r"""Forward SDE coefficients: drift $f(t)\,x$ (shape of ``x``) and diffusion $g(t)$
        (shape of ``t``).

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxclust.diffusion import VPSDE
          >>> drift, g = VPSDE(beta_min=0.1, beta_max=20.0).drift_diffusion(jnp.ones((1, 2)), 0.0)
          >>> drift.tolist(), round(float(g) ** 2, 6)
          ([[-0.05, -0.05]], 0.1)
        """
        x = checks.check_finite(checks.as_float_array(x, "x"), "x")
        t = self.check_time(t)
        _check_batch_time(x, t, "x")
        f, g2 = self._f_g2(t)
        return bcast(f, x) * x, jnp.sqrt(g2)

    def reverse_drift(self, x: Float[Array, "n ..."], t: Float[Array, "*n"],
                      score: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
        r"""Drift of the reverse-time SDE, $f(t)x - g(t)^2 \nabla_x \log p_t(x)$ (integrated
        from $T$ to $0$ with $\mathrm{d}t < 0$ and diffusion $g(t)$).

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxclust.diffusion import VPSDE
          >>> x = jnp.ones((1, 2))
          >>> VPSDE().reverse_drift(x, 0.3, -x).shape  # score of N(0, I) is -x
          (1, 2)
        """
        x = checks.check_finite(checks.as_float_array(x, "x"), "x")
        t = self.check_time(t)
        _check_batch_time(x, t, "x")
        score = _check_score(score, x)
        f, g2 = self._f_g2(t)
        return bcast(f, x) * x - bcast(g2, x) * score

    def pf_ode_drift(self, x: Float[Array, "n ..."], t: Float[Array, "*n"],
                     score: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
        r"""Velocity of the probability-flow ODE,
        $\frac{\mathrm{d}x}{\mathrm{d}t} = f(t)x - \tfrac12 g(t)^2 \nabla_x \log p_t(x)$,
        whose solutions have the same marginals $p_t$ as the SDE.

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxclust.diffusion import VPSDE
          >>> x = jnp.ones((1, 2))
          >>> float(jnp.abs(VPSDE().pf_ode_drift(x, 0.3, -x)).max())  # N(0, I) is stationary
          0.0
        """
        x = checks.check_finite(checks.as_float_array(x, "x"), "x")
        t = self.check_time(t)
        _check_batch_time(x, t, "x")
        score = _check_score(score, x)
        f, g2 = self._f_g2(t)
        return bcast(f, x) * x - 0.5 * bcast(g2, x) * score

    def prior_sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=None
                     ) -> Array:
        r"""A sample of the prior $\mathcal N(0, s^2 I)$ of shape ``shape``.

        Example:
          >>> import jax
          >>> from jaxclust.diffusion import VPSDE
          >>> VPSDE().prior_sample(jax.random.key(0), (4, 2)).shape
          (4, 2)
        """
        dtype = dtype or jnp.result_type(float)
        return self.prior_std * jax.random.normal(key, tuple(shape), dtype)

    def prior_logp(self, z: Float[Array, "n ..."]) -> Float[Array, " n"]:
        r"""Log density of the prior $\mathcal N(0, s^2 I)$ of each sample of the batch
        ``z`` (shape ``(n, *data_shape)``), summed over the data axes.

        Example:
          >>> import jax.numpy as jnp
          >>> from jaxclust.diffusion import VPSDE
          >>> round(float(VPSDE().prior_logp(jnp.zeros((1, 1)))[0]), 4)  # -log(2 pi) / 2
          -0.9189
        """
        z = checks.as_float_array(z, "z")
        if z.ndim < 1:
            raise ValueError("`z` must have a leading batch axis, shape (n, *data_shape).")
        z = checks.check_finite(z, "z")
        return check_result(self._prior_logp(z), "the prior log-density of `z` is below the "
                            "float range (|z| ~ 1e19 or more in float32); `z` is not a "
                            "plausible prior sample.")

    def _prior_logp(self, z):
        s = self.prior_std
        flat = z.reshape(z.shape[0], -1)
        dim = flat.shape[1]
        return (-0.5 * jnp.sum(flat ** 2, axis=1) / s ** 2
                - dim * (0.5 * math.log(2 * math.pi) + jnp.log(s)))

    def beta(self, t):
        r"""$g(t)^2$, the squared diffusion coefficient, shaped like ``t``."""
        return self._f_g2(self.check_time(t))[1]


def _check_batch_time(x, t, name):
    t = jnp.asarray(t)
    if t.ndim > 1 or (t.ndim == 1 and (x.ndim == 0 or t.shape[0] != x.shape[0])):
        raise ValueError(f"`t` must be a scalar or have shape (n,) with n = {name}.shape[0]; "
                         f"got t of shape {t.shape} for {name} of shape {x.shape}.")


def _check_score(score, x):
    return check_like(score, "score", x, "x")


def _int_beta(t, beta_min, beta_max, T):
    """``int_0^t beta(s) ds`` for the linear schedule ``beta(s) = b0 + (b1 - b0) s / T``."""
    return beta_min * t + 0.5 * (beta_max - beta_min) * t ** 2 / T


class VPSDE(AbstractSDE):
    r"""Variance-preserving SDE (DDPM in continuous time) with a linear schedule,
    $\beta(t) = \beta_{\min} + (\beta_{\max} - \beta_{\min})\,t/T$:
    $\mathrm{d}x = -\tfrac12\beta(t)x\,\mathrm{d}t + \sqrt{\beta(t)}\,\mathrm{d}w$,
    $\alpha_t = e^{-\frac12\int_0^t\beta}$, $\sigma_t^2 = 1 - \alpha_t^2$; prior
    $\mathcal N(0, I)$.

    Example:
      >>> from jaxclust.diffusion import VPSDE
      >>> sde = VPSDE(beta_min=0.1, beta_max=20.0, T=1.0)
      >>> a, s = sde.marginal_coefs(1.0)
      >>> round(float(a), 4)
      0.0066
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = 1.0

    def __check_init__(self):
        _check_param(self.beta_min, "beta_min", strict=False)
        _check_param(self.beta_max, "beta_max")
        _check_param(self.T, "T")
        if _concrete((self.beta_min, self.beta_max)) and self.beta_max < self.beta_min:
            raise ValueError(f"`beta_max` must be >= `beta_min`, got {self.beta_max} < "
                             f"{self.beta_min}.")

    @property
    def horizon(self):
        return self.T

    def _log_alpha(self, t):
        return -0.5 * _int_beta(t, self.beta_min, self.beta_max, self.T)

    def _coefs(self, t):
        la = self._log_alpha(t)
        return jnp.exp(la), jnp.sqrt(-jnp.expm1(2.0 * la))

    def _f_g2(self, t):
        b = self.beta_min + (self.beta_max - self.beta_min) * t / self.T
        return -0.5 * b, b


class SubVPSDE(VPSDE):
    r"""Sub-VP SDE: the VP drift with diffusion $g^2 = \beta(t)(1 - e^{-2\int_0^t\beta})$,
    so that $\sigma_t = 1 - e^{-\int_0^t \beta} = 1 - \alpha_t^2$ (below the VP std);
    prior $\mathcal N(0, I)$.

    Example:
      >>> from jaxclust.diffusion import SubVPSDE
      >>> a, s = SubVPSDE().marginal_coefs(0.5)
      >>> round(float(s - (1 - a ** 2)), 6)
      0.0
    """

    def _coefs(self, t):
        la = self._log_alpha(t)
        return jnp.exp(la), -jnp.expm1(2.0 * la)

    def _f_g2(self, t):
        f, b = super()._f_g2(t)
        return f, b * -jnp.expm1(4.0 * self._log_alpha(t))


class VESDE(AbstractSDE):
    r"""Variance-exploding SDE (SMLD / NCSN in continuous time), geometric noise scales
    $\sigma_t = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^{t/T}$:
    $\mathrm{d}x = \sigma_t\sqrt{2\log(\sigma_{\max}/\sigma_{\min})/T}\,\mathrm{d}w$,
    $\alpha_t = 1$; prior $\mathcal N(0, \sigma_{\max}^2 I)$. As in Song et al., the
    kernel std is $\sigma_t$ (data are taken as already perturbed at scale
    $\sigma_{\min}$).

    Example:
      >>> from jaxclust.diffusion import VESDE
      >>> a, s = VESDE(sigma_min=0.01, sigma_max=10.0).marginal_coefs(0.0)
      >>> float(a), round(float(s), 6)
      (1.0, 0.01)
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    T: float = 1.0

    def __check_init__(self):
        _check_param(self.sigma_min, "sigma_min")
        _check_param(self.sigma_max, "sigma_max")
        _check_param(self.T, "T")
        if _concrete((self.sigma_min, self.sigma_max)) and self.sigma_max <= self.sigma_min:
            raise ValueError(f"`sigma_max` must be > `sigma_min`, got {self.sigma_max} <= "
                             f"{self.sigma_min}.")

    @property
    def horizon(self):
        return self.T

    @property
    def prior_std(self):
        return self.sigma_max

    def _coefs(self, t):
        t = jnp.asarray(t)
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** (t / self.T)
        return jnp.ones_like(sigma), sigma

    def _f_g2(self, t):
        _, sigma = self._coefs(t)
        return jnp.zeros_like(sigma), sigma ** 2 * (
            2.0 * jnp.log(self.sigma_max / self.sigma_min) / self.T)


class CosineVPSDE(AbstractSDE):
    r"""Variance-preserving SDE with the cosine schedule, truncated in log-SNR:
    $\alpha_t = \cos\theta_t$, $\sigma_t = \sin\theta_t$ with
    $\theta_t = \theta_0 + (\theta_T - \theta_0)\,t/T$,
    $\theta_0 = \arctan e^{-\lambda_{\max}/2}$, $\theta_T = \arctan e^{-\lambda_{\min}/2}$
    (so $\log(\alpha_t^2/\sigma_t^2)$ runs from ``logsnr_max`` to ``logsnr_min``);
    $\beta(t) = 2\,\dot\theta \tan\theta_t$, $f = -\beta/2$, $g^2 = \beta$; prior
    $\mathcal N(0, I)$. The truncation keeps $\beta$ finite at $t = T$.

    Example:
      >>> from jaxclust.diffusion import CosineVPSDE
      >>> a, s = CosineVPSDE().marginal_coefs(0.5)
      >>> round(float(a ** 2 + s ** 2), 6)
      1.0
    """

    logsnr_min: float = -20.0
    logsnr_max: float = 20.0
    T: float = 1.0

    def __check_init__(self):
        _check_param(self.T, "T")
        if _concrete((self.logsnr_min, self.logsnr_max)):
            if not (np.isfinite(self.logsnr_min) and np.isfinite(self.logsnr_max)
                    and self.logsnr_min < self.logsnr_max):
                raise ValueError("`logsnr_min` < `logsnr_max` (both finite) is required, got "
                                 f"{self.logsnr_min}, {self.logsnr_max}.")

    @property
    def horizon(self):
        return self.T

    def _theta(self, t):
        th0 = jnp.arctan(jnp.exp(-0.5 * jnp.asarray(self.logsnr_max, jnp.result_type(t))))
        th1 = jnp.arctan(jnp.exp(-0.5 * jnp.asarray(self.logsnr_min, jnp.result_type(t))))
        return th0 + (th1 - th0) * t / self.T, (th1 - th0) / self.T

    def _coefs(self, t):
        th, _ = self._theta(jnp.asarray(t))
        return jnp.cos(th), jnp.sin(th)

    def _f_g2(self, t):
        th, dth = self._theta(jnp.asarray(t))
        b = 2.0 * dth * jnp.tan(th)
        return -0.5 * b, b


# --------------------------------------------------------------------------------------
# parametrisations: eps, score, x0, v


def _pred(v, name):
    v = checks.as_float_array(v, name)
    if v.ndim < 1:
        raise ValueError(f"`{name}` must have a leading batch axis, shape (n, *data_shape); "
                         "got a scalar. Use v[None] for a single sample.")
    return checks.check_finite(v, name)


def _args(pred, name, x_t, alpha, sigma, *, alpha_pos, sigma_pos):
    """Validated ``(pred, x_t, alpha, sigma)`` of a conversion: ``x_t`` of the shape of the
    prediction, coefficients scalar or ``(n,)`` (trace time); finite values, ``> 0`` where
    divided by, ``>= 0`` otherwise."""
    pred = _pred(pred, name)
    x_t = check_like(x_t, "x_t", pred, name)
    alpha = check_coef(alpha, "alpha", pred, name, positive=alpha_pos)
    sigma = check_coef(sigma, "sigma", pred, name, positive=sigma_pos)
    return pred, x_t, alpha, sigma


def _finite(out, names):
    return check_result(out, f"the conversion overflowed to NaN/Inf although its inputs are "
                             f"finite: {names} too small (it is divided by), or the "
                             f"prediction, `x_t`, `alpha` or `sigma` too large for "
                             f"{out.dtype}.")


# unchecked kernels, shared with the samplers and the losses (coefficients from an SDE)


def _eps_to_score(eps, sigma):
    return -eps / bcast(sigma, eps)


def _x0_to_eps(x0, x_t, alpha, sigma):
    return (x_t - bcast(alpha, x0) * x0) / bcast(sigma, x0)


def _v_to_eps(v, x_t, alpha, sigma):
    a, s = bcast(alpha, v), bcast(sigma, v)
    return (a * v + s * x_t) / (a * a + s * s)


def _eps_to_x0(eps, x_t, alpha, sigma):
    return (x_t - bcast(sigma, eps) * eps) / bcast(alpha, eps)


def _eps_to_v(eps, x_t, alpha, sigma):
    a, s = bcast(alpha, eps), bcast(sigma, eps)
    return a * eps - s * (x_t - s * eps) / a


def _to_eps(pred, x_t, alpha, sigma, param):
    if param == "eps":
        return pred
    if param == "score":
        return -bcast(sigma, pred) * pred
    if param == "x0":
        return _x0_to_eps(pred, x_t, alpha, sigma)
    return _v_to_eps(pred, x_t, alpha, sigma)


_SHAPES = ("Shapes are checked at trace time (`x_t` like the prediction, `alpha`/`sigma` "
           "scalar or (n,)); NaN/Inf inputs, and coefficients out of range, raise ValueError.")


def eps_to_score(eps: Float[Array, "n ..."], sigma: Float[Array, "*n"]) -> Float[Array, "n ..."]:
    r"""Score from a noise prediction: $\nabla_x \log p_t(x) = -\hat\varepsilon / \sigma_t$.

    ``sigma`` is a scalar or has shape ``(n,)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import eps_to_score
      >>> eps_to_score(jnp.ones((1, 2)), 0.5).tolist()
      [[-2.0, -2.0]]
    """
    eps = _pred(eps, "eps")
    sigma = check_coef(sigma, "sigma", eps, "eps", positive=True)
    return _finite(_eps_to_score(eps, sigma), "`sigma`")


def score_to_eps(score: Float[Array, "n ..."], sigma: Float[Array, "*n"]) -> Float[Array, "n ..."]:
    r"""Noise prediction from a score: $\hat\varepsilon = -\sigma_t\, s(x, t)$.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import score_to_eps
      >>> score_to_eps(jnp.full((1, 2), -2.0), 0.5).tolist()
      [[1.0, 1.0]]
    """
    score = _pred(score, "score")
    sigma = check_coef(sigma, "sigma", score, "score", positive=False)
    return _finite(-bcast(sigma, score) * score, "nothing")


def eps_to_x0(eps: Float[Array, "n ..."], x_t: Float[Array, "n ..."], alpha: Float[Array, "*n"],
              sigma: Float[Array, "*n"]) -> Float[Array, "n ..."]:
    r"""Denoised estimate from a noise prediction,
    $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$ (Tweedie's formula when
    $\hat\varepsilon = -\sigma_t \nabla\log p_t$).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import eps_to_x0
      >>> eps_to_x0(jnp.ones((1, 1)), jnp.full((1, 1), 2.0), 0.5, 1.0).tolist()
      [[2.0]]
    """
    eps, x_t, alpha, sigma = _args(eps, "eps", x_t, alpha, sigma, alpha_pos=True,
                                   sigma_pos=False)
    return _finite(_eps_to_x0(eps, x_t, alpha, sigma), "`alpha`")


def x0_to_eps(x0: Float[Array, "n ..."], x_t: Float[Array, "n ..."], alpha: Float[Array, "*n"],
              sigma: Float[Array, "*n"]) -> Float[Array, "n ..."]:
    r"""Noise prediction from a denoised estimate,
    $\hat\varepsilon = (x_t - \alpha_t \hat x_0)/\sigma_t$.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import x0_to_eps
      >>> x0_to_eps(jnp.full((1, 1), 2.0), jnp.full((1, 1), 2.0), 0.5, 1.0).tolist()
      [[1.0]]
    """
    x0, x_t, alpha, sigma = _args(x0, "x0", x_t, alpha, sigma, alpha_pos=False,
                                  sigma_pos=True)
    return _finite(_x0_to_eps(x0, x_t, alpha, sigma), "`sigma`")


def eps_to_v(eps: Float[Array, "n ..."], x_t: Float[Array, "n ..."], alpha: Float[Array, "*n"],
             sigma: Float[Array, "*n"]) -> Float[Array, "n ..."]:
    r"""Velocity from a noise prediction, $\hat v = \alpha_t\hat\varepsilon - \sigma_t\hat x_0$
    with $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import eps_to_v, v_to_eps
      >>> e, x = jnp.array([[0.3]]), jnp.array([[1.2]])
      >>> round(float(v_to_eps(eps_to_v(e, x, 0.6, 0.8), x, 0.6, 0.8)[0, 0]), 6)
      0.3
    """
    eps, x_t, alpha, sigma = _args(eps, "eps", x_t, alpha, sigma, alpha_pos=True,
                                   sigma_pos=False)
    return _finite(_eps_to_v(eps, x_t, alpha, sigma), "`alpha`")


def v_to_eps(v: Float[Array, "n ..."], x_t: Float[Array, "n ..."], alpha: Float[Array, "*n"],
             sigma: Float[Array, "*n"]) -> Float[Array, "n ..."]:
    r"""Noise prediction from a velocity $v = \alpha_t\varepsilon - \sigma_t x_0$:
    $\hat\varepsilon = (\alpha_t \hat v + \sigma_t x_t)/(\alpha_t^2 + \sigma_t^2)$.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import v_to_eps
      >>> v_to_eps(jnp.zeros((1, 1)), jnp.ones((1, 1)), 0.6, 0.8).tolist()  # x0 = x/0.6
      [[0.800000011920929]]
    """
    v, x_t, alpha, sigma = _args(v, "v", x_t, alpha, sigma, alpha_pos=False, sigma_pos=False)
    return _finite(_v_to_eps(v, x_t, alpha, sigma), "`alpha` and `sigma` (both 0)")


def to_eps(pred: Float[Array, "n ..."], x_t: Float[Array, "n ..."], alpha: Float[Array, "*n"],
           sigma: Float[Array, "*n"], *, param: str) -> Float[Array, "n ..."]:
    r"""Convert a network output in parametrisation ``param`` (``"eps"``, ``"score"``,
    ``"x0"`` or ``"v"``) to a noise prediction $\hat\varepsilon$.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import to_eps
      >>> to_eps(jnp.full((1, 1), -2.0), jnp.ones((1, 1)), 0.6, 0.5, param="score").tolist()
      [[1.0]]
    """
    check_choice(param, "param", PARAMETRISATIONS)
    if param == "score":
        pred = _pred(pred, "pred")
        sigma = check_coef(sigma, "sigma", pred, "pred", positive=False)
        return _finite(_to_eps(pred, None, None, sigma, param), "nothing")
    pred, x_t, alpha, sigma = _args(pred, "pred", x_t, alpha, sigma, alpha_pos=False,
                                    sigma_pos=param == "x0")
    return _finite(_to_eps(pred, x_t, alpha, sigma, param), "`sigma`")


def from_eps(eps: Float[Array, "n ..."], x_t: Float[Array, "n ..."], alpha: Float[Array, "*n"],
             sigma: Float[Array, "*n"], *, param: str) -> Float[Array, "n ..."]:
    r"""Convert a noise prediction $\hat\varepsilon$ to parametrisation ``param``
    (inverse of [`to_eps`][jaxclust.diffusion.to_eps]).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import from_eps
      >>> from_eps(jnp.ones((1, 1)), jnp.ones((1, 1)), 0.6, 0.5, param="score").tolist()
      [[-2.0]]
    """
    check_choice(param, "param", PARAMETRISATIONS)
    if param == "eps":
        return _pred(eps, "eps")
    if param == "score":
        return eps_to_score(eps, sigma)
    if param == "x0":
        return eps_to_x0(eps, x_t, alpha, sigma)
    return eps_to_v(eps, x_t, alpha, sigma)
