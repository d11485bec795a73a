"""scikit-learn's k-means and mini-batch k-means tests, ported to `jaxclust.cluster`.

Peer file: ``sklearn/cluster/tests/test_k_means.py`` of scikit-learn 1.9.1 (the installed
package). Data (the module's ``make_blobs(n_samples=100, centers=centers, cluster_std=1.0,
random_state=42)`` with its three 5-d centres, the toy arrays), parameters and expected values
are the peer's; ``global_random_seed`` is the peer's default, 42. Where the peer compares with
its own implementation (``_mini_batch_step``, ``KMeans``) we compare with the installed one.

Translation of the API differences:

* ``KMeans(n_clusters=k, init=..., n_init=..., max_iter=..., tol=...).fit(X,
  sample_weight=w)`` -> ``kmeans(X, k, key=jax.random.key(seed), init=..., n_init=...,
  max_iter=..., tol=..., weights=w)``; ``labels_``, ``inertia_``, ``cluster_centers_``,
  ``n_iter_`` -> ``labels``, ``inertia``, ``centroids``, ``n_iters``. Only Lloyd's algorithm
  (the peer's ``algorithm="lloyd"``; ``"elkan"`` gives the same iterates: the peer's
  Elkan-vs-Lloyd test becomes jaxclust's Lloyd against the peer's Lloyd started from the same
  k-means++ centres, in float64, iterates equal to 1e-12). The peer's
  ``random_state`` becomes a JAX key: seeded results are compared up to a permutation of the
  clusters, never draw by draw. Callable ``init``, sparse input, ``predict`` / ``transform``
  and verbosity have no counterpart.
* ``MiniBatchKMeans(...)`` -> ``minibatch_kmeans(X, k, key=..., batch_size=..., max_steps=...,
  init=..., max_no_improvement=...)``; the peer's private ``_mini_batch_step`` ->
  ``minibatch_kmeans_update`` (without reassignment: no ``key``). ``init="random"`` does not
  exist for mini-batch k-means in jaxclust (a ValueError).
* ``kmeans_plusplus(X, k, random_state=s)`` returns ``(centers, indices)``; jaxclust's returns
  the centres only (rows of ``X``).
* The private ``_inertia_dense(X, w, centers, labels)`` -> ``metrics.inertia(X, centers, labels,
  weights=w)``. **Convention:** negative sample weights are a ValueError in jaxclust (the peer
  accepts its ``randn`` weights); they are checked to raise, and the value is compared with
  the absolute weights.
* **Conventions in empty-cluster relocation:** both move an empty cluster's centre to the point
  farthest from its centre; the peer also removes that point from its former cluster in the
  same step, jaxclust does not, so the toy relocation takes one more iteration (``n_iters``
  asserted, the peer's value in a comment). With more centres than distinct points the peer
  stops after one iteration with a warning; jaxclust stops after two, converged, without one.
* Integer input becomes float32 (jaxclust's default float), not float64.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus as sk_kmeans_plusplus
from sklearn.cluster._kmeans import _labels_inertia, _mini_batch_step
from sklearn.datasets import make_blobs
from sklearn.metrics import pairwise_distances_argmin, v_measure_score
from sklearn.metrics.pairwise import euclidean_distances

from jaxclust.cluster import (
    kmeans,
    kmeans_plusplus,
    minibatch_kmeans,
    minibatch_kmeans_init,
    minibatch_kmeans_update,
)
from jaxclust.metrics import inertia as inertia_fn

from ..utils import enable_x64

SEED = 42  # the peer's global_random_seed
centers = np.array(
    [
        [0.0, 5.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 4.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 5.0, 1.0],
    ]
)
n_samples = 100
n_clusters, n_features = centers.shape
X, true_labels = make_blobs(
    n_samples=n_samples, centers=centers, cluster_std=1.0, random_state=42
)


SLOW = pytest.mark.slow  # a new compilation each (about 1 s on one core): make test-all


def _precision(dtype):
    """float64 inside ``enable_x64``; float32 (jaxclust's default) as is."""
    return enable_x64() if dtype == np.float64 else contextlib.nullcontext()


def _key(seed=SEED):
    return jax.random.key(seed)


def _check_fitted_model(res):
    """The peer's _check_fitted_model: k centres, k distinct labels, a perfect labelling up
    to a permutation, positive inertia."""
    assert res.centroids.shape == (n_clusters, n_features)
    labels = np.asarray(res.labels)
    assert np.unique(labels).shape[0] == n_clusters
    np.testing.assert_allclose(v_measure_score(true_labels, labels), 1.0)
    assert float(res.inertia) > 0.0


# --- peer: test_kmeans_results (algo="lloyd", dense)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeans_results(dtype):
    with _precision(dtype):
        x = np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]], dtype=dtype)
        sample_weight = np.array([3, 1, 1, 3], dtype=dtype)
        init_centers = np.array([[0, 0], [1, 1]], dtype=dtype)
        res = kmeans(x, 2, key=_key(), init=init_centers, weights=sample_weight)
        assert res.centroids.dtype == dtype
    np.testing.assert_array_equal(res.labels, [0, 0, 1, 1])
    np.testing.assert_allclose(float(res.inertia), 0.375)
    np.testing.assert_allclose(res.centroids, [[0.125, 0], [0.875, 1]])
    assert int(res.n_iters) == 2


