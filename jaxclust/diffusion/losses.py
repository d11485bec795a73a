r"""Denoising score matching: the diffusion training loss, in any parametrisation.

**Calling convention for networks** (shared by the whole of ``jaxclust.diffusion``): a model
is any callable ``model_fn(x_t, t)`` (or ``model_fn(x_t, t, y)`` when class labels ``y``
are given) taking a batch ``x_t`` of shape ``(n, *data_shape)`` and times ``t`` of shape
``(n,)``, and returning a prediction of shape ``(n, *data_shape)`` in the parametrisation
``param`` (``"eps"``, ``"score"``, ``"x0"`` or ``"v"``). Parameters travel by closure, so the
loss is differentiated with whatever the framework provides:

* plain JAX / Flax ``apply``: ``jax.grad(lambda p: dsm_loss(lambda x, t: apply(p, x, t), ...))``;
* Equinox (unbatched modules): ``eqx.filter_grad(lambda m: dsm_loss(jax.vmap(m), ...))(model)``;
* Flax NNX: ``nnx.grad(lambda m: dsm_loss(m, ...))(model)`` (or ``nnx.split`` / ``nnx.merge``
  inside a pure function).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._core import checks
from ._utils import (
    bcast,
    call_user,
    callable_nan_message,
    check_batched,
    check_choice,
    check_result,
    check_sde,
)
from .sde import PARAMETRISATIONS, AbstractSDE, _to_eps

__all__ = ["TIME_SAMPLINGS", "WEIGHTINGS", "dsm_loss", "loss_weight", "sample_times"]

WEIGHTINGS = ("simple", "likelihood", "score", "x0", "v")
TIME_SAMPLINGS = ("uniform", "antithetic", "stratified")


def sample_times(key: PRNGKeyArray, n: int, sde: AbstractSDE, *, method: str = "uniform",
                 eps_t: float = 1e-5, dtype=None) -> Float[Array, " n"]:
    r"""Draw ``n`` training times in $[\epsilon_t, T]$, $t = \epsilon_t + (T - \epsilon_t)u$.

    * ``"uniform"``: $u_i \sim \mathcal U(0, 1)$ i.i.d.
    * ``"antithetic"``: pairs $(u_i, 1 - u_i)$ (negatively correlated halves).
    * ``"stratified"``: the low-discrepancy sampler of Kingma et al. (2021),
      $u_i = (u_0 + i/n) \bmod 1$ with a single $u_0 \sim \mathcal U(0, 1)$: one time per
      stratum, the marginal of each $t_i$ is still uniform, the variance of the loss smaller.

    Example:
      >>> import jax
      >>> from jaxclust.diffusion import VPSDE, sample_times
      >>> t = sample_times(jax.random.key(0), 4, VPSDE(), method="stratified")
      >>> t.shape, bool((t >= 1e-5).all() and (t <= 1.0).all())
      ((4,), True)

    References:
      Kingma, Salimans, Poole, Ho, "Variational Diffusion Models", NeurIPS 2021.
    """
    check_sde(sde)
    check_choice(method, "method", TIME_SAMPLINGS)
    checks.check_positive_scalar(eps_t, "eps_t", "Use e.g. 1e-5 (VP) or 1e-3.")
    n = checks.check_int(n, "n")
    key = checks.check_key(key)
    dtype = dtype or jnp.result_type(float)
    if method == "uniform":
        u = jax.random.uniform(key, (n,), dtype)
    elif method == "antithetic":
        h = jax.random.uniform(key, ((n + 1) // 2,), dtype)
        u = jnp.concatenate([h, 1.0 - h])[:n]
    else:
        u0 = jax.random.uniform(key, (), dtype)
        u = jnp.mod(u0 + jnp.arange(n, dtype=dtype) / n, 1.0)
    T = sde.horizon
    t = eps_t + (T - eps_t) * u
    return checks.ensure(t, ~(jnp.asarray(eps_t) < T),
                         "`eps_t` must be smaller than the SDE's horizon T.")


def loss_weight(t: Float[Array, " n"], sde: AbstractSDE, weighting: str | Callable = "simple"
                ) -> Float[Array, " n"]:
    r"""Weight $w(t)$ of the noise-prediction error $\lVert\hat\varepsilon-\varepsilon\rVert^2$
    for each standard weighting. With $\hat\varepsilon = -\sigma_t s_\theta$, a score-matching
    weight $\lambda(t)$ is $w = \lambda/\sigma_t^2$:

    | ``weighting`` | $w(t)$ | equivalent objective |
    |---|---|---|
    | ``"simple"`` | $1$ | DDPM's $L_\text{simple}$; score matching with $\lambda = \sigma_t^2$ |
    | ``"likelihood"`` | $g(t)^2/\sigma_t^2$ | $\lambda = g^2$: NLL bound (Song et al. 2021) |
    | ``"score"`` | $1/\sigma_t^2$ | unweighted score matching, $\lambda = 1$ |
    | ``"x0"`` | $\sigma_t^2/\alpha_t^2$ | $\lVert\hat x_0 - x_0\rVert^2$ (SNR$^{-1}$ weighting) |
    | ``"v"`` | $(\alpha_t^2+\sigma_t^2)^2/\alpha_t^2$ | $\lVert\hat v - v\rVert^2$ |

    A callable ``weighting(t) -> w`` is used as is.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.diffusion import VPSDE, loss_weight
      >>> loss_weight(jnp.array([0.5]), VPSDE(), "simple").tolist()
      [1.0]

    References:
      Song, Durkan, Murray, Ermon, "Maximum Likelihood Training of Score-Based Diffusion
      Models", NeurIPS 2021. Kingma & Gao, "Understanding Diffusion Objectives as the ELBO
      with Simple Data Augmentation", NeurIPS 2023.
    """
    check_sde(sde)
    t = sde.check_time(t)
    if callable(weighting):
        w = jnp.asarray(weighting(t), t.dtype)
        return check_result(w, callable_nan_message("weighting", "the weight is"))
    check_choice(weighting, "weighting", WEIGHTINGS)
    return check_result(_weight(t, sde, weighting), (
        f"the {weighting!r} weight is infinite at a time where sigma_t = 0 (t = 0 for VP "
        "SDEs) or alpha_t underflows (t near T); pass times in [eps_t, T) with eps_t > 0."))


def _weight(t, sde, weighting):
    alpha, sigma = sde._coefs(t)
    if weighting == "simple":
        return jnp.ones_like(t)
    if weighting == "likelihood":
        return sde._f_g2(t)[1] / sigma ** 2
    if weighting == "score":
        return 1.0 / sigma ** 2
    if weighting == "x0":
        return (sigma / alpha) ** 2
    return (alpha ** 2 + sigma ** 2) ** 2 / alpha ** 2


def dsm_loss(model_fn: Callable, x0: Float[Array, "n ..."], key: PRNGKeyArray,
             sde: AbstractSDE, *, y: Array | None = None, param: str = "eps",
             weighting: str | Callable = "simple", time_sampling: str = "uniform",
             eps_t: float = 1e-5, reduce: str = "mean") -> Float[Array, ""]:
    r"""Denoising score-matching loss of a batch, a scalar for ``optax``.

    $$
      \mathcal L(\theta) = \frac1n\sum_{i=1}^n w(t_i)\,
      \big\lVert \hat\varepsilon_\theta(\alpha_{t_i} x_0^{(i)} + \sigma_{t_i}\varepsilon_i,
      t_i) - \varepsilon_i \big\rVert^2,
    $$

    with $t_i$ from [`sample_times`][jaxclust.diffusion.sample_times], $\varepsilon_i \sim
    \mathcal N(0, I)$, the network output converted to $\hat\varepsilon$ from ``param``
    ([`to_eps`][jaxclust.diffusion.to_eps]) and $w$ from
    [`loss_weight`][jaxclust.diffusion.loss_weight] (so ``param="x0",
    weighting="x0"`` is the plain $x_0$ regression, and the weighting, not the
    parametrisation, fixes the objective). The squared norm is averaged over data
    dimensions (``reduce="mean"``) or summed (``reduce="sum"``, the scale of the likelihood
    bound). See the module docstring for the network calling convention.

    Args:
      model_fn: ``model_fn(x_t, t) -> pred`` (or ``model_fn(x_t, t, y)`` when ``y`` is
        given), batched: ``x_t`` of shape ``(n, *data_shape)``, ``t`` of shape ``(n,)``.
      x0: clean data, shape ``(n, *data_shape)``.
      key: PRNG key (times and noise).
      sde: the forward SDE.
      y: optional conditioning (e.g. class labels), leading axis ``n``, passed to the model.
      param: what the model predicts: ``"eps"``, ``"score"``, ``"x0"`` or ``"v"``.
      weighting: a name in ``WEIGHTINGS`` or a callable ``t -> w(t)``.
      time_sampling: ``"uniform"``, ``"antithetic"`` or ``"stratified"``.
      eps_t: smallest training time (avoids $\sigma_t \to 0$).
      reduce: ``"mean"`` or ``"sum"`` over the data dimensions.

    Returns:
      The scalar loss.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import VPSDE, dsm_loss
      >>> x0 = jax.random.normal(jax.random.key(0), (64, 2))
      >>> exact = lambda x, t: jnp.zeros_like(x)  # data N(0, I): x_t ~ N(0, I), eps* = sigma x
      >>> loss = dsm_loss(exact, x0, jax.random.key(1), VPSDE())
      >>> bool(loss > 0.5)
      True

    References:
      Vincent, "A Connection Between Score Matching and Denoising Autoencoders", Neural
      Computation 2011. Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020. Song et al., ICLR 2021.
    """
    check_sde(sde)
    check_choice(param, "param", PARAMETRISATIONS)
    check_choice(reduce, "reduce", ("mean", "sum"))
    check_choice(time_sampling, "time_sampling", TIME_SAMPLINGS)
    if not callable(weighting):
        check_choice(weighting, "weighting", WEIGHTINGS)
    x0 = check_batched(x0, "x0")
    n = x0.shape[0]
    if y is not None:
        y = jnp.asarray(y)
        if y.ndim < 1 or y.shape[0] != n:
            raise ValueError(f"`y` must have a leading axis of length n = {n} (one label per "
                             f"sample), got shape {y.shape}.")
    k_t, k_eps = jax.random.split(checks.check_key(key))
    t = sample_times(k_t, n, sde, method=time_sampling, eps_t=eps_t, dtype=x0.dtype)
    noise = jax.random.normal(k_eps, x0.shape, x0.dtype)
    alpha, sigma = sde._coefs(t)
    x_t = bcast(alpha, x0) * x0 + bcast(sigma, x0) * noise
    args = (t,) if y is None else (t, y)
    pred = call_user(model_fn, "model_fn", x_t, *args, data="`x0`")
    eps_hat = _to_eps(pred, x_t, alpha, sigma, param)
    sq = (eps_hat - noise) ** 2
    err = sq.reshape(n, -1)
    err = jnp.mean(err, axis=1) if reduce == "mean" else jnp.sum(err, axis=1)
    w = loss_weight(t, sde, weighting)
    return check_result(jnp.mean(w * err), callable_nan_message(
        "model_fn", "the loss is", "or `x0` is too large for the dtype (squared errors "
        "overflow: rescale the data, e.g. to [-1, 1])"))
