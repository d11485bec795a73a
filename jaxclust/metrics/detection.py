r"""Out-of-distribution detection metrics: AUROC, FPR at a fixed TPR, AUPR-In and AUPR-Out.

Every function takes detection ``scores`` of shape ``(n,)`` and ``labels`` of shape ``(n,)``
with **1 (or True) for in-distribution (ID) samples and 0 for out-of-distribution (OOD)
samples**. Scores follow the convention of [`jaxclust.ood`][jaxclust.ood]: **higher means
more in-distribution**.

Two conventions exist in the literature for which class is "positive":

* ``positive="id"`` (the default, the classic one of Hendrycks & Gimpel and Liang et al.):
  ID samples are positives, scored by ``scores``. FPR@95 is then the fraction of OOD samples
  that are still accepted when the threshold keeps 95% of the ID samples.
* ``positive="ood"`` (OpenOOD v1.5): OOD samples are positives, scored by ``-scores``.
  FPR@95 is the fraction of ID samples rejected when 95% of OOD samples are detected.

AUROC is the same in both conventions; FPR@TPR is not. ``aupr_in`` and ``aupr_out`` are the
areas under the precision-recall curve with ID, respectively OOD, as the positive class.

All metrics are exact with tied scores (ties count one half in the AUROC, a tied group of
scores is one threshold in the curves), use sorting only (no host code) and are jittable and
vmappable; they are piecewise constant in the scores, so their gradient is zero.
"""

from __future__ import annotations

from fractions import Fraction

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._core import checks

__all__ = ["aupr_in", "aupr_out", "auroc", "fpr_at_tpr"]

POSITIVES = ("id", "ood")
_TPR_DENOMINATOR = 10_000  # tpr is read as a fraction num / den with den <= this


# ------------------------------------------------------------------------------------------
# validation


def _validate(scores, labels):
    """``(scores, is_id)``: finite 1-D float scores and a boolean ID mask holding both
    classes (value checks through ``checks.ensure``)."""
    s = checks.as_float_array(scores, "scores")
    checks.check_ndim(s, "scores", 1, "(n,)")
    if labels is None:
        raise ValueError("`labels` is None; pass an array of 0/1 (OOD/ID) labels.")
    try:
        lab = jnp.asarray(labels)
    except (TypeError, ValueError) as err:
        raise ValueError("`labels` must be an array of 0/1 (OOD/ID) labels, got "
                         f"{type(labels).__name__}.") from err
    checks.check_ndim(lab, "labels", 1, "(n,)")
    if lab.shape[0] != s.shape[0]:
        raise ValueError(f"`scores` and `labels` must have the same length, got {s.shape[0]} "
                         f"and {lab.shape[0]}; pass one label (1 = ID, 0 = OOD) per score.")
    if s.shape[0] < 2:
        raise ValueError(f"`scores` must hold at least two samples (one ID, one OOD), got "
                         f"{s.shape[0]}.")
    if lab.dtype != jnp.bool_:
        lab = checks.ensure(lab, (lab != 0) & (lab != 1),
                            "`labels` must contain only 0 (OOD) and 1 (ID); convert e.g. with "
                            "`labels == id_class`.")
    is_id = lab.astype(bool)
    n_id = jnp.sum(is_id)
    is_id = checks.ensure(is_id, (n_id == 0) | (n_id == is_id.shape[0]),
                          "`labels` must contain both classes (1 = ID and 0 = OOD); a "
                          "detection metric is undefined with a single class.")
    s = checks.check_finite(s, "scores")
    # float32 at least: counts and rates are accumulated there
    s = s.astype(jnp.promote_types(s.dtype, jnp.float32))
    # -0.0 and +0.0 are one tied score (a sort may order them apart)
    return jnp.where(s == 0, jnp.zeros_like(s), s), is_id


def _positive(positive: str) -> str:
    if positive not in POSITIVES:
        raise ValueError(f"`positive` must be 'id' or 'ood', got {positive!r}.")
    return positive


def _oriented(scores, is_id, positive: str):
    """``(s, pos)``: scores oriented so that higher means more positive, and the positive
    mask, for the chosen convention."""
    if positive == "id":
        return scores, is_id
    return -scores, ~is_id


