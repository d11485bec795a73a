r"""Losses of deep clustering heads: DEC/DEPICT self-training targets and KL loss, the
weighted pseudo-label cross-entropy of P²OT, and TELL's k-means layer.

These are the pure functions behind the heads of ``jaxclust.nn``: closed-form expressions
of their inputs (no solver), jittable, vmappable and differentiable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy
from jaxtyping import Array, ArrayLike, Float

from .._core import checks
from .lloyd import _sq_dists
from .losses import _points_and_centroids, _positive

__all__ = ["dec_loss", "dec_target", "pseudo_label_loss", "tell_assignment", "tell_loss"]

_TARGETS = ("dec", "depict", "depict_paper")


def _assignments(q, name) -> jax.Array:
    q = checks.as_float_array(q, name)
    checks.check_ndim(q, name, 2, "(n, k)")
    if q.shape[0] < 1 or q.shape[1] < 1:
        raise ValueError(f"`{name}` must have at least one row and one column, got shape "
                         f"{tuple(q.shape)}.")
    q = checks.check_finite(q, name)
    return checks.ensure(q, q < 0, f"`{name}` has negative entries; soft assignments are >= 0 "
                                   "(e.g. from jaxclust.cluster.soft_assignment).")


def dec_target(
    q: Float[ArrayLike, "n k"], *, kind: str = "dec", power: float | Float[ArrayLike, ""] = 2.0
) -> Float[Array, "n k"]:
    r"""Sharpened self-training target of DEC or DEPICT from soft assignments $q$.

    With the soft cluster frequencies $f_j = \sum_i q_{ij}$:

    * ``kind="dec"`` (Xie et al. 2016): $p_{ij} \propto q_{ij}^{a} / f_j$ with
      $a$ = ``power`` (DEC: 2), which sharpens confident assignments and divides by the
      cluster frequency so that large clusters do not absorb everything;
    * ``kind="depict"``: DEPICT (Ghasedi Dizaji et al. 2017) as its released code computes
      it (herandy/DEPICT, ``functions.py``, ``train_depict``): $p_{ij} \propto
      q_{ij}^2 / f_j$, the same formula as DEC with $a = 2$ (``power`` is not used);
    * ``kind="depict_paper"``: DEPICT as printed in the paper (its Eq. 5):
      $p_{ij} \propto q_{ij} / f_j^{1/2}$, a milder sharpening (``power`` is not used).

    Each row is normalised to sum to 1. DEPICT's code takes $f$ over the whole data set
    (all predictions of an epoch); here $f$ is the sum over the rows of ``q`` you pass.

    The target is a constant of the loss: the output is ``stop_gradient``-ed (DEC
    alternates target and network updates).

    Args:
      q: ``(n, k)`` soft assignments (non-negative; rows usually sum to 1).
      kind: ``"dec"``, ``"depict"`` (released code) or ``"depict_paper"`` (static).
      power: sharpening exponent $a > 0$ of ``"dec"``.

    Returns:
      ``(n, k)`` target, rows summing to 1, in the dtype of ``q``.

    Raises:
      ValueError: ``q`` not 2-D, NaN/Inf or negative; unknown ``kind``; ``power <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import dec_target
      >>> q = jnp.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
      >>> dec_target(q).round(3).tolist()
      [[0.924, 0.076], [0.632, 0.368], [0.123, 0.877]]

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016. Ghasedi Dizaji, Herandi, Deng, Cai, Huang, "Deep Clustering via Joint
      Convolutional Autoencoder Embedding and Relative Entropy Minimization" (DEPICT),
      ICCV 2017.
    """
    if kind not in _TARGETS:
        raise ValueError(f"`kind` must be one of {_TARGETS}, got {kind!r}.")
    q = _assignments(q, "q")
    out_dtype = q.dtype
    dtype = jnp.promote_types(out_dtype, jnp.float32)
    q = jax.lax.stop_gradient(q.astype(dtype))
    tiny = jnp.finfo(dtype).tiny
    log_f = jnp.log(jnp.maximum(jnp.sum(q, axis=0, keepdims=True), tiny))
    log_q = jnp.log(jnp.maximum(q, tiny))
    if kind == "dec":
        a = jax.lax.stop_gradient(_positive(power, "power", dtype, "DEC uses 2."))
        logits = a * log_q - log_f
    elif kind == "depict":
        logits = 2.0 * log_q - log_f
    else:
        logits = log_q - 0.5 * log_f
    # zero assignments stay zero (their log is floored, so they get ~0 weight)
    p = jax.nn.softmax(jnp.where(q > 0, logits, -jnp.inf), axis=1)
    return jax.lax.stop_gradient(p).astype(out_dtype)


def dec_loss(q: Float[ArrayLike, "n k"], p: Float[ArrayLike, "n k"]) -> Float[Array, ""]:
    r"""DEC's clustering loss: the mean over samples of $\mathrm{KL}(p_i \,\|\, q_i)$.

    $$
        L = \frac1n \sum_{i=1}^n \sum_{j=1}^k p_{ij} \log\frac{p_{ij}}{q_{ij}},
    $$

    with the convention $0\log 0 = 0$. A mean (not DEC's sum) so that its scale does not
    depend on the batch size. Differentiable in ``q`` (the soft assignments, e.g.
    [`soft_assignment`][jaxclust.cluster.soft_assignment] with ``kind="student_t"``) and in
    ``p``; the target of [`dec_target`][jaxclust.cluster.dec_target] carries no gradient.

    Args:
      q: ``(n, k)`` soft assignments (positive where ``p`` is).
      p: ``(n, k)`` target distribution, same shape.

    Returns:
      The loss, a scalar in the common dtype of the inputs.

    Raises:
      ValueError: inputs not 2-D, of different shapes, NaN/Inf or negative.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import dec_loss, dec_target
      >>> q = jnp.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
      >>> round(float(dec_loss(q, dec_target(q))), 4)
      0.0501
      >>> float(dec_loss(q, q))
      0.0

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016.
    """
    q = _assignments(q, "q")
    p = _assignments(p, "p")
    if p.shape != q.shape:
        raise ValueError(f"`p` must have the same shape as `q` {tuple(q.shape)}, got "
                         f"{tuple(p.shape)}.")
    out_dtype = jnp.result_type(q, p)
    dtype = jnp.promote_types(out_dtype, jnp.float32)
    q, p = q.astype(dtype), p.astype(dtype)
    log_q = jnp.log(jnp.maximum(q, jnp.finfo(dtype).tiny))
    kl = jnp.sum(xlogy(p, p) - p * log_q, axis=1)
    return jnp.mean(kl).astype(out_dtype)


def pseudo_label_loss(
    logits: Float[ArrayLike, "n k"],
    codes: Float[ArrayLike, "n k"],
    weights: Float[ArrayLike, " n"] | None = None,
) -> Float[Array, ""]:
    r"""Weighted soft cross-entropy between predicted logits and pseudo-label codes.

    $$
        L = -\frac1n \sum_{i=1}^n w_i \sum_{j=1}^k c_{ij}\,
            \log \operatorname{softmax}(\ell_i)_j ,
    $$

    the loss of P²OT with $c$ the row-normalised codes and $w_i \in [0,1]$ the transported
    fraction of sample $i$ ([`p2ot_codes`][jaxclust.ot.p2ot_codes]: ``codes`` and
    ``weights``), i.e. the cross-entropy with the unnormalised plan $nQ$ as soft target.
    The mean runs over all $n$ samples (not over $\sum w$), so the loss grows with the
    transported mass as in P²OT. ``weights=None`` is plain soft cross-entropy (SwAV,
    SeLa). Differentiable in all arguments; codes from a solver are constants.

    Args:
      logits: ``(n, k)`` predicted logits (temperature already applied).
      codes: ``(n, k)`` soft targets (non-negative; rows usually sum to 1).
      weights: ``(n,)`` non-negative sample weights; ``None`` for ones.

    Returns:
      The loss, a scalar in the common dtype of the inputs.

    Raises:
      ValueError: inputs not 2-D or of different shapes, NaN/Inf, negative codes,
        ``weights`` of the wrong shape or negative.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import pseudo_label_loss
      >>> logits = jnp.array([[2.0, 0.0], [0.0, 2.0]])
      >>> codes = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(pseudo_label_loss(logits, codes)), 4)  # -log(sigmoid(2))
      0.1269
      >>> round(float(pseudo_label_loss(logits, codes, jnp.array([1.0, 0.0]))), 4)
      0.0635

    References:
      Zhang, Ren, He, "P²OT: Progressive Partial Optimal Transport for Deep Imbalanced
      Clustering", ICLR 2024. Asano, Rupprecht, Vedaldi, "Self-labelling via simultaneous
      clustering and representation learning" (SeLa), ICLR 2020.
    """
    lg = checks.as_float_array(logits, "logits")
    checks.check_ndim(lg, "logits", 2, "(n, k)")
    lg = checks.check_finite(lg, "logits")
    c = _assignments(codes, "codes")
    if c.shape != lg.shape:
        raise ValueError(f"`codes` must have the same shape as `logits` {tuple(lg.shape)}, got "
                         f"{tuple(c.shape)}.")
    n = lg.shape[0]
    out_dtype = jnp.result_type(lg, c)
    if weights is not None:
        w = checks.row_weights(weights, n, "logits")
        out_dtype = jnp.result_type(out_dtype, w)
    dtype = jnp.promote_types(out_dtype, jnp.float32)
    per_sample = -jnp.sum(c.astype(dtype) * jax.nn.log_softmax(lg.astype(dtype), axis=1),
                          axis=1)
    if weights is not None:
        per_sample = w.astype(dtype) * per_sample
    return jnp.mean(per_sample).astype(out_dtype)


def _unit_rows(v):
    # scaled by the row's largest entry first, so that huge rows do not overflow the norm
    big = jax.lax.stop_gradient(jnp.max(jnp.abs(v), axis=1, keepdims=True))
    v = v / jnp.where(big > 0, big, 1.0)
    sq = jnp.sum(v * v, axis=1, keepdims=True)
    return v * jax.lax.rsqrt(jnp.maximum(sq, jnp.finfo(v.dtype).tiny))


def _tell_inputs(x, centroids, temperature, normalize):
    # on the unit sphere (normalize) any finite magnitude is fine
    x, c, out_dtype = _points_and_centroids(x, centroids, guard_overflow=not normalize)
    t = _positive(temperature, "temperature", x.dtype, "It scales the squared distances.")
    if normalize:
        x, c = _unit_rows(x), _unit_rows(c)
    return x, c, t, out_dtype


def _tell_logits(x, c, t):
    # TELL's layer: weights W = 2 c, bias b = -||c||^2, logits (x W^T + b) / T; equal to
    # -||x - c||^2 / T up to the per-row constant ||x||^2, which the softmax ignores
    w = 2.0 * c
    b = -jnp.sum(c * c, axis=1)
    lin = x @ w.T + b[None, :]
    # shifted by the row maximum (a constant of the softmax) before dividing by T: a tiny
    # temperature gives one-hot rows, not NaN
    return (lin - jax.lax.stop_gradient(jnp.max(lin, axis=1, keepdims=True))) / t


def tell_assignment(
    x: Float[ArrayLike, "n d"],
    centroids: Float[ArrayLike, "k d"],
    *,
    temperature: float | Float[ArrayLike, ""] = 1.0,
    normalize: bool = False,
) -> Float[Array, "n k"]:
    r"""TELL's cluster layer: soft assignments from a linear layer whose weights are the
    centroids.

    k-means' nearest-centroid rule is a linear layer: since
    $\lVert x - \Omega_j\rVert^2 = \lVert x\rVert^2 - 2\Omega_j^\top x + \lVert\Omega_j\rVert^2$,
    with weights $W_j = 2\Omega_j$ and bias $b_j = -\lVert\Omega_j\rVert^2$,

    $$
        I_j(x) = \operatorname{softmax}_j\Big(\frac{W_j^\top x + b_j}{T}\Big)
               = \frac{e^{-\lVert x - \Omega_j\rVert^2/T}}
                      {\sum_l e^{-\lVert x - \Omega_l\rVert^2/T}},
    $$

    which tends to the hard k-means assignment as $T \to 0$. Each weight vector *is* a
    centroid, which makes the layer interpretable. With ``normalize=True`` points and
    centroids are first projected on the unit sphere (as in TELL's reference code; the bias
    is then the constant $-1$). Differentiable in ``x``, ``centroids`` and ``temperature``.

    Args:
      x: points ``(n, d)``.
      centroids: centroids $\Omega$ ``(k, d)`` (the layer's weights).
      temperature: $T > 0$.
      normalize: L2-normalise the rows of ``x`` and ``centroids`` first (static).

    Returns:
      ``(n, k)`` assignments, rows summing to 1.

    Raises:
      ValueError: shapes not ``(n, d)``/``(k, d)``, NaN/Inf, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import tell_assignment
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
      >>> c = jnp.array([[0.0, 0.0], [2.0, 0.0]])
      >>> tell_assignment(x, c).round(4).tolist()
      [[0.982, 0.018], [0.5, 0.5]]

    References:
      Peng, Li, Tsang, Zhu, Lv, Zhou, "XAI Beyond Classification: Interpretable Neural
      Clustering" (TELL), JMLR 23, 2022.
    """
    x, c, t, out_dtype = _tell_inputs(x, centroids, temperature, normalize)
    return jax.nn.softmax(_tell_logits(x, c, t), axis=1).astype(out_dtype)


def tell_loss(
    x: Float[ArrayLike, "n d"],
    centroids: Float[ArrayLike, "k d"],
    *,
    temperature: float | Float[ArrayLike, ""] = 1.0,
    normalize: bool = False,
) -> Float[Array, ""]:
    r"""TELL's differentiable k-means objective.

    $$
        L = \frac1n \sum_{i=1}^n \sum_{j=1}^k I_j(x_i)\,\lVert x_i - \Omega_j\rVert^2,
    $$

    with the soft assignments $I$ of [`tell_assignment`][jaxclust.cluster.tell_assignment]
    (the k-means layer with weights $2\Omega$ and bias $-\lVert\Omega\rVert^2$). As
    $T \to 0$ it is the k-means loss (mean inertia). The gradient flows through both the
    distances and the assignments (TELL trains the layer, i.e. the centroids, and the
    features producing $x$ by back-propagation); the part through the assignments vanishes
    as $T \to 0$, where this is the envelope gradient of k-means that TELL's reference code
    uses (hard assignments held fixed). It exceeds the soft k-means free energy of
    [`kmeans_loss`][jaxclust.cluster.kmeans_loss] by $T$ times the mean entropy of the
    assignments.

    Args:
      x: points ``(n, d)``.
      centroids: centroids $\Omega$ ``(k, d)``.
      temperature: $T > 0$.
      normalize: L2-normalise the rows of ``x`` and ``centroids`` first (TELL's reference
        code works on the unit sphere; static).

    Returns:
      The loss, a scalar in the dtype of the inputs.

    Raises:
      ValueError: shapes not ``(n, d)``/``(k, d)``, NaN/Inf, ``temperature <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import tell_loss
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
      >>> c = jnp.array([[0.5, 0.0], [3.0, 0.0]])
      >>> round(float(tell_loss(x, c, temperature=0.01)), 4)  # hard: (0.25 + 0.25) / 3
      0.1667

    References:
      Peng, Li, Tsang, Zhu, Lv, Zhou, "XAI Beyond Classification: Interpretable Neural
      Clustering" (TELL), JMLR 23, 2022.
    """
    x, c, t, out_dtype = _tell_inputs(x, centroids, temperature, normalize)
    q = jax.nn.softmax(_tell_logits(x, c, t), axis=1)
    return jnp.mean(jnp.sum(q * _sq_dists(x, c), axis=1)).astype(out_dtype)
