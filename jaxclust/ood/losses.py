r"""Training losses for OOD-aware classifiers, usable with optax (scalar, differentiable).

* Outlier-based: energy-regularised fine-tuning (squared hinges on ID and outlier
  energies) and outlier exposure (cross-entropy to the uniform distribution on outliers).
* Outlier-free: logit normalisation (LogitNorm), the learned temperature of
  GODIN / AbeT (cosine logits divided by $T(x) = \sigma(\cdot) \in (0, 1)$), and the
  mixture-of-prototypes head of PALM (several unit prototypes per class, Sinkhorn
  assignments, MLE and prototype-contrastive terms).

Logits are ``(n, k)``, integer labels ``(n,)`` in ``[0, k)``. Means over samples. The scores
these models are read with follow the convention of [`jaxclust.ood`][jaxclust.ood]:
higher = more in-distribution.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float, Int

from .._core import checks
from .._core.results import with_summary_repr
from ..ot.assign import _codes as _swav_kernel
from . import _validate as v

__all__ = [
    "CLIPNDecision",
    "CLIPNLosses",
    "clipn_atd",
    "clipn_ctw",
    "clipn_losses",
    "mixoe_loss",
    "mixoe_mix",
    "cosine_logits",
    "cross_entropy",
    "energy_margin_loss",
    "energy_regularized_loss",
    "learned_temperature",
    "learned_temperature_loss",
    "logitnorm_loss",
    "mixture_assignments",
    "mixture_logits",
    "outlier_exposure_loss",
    "palm_loss",
    "prototype_contrastive_loss",
    "update_prototypes",
]

_PREC = jax.lax.Precision.HIGHEST
# logits h / T of order 1e20 (e.g. T near 0): exact eagerly, but under jit XLA may fuse the
# ratio into the log-sum-exp with a multiply-add that rounds it differently from the max
_RATIO = ("The cross-entropy of `cos_logits` / `temperature` (logits too large: under jit XLA's "
          "fused multiply-add rounds them inconsistently)")


def _logits(z, name):
    """The validated ``(n, k)`` matrix, not yet cast (the jitted cores cast with ``_cast``)."""
    return v.matrix(z, name, "(n, k)")


def _cast(*arrays):
    """The arrays in their common compute dtype (inside the jitted cores)."""
    dtype = v.compute_dtype(*arrays)
    out = tuple(a.astype(dtype) for a in arrays)
    return out if len(out) > 1 else out[0]


def _jit(*static):
    """A module-level ``jax.jit`` with the named static arguments: an eager call compiles one
    program per shape (validation stays outside, on the host); under an outer transformation
    it is inlined."""
    return functools.partial(jax.jit, static_argnames=static)


def _labelled(logits, labels, name="logits", label_name="labels"):
    z = _logits(logits, name)
    y, _ = v.labels(labels, label_name, z.shape[0], z.shape[1], f"{name}.shape[1]")
    return z, y


def _nll(z, y):
    logp = jax.nn.log_softmax(z, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _num(x):
    """A Python number as a float (traced by the jitted cores: a new value compiles nothing,
    and an int too large for int32 still converts); arrays pass through."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return x


@_jit()
def _cross_entropy_core(z, y):
    return _nll(_cast(z), y)


def cross_entropy(logits: Float[ArrayLike, "n k"], labels: Int[ArrayLike, " n"]
                  ) -> Float[Array, ""]:
    r"""Mean softmax cross-entropy, $-\frac1n\sum_i \log\operatorname{softmax}(f_i)_{y_i}$.

    Args:
      logits: ``(n, k)``.
      labels: ``(n,)`` integers in ``[0, k)``.

    Returns:
      The scalar loss.

    Raises:
      ValueError: logits not 2-D or with NaN/Inf, labels of the wrong length or range.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import cross_entropy
      >>> round(float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 4)
      1.3863
    """
    z, y = _labelled(logits, labels)
    return _cross_entropy_core(z, y)


def energy_margin_loss(
    logits_in: Float[ArrayLike, "n k"],
    logits_out: Float[ArrayLike, "m k"],
    *,
    m_in: float = -25.0,
    m_out: float = -7.0,
    temperature: float = 1.0,
) -> Float[Array, ""]:
    r"""The energy regulariser of Liu et al.: squared hinges on ID and outlier energies.

    With the free energy $E(x) = -T\log\sum_j e^{f_j(x)/T}$,

    $$
        \mathcal{L}_E = \frac1n\sum_{i\in\mathrm{in}} \max(0, E(x_i) - m_\mathrm{in})^2
        + \frac1m\sum_{o\in\mathrm{out}} \max(0, m_\mathrm{out} - E(x_o))^2,
    $$

    the ID and outlier means taken separately (batches of different sizes weigh the same).
    It pushes ID energies below $m_\mathrm{in}$ and outlier energies above
    $m_\mathrm{out}$ (the CIFAR defaults -25 / -7 assume logits of that scale; rescale the
    margins with the typical energy of your model).

    Args:
      logits_in: logits of ID samples, ``(n, k)``.
      logits_out: logits of auxiliary outliers, ``(m, k)``.
      m_in: ID margin.
      m_out: outlier margin, ``m_out > m_in``.
      temperature: $T > 0$ of the energy.

    Returns:
      The scalar regulariser.

    Raises:
      ValueError: bad shapes, NaN/Inf, ``m_out <= m_in``, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import energy_margin_loss
      >>> z_in, z_out = jnp.array([[30.0, 0.0]]), jnp.array([[0.0, 0.0]])
      >>> float(energy_margin_loss(z_in, z_out, m_in=-25.0, m_out=-7.0))  # ID ok, out ok
      0.0

    References:
      Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020.
    """
    zi = _logits(logits_in, "logits_in")
    zo, t = _margin_args(zi, logits_out, m_in, m_out, temperature)
    h_in, h_out, total = _energy_margin_core(zi, zo, t, float(m_in), float(m_out))
    h_in, h_out = _checked_hinges(h_in, h_out)
    # traced: the checks travel with the hinges (equinox.error_if), so add the checked ones
    return h_in + h_out if checks.is_traced(h_in, h_out) else total


def _margin_args(zi, logits_out, m_in, m_out, temperature):
    """The validated ``(logits_out, temperature)`` of the energy hinges."""
    zo = _logits(logits_out, "logits_out")
    if zi.shape[1] != zo.shape[1]:
        raise ValueError(f"`logits_in` and `logits_out` must have the same number of classes, "
                         f"got {zi.shape[1]} and {zo.shape[1]}.")
    t = v.temperature(temperature)
    for name, val in (("m_in", m_in), ("m_out", m_out)):
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise ValueError(f"`{name}` must be a number, got {val!r}.")
    if not m_out > m_in:
        raise ValueError(f"`m_out` must be larger than `m_in` (outliers get the higher "
                         f"energy), got m_in = {m_in}, m_out = {m_out}.")
    return zo, _num(t)


def _hinges(zi, zo, t, m_in, m_out):
    zi, zo = _cast(zi), _cast(zo)
    e_in = -t * logsumexp(zi / t, axis=1)
    e_out = -t * logsumexp(zo / t, axis=1)
    return (jnp.mean(jnp.square(jax.nn.relu(e_in - m_in))),
            jnp.mean(jnp.square(jax.nn.relu(m_out - e_out))))


def _checked_hinges(h_in, h_out):
    return (v.finite_result(h_in, "logits_in", "The ID energy hinge"),
            v.finite_result(h_out, "logits_out", "The outlier energy hinge"))


@_jit()
def _energy_margin_core(zi, zo, t, m_in, m_out):
    h_in, h_out = _hinges(zi, zo, t, m_in, m_out)
    return h_in, h_out, h_in + h_out


@_jit()
def _energy_regularized_core(zi, y, zo, t, m_in, m_out, weight):
    h_in, h_out = _hinges(zi, zo, t, m_in, m_out)
    nll = _nll(_cast(zi), y)
    return nll, h_in, h_out, nll + weight * (h_in + h_out)


