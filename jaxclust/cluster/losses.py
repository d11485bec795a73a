"""Differentiable clustering losses: soft assignments to centroids, the (hard or soft)
k-means loss and SwAV's swapped-prediction loss.

These are the pure functions behind the layers of ``jaxclust.nn``; each is a closed-form
expression of its inputs (no solver), so gradients are exact and cheap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float

from .._core import checks
from ..ot.assign import swav_codes
from .lloyd import _sq_dists

__all__ = ["kmeans_loss", "soft_assignment", "swav_loss"]

_KINDS = ("softmax", "student_t")


def _points_and_centroids(x, centroids, guard_overflow=True
                          ) -> tuple[jax.Array, jax.Array, jnp.dtype]:
    """Validate ``x (n, d)`` and ``centroids (k, d)``; return both in the compute dtype
    (the common dtype, at least float32) and the dtype of the outputs (the common dtype).
    With ``guard_overflow``, entries so large that squared distances would overflow the
    compute dtype raise a ValueError naming the argument (instead of a silent NaN)."""
    x = checks.as_float_array(x, "x")
    checks.check_ndim(x, "x", 2, "(n, d)")
    c = checks.as_float_array(centroids, "centroids")
    checks.check_ndim(c, "centroids", 2, "(k, d)")
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"`centroids` must have the same number of features as `x` "
                         f"(x.shape[1] = {x.shape[1]}), got shape {tuple(c.shape)}.")
    if x.shape[0] < 1:
        raise ValueError("`x` has no rows; pass at least one point.")
    if c.shape[0] < 1:
        raise ValueError("`centroids` has no rows; pass at least one centroid (k >= 1).")
    out_dtype = jnp.result_type(x, c)
    dtype = jnp.promote_types(out_dtype, jnp.float32)  # low precision accumulates in f32
    x = checks.check_finite(x.astype(dtype), "x")
    c = checks.check_finite(c.astype(dtype), "centroids")
    if guard_overflow:
        # |x_i - c_j|^2 <= 4 d max(|x|, |c|)^2 must stay below the largest float
        lim = float(np.sqrt(np.finfo(dtype).max / (4.0 * max(x.shape[1], 1))))
        def guard(v, name):
            return checks.ensure(v, jnp.max(jnp.abs(v)) > lim, (
                f"`{name}` has entries above {lim:.3g} in magnitude: squared distances "
                f"would overflow {jnp.dtype(dtype).name}; rescale the data (e.g. "
                f"standardise it) or use float64."))

        x, c = guard(x, "x"), guard(c, "centroids")
    return x, c, out_dtype


def _positive(value, name, dtype, hint=""):
    v = checks.check_positive_scalar(value, name, hint)
    return jnp.asarray(v, dtype)


def soft_assignment(
    x: Float[ArrayLike, "n d"],
    centroids: Float[ArrayLike, "k d"],
    *,
    temperature: float | Float[ArrayLike, ""] = 1.0,
    kind: str = "softmax",
    alpha: float | Float[ArrayLike, ""] = 1.0,
) -> Float[Array, "n k"]:
    r"""Soft assignment of points to centroids (rows sum to one).

    With $D_{ij} = \lVert x_i - c_j\rVert^2$ and temperature $T$:

    * ``kind="softmax"`` (soft k-means responsibilities, a Gaussian kernel):

        $$ q_{ij} = \frac{e^{-D_{ij}/T}}{\sum_l e^{-D_{il}/T}}; $$

    * ``kind="student_t"`` (the Student-t kernel of DEC, Xie et al. 2016, with $\alpha$
      degrees of freedom):

        $$ q_{ij} = \frac{(1 + D_{ij}/(\alpha T))^{-(\alpha+1)/2}}
                         {\sum_l (1 + D_{il}/(\alpha T))^{-(\alpha+1)/2}}. $$

        $T$ scales the squared distances (a squared length scale); with the default
        $T = 1$ this is exactly DEC's $q_{ij}$.

    Both are computed as a softmax of log-kernels (stable for far points). Jittable,
    vmappable, differentiable in ``x``, ``centroids``, ``temperature`` and ``alpha``.

    Args:
      x: points, shape ``(n, d)``.
      centroids: centroids, shape ``(k, d)``.
      temperature: $T > 0$ (Python number or scalar array).
      kind: ``"softmax"`` or ``"student_t"`` (static).
      alpha: degrees of freedom $\alpha > 0$ of the Student-t kernel (ignored by
        ``"softmax"``).

    Returns:
      Assignments ``(n, k)``, non-negative, each row summing to one, in the dtype of the
      inputs (computed in at least float32).

    Raises:
      ValueError: ``x`` or ``centroids`` not 2-D or with different feature sizes, NaN/Inf
        inputs, ``temperature <= 0``, ``alpha <= 0`` or an unknown ``kind``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster.losses import soft_assignment
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
      >>> c = jnp.array([[0.0, 0.0], [2.0, 0.0]])
      >>> soft_assignment(x, c).round(4).tolist()
      [[0.9820, 0.0180], [0.5, 0.5]]
      >>> soft_assignment(x, c, kind="student_t").round(4).tolist()  # (1 + D)^-1
      [[0.8333, 0.1667], [0.5, 0.5]]

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016. van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008.
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}, got {kind!r}.")
    x, c, out_dtype = _points_and_centroids(x, centroids)
    t = _positive(temperature, "temperature", x.dtype, "It scales the squared distances.")
    d2 = _sq_dists(x, c)
    if kind == "softmax":
        # shifted by the row minimum (a constant of the softmax): a tiny temperature gives
        # one-hot rows, never -inf everywhere (NaN)
        m = jax.lax.stop_gradient(jnp.min(d2, axis=1, keepdims=True))
        logits = -(d2 - m) / t
    else:
        a = _positive(alpha, "alpha", x.dtype, "It is the Student-t degrees of freedom.")
        # log1p(D / (a T)) = log(a T + D) - log(a T): the row constant dropped, no overflow
        at = a * t
        logits = -0.5 * (a + 1.0) * jnp.log(jnp.maximum(at + d2, jnp.finfo(x.dtype).tiny))
    return jax.nn.softmax(logits, axis=1).astype(out_dtype)