# --- peer: test_kmeans_relocated_clusters
def test_kmeans_relocated_clusters():
    x = np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]])
    # second centre too far from the points: empty at the first iteration
    res = kmeans(x, 2, key=_key(), init=np.array([[0.5, 0.5], [3, 3]]))
    np.testing.assert_allclose(float(res.inertia), 0.25)
    # peer: n_iter_ == 3 (it also takes the relocated point out of its old cluster)
    assert int(res.n_iters) == 4
    # the peer accepts either of two relocations
    if int(res.labels[0]) == 0:
        np.testing.assert_array_equal(res.labels, [0, 0, 1, 1])
        np.testing.assert_allclose(res.centroids, [[0.25, 0], [0.75, 1]])
    else:
        np.testing.assert_array_equal(res.labels, [1, 1, 0, 0])
        np.testing.assert_allclose(res.centroids, [[0.75, 1.0], [0.25, 0.0]])


# --- peer: test_kmeans_empty_cluster_relocated
def test_kmeans_empty_cluster_relocated():
    res = kmeans(np.array([[-1.0], [1.0]]), 2, key=_key(), init=np.array([[-1.0], [10.0]]),
                 weights=np.array([1.9, 0.1]))
    assert len(set(np.asarray(res.labels).tolist())) == 2
    np.testing.assert_allclose(res.centroids, [[-1], [1]])


# --- peer: test_all_init (dense; callable init has no counterpart)
@pytest.mark.parametrize(
    "estimator, init",
    [pytest.param("kmeans", "random", marks=SLOW), ("kmeans", "k-means++"),
     ("kmeans", "ndarray"), pytest.param("minibatch", "k-means++", marks=SLOW),
     ("minibatch", "ndarray")],
)
def test_all_init(estimator, init):
    n_init = 10 if isinstance(init, str) and init != "ndarray" else 1
    init_arg = centers.copy() if init == "ndarray" else init
    if estimator == "kmeans":
        res = kmeans(X, n_clusters, key=_key(), init=init_arg, n_init=n_init)
    else:
        res = minibatch_kmeans(X, n_clusters, key=_key(), init=init_arg)
    _check_fitted_model(res)


def test_all_init_minibatch_random_raises():
    # peer: MiniBatchKMeans(init="random") fits; jaxclust's mini-batch seeds by k-means++
    with pytest.raises(ValueError, match="`init`"):
        minibatch_kmeans(X, n_clusters, key=_key(), init="random")


# --- peer: test_k_means_function
def test_k_means_function():
    res = kmeans(X, n_clusters, key=_key(), n_init=10)
    assert res.centroids.shape == (n_clusters, n_features)
    assert np.unique(np.asarray(res.labels)).shape[0] == n_clusters
    np.testing.assert_allclose(v_measure_score(true_labels, np.asarray(res.labels)), 1.0)
    assert float(res.inertia) > 0.0