def energy_regularized_loss(
    logits_in: Float[ArrayLike, "n k"],
    labels_in: Int[ArrayLike, " n"],
    logits_out: Float[ArrayLike, "m k"],
    *,
    weight: float = 0.1,
    m_in: float = -25.0,
    m_out: float = -7.0,
    temperature: float = 1.0,
) -> Float[Array, ""]:
    r"""Energy-regularised training loss (Liu et al. 2020):
    $\mathcal{L} = \mathrm{CE}(f(x_\mathrm{in}), y) + \lambda\,\mathcal{L}_E$ with
    $\mathcal{L}_E$ of [`energy_margin_loss`][jaxclust.ood.energy_margin_loss].

    Args:
      logits_in: logits of labelled ID samples, ``(n, k)``.
      labels_in: their labels, ``(n,)``.
      logits_out: logits of auxiliary outliers, ``(m, k)``.
      weight: $\lambda \ge 0$ (the paper uses 0.1).
      m_in: ID margin (paper: -25 on CIFAR).
      m_out: outlier margin (paper: -7 on CIFAR).
      temperature: $T > 0$ of the energy.

    Returns:
      The scalar loss.

    Raises:
      ValueError: as [`energy_margin_loss`][jaxclust.ood.energy_margin_loss], bad labels,
        ``weight < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import energy_regularized_loss
      >>> z_in, z_out = jnp.array([[30.0, 0.0]]), jnp.array([[20.0, 0.0]])
      >>> float(energy_regularized_loss(z_in, jnp.array([0]), z_out))  # 0.1 * (-7 + 20)^2
      16.899999618530273

    References:
      Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020.
    """
    zi, y = _labelled(logits_in, labels_in, "logits_in", "labels_in")
    if isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight < 0:
        raise ValueError(f"`weight` must be >= 0, got {weight}.")
    zo, t = _margin_args(zi, logits_out, m_in, m_out, temperature)
    nll, h_in, h_out, total = _energy_regularized_core(zi, y, zo, t, float(m_in), float(m_out),
                                                       _num(weight))
    h_in, h_out = _checked_hinges(h_in, h_out)
    if checks.is_traced(h_in, h_out):  # the checks travel with the hinges
        return nll + weight * (h_in + h_out)
    return total


def outlier_exposure_loss(
    logits_in: Float[ArrayLike, "n k"],
    labels_in: Int[ArrayLike, " n"],
    logits_out: Float[ArrayLike, "m k"],
    *,
    weight: float = 0.5,
) -> Float[Array, ""]:
    r"""Outlier exposure: cross-entropy on ID data plus cross-entropy from the outliers'
    softmax to the uniform distribution,

    $$
        \mathcal{L} = \mathrm{CE}(f(x_\mathrm{in}), y)
        + \lambda\,\frac1m\sum_o \Big(-\frac1k\sum_j \log\operatorname{softmax}(f(x_o))_j\Big).
    $$

    Args:
      logits_in: logits of labelled ID samples, ``(n, k)``.
      labels_in: their labels, ``(n,)``.
      logits_out: logits of auxiliary outliers, ``(m, k)``.
      weight: $\lambda \ge 0$ (the paper uses 0.5).

    Returns:
      The scalar loss (its outlier term is at least $\log k$).

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, ``weight < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import outlier_exposure_loss
      >>> z = jnp.zeros((1, 4))
      >>> round(float(outlier_exposure_loss(z, jnp.array([0]), z, weight=1.0)), 4)
      2.7726

    References:
      Hendrycks, Mazeika, Dietterich, "Deep Anomaly Detection with Outlier Exposure",
      ICLR 2019.
    """
    zi, y = _labelled(logits_in, labels_in, "logits_in", "labels_in")
    zo = _logits(logits_out, "logits_out")
    if zi.shape[1] != zo.shape[1]:
        raise ValueError(f"`logits_in` and `logits_out` must have the same number of classes, "
                         f"got {zi.shape[1]} and {zo.shape[1]}.")
    if isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight < 0:
        raise ValueError(f"`weight` must be >= 0, got {weight}.")
    return _outlier_exposure_core(zi, y, zo, _num(weight))


@_jit()
def _outlier_exposure_core(zi, y, zo, weight):
    uniform_ce = -jnp.mean(jax.nn.log_softmax(_cast(zo), axis=1))
    return _nll(_cast(zi), y) + weight * uniform_ce


def logitnorm_loss(
    logits: Float[ArrayLike, "n k"],
    labels: Int[ArrayLike, " n"],
    *,
    temperature: float | Float[Array, ""] = 0.04,
) -> Float[Array, ""]:
    r"""LogitNorm: cross-entropy of the logits normalised to the norm $1/T$,

    $$ \mathcal{L} = \mathrm{CE}\Big(\frac{f(x)}{T\,(\lVert f(x)\rVert + 10^{-7})}, y\Big), $$

    which stops the logit norm from growing during training (the cause of over-confidence
    far from the data). Score the trained model with e.g. [`msp`][jaxclust.ood.msp] or
    [`energy`][jaxclust.ood.energy] of the raw logits.

    Args:
      logits: ``(n, k)``.
      labels: ``(n,)``.
      temperature: $T > 0$ (the paper uses 0.04 on CIFAR-10).

    Returns:
      The scalar loss.

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import logitnorm_loss
      >>> round(float(logitnorm_loss(jnp.array([[3.0, 0.0]]), jnp.array([0]), temperature=1.0)), 4)
      0.3133

    References:
      Wei, Xie, Cheng, Feng, An, Li, "Mitigating Neural Network Overconfidence with Logit
      Normalization", ICML 2022.
    """
    z, y = _labelled(logits, labels)
    t = v.temperature(temperature)
    loss = _logitnorm_core(z, y, _num(t))
    return checks.ensure_value(loss, lambda a, xp: ~xp.isfinite(a),
                               "The LogitNorm loss is not finite: `temperature` is too small "
                               "(the normalised logits / temperature overflow); use a "
                               "temperature of order 1e-3 or more.")


@_jit()
def _logitnorm_core(z, y, t):
    z = _cast(z)
    norm = jnp.sqrt(jnp.sum(z * z, axis=1, keepdims=True) + 1e-30) + 1e-7
    # a tiny temperature gives logits ~1e30 / T: under jit the fused log-softmax may give NaN
    return _nll(z / (norm * t), y)


# ------------------------------------------------------------------------------------------
# learned temperature (GODIN / AbeT)


def cosine_logits(features: Float[ArrayLike, "n d"], weight: Float[ArrayLike, "d k"], *,
                  eps: float = 1e-4) -> Float[Array, "n k"]:
    r"""Cosine-similarity logits $h_j(x) = \dfrac{x^\top w_j}{(\lVert x\rVert + \epsilon)
    (\lVert w_j\rVert + \epsilon)}$ (the numerator $h$ of GODIN / AbeT), in $[-1, 1]$.

    The norms carry the reference's guard $\epsilon = 10^{-4}$ (AbeT's and the GODIN
    reproduction's ``x / (||x|| + 1e-4)``); ``eps=0`` gives the exact cosine. A zero row or
    column gives 0.

    Args:
      features: ``(n, d)``.
      weight: class directions as columns, ``(d, k)``.
      eps: $\epsilon \ge 0$ added to each norm (reference: 1e-4).

    Returns:
      ``(n, k)`` cosine logits.

    Raises:
      ValueError: bad shapes, NaN/Inf, ``eps < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import cosine_logits
      >>> w = jnp.array([[1.0, 1.0], [0.0, 1.0]])
      >>> cosine_logits(jnp.array([[2.0, 0.0]]), w, eps=0.0).round(4).tolist()
      [[1.0, 0.7071]]

    References:
      Hsu, Shen, Jin, Kira, "Generalized ODIN: Detecting Out-of-distribution Image without
      Learning from Out-of-distribution Data", CVPR 2020. LeVine et al., "Out-of-Distribution
      Detection & Applications With Ablated Learned Temperature Energy", 2024 (code:
      github.com/anonymousoodauthor/abet, ``nets.py``).
    """
    x = v.matrix(features, "features", "(n, d)")
    w = v.matrix(weight, "weight", "(d, k)")
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"`weight` must have shape (d, k) with d = {x.shape[1]}, got "
                         f"{tuple(w.shape)}.")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0 or (
            eps == float("inf")):
        raise ValueError(f"`eps` must be a finite Python number >= 0, got {eps!r}.")
    return _cosine_logits_core(x, w, float(eps))


@_jit()
def _cosine_logits_core(x, w, eps):
    x, w = _cast(x, w)
    return jnp.matmul(_guarded_unit(x, 1, eps), _guarded_unit(w, 0, eps), precision=_PREC)


