"""jaxclust.metrics.clustering against scikit-learn, SciPy, NumPy and brute force.

Tolerances: NMI / ARI / accuracy are ratios of counts computed in float32 here and in
float64 by the references; on these n <= 60 problems float32 rounding stays below ~1e-7
relative, so 1e-6 is a safe bound. The silhouette sums ~n float32 distances per point: 1e-5.
"""

from __future__ import annotations

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

from jaxclust.metrics import (
    ari,
    clustering_accuracy,
    contingency,
    inertia,
    nmi,
    silhouette,
)

f32 = jnp.float32
AVERAGES = ["arithmetic", "geometric", "min", "max"]


def _pairs():
    """(id, labels_true, labels_pred): random, unequal counts, gaps in the label values,
    and the degenerate cases sklearn special-cases."""
    rng = np.random.default_rng(0)
    n = 40
    return [
        ("random", rng.integers(0, 3, n), rng.integers(0, 4, n)),
        ("unequal-counts", rng.integers(0, 5, n), rng.integers(0, 2, n)),
        ("gaps", np.array([0, 0, 3, 3, 5, 5, 0, 3]), np.array([4, 4, 1, 1, 1, 0, 0, 4])),
        ("identical-relabelled", np.arange(12) % 3, (np.arange(12) + 1) % 3),
        ("both-one-cluster", np.zeros(6, int), np.full(6, 2)),
        ("one-cluster-vs-many", np.zeros(6, int), np.arange(6)),
        ("all-singletons", np.arange(6), np.arange(6)[::-1].copy()),
        ("single-point", np.array([1]), np.array([0])),
    ]


PAIRS = _pairs()
PAIR_PARAMS = [pytest.param(t, p, id=i) for i, t, p in PAIRS]


# ------------------------------------------------------------------------------------------
# contingency, NMI, ARI


@pytest.mark.parametrize("lt,lp", PAIR_PARAMS)
def test_contingency_matches_sklearn(lt, lp):
    table = np.asarray(contingency(jnp.asarray(lt), jnp.asarray(lp)))
    ref = np.zeros((lt.max() + 1, lp.max() + 1), int)
    np.add.at(ref, (lt, lp), 1)
    np.testing.assert_array_equal(table, ref)
    # sklearn drops the empty rows/columns of unused label values
    sk = skm.cluster.contingency_matrix(lt, lp)
    used = np.ix_(np.unique(lt), np.unique(lp))
    np.testing.assert_array_equal(table[used], sk)