# ------------------------------------------------------------------------------------------
# metrics


def auroc(
    scores: Float[ArrayLike, " n"], labels: Int[ArrayLike, " n"] | Bool[ArrayLike, " n"]
) -> Float[Array, ""]:
    r"""Area under the ROC curve of ID (positive) against OOD samples.

    With $s$ the scores, $\mathcal{I}$ the ID and $\mathcal{O}$ the OOD samples,

    $$
        \mathrm{AUROC} = \frac{1}{|\mathcal{I}|\,|\mathcal{O}|}
        \sum_{i\in\mathcal{I}}\sum_{o\in\mathcal{O}}
        \Big(\mathbb{1}[s_i > s_o] + \tfrac12\,\mathbb{1}[s_i = s_o]\Big),
    $$

    the Mann-Whitney statistic, which equals the trapezoidal area under the ROC curve with
    tied scores (`sklearn.metrics.roc_auc_score`). Counts come from two ``searchsorted``
    calls on the sorted OOD scores, so the cost is $O(n \log n)$ and the counts are exact
    integers. AUROC is the same whether ID or OOD is called positive (OOD scored by
    $-s$). Higher scores must mean more in-distribution.

    Args:
      scores: detection scores, shape ``(n,)``, higher = more in-distribution.
      labels: ``(n,)``, 1 / True for ID and 0 / False for OOD samples.

    Returns:
      The AUROC in $[0, 1]$, a float scalar (0.5 for a random score).

    Raises:
      ValueError: ``scores`` or ``labels`` not 1-D, of different lengths, labels other
        than 0/1 or of a single class, NaN/Inf scores.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics.detection import auroc
      >>> s = jnp.array([0.9, 0.8, 0.4, 0.4, 0.1])
      >>> round(float(auroc(s, jnp.array([1, 1, 1, 0, 0]))), 4)  # (2 + 2 + 1.5) / 6
      0.9167

    References:
      Hanley and McNeil, "The meaning and use of the area under a receiver operating
      characteristic (ROC) curve", Radiology 143 (1982). Hendrycks and Gimpel, "A Baseline
      for Detecting Misclassified and Out-of-Distribution Examples in Neural Networks",
      ICLR 2017.
    """
    s, is_id = _validate(scores, labels)
    n_id = jnp.sum(is_id)
    n_ood = s.shape[0] - n_id
    # OOD scores sorted ascending; ID scores pushed to +inf so they sort after all of them
    ood_sorted = jnp.sort(jnp.where(is_id, jnp.inf, s))
    below = jnp.searchsorted(ood_sorted, s, side="left")  # OOD scores < s
    below_or_tied = jnp.minimum(jnp.searchsorted(ood_sorted, s, side="right"), n_ood)
    # per ID sample: (#OOD below + #OOD tied / 2) / n_ood, in [0, 1]
    frac = (below + below_or_tied).astype(s.dtype) / (2 * n_ood).astype(s.dtype)
    return jnp.sum(jnp.where(is_id, frac, 0.0)) / n_id.astype(s.dtype)