def _guarded_unit(x, axis, eps):
    """``x / (||x|| + eps)`` along ``axis``; zero vectors give zero (finite gradient)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=True)
    pos = sq > 0
    norm = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0) + eps
    return jnp.where(pos, x / jnp.where(pos, norm, 1.0), 0.0)


def learned_temperature(
    features: Float[ArrayLike, "n d"],
    weight: Float[ArrayLike, " d"],
    bias: float | Float[ArrayLike, ""] = 0.0,
    *,
    batch_norm: bool = False,
    scale: float | Float[ArrayLike, ""] = 1.0,
    offset: float | Float[ArrayLike, ""] = 0.0,
    mean: float | Float[ArrayLike, ""] | None = None,
    var: float | Float[ArrayLike, ""] | None = None,
    eps: float = 1e-5,
) -> Float[Array, " n"]:
    r"""The learned per-sample temperature of GODIN / AbeT, in $(0, 1)$:

    $$ T(x) = \sigma\big(g(x)\big) + 10^{-12}, \qquad g(x) = a(x) = x^\top w + b, $$

    or, with ``batch_norm=True`` (the reference's ``Linear -> BatchNorm1d(1) -> Sigmoid``),

    $$ g(x) = \gamma\,\frac{a(x) - \mu}{\sqrt{v + \epsilon}} + \beta, $$

    where $(\mu, v)$ are the batch mean and (biased) variance of $a$ over the ``n`` rows
    (training mode) or the given running statistics ``mean``/``var`` (inference mode).
    The logits are $h(x)/T(x)$ (see
    [`learned_temperature_loss`][jaxclust.ood.learned_temperature_loss]): a small $T$
    *enlarges* the cosine logits, so the softmax can become confident. The
    $10^{-12}$ is the reference's guard against $T = 0$.

    Args:
      features: ``(n, d)``.
      weight: ``(d,)``.
      bias: a scalar $b$ (cancels in training-mode batch norm).
      batch_norm: normalise $a$ as the reference's ``BatchNorm1d(1)`` does.
      scale: $\gamma$, the batch norm's learned scale (reference init 1).
      offset: $\beta$, the batch norm's learned shift (reference init 0).
      mean: running mean of $a$ (inference mode); ``None``: the batch's.
      var: running variance of $a$ (inference mode); ``None``: the batch's.
      eps: $\epsilon > 0$ of the batch norm (reference: 1e-5).

    Returns:
      ``(n,)`` temperatures in $(0, 1]$.

    Raises:
      ValueError: bad shapes, NaN/Inf, only one of ``mean``/``var``, a negative ``var``,
        ``eps <= 0``, batch statistics of a single sample.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import learned_temperature
      >>> x = jnp.array([[0.0], [-2.0], [100.0]])
      >>> learned_temperature(x, jnp.array([1.0]), 0.0).round(4).tolist()  # sigmoid(x w + b)
      [0.5, 0.1192, 1.0]

    References:
      Hsu, Shen, Jin, Kira, "Generalized ODIN", CVPR 2020. LeVine et al.,
      "Out-of-Distribution Detection & Applications With Ablated Learned Temperature
      Energy", 2024 (code: github.com/anonymousoodauthor/abet, ``nets.py``,
      ``LearnedTemperatureClassificationNet``).
    """
    x = v.matrix(features, "features", "(n, d)")
    w = v.vector(weight, "weight", x.shape[1], "d")
    scalars = {}
    for name, val in (("bias", bias), ("scale", scale), ("offset", offset), ("mean", mean),
                      ("var", var)):
        if val is None:
            scalars[name] = None
            continue
        arr = checks.as_float_array(val, name)
        if arr.ndim != 0:
            raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
        scalars[name] = checks.check_finite(arr, name)
    if not batch_norm and (scalars["mean"] is not None or scalars["var"] is not None):
        raise ValueError("`mean` and `var` are the running statistics of the batch norm: "
                         "pass them with batch_norm=True.")
    if batch_norm:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float(
                "inf"):
            raise ValueError(f"`eps` must be a finite Python number > 0, got {eps!r}.")
        mu, var_ = scalars["mean"], scalars["var"]
        if (mu is None) != (var_ is None):
            raise ValueError("`mean` and `var` must be given together (the running "
                             "statistics of inference mode) or both left None (the batch's).")
        if mu is None:
            if x.shape[0] < 2:
                raise ValueError("`features` has one row: batch statistics need at least 2 "
                                 "samples (as torch's BatchNorm in training mode); pass the "
                                 "running `mean` and `var` for single samples.")
        else:
            scalars["var"] = checks.ensure_value(var_, lambda a, xp: a < 0,
                                                 "`var` must be >= 0.")
        eps = float(eps)
    else:
        eps = None  # unused
    return _learned_temperature_core(x, w, scalars, eps, batch_norm=bool(batch_norm))


@_jit("batch_norm")
def _learned_temperature_core(x, w, scalars, eps, *, batch_norm):
    dtype = v.compute_dtype(x, w, *(a for a in scalars.values() if a is not None))
    a = jnp.matmul(x.astype(dtype), w.astype(dtype), precision=_PREC)
    a = a + scalars["bias"].astype(dtype)
    if batch_norm:
        mu, var_ = scalars["mean"], scalars["var"]
        if mu is None:
            mu = jnp.mean(a)
            var_ = jnp.mean(jnp.square(a - mu))
        g = ((a - mu.astype(dtype)) * jax.lax.rsqrt(var_.astype(dtype) + eps)
             * scalars["scale"].astype(dtype) + scalars["offset"].astype(dtype))
    else:
        g = a
    return jax.nn.sigmoid(g) + jnp.asarray(1e-12, dtype)


def learned_temperature_loss(
    cos_logits: Float[ArrayLike, "n k"],
    temperature: Float[ArrayLike, " n"],
    labels: Int[ArrayLike, " n"],
) -> Float[Array, ""]:
    r"""Cross-entropy of the temperature-divided cosine logits, $\mathrm{CE}(h(x)/T(x), y)$,
    the training loss of GODIN / AbeT (the reference trains ``CrossEntropyLoss`` on
    ``logits = h / T`` with $T = \sigma(\cdot) \in (0, 1)$ from
    [`learned_temperature`][jaxclust.ood.learned_temperature]). Read the model with
    [`ablated_energy`][jaxclust.ood.ablated_energy].

    Args:
      cos_logits: $h(x)$, ``(n, k)``.
      temperature: $T(x) > 0$, ``(n,)``.
      labels: ``(n,)``.

    Returns:
      The scalar loss.

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, a temperature <= 0.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import learned_temperature_loss
      >>> h = jnp.array([[1.0, -1.0]])
      >>> round(float(learned_temperature_loss(h, jnp.array([0.5]), jnp.array([0]))), 4)
      0.0181

    References:
      Hsu, Shen, Jin, Kira, "Generalized ODIN", CVPR 2020. LeVine et al., "Out-of-Distribution
      Detection & Applications With Ablated Learned Temperature Energy", 2024.
    """
    h, y = _labelled(cos_logits, labels, "cos_logits")
    t = v.vector(temperature, "temperature", h.shape[0], "n")
    dtype = v.compute_dtype(h)
    t = checks.ensure_value(t, lambda a, xp: a.astype(dtype) <= 0,
                            "`temperature` must be > 0 everywhere.")
    loss = _nll_core(v.row_ratio(h, t), y)  # two programs: see row_ratio
    return v.finite_result(loss, "temperature", _RATIO)


_nll_core = jax.jit(_nll)


# ------------------------------------------------------------------------------------------
# mixture of prototypes (PALM)


def _prototypes(prototypes, d=None):
    p = checks.as_float_array(prototypes, "prototypes")
    checks.check_ndim(p, "prototypes", 3, "(k, m, d)")
    if d is not None and p.shape[2] != d:
        raise ValueError(f"`prototypes` must have shape (k, m, d) with d = {d} (the feature "
                         f"size), got {tuple(p.shape)}.")
    if 0 in p.shape:
        raise ValueError(f"`prototypes` must be non-empty, got shape {tuple(p.shape)}.")
    return checks.check_finite(p, "prototypes")  # normalised in the cores (_unit_protos)


def _unit_features(features):
    """The validated features, not yet normalised (the cores do it with ``_unit``)."""
    return v.matrix(features, "features", "(n, d)")


def _unit(x):
    return v.normalize(_cast(x))


def _unit_protos(p, dtype):
    return v.normalize(p).astype(dtype)


def _codes_args(epsilon, n_iter):
    """``(epsilon, n_iter)`` checked as :func:`jaxclust.ot.swav_codes` checks them."""
    n_iter = checks.check_int(n_iter, "n_iter")
    return _num(checks.check_positive_scalar(epsilon, "epsilon")), n_iter


def _top_k(top_k) -> int:
    return checks.check_int(top_k, "top_k", low=0,
                            why="0: no pruning; PALM keeps 5 of 6 prototypes")


def _momentum(momentum, allow_none=False):
    if momentum is None and allow_none:
        return None
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
            0 <= momentum <= 1):
        none = " or None" if allow_none else ""
        raise ValueError(f"`momentum` must be a number in [0, 1]{none} (PALM uses 0.999), got "
                         f"{momentum!r}.")
    return float(momentum)


def _palm_codes(z, p, epsilon, n_iter):
    """SwAV/Sinkhorn codes of the batch over *all* ``k * m`` prototypes, ``(n, k, m)`` (the
    kernel of :func:`jaxclust.ot.swav_codes`, its arguments checked by ``_codes_args``)."""
    k, m, d = p.shape
    s = jax.lax.stop_gradient(jnp.matmul(z, p.reshape(k * m, d).T, precision=_PREC))
    dtype = jnp.promote_types(s.dtype, jnp.float32)
    codes = _swav_kernel(s, jnp.asarray(epsilon, dtype), n_iter).astype(s.dtype)
    return codes.reshape(z.shape[0], k, m)


def _l1_rows(w):
    """Rows divided by their sum, floored at 1e-12 (torch's ``F.normalize(p=1)``)."""
    return w / jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), 1e-12)