# --- peer: test_kmeans_init_fitted_centers
def test_kmeans_init_fitted_centers():
    # starting from a local optimum does not change the solution
    res1 = kmeans(X, n_clusters, key=_key(), n_init=10)
    res2 = kmeans(X, n_clusters, key=_key(), init=np.asarray(res1.centroids))
    np.testing.assert_allclose(res1.centroids, res2.centroids, rtol=1e-6, atol=1e-6)


# --- peer: test_weighted_vs_repeated
def test_weighted_vs_repeated():
    sample_weight = np.random.RandomState(SEED).randint(1, 5, size=n_samples)
    x_repeat = np.repeat(X, sample_weight, axis=0)
    km_weighted = kmeans(X, n_clusters, key=_key(), init=centers,
                         weights=sample_weight.astype(float))
    km_repeated = kmeans(x_repeat, n_clusters, key=_key(), init=centers)
    np.testing.assert_array_equal(km_repeated.labels, np.repeat(km_weighted.labels,
                                                                sample_weight))
    np.testing.assert_allclose(float(km_weighted.inertia), float(km_repeated.inertia),
                               rtol=1e-5)
    np.testing.assert_allclose(np.sort(km_weighted.centroids, axis=0),
                               np.sort(km_repeated.centroids, axis=0), rtol=1e-5, atol=1e-6)


def _fit(estimator, weights):
    if estimator == "kmeans":
        return kmeans(X, n_clusters, key=_key(), n_init=1, weights=weights)
    return minibatch_kmeans(X, n_clusters, key=_key(), weights=weights)


# --- peer: test_unit_weights_vs_no_weights (dense)
@pytest.mark.parametrize("estimator", ["kmeans", "minibatch"])
def test_unit_weights_vs_no_weights(estimator):
    km_none = _fit(estimator, None)
    km_ones = _fit(estimator, np.ones(n_samples))
    np.testing.assert_array_equal(km_none.labels, km_ones.labels)
    np.testing.assert_allclose(km_none.centroids, km_ones.centroids, rtol=1e-6, atol=1e-6)


# --- peer: test_scaled_weights (dense)
@pytest.mark.parametrize("estimator", ["kmeans", "minibatch"])
def test_scaled_weights(estimator):
    sample_weight = np.random.RandomState(SEED).uniform(size=n_samples)
    km_orig = _fit(estimator, sample_weight)
    km_scaled = _fit(estimator, 0.5 * sample_weight)
    np.testing.assert_array_equal(km_orig.labels, km_scaled.labels)
    np.testing.assert_allclose(km_orig.centroids, km_scaled.centroids, rtol=1e-5, atol=1e-6)


# --- peer: test_k_means_1_iteration (dense)
def test_k_means_1_iteration():
    x = np.random.RandomState(SEED).uniform(size=(100, 5))
    init_centers = x[:5]

    def py_kmeans(x, init):  # the peer's reference: E-step, M-step, E-step
        new_centers = init.copy()
        labels = pairwise_distances_argmin(x, init)
        for label in range(init.shape[0]):
            new_centers[label] = x[labels == label].mean(axis=0)
        labels = pairwise_distances_argmin(x, new_centers)
        return labels, new_centers

    py_labels, py_centers = py_kmeans(x, init_centers)
    res = kmeans(x, 5, key=_key(), init=init_centers, max_iter=1)
    np.testing.assert_array_equal(py_labels, res.labels)
    np.testing.assert_allclose(py_centers, res.centroids, rtol=1e-5, atol=1e-6)