def _weights(weights, n, dtype):
    w = checks.row_weights(weights, n, "x").astype(dtype)
    return checks.ensure(w, jnp.sum(w) <= 0, "`weights` sums to 0; give some point a "
                                             "positive weight.")


def kmeans_loss(
    x: Float[ArrayLike, "n d"],
    centroids: Float[ArrayLike, "k d"],
    *,
    temperature: float | Float[ArrayLike, ""] | None = None,
    weights: Float[ArrayLike, " n"] | None = None,
) -> Float[Array, ""]:
    r"""k-means loss of points against centroids, hard or soft, averaged over the points.

    With $D_{ij} = \lVert x_i - c_j\rVert^2$ and weights $w_i$ (ones by default):

    * ``temperature=None`` (hard): the mean inertia

        $$ L = \frac{\sum_i w_i \min_j D_{ij}}{\sum_i w_i}, $$

        i.e. ``jaxclust.metrics.inertia(x, centroids, weights=w) / sum(w)``. Differentiable
        almost everywhere in ``x`` and ``centroids`` (the gradient flows through each point's
        nearest centroid; ties have measure zero).
    * ``temperature=T > 0`` (soft): the mean free energy of soft k-means

        $$ L_T = -\frac{T}{\sum_i w_i}\sum_i w_i \log \sum_j e^{-D_{ij}/T}, $$

        smooth everywhere, with $\partial L_T / \partial c_j = \frac{2}{\sum w}\sum_i w_i
        q_{ij}(c_j - x_i)$ for the softmax assignments $q$ of
        [`soft_assignment`][jaxclust.cluster.soft_assignment]. It bounds the hard loss:
        $L - T\log k \le L_T \le L$, so $L_T \to L$ as $T \to 0$.

    The loss is a weighted **mean** over points (not a sum, unlike the inertia), so its
    scale does not depend on the batch size.

    Args:
      x: points, shape ``(n, d)``.
      centroids: centroids, shape ``(k, d)``.
      temperature: ``None`` for the hard loss, or $T > 0$ (Python number or scalar array)
        for the soft one.
      weights: non-negative point weights ``(n,)`` with a positive sum; ``None`` for ones.

    Returns:
      The loss, a scalar in the dtype of the inputs.

    Raises:
      ValueError: ``x`` or ``centroids`` not 2-D or with different feature sizes, NaN/Inf,
        ``temperature <= 0``, ``weights`` of the wrong shape, negative or summing to 0.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster.losses import kmeans_loss
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
      >>> c = jnp.array([[0.5, 0.0], [3.0, 0.0]])
      >>> round(float(kmeans_loss(x, c)), 4)  # (0.25 + 0.25 + 0) / 3
      0.1667
      >>> round(float(kmeans_loss(x, c, temperature=0.01)), 4)
      0.1667
      >>> round(float(kmeans_loss(x, c, temperature=1.0)), 4)  # below the hard loss
      0.1582

    References:
      Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 1982. Rose,
      Gurewitz, Fox, "Statistical mechanics and phase transitions in clustering", Phys. Rev.
      Lett. 1990 (the free energy of deterministic annealing).
    """
    x, c, out_dtype = _points_and_centroids(x, centroids)
    n = x.shape[0]
    w = None if weights is None else _weights(weights, n, x.dtype)
    d2 = _sq_dists(x, c)
    if temperature is None:
        per_point = jnp.min(d2, axis=1)
    else:
        t = _positive(temperature, "temperature", x.dtype,
                      "Pass temperature=None for the hard k-means loss.")
        # -T LSE(-D/T) = m - T LSE(-(D - m)/T) for the row minimum m (no overflow at tiny T)
        m = jax.lax.stop_gradient(jnp.min(d2, axis=1))
        per_point = m - t * logsumexp(-(d2 - m[:, None]) / t, axis=1)
    if w is None:
        loss = jnp.mean(per_point)
    else:
        loss = jnp.sum(w * per_point) / jnp.sum(w)
    return loss.astype(out_dtype)