def _class_weights(codes, y, top_k, keep=None):
    """``(weights, keep)``: each sample's codes on its own class's ``m`` prototypes, pruned
    to the ``top_k`` largest (``keep``, or the given mask) and renormalised to sum 1."""
    n, _, m = codes.shape
    own = codes[jnp.arange(n), y]  # (n, m): the class mask
    if keep is None:
        keep = jnp.ones_like(own)
        if 0 < top_k < m:
            idx = jax.lax.top_k(own, top_k)[1]
            keep = jnp.zeros_like(own).at[jnp.arange(n)[:, None], idx].set(1.0)
    return _l1_rows(own * keep), keep


def _ema_update(p, z, y, w_own, momentum):
    """PALM's EMA step: each prototype moves towards the weighted *mean* of its members."""
    k = p.shape[0]
    w = jax.nn.one_hot(y, k, dtype=z.dtype)[:, :, None] * w_own[:, None, :]  # (n, k, m)
    w = w / jnp.maximum(jnp.sum(w, axis=0, keepdims=True), 1e-12)  # columns: a mean
    mean = jnp.einsum("nkm,nd->kmd", w, z, precision=_PREC)
    return v.normalize(momentum * jax.lax.stop_gradient(p) + (1.0 - momentum) * mean)


def mixture_assignments(
    features: Float[ArrayLike, "n d"],
    prototypes: Float[ArrayLike, "k m d"],
    labels: Int[ArrayLike, " n"] | None = None,
    *,
    epsilon: float = 0.05,
    n_iter: int = 3,
    top_k: int = 5,
) -> Float[Array, "n k m"]:
    r"""PALM's soft assignments of samples to prototypes, by Sinkhorn.

    One Sinkhorn ([`swav_codes`][jaxclust.ot.swav_codes]) assigns the batch's unit features
    $z_i$ to *all* $k m$ unit prototypes at once, on the scores $z_i^\top p_{cj}$: rows sum
    to one and the prototypes share the batch equally. With ``labels``, PALM's class mask
    follows: each sample keeps its codes on its own class's prototypes, pruned to the
    ``top_k`` largest, renormalised to sum to one,

    $$ w_{icj} = \frac{[c = y_i]\,[j \in \mathrm{top}_k]\, q_{icj}}
                      {\sum_{j'} [j' \in \mathrm{top}_k]\, q_{i y_i j'}}. $$

    Assignments are targets (no gradient flows through them).

    Args:
      features: ``(n, d)`` (normalised inside).
      prototypes: ``(k, m, d)`` (normalised inside).
      labels: ``(n,)`` in ``[0, k)``, or ``None`` for the codes over all prototypes.
      epsilon: entropic temperature of the codes (PALM: 0.05).
      n_iter: Sinkhorn rounds (PALM: 3).
      top_k: prototypes kept per sample within its class (PALM: 5 of 6); ``0`` or
        ``>= m``: no pruning. Used with ``labels`` only.

    Returns:
      ``(n, k, m)``: without labels the codes $q_{icj}$ (each row sums to 1 over all
      prototypes); with labels the weights $w_{icj}$ (nonzero on class $y_i$ only, summing
      to 1).

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, ``epsilon <= 0``, bad ``top_k``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import mixture_assignments
      >>> z = jnp.eye(8, 3) + 0.1
      >>> p = jnp.eye(8, 3).reshape(2, 4, 3) + 0.2
      >>> q = mixture_assignments(z, p)
      >>> q.shape, bool(jnp.allclose(q.sum((1, 2)), 1.0, atol=1e-5))
      ((8, 2, 4), True)
      >>> w = mixture_assignments(z, p, jnp.arange(8) % 2, top_k=3)
      >>> (w > 0).sum((1, 2)).tolist()  # 3 prototypes of the sample's own class
      [3, 3, 3, 3, 3, 3, 3, 3]

    References:
      Lu, Ming, Sun, Li, "Learning to Embed Distributions via Maximum Likelihood Estimation
      with Mixture of Prototypes" (PALM), ICLR 2024 (code: github.com/jeff024/PALM,
      ``util/loss_functions.py``).
    """
    x = _unit_features(features)
    p = _prototypes(prototypes, x.shape[1])
    top_k = _top_k(top_k)
    eps, n_iter = _codes_args(epsilon, n_iter)
    y = None
    if labels is not None:
        y, _ = v.labels(labels, "labels", x.shape[0], p.shape[0], "prototypes.shape[0]")
    return _mixture_assignments_core(x, p, y, eps, n_iter=n_iter, top_k=top_k)


@_jit("n_iter", "top_k")
def _mixture_assignments_core(x, p, y, eps, *, n_iter, top_k):
    z = _unit(x)
    p = _unit_protos(p, z.dtype)
    codes = _palm_codes(z, p, eps, n_iter)
    if y is None:
        return codes
    w_own, _ = _class_weights(codes, y, top_k)
    return jax.nn.one_hot(y, p.shape[0], dtype=z.dtype)[:, :, None] * w_own[:, None, :]


def mixture_logits(
    features: Float[ArrayLike, "n d"],
    prototypes: Float[ArrayLike, "k m d"],
    assignments: Float[ArrayLike, "n k m"] | None = None,
    *,
    temperature: float = 0.1,
) -> Float[Array, "n k"]:
    r"""Class log-likelihoods of a von Mises-Fisher mixture of prototypes,

    $$ \ell_c(x) = \log\sum_{j=1}^m w_{icj}\,\exp(z^\top p_{cj}/\tau), $$

    with unit $z$ and $p$ and the weights ``assignments`` (default uniform $1/m$); a softmax
    over $c$ gives the class posterior. A read-out of a PALM embedding added by this library
    (the PALM reference scores its embedding with KNN or Mahalanobis, not with these
    logits; its training term is in [`palm_loss`][jaxclust.ood.palm_loss]).

    Args:
      features: ``(n, d)``.
      prototypes: ``(k, m, d)``.
      assignments: ``(n, k, m)`` weights (each class's summing to 1) or ``None``.
      temperature: $\tau > 0$ (PALM uses 0.1).

    Returns:
      ``(n, k)`` logits.

    Raises:
      ValueError: bad shapes, NaN/Inf, negative weights, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import mixture_logits
      >>> p = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
      >>> mixture_logits(jnp.array([[1.0, 0.0]]), p, temperature=1.0).tolist()
      [[1.0, 0.0]]

    References:
      Lu, Ming, Sun, Li, "Learning to Embed Distributions via Maximum Likelihood Estimation
      with Mixture of Prototypes" (PALM), ICLR 2024 (code: github.com/jeff024/PALM,
      ``util/loss_functions.py``).
    """
    x = _unit_features(features)
    p = _prototypes(prototypes, x.shape[1])
    t = _num(v.temperature(temperature))
    w = None
    if assignments is not None:
        w = checks.as_float_array(assignments, "assignments")
        shape = (x.shape[0], p.shape[0], p.shape[1])
        if w.shape != shape:
            raise ValueError(f"`assignments` must have shape (n, k, m) = {shape}, got "
                             f"{tuple(w.shape)}.")
        dtype = jnp.result_type(v.compute_dtype(x), t)  # that of the scores

        def bad(a, xp):
            a = a.astype(dtype)
            return ~(xp.isfinite(a) & (a >= 0))

        w = checks.ensure_value(w, bad, "`assignments` must be finite and >= 0.")
    return _mixture_logits_core(x, p, w, t)