def fpr_at_tpr(
    scores: Float[ArrayLike, " n"],
    labels: Int[ArrayLike, " n"] | Bool[ArrayLike, " n"],
    *,
    tpr: float = 0.95,
    positive: str = "id",
) -> Float[Array, ""]:
    r"""False-positive rate at the first threshold where the true-positive rate reaches ``tpr``.

    With the positives $\mathcal{P}$ and negatives $\mathcal{N}$ of the convention and
    oriented scores $t$ ($t = s$ for ``positive="id"``, $t = -s$ for ``"ood"``), let
    $\mathrm{TPR}(\theta) = |\{p : t_p \ge \theta\}|/|\mathcal{P}|$ and
    $\mathrm{FPR}(\theta) = |\{q \in \mathcal{N} : t_q \ge \theta\}|/|\mathcal{N}|$. Then

    $$
        \mathrm{FPR@TPR} = \mathrm{FPR}(\theta^\star), \qquad
        \theta^\star = \max\{\theta : \mathrm{TPR}(\theta) \ge \mathrm{tpr}\},
    $$

    the lowest FPR of any threshold that keeps at least a fraction ``tpr`` of the positives.
    This is ``fpr[np.searchsorted(tpr_curve, tpr)]`` on
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``; $\theta^\star$ is the
    $\lceil \mathrm{tpr}\,|\mathcal{P}|\rceil$-th largest positive score, and tied scores are
    one threshold. The count $\lceil \mathrm{tpr}\,|\mathcal{P}|\rceil$ is computed in
    integers, with ``tpr`` read as the nearest fraction of denominator at most $10^4$
    (0.95 = 19/20), so rates equal to ``tpr`` exactly are never lost to rounding.

    * ``positive="id"`` (default, the classic FPR@95TPR): the fraction of OOD samples
      accepted when 95% of ID samples are kept.
    * ``positive="ood"`` (OpenOOD v1.5): the fraction of ID samples rejected when 95% of OOD
      samples are detected.

    Args:
      scores: detection scores, shape ``(n,)``, higher = more in-distribution.
      labels: ``(n,)``, 1 / True for ID and 0 / False for OOD samples.
      tpr: target true-positive rate in $(0, 1]$ (static).
      positive: ``"id"`` or ``"ood"`` (static), which class is positive.

    Returns:
      The FPR in $[0, 1]$, a float scalar (lower is better).

    Raises:
      ValueError: bad ``scores`` / ``labels`` (see [`auroc`][jaxclust.metrics.detection.auroc]),
        ``tpr`` outside $(0, 1]$ or an unknown ``positive``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics.detection import fpr_at_tpr
      >>> s = jnp.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
      >>> y = jnp.array([1, 1, 0, 1, 0, 0])
      >>> round(float(fpr_at_tpr(s, y)), 4), round(float(fpr_at_tpr(s, y, positive="ood")), 4)
      (0.3333, 0.3333)

    References:
      Liang, Li, Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection
      in Neural Networks" (ODIN), ICLR 2018. Zhang et al., "OpenOOD v1.5: Enhanced
      Benchmark for Out-of-Distribution Detection", 2023.
    """
    positive = _positive(positive)
    if isinstance(tpr, bool) or not isinstance(tpr, (int, float)) or not 0.0 < tpr <= 1.0:
        raise ValueError(f"`tpr` must be a number in (0, 1], got {tpr!r}.")
    s, is_id = _validate(scores, labels)
    t, pos = _oriented(s, is_id, positive)
    n_pos = jnp.sum(pos)
    n_neg = t.shape[0] - n_pos
    dtype = t.dtype
    # smallest count k with k / n_pos >= tpr, in exact integer arithmetic: with
    # tpr = num / den, k = ceil(num n_pos / den) = num a + ceil(num b / den) for
    # n_pos = a den + b (no overflow, no float division, which XLA may round)
    frac = Fraction(tpr).limit_denominator(_TPR_DENOMINATOR)
    num, den = frac.numerator, frac.denominator
    a, b = n_pos // den, n_pos % den
    k = jnp.maximum(num * a + (num * b + den - 1) // den, 1)
    # the k-th largest positive score is the threshold
    pos_desc = -jnp.sort(jnp.where(pos, -t, jnp.inf))
    theta = pos_desc[k - 1]
    false_pos = jnp.sum(jnp.where(pos, 0, (t >= theta).astype(jnp.int32)))
    return false_pos.astype(dtype) / n_neg.astype(dtype)


def _aupr(t, pos):
    """Trapezoidal area under the precision-recall curve of positives ``pos`` scored by ``t``
    (higher = more positive), one curve point per distinct score."""
    dtype = t.dtype
    order = jnp.argsort(-t)
    t_desc = -t[order]  # ascending in -t
    tp = jnp.cumsum(pos[order].astype(jnp.int32))
    fp = jnp.cumsum((~pos[order]).astype(jnp.int32))
    # each position takes the counts at the end of its tied group: a tied group is one
    # threshold, its inner positions repeat the same point (zero-width trapezoids)
    end = jnp.searchsorted(t_desc, t_desc, side="right") - 1
    tp, fp = tp[end], fp[end]
    precision = tp.astype(dtype) / (tp + fp).astype(dtype)
    precision = jnp.concatenate([jnp.ones((1,), dtype), precision])
    # recall steps as integer differences: repeated points get exactly zero width (XLA's
    # vectorised division may round equal quotients differently)
    d_tp = jnp.diff(tp, prepend=jnp.zeros((1,), tp.dtype))
    area = jnp.sum(d_tp.astype(dtype) * (precision[1:] + precision[:-1]))
    return area / (2 * tp[-1]).astype(dtype)


def aupr_in(
    scores: Float[ArrayLike, " n"], labels: Int[ArrayLike, " n"] | Bool[ArrayLike, " n"]
) -> Float[Array, ""]:
    r"""Area under the precision-recall curve with ID samples as positives.

    With ID samples as positives scored by the scores $s$, one point
    $(R_j, P_j)$ per distinct score (recall $R_j = \mathrm{TP}_j/|\mathcal{P}|$,
    precision $P_j = \mathrm{TP}_j/(\mathrm{TP}_j + \mathrm{FP}_j)$ at the threshold
    $\theta_j$, tied scores forming one threshold) and the starting point $(0, 1)$,

    $$
        \mathrm{AUPR} = \sum_j (R_j - R_{j-1})\,\frac{P_j + P_{j-1}}{2},
    $$

    the trapezoidal area under `sklearn.metrics.precision_recall_curve`
    (``sklearn.metrics.auc(recall, precision)``), the number reported by OpenOOD and most
    OOD papers. **It is not average precision** (`sklearn.metrics.average_precision_score`,
    $\sum_j (R_j - R_{j-1}) P_j$), the step-wise area: linear interpolation of precision
    between operating points is optimistic, so the trapezoidal AUPR is usually a little
    higher than AP (equal on a perfect detector).

    Args:
      scores: detection scores, shape ``(n,)``, higher = more in-distribution.
      labels: ``(n,)``, 1 / True for ID and 0 / False for OOD samples.

    Returns:
      The AUPR in $[0, 1]$, a float scalar.

    Raises:
      ValueError: bad ``scores`` / ``labels`` (see [`auroc`][jaxclust.metrics.detection.auroc]).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics.detection import aupr_in
      >>> s = jnp.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
      >>> y = jnp.array([1, 1, 0, 1, 0, 0])
      >>> round(float(aupr_in(s, y)), 4)
      0.9028

    References:
      Davis and Goadrich, "The Relationship Between Precision-Recall and ROC Curves",
      ICML 2006. Hendrycks and Gimpel, "A Baseline for Detecting Misclassified and
      Out-of-Distribution Examples in Neural Networks", ICLR 2017.
    """
    s, is_id = _validate(scores, labels)
    return _aupr(s, is_id)


def aupr_out(
    scores: Float[ArrayLike, " n"], labels: Int[ArrayLike, " n"] | Bool[ArrayLike, " n"]
) -> Float[Array, ""]:
    r"""Area under the precision-recall curve with OOD samples as positives.

    The trapezoidal area of [`aupr_in`][jaxclust.metrics.detection.aupr_in] with the roles
    swapped: OOD samples are the positives and are ranked by $-s$ (low scores first).
    Like AUPR-In it is the area under `sklearn.metrics.precision_recall_curve`, not
    average precision.

    Args:
      scores: detection scores, shape ``(n,)``, higher = more in-distribution.
      labels: ``(n,)``, 1 / True for ID and 0 / False for OOD samples.

    Returns:
      The AUPR in $[0, 1]$, a float scalar.

    Raises:
      ValueError: bad ``scores`` / ``labels`` (see [`auroc`][jaxclust.metrics.detection.auroc]).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics.detection import aupr_out
      >>> s = jnp.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
      >>> y = jnp.array([1, 1, 0, 1, 0, 0])
      >>> round(float(aupr_out(s, y)), 4)
      0.9028

    References:
      Davis and Goadrich, "The Relationship Between Precision-Recall and ROC Curves",
      ICML 2006. Hendrycks and Gimpel, "A Baseline for Detecting Misclassified and
      Out-of-Distribution Examples in Neural Networks", ICLR 2017.
    """
    s, is_id = _validate(scores, labels)
    return _aupr(-s, ~is_id)
