r"""Statistics of in-distribution (ID) data needed by the post-hoc OOD scores.

Each ``fit_*`` function is a pure function of ID training features (and labels or the
classifier's last layer) returning a NamedTuple (a pytree): fit once, then pass the result
to the matching score of [`jaxclust.ood`][jaxclust.ood] (jit, vmap and save it like any
array tree). The classifier's last layer is written ``logits = features @ weight + bias``
with ``weight`` of shape ``(d, k)``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._core import checks
from .._core.results import with_summary_repr
from . import _validate as v

__all__ = [
    "KNNStats",
    "MahalanobisStats",
    "PrototypeStats",
    "ReActStats",
    "ViMStats",
    "fit_knn",
    "fit_mahalanobis",
    "fit_prototypes",
    "fit_react",
    "fit_vim",
]

_PREC = jax.lax.Precision.HIGHEST


@with_summary_repr
class MahalanobisStats(NamedTuple):
    """Class means and tied precision of ID features (and the class-agnostic background).

    Attributes:
      means: class means $\\mu_c$, shape ``(k, d)``.
      precision: inverse (pseudo-inverse) of the tied within-class covariance, ``(d, d)``.
      mean: overall mean $\\mu_0$, ``(d,)`` (relative Mahalanobis).
      background_precision: inverse of the overall covariance, ``(d, d)``.
    """

    means: Float[Array, "k d"]
    precision: Float[Array, "d d"]
    mean: Float[Array, " d"]
    background_precision: Float[Array, "d d"]


@with_summary_repr
class KNNStats(NamedTuple):
    """The bank of unit-normalised ID features (``(m, d)``) searched by the KNN score."""

    bank: Float[Array, "m d"]


@with_summary_repr
class ReActStats(NamedTuple):
    """The activation clipping threshold of ReAct (a percentile of ID activations)."""

    threshold: Float[Array, ""]


@with_summary_repr
class ViMStats(NamedTuple):
    """ViM's origin, residual subspace and virtual-logit scale.

    Attributes:
      origin: $u = -(W^\\top)^{+} b$, the point mapped to zero logits, ``(d,)``.
      residual_basis: orthonormal basis $R$ of the complement of the principal subspace,
        ``(d, d - dim)``.
      alpha: scale $\\alpha$ matching the virtual logit to the mean max-logit.
    """

    origin: Float[Array, " d"]
    residual_basis: Float[Array, "d r"]
    alpha: Float[Array, ""]


@with_summary_repr
class PrototypeStats(NamedTuple):
    """Unit-norm class prototypes (normalised class means of normalised features) and the
    class frequencies, the target marginal of the Sinkhorn score."""

    prototypes: Float[Array, "k d"]
    weights: Float[Array, " k"]


def _features(features, name="features"):
    x = v.matrix(features, name, "(n, d)")
    return x.astype(v.compute_dtype(x))


_EMPTY_CLASS = ("`labels` leave a class without samples; every class in [0, num_classes) "
                "needs at least one ID sample (or lower num_classes / relabel).")


def _check_classes_filled(y, k: int) -> None:
    """Eagerly (concrete labels), the empty-class check of :func:`_class_means` on the host,
    before the jitted statistics run (inside them it is a traced check, which an eager call
    would report as equinox's runtime error instead of this ``ValueError``)."""
    if not checks.is_traced(y):
        checks.ensure_value(y, lambda u, xp: (np.bincount(u, minlength=k) if xp is np else
                                              jnp.bincount(u, length=k)) == 0, _EMPTY_CLASS)


def _class_means(x, y, k):
    counts = jax.ops.segment_sum(jnp.ones_like(y), y, num_segments=k)
    counts = checks.ensure(counts, counts == 0, _EMPTY_CLASS)
    sums = jax.ops.segment_sum(x, y, num_segments=k)
    return sums / counts.astype(x.dtype)[:, None], counts


# The statistics are computed by module-level jitted programs (one to three per fit, split
# where a value check on an intermediate result must run before the next step): a first
# eager fit compiles those instead of one small program per jax.numpy operation (27-35,
# 1-1.8 s, before). Under an outer jit / vmap / grad they are inlined and the checks travel
# with the values as before.

@partial(jax.jit, static_argnames=("k",))
def _mahalanobis_moments(x, y, k):
    means, _ = _class_means(x, y, k)
    n = x.shape[0]
    centred = x - means[y]
    cov = jnp.matmul(centred.T, centred, precision=_PREC) / n
    mean = jnp.mean(x, axis=0)
    c0 = x - mean[None, :]
    cov0 = jnp.matmul(c0.T, c0, precision=_PREC) / n
    return means, cov, mean, cov0


@jax.jit
def _pinvs(cov, cov0, ridge):
    return _pinv(cov, ridge), _pinv(cov0, ridge)


def _pinv(cov, ridge):
    d = cov.shape[0]
    return jnp.linalg.pinv(cov + ridge * jnp.eye(d, dtype=cov.dtype), hermitian=True)


def fit_mahalanobis(
    features: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    num_classes: int | None = None,
    ridge: float = 0.0,
) -> MahalanobisStats:
    r"""Class-conditional Gaussians with a tied covariance, fitted on ID features.

    $$
        \mu_c = \frac{1}{n_c}\sum_{i: y_i = c} x_i, \qquad
        \Sigma = \frac1n \sum_i (x_i - \mu_{y_i})(x_i - \mu_{y_i})^\top, \qquad
        \Sigma_0 = \frac1n \sum_i (x_i - \mu_0)(x_i - \mu_0)^\top,
    $$

    and the precisions $(\Sigma + \lambda I)^{+}$, $(\Sigma_0 + \lambda I)^{+}$
    (Moore-Penrose pseudo-inverses, so rank-deficient features such as ReLU outputs work).
    Used by [`mahalanobis`][jaxclust.ood.mahalanobis] and
    [`relative_mahalanobis`][jaxclust.ood.relative_mahalanobis].

    Args:
      features: ID features, ``(n, d)``.
      labels: their classes in ``[0, num_classes)``, ``(n,)``.
      num_classes: number of classes (static); required under ``jit`` / ``vmap``.
      ridge: $\lambda \ge 0$ added to both covariances before inversion.

    Returns:
      A [`MahalanobisStats`][jaxclust.ood.MahalanobisStats].

    Raises:
      ValueError: features not 2-D or with NaN/Inf, labels of the wrong length or out of
        range, an empty class, ``ridge < 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_mahalanobis
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [4.0, 4.0], [5.0, 4.0], [4.0, 5.0]])
      >>> stats = fit_mahalanobis(x, jnp.array([0, 0, 0, 1, 1, 1]))
      >>> stats.means.round(3).tolist(), stats.precision.shape
      ([[0.333, 0.333], [4.333, 4.333]], (2, 2))

    References:
      Lee, Lee, Lee, Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
      Samples and Adversarial Attacks", NeurIPS 2018.
    """
    x = _features(features)
    y, k = v.labels(labels, "labels", x.shape[0], num_classes)
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
        raise ValueError(f"`ridge` must be a number >= 0, got {ridge!r}.")
    _check_classes_filled(y, k)
    means, cov, mean, cov0 = _mahalanobis_moments(x, y, k)
    cov = v.finite_result(cov, "features", "The within-class covariance")
    cov0 = v.finite_result(cov0, "features", "The covariance")
    precision, background_precision = _pinvs(cov, cov0, ridge)
    return MahalanobisStats(means, precision, mean, background_precision)


def fit_knn(features: Float[ArrayLike, "n d"]) -> KNNStats:
    r"""The feature bank of the KNN score: ID features scaled to unit norm,
    $z_i = x_i / \lVert x_i\rVert$.

    Args:
      features: ID features, ``(n, d)`` (subsample them for very large training sets).

    Returns:
      A [`KNNStats`][jaxclust.ood.KNNStats].

    Raises:
      ValueError: features not 2-D or with NaN/Inf.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_knn
      >>> fit_knn(jnp.array([[3.0, 4.0], [0.0, 2.0]])).bank.tolist()
      [[0.6000000238418579, 0.800000011920929], [0.0, 1.0]]

    References:
      Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
      ICML 2022.
    """
    return KNNStats(_normalize(_features(features)))


_normalize = jax.jit(v.normalize)


def fit_react(features: Float[ArrayLike, "n d"], *, percentile: float = 90.0) -> ReActStats:
    r"""ReAct's clipping threshold: the ``percentile``-th percentile of all ID activations
    (every entry of ``features``), linear interpolation as in ``numpy.percentile``.

    Args:
      features: ID penultimate activations, ``(n, d)``.
      percentile: in ``[0, 100)`` (the paper uses 90).

    Returns:
      A [`ReActStats`][jaxclust.ood.ReActStats].

    Raises:
      ValueError: features not 2-D or with NaN/Inf, ``percentile`` outside ``[0, 100)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_react
      >>> float(fit_react(jnp.arange(10.0).reshape(5, 2), percentile=50).threshold)
      4.5

    References:
      Sun, Guo, Li, "ReAct: Out-of-distribution Detection With Rectified Activations",
      NeurIPS 2021.
    """
    p = v.percentile(percentile)
    x = _features(features)
    return ReActStats(_percentile(x, p))


_percentile = jax.jit(lambda x, p: jnp.percentile(x.reshape(-1), p))


def fit_vim(
    features: Float[ArrayLike, "n d"],
    weight: Float[ArrayLike, "d k"],
    bias: Float[ArrayLike, " k"],
    *,
    dim: int,
) -> ViMStats:
    r"""ViM's statistics from ID features and the last layer ``logits = x W + b``.

    The origin $u = -(W^\top)^{+} b$ is the feature mapped to zero logits (so
    $xW + b = (x - u)W$). With the eigen-decomposition of
    $\frac1n\sum_i (x_i - u)(x_i - u)^\top$, the principal subspace is spanned by the
    ``dim`` leading eigenvectors and $R$ holds the remaining $d - \mathrm{dim}$. The scale
    of the virtual logit is

    $$
        \alpha = \frac{\frac1n\sum_i \max_j \ell_{ij}}{\frac1n\sum_i \lVert R^\top (x_i - u)\rVert}
    $$

    (the denominator floored at $10^{-6}$ times the mean norm of $x_i - u$, so ID features
    lying exactly in the principal subspace give a large, finite $\alpha$).

    Args:
      features: ID features, ``(n, d)``.
      weight: last-layer weight, ``(d, k)``.
      bias: last-layer bias, ``(k,)``.
      dim: dimension of the principal subspace (static), ``1 <= dim < d``.

    Returns:
      A [`ViMStats`][jaxclust.ood.ViMStats].

    Raises:
      ValueError: bad shapes, NaN/Inf, ``dim`` out of range.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_vim
      >>> x = jnp.array([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [2, 1, 0]])
      >>> st = fit_vim(x, jnp.eye(3, 2), jnp.zeros(2), dim=2)
      >>> jnp.abs(st.residual_basis).round(4).tolist()  # the unused third axis
      [[0.0], [0.0], [1.0]]

    References:
      Wang, Li, Feng, Zhang, "ViM: Out-Of-Distribution with Virtual-logit Matching",
      CVPR 2022.
    """
    x = _features(features)
    d = x.shape[1]
    w, b = _head(weight, bias, d)
    dim = v.static_int(dim, "dim", 1, d - 1, "The residual subspace must be non-empty.")
    dtype = v.compute_dtype(x, w, b)
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    if (x.dtype, w.dtype, b.dtype) != (dtype,) * 3:
        x, w, b = _cast(x, w, b, dtype)
    origin = checks.ensure_value(
        _vim_origin(w, b), lambda u, xp: ~xp.isfinite(u),
        f"ViM's origin -pinv(weight.T) @ bias is not finite in {dtype}: `weight` is too "
        "small or `bias` too large (an intermediate overflowed). Rescale the last layer or "
        "compute in float64.")
    cov = checks.ensure_value(
        _centred_cov(x, origin), lambda u, xp: ~xp.isfinite(u),
        f"The covariance of the centred features is not finite in {dtype}: `features` are "
        "too large or too far from ViM's origin -pinv(`weight`.T) @ `bias` (an "
        "intermediate overflowed). Rescale `features` and the last layer, or compute in "
        "float64.")
    basis, alpha = _vim_basis_and_scale(x, w, b, origin, cov, d - dim)
    alpha = v.finite_result(alpha, "features", "ViM's scale alpha")
    return ViMStats(origin, basis, alpha)


@partial(jax.jit, static_argnames=("dtype",))
def _cast(x, w, b, dtype):
    return x.astype(dtype), w.astype(dtype), b.astype(dtype)


@jax.jit
def _vim_origin(w, b):
    return -jnp.matmul(jnp.linalg.pinv(w.T), b, precision=_PREC)


@jax.jit
def _centred_cov(x, origin):
    centred = x - origin[None, :]
    return jnp.matmul(centred.T, centred, precision=_PREC) / x.shape[0]


@partial(jax.jit, static_argnames=("r",))
def _vim_basis_and_scale(x, w, b, origin, cov, r):
    centred = x - origin[None, :]
    _, vecs = jnp.linalg.eigh(cov)  # ascending eigenvalues
    basis = vecs[:, :r]
    logits = jnp.matmul(x, w, precision=_PREC) + b[None, :]
    residual = jnp.linalg.norm(jnp.matmul(centred, basis, precision=_PREC), axis=1)
    # floored: ID features with no residual at all would give alpha = inf
    scale = jnp.mean(jnp.linalg.norm(centred, axis=1))
    alpha = jnp.mean(jnp.max(logits, axis=1)) / jnp.maximum(jnp.mean(residual),
                                                            1e-6 * scale + 1e-30)
    return basis, alpha


def _head(weight, bias, d: int):
    w = checks.as_float_array(weight, "weight")
    checks.check_ndim(w, "weight", 2, "(d, k)")
    if w.shape[0] != d:
        raise ValueError(f"`weight` must have shape (d, k) with d = {d} (the feature size; "
                         f"logits = features @ weight + bias), got {tuple(w.shape)}.")
    b = v.vector(bias, "bias", w.shape[1], "k")
    return checks.check_finite(w, "weight"), b


def fit_prototypes(
    features: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    num_classes: int | None = None,
) -> PrototypeStats:
    r"""Unit class prototypes and class frequencies for the Sinkhorn score.

    $$
        p_c = \frac{\bar z_c}{\lVert \bar z_c\rVert}, \quad
        \bar z_c = \frac{1}{n_c}\sum_{i:y_i=c} \frac{x_i}{\lVert x_i\rVert}, \qquad
        w_c = \frac{n_c}{n}.
    $$

    Args:
      features: ID features, ``(n, d)``.
      labels: their classes, ``(n,)``.
      num_classes: number of classes (static); required under ``jit`` / ``vmap``.

    Returns:
      A [`PrototypeStats`][jaxclust.ood.PrototypeStats].

    Raises:
      ValueError: as [`fit_mahalanobis`][jaxclust.ood.fit_mahalanobis].

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ood import fit_prototypes
      >>> st = fit_prototypes(jnp.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]),
      ...                     jnp.array([0, 1, 1]))
      >>> st.prototypes.tolist(), st.weights.round(3).tolist()
      ([[1.0, 0.0], [0.0, 1.0]], [0.333, 0.667])

    References:
      Snell, Swersky, Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017.
    """
    x = _features(features)
    y, k = v.labels(labels, "labels", x.shape[0], num_classes)
    _check_classes_filled(y, k)
    return PrototypeStats(*_prototypes(x, y, k))


@partial(jax.jit, static_argnames=("k",))
def _prototypes(x, y, k):
    means, counts = _class_means(v.normalize(x), y, k)
    return v.normalize(means), counts.astype(x.dtype) / x.shape[0]