@_jit()
def _mixture_logits_core(x, p, w, t):
    z = _unit(x)
    p = _unit_protos(p, z.dtype)
    s = jnp.einsum("nd,kmd->nkm", z, p, precision=_PREC) / t
    if w is None:
        logw = jnp.full(s.shape, -jnp.log(p.shape[1]), s.dtype)
    else:
        w = w.astype(s.dtype)
        logw = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    return logsumexp(s + logw, axis=2)


def prototype_contrastive_loss(
    prototypes: Float[ArrayLike, "k m d"], *, temperature: float = 0.5
) -> Float[Array, ""]:
    r"""PALM's prototype-level contrastive loss: the prototypes of a class attract each
    other and repel those of other classes,

    $$
        \mathcal{L}_\mathrm{proto} = -\frac{1}{km}\sum_{c,j}\Big(
        \frac{1}{m-1}\sum_{j' \ne j} \frac{p_{cj}^\top p_{cj'}}{\tau}
        - \log\sum_{(c',j') \ne (c,j)} e^{p_{cj}^\top p_{c'j'}/\tau}\Big),
    $$

    the *mean* over the positives of the log-numerators (as the reference), with the
    reference's temperature $\tau = 0.5$.

    Args:
      prototypes: ``(k, m, d)``, ``m >= 2`` (normalised inside).
      temperature: $\tau > 0$ (PALM: 0.5, fixed in its code).

    Returns:
      The scalar loss.

    Raises:
      ValueError: bad shapes, NaN/Inf, ``m < 2``, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import prototype_contrastive_loss
      >>> p = jnp.eye(4).reshape(2, 2, 4)  # orthogonal prototypes: no pull, no push
      >>> round(float(prototype_contrastive_loss(p, temperature=1.0)), 4)  # log 3
      1.0986

    References:
      Lu, Ming, Sun, Li, "Learning to Embed Distributions via Maximum Likelihood Estimation
      with Mixture of Prototypes" (PALM), ICLR 2024 (code: github.com/jeff024/PALM,
      ``util/loss_functions.py``).
    """
    p = _prototypes(prototypes)
    k, m, d = p.shape
    if m < 2:
        raise ValueError(f"`prototypes` must have m >= 2 prototypes per class for the "
                         f"contrastive loss (the positives), got shape {tuple(p.shape)}.")
    t = v.temperature(temperature)
    return _finite_loss(_prototype_contrastive_core(p, _num(t)), "The prototype contrastive "
                        "loss", "`temperature`")


@_jit()
def _prototype_contrastive_core(p, t):
    return _contrastive(v.normalize(p), t)


def _contrastive(p, t):
    """The contrastive loss of unit prototypes ``p`` (cast to the compute dtype here)."""
    k, m, d = p.shape
    p = p.astype(v.compute_dtype(p))
    flat = p.reshape(k * m, d)
    s = jnp.matmul(flat, flat.T, precision=_PREC) / t
    cls = jnp.repeat(jnp.arange(k), m)
    self_mask = jnp.eye(k * m, dtype=bool)
    same = (cls[:, None] == cls[None, :]) & ~self_mask
    pos = jnp.sum(jnp.where(same, s, 0.0), axis=1) / (m - 1)
    allv = logsumexp(jnp.where(self_mask, -jnp.inf, s), axis=1)
    return -jnp.mean(pos - allv)


def palm_loss(
    features: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    prototypes: Float[ArrayLike, "k m d"],
    *,
    temperature: float = 0.1,
    weight: float = 1.0,
    proto_temperature: float = 0.5,
    momentum: float | None = 0.999,
    epsilon: float = 0.05,
    n_iter: int = 3,
    top_k: int = 5,
) -> Float[Array, ""]:
    r"""PALM's loss for one batch, as its reference computes it: the EMA update of the
    prototypes, the maximum-likelihood term at the updated prototypes, and the
    prototype-contrastive term,

    $$
        \mathcal{L} = -\frac1n\sum_i\Big(\sum_j w_{i y_i j}\,\frac{z_i^\top p'_{y_i j}}{\tau}
        - \log\sum_{c,j} e^{z_i^\top p'_{cj}/\tau}\Big)
        + \lambda\,\mathcal{L}_\mathrm{proto}(p'),
    $$

    with unit features $z_i$, $p' =$ [`update_prototypes`][jaxclust.ood.update_prototypes]
    $(p, z, y)$ (``momentum``; ``None``: $p' = p$, the prototypes as given), $w$ the
    class-masked, top-$k$-pruned Sinkhorn weights of
    [`mixture_assignments`][jaxclust.ood.mixture_assignments] on $p'$ (the pruning set
    taken from the update's assignments, as the reference does), and
    $\mathcal{L}_\mathrm{proto}$ the
    [`prototype_contrastive_loss`][jaxclust.ood.prototype_contrastive_loss] at
    ``proto_temperature``.

    Gradients follow the reference: the Sinkhorn weights are targets and the prototypes are
    constants in the likelihood term; the contrastive term reaches the features through the
    update $p'$ (its weighted means of the features); the prototypes given get no gradient
    when ``momentum`` is set. The loss does not return $p'$: keep it with
    ``update_prototypes(prototypes, jax.lax.stop_gradient(features), labels)`` on the same
    batch (same arguments, same result). With ``momentum=None``, pass prototypes already
    updated in the same step (``update_prototypes`` of the features, not stopped, keeps the
    gradient path) — do not update twice.

    Args:
      features: embeddings ``(n, d)`` (normalised inside; PALM's encoder outputs unit
        vectors). Stack the views of a batch as rows, as the reference does.
      labels: ``(n,)`` in ``[0, k)``.
      prototypes: ``(k, m, d)``, ``m >= 2`` (normalised inside).
      temperature: $\tau > 0$ of the likelihood term (PALM: 0.1).
      weight: $\lambda \ge 0$ (PALM: 1).
      proto_temperature: temperature of the contrastive term (PALM: 0.5).
      momentum: the EMA momentum $\beta \in [0, 1]$ of the update done first (PALM:
        0.999), or ``None`` to use ``prototypes`` as given.
      epsilon: entropic temperature of the assignments (PALM: 0.05).
      n_iter: Sinkhorn rounds of the assignments (PALM: 3).
      top_k: prototypes kept per sample within its class (PALM: 5); ``0``: all.

    Returns:
      The scalar loss.

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, ``m < 2``, non-positive temperatures,
        ``weight < 0``, ``momentum`` outside [0, 1], bad ``top_k``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import palm_loss
      >>> p = jnp.eye(4).reshape(2, 2, 4)
      >>> z = jnp.eye(4) + 0.1
      >>> bool(palm_loss(z, jnp.array([0, 0, 1, 1]), p) > 0)
      True

    References:
      Lu, Ming, Sun, Li, "Learning to Embed Distributions via Maximum Likelihood Estimation
      with Mixture of Prototypes" (PALM), ICLR 2024 (code: github.com/jeff024/PALM,
      ``util/loss_functions.py``).
    """
    x = _unit_features(features)
    p = _prototypes(prototypes, x.shape[1])
    y, _ = v.labels(labels, "labels", x.shape[0], p.shape[0], "prototypes.shape[0]")
    if isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight < 0:
        raise ValueError(f"`weight` must be >= 0, got {weight}.")
    if p.shape[1] < 2:
        raise ValueError(f"`prototypes` must have m >= 2 prototypes per class for the "
                         f"contrastive loss (the positives), got shape {tuple(p.shape)}.")
    t = v.temperature(temperature)
    proto_t = v.temperature(proto_temperature, "proto_temperature")
    momentum = _momentum(momentum, allow_none=True)
    top_k = _top_k(top_k)
    eps, n_iter = _codes_args(epsilon, n_iter)
    loss = _palm_core(x, y, p, _num(t), _num(weight), _num(proto_t), momentum, eps,
                      n_iter=n_iter, top_k=top_k)
    return _finite_loss(loss, "The PALM loss", "`temperature` or `proto_temperature`")


