r"""Post-hoc out-of-distribution scores.

**Convention: every score is higher for more in-distribution (ID) inputs.** Threshold it
(``score < t`` flags OOD) or pass it to [`jaxclust.metrics.detection`][jaxclust.metrics.detection]
with labels 1 = ID, 0 = OOD. Scores are per sample, shape ``(n,)``; all are pure, jittable
and vmappable, and differentiable in their inputs where the formula is (those built on a max,
a top-k or a threshold are piecewise smooth), so they can be used inside losses.

Logits are ``(n, k)``; features are the penultimate activations ``(n, d)``; the classifier's
last layer is ``logits = features @ weight + bias`` with ``weight`` of shape ``(d, k)``.
Statistics are fitted on ID data by the ``fit_*`` functions of [`jaxclust.ood`][jaxclust.ood].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float

from .._core import checks
from .._core.costs import safe_sqrt
from .._core.groups import grouped_row_min
from ..ot.entropic import sinkhorn
from . import _validate as v
from .fit import KNNStats, MahalanobisStats, PrototypeStats, ReActStats, ViMStats, _head

__all__ = [
    "ablated_energy",
    "ash",
    "energy",
    "gen",
    "knn",
    "mahalanobis",
    "max_logit",
    "msp",
    "odin",
    "react",
    "relative_mahalanobis",
    "sinkhorn_score",
    "vim",
]

_PREC = jax.lax.Precision.HIGHEST
ASH_VARIANTS = ("p", "b", "s")


def _logits(logits, name="logits"):
    z = v.matrix(logits, name, "(n, k)")
    return z.astype(v.compute_dtype(z))


def _features(features, name="features"):
    x = v.matrix(features, name, "(n, d)")
    return x.astype(v.compute_dtype(x))


def _energy(z, t, culprit="logits"):
    # under jit XLA may fuse z / t into the log-sum-exp with a multiply-add that rounds it
    # differently from the max (logits ~1e20 give +-inf): an error naming the input instead
    return v.finite_result(_energy_of(z, t), culprit, "The energy")


# Each score's arithmetic is one module-level jitted program (its inputs checked before, on
# the host where they are concrete, and its output after): a first eager call compiles one
# XLA program instead of one per jax.numpy operation (15-50 of them, 0.6-2.5 s, before),
# and later calls with the same shapes none. Under an outer jit / vmap / grad these
# programs are inlined into the caller's.

@jax.jit
def _energy_of(z, t):
    return t * logsumexp(z / t, axis=1)


_logsumexp_rows = jax.jit(partial(logsumexp, axis=1))


@jax.jit
def _msp(z, t):
    return jnp.exp(-logsumexp((z - jnp.max(z, axis=1, keepdims=True)) / t, axis=1))


@partial(jax.jit, static_argnames=("m",))
def _gen(z, gamma, m):
    logp = jax.nn.log_softmax(z, axis=1)
    if m < z.shape[1]:
        logp = jax.lax.top_k(logp, m)[0]
    # p^g (1 - p)^g in logs, log(1 - p) = log(-expm1(log p)): accurate for p near 1; the
    # clip keeps it finite (and its gradient) when p rounds to 1
    log1mp = jnp.log(-jnp.expm1(jnp.minimum(logp, -1e-12)))
    return -jnp.sum(jnp.exp(gamma * (logp + log1mp)), axis=1)


# ------------------------------------------------------------------------------------------
# logit-based scores


def msp(logits: Float[ArrayLike, "n k"], *, temperature: float | Float[Array, ""] = 1.0
        ) -> Float[Array, " n"]:
    r"""Maximum softmax probability (higher = more in-distribution).

    $$ s(x) = \max_j \operatorname{softmax}(f(x)/T)_j = 1 \Big/ \sum_j e^{(f_j - \max f)/T}. $$

    Args:
      logits: ``(n, k)``.
      temperature: $T > 0$ (1 is the baseline of Hendrycks & Gimpel; ODIN uses 1000).

    Returns:
      ``(n,)`` scores in $[1/k, 1]$.

    Raises:
      ValueError: logits not 2-D or with NaN/Inf, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import msp
      >>> msp(jnp.array([[2.0, 0.0], [0.0, 0.0]])).round(4).tolist()
      [0.8808, 0.5]

    References:
      Hendrycks and Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
      Examples in Neural Networks", ICLR 2017.
    """
    z = _logits(logits)
    t = v.temperature(temperature)
    return _msp(z, t)


def max_logit(logits: Float[ArrayLike, "n k"]) -> Float[Array, " n"]:
    r"""Maximum logit, $s(x) = \max_j f_j(x)$ (higher = more in-distribution).

    Args:
      logits: ``(n, k)``.

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: logits not 2-D or with NaN/Inf.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import max_logit
      >>> max_logit(jnp.array([[2.0, 0.0], [0.0, 1.0]])).tolist()
      [2.0, 1.0]

    References:
      Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World Settings",
      ICML 2022.
    """
    return _max_logit(_logits(logits))


_max_logit = jax.jit(lambda z: jnp.max(z, axis=1))


def energy(logits: Float[ArrayLike, "n k"], *, temperature: float | Float[Array, ""] = 1.0
           ) -> Float[Array, " n"]:
    r"""Negative free energy (higher = more in-distribution).

    $$ s(x) = -E(x; f) = T \log \sum_j e^{f_j(x)/T}, $$

    computed with a stable log-sum-exp; it upper-bounds the max logit by at most
    $T\log k$.

    Args:
      logits: ``(n, k)``.
      temperature: $T > 0$ (the paper uses 1).

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: logits not 2-D or with NaN/Inf, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import energy
      >>> energy(jnp.array([[0.0, 0.0], [10.0, -10.0]])).round(4).tolist()
      [0.6931, 10.0]

    References:
      Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020.
    """
    z = _logits(logits)
    t = v.temperature(temperature)
    return _energy(z, t)


def gen(logits: Float[ArrayLike, "n k"], *, gamma: float = 0.1, m: int | None = None
        ) -> Float[Array, " n"]:
    r"""Generalised entropy score GEN (higher = more in-distribution).

    With $p = \operatorname{softmax}(f)$ and $p_{(1)} \ge p_{(2)} \ge \dots$ its sorted
    entries,

    $$ s(x) = -\sum_{j=1}^{M} p_{(j)}^{\gamma}\,(1 - p_{(j)})^{\gamma}, $$

    a generalised (Tsallis-like) entropy of the top-$M$ probabilities, negated.

    Args:
      logits: ``(n, k)``.
      gamma: $\gamma \in (0, 1)$; the paper uses 0.1.
      m: number $M$ of top probabilities (static), default all $k$ (the paper uses
        $M = 100$ on ImageNet-1k, and all classes on small label sets).

    Returns:
      ``(n,)`` scores, in $[-M\,4^{-\gamma}, 0]$.

    Raises:
      ValueError: logits not 2-D or with NaN/Inf, ``gamma`` outside (0, 1), ``m`` outside
        ``[1, k]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import gen
      >>> gen(jnp.array([[8.0, 0.0, 0.0], [0.0, 0.0, 0.0]])).round(3).tolist()
      [-1.38, -2.581]

    References:
      Liu, Lochman, Zach, "GEN: Pushing the Limits of Softmax-Based Out-of-Distribution
      Detection", CVPR 2023.
    """
    z = _logits(logits)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
        raise ValueError(f"`gamma` must be a number in (0, 1), got {gamma!r}.")
    k = z.shape[1]
    m = k if m is None else v.static_int(m, "m", 1, k, "M counts the top probabilities.")
    return _gen(z, gamma, m)


def odin(
    fn: Callable[[Array], Array],
    x: Float[ArrayLike, "n ..."],
    *,
    temperature: float | Float[Array, ""] = 1000.0,
    epsilon: float | Float[Array, ""] = 0.0014,
) -> Float[Array, " n"]:
    r"""ODIN: temperature-scaled MSP after a small input perturbation (higher = more ID).

    With $\hat y = \arg\max_j f_j(x)$ and $S_{\hat y}(x; T)$ the softmax probability of
    $f(x)/T$ at $\hat y$, the input moves by $\varepsilon$ in the direction that increases
    it, then the temperature-scaled MSP is read:

    $$
        \tilde x = x - \varepsilon\,\operatorname{sign}\!\big(-\nabla_x \log S_{\hat y}(x; T)\big),
        \qquad s(x) = \max_j \operatorname{softmax}(f(\tilde x)/T)_j .
    $$

    The gradient is taken with ``jax.grad`` of the summed log-probabilities (one
    backward pass for the batch; ``fn`` must treat samples independently, e.g. a model in
    inference mode).

    Args:
      fn: the model, ``x -> logits`` of shape ``(n, k)``.
      x: a batch of inputs, leading axis ``n``.
      temperature: $T > 0$ (the paper uses 1000).
      epsilon: perturbation size $\varepsilon \ge 0$, in the units of ``x``
        (0 gives temperature scaling alone).

    Returns:
      ``(n,)`` scores in $[1/k, 1]$.

    Raises:
      ValueError: ``x`` with no batch axis or NaN/Inf, logits not ``(n, k)``,
        ``temperature <= 0``, ``epsilon < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import odin
      >>> w = jnp.array([[1.0, -1.0], [0.5, 0.5]])
      >>> odin(lambda x: x @ w, jnp.array([[1.0, 0.0]]), temperature=1.0,
      ...      epsilon=0.1).round(4).tolist()
      [0.9002]

    References:
      Liang, Li, Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection
      in Neural Networks", ICLR 2018.
    """
    if not callable(fn):
        raise ValueError(f"`fn` must be a callable x -> logits, got {type(fn).__name__}.")
    x = checks.as_float_array(x, "x")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"`x` must have a leading batch axis with at least one sample, got "
                         f"shape {tuple(x.shape)}.")
    x = checks.check_finite(x, "x")
    t = v.temperature(temperature)
    if isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool):
        if not epsilon >= 0:
            raise ValueError(f"`epsilon` must be >= 0, got {epsilon}.")
    else:
        epsilon = checks.ensure(jnp.asarray(epsilon), ~(jnp.asarray(epsilon) >= 0),
                                "`epsilon` must be >= 0.")

    def logits_of(u):
        try:
            z = jnp.asarray(fn(u))
        except ValueError as err:  # the model's own error (e.g. a shape it cannot take)
            raise ValueError(f"`fn` failed on `x` of shape {tuple(x.shape)}: {err}. `x` must "
                             "be a batch the model accepts.") from err
        if z.ndim != 2 or z.shape[0] != x.shape[0]:
            raise ValueError(f"`fn` must return logits of shape (n, k) with n = {x.shape[0]}, "
                             f"got shape {tuple(z.shape)}.")
        return z.astype(v.compute_dtype(z))

    try:
        z0 = logits_of(x)
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's model failed on x
        raise ValueError(f"`fn` failed on `x` of shape {tuple(x.shape)}: {err}. `x` must be "
                         "a batch the model accepts (leading axis n).") from err
    label = jax.lax.stop_gradient(jnp.argmax(z0, axis=1))

    def log_prob(u):
        logp = jax.nn.log_softmax(logits_of(u) / t, axis=1)
        return jnp.sum(jnp.take_along_axis(logp, label[:, None], axis=1))

    g = jax.grad(log_prob)(x)
    x_tilde = x + jnp.asarray(epsilon, x.dtype) * jax.lax.stop_gradient(jnp.sign(g))
    return msp(logits_of(x_tilde), temperature=t)


# ------------------------------------------------------------------------------------------
# feature-based scores


def _sq_mahalanobis(x, means, precision):
    """``(n, k)``: squared Mahalanobis distances of each row of ``x`` to each mean."""
    diff = x[:, None, :] - means[None, :, :]
    return jnp.einsum("nkd,de,nke->nk", diff, precision, diff, precision=_PREC)


def _min_sq_mahalanobis(x, means, precision):
    """``min_c (x_i - mu_c)^T P (x_i - mu_c)``, shape ``(n,)``, from exactly centred
    differences, for groups of classes in turn past ``n k d`` = 2^22 entries (at n = 10,000,
    d = 512, k = 100, CIFAR-100-sized features, every difference at once took 6.1 GB of
    temporaries; see ``_core.groups``)."""
    return grouped_row_min(lambda x, mu: _sq_mahalanobis(x, mu, precision), x, means)


@jax.jit
def _mahalanobis(x, means, precision):
    return -_min_sq_mahalanobis(x, means.astype(x.dtype), precision.astype(x.dtype))


@jax.jit
def _relative_mahalanobis(x, stats):
    d2 = _min_sq_mahalanobis(x, stats.means.astype(x.dtype), stats.precision.astype(x.dtype))
    d0 = _sq_mahalanobis(x, stats.mean[None, :].astype(x.dtype),
                         stats.background_precision.astype(x.dtype))[:, 0]
    return -(d2 - d0)  # = -min_c (d2_c - d0): subtracting d0 keeps the order and rounding


def _check_stats(x, stats, kind):
    """``stats`` with its floating fields checked finite (named ``stats.<field>``)."""
    if not isinstance(stats, kind):
        raise ValueError(f"`stats` must be a {kind.__name__} (from fit_"
                         f"{kind.__name__[:-5].lower()}), got {type(stats).__name__}.")
    fields = {}
    for name, val in stats._asdict().items():
        arr = jnp.asarray(val)
        if jnp.issubdtype(arr.dtype, jnp.inexact):
            arr = checks.check_finite(arr, f"stats.{name}")
        fields[name] = arr
    return kind(**fields)


def mahalanobis(features: Float[ArrayLike, "n d"], stats: MahalanobisStats
                ) -> Float[Array, " n"]:
    r"""Mahalanobis score (higher = more in-distribution).

    $$ s(x) = -\min_c\,(x - \mu_c)^\top \Sigma^{-1} (x - \mu_c), $$

    with the class means and tied precision of
    [`fit_mahalanobis`][jaxclust.ood.fit_mahalanobis] (no input pre-processing).

    Args:
      features: ``(n, d)``.
      stats: a [`MahalanobisStats`][jaxclust.ood.MahalanobisStats].

    Returns:
      ``(n,)`` scores, $\le 0$.

    Raises:
      ValueError: features not 2-D, with NaN/Inf, or of another width than the statistics.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_mahalanobis, mahalanobis
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [4.0, 4.0], [5.0, 4.0], [4.0, 5.0]])
      >>> st = fit_mahalanobis(x, jnp.array([0, 0, 0, 1, 1, 1]))
      >>> mahalanobis(jnp.array([[0.5, 0.5], [4.0, -4.0]]), st).round(2).tolist()
      [-0.5, -98.0]

    References:
      Lee, Lee, Lee, Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
      Samples and Adversarial Attacks", NeurIPS 2018.
    """
    stats = _check_stats(features, stats, MahalanobisStats)
    x = _features(features)
    v.features_match(x, stats.means.shape[1], "features", "the fitted statistics")
    return v.finite_result(_mahalanobis(x, stats.means, stats.precision), "features",
                           "The Mahalanobis score")


def relative_mahalanobis(features: Float[ArrayLike, "n d"], stats: MahalanobisStats
                         ) -> Float[Array, " n"]:
    r"""Relative Mahalanobis score (higher = more in-distribution).

    The class distances minus the distance to the class-agnostic background Gaussian
    $\mathcal{N}(\mu_0, \Sigma_0)$:

    $$
        s(x) = -\min_c \big[(x - \mu_c)^\top \Sigma^{-1} (x - \mu_c)
                        - (x - \mu_0)^\top \Sigma_0^{-1} (x - \mu_0)\big].
    $$

    Args:
      features: ``(n, d)``.
      stats: a [`MahalanobisStats`][jaxclust.ood.MahalanobisStats].

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: as [`mahalanobis`][jaxclust.ood.mahalanobis].

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_mahalanobis, relative_mahalanobis
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [4.0, 4.0], [5.0, 4.0], [4.0, 5.0]])
      >>> st = fit_mahalanobis(x, jnp.array([0, 0, 0, 1, 1, 1]))
      >>> relative_mahalanobis(x[:3], st).shape
      (3,)

    References:
      Ren, Fort, Liu, Roy, Padhy, Lakshminarayanan, "A Simple Fix to Mahalanobis Distance
      for Improving Near-OOD Detection", 2021.
    """
    stats = _check_stats(features, stats, MahalanobisStats)
    x = _features(features)
    v.features_match(x, stats.means.shape[1], "features", "the fitted statistics")
    return v.finite_result(_relative_mahalanobis(x, stats), "features",
                           "The relative Mahalanobis score")


def knn_queries(x, m: int, d: int, k, chunk_size):
    """The shape and option checks of the KNN score and its unit-norm queries
    (package-internal; shared with the sharded score of ``jaxclust.distributed``).

    ``x`` is a float ``(n, d')`` array, ``(m, d)`` the bank's shape; returns
    ``(x / |x|, k, chunk_size)`` with ``k`` and ``chunk_size`` checked Python ints."""
    k, chunk_size = _knn_options(x, m, d, k, chunk_size)
    return v.normalize(x), k, chunk_size


def _knn_options(x, m: int, d: int, k, chunk_size):
    v.features_match(x, d, "features", "the bank")
    k = v.static_int(k, "k", 1, m, f"k may not exceed the bank size m = {m}; use a larger "
                     "bank or a smaller k.")
    if chunk_size is not None:
        chunk_size = v.static_int(chunk_size, "chunk_size", 1)
    return k, chunk_size


def top_similarities(z, bank, k, chunk_size, valid=None):
    """The ``k`` largest ``z @ bank.T`` per row, in descending order, ``(n, k)`` (package-
    internal kernel, shared with the sharded score); bank rows
    with ``valid`` False are ignored (the sharded KNN score masks its padding this way).
    With ``chunk_size`` the bank is scanned in blocks keeping a running top-k."""
    m = bank.shape[0]
    if chunk_size is None or chunk_size >= m:
        sims = jnp.matmul(z, bank.T, precision=_PREC)
        if valid is not None:
            sims = jnp.where(valid[None, :], sims, -jnp.inf)
        return jax.lax.top_k(sims, k)[0]
    n_chunks = -(-m // chunk_size)
    pad = n_chunks * chunk_size - m
    padded = jnp.concatenate([bank, jnp.zeros((pad, bank.shape[1]), bank.dtype)])
    ok = jnp.arange(n_chunks * chunk_size) < m
    if valid is not None:
        ok = ok & jnp.concatenate([valid, jnp.zeros((pad,), bool)])
    blocks = padded.reshape(n_chunks, chunk_size, -1)
    masks = ok.reshape(n_chunks, chunk_size)

    def step(best, block):
        b, ok = block
        sims = jnp.matmul(z, b.T, precision=_PREC)
        sims = jnp.where(ok[None, :], sims, -jnp.inf)
        return jax.lax.top_k(jnp.concatenate([best, sims], axis=1), k)[0], None

    init = jnp.full((z.shape[0], k), -jnp.inf, z.dtype)
    best, _ = jax.lax.scan(step, init, (blocks, masks))
    return best


@partial(jax.jit, static_argnames=("k", "chunk_size"))
def _knn(x, bank, k, chunk_size):
    # one program per shapes and (k, chunk_size): the chunked scan is not rebuilt per call
    z = v.normalize(x)
    kth = top_similarities(z, bank.astype(z.dtype), k, chunk_size)[:, -1]
    return -safe_sqrt(jnp.maximum(2.0 - 2.0 * kth, 0.0))


def knn(
    features: Float[ArrayLike, "n d"],
    stats: KNNStats,
    *,
    k: int = 1,
    chunk_size: int | None = None,
) -> Float[Array, " n"]:
    r"""Deep nearest-neighbour score (higher = more in-distribution).

    With $z = x/\lVert x\rVert$ and the unit-norm bank $\{b_i\}$ of
    [`fit_knn`][jaxclust.ood.fit_knn],

    $$ s(x) = -\lVert z - b_{(k)}(z)\rVert = -\sqrt{2 - 2\,z^\top b_{(k)}(z)}, $$

    minus the distance to the $k$-th nearest bank feature. With ``chunk_size`` the bank is
    scanned in blocks of ``chunk_size`` rows (``lax.scan``) keeping a running top-$k$, so
    memory is ``n x (k + chunk_size)`` instead of ``n x m``; the result is the same.

    Args:
      features: ``(n, d)``.
      stats: a [`KNNStats`][jaxclust.ood.KNNStats] with a bank of ``m >= k`` rows.
      k: rank of the neighbour (static), ``1 <= k <= m`` (the paper uses 50 on CIFAR-10).
      chunk_size: bank rows per block (static), or ``None`` to compare with all at once.

    Returns:
      ``(n,)`` scores in $[-2, 0]$.

    Raises:
      ValueError: features not 2-D / NaN / of the wrong width, ``k`` outside ``[1, m]``,
        ``chunk_size < 1``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_knn, knn
      >>> st = fit_knn(jnp.array([[1.0, 0.0], [0.0, 1.0]]))
      >>> knn(jnp.array([[2.0, 0.0], [-1.0, 0.0]]), st).round(4).tolist()
      [0.0, -1.4142]

    References:
      Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
      ICML 2022.
    """
    stats = _check_stats(features, stats, KNNStats)
    x = _features(features)
    bank = stats.bank
    checks.check_ndim(bank, "stats.bank", 2, "(m, d)")
    k, chunk_size = _knn_options(x, bank.shape[0], bank.shape[1], k, chunk_size)
    return _knn(x, bank, k, chunk_size)


def react(
    features: Float[ArrayLike, "n d"],
    weight: Float[ArrayLike, "d k"],
    bias: Float[ArrayLike, " k"],
    stats: ReActStats,
    *,
    temperature: float | Float[Array, ""] = 1.0,
) -> Float[Array, " n"]:
    r"""ReAct: the energy score of logits recomputed from clipped activations (higher = ID).

    $$ s(x) = T\log\sum_j \exp\!\big(\big[\min(x, c)\,W + b\big]_j / T\big), $$

    where $c$ is the threshold of [`fit_react`][jaxclust.ood.fit_react] (a high percentile of
    ID activations): abnormally large activations, typical of OOD inputs, are clipped.

    Args:
      features: penultimate activations, ``(n, d)``.
      weight: last-layer weight, ``(d, k)``.
      bias: last-layer bias, ``(k,)``.
      stats: a [`ReActStats`][jaxclust.ood.ReActStats].
      temperature: $T > 0$ of the energy.

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: bad shapes, NaN/Inf, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import ReActStats, react
      >>> w, b = jnp.eye(2), jnp.zeros(2)
      >>> react(jnp.array([[0.5, 9.0]]), w, b, ReActStats(jnp.array(1.0))).round(4).tolist()
      [1.4741]

    References:
      Sun, Guo, Li, "ReAct: Out-of-distribution Detection With Rectified Activations",
      NeurIPS 2021.
    """
    stats = _check_stats(features, stats, ReActStats)
    x = _features(features)
    w, b = _head(weight, bias, x.shape[1])
    t = v.temperature(temperature)
    return v.finite_result(_react(x, w, b, stats.threshold, t), "features", "The energy")


@jax.jit
def _react(x, w, b, threshold, t):
    c = jnp.asarray(threshold, x.dtype)
    logits = jnp.matmul(jnp.minimum(x, c), w.astype(x.dtype), precision=_PREC) + b[None, :]
    return _energy_of(logits.astype(x.dtype), t)


def ash(
    features: Float[ArrayLike, "n d"],
    weight: Float[ArrayLike, "d k"],
    bias: Float[ArrayLike, " k"],
    *,
    percentile: float = 90.0,
    variant: str = "s",
    temperature: float | Float[Array, ""] = 1.0,
) -> Float[Array, " n"]:
    r"""ASH: activation shaping, then the energy score (higher = more in-distribution).

    Per sample, the activations below its ``percentile``-th largest are set to zero: the
    $K = d - \lfloor d\,p/100 \rceil$ largest are kept (ties at the $K$-th value are kept
    too). The kept ones are then

    * ``"p"`` (prune): left as they are;
    * ``"b"`` (binarise): all set to $s_1 / K$;
    * ``"s"`` (scale): multiplied by $\exp(s_1 / s_2)$,

    with $s_1$ the sum of all activations and $s_2$ that of the kept ones. The score is the
    energy $T\log\sum_j e^{[a(x) W + b]_j/T}$ of the shaped activations $a(x)$. ASH assumes
    non-negative (post-ReLU) activations.

    Args:
      features: penultimate activations, ``(n, d)``.
      weight: last-layer weight, ``(d, k)``.
      bias: last-layer bias, ``(k,)``.
      percentile: pruning percentile $p \in (0, 100)$ (the paper uses 65-95).
      variant: ``"p"``, ``"b"`` or ``"s"`` (static).
      temperature: $T > 0$ of the energy.

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: bad shapes, NaN/Inf, ``percentile`` outside (0, 100), unknown variant,
        ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import ash
      >>> x = jnp.array([[1.0, 2.0, 3.0, 4.0]])
      >>> ash(x, jnp.eye(4), jnp.zeros(4), percentile=50, variant="p").round(4).tolist()
      [4.3397]

    References:
      Djurisic, Bozanic, Ashok, Liu, "Extremely Simple Activation Shaping for
      Out-of-Distribution Detection", ICLR 2023.
    """
    x = _features(features)
    w, b = _head(weight, bias, x.shape[1])
    p = v.percentile(percentile, low_open=True)
    if variant not in ASH_VARIANTS:
        raise ValueError(f"`variant` must be one of {ASH_VARIANTS}, got {variant!r}.")
    t = v.temperature(temperature)
    d = x.shape[1]
    keep = max(d - int(round(d * p / 100.0)), 1)
    return v.finite_result(_ash(x, w, b, t, keep, variant), "features", "The energy")


@partial(jax.jit, static_argnames=("keep", "variant"))
def _ash(x, w, b, t, keep, variant):
    kth = jax.lax.top_k(x, keep)[0][:, -1:]
    mask = x >= kth
    kept = jnp.where(mask, x, 0.0)
    if variant == "b":
        s1 = jnp.sum(x, axis=1, keepdims=True)
        shaped = jnp.where(mask, s1 / jnp.sum(mask, axis=1, keepdims=True), 0.0)
    elif variant == "s":
        s1 = jnp.sum(x, axis=1, keepdims=True)
        s2 = jnp.sum(kept, axis=1, keepdims=True)
        shaped = kept * jnp.exp(s1 / jnp.where(s2 != 0, s2, 1.0))
    else:
        shaped = kept
    logits = jnp.matmul(shaped, w.astype(x.dtype), precision=_PREC) + b[None, :]
    return _energy_of(logits.astype(x.dtype), t)


def vim(
    features: Float[ArrayLike, "n d"],
    weight: Float[ArrayLike, "d k"],
    bias: Float[ArrayLike, " k"],
    stats: ViMStats,
) -> Float[Array, " n"]:
    r"""ViM, virtual-logit matching (higher = more in-distribution).

    The norm of the feature's residual (outside the principal subspace of ID features),
    scaled to logit units, is a virtual OOD logit; the score is the energy minus it:

    $$
        s(x) = \log\sum_j e^{\ell_j(x)} - \alpha\,\lVert R^\top (x - u)\rVert, \qquad
        \ell(x) = xW + b,
    $$

    with $u$, $R$, $\alpha$ from [`fit_vim`][jaxclust.ood.fit_vim] (the log-odds of the
    real classes against the virtual one).

    Args:
      features: ``(n, d)``.
      weight: last-layer weight, ``(d, k)``.
      bias: last-layer bias, ``(k,)``.
      stats: a [`ViMStats`][jaxclust.ood.ViMStats].

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: bad shapes, NaN/Inf.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_vim, vim
      >>> x = jnp.array([[1.0, 0, 0.1], [0, 1, -0.1], [-1, 0, 0.1], [0, -1, -0.1], [2, 1, 0]])
      >>> w, b = jnp.eye(3, 2), jnp.zeros(2)
      >>> st = fit_vim(x, w, b, dim=2)
      >>> s = vim(jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 3.0]]), w, b, st)
      >>> bool(s[0] > s[1])  # the second leaves the principal plane
      True

    References:
      Wang, Li, Feng, Zhang, "ViM: Out-Of-Distribution with Virtual-logit Matching",
      CVPR 2022.
    """
    stats = _check_stats(features, stats, ViMStats)
    x = _features(features)
    w, b = _head(weight, bias, x.shape[1])
    return v.finite_result(_vim(x, w, b, stats), "features", "The ViM score")


@jax.jit
def _vim(x, w, b, stats):
    logits = jnp.matmul(x, w.astype(x.dtype), precision=_PREC) + b[None, :]
    residual = jnp.matmul(x - stats.origin[None, :].astype(x.dtype),
                          stats.residual_basis.astype(x.dtype), precision=_PREC)
    norm = safe_sqrt(jnp.sum(residual * residual, axis=1))
    return logsumexp(logits, axis=1) - stats.alpha.astype(x.dtype) * norm


def ablated_energy(cos_logits: Float[ArrayLike, "n k"],
                   temperature: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
    r"""AbeT's ablated learned-temperature energy (higher = more in-distribution).

    For a model with cosine logits $h(x)$ and a learned per-sample temperature
    $T(x) > 0$ (trained with [`learned_temperature_loss`][jaxclust.ood.learned_temperature_loss],
    logits $h(x)/T(x)$), the energy score with the temperature factor in front removed:

    $$ s(x) = \log\sum_j e^{h_j(x)/T(x)}, $$

    a stable log-sum-exp, the reference's ``inference_mode == 'ablated_energy'`` score
    ``log(exp(logits).sum(1))`` with ``logits = h / T``. Both a low temperature (confident,
    $T = \sigma(\cdot)$ near 0) and a large cosine logit raise it.

    Args:
      cos_logits: $h(x)$, ``(n, k)`` (e.g. from [`cosine_logits`][jaxclust.ood.cosine_logits]).
      temperature: $T(x) > 0$, ``(n,)`` (e.g. from
        [`learned_temperature`][jaxclust.ood.learned_temperature], in $(0, 1)$).

    Returns:
      ``(n,)`` scores.

    Raises:
      ValueError: bad shapes, NaN/Inf, a temperature <= 0.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import ablated_energy
      >>> ablated_energy(jnp.array([[1.0, 0.0]]), jnp.array([0.5])).round(4).tolist()
      [2.1269]

    References:
      LeVine, Pikus, Phillips, Norman, Amat Gil, Hendryx, "Out-of-Distribution Detection &
      Applications With Ablated Learned Temperature Energy", 2024. Hsu, Shen, Jin, Kira,
      "Generalized ODIN", CVPR 2020.
    """
    h = _logits(cos_logits, "cos_logits")
    t = v.vector(temperature, "temperature", h.shape[0], "n")
    t = checks.ensure_value(t, lambda u, xp: u.astype(h.dtype) <= 0,
                            "`temperature` must be > 0 everywhere (a learned temperature is "
                            "sigmoid(.) in (0, 1)).")
    # the ratio and its log-sum-exp as two programs (see row_ratio)
    return v.finite_result(_logsumexp_rows(v.row_ratio(h, t)), "temperature",
                           "The log-sum-exp of `cos_logits` / `temperature` (logits too large: "
                           "under jit XLA's fused multiply-add rounds them inconsistently)")


def sinkhorn_score(
    features: Float[ArrayLike, "n d"],
    stats: PrototypeStats,
    *,
    epsilon: float | Float[Array, ""] = 0.05,
    tau: float = 1.0,
    tol: float = 1e-4,
    max_iter: int = 1000,
) -> Float[Array, " n"]:
    r"""Entropic-OT prototype score of a batch (higher = more in-distribution).

    The batch's unit features $z_i$ (uniform weights $1/n$) are transported onto the ID
    class prototypes $p_c$ (weights $w_c$, the class frequencies) of
    [`fit_prototypes`][jaxclust.ood.fit_prototypes] with the cost
    $C_{ic} = \lVert z_i - p_c\rVert^2 = 2 - 2 z_i^\top p_c$, by
    [`jaxclust.ot.sinkhorn`][jaxclust.ot.sinkhorn]; the score of a sample is minus its
    transport cost per unit mass,

    $$ s(x_i) = -\frac{\sum_c P_{ic} C_{ic}}{\sum_c P_{ic}}. $$

    The batch must fill the classes in their ID proportions, so a sample that no prototype
    explains pays a high cost. Unlike the other scores it depends on the whole batch
    (transductive): score a batch of test inputs together, mixed ID/OOD batches included;
    ``tau < 1`` relaxes the class proportions (unbalanced OT, for batches whose label
    shift is unknown). Differentiable in the features (implicit differentiation of
    Sinkhorn).

    Args:
      features: a batch of features, ``(n, d)``.
      stats: a [`PrototypeStats`][jaxclust.ood.PrototypeStats].
      epsilon: entropic regularisation (in units of the cost, which lies in ``[0, 4]``).
      tau: relaxation of the prototype marginal in (0, 1]; 1 keeps the ID proportions.
      tol: Sinkhorn tolerance on the marginals.
      max_iter: Sinkhorn iteration budget.

    Returns:
      ``(n,)`` scores in $[-4, 0]$.

    Raises:
      ValueError: bad shapes, NaN/Inf, ``epsilon <= 0``, ``tau`` outside (0, 1].

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import PrototypeStats, sinkhorn_score
      >>> st = PrototypeStats(jnp.eye(2), jnp.array([0.5, 0.5]))
      >>> x = jnp.array([[1.0, 0.1], [0.1, 1.0], [-1.0, -1.0]])
      >>> s = sinkhorn_score(x, st)
      >>> bool(s[2] < s[0]) and bool(s[2] < s[1])
      True

    References:
      Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS
      2013. Snell, Swersky, Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS
      2017.
    """
    stats = _check_stats(features, stats, PrototypeStats)
    x = _features(features)
    v.features_match(x, stats.prototypes.shape[1], "features", "the prototypes")
    eps = v.temperature(epsilon, "epsilon")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau <= 1:
        raise ValueError(f"`tau` must be a number in (0, 1], got {tau!r}.")
    z, protos, w = _sinkhorn_score_inputs(x, stats)
    res = sinkhorn(z, protos, None, w, epsilon=eps, tau_b=tau, tol=tol,
                   max_iter=max_iter, mode="log")
    return _cost_per_mass(res.geom, res.f, res.g, res.epsilon, z, protos)


@jax.jit
def _sinkhorn_score_inputs(x, stats):
    z = v.normalize(x)
    w = stats.weights.astype(z.dtype)
    return z, stats.prototypes.astype(z.dtype), w / jnp.sum(w)


@jax.jit
def _cost_per_mass(geom, f, g, epsilon, z, protos):
    plan = geom.plan(f, g, epsilon)
    cost = jnp.maximum(2.0 - 2.0 * jnp.matmul(z, protos.T, precision=_PREC), 0.0)
    return -jnp.sum(plan * cost, axis=1) / jnp.sum(plan, axis=1)