def _scores(s, name):
    s = checks.as_float_array(s, name)
    checks.check_ndim(s, name, 2, "(batch, k)")
    return checks.check_finite(s, name)


_SWAV_TARGETS = ("soft", "hard")


def _swav_targets(scores, *, epsilon, n_iter, targets):
    """SwAV codes (``"soft"``) or their one-hot ``argmax`` (``"hard"``, SIGMA); constants."""
    q = swav_codes(scores, epsilon=epsilon, n_iter=n_iter)
    if targets == "hard":
        q = jax.nn.one_hot(jnp.argmax(q, axis=1), q.shape[1], dtype=q.dtype)
    return jax.lax.stop_gradient(q)


def swav_loss(
    scores_a: Float[ArrayLike, "batch k"],
    scores_b: Float[ArrayLike, "batch k"],
    *,
    temperature: float | Float[ArrayLike, ""] = 0.1,
    epsilon: float = 0.05,
    n_iter: int = 3,
    targets: str = "soft",
) -> Float[Array, ""]:
    r"""SwAV's swapped-prediction loss between the prototype scores of two views.

    For scores $S^a, S^b \in \mathbb{R}^{B\times K}$ of two augmentations of the same
    batch (e.g. cosine similarities of normalised features with normalised prototypes),
    the codes $Q^a, Q^b$ are the balanced assignments of
    [`swav_codes`][jaxclust.ot.swav_codes] (``n_iter`` Sinkhorn-Knopp rounds at
    temperature $\varepsilon$, treated as constants: no gradient flows through them), and
    each view predicts the other's code:

    $$
        L = -\frac{1}{2B}\sum_{i=1}^B \sum_{k=1}^K
            \Big[ Q^b_{ik} \log p^a_{ik} + Q^a_{ik} \log p^b_{ik} \Big],
        \qquad p^v_{i\cdot} = \operatorname{softmax}(S^v_{i\cdot} / T).
    $$

    ``targets="hard"`` replaces each code by the one-hot vector of its largest entry
    (``argmax``), as SIGMA does (Salehi et al., ECCV 2024; QUVA-Lab/SIGMA,
    ``engine_for_pretraining.py``: ``q.argmax(-1)`` then a cross-entropy on ``scores / 0.1``,
    with ``sinkhorn_iterations=10`` and ``sinkhorn_eps=0.05`` by default). SIGMA's settings
    are therefore ``temperature=0.1, epsilon=0.05, n_iter=10, targets="hard"``; note that
    SIGMA *sums* the two directions, so its loss is twice this value (the mean of the two).

    Jittable and vmappable. **Gradients**: in ``temperature`` the exact derivative. In the
    scores, SwAV's gradient with the codes held constant,
    $\partial L/\partial S^a = (p^a - Q^b)/(2BT)$ (and symmetrically), which is *not* the
    derivative of $L$ as a function of the scores (that would also differentiate the codes);
    finite differences of $L$ in the scores therefore do not match it, by design.

    Args:
      scores_a: ``(batch, k)`` scores of the first view.
      scores_b: ``(batch, k)`` scores of the second view (same shape).
      temperature: $T > 0$ of the predicted distributions (SwAV: 0.1).
      epsilon: $\varepsilon > 0$ of the codes (SwAV: 0.05).
      n_iter: Sinkhorn-Knopp rounds for the codes (SwAV: 3, SIGMA: 10; static).
      targets: ``"soft"`` (SwAV: the codes themselves) or ``"hard"`` (SIGMA: one-hot
        ``argmax`` of the codes), static.

    Returns:
      The loss, a scalar (mean over the batch) in the dtype of the scores.

    Raises:
      ValueError: scores not 2-D, of different shapes, NaN/Inf, ``temperature <= 0``,
        ``epsilon <= 0``, ``n_iter < 1`` or an unknown ``targets``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster.losses import swav_loss
      >>> s = jax.random.normal(jax.random.key(0), (64, 3))
      >>> noisy = s + 0.1 * jax.random.normal(jax.random.key(1), (64, 3))
      >>> bool(swav_loss(s, noisy) < swav_loss(s, noisy[::-1]))  # agreeing views: lower
      True

    References:
      Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual
      Features by Contrasting Cluster Assignments" (SwAV), NeurIPS 2020. Salehi, Dorkenwald,
      Thoker, Gavves, Snoek, Asano, "SIGMA: Sinkhorn-Guided Masked Video Modeling", ECCV
      2024.
    """
    if targets not in _SWAV_TARGETS:
        raise ValueError(f"`targets` must be one of {_SWAV_TARGETS}, got {targets!r}.")
    sa = _scores(scores_a, "scores_a")
    sb = _scores(scores_b, "scores_b")
    if sb.shape != sa.shape:
        raise ValueError(f"`scores_b` must have the same shape as `scores_a` "
                         f"{tuple(sa.shape)} (two views of one batch), got {tuple(sb.shape)}.")
    out_dtype = jnp.result_type(sa, sb)
    dtype = jnp.promote_types(out_dtype, jnp.float32)
    t = _positive(temperature, "temperature", dtype, "SwAV uses 0.1.")
    eps = _positive(epsilon, "epsilon", dtype, "SwAV uses 0.05.")

    def in_range(v, name):
        v = v.astype(dtype)
        over = ~jnp.all(jnp.isfinite(v / t)) | ~jnp.all(jnp.isfinite(v / eps))
        return checks.ensure(v, over, f"`{name}` divided by `temperature` or `epsilon` "
                                      f"overflows {jnp.dtype(dtype).name}; use cosine "
                                      f"scores (in [-1, 1]) or larger values of both.")

    sa, sb = in_range(sa, "scores_a"), in_range(sb, "scores_b")
    qa = _swav_targets(sa, epsilon=epsilon, n_iter=n_iter, targets=targets).astype(dtype)
    qb = _swav_targets(sb, epsilon=epsilon, n_iter=n_iter, targets=targets).astype(dtype)
    log_pa = jax.nn.log_softmax(sa.astype(dtype) / t, axis=1)
    log_pb = jax.nn.log_softmax(sb.astype(dtype) / t, axis=1)
    per_sample = jnp.sum(qb * log_pa, axis=1) + jnp.sum(qa * log_pb, axis=1)
    # scores ~1e20: finite ratios eagerly, but under jit XLA's fused log-softmax may round
    # them to NaN; the result check makes jit agree with the eager error
    loss = checks.ensure(-0.5 * jnp.mean(per_sample), ~jnp.all(jnp.isfinite(per_sample)),
                         "the SwAV loss is not finite: `scores_a` / `scores_b` divided by "
                         "`temperature` are too large for the float type; use cosine scores "
                         "(in [-1, 1]).")
    return loss.astype(out_dtype)