# --- peer: test_kmeans_elkan_results (dense): the peer checks that Elkan's iterates equal
# Lloyd's; here jaxclust's Lloyd against the peer's Lloyd from the same k-means++ centres
@pytest.mark.parametrize("tol", [1e-2, 1e-8, 1e-100, 0])
@pytest.mark.parametrize("distribution", [pytest.param("normal", marks=SLOW), "blobs"])
def test_kmeans_elkan_results(distribution, tol):
    rnd = np.random.RandomState(SEED)
    if distribution == "normal":
        x = rnd.normal(size=(5000, 10))
    else:
        x, _ = make_blobs(random_state=rnd)
    x[x < 0] = 0
    init, _ = sk_kmeans_plusplus(x, 5, random_state=SEED)
    km_peer = KMeans(n_clusters=5, init=init, n_init=1, tol=tol).fit(x)
    with enable_x64():
        res = kmeans(x, 5, key=_key(), init=init, tol=tol)
        res = jax.tree_util.tree_map(np.asarray, res)
    np.testing.assert_allclose(res.centroids, km_peer.cluster_centers_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(res.labels, km_peer.labels_)
    assert int(res.n_iters) == km_peer.n_iter_
    assert float(res.inertia) == pytest.approx(km_peer.inertia_, rel=1e-12)


# --- peer: test_kmeans_convergence (tol=0)
@SLOW
def test_kmeans_convergence():
    rnd = np.random.RandomState(SEED)
    x = rnd.normal(size=(5000, 10))
    max_iter = 300
    res = kmeans(x, 5, key=_key(), n_init=1, tol=0, max_iter=max_iter)
    assert int(res.n_iters) < max_iter
    assert bool(res.converged)


# --- peer: test_inertia (dense)
def test_inertia():
    rng = np.random.RandomState(SEED)
    x = rng.uniform(size=(100, 10)) * (rng.uniform(size=(100, 10)) < 0.5)  # density 0.5
    sample_weight = rng.randn(100)
    cen = rng.randn(5, 10)
    labels = rng.randint(5, size=100, dtype=np.int32)
    # peer: _inertia_dense accepts the randn weights; jaxclust refuses negative weights
    with pytest.raises(ValueError, match="weights"):
        inertia_fn(x, cen, labels, weights=sample_weight)
    w = np.abs(sample_weight)
    expected = np.sum(((x - cen[labels]) ** 2).sum(axis=1) * w)
    np.testing.assert_allclose(float(inertia_fn(x, cen, labels, weights=w)), expected,
                               rtol=1e-4)
    # the peer's single_label: the inertia of one cluster's points
    mask = labels == 1
    expected = np.sum(((x[mask] - cen[1]) ** 2).sum(axis=1) * w[mask])
    value = inertia_fn(x, cen, labels, weights=np.where(mask, w, 0.0))
    np.testing.assert_allclose(float(value), expected, rtol=1e-4)


# --- peer: test_kmeans_plusplus_output (dense)
@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=SLOW), np.float32])
def test_kmeans_plusplus_output(dtype):
    with _precision(dtype):
        data = X.astype(dtype)
        cen = np.asarray(kmeans_plusplus(data, n_clusters, key=_key()))
        assert cen.dtype == dtype
    assert cen.shape[0] == n_clusters
    assert (cen.max(axis=0) <= data.max(axis=0)).all()
    assert (cen.min(axis=0) >= data.min(axis=0)).all()
    # every centre is a point of X (the peer: X[indices] == centers)
    d = euclidean_distances(cen.astype(float), X)
    assert np.all(d.min(axis=1) < 1e-5)


# --- peer: test_sample_weight_init (k-means++)
def test_sample_weight_init():
    x, _ = make_blobs(n_samples=200, n_features=10, centers=10, random_state=SEED)
    rng = np.random.RandomState(SEED)
    weighted = kmeans_plusplus(x, 5, key=_key(), weights=rng.uniform(size=x.shape[0]))
    unweighted = kmeans_plusplus(x, 5, key=_key(), weights=np.ones(x.shape[0]))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(weighted, unweighted)


# --- peer: test_sample_weight_zero (k-means++)
def test_sample_weight_zero():
    x, _ = make_blobs(n_samples=100, n_features=5, centers=5, random_state=SEED)
    rng = np.random.RandomState(SEED)
    sample_weight = rng.uniform(size=x.shape[0])
    sample_weight[::2] = 0
    seeds = kmeans_plusplus(x, 10, key=_key(), weights=sample_weight)
    # no centre is a zero-weight point
    d = euclidean_distances(x[::2], np.asarray(seeds, dtype=float))
    assert not np.any(np.isclose(d, 0))


