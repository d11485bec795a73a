r"""Clustering metrics: contingency table, NMI, AMI, ARI, clustering accuracy, inertia,
silhouette (mean and per sample), Calinski-Harabasz and Davies-Bouldin.

Labels are integer arrays of shape ``(n,)`` with values in ``[0, k)``. The number of labels
``k`` (``n_true`` / ``n_pred`` / ``k``) fixes array shapes, so it is static: pass it under
``jit`` / ``vmap``; eagerly it may be left out and is inferred as ``max(labels) + 1``.
Label values that never occur (empty rows or columns of the contingency table) change
nothing, so labels need not be contiguous.

Everything here is pure and jittable except `clustering_accuracy`, whose optimal
one-to-one matching (the Hungarian algorithm) runs on the host with SciPy.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._core import checks
from .._core.costs import safe_sqrt
from .._core.groups import grouped_row_min

__all__ = ["adjusted_mutual_info", "ari", "calinski_harabasz", "clustering_accuracy",
           "contingency", "davies_bouldin", "inertia", "nmi", "silhouette",
           "silhouette_samples"]

AVERAGES = ("arithmetic", "geometric", "min", "max")
_PREC = jax.lax.Precision.HIGHEST
_SILHOUETTE_BLOCK = 64  # rows of distances computed at once by the silhouette


# ------------------------------------------------------------------------------------------
# validation


def _labels(labels, name: str) -> jax.Array:
    """A 1-D, non-empty integer label array with no negative entries (value check)."""
    if labels is None:
        raise ValueError(f"`{name}` is None; pass an array of integer labels.")
    try:
        arr = jnp.asarray(labels)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be an array of integer labels, "
                         f"got {type(labels).__name__}.") from err
    checks.check_ndim(arr, name, 1, "(n,)")
    if arr.dtype == jnp.bool_:
        arr = arr.astype(jnp.int32)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise ValueError(f"`{name}` must hold integer labels, got dtype {arr.dtype}; "
                         "cast with .astype(int).")
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one label, got shape (0,).")
    return checks.ensure_value(arr, lambda v, xp: v < 0,
                               f"`{name}` has negative entries; labels must lie in [0, k) "
                               "(relabel, e.g. with np.unique(..., return_inverse=True)).")


def _same_length(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same length, got "
                         f"{a.shape[0]} and {b.shape[0]}.")


def _num_labels(labels: jax.Array, size, name: str, size_name: str) -> tuple[jax.Array, int]:
    """``(labels, size)``: the static number of labels, inferred eagerly when ``None``;
    labels ``>= size`` are a value error."""
    if size is None:
        if checks.is_traced(labels):
            raise ValueError(f"`{size_name}` must be given (a static int) when `{name}` is "
                             "traced (under jit, vmap or grad): it fixes the output shape.")
        host = checks.host_view(labels)
        return labels, int(np.max(host) if host is not None else jnp.max(labels)) + 1
    size = checks.check_int(size, size_name)
    labels = checks.ensure_value(labels, lambda v, xp: v >= size,
                                 f"`{name}` has entries >= `{size_name}` = {size}; labels must "
                                 f"lie in [0, {size_name}).")
    return labels, size


def _points(x, name: str) -> jax.Array:
    arr = checks.as_float_array(x, name)
    checks.check_ndim(arr, name, 2, "(n, d)")
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one point, got shape {tuple(arr.shape)}.")
    return checks.check_finite(arr, name)


def pow2_scale(m: jax.Array) -> jax.Array:
    """A power of two in ``(m / 2, m]`` for a finite ``m > 0`` (1 for ``m = 0``), without
    gradient: dividing by it is exact and brings magnitudes to ``[-2, 2]``, so squares
    neither overflow (data ~ 1e20) nor underflow (data ~ 1e-20) in float32."""
    _, e = jnp.frexp(m)  # m = f 2^e, f in [0.5, 1)
    s = jnp.ldexp(jnp.ones_like(m), e - 1)
    return jax.lax.stop_gradient(jnp.where(m > 0, s, jnp.ones_like(m)))


def _float_dtype(*arrays) -> jnp.dtype:
    dt = jnp.result_type(float, *[a.dtype for a in arrays if jnp.issubdtype(a.dtype,
                                                                            jnp.floating)])
    # low-precision inputs accumulate in float32
    return jnp.promote_types(dt, jnp.float32)


# ------------------------------------------------------------------------------------------
# contingency table and the metrics built on it


def contingency(
    labels_true: Int[ArrayLike, " n"],
    labels_pred: Int[ArrayLike, " n"],
    *,
    n_true: int | None = None,
    n_pred: int | None = None,
) -> Int[Array, "n_true n_pred"]:
    r"""Contingency table of two labellings.

    $$
        N_{ij} = \#\{\, s : \mathrm{true}_s = i,\ \mathrm{pred}_s = j \,\}, \qquad
        0 \le i < n_\mathrm{true},\ 0 \le j < n_\mathrm{pred},
    $$

    computed with one ``segment_sum`` (no ``n x k`` one-hot matrix).

    Args:
      labels_true: reference labels in ``[0, n_true)``, shape ``(n,)``.
      labels_pred: predicted labels in ``[0, n_pred)``, shape ``(n,)``.
      n_true: number of rows (static). Required under ``jit`` / ``vmap``; eagerly
        ``max(labels_true) + 1`` by default.
      n_pred: number of columns (static), likewise.

    Returns:
      The ``(n_true, n_pred)`` integer count matrix; it sums to ``n``.

    Raises:
      ValueError: labels not 1-D integers, of different lengths, negative or out of range,
        or a size missing under tracing.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import contingency
      >>> contingency(jnp.array([0, 0, 1, 1]), jnp.array([1, 1, 1, 0])).tolist()
      [[0, 2], [1, 1]]

    References:
      Hubert and Arabie, *Comparing partitions*, Journal of Classification 2 (1985).
    """
    return _contingency(*_pair(labels_true, labels_pred, n_true, n_pred))


@partial(jax.jit, static_argnums=(2, 3))
def _contingency(lt, lp, n_true: int, n_pred: int) -> jax.Array:
    idx = lt.astype(jnp.int32) * n_pred + lp.astype(jnp.int32)
    counts = jax.ops.segment_sum(jnp.ones_like(idx), idx, num_segments=n_true * n_pred)
    return counts.reshape(n_true, n_pred)


def _pair(labels_true, labels_pred, n_true, n_pred):
    """``(labels_true, labels_pred, n_true, n_pred)`` validated as by `contingency`, with
    the static table sizes (the inputs of the jitted scores below: an eager call compiles
    one program per shape, not one per operation)."""
    lt = _labels(labels_true, "labels_true")
    lp = _labels(labels_pred, "labels_pred")
    _same_length(lt, lp, "labels_true", "labels_pred")
    lt, n_true = _num_labels(lt, n_true, "labels_true", "n_true")
    lp, n_pred = _num_labels(lp, n_pred, "labels_pred", "n_pred")
    if n_true * n_pred >= 2**31:
        raise ValueError(f"the contingency table of `n_true` * `n_pred` = {n_true} * {n_pred} "
                         "cells exceeds 2^31 - 1 entries; relabel to contiguous values (e.g. "
                         "np.unique(..., return_inverse=True)) or use fewer labels.")
    return lt, lp, n_true, n_pred


def _counts(lt, lp, n_true: int, n_pred: int):
    """``(table, a, b, n)``: the integer contingency table of validated labels, its integer
    row and column sums and the static number of samples (the inputs of NMI and ARI)."""
    table = _contingency(lt, lp, n_true, n_pred)
    return table, jnp.sum(table, axis=1), jnp.sum(table, axis=0), lt.shape[0]


def _xlogx(p):
    pos = p > 0
    return jnp.where(pos, p * jnp.log(jnp.where(pos, p, 1.0)), 0.0)


def _entropy(counts, n: int, dt) -> jax.Array:
    """``-sum (c/n) log(c/n)``, with ``log(c/n) = log1p((c - n)/n)`` from the exact integer
    ``c - n`` for a dominant cluster (``c/n`` close to 1)."""
    p = counts.astype(dt) / n
    # log1p near p = 1 (where log(p) loses the digits of 1 - p), log elsewhere (log1p
    # near -1 is ill-conditioned)
    big = 2 * counts > n
    logp = jnp.where(big, jnp.log1p(jnp.where(big, counts - n, 0).astype(dt) / n),
                     jnp.log(jnp.where(counts > 0, p, 1.0)))
    return -jnp.sum(jnp.where(counts > 0, p * logp, 0.0))


def _exact_delta(counts, a, b, n: int, dt) -> jax.Array:
    """``delta_ij = N_ij n - a_i b_j`` from the integer counts, exact while ``|delta| <
    2^24`` (then rounded once): the product is taken modulo 2^32 in unsigned integers
    (exact, wrapping) and its multiple of 2^32 recovered from a float estimate (whose error
    ``~ 1e-7 n^2`` is far below 2^31 for n < 10^8)."""
    u = jnp.uint32
    d_mod = counts.astype(u) * u(n) - a.astype(u)[:, None] * b.astype(u)[None, :]
    d_mod = jax.lax.bitcast_convert_type(d_mod, jnp.int32).astype(dt)  # in [-2^31, 2^31)
    af, bf = a.astype(dt), b.astype(dt)
    d_est = counts.astype(dt) * dt.type(n) - af[:, None] * bf[None, :]
    wraps = jnp.round((d_est - d_mod) / dt.type(2.0 ** 32))
    return d_mod + wraps * dt.type(2.0 ** 32)


def _f_mi(x):
    """``(1 + x) log(1 + x) - x >= 0`` for ``x >= -1``, accurate for small ``|x|`` (series
    ``sum_k>=2 (-1)^k x^k / (k (k - 1))`` below 0.1, truncation error < 1e-9 relative)."""
    small = jnp.abs(x) < 0.1
    xs = jnp.where(small, x, 0.0)
    series = sum((-1.0) ** k * xs ** k / (k * (k - 1)) for k in range(2, 10))
    xl = jnp.where(small, 0.5, x)
    one_plus = 1.0 + xl
    direct = jnp.where(one_plus > 0, one_plus * jnp.log1p(jnp.where(one_plus > 0, xl, 0.0)),
                       0.0) - xl
    return jnp.where(small, series, direct)


def _mutual_information(counts, a, b, n: int, dt) -> jax.Array:
    r"""$I = \sum_{ij} q_{ij} f(x_{ij})$ with $q_{ij} = a_i b_j / n^2$,
    $x_{ij} = N_{ij} n / (a_i b_j) - 1$ and $f(x) = (1+x)\log(1+x) - x \ge 0$: the same as
    $\sum p_{ij}\log(p_{ij}/q_{ij})$ (the added $\sum (q_{ij} - p_{ij})$ is 0) but a sum of
    non-negative terms, each accurate to a few ulps because $x_{ij}$ comes from the exact
    integer $N_{ij}n - a_ib_j$: no cancellation between terms, none inside $\log$ of a
    ratio close to 1 (which cost ~1% on near-independent labellings in float32)."""
    af, bf = a.astype(dt), b.astype(dt)
    ab = af[:, None] * bf[None, :]
    used = ab > 0
    x = _exact_delta(counts, a, b, n, dt) / jnp.where(used, ab, 1.0)
    # empty cells: x = -1 and f = 1 exactly
    terms = jnp.where(counts > 0, _f_mi(jnp.maximum(x, -1.0)), 1.0)
    q = (af / n)[:, None] * (bf / n)[None, :]
    return jnp.sum(jnp.where(used, q * terms, 0.0))


def nmi(
    labels_true: Int[ArrayLike, " n"],
    labels_pred: Int[ArrayLike, " n"],
    *,
    average: str = "arithmetic",
    n_true: int | None = None,
    n_pred: int | None = None,
) -> Float[Array, ""]:
    r"""Normalised mutual information between two labellings.

    With $p_{ij} = N_{ij}/n$ the joint frequencies of the contingency table, $a$ and $b$
    its marginals,

    $$
        \mathrm{NMI} = \frac{I(U, V)}{\mathrm{mean}(H(U), H(V))}, \qquad
        I(U, V) = \sum_{ij} p_{ij} \log\frac{p_{ij}}{a_i b_j}, \quad
        H(U) = -\sum_i a_i \log a_i,
    $$

    where the mean is ``average``: the arithmetic mean $(H(U)+H(V))/2$ (the default, as in
    scikit-learn), the geometric mean $\sqrt{H(U)H(V)}$, the ``min`` or the ``max``. As in
    `sklearn.metrics.normalized_mutual_info_score`, two single-cluster labellings give
    1 and zero mutual information gives 0 (exactly 0 when one labelling is single-cluster).
    Frequencies come from the exact integer counts and the result is clipped to $[0, 1]$
    (float32 rounding cannot leave the range). Symmetric, invariant to relabelling.

    Args:
      labels_true: reference labels in ``[0, n_true)``, shape ``(n,)``.
      labels_pred: predicted labels in ``[0, n_pred)``, shape ``(n,)``.
      average: ``"arithmetic"``, ``"geometric"``, ``"min"`` or ``"max"`` (static).
      n_true: number of true labels (static); required under ``jit`` / ``vmap``.
      n_pred: number of predicted labels (static); required under ``jit`` / ``vmap``.

    Returns:
      The NMI, a float scalar.

    Raises:
      ValueError: bad labels (see `contingency`) or an unknown ``average``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import nmi
      >>> float(nmi(jnp.array([0, 0, 1, 1]), jnp.array([1, 1, 0, 0])))
      1.0
      >>> round(float(nmi(jnp.array([0, 0, 1, 1]), jnp.array([0, 0, 0, 1]))), 4)
      0.3437

    References:
      Strehl and Ghosh, *Cluster ensembles — a knowledge reuse framework for combining
      multiple partitions*, JMLR 3 (2002); Vinh, Epps and Bailey, *Information theoretic
      measures for clusterings comparison*, JMLR 11 (2010).
    """
    if average not in AVERAGES:
        raise ValueError(f"`average` must be one of {AVERAGES}, got {average!r}.")
    return _nmi(*_pair(labels_true, labels_pred, n_true, n_pred), average)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _nmi(lt, lp, n_true: int, n_pred: int, average: str) -> jax.Array:
    counts, a, b, n = _counts(lt, lp, n_true, n_pred)
    dt = _float_dtype()
    # frequencies from exact integer counts: a single cluster has frequency exactly 1 and
    # entropy exactly 0 (a float sum of the p_ij would give 1 - delta and rounding noise)
    h_true, h_pred = _entropy(a, n, dt), _entropy(b, n, dt)
    mi = _mutual_information(counts, a, b, n, dt)
    if average == "arithmetic":
        norm = 0.5 * (h_true + h_pred)
    elif average == "geometric":
        norm = jnp.sqrt(h_true * h_pred)
    elif average == "min":
        norm = jnp.minimum(h_true, h_pred)
    else:
        norm = jnp.maximum(h_true, h_pred)
    # I <= min(H(U), H(V)) <= mean: the ratio lies in [0, 1]; clip the rounding
    value = jnp.where((mi > 0) & (norm > 0),
                      jnp.clip(mi / jnp.where(norm > 0, norm, 1.0), 0.0, 1.0), 0.0)
    # scikit-learn's conventions, exactly: both single-cluster -> 1, one of them -> 0
    single_true, single_pred = jnp.sum(a > 0) == 1, jnp.sum(b > 0) == 1
    return jnp.where(single_true | single_pred,
                     jnp.where(single_true & single_pred, 1.0, 0.0).astype(value.dtype), value)


def ari(
    labels_true: Int[ArrayLike, " n"],
    labels_pred: Int[ArrayLike, " n"],
    *,
    n_true: int | None = None,
    n_pred: int | None = None,
) -> Float[Array, ""]:
    r"""Adjusted Rand index between two labellings.

    Counting pairs of points: $TP$ pairs together in both labellings, $TN$ apart in both,
    $FP$ together only in ``labels_pred``, $FN$ together only in ``labels_true``,

    $$
        \mathrm{ARI} = \frac{2\,(TP \cdot TN - FN \cdot FP)}
        {(TP + FN)(FN + TN) + (TP + FP)(FP + TN)},
    $$

    the Rand index corrected for chance (expected value 0 for random labellings, 1 for
    identical partitions, possibly negative). As in
    `sklearn.metrics.adjusted_rand_score`, identical partitions (``FP = FN = 0``,
    which includes two all-one-cluster labellings) give exactly 1, and a single-cluster
    labelling against any other gives exactly 0.

    Args:
      labels_true: reference labels in ``[0, n_true)``, shape ``(n,)``.
      labels_pred: predicted labels in ``[0, n_pred)``, shape ``(n,)``.
      n_true: number of true labels (static); required under ``jit`` / ``vmap``.
      n_pred: number of predicted labels (static); required under ``jit`` / ``vmap``.

    Returns:
      The ARI, a float scalar.

    Raises:
      ValueError: bad labels (see `contingency`).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import ari
      >>> float(ari(jnp.array([0, 0, 1, 1]), jnp.array([1, 1, 0, 0])))
      1.0
      >>> round(float(ari(jnp.array([0, 0, 1, 1]), jnp.array([0, 0, 1, 2]))), 4)
      0.5714

    References:
      Hubert and Arabie, *Comparing partitions*, Journal of Classification 2 (1985).
    """
    return _ari(*_pair(labels_true, labels_pred, n_true, n_pred))


@partial(jax.jit, static_argnums=(2, 3))
def _ari(lt, lp, n_true: int, n_pred: int) -> jax.Array:
    counts, a_int, b_int, n = _counts(lt, lp, n_true, n_pred)
    dt = _float_dtype()
    # ordered pair counts over n^2, each a sum of non-negative products of the counts with
    # exact integer differences (a float a_i - p_ij would lose the digits of a dominant
    # cluster): together in both, only in labels_true, only in labels_pred, apart in both
    p = counts.astype(dt) / n

    def pairs(other):
        return jnp.sum(p * (other.astype(dt) / n))

    tp = pairs(counts - 1)  # exactly 0 for singleton cells
    fn = pairs(a_int[:, None] - counts)
    fp = pairs(b_int[None, :] - counts)
    tn = pairs(n - a_int[:, None] - b_int[None, :] + counts)
    num = 2.0 * (tp * tn - fn * fp)
    den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    agree = (fp == 0) & (fn == 0)
    value = jnp.where(agree, 1.0, jnp.minimum(num / jnp.where(agree, 1.0, den), 1.0))
    # exactly one single-cluster labelling: TN = 0 and FP * FN = 0, so ARI = 0 exactly (the
    # float TN above is rounding noise, scikit-learn counts pairs in integers)
    single_true, single_pred = jnp.sum(a_int > 0) == 1, jnp.sum(b_int > 0) == 1
    return jnp.where(single_true != single_pred, jnp.zeros_like(value), value)


def clustering_accuracy(
    labels_true: Int[ArrayLike, " n"],
    labels_pred: Int[ArrayLike, " n"],
    *,
    n_true: int | None = None,
    n_pred: int | None = None,
) -> float | Float[Array, ""]:
    r"""Clustering accuracy under the best one-to-one matching of clusters to classes.

    $$
        \mathrm{ACC} = \max_{\sigma} \frac{1}{n} \sum_s
        \mathbf{1}[\mathrm{true}_s = \sigma(\mathrm{pred}_s)],
    $$

    over injective maps $\sigma$ from predicted clusters to classes (with unequal numbers of
    clusters and classes, the surplus clusters match nothing and count as errors). The
    maximum is a linear assignment problem on the contingency table. On concrete arrays it
    is solved on the host by SciPy (`scipy.optimize.linear_sum_assignment`) and a Python
    float is returned; under ``jit`` / ``vmap`` (traced labels) by the device Hungarian
    solver :func:`jaxclust.ot.linear_sum_assignment` (exact too, the same accuracy), which
    needs the static table size ``n_true`` / ``n_pred``, and a scalar array is returned.

    Args:
      labels_true: reference labels, non-negative integers, shape ``(n,)``.
      labels_pred: predicted cluster labels, non-negative integers, shape ``(n,)``.
      n_true: number of classes (static); required under ``jit`` / ``vmap``, else
        ``max(labels_true) + 1``.
      n_pred: number of clusters (static), likewise.

    Returns:
      The accuracy in ``[0, 1]``: a Python float eagerly, a float scalar array when traced.

    Raises:
      ValueError: bad labels (see `contingency`), or a missing size under tracing.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import clustering_accuracy
      >>> clustering_accuracy(jnp.array([0, 0, 1, 1, 2]), jnp.array([2, 2, 0, 0, 0]))
      0.8
      >>> import jax
      >>> acc = jax.jit(lambda t, p: clustering_accuracy(t, p, n_true=3, n_pred=3))
      >>> round(float(acc(jnp.array([0, 0, 1, 1, 2]), jnp.array([2, 2, 0, 0, 0]))), 6)
      0.8

    References:
      Kuhn, *The Hungarian method for the assignment problem*, Naval Research Logistics
      Quarterly 2 (1955); Xie, Girshick and Farhadi, *Unsupervised deep embedding for
      clustering analysis*, ICML 2016 (the metric as used in deep clustering).
    """
    if checks.is_traced(labels_true, labels_pred):
        from ..ot.lap import linear_sum_assignment as device_assignment

        table = contingency(labels_true, labels_pred, n_true=n_true, n_pred=n_pred)
        matched = device_assignment(table.astype(jnp.float32), maximize=True)
        hits = jnp.sum(table[matched.rows, matched.cols])
        return hits / jnp.maximum(jnp.sum(table), 1)
    from scipy.optimize import linear_sum_assignment

    table = np.asarray(contingency(labels_true, labels_pred, n_true=n_true, n_pred=n_pred))
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


# ------------------------------------------------------------------------------------------
# geometric metrics


def _sq_dists(x: jax.Array, c: jax.Array) -> jax.Array:
    """``|x_i - c_j|^2`` from differences (exact at 0, smooth gradients), shape (n, k)."""
    diff = x[:, None, :] - c[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def inertia(
    x: Float[ArrayLike, "n d"],
    centroids: Float[ArrayLike, "k d"],
    labels: Int[ArrayLike, " n"] | None = None,
    *,
    weights: Float[ArrayLike, " n"] | None = None,
) -> Float[Array, ""]:
    r"""(Weighted) k-means inertia: squared distances to the assigned centroids.

    $$
        \sum_{i=1}^n w_i \,\lVert x_i - c_{\ell_i} \rVert^2, \qquad
        \ell_i = \text{labels}_i \ \text{or}\ \arg\min_j \lVert x_i - c_j\rVert^2,
    $$

    with $w_i = 1$ by default, i.e. scikit-learn's ``KMeans.inertia_``. Jittable and
    differentiable in ``x``, ``centroids`` and ``weights`` (with ``labels=None`` the nearest
    centroid is used, a min; its gradient flows through the chosen centroid). The nearest
    centroid is found from exactly centred differences, for groups of centroids in turn
    once ``n k d`` passes 2^22, so memory stays ``O(n d)`` per group, never ``O(n k d)``.

    Args:
      x: points, shape ``(n, d)``.
      centroids: centroids, shape ``(k, d)``.
      labels: assignment of each point in ``[0, k)``, shape ``(n,)``; ``None`` for the
        nearest centroid.
      weights: non-negative point weights, shape ``(n,)``; ``None`` for ones.

    Returns:
      The inertia, a float scalar.

    Raises:
      ValueError: ``x`` or ``centroids`` not 2-D, with different feature sizes, NaN/Inf,
        labels or weights of the wrong shape, labels out of ``[0, k)``, negative weights,
        or an inertia beyond the float range (``x`` of magnitude ~1e20 in float32; the
        distances themselves are computed in rescaled units and never overflow).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import inertia
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
      >>> c = jnp.array([[0.5, 0.0], [5.0, 0.0]])
      >>> float(inertia(x, c))
      0.5
      >>> float(inertia(x, c, jnp.array([0, 0, 0])))
      20.75

    References:
      Lloyd, *Least squares quantization in PCM*, IEEE Trans. Information Theory 28 (1982).
    """
    x = _points(x, "x")
    c = _points(centroids, "centroids")
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"`x` and `centroids` must have the same number of features, got "
                         f"{x.shape[1]} and {c.shape[1]}.")
    dtype = _float_dtype(x, c)
    n, k = x.shape[0], c.shape[0]
    lab = None
    if labels is not None:
        lab = _labels(labels, "labels")
        if lab.shape[0] != n:
            raise ValueError(f"`labels` must have shape ({n},) (one per row of `x`), got "
                             f"{tuple(lab.shape)}.")
        lab, _ = _num_labels(lab, k, "labels", "k")  # k = number of centroids
    w = None if weights is None else checks.row_weights(weights, n, "x")
    total = _inertia(x, c, lab, w, dtype)
    return checks.ensure_value(total, lambda v, xp: ~xp.isfinite(v),
                               f"the inertia of `x` overflows {jnp.dtype(dtype).name} (squared "
                               "distances beyond its range); rescale `x` and `centroids` (the "
                               "inertia scales with the square) or use float64.")


@partial(jax.jit, static_argnums=(4,))
def _inertia(x, c, lab, w, dtype) -> jax.Array:
    # distances in units of a power of two of the data's magnitude (exact), so that the
    # squares neither overflow nor underflow; the sum is scaled back at the end
    scale = pow2_scale(jnp.maximum(jnp.max(jnp.abs(x)), jnp.max(jnp.abs(c))).astype(dtype))
    x, c = x.astype(dtype) / scale, c.astype(dtype) / scale
    if lab is None:
        d2 = grouped_row_min(_sq_dists, x, c)  # centres in groups past n k d = 2^22
    else:
        diff = x - c[lab]
        d2 = jnp.sum(diff * diff, axis=1)
    total = jnp.sum(d2) if w is None else jnp.sum(w.astype(dtype) * d2)
    return total * scale * scale


def silhouette(
    x: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    k: int,
) -> Float[Array, ""]:
    r"""Mean silhouette coefficient with Euclidean distances.

    For point $i$ in cluster $C$, with $a_i$ its mean distance to the other points of $C$
    and $b_i$ the smallest mean distance to the points of another (non-empty) cluster,

    $$
        s_i = \frac{b_i - a_i}{\max(a_i, b_i)}, \qquad
        \text{silhouette} = \frac1n \sum_i s_i,
    $$

    with $s_i = 0$ for points alone in their cluster, as in
    `sklearn.metrics.silhouette_score` (``metric="euclidean"``). Distances are
    computed from differences, one block of rows at a time (``O(n d)`` memory per row, no
    ``n x n`` matrix), in ``O(n^2 d)`` time.

    Args:
      x: points, shape ``(n, d)``.
      labels: cluster of each point in ``[0, k)``, shape ``(n,)``.
      k: number of cluster labels (static); empty clusters are ignored.

    Returns:
      The mean silhouette in ``[-1, 1]``, a float scalar.

    Raises:
      ValueError: ``x`` not 2-D or with NaN/Inf, labels of the wrong shape or out of
        ``[0, k)``, or fewer than 2 or more than ``n - 1`` non-empty clusters (where the
        silhouette is undefined, as in scikit-learn).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import silhouette
      >>> x = jnp.array([[0.0], [1.0], [10.0], [11.0]])
      >>> round(float(silhouette(x, jnp.array([0, 0, 1, 1]), k=2)), 4)
      0.9
      >>> round(float(silhouette(x, jnp.array([0, 0, 0, 1]), k=2)), 4)
      0.0263

    References:
      Rousseeuw, *Silhouettes: a graphical aid to the interpretation and validation of
      cluster analysis*, J. Comput. Appl. Math. 20 (1987).
    """
    return _silhouette_mean(*_labelled_points(x, labels, k))


def silhouette_samples(
    x: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    k: int,
) -> Float[Array, " n"]:
    r"""Silhouette coefficient of every point, with Euclidean distances.

    The per-point $s_i = (b_i - a_i)/\max(a_i, b_i)$ of `silhouette` (whose mean it is),
    with $s_i = 0$ for points alone in their cluster: `sklearn.metrics.silhouette_samples`
    with ``metric="euclidean"``. Same blocked computation (no ``n x n`` matrix).

    Args:
      x: points, shape ``(n, d)``.
      labels: cluster of each point in ``[0, k)``, shape ``(n,)``.
      k: number of cluster labels (static); empty clusters are ignored.

    Returns:
      The coefficients in ``[-1, 1]``, shape ``(n,)``.

    Raises:
      ValueError: as `silhouette`.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import silhouette_samples
      >>> x = jnp.array([[0.0], [1.0], [10.0], [11.0]])
      >>> [round(float(v), 4) for v in silhouette_samples(x, jnp.array([0, 0, 0, 1]), k=2)]
      [0.5, 0.5, -0.8947, 0.0]

    References:
      Rousseeuw, *Silhouettes: a graphical aid to the interpretation and validation of
      cluster analysis*, J. Comput. Appl. Math. 20 (1987).
    """
    return _silhouette_samples(x, labels, k)


def _labelled_points(x, labels, k, validate=True):
    """Validated ``(x, labels, onehot, counts)`` for the label-based geometric scores:
    ``x`` in the float dtype of the computation, 2 to ``n - 1`` non-empty clusters (where
    silhouette, Calinski-Harabasz and Davies-Bouldin are defined, as in scikit-learn)."""
    x = _points(x, "x")
    lab = _labels(labels, "labels")
    n = x.shape[0]
    if lab.shape[0] != n:
        raise ValueError(f"`labels` must have shape ({n},) (one per row of `x`), got "
                         f"{tuple(lab.shape)}.")
    lab, k = _num_labels(lab, k, "labels", "k")
    if validate:  # select_k marks undefined lanes itself instead

        def bad(v, xp):
            counts = np.bincount(v, minlength=k) if xp is np else jnp.bincount(v, length=k)
            n_clusters = xp.sum(counts > 0)
            return (n_clusters < 2) | (n_clusters > n - 1)

        lab = checks.ensure_value(lab, bad,
                                  f"`labels` must contain between 2 and n - 1 = {n - 1} "
                                  "non-empty clusters; the score is undefined otherwise.")
    return x.astype(_float_dtype(x)), lab, k


def _onehot(lab, k: int, dtype):
    onehot = jax.nn.one_hot(lab, k, dtype=dtype)  # (n, k)
    return onehot, jnp.sum(onehot, axis=0)


def _silhouette_samples(x, labels, k, validate=True):
    return _silhouette_values(*_labelled_points(x, labels, k, validate))


@partial(jax.jit, static_argnums=(2,))
def _silhouette_mean(x, lab, k: int) -> jax.Array:
    return jnp.mean(_silhouette_values(x, lab, k))


@partial(jax.jit, static_argnums=(2,))
def _silhouette_values(x, lab, k: int) -> jax.Array:
    onehot, counts = _onehot(lab, k, x.dtype)
    # the silhouette is scale-invariant: distances in units of a power of two of the data's
    # magnitude (exact) neither overflow nor underflow
    x = x / pow2_scale(jnp.max(jnp.abs(x)))

    def row_sums(xi):
        diff = x - xi[None, :]
        # zero-safe sqrt: the self-distance must not give a NaN gradient
        dist = safe_sqrt(jnp.sum(diff * diff, axis=1))  # (n,)
        return jnp.matmul(dist, onehot, precision=_PREC)  # (k,) distance sums per cluster

    sums = jax.lax.map(row_sums, x, batch_size=_SILHOUETTE_BLOCK)  # (n, k)
    own = onehot > 0
    own_count = jnp.take(counts, lab)
    a = jnp.sum(jnp.where(own, sums, 0.0), axis=1) / jnp.maximum(own_count - 1.0, 1.0)
    means = sums / jnp.maximum(counts, 1.0)[None, :]
    other = (~own) & (counts > 0)[None, :]
    b = jnp.min(jnp.where(other, means, jnp.inf), axis=1)
    denom = jnp.maximum(a, b)
    s = jnp.where(denom > 0, (b - a) / jnp.where(denom > 0, denom, 1.0), 0.0)
    return jnp.where(own_count > 1, s, 0.0)


def _cluster_means(x, onehot, counts):
    """Cluster means ``(k, d)`` (zero rows for empty clusters)."""
    sums = jnp.matmul(onehot.T, x, precision=_PREC)
    return sums / jnp.maximum(counts, 1.0)[:, None]


def calinski_harabasz(
    x: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    k: int,
) -> Float[Array, ""]:
    r"""Calinski-Harabasz score (variance ratio criterion).

    With $K$ non-empty clusters of sizes $n_c$, means $\mu_c$ and overall mean $\mu$,

    $$
        \mathrm{CH} = \frac{B / (K - 1)}{W / (n - K)}, \qquad
        B = \sum_c n_c \lVert \mu_c - \mu \rVert^2, \quad
        W = \sum_i \lVert x_i - \mu_{\ell_i} \rVert^2,
    $$

    and 1 when $W = 0$, as `sklearn.metrics.calinski_harabasz_score`. Higher is better.
    Scale-invariant; computed in rescaled units (no overflow), differentiable in ``x``.

    Args:
      x: points, shape ``(n, d)``.
      labels: cluster of each point in ``[0, k)``, shape ``(n,)``.
      k: number of cluster labels (static); empty clusters are ignored.

    Returns:
      The score, a non-negative float scalar.

    Raises:
      ValueError: as `silhouette` (2 to ``n - 1`` non-empty clusters).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import calinski_harabasz
      >>> x = jnp.array([[0.0], [1.0], [10.0], [11.0]])
      >>> float(calinski_harabasz(x, jnp.array([0, 0, 1, 1]), k=2))
      200.0

    References:
      Calinski and Harabasz, *A dendrite method for cluster analysis*, Communications in
      Statistics 3 (1974).
    """
    return _calinski_harabasz(x, labels, k)


def _calinski_harabasz(x, labels, k, validate=True):
    return _calinski_harabasz_value(*_labelled_points(x, labels, k, validate))


@partial(jax.jit, static_argnums=(2,))
def _calinski_harabasz_value(x, lab, k: int) -> jax.Array:
    onehot, counts = _onehot(lab, k, x.dtype)
    n = x.shape[0]
    x = x / pow2_scale(jnp.max(jnp.abs(x)))
    mu = jnp.mean(x, axis=0)
    means = _cluster_means(x, onehot, counts)
    within = jnp.sum(jnp.square(x - jnp.matmul(onehot, means, precision=_PREC)))
    between = jnp.sum(counts * jnp.sum(jnp.square(means - mu[None, :]), axis=1))
    n_clusters = jnp.sum(counts > 0).astype(x.dtype)
    safe_w = jnp.where(within > 0, within, 1.0)
    return jnp.where(within > 0, between * (n - n_clusters) / (safe_w * (n_clusters - 1.0)),
                     jnp.ones_like(within))


def davies_bouldin(
    x: Float[ArrayLike, "n d"],
    labels: Int[ArrayLike, " n"],
    *,
    k: int,
) -> Float[Array, ""]:
    r"""Davies-Bouldin index.

    With $s_c$ the mean Euclidean distance of the points of cluster $c$ to its mean
    $\mu_c$, over the $K$ non-empty clusters,

    $$
        \mathrm{DB} = \frac1K \sum_c \max_{c' \ne c}
        \frac{s_c + s_{c'}}{\lVert \mu_c - \mu_{c'} \rVert},
    $$

    where pairs of coinciding means count 0, and the index is 0 when all $s_c$ or all
    centre distances are (close to) 0 (``atol = 1e-8``), as
    `sklearn.metrics.davies_bouldin_score`. Lower is better; differentiable in ``x``.

    Args:
      x: points, shape ``(n, d)``.
      labels: cluster of each point in ``[0, k)``, shape ``(n,)``.
      k: number of cluster labels (static); empty clusters are ignored.

    Returns:
      The index, a non-negative float scalar.

    Raises:
      ValueError: as `silhouette` (2 to ``n - 1`` non-empty clusters).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import davies_bouldin
      >>> x = jnp.array([[0.0], [1.0], [10.0], [11.0]])
      >>> float(davies_bouldin(x, jnp.array([0, 0, 1, 1]), k=2))
      0.1

    References:
      Davies and Bouldin, *A cluster separation measure*, IEEE Trans. Pattern Analysis and
      Machine Intelligence 1 (1979).
    """
    return _davies_bouldin(x, labels, k)


def _davies_bouldin(x, labels, k, validate=True):
    return _davies_bouldin_value(*_labelled_points(x, labels, k, validate))


@partial(jax.jit, static_argnums=(2,))
def _davies_bouldin_value(x, lab, k: int) -> jax.Array:
    onehot, counts = _onehot(lab, k, x.dtype)
    scale = pow2_scale(jnp.max(jnp.abs(x)))
    x = x / scale
    means = _cluster_means(x, onehot, counts)
    dist = safe_sqrt(jnp.sum(jnp.square(x - means[lab]), axis=1))
    intra = jnp.matmul(dist, onehot, precision=_PREC) / jnp.maximum(counts, 1.0)
    cdist = safe_sqrt(_sq_dists(means, means))
    present = counts > 0
    pair = present[:, None] & present[None, :]
    # a cluster is never compared with itself: under jit XLA may compute `means` twice (in
    # different fusions), leaving ~1e-8 on the diagonal of cdist instead of 0, and the
    # ratio 2 intra_i / 1e-8 then won (findings: 9.4e7 under jit against 0.302 eagerly)
    usable = pair & ~jnp.eye(k, dtype=bool) & (cdist > 0)
    ratio = jnp.where(usable, (intra[:, None] + intra[None, :])
                      / jnp.where(usable, cdist, 1.0), 0.0)
    value = jnp.sum(jnp.where(present, jnp.max(ratio, axis=1), 0.0)) / jnp.sum(present)
    # scikit-learn's np.allclose(., 0) tests, in the user's units
    flat = (jnp.all(jnp.where(present, intra * scale, 0.0) <= 1e-8)
            | jnp.all(jnp.where(pair, cdist * scale, 0.0) <= 1e-8))
    return jnp.where(flat, jnp.zeros_like(value), value)


# jitted at module level: an eager `lax.map` over a fresh closure would compile anew at
# every call (tests/test_compile.py)
@partial(jax.jit, static_argnums=(2, 3))
def _expected_mutual_information(a, b, n: int, dt) -> jax.Array:
    r"""$E[I]$ under the permutation model (Vinh, Epps and Bailey 2010, eq. 24a):

    $$
        \sum_{ij} \sum_{m} \frac{m}{n} \log\frac{n m}{a_i b_j}\, P_{ij}(m),
    $$

    with $P_{ij}$ the hypergeometric law of the cell count given the margins. $\log P_{ij}$
    is built from the ratio $P(m+1)/P(m) = (a-m)(b-m)/((m+1)(n-a-b+m+1))$ by a cumulative
    sum and normalised by its log-sum-exp over the support: no log-factorials of ``n``
    (whose differences lose ``eps * n log n`` in float32). ``O(k_true k_pred n)`` work, one
    row of the table at a time."""
    bf = b.astype(dt)
    m = jnp.arange(n + 1, dtype=dt)  # offsets from the lower end of the support

    def row(ai):
        af = ai.astype(dt)
        lo = jnp.maximum(0.0, af + bf - n)  # (kp,)
        hi = jnp.minimum(af, bf)
        mm = lo[:, None] + m[None, :]  # (kp, n + 1)
        inside = mm <= hi[:, None]
        # log ratio from mm to mm + 1, valid inside [lo, hi)
        num = (af - mm) * (bf[:, None] - mm)
        den = (mm + 1.0) * (n - af - bf[:, None] + mm + 1.0)
        step = inside & (mm < hi[:, None])
        lr = jnp.where(step, jnp.log(jnp.where(step, num, 1.0))
                       - jnp.log(jnp.where(step, den, 1.0)), 0.0)
        logp = jnp.concatenate([jnp.zeros_like(lr[:, :1]), jnp.cumsum(lr, axis=1)[:, :-1]],
                               axis=1)
        logp = jnp.where(inside, logp, -jnp.inf)
        logp = logp - jax.scipy.special.logsumexp(logp, axis=1, keepdims=True)
        pos = inside & (mm > 0)
        ab = af * bf[:, None]
        term = jnp.where(pos, mm / n * (jnp.log(jnp.where(pos, mm * n, 1.0))
                                        - jnp.log(jnp.where(pos, ab, 1.0))), 0.0)
        value = jnp.sum(jnp.where(pos, jnp.exp(logp) * term, 0.0), axis=1)
        return jnp.sum(jnp.where((ai > 0) & (b > 0), value, 0.0))

    return jnp.sum(jax.lax.map(row, a))


def adjusted_mutual_info(
    labels_true: Int[ArrayLike, " n"],
    labels_pred: Int[ArrayLike, " n"],
    *,
    average: str = "arithmetic",
    n_true: int | None = None,
    n_pred: int | None = None,
) -> Float[Array, ""]:
    r"""Adjusted mutual information between two labellings.

    $$
        \mathrm{AMI} = \frac{I(U, V) - E[I]}{\mathrm{mean}(H(U), H(V)) - E[I]},
    $$

    with $I$ and $H$ as in `nmi`, the mean chosen by ``average`` and $E[I]$ the expected
    mutual information of two random labellings with the same cluster sizes (the
    hypergeometric permutation model). As `sklearn.metrics.adjusted_mutual_info_score`:
    1 for two single-cluster labellings, a denominator of magnitude below the float64
    ``eps`` is replaced by ``±eps``, and the value is 0 in expectation for independent
    labellings and may be negative. ``O(n_true n_pred n)`` time.

    Args:
      labels_true: reference labels in ``[0, n_true)``, shape ``(n,)``.
      labels_pred: predicted labels in ``[0, n_pred)``, shape ``(n,)``.
      average: ``"arithmetic"``, ``"geometric"``, ``"min"`` or ``"max"`` (static).
      n_true: number of true labels (static); required under ``jit`` / ``vmap``.
      n_pred: number of predicted labels (static); required under ``jit`` / ``vmap``.

    Returns:
      The AMI, a float scalar: 1 for identical partitions (up to rounding: float32
      under ``jit`` can give 1.0000001), about 0 for independent ones.

    Raises:
      ValueError: bad labels (see `contingency`) or an unknown ``average``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.metrics import adjusted_mutual_info
      >>> float(adjusted_mutual_info(jnp.array([0, 0, 1, 1]), jnp.array([1, 1, 0, 0])))
      1.0
      >>> round(float(adjusted_mutual_info(jnp.array([0, 0, 1, 1, 2, 2]),
      ...                                  jnp.array([0, 0, 1, 2, 2, 2]))), 4)
      0.5024

    References:
      Vinh, Epps and Bailey, *Information theoretic measures for clusterings comparison*,
      JMLR 11 (2010).
    """
    if average not in AVERAGES:
        raise ValueError(f"`average` must be one of {AVERAGES}, got {average!r}.")
    return _ami(*_pair(labels_true, labels_pred, n_true, n_pred), average)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _ami(lt, lp, n_true: int, n_pred: int, average: str) -> jax.Array:
    counts, a, b, n = _counts(lt, lp, n_true, n_pred)
    dt = _float_dtype()
    h_true, h_pred = _entropy(a, n, dt), _entropy(b, n, dt)
    mi = _mutual_information(counts, a, b, n, dt)
    single_true, single_pred = jnp.sum(a > 0) == 1, jnp.sum(b > 0) == 1
    emi = jnp.where(single_true | single_pred, 0.0, _expected_mutual_information(a, b, n, dt))
    if average == "arithmetic":
        norm = 0.5 * (h_true + h_pred)
    elif average == "geometric":
        norm = jnp.sqrt(h_true * h_pred)
    elif average == "min":
        norm = jnp.minimum(h_true, h_pred)
    else:
        norm = jnp.maximum(h_true, h_pred)
    eps = float(np.finfo(np.float64).eps)
    den = norm - emi
    den = jnp.where(den < 0, jnp.minimum(den, -eps), jnp.maximum(den, eps))
    value = (mi - emi) / den
    return jnp.where(single_true & single_pred, jnp.ones_like(value), value)


def label_scores_unvalidated(x, labels, k: int):
    """Package-internal (used by ``jaxclust.cluster.select_k``): ``(mean silhouette,
    Calinski-Harabasz, Davies-Bouldin, number of non-empty clusters)`` of finite points
    ``x`` and labels in ``[0, k)``, without the value check on the number of clusters (the
    caller marks the lanes with fewer than 2 or more than ``n - 1`` as undefined)."""
    n_clusters = jnp.sum(jnp.bincount(labels, length=k) > 0)
    return (jnp.mean(_silhouette_samples(x, labels, k, False)),
            _calinski_harabasz(x, labels, k, False), _davies_bouldin(x, labels, k, False),
            n_clusters)