def _finite_loss(loss, what: str, culprits: str):
    # similarities in [-1, 1] over a temperature of 1e-25 .. 1e-38 overflow to inf - inf in
    # the log-sum-exps (NaN under jit, and eagerly from about 1e-38): an error naming the
    # temperatures instead of a NaN
    return checks.ensure_value(loss, lambda a, xp: ~xp.isfinite(a),
                               f"{what} is not finite: {culprits} is too small (the "
                               "similarities / temperature overflow); use temperatures of "
                               "order 1e-3 or more.")


@_jit("n_iter", "top_k")
def _palm_core(x, y, p, t, weight, proto_t, momentum, epsilon, *, n_iter, top_k):
    z = _unit(x)
    p = _unit_protos(p, z.dtype)
    zc = jax.lax.stop_gradient(z)
    keep = None
    if momentum is not None:
        w_own, keep = _class_weights(_palm_codes(zc, p, epsilon, n_iter), y, top_k)
        p = _ema_update(p, z, y, w_own, momentum)
    p_const = jax.lax.stop_gradient(p)
    w_own, _ = _class_weights(_palm_codes(zc, p_const, epsilon, n_iter), y, top_k, keep)
    k, m, d = p.shape
    logits = jnp.matmul(z, p_const.reshape(k * m, d).T, precision=_PREC) / t  # (n, k m)
    own = logits.reshape(-1, k, m)[jnp.arange(z.shape[0]), y]  # (n, m)
    mle = -jnp.mean(jnp.sum(w_own * own, axis=1) - logsumexp(logits, axis=1))
    # the contrastive term of prototype_contrastive_loss at p' (its checks cannot fail there)
    return mle + weight * _contrastive(v.normalize(p), proto_t)


def update_prototypes(
    prototypes: Float[ArrayLike, "k m d"],
    features: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    momentum: float = 0.999,
    epsilon: float = 0.05,
    n_iter: int = 3,
    top_k: int = 5,
) -> Float[Array, "k m d"]:
    r"""PALM's moving-average prototype update,

    $$
        p_{cj} \leftarrow \operatorname{normalise}\Big(\beta\,p_{cj}
        + (1 - \beta)\,\frac{\sum_{i} w_{icj}\,z_i}{\sum_{i} w_{icj}}\Big),
    $$

    the weighted *mean* of the unit features assigned to each prototype, with the
    class-masked, top-$k$-pruned Sinkhorn weights $w$ of
    [`mixture_assignments`][jaxclust.ood.mixture_assignments] (one Sinkhorn over all
    prototypes). A prototype without members keeps its direction. As in the reference the
    weights and the old prototypes are constants, while the gradient flows to the features
    (that path carries [`palm_loss`][jaxclust.ood.palm_loss]'s contrastive term to the
    encoder); pass ``jax.lax.stop_gradient(features)`` to store the result.

    Args:
      prototypes: ``(k, m, d)``.
      features: ``(n, d)``.
      labels: ``(n,)`` in ``[0, k)``.
      momentum: $\beta \in [0, 1]$ (PALM uses 0.999).
      epsilon: entropic temperature of the assignments (PALM: 0.05).
      n_iter: Sinkhorn rounds (PALM: 3).
      top_k: prototypes kept per sample within its class (PALM: 5); ``0``: all.

    Returns:
      The updated unit prototypes, ``(k, m, d)``.

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, ``momentum`` outside [0, 1], bad
        ``top_k``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import update_prototypes
      >>> p = jnp.array([[[1.0, 0.0]]])
      >>> z = jnp.array([[0.0, 1.0], [0.0, 1.0]])  # the batch size does not matter: a mean
      >>> update_prototypes(p, z, jnp.array([0, 0]), momentum=0.5).round(4).tolist()
      [[[0.7071, 0.7071]]]

    References:
      Lu, Ming, Sun, Li, "Learning to Embed Distributions via Maximum Likelihood Estimation
      with Mixture of Prototypes" (PALM), ICLR 2024 (code: github.com/jeff024/PALM,
      ``util/loss_functions.py``).
    """
    momentum = _momentum(momentum)
    x = _unit_features(features)
    p = _prototypes(prototypes, x.shape[1])
    y, _ = v.labels(labels, "labels", x.shape[0], p.shape[0], "prototypes.shape[0]")
    top_k = _top_k(top_k)
    eps, n_iter = _codes_args(epsilon, n_iter)
    return _update_prototypes_core(p, x, y, momentum, eps, n_iter=n_iter, top_k=top_k)


@_jit("n_iter", "top_k")
def _update_prototypes_core(p, x, y, momentum, epsilon, *, n_iter, top_k):
    z = _unit(x)
    p = _unit_protos(p, z.dtype)
    w_own, _ = _class_weights(_palm_codes(jax.lax.stop_gradient(z), jax.lax.stop_gradient(p),
                                          epsilon, n_iter), y, top_k)
    return _ema_update(p, z, y, w_own, momentum)


# --------------------------------------------------------------------------------------------
# MixOE (Zhang et al., WACV 2023): ID / outlier mixtures with linearly decaying targets
# --------------------------------------------------------------------------------------------

def _unit_interval(lam, name):
    if isinstance(lam, (int, float)) and not isinstance(lam, bool):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1], got {lam}.")
        return lam
    arr = checks.as_float_array(lam, name)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
    return checks.ensure(arr, ~((arr >= 0) & (arr <= 1)), f"`{name}` must lie in [0, 1].")


def mixoe_mix(
    key: Array,
    x_in: Float[ArrayLike, "n ..."],
    x_out: Float[ArrayLike, "n ..."],
    *,
    alpha: float = 1.0,
    mode: str = "mixup",
    spatial_axes: tuple[int, int] = (-2, -1),
) -> tuple[Array, Float[Array, ""]]:
    r"""The mixed inputs of Mixture Outlier Exposure (MixOE) and their ID fraction $\lambda$.

    One $\lambda_0 \sim \mathrm{Beta}(\alpha, \alpha)$ per batch (as in the reference code).

    * ``mode="mixup"``: $\tilde x = \lambda x_\mathrm{in} + (1-\lambda) x_\mathrm{out}$ with
      $\lambda = \lambda_0$.
    * ``mode="cutmix"``: an outlier patch is pasted into every ID sample (the same box for
      the batch): with $W, H$ the sizes of ``spatial_axes``, the box has sides
      $\lfloor W\sqrt{1-\lambda_0}\rfloor$ and $\lfloor H\sqrt{1-\lambda_0}\rfloor$ centred
      at a uniform pixel and clipped to the image, and
      $\lambda = 1 - \text{box area} / (WH)$ is the exact fraction of ID pixels.

    Train with [`mixoe_loss`][jaxclust.ood.mixoe_loss] on the logits of ``x_in`` and of
    the mixed batch.

    Args:
      key: a PRNG key.
      x_in: a batch of ID inputs ``(n, ...)``.
      x_out: a batch of auxiliary outliers of the same shape.
      alpha: the Beta parameter $\alpha > 0$ (reference default 1).
      mode: ``"mixup"`` or ``"cutmix"`` (static).
      spatial_axes: the two image axes of each input for ``"cutmix"``, counted on the
        batched array (default the last two: ``(n, C, H, W)``; ``(1, 2)`` for NHWC).

    Returns:
      ``(mixed, lam)``: the mixed batch (shape of ``x_in``) and the scalar $\lambda$.

    Raises:
      ValueError: shapes differ, NaN/Inf, ``alpha <= 0``, unknown ``mode``, bad axes.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.ood import mixoe_mix
      >>> mixed, lam = mixoe_mix(jax.random.key(0), jnp.ones((2, 3)), jnp.zeros((2, 3)))
      >>> bool(jnp.allclose(mixed, lam))
      True

    References:
      Zhang, Inkawhich, Linderman, Chen, Li, "Mixture Outlier Exposure: Towards
      Out-of-Distribution Detection in Fine-grained Environments", WACV 2023.
    """
    key = checks.check_key(key)
    xi = checks.as_float_array(x_in, "x_in")
    xo = checks.as_float_array(x_out, "x_out")
    if xi.ndim < 1 or xi.shape[0] < 1:
        raise ValueError(f"`x_in` must be a batch (n, ...) with n >= 1, got shape {xi.shape}.")
    if xi.shape != xo.shape:
        raise ValueError(f"`x_in` and `x_out` must have the same shape (one outlier per ID "
                         f"sample), got {tuple(xi.shape)} and {tuple(xo.shape)}.")
    if mode not in ("mixup", "cutmix"):
        raise ValueError(f"`mode` must be 'mixup' or 'cutmix', got {mode!r}.")
    alpha = checks.check_positive_scalar(alpha, "alpha")
    xi = checks.check_finite(xi, "x_in")
    xo = checks.check_finite(xo, "x_out")
    ax = None
    if mode == "cutmix":
        try:
            ax = tuple(sorted({a % xi.ndim for a in spatial_axes}))
        except (TypeError, ZeroDivisionError) as err:
            raise ValueError(f"`spatial_axes` must be two axes of `x_in`, got "
                             f"{spatial_axes}.") from err
        if len(ax) != 2 or 0 in ax or any(not -xi.ndim <= a < xi.ndim for a in spatial_axes):
            raise ValueError(f"`spatial_axes` must be two distinct non-batch axes of `x_in` "
                             f"(ndim {xi.ndim}), got {spatial_axes}.")
    return _mixoe_mix_core(key, xi, xo, _num(alpha), ax=ax)


