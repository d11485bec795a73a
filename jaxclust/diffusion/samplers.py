r"""Samplers of the reverse diffusion: SDE, predictor-corrector, probability-flow ODE, DDIM,
and guidance.

Every sampler runs a ``lax.scan`` over a fixed time grid from $T$ down to ``t_end``, is
jittable (with ``n_steps``, ``shape`` and the method static) and takes a batched
``score_fn(x, t) -> score`` (``x``: ``(n, *data_shape)``, ``t``: ``(n,)``). A network in
another parametrisation is adapted with [`as_score_fn`][jaxclust.diffusion.as_score_fn].
With ``denoise=True`` (default) the last state is replaced by Tweedie's denoised estimate
$\hat x_0 = (x + \sigma_{t}^2 s(x, t))/\alpha_{t}$ at ``t_end`` (one extra score call).

NaN contract: a ``score_fn`` that returns NaN/Inf at any step makes the sampler raise a
``ValueError`` naming ``score_fn`` (under ``jit`` a runtime error whose message contains
``"ValueError: ..."``), instead of returning NaN samples; the check is one reduction on the
final state (NaN propagates through the iterations), not one per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._core import checks
from ._utils import (
    ODE_METHODS,
    bcast,
    call_user,
    callable_nan_message,
    check_choice,
    check_int,
    check_result,
    check_sde,
    odeint,
)
from .sde import PARAMETRISATIONS, AbstractSDE, _eps_to_score, _to_eps

__all__ = [
    "as_score_fn",
    "classifier_free_guidance",
    "classifier_guidance",
    "ddim",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow",
]


def as_score_fn(model_fn: Callable, sde: AbstractSDE, *, param: str = "eps") -> Callable:
    r"""Wrap a network predicting ``param`` (``"eps"``, ``"score"``, ``"x0"``, ``"v"``) into a
    batched ``score_fn(x, t)`` $= -\hat\varepsilon(x, t)/\sigma_t$ for the samplers and the
    likelihood. Extra positional arguments (e.g. labels) are forwarded to ``model_fn``.

    The returned function raises ``ValueError`` naming ``model_fn`` when the score is
    NaN/Inf (a NaN network output, or $\sigma_t = 0$ at $t = 0$).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import VPSDE, as_score_fn
      >>> score = as_score_fn(lambda x, t: jnp.zeros_like(x), VPSDE(), param="x0")
      >>> score(jnp.ones((1, 2)), jnp.array([1.0])).shape  # x0 = 0: score = -x / sigma^2
      (1, 2)
    """
    check_choice(param, "param", PARAMETRISATIONS)

    def score_fn(x, t, *args):
        # integer data are promoted to float (a float time must not be cast to int)
        x = checks.as_float_array(x, "x")
        t = jnp.broadcast_to(checks.as_float_array(t, "t", dtype=x.dtype), (x.shape[0],))
        pred = call_user(model_fn, "model_fn", x, t, *args, data="`x`")
        if param != "score":
            alpha, sigma = sde._coefs(t)
            pred = _eps_to_score(_to_eps(pred, x, alpha, sigma, param), sigma)
        return check_result(pred, callable_nan_message(
            "model_fn", "the score built from its output is",
            "sigma_t = 0 at t = 0 makes the score infinite: evaluate at t > 0"))

    return score_fn


# --------------------------------------------------------------------------------------
# shared machinery


def _setup(sde, shape, n_steps, t_end, key, x_T, dtype):
    n_steps = check_int(n_steps, "n_steps")
    checks.check_positive_scalar(t_end, "t_end", "Stop the reverse process at e.g. 1e-3.")
    if x_T is None:
        if not (isinstance(shape, (tuple, list)) and len(shape) >= 1
                and all(checks.is_int(s) and s >= 1 for s in shape)):
            raise ValueError(f"`shape` must be a tuple of positive ints (n, *data_shape), got "
                             f"{shape!r}.")
        x = sde.prior_sample(key, tuple(shape), dtype)
    else:
        x = checks.check_finite(checks.as_float_array(x_T, "x_T"), "x_T")
        if x.ndim < 1:
            raise ValueError("`x_T` must have a leading batch axis, shape (n, *data_shape).")
    T = sde.horizon
    ts = jnp.linspace(jnp.asarray(T, x.dtype), jnp.asarray(t_end, x.dtype), n_steps + 1)
    ts = checks.ensure(ts, ~(jnp.asarray(t_end) < T),
                       "`t_end` must be smaller than the SDE's horizon T.")
    return x, ts, n_steps


def _score(score_fn, x, t):
    tb = jnp.broadcast_to(t, (x.shape[0],)).astype(x.dtype)
    return call_user(score_fn, "score_fn", x, tb, data="`x_T` (or `shape`)"), tb


_SAMPLES_NAN = callable_nan_message(
    "score_fn", "the samples are", "or the iterates overflowed: use more `n_steps` or a "
    "smaller `snr`")


def _finish(score_fn, sde, x, t_end, denoise):
    if denoise:
        s, tb = _score(score_fn, x, jnp.asarray(t_end, x.dtype))
        alpha, sigma = sde._coefs(tb)
        x = (x + bcast(sigma ** 2, x) * s) / bcast(alpha, x)
    # a NaN/Inf score at any step propagates to the final state: one check at the end
    return check_result(x, _SAMPLES_NAN)


# --------------------------------------------------------------------------------------
# samplers


def _em_step(score_fn, sde, x, t0, t1, key):
    """One Euler–Maruyama step of the reverse SDE from ``t0`` down to ``t1``."""
    s, tb = _score(score_fn, x, t0)
    f, g2 = sde._f_g2(tb)
    h = t0 - t1
    x_mean = x - h * (bcast(f, x) * x - bcast(g2, x) * s)
    z = jax.random.normal(key, x.shape, x.dtype)
    return x_mean + bcast(jnp.sqrt(g2 * h), x) * z


def euler_maruyama(score_fn: Callable, key: PRNGKeyArray, sde: AbstractSDE,
                   shape: tuple[int, ...] | None = None, *, n_steps: int = 500,
                   t_end: float = 1e-3, denoise: bool = True, x_T: Array | None = None,
                   dtype=None) -> Float[Array, "n ..."]:
    r"""Euler–Maruyama discretisation of the reverse-time SDE,

    $$
      x_{t-h} = x_t - h\,[f(t)x_t - g(t)^2 s(x_t, t)] + g(t)\sqrt h\, z, \quad
      z\sim\mathcal N(0, I),
    $$

    on ``n_steps`` equal steps from $T$ to ``t_end``, starting from a prior sample of
    ``shape`` (or from ``x_T``).

    Example:
      >>> import jax
      >>> from jaxclust.diffusion import VPSDE, euler_maruyama
      >>> x = euler_maruyama(lambda x, t: -x, jax.random.key(0), VPSDE(), (500, 2), n_steps=50)
      >>> bool(abs(float(x.std()) - 1.0) < 0.1)  # the exact score of N(0, I)
      True

    References:
      Song et al., "Score-Based Generative Modeling through Stochastic Differential
      Equations", ICLR 2021.
    """
    check_sde(sde)
    k0, key = jax.random.split(checks.check_key(key))
    x, ts, n_steps = _setup(sde, shape, n_steps, t_end, k0, x_T, dtype)

    def body(x, inp):
        t0, t1, k = inp
        return _em_step(score_fn, sde, x, t0, t1, k), None

    keys = jax.random.split(key, n_steps)
    x, _ = jax.lax.scan(body, x, (ts[:-1], ts[1:], keys))
    return _finish(score_fn, sde, x, ts[-1], denoise)


def predictor_corrector(score_fn: Callable, key: PRNGKeyArray, sde: AbstractSDE,
                        shape: tuple[int, ...] | None = None, *, n_steps: int = 500,
                        n_corrector: int = 1, snr: float = 0.16, t_end: float = 1e-3,
                        denoise: bool = True, x_T: Array | None = None, dtype=None
                        ) -> Float[Array, "n ..."]:
    r"""Predictor–corrector sampler: at each time, ``n_corrector`` Langevin steps
    $x \leftarrow x + \epsilon\, s(x, t) + \sqrt{2\epsilon}\, z$ followed by one
    Euler–Maruyama predictor step. The Langevin step size follows the signal-to-noise rule
    of Song et al.,
    $\epsilon = 2 a_t (\mathrm{snr}\, \overline{\lVert z\rVert} /
    \overline{\lVert s(x,t)\rVert})^2$ (norms averaged over the batch) with
    $a_t = \alpha_t^2/\alpha_{t+h}^2$ (the DDPM $\alpha_i$, 1 for VE).

    Example:
      >>> import jax
      >>> from jaxclust.diffusion import VPSDE, predictor_corrector
      >>> x = predictor_corrector(lambda x, t: -x, jax.random.key(0), VPSDE(), (500, 2),
      ...                         n_steps=30)
      >>> bool(abs(float(x.std()) - 1.0) < 0.1)
      True

    References:
      Song et al., ICLR 2021, Algorithms 2-5.
    """
    check_sde(sde)
    n_corrector = check_int(n_corrector, "n_corrector", minimum=0)
    checks.check_positive_scalar(snr, "snr", "Song et al. use 0.16 (VE) and 0.01-0.2.")
    k0, key = jax.random.split(checks.check_key(key))
    x, ts, n_steps = _setup(sde, shape, n_steps, t_end, k0, x_T, dtype)
    flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731

    def langevin(x, inp):
        t, a_t, k = inp
        s, _ = _score(score_fn, x, t)
        z = jax.random.normal(k, x.shape, x.dtype)
        s_norm = jnp.mean(jnp.linalg.norm(flat(s), axis=1))
        z_norm = jnp.mean(jnp.linalg.norm(flat(z), axis=1))
        step = 2.0 * a_t * (snr * z_norm / jnp.maximum(s_norm, jnp.finfo(x.dtype).tiny)) ** 2
        return x + step * s + jnp.sqrt(2.0 * step) * z, None

    def body(x, inp):
        t0, t1, k = inp
        kc, kp = jax.random.split(k)
        a0, _ = sde._coefs(t0)
        a1, _ = sde._coefs(t1)
        a_t = (a0 / a1) ** 2
        if n_corrector:
            x, _ = jax.lax.scan(
                langevin, x, (jnp.broadcast_to(t0, (n_corrector,)),
                              jnp.broadcast_to(a_t, (n_corrector,)),
                              jax.random.split(kc, n_corrector)))
        return _em_step(score_fn, sde, x, t0, t1, kp), None

    keys = jax.random.split(key, n_steps)
    x, _ = jax.lax.scan(body, x, (ts[:-1], ts[1:], keys))
    return _finish(score_fn, sde, x, ts[-1], denoise)


def probability_flow(score_fn: Callable, key: PRNGKeyArray | None, sde: AbstractSDE,
                     shape: tuple[int, ...] | None = None, *, n_steps: int = 100,
                     method: str = "heun", t_end: float = 1e-3, denoise: bool = True,
                     x_T: Array | None = None, dtype=None) -> Float[Array, "n ..."]:
    r"""Deterministic sampling by the probability-flow ODE
    $\frac{\mathrm{d}x}{\mathrm{d}t} = f(t)x - \tfrac12 g(t)^2 s(x, t)$, integrated from $T$
    to ``t_end`` with a fixed-step ``method``: ``"euler"``, ``"heun"`` (2nd order, 2 score
    calls per step) or ``"rk4"`` (4th order, 4 calls). ``key`` draws the prior sample (unused
    when ``x_T`` is given).

    Example:
      >>> import jax
      >>> from jaxclust.diffusion import VPSDE, probability_flow
      >>> x = probability_flow(lambda x, t: -x, jax.random.key(0), VPSDE(), (3, 2), n_steps=10)
      >>> x.shape
      (3, 2)

    References:
      Song et al., ICLR 2021, Sec. 4.3. Karras et al., "Elucidating the Design Space of
      Diffusion-Based Generative Models", NeurIPS 2022 (Heun).
    """
    check_sde(sde)
    check_choice(method, "method", ODE_METHODS)
    if key is None and x_T is None:
        raise ValueError("`key` is required to draw the prior sample when `x_T` is None.")
    if x_T is None:
        key = checks.check_key(key)
    x, ts, n_steps = _setup(sde, shape, n_steps, t_end, key, x_T, dtype)

    def velocity(x, t):
        s, tb = _score(score_fn, x, t)
        f, g2 = sde._f_g2(tb)
        return bcast(f, x) * x - 0.5 * bcast(g2, x) * s

    x = odeint(velocity, x, ts, method)
    return _finish(score_fn, sde, x, ts[-1], denoise)


def ddim(score_fn: Callable, key: PRNGKeyArray, sde: AbstractSDE,
         shape: tuple[int, ...] | None = None, *, n_steps: int = 50, eta: float = 0.0,
         t_end: float = 1e-3, denoise: bool = True, x_T: Array | None = None, dtype=None
         ) -> Float[Array, "n ..."]:
    r"""DDIM sampler, written for any $(\alpha_t, \sigma_t)$ schedule. From $t$ to $s < t$,
    with $\hat\varepsilon = -\sigma_t s(x_t, t)$ and
    $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$:

    $$
      x_s = \alpha_s\hat x_0 + \sqrt{\sigma_s^2 - c^2}\,\hat\varepsilon + c\, z,\quad
      c = \eta\,\frac{\sigma_s}{\sigma_t}\sqrt{\sigma_t^2 - \frac{\alpha_t^2}{\alpha_s^2}
      \sigma_s^2}.
    $$

    ``eta = 0`` is the deterministic DDIM (a first-order solver of the probability-flow ODE
    in the variables $x/\alpha$, $\sigma/\alpha$); ``eta = 1`` is ancestral (DDPM) sampling.

    Example:
      >>> import jax
      >>> from jaxclust.diffusion import VPSDE, ddim
      >>> sde = VPSDE()
      >>> def score(x, t):  # exact score of the point mass x0 = 1
      ...     a, s = sde.marginal_coefs(t)
      ...     return -(x - a[:, None]) / s[:, None] ** 2
      >>> x = ddim(score, jax.random.key(0), sde, (4, 2), n_steps=5)  # DDIM is exact here
      >>> bool(jax.numpy.allclose(x, 1.0, atol=1e-4))
      True

    References:
      Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    """
    check_sde(sde)
    if not checks.is_traced(eta) and not float(eta) >= 0.0:
        raise ValueError(f"`eta` must be >= 0 (0: deterministic DDIM, 1: DDPM), got {eta}.")
    k0, key = jax.random.split(checks.check_key(key))
    x, ts, n_steps = _setup(sde, shape, n_steps, t_end, k0, x_T, dtype)

    def body(x, inp):
        t, s_, k = inp
        sc, tb = _score(score_fn, x, t)
        a_t, sig_t = sde._coefs(tb)
        a_s, sig_s = sde._coefs(jnp.broadcast_to(s_, tb.shape))
        eps = -bcast(sig_t, x) * sc
        x0 = (x - bcast(sig_t, x) * eps) / bcast(a_t, x)
        var = jnp.maximum(sig_t ** 2 - (a_t / a_s) ** 2 * sig_s ** 2, 0.0)
        c = eta * sig_s / sig_t * jnp.sqrt(var)
        dir_ = jnp.sqrt(jnp.maximum(sig_s ** 2 - c ** 2, 0.0))
        z = jax.random.normal(k, x.shape, x.dtype)
        return bcast(a_s, x) * x0 + bcast(dir_, x) * eps + bcast(c, x) * z, None

    keys = jax.random.split(key, n_steps)
    x, _ = jax.lax.scan(body, x, (ts[:-1], ts[1:], keys))
    return _finish(score_fn, sde, x, ts[-1], denoise)


# --------------------------------------------------------------------------------------
# guidance


def classifier_free_guidance(eps_cond: Float[Array, "n ..."], eps_uncond: Float[Array, "n ..."],
                             *, scale: float | Float[Array, ""]) -> Float[Array, "n ..."]:
    r"""Classifier-free guidance: $\tilde\varepsilon = \hat\varepsilon_\varnothing
    + w\,(\hat\varepsilon_y - \hat\varepsilon_\varnothing)$ (``scale`` $w = 1$: the
    conditional model; $w > 1$: sharper, less diverse samples). Works equally on scores.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import classifier_free_guidance
      >>> classifier_free_guidance(jnp.ones((1, 2)), jnp.zeros((1, 2)), scale=3.0).tolist()
      [[3.0, 3.0]]

    References:
      Ho & Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop.
    """
    eps_cond = checks.check_finite(checks.as_float_array(eps_cond, "eps_cond"), "eps_cond")
    eps_uncond = checks.as_float_array(eps_uncond, "eps_uncond")
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"`eps_cond` and `eps_uncond` must have the same shape, got "
                         f"{eps_cond.shape} and {eps_uncond.shape}.")
    eps_uncond = checks.check_finite(eps_uncond, "eps_uncond")
    scale = _check_scale(scale)
    out = eps_uncond + scale * (eps_cond - eps_uncond)
    return check_result(out, "classifier-free guidance overflowed to NaN/Inf: `scale` is "
                              f"too large for {out.dtype}.")


def _check_scale(scale):
    """The guidance weight: a finite scalar (any sign; 0 gives the unconditional model)."""
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if not math.isfinite(scale):
            raise ValueError(f"`scale` must be a finite number, got {scale}.")
        return scale
    arr = checks.as_float_array(scale, "scale")
    if arr.ndim != 0:
        raise ValueError(f"`scale` must be a scalar, got shape {tuple(arr.shape)}.")
    return checks.ensure(arr, ~jnp.isfinite(arr), "`scale` must be a finite number.")


def classifier_guidance(score_fn: Callable, log_prob_fn: Callable, y: Array, *,
                        scale: float | Float[Array, ""] = 1.0) -> Callable:
    r"""Classifier guidance: the score of $p_t(x)\,p_t(y\mid x)^{w}$,
    $s(x, t) + w\,\nabla_x \log p_t(y \mid x)$, as a new batched ``score_fn(x, t)``.

    ``log_prob_fn(x, t, y)`` returns the per-sample log-probabilities ``(n,)`` of the labels
    ``y`` under a (noise-aware) classifier; its gradient is taken by ``jax.grad`` of the
    sum (samples are independent).

    The guided function raises ``ValueError`` naming ``score_fn`` or ``log_prob_fn`` when
    the score or the classifier's gradient is NaN/Inf.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import classifier_guidance
      >>> logp = lambda x, t, y: -0.5 * jnp.sum((x - y[:, None]) ** 2, axis=1)
      >>> s = classifier_guidance(lambda x, t: -x, logp, jnp.array([1.0]), scale=2.0)
      >>> s(jnp.zeros((1, 2)), jnp.array([0.5])).tolist()
      [[2.0, 2.0]]

    References:
      Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
    """

    scale = _check_scale(scale)

    def guided(x, t):
        x = checks.as_float_array(x, "x")
        s = check_result(call_user(score_fn, "score_fn", x, t), callable_nan_message(
            "score_fn", "the unguided score is"))
        grad = jax.grad(lambda z: jnp.sum(log_prob_fn(z, t, y)))(x)
        grad = check_result(grad, callable_nan_message(
            "log_prob_fn", "the gradient of the log-probability is",
            "a log-probability must be finite wherever the sampler evaluates it"))
        return s + scale * grad

    return guided
