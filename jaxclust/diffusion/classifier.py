r"""The Diffusion Classifier: a class-conditional diffusion model used as a zero-shot
classifier through its per-class denoising error.

For an input $x$ and each class $c$,

$$
  E_c(x) = \frac1N\sum_{i=1}^N w(t_i)\,\big\lVert\varepsilon_i -
  \hat\varepsilon_\theta(\alpha_{t_i}x + \sigma_{t_i}\varepsilon_i, t_i, c)\big\rVert^2,
  \qquad \hat y = \arg\min_c E_c(x),
$$

a Monte-Carlo estimate of the class-conditional diffusion loss, which (with the likelihood
weighting) bounds $-\log p_\theta(x \mid c)$ up to a class-independent constant. Sharing the
noises $\varepsilon_i$ and times $t_i$ across classes makes the comparison a paired one: the
large variance common to all classes cancels in $E_c - E_{c'}$.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.results import with_summary_repr
from ._utils import (
    bcast,
    call_user,
    callable_nan_message,
    check_choice,
    check_int,
    check_result,
    check_sde,
)
from .losses import WEIGHTINGS, loss_weight
from .sde import AbstractSDE

__all__ = ["ClassifyResult", "diffusion_classify"]


@with_summary_repr
class ClassifyResult(NamedTuple):
    """Result of [`diffusion_classify`][jaxclust.diffusion.diffusion_classify] (a pytree).

    Attributes:
      label: predicted class, ``argmin`` of the errors of the classes kept to the last stage.
      errors: mean weighted noise-prediction error $E_c(x)$ per class, shape
        ``(num_classes,)``; a class pruned at a stage keeps the mean over the stages it was
        evaluated on (comparable only within a stage), a class kept to the end the mean over
        all ``n_timesteps`` samples.
      n_evals: number of network evaluations spent (a Python-int-valued array).
    """

    label: Int[Array, ""]
    errors: Float[Array, " c"]
    n_evals: Int[Array, ""]


def _stages(schedule, num_classes, n_timesteps):
    if schedule is None:
        n_timesteps = check_int(n_timesteps, "n_timesteps")
        return ((n_timesteps, num_classes),)
    try:
        stages = tuple((int(a), int(b)) for a, b in schedule)
    except (TypeError, ValueError) as err:
        raise ValueError("`schedule` must be a sequence of (n_timesteps, n_classes) pairs of "
                         f"positive ints, got {schedule!r}.") from err
    if not stages or any(a < 1 or b < 1 for a, b in stages):
        raise ValueError("`schedule` must be a non-empty sequence of (n_timesteps, n_classes) "
                         f"pairs of positive ints, got {schedule!r}.")
    if stages[0][1] != num_classes:
        raise ValueError(f"the first stage of `schedule` must evaluate all num_classes = "
                         f"{num_classes} classes, got {stages[0][1]}.")
    if any(b2 > b1 for (_, b1), (_, b2) in zip(stages, stages[1:])):
        raise ValueError(f"the classes kept by `schedule` must not increase, got {schedule!r}.")
    return stages


_GRID = 4096  # log-spaced grid of the importance-sampling inverse CDF


def _importance_grid(lo, hi, weight_fn, dtype):
    """Log-spaced times, the normalised CDF of ``w(t)`` on them and its total mass."""
    ts = jnp.exp(jnp.linspace(jnp.log(lo), jnp.log(jnp.asarray(hi, dtype)), _GRID))
    w = weight_fn(ts)
    mass = 0.5 * (w[1:] + w[:-1]) * jnp.diff(ts)
    cdf = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(mass)])
    return ts, cdf / cdf[-1], cdf[-1]


def _times(key, n, lo, hi, method, dtype, grid=None):
    k1, k2 = jax.random.split(key)
    if method == "uniform":
        u = jax.random.uniform(k1, (n,), dtype)
    else:  # stratified: one sample per stratum, strata visited in a random order
        u = (jnp.arange(n, dtype=dtype) + jax.random.uniform(k1, (n,), dtype)) / n
        u = jax.random.permutation(k2, u)
    if grid is not None:  # importance: invert the CDF of w (stratified in u)
        ts, cdf, _ = grid
        return jnp.interp(u, cdf, ts)
    return lo + (hi - lo) * u


def diffusion_classify(eps_fn: Callable, x: Float[Array, "..."], key: PRNGKeyArray,
                       sde: AbstractSDE, *, num_classes: int, n_timesteps: int = 64,
                       schedule: Sequence[tuple[int, int]] | None = None,
                       shared_noise: bool = True, antithetic: bool = False,
                       time_sampling: str = "stratified",
                       weighting: str | Callable = "simple", t_min: float = 1e-3,
                       t_max: float | None = None) -> ClassifyResult:
    r"""Classify one input ``x`` (shape ``data_shape``, unbatched: ``jax.vmap`` over a batch)
    with a class-conditional noise predictor (the Diffusion Classifier).

    The errors $E_c(x)$ (module docstring) are estimated in stages: ``schedule`` is a
    sequence of ``(n_timesteps, n_classes)`` pairs; the first stage evaluates all
    ``num_classes`` classes on its timesteps, each later stage evaluates its own new
    timesteps on the ``n_classes`` best classes so far (the adaptive pruning of Li et al.;
    e.g. ``((16, 10), (48, 2))``). Without ``schedule``, all classes are evaluated on
    ``n_timesteps`` samples. The classes of a stage go through ``eps_fn`` in one batch of
    ``n_classes * n_timesteps`` (vmapped over classes), so shapes are static and the function
    is jittable.

    Args:
      eps_fn: batched class-conditional noise predictor ``eps_fn(x_t, t, y)`` with ``x_t``
        of shape ``(m, *data_shape)``, ``t`` of shape ``(m,)``, integer labels ``y`` of shape
        ``(m,)``. Use [`to_eps`][jaxclust.diffusion.to_eps] for other parametrisations.
      x: the input, shape ``data_shape``.
      key: PRNG key for the noises and times.
      sde: the forward SDE.
      num_classes: number of classes (labels ``0 .. num_classes - 1``).
      n_timesteps: timesteps per class when ``schedule`` is None.
      schedule: optional stages ``((n_timesteps, n_classes), ...)``.
      shared_noise: the same $(t_i, \varepsilon_i)$ for every class (paired comparison); if
        False every class draws its own, at the same cost.
      antithetic: pair every noise with its negative at the same time (cancels the term
        of the error linear in $\varepsilon$).
      time_sampling: ``"stratified"`` (one time per stratum of $[t_{\min}, t_{\max}]$),
        ``"uniform"``, or ``"importance"``: times drawn with density $\propto w(t)$
        (inverse CDF on a log-spaced grid, stratified) and the errors weighted by the
        normaliser $\int w$ instead of $w(t)$, which tames the $1/t$ growth of the
        likelihood weighting.
      weighting: weight $w(t)$ of the error, a name of
        [`loss_weight`][jaxclust.diffusion.loss_weight] or a callable.
      t_min: smallest time sampled.
      t_max: largest time sampled (default: the SDE's horizon $T$).

    Returns:
      A [`ClassifyResult`][jaxclust.diffusion.ClassifyResult].

    Raises:
      ValueError: bad arguments, or an ``eps_fn`` returning NaN/Inf (no label is computed
        from non-finite errors).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import VPSDE, diffusion_classify
      >>> sde = VPSDE()
      >>> means = jnp.array([[-2.0, 0.0], [2.0, 0.0]])  # class c: N(means[c], I)
      >>> def eps_fn(x, t, y):  # exact noise prediction of each class
      ...     a, s = sde.marginal_coefs(t)
      ...     return s[:, None] * (x - a[:, None] * means[y])
      >>> res = diffusion_classify(eps_fn, jnp.array([1.5, 0.3]), jax.random.key(0), sde,
      ...                          num_classes=2, n_timesteps=16)
      >>> int(res.label)
      1

    References:
      Li, Prabhudesai, Duggal, Brown, Pathak, "Your Diffusion Model is Secretly a Zero-Shot
      Classifier", ICCV 2023. Clark & Jaini, "Text-to-Image Diffusion Models are Zero-Shot
      Classifiers", NeurIPS 2023.
    """
    check_sde(sde)
    num_classes = check_int(num_classes, "num_classes")
    stages = _stages(schedule, num_classes, n_timesteps)
    check_choice(time_sampling, "time_sampling", ("stratified", "uniform", "importance"))
    if not callable(weighting):
        check_choice(weighting, "weighting", WEIGHTINGS)
    checks.check_positive_scalar(t_min, "t_min", "Use e.g. 1e-3.")
    x = checks.as_float_array(x, "x")
    if x.size == 0:
        raise ValueError(f"`x` is empty (shape {tuple(x.shape)}); pass one input of shape "
                         "data_shape.")
    x = checks.check_finite(x, "x")
    T = sde.horizon
    t_max = T if t_max is None else t_max
    ok = (jnp.asarray(t_min) < t_max) & (jnp.asarray(t_max) <= T)
    lo = checks.ensure(jnp.asarray(t_min, x.dtype), ~ok,
                       "`t_min` < `t_max` <= T (the SDE's horizon) is required.")

    grid = None
    if time_sampling == "importance":
        grid = _importance_grid(lo, t_max, lambda t: loss_weight(t, sde, weighting), x.dtype)
    totals = jnp.zeros((num_classes,), x.dtype)
    counts = jnp.zeros((num_classes,), x.dtype)
    cand = jnp.arange(num_classes)
    n_evals = 0
    for j, (n_t, n_c) in enumerate(stages):
        kj = jax.random.fold_in(checks.check_key(key), j)
        # candidates of this stage: the n_c best so far (all classes at the first stage)
        if n_c < cand.shape[0]:
            means = totals[cand] / counts[cand]
            _, keep = jax.lax.top_k(-means, n_c)
            cand = cand[keep]
        def draw(k, n_t=n_t):
            k_t, k_e = jax.random.split(k)
            h = (n_t + 1) // 2 if antithetic else n_t
            t = _times(k_t, h, lo, t_max, time_sampling, x.dtype, grid)
            e = jax.random.normal(k_e, (h,) + x.shape, x.dtype)
            if antithetic:  # pairs (t, eps), (t, -eps): the term linear in eps cancels
                t = jnp.concatenate([t, t])[:n_t]
                e = jnp.concatenate([e, -e])[:n_t]
            return t, e

        if shared_noise:
            t, eps = draw(kj)
            t = jnp.broadcast_to(t, (n_c, n_t))
            eps = jnp.broadcast_to(eps, (n_c, n_t) + x.shape)
        else:
            t, eps = jax.vmap(draw)(jax.random.split(kj, n_c))
        tf = t.reshape(-1)
        ef = eps.reshape((n_c * n_t,) + x.shape)
        alpha, sigma = sde._coefs(tf)
        xs = jnp.broadcast_to(x, ef.shape)
        x_t = bcast(alpha, ef) * xs + bcast(sigma, ef) * ef
        y = jnp.repeat(cand, n_t)
        pred = call_user(eps_fn, "eps_fn", x_t, tf, y,
                         data="`x` (one input of shape data_shape, not a batch)")
        err = jnp.mean(((pred - ef) ** 2).reshape(n_c * n_t, -1), axis=1)
        # a label from NaN errors would be meaningless (argmin of NaN): an error instead
        err = check_result(err, callable_nan_message(
            "eps_fn", f"the denoising error of stage {j}",
            "or `x` is too large for the dtype (squared errors overflow); a label cannot be "
            "chosen from non-finite errors"))
        if grid is None:
            err = err * loss_weight(tf, sde, weighting)
        else:  # t ~ w(t) / Z: E_uniform[w err] = Z / (t_max - t_min) * E_{w/Z}[err]
            err = err * (grid[2] / (t_max - lo))
        totals = totals.at[cand].add(jnp.sum(err.reshape(n_c, n_t), axis=1))
        counts = counts.at[cand].add(float(n_t))
        n_evals += n_c * n_t
    errors = totals / counts
    label = cand[jnp.argmin(errors[cand])]
    return ClassifyResult(label=label, errors=errors, n_evals=jnp.asarray(n_evals))