@_jit("ax")
def _mixoe_mix_core(key, xi, xo, alpha, *, ax):
    """``ax``: the two sorted spatial axes of ``"cutmix"``, ``None`` for ``"mixup"``."""
    dt = jnp.promote_types(jnp.result_type(xi, xo), jnp.float32)
    k_lam, k_x, k_y = jax.random.split(key, 3)
    lam0 = jax.random.beta(k_lam, alpha, alpha, dtype=jnp.float32)
    if ax is None:
        lam = lam0.astype(dt)
        return (lam * xi + (1 - lam) * xo).astype(jnp.result_type(xi, xo)), lam
    w, h = xi.shape[ax[0]], xi.shape[ax[1]]
    cut = jnp.sqrt(1.0 - lam0)
    cut_w = jnp.floor(w * cut).astype(jnp.int32)
    cut_h = jnp.floor(h * cut).astype(jnp.int32)
    cx = jax.random.randint(k_x, (), 0, w)
    cy = jax.random.randint(k_y, (), 0, h)
    x1, x2 = jnp.clip(cx - cut_w // 2, 0, w), jnp.clip(cx + cut_w // 2, 0, w)
    y1, y2 = jnp.clip(cy - cut_h // 2, 0, h), jnp.clip(cy + cut_h // 2, 0, h)
    iw, ih = jnp.arange(w), jnp.arange(h)
    box = (((iw >= x1) & (iw < x2))[:, None] & ((ih >= y1) & (ih < y2))[None, :])
    shape = [1] * xi.ndim
    shape[ax[0]], shape[ax[1]] = w, h
    mixed = jnp.where(box.reshape(shape), xo, xi)
    lam = (1.0 - ((x2 - x1) * (y2 - y1)).astype(dt) / (w * h)).astype(dt)
    return mixed, lam


def mixoe_loss(
    logits_in: Float[ArrayLike, "n k"],
    labels_in: Int[ArrayLike, " n"],
    logits_mixed: Float[ArrayLike, "n k"],
    lam: Float[ArrayLike, ""],
    *,
    weight: float = 1.0,
) -> Float[Array, ""]:
    r"""Mixture Outlier Exposure: cross-entropy on ID data plus a soft cross-entropy on the
    ID / outlier mixtures towards targets that decay linearly from the label to uniform,

    $$
        \mathcal{L} = \mathrm{CE}(f(x_\mathrm{in}), y) + \beta\,\frac1n\sum_i
        -\sum_j t_{ij}\log\operatorname{softmax}(f(\tilde x_i))_j,\qquad
        t_i = \lambda\,e_{y_i} + (1-\lambda)\,\tfrac1k\mathbf 1,
    $$

    with $\tilde x_i$ and $\lambda$ from [`mixoe_mix`][jaxclust.ood.mixoe_mix] (the
    mixture of ``x_in[i]`` with an outlier, so its target uses the label ``labels_in[i]``).

    Args:
      logits_in: logits of the ID batch ``(n, k)``.
      labels_in: its labels ``(n,)``.
      logits_mixed: logits of the mixed batch ``(n, k)``.
      lam: the ID fraction $\lambda \in [0, 1]$ returned by ``mixoe_mix``.
      weight: $\beta \ge 0$ (reference default 1).

    Returns:
      The scalar loss.

    Raises:
      ValueError: bad shapes or labels, NaN/Inf, ``lam`` outside [0, 1], ``weight < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import mixoe_loss
      >>> z = jnp.zeros((1, 4))   # uniform predictions: both terms are log 4
      >>> round(float(mixoe_loss(z, jnp.array([0]), z, 0.3)), 4)
      2.7726

    References:
      Zhang et al., "Mixture Outlier Exposure", WACV 2023; reference code
      github.com/zjysteven/MixOE ``train/train_mixoe.py``.
    """
    zi, y = _labelled(logits_in, labels_in, "logits_in", "labels_in")
    zm = _logits(logits_mixed, "logits_mixed")
    if zm.shape != zi.shape:
        raise ValueError(f"`logits_mixed` must have the shape of `logits_in` {zi.shape} (one "
                         f"mixture per ID sample), got {zm.shape}.")
    if isinstance(weight, (int, float)) and not isinstance(weight, bool):
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"`weight` must be a finite number >= 0, got {weight}.")
    else:
        weight = checks.ensure(jnp.asarray(weight), ~(jnp.isfinite(jnp.asarray(weight))
                                                      & (jnp.asarray(weight) >= 0)),
                               "`weight` must be a finite number >= 0.")
    lam = _unit_interval(lam, "lam")
    return _mixoe_loss_core(zi, y, zm, _num(lam), _num(weight))


@_jit()
def _mixoe_loss_core(zi, y, zm, lam, weight):
    zi, zm = _cast(zi), _cast(zm)
    k = zi.shape[1]
    target = lam * jax.nn.one_hot(y, k, dtype=zm.dtype) + (1 - lam) / k
    soft_ce = -jnp.mean(jnp.sum(target * jax.nn.log_softmax(zm, axis=1), axis=1))
    return _nll(zi, y) + weight * soft_ce


# --------------------------------------------------------------------------------------------
# CLIPN (Wang et al., ICCV 2023): "no" text embeddings, two losses, two inference rules
# --------------------------------------------------------------------------------------------

@with_summary_repr
class CLIPNLosses(NamedTuple):
    """The three CLIPN training terms (scalars); ``total`` is the reference's objective.

    Attributes:
      binary_yes: image-text binary-opposite loss on matched pairs,
        $-\\frac1N\\sum_i \\log p^\\mathrm{yes}_{ii}$.
      binary_no: the same on unmatched pairs,
        $-\\frac1{N^2-N}\\sum_{i\\ne j} \\log p^\\mathrm{no}_{ij}$.
      semantic_opposite: text semantic-opposite loss,
        $\\frac1N\\sum_i 2 - \\sqrt{\\lVert t_i - t^\\mathrm{no}_i\\rVert^2 + 10^{-4}}$.
    """

    binary_yes: Array
    binary_no: Array
    semantic_opposite: Array

    @property
    def total(self) -> Array:
        """$\\tfrac12$ (binary_yes + binary_no + semantic_opposite), as in the reference."""
        return 0.5 * (self.binary_yes + self.binary_no + self.semantic_opposite)


@with_summary_repr
class CLIPNDecision(NamedTuple):
    """A threshold-free CLIPN inference: an ID score (higher = more ID) and the decision.

    Attributes:
      score: ``(n,)`` the rule's ID score.
      is_id: ``(n,)`` booleans, the rule's threshold-free decision.
    """

    score: Array
    is_id: Array


def _unit_rows(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clipn_losses(
    image_features: Float[ArrayLike, "n d"],
    text_features: Float[ArrayLike, "n d"],
    text_features_no: Float[ArrayLike, "n d"],
    *,
    logit_scale: float = 100.0,
) -> CLIPNLosses:
    r"""CLIPN's image-text binary-opposite and text semantic-opposite losses on a batch of
    ``n`` matched (image, text) pairs, with a "no" text embedding per text.

    Rows are normalised to unit length (as the CLIP encoders do). With
    $s_{ij} = \sigma\langle v_i, t_j\rangle$ and $s^\mathrm{no}_{ij} =
    \sigma\langle v_i, t^\mathrm{no}_j\rangle$ ($\sigma$ = ``logit_scale``), the
    "yes" probability of pair $(i, j)$ is the softmax over {yes, no},
    $p^\mathrm{yes}_{ij} = 1/(1 + e^{s^\mathrm{no}_{ij} - s_{ij}})$: matched pairs are pushed
    to "yes", unmatched pairs to "no", and each "no" text away from its text
    (see [`CLIPNLosses`][jaxclust.ood.CLIPNLosses]). Works with any embedding pair
    (image/text, or two views).

    Args:
      image_features: ``(n, d)`` image embeddings.
      text_features: ``(n, d)`` the matched text embeddings.
      text_features_no: ``(n, d)`` their "no"-prompt embeddings.
      logit_scale: $\sigma > 0$ (CLIP's learned scale, clamped at 100 in the reference).

    Returns:
      A [`CLIPNLosses`][jaxclust.ood.CLIPNLosses]; ``.total`` is the training loss.

    Raises:
      ValueError: shapes differ, ``n < 2``, NaN/Inf, ``logit_scale <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import clipn_losses
      >>> e = jnp.eye(3)
      >>> out = clipn_losses(e, e, -e, logit_scale=10.0)
      >>> round(float(out.semantic_opposite), 4)   # "no" texts opposite: 2 - sqrt(4 + 1e-4)
      -0.0
      >>> round(float(out.binary_yes), 4)          # yes - no logits = 20: log(1 + e^-20)
      0.0

    References:
      Wang, Li, Yao, Li, "CLIPN for Zero-Shot OOD Detection: Teaching CLIP to Say No",
      ICCV 2023; reference code github.com/xmed-lab/CLIPN ``src/open_clip/loss.py``.
    """
    v_ = _logits(image_features, "image_features")
    t = _logits(text_features, "text_features")
    tn = _logits(text_features_no, "text_features_no")
    for arr, name in ((t, "text_features"), (tn, "text_features_no")):
        if arr.shape != v_.shape:
            raise ValueError(f"`{name}` must have the shape of `image_features` {v_.shape} "
                             f"(matched pairs), got {arr.shape}.")
    n = v_.shape[0]
    if n < 2:
        raise ValueError(f"`image_features` needs at least 2 pairs (unmatched pairs give the "
                         f"'no' term), got {n}.")
    scale = checks.check_positive_scalar(logit_scale, "logit_scale")
    return CLIPNLosses(*_clipn_losses_core(v_, t, tn, _num(scale)))


@_jit()
def _clipn_losses_core(v_, t, tn, scale):
    n = v_.shape[0]
    v_, t, tn = _unit_rows(_cast(v_)), _unit_rows(_cast(t)), _unit_rows(_cast(tn))
    yes = scale * jnp.matmul(v_, t.T, precision=_PREC)
    no = scale * jnp.matmul(v_, tn.T, precision=_PREC)
    eye = jnp.eye(n, dtype=bool)
    # -log p_yes = softplus(no - yes), -log p_no = softplus(yes - no)
    loss_yes = jnp.sum(jnp.where(eye, jax.nn.softplus(no - yes), 0.0)) / n
    loss_no = jnp.sum(jnp.where(eye, 0.0, jax.nn.softplus(yes - no))) / (n * n - n)
    dist = jnp.maximum(2.0 - 2.0 * jnp.sum(t * tn, axis=1), 0.0) + 1e-4
    tso = jnp.mean(2.0 - jnp.sqrt(dist))
    return loss_yes, loss_no, tso


def _yes_no(logits, logits_no):
    """The validated ``(logits, logits_no)``."""
    z = _logits(logits, "logits")
    zn = _logits(logits_no, "logits_no")
    if zn.shape != z.shape:
        raise ValueError(f"`logits_no` must have the shape of `logits` {z.shape}, got "
                         f"{zn.shape}.")
    return z, zn


def _p_yes(z, zn):
    z, zn = _cast(z), _cast(zn)
    return z, jax.nn.sigmoid(z - zn)


@_jit()
def _clipn_ctw_core(z, zn):
    z, p_yes = _p_yes(z, zn)
    score = jnp.take_along_axis(p_yes, jnp.argmax(z, axis=1)[:, None], axis=1)[:, 0]
    return score, score >= 0.5


@_jit()
def _clipn_atd_core(z, zn):
    z, p_yes = _p_yes(z, zn)
    joint = p_yes * jax.nn.softmax(z, axis=1)
    score = jnp.sum(joint, axis=1)
    return score, jnp.max(joint, axis=1) > 1.0 - score


def clipn_ctw(logits: Float[ArrayLike, "n k"], logits_no: Float[ArrayLike, "n k"]
              ) -> CLIPNDecision:
    r"""CLIPN's "competing-to-win" (CTW) inference: the "yes" probability of the predicted
    class, $p^\mathrm{yes}_{i\hat y_i}$ with $\hat y_i = \arg\max_j f_{ij}$ and
    $p^\mathrm{yes}_{ij} = \operatorname{softmax}(f_{ij}, f^\mathrm{no}_{ij})_\mathrm{yes}$;
    the sample is ID unless its "no" wins, i.e. ``is_id = score >= 1/2``.

    Args:
      logits: ``(n, k)`` image-to-class-prompt logits $f_{ij} = \sigma\langle v_i, t_j\rangle$.
      logits_no: ``(n, k)`` image-to-"no"-prompt logits.

    Returns:
      A [`CLIPNDecision`][jaxclust.ood.CLIPNDecision] (score higher = more ID).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import clipn_ctw
      >>> out = clipn_ctw(jnp.array([[5.0, 1.0], [5.0, 1.0]]), jnp.array([[3.0, 0.0], [7.0, 0.0]]))
      >>> out.is_id.tolist()
      [True, False]

    References:
      Wang et al., "CLIPN", ICCV 2023; reference code github.com/xmed-lab/CLIPN
      ``src/zero_shot_infer.py``.
    """
    return CLIPNDecision(*_clipn_ctw_core(*_yes_no(logits, logits_no)))


def clipn_atd(logits: Float[ArrayLike, "n k"], logits_no: Float[ArrayLike, "n k"]
              ) -> CLIPNDecision:
    r"""CLIPN's "agreeing-to-differ" (ATD) inference. With $p_{ij} =
    \operatorname{softmax}_j(f_{ij})$ and $p^\mathrm{yes}_{ij}$ as in
    [`clipn_ctw`][jaxclust.ood.clipn_ctw], the ID score is
    $\sum_j p^\mathrm{yes}_{ij}\,p_{ij}$; OOD is an extra class of probability
    $p_{i,k+1} = 1 - \sum_j p^\mathrm{yes}_{ij} p_{ij}$, and the sample is ID when some class
    beats it: ``is_id = max_j p_yes_ij p_ij > p_{i,k+1}``.

    Args:
      logits: ``(n, k)`` image-to-class-prompt logits.
      logits_no: ``(n, k)`` image-to-"no"-prompt logits.

    Returns:
      A [`CLIPNDecision`][jaxclust.ood.CLIPNDecision].

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import clipn_atd
      >>> out = clipn_atd(jnp.array([[9.0, 0.0], [9.0, 0.0]]), jnp.array([[0.0, 0.0], [12.0, 0.0]]))
      >>> out.is_id.tolist()
      [True, False]

    References:
      Wang et al., "CLIPN", ICCV 2023; reference code github.com/xmed-lab/CLIPN
      ``src/zero_shot_infer.py``.
    """
    return CLIPNDecision(*_clipn_atd_core(*_yes_no(logits, logits_no)))