# --- peer: test_kmeans_warns_less_centers_than_unique_points
@SLOW
def test_kmeans_less_centers_than_unique_points():
    x = np.asarray([[0, 0], [0, 1], [1, 0], [1, 0]], dtype=float)  # last point duplicated
    res = kmeans(x, 4, key=_key())
    # peer: a ConvergenceWarning ("Number of distinct clusters (3) found smaller than
    # n_clusters (4)"); jaxclust does not warn. Only three clusters can hold points
    assert len(set(np.asarray(res.labels).tolist())) == 3
    assert float(res.inertia) == 0.0


# --- peer: test_relocating_with_duplicates
def test_relocating_with_duplicates():
    x = np.array([[0, 0], [1, 1], [1, 1], [1, 0], [0, 1]], dtype=float)
    res = kmeans(x, 5, key=_key(), init=x)
    # peer: stops (n_iter_ == 1, with a ConvergenceWarning) instead of looping forever;
    # jaxclust stops after 2 iterations (the duplicate centre relocated once), converged
    assert int(res.n_iters) == 2
    assert bool(res.converged)
    assert float(res.inertia) == 0.0


# --- peer: test_minibatch_update_consistency (dense step against the peer's own)
def test_minibatch_update_consistency():
    rng = np.random.RandomState(SEED)
    centers_old = centers + rng.normal(size=centers.shape)
    x_mb, w_mb = X[:10], np.ones(10)
    centers_new = np.zeros_like(centers_old)
    weight_sums = np.zeros(centers_old.shape[0])
    old_inertia = _mini_batch_step(x_mb, w_mb, centers_old, centers_new, weight_sums,
                                   np.random.RandomState(SEED), random_reassign=False)
    new_labels, new_inertia = _labels_inertia(x_mb, w_mb, centers_new)

    state, batch_inertia = minibatch_kmeans_update(minibatch_kmeans_init(centers_old), x_mb)
    assert float(batch_inertia) > 0.0
    np.testing.assert_allclose(float(batch_inertia), old_inertia, rtol=1e-5)
    np.testing.assert_allclose(state.centroids, centers_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.counts, weight_sums)
    # the inertia on the same batch decreased
    lab = np.argmin(((x_mb[:, None, :] - np.asarray(state.centroids)[None]) ** 2).sum(-1), 1)
    np.testing.assert_array_equal(lab, new_labels)
    assert new_inertia < old_inertia


# --- peer: test_minibatch_declared_convergence (tol=0, max_no_improvement=10)
def test_minibatch_declared_convergence():
    x, _, blob_centers = make_blobs(centers=3, random_state=0, return_centers=True)
    # the peer's max_iter=10 epochs of 100 points in batches of 20 are 50 steps (jaxclust
    # counts steps, the peer epochs); jaxclust has no centre-change rule (the peer's tol)
    res = minibatch_kmeans(x, 3, key=jax.random.key(0), init=blob_centers, batch_size=20,
                           max_steps=50, max_no_improvement=10)
    # peer: 1 < n_iter_ < 10 epochs, "Converged (lack of improvement in inertia)"
    assert 1 < int(res.n_iters) < 50
    assert bool(res.converged)


# --- peer: test_integer_input (dense, int32)
@pytest.mark.parametrize("estimator, init", [pytest.param("kmeans", "k-means++", marks=SLOW),
                                             ("kmeans", "ndarray"),
                                             pytest.param("minibatch", "ndarray", marks=SLOW)])
def test_integer_input(estimator, init):
    x_dense = np.array([[0, 0], [10, 10], [12, 9], [-1, 1], [2, 0], [8, 10]], dtype=np.int32)
    n_init = 1 if init == "ndarray" else 10
    init_arg = x_dense[:2] if init == "ndarray" else init
    if estimator == "kmeans":
        res = kmeans(x_dense, 2, key=_key(), init=init_arg, n_init=n_init)
    else:
        res = minibatch_kmeans(x_dense, 2, key=_key(), init=init_arg, batch_size=2)
    # peer: float64 centres; jaxclust: its default float (float32)
    assert res.centroids.dtype == np.float32
    np.testing.assert_allclose(v_measure_score(np.asarray(res.labels), [0, 1, 1, 0, 0, 1]), 1.0)