def test_contingency_explicit_sizes():
    table = contingency(jnp.array([0, 1]), jnp.array([1, 1]), n_true=3, n_pred=4)
    np.testing.assert_array_equal(table, [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("lt,lp", PAIR_PARAMS)
def test_nmi_matches_sklearn(lt, lp):
    for average in AVERAGES:
        ours = float(nmi(jnp.asarray(lt), jnp.asarray(lp), average=average))
        ref = skm.normalized_mutual_info_score(lt, lp, average_method=average)
        assert ours == pytest.approx(ref, abs=1e-6), average


@pytest.mark.parametrize("lt,lp", PAIR_PARAMS)
def test_ari_matches_sklearn(lt, lp):
    ours = float(ari(jnp.asarray(lt), jnp.asarray(lp)))
    assert ours == pytest.approx(skm.adjusted_rand_score(lt, lp), abs=1e-6)


def test_degenerate_values():
    one, many = jnp.zeros(5, int), jnp.arange(5)
    assert float(nmi(one, one)) == 1.0 and float(ari(one, one)) == 1.0
    assert float(nmi(many, many)) == 1.0 and float(ari(many, many)) == 1.0
    assert float(nmi(one, many)) == 0.0 and float(ari(one, many)) == 0.0


# ------------------------------------------------------------------------------------------
# clustering accuracy


def _acc_brute_force(lt, lp):
    """Best injective map clusters -> classes by trying every permutation (tiny cases)."""
    m = max(lt.max(), lp.max()) + 1
    return max(np.mean(np.asarray(perm)[lp] == lt)
               for perm in itertools.permutations(range(m)))


def _acc_scipy(lt, lp):
    """The usual reference: a square cost matrix minimised by SciPy."""
    m = max(lt.max(), lp.max()) + 1
    w = np.zeros((m, m))
    np.add.at(w, (lp, lt), 1)
    r, c = linear_sum_assignment(w.max() - w)
    return w[r, c].sum() / lt.size


ACC_CASES = [
    ("perfect-relabelled", [0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]),
    ("ties", [0, 0, 1, 1], [0, 1, 0, 1]),
    ("ties-three", [0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1]),
    ("more-clusters", [0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 3, 3]),
    ("more-classes", [0, 1, 2, 3, 4, 4, 4], [0, 0, 1, 1, 1, 0, 1]),
    ("one-cluster", [0, 1, 2, 2, 1], [0, 0, 0, 0, 0]),
    ("gaps", [0, 5, 5, 2, 2, 0], [3, 3, 1, 1, 0, 0]),
]


@pytest.mark.parametrize("lt,lp", [pytest.param(np.array(t), np.array(p), id=i)
                                   for i, t, p in ACC_CASES])
def test_accuracy_brute_force_and_scipy(lt, lp):
    ours = clustering_accuracy(jnp.asarray(lt), jnp.asarray(lp))
    assert isinstance(ours, float)
    assert ours == pytest.approx(_acc_brute_force(lt, lp), abs=1e-6)
    assert ours == pytest.approx(_acc_scipy(lt, lp), abs=1e-6)


def test_accuracy_random_vs_scipy(rng):
    for _ in range(3):
        lt, lp = rng.integers(0, 4, 50), rng.integers(0, 6, 50)
        assert clustering_accuracy(lt, lp) == pytest.approx(_acc_scipy(lt, lp), abs=1e-6)


# ------------------------------------------------------------------------------------------
# inertia


def _inertia_np(x, c, labels=None, w=None):
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    per = d2.min(1) if labels is None else d2[np.arange(len(x)), labels]
    return float((per if w is None else w * per).sum())


def test_inertia_matches_numpy(rng):
    x, c = rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
    lab, w = rng.integers(0, 4, 20), rng.uniform(size=20)
    X, C = jnp.asarray(x, f32), jnp.asarray(c, f32)
    for labels, weights in [(None, None), (lab, None), (None, w), (lab, w)]:
        ours = inertia(X, C, None if labels is None else jnp.asarray(labels),
                       weights=None if weights is None else jnp.asarray(weights, f32))
        # float32 sums of 20 O(1) terms
        assert float(ours) == pytest.approx(_inertia_np(x, c, labels, weights), rel=1e-5)


def test_inertia_matches_sklearn_kmeans(rng):
    from sklearn.cluster import KMeans

    x = rng.normal(size=(30, 2))
    km = KMeans(3, n_init=1, random_state=0).fit(x)
    ours = inertia(jnp.asarray(x, f32), jnp.asarray(km.cluster_centers_, f32))
    assert float(ours) == pytest.approx(km.inertia_, rel=1e-5)


def test_inertia_gradient(x64, rng):
    # closed form: d/dc_j = -2 sum_{i in j} w_i (x_i - c_j), d/dx_i = 2 w_i (x_i - c_{l_i})
    x, c = jnp.asarray(rng.normal(size=(10, 2))), jnp.asarray(rng.normal(size=(3, 2)))
    w = jnp.asarray(rng.uniform(size=10))
    lab = np.argmin(((np.asarray(x)[:, None] - np.asarray(c)[None]) ** 2).sum(-1), 1)
    gx, gc = jax.grad(lambda x, c: inertia(x, c, weights=w), argnums=(0, 1))(x, c)
    diff = np.asarray(x) - np.asarray(c)[lab]
    np.testing.assert_allclose(gx, 2 * np.asarray(w)[:, None] * diff, rtol=1e-12)
    ref_c = np.zeros((3, 2))
    np.add.at(ref_c, lab, -2 * np.asarray(w)[:, None] * diff)
    np.testing.assert_allclose(gc, ref_c, rtol=1e-12, atol=1e-14)


def test_inertia_with_centroids_in_groups(x64, rng, monkeypatch):
    """Past ``_core.groups.DIFF_ENTRIES`` entries of ``n x k x d`` differences the nearest
    centroid is found for groups of centroids in turn (a scan; the last group completed
    with copies of the first centroid). Forced with a small budget (groups of 2 of 5), on
    this test's own shapes so that the jitted kernel traces afresh: the inertia and its
    gradients equal the NumPy value and the closed form of ``test_inertia_gradient``, and
    the gradient program holds less than half of one ``(n, k, d)`` tensor (with all
    centroids in one step: more than one)."""
    from jaxclust._core import groups

    n, d, k = 23, 3, 5
    x, c = jnp.asarray(rng.normal(size=(n, d))), jnp.asarray(rng.normal(size=(k, d)))
    w = jnp.asarray(rng.uniform(size=n))
    monkeypatch.setattr(groups, "DIFF_ENTRIES", 2 * n * d)
    f = lambda x, c: inertia(x, c, weights=w)
    assert "scan" in str(jax.make_jaxpr(f)(x, c))
    lab = np.argmin(((np.asarray(x)[:, None] - np.asarray(c)[None]) ** 2).sum(-1), 1)
    assert float(f(x, c)) == pytest.approx(
        _inertia_np(np.asarray(x), np.asarray(c), None, np.asarray(w)), rel=1e-12)
    gx, gc = jax.grad(f, argnums=(0, 1))(x, c)
    diff = np.asarray(x) - np.asarray(c)[lab]
    np.testing.assert_allclose(gx, 2 * np.asarray(w)[:, None] * diff, rtol=1e-12)
    ref_c = np.zeros((k, d))
    np.add.at(ref_c, lab, -2 * np.asarray(w)[:, None] * diff)
    np.testing.assert_allclose(gc, ref_c, rtol=1e-12, atol=1e-14)
    big, c10 = jnp.asarray(rng.normal(size=(400, 8))), jnp.asarray(rng.normal(size=(10, 8)))
    monkeypatch.setattr(groups, "DIFF_ENTRIES", 400 * 8)  # one centroid per step
    grad = jax.jit(jax.grad(lambda x: inertia(x, c10)))
    temps = grad.lower(big).compile().memory_analysis().temp_size_in_bytes
    assert temps < 400 * 10 * 8 * 8 / 2, temps  # all at once: 1.1 tensors (float32, measured)


# ------------------------------------------------------------------------------------------
# silhouette


SIL_CASES = [
    ("three-blobs", 30, 3, 3),
    ("singleton", 12, 3, 4),  # one label forced to a single point below
    ("empty-label", 15, 2, 5),  # k larger than the labels used
    ("two-row-blocks", 70, 2, 3),  # 64 rows per block: one full block and a remainder
]


@pytest.mark.parametrize("n,d,k", [pytest.param(*c[1:], id=c[0]) for c in SIL_CASES])
def test_silhouette_matches_sklearn(rng, n, d, k):
    lab = rng.integers(0, min(k, 3), n)
    lab[0] = min(k, 3) - 1
    if k == 4:
        lab[-1] = 3  # a singleton cluster: s = 0 there, as in sklearn
    x = rng.normal(size=(n, d)) + 3.0 * lab[:, None]
    ours = silhouette(jnp.asarray(x, f32), jnp.asarray(lab), k=k)
    ref = skm.silhouette_score(x.astype(np.float32), lab)
    assert float(ours) == pytest.approx(ref, abs=1e-5)


def test_silhouette_duplicate_points():
    # a = b = 0 for coincident clusters: sklearn gives 0 for those points
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    lab = np.array([0, 1, 1, 2, 2])
    ours = silhouette(jnp.asarray(x, f32), jnp.asarray(lab), k=3)
    assert float(ours) == pytest.approx(skm.silhouette_score(x, lab), abs=1e-6)


# ------------------------------------------------------------------------------------------
# jit and vmap (batch of 3 label vectors)

_LT = jnp.asarray(np.random.default_rng(1).integers(0, 3, (3, 16)))
_LP = jnp.asarray(np.random.default_rng(2).integers(0, 4, (3, 16)))
_X = jnp.asarray(np.random.default_rng(3).normal(size=(16, 2)), f32)
_C = jnp.asarray(np.random.default_rng(4).normal(size=(4, 2)), f32)

JITTABLE = {
    "contingency": (lambda t, p: contingency(t, p, n_true=3, n_pred=4),
                    lambda t, p: contingency(t, p)),
    "nmi": (lambda t, p: nmi(t, p, n_true=3, n_pred=4, average="geometric"),
            lambda t, p: nmi(t, p, average="geometric")),
    "ari": (lambda t, p: ari(t, p, n_true=3, n_pred=4), lambda t, p: ari(t, p)),
    "inertia": (lambda t, p: inertia(_X, _C, p), None),
    "silhouette": (lambda t, p: silhouette(_X, t, k=3), None),
}


@pytest.mark.parametrize("name", list(JITTABLE))
def test_jit_and_vmap(name):
    fn, eager = JITTABLE[name]
    jitted = jax.jit(fn)
    batched = jax.jit(jax.vmap(fn))(_LT, _LP)
    for i in range(3):
        ref = (eager or fn)(_LT[i], _LP[i])  # eager, sizes inferred where optional
        np.testing.assert_allclose(jitted(_LT[i], _LP[i]), ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(batched[i], ref, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------
# bad input: one test per rule

_L = jnp.array([0, 1, 1, 0])


def test_labels_not_1d():
    with pytest.raises(ValueError, match="`labels_true` must be 1-D"):
        nmi(_L[None], _L)
    with pytest.raises(ValueError, match="`labels` must be 1-D"):
        silhouette(_X[:4], _L[:, None], k=2)


def test_length_mismatch():
    with pytest.raises(ValueError, match="`labels_true` and `labels_pred` must have the same"):
        ari(_L, _L[:3])
    with pytest.raises(ValueError, match=re.escape("`labels` must have shape (16,)")):
        inertia(_X, _C, _L)


def test_negative_labels():
    with pytest.raises(ValueError, match="`labels_pred` has negative entries"):
        contingency(_L, _L.at[0].set(-1))
    with pytest.raises(Exception, match="`labels_pred` has negative entries"):
        jax.block_until_ready(jax.jit(lambda t, p: ari(t, p, n_true=2, n_pred=2))(
            _L, _L.at[0].set(-1)))


def test_labels_out_of_range():
    with pytest.raises(ValueError, match="`labels_true` has entries >= `n_true` = 2"):
        contingency(_L.at[0].set(2), _L, n_true=2)
    with pytest.raises(ValueError, match="`labels` has entries >= `k` = 4"):
        inertia(_X[:4], _C, _L.at[1].set(4))


def test_non_integer_labels():
    with pytest.raises(ValueError, match="`labels_true` must hold integer labels"):
        nmi(_L.astype(f32), _L)


def test_x_not_2d():
    with pytest.raises(ValueError, match="`x` must be 2-D"):
        silhouette(_X[:, 0], _LT[0], k=3)
    with pytest.raises(ValueError, match="`x` must be 2-D"):
        inertia(_X[:, 0], _C)


def test_nan_in_x():
    bad = _X.at[2, 1].set(jnp.nan)
    with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
        silhouette(bad, _LT[0], k=3)
    with pytest.raises(Exception, match="`x` contains NaN or Inf"):
        jax.block_until_ready(jax.jit(lambda x: inertia(x, _C))(bad))


def test_size_required_when_traced():
    with pytest.raises(ValueError, match="`n_true` must be given"):
        jax.jit(nmi)(_L, _L)


def test_unknown_average():
    with pytest.raises(ValueError, match="`average` must be one of"):
        nmi(_L, _L, average="harmonic")


def test_accuracy_under_jit_and_vmap_equals_scipy(rng):
    # traced labels: the device Hungarian solver (jaxclust.ot.linear_sum_assignment) on a
    # table padded to 6 x 7 (empty rows / columns change nothing); equal to SciPy's matching
    lt, lp = rng.integers(0, 4, (8, 40)), rng.integers(0, 6, (8, 40))
    lt[0], lp[0] = np.r_[np.zeros(39, int), 5], 0  # one cluster; a label seen once
    acc = jax.jit(jax.vmap(lambda t, p: clustering_accuracy(t, p, n_true=6, n_pred=7)))
    got = np.asarray(acc(jnp.asarray(lt), jnp.asarray(lp)))
    expected = [_acc_scipy(t, p) for t, p in zip(lt, lp)]
    np.testing.assert_allclose(got, expected, atol=1e-6)  # float32 division only
    with pytest.raises(ValueError, match="`n_true` must be given"):
        jax.jit(clustering_accuracy)(_L, _L)


def test_silhouette_needs_two_clusters():
    with pytest.raises(ValueError, match="between 2 and n - 1"):
        silhouette(_X[:4], jnp.zeros(4, int), k=2)


def test_negative_weights():
    with pytest.raises(ValueError, match="`weights` has negative entries"):
        inertia(_X, _C, weights=-jnp.ones(16))
