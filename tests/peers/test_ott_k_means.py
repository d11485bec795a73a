"""ott-jax's k-means tests, ported to ``jaxclust.cluster.kmeans`` / ``kmeans_plusplus``.

Peer file: ott-jax/ott ``tests/tools/k_means_test.py`` at tag 0.6.0, commit
5aa6da0fbd8fe9c255b749ac5fb49f3092860cc4. The peer's data (``sklearn.datasets.make_blobs`` with
its ``random_state``s, the 4-point example, the 4 shifted Gaussian groups of
``RandomState(0)``), parameters and tolerances are kept; its ``rng`` fixture
``jax.random.key(0)`` is jaxclust's ``key``. float32, as the peer.

Translation of the API
----------------------
* ``k_means.k_means(x, k, rng=, init=, n_init=, max_iterations=, tol=, weights=)`` ->
  ``kmeans(x, k, key=, init=, n_init=, max_iter=, tol=, weights=)``; ``res.assignment`` ->
  ``labels``, ``res.error`` -> ``inertia``, ``res.iteration`` -> ``n_iters``, ``res.centroids``
  and ``res.converged`` keep their names. ``tol`` bounds the squared centre shift in both,
  absolute in ott (``|C_new - C|_F^2 <= tol``, ``converged`` also when the inertia decreases by
  at most ``tol``), relative in jaxclust (scikit-learn's rule, ``tol * mean(var(x))``); both stop
  when the labels stop changing, so iteration counts may differ and are not compared.
* ``init`` as a callable ``(geom, k, rng) -> centres`` -> ``init`` as the ``(k, d)`` array it
  would return; a wrong shape raises ValueError in both (ott: "Expected initial
  centroids", jaxclust: "`init` centres must have shape").
* ``k_means._k_means_plus_plus(geom, k, rng, n_local_trials)`` ->
  ``kmeans_plusplus(x, k, key=, n_local_trials=)``.
* scikit-learn's private ``_is_same_clustering`` -> ``adjusted_rand_score == 1`` (the same
  partition up to relabelling).
* Not ported: PointCloud/cosine geometries (jaxclust's k-means is squared Euclidean),
  ``store_inner_errors`` and ``min_iterations`` (no analog).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import datasets
from sklearn.cluster import KMeans, kmeans_plusplus as sk_kmeans_plusplus
from sklearn.metrics import adjusted_rand_score

from jaxclust.cluster import kmeans, kmeans_plusplus

KEY = jax.random.key(0)  # the peer's `rng` fixture


def make_blobs(**kwargs):
    X, y, c = datasets.make_blobs(return_centers=True, **kwargs)
    return jnp.asarray(X, jnp.float32), np.asarray(y), np.asarray(c)


def _inertia(x, centers, weights=None):
    """The peer's ``compute_assignment``: weighted sum of squared distances to the nearest
    centre (numpy, float64)."""
    x, centers = np.asarray(x, np.float64), np.asarray(centers, np.float64)
    d = ((x[:, None] - centers[None]) ** 2).sum(-1)
    w = np.ones(len(x)) if weights is None else np.asarray(weights)
    return float(np.sum(w * d.min(1)))


def _same_clustering(p, q):
    return adjusted_rand_score(np.asarray(p), np.asarray(q)) == 1.0


@pytest.mark.parametrize("k", [3, 5])
def test_kmeans_plusplus_matches_sklearn(k):
    """Peer: k-means++ centres (blobs, n=100, d=2, ``random_state=0``) lie in the data's
    bounding box and their inertia is within 200 of scikit-learn's k-means++
    (``random_state=1``)."""
    x, _, _ = make_blobs(n_samples=100, centers=k, n_features=2, random_state=0)
    gt_centers, _ = sk_kmeans_plusplus(np.asarray(x), k, random_state=1)
    pred_centers = kmeans_plusplus(x, k, key=KEY)
    assert pred_centers.shape == (k, 2)
    np.testing.assert_array_equal(pred_centers.max(axis=0) <= x.max(axis=0), True)
    np.testing.assert_array_equal(pred_centers.min(axis=0) >= x.min(axis=0), True)
    assert abs(_inertia(x, pred_centers) - _inertia(x, gt_centers)) <= 200


@pytest.mark.parametrize("k", [1, 6])
def test_k_means_output(k):
    """Peer (blobs n=50, d=4, ``random_state=42``, 10 iterations): centres of shape (k, 4),
    converged, inertia >= 0, and the generating clustering recovered."""
    x, gt_assignment, _ = make_blobs(n_samples=50, n_features=4, centers=k, random_state=42)
    res = kmeans(x, k, key=KEY, max_iter=10)
    assert res.centroids.shape == (k, 4)
    assert bool(res.converged)
    assert float(res.inertia) >= 0.0
    assert _same_clustering(res.labels, gt_assignment)


def test_k_means_simple_example():
    """Peer: 4 points, initial centres (0.5, 0.5) and (3, 3): labels [1, 1, 0, 0], centres
    [[0.75, 1], [0.25, 0]], inertia 0.25. The second centre starts with no point: ott and
    jaxclust both move it to a point farthest from its centre, then Lloyd finds the same
    clustering."""
    x = jnp.asarray([[0, 0], [0.5, 0], [0.5, 1], [1, 1]], jnp.float32)
    res = kmeans(x, 2, key=KEY, init=jnp.array([[0.5, 0.5], [3, 3]]))
    expected_labels = np.asarray([1, 1, 0, 0])
    expected_centers = np.asarray([[0.75, 1], [0.25, 0]])
    assert _same_clustering(res.labels, expected_labels)
    perm = np.asarray(res.labels)[[2, 0]]  # our label of the peer's cluster 0 and 1
    np.testing.assert_allclose(np.asarray(res.centroids)[perm], expected_centers)
    np.testing.assert_allclose(res.inertia, 0.25)
    assert bool(res.converged)


@pytest.mark.parametrize("init", ["k-means++", "random", "callable", "wrong-callable"])
def test_init_method(init):
    """Peer: every init runs; a callable returning k + 1 centres raises ValueError (blobs
    n=50 with 4 centres, k=3; the peer's blobs have no seed: ``random_state=0`` here)."""
    k = 3
    x, _, _ = make_blobs(n_samples=50, centers=k + 1, random_state=0)
    if init == "wrong-callable":
        with pytest.raises(ValueError, match="init"):
            kmeans(x, k, key=KEY, init=x[: k + 1])
        return
    res = kmeans(x, k, key=KEY, init=x[:k] if init == "callable" else init)
    assert bool(res.converged)
    assert set(np.unique(np.asarray(res.labels))) <= set(range(k))
    np.testing.assert_allclose(res.inertia, _inertia(x, res.centroids), rtol=1e-4)


def test_weight_scaling_effects_only_inertia():
    """Peer (blobs n=130, 10 centres, ``random_state=3``, k=9, weights |N(0, 1)|): normalising
    the weights changes neither centres (1e-5) nor labels; the inertia scales (1e-3)."""
    k = 10
    rng1, _ = jax.random.split(KEY)
    x, _, _ = make_blobs(n_samples=130, centers=k, random_state=3)
    weights = jnp.abs(jax.random.normal(rng1, shape=(x.shape[0],)))
    weights_scaled = weights / jnp.sum(weights)
    res = kmeans(x, k - 1, key=KEY, weights=weights)
    res_scaled = kmeans(x, k - 1, key=KEY, weights=weights_scaled)
    np.testing.assert_allclose(res.centroids, res_scaled.centroids, rtol=1e-5, atol=1e-5)
    assert _same_clustering(res.labels, res_scaled.labels)
    np.testing.assert_allclose(res.inertia, res_scaled.inertia * jnp.sum(weights), rtol=1e-3,
                               atol=1e-3)


def test_empty_weights():
    """Peer: four Gaussian groups of 20 around (+-5, +-5) (``RandomState(0)``); the first
    group has zero weight, k = 3: the centres are the other groups' means (total squared
    shift < 1e-3, each matched once)."""
    n, ndim, k, d = 20, 2, 3, 5.0
    gen = np.random.RandomState(0)
    groups = []
    for sx, sy in ((d, d), (-d, -d), (d, -d), (-d, d)):
        g = gen.normal(size=(n, ndim))
        g[:, 0] += sx
        g[:, 1] += sy
        groups.append(g)
    x = jnp.asarray(np.concatenate(groups), jnp.float32)
    weights = jnp.ones((x.shape[0],)).at[:n].set(0.0)
    expected = np.stack([groups[3].mean(0), groups[2].mean(0), groups[1].mean(0)])
    res = kmeans(x, k, key=KEY, weights=weights)
    cost = ((np.asarray(res.centroids)[:, None] - expected[None]) ** 2).sum(-1)
    ixs = np.argmin(cost, axis=1)
    np.testing.assert_array_equal(np.sort(ixs), np.arange(k))
    np.testing.assert_allclose(cost[np.arange(k), ixs].sum(), 0.0, rtol=1e-3, atol=1e-3)


# slow (time budget: gradient compilations of the whole k-means); the fast twin is the k-means
# case of tests/test_conformance.py (grad vs finite differences)
@pytest.mark.slow
@pytest.mark.parametrize("jit", [True, False])
def test_k_means_differentiability(jit):
    """Peer (blobs n=150, 4 centres, ``random_state=41``, weights |N(0, 1)|): the gradient of
    the inertia w.r.t. ``x`` and the weights matches central differences along random
    directions of norm 1e-3 (rtol/atol 1e-3), jitted or not."""
    k, eps, tol = 4, 1e-3, 1e-3
    x, _, _ = make_blobs(n_samples=150, centers=k, random_state=41)
    rng1, rng2, rng3, rng4 = jax.random.split(KEY, 4)
    w = jnp.abs(jax.random.normal(rng2, (x.shape[0],)))

    def inertia(x, w):
        return kmeans(x, k, key=rng1, weights=w, max_iter=20).inertia

    v_x = jax.random.normal(rng3, shape=x.shape)
    v_x = (v_x / jnp.linalg.norm(v_x, axis=-1, keepdims=True)) * eps
    v_w = jax.random.normal(rng4, shape=w.shape) * eps
    v_w = (v_w / jnp.linalg.norm(v_w, axis=-1, keepdims=True)) * eps
    grad_fn = jax.grad(inertia, (0, 1))
    if jit:
        grad_fn = jax.jit(grad_fn)
    grad_x, grad_w = grad_fn(x, w)
    expected = inertia(x + v_x, w) - inertia(x - v_x, w)
    np.testing.assert_allclose(2 * jnp.vdot(v_x, grad_x), expected, rtol=tol, atol=tol)
    expected = inertia(x, w + v_w) - inertia(x, w - v_w)
    np.testing.assert_allclose(2 * jnp.vdot(v_w, grad_w), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("tol", [1e-3, 0.0])
@pytest.mark.parametrize(("n", "k"), [(37, 4), (128, 2)])
def test_clustering_matches_sklearn(n, k, tol):
    """Peer (blobs, ``random_state=0``): with 20 restarts the clustering is scikit-learn's
    (``KMeans(n_init=20, random_state=0)``) and the inertia agrees within 1e-3."""
    x, _, _ = make_blobs(n_samples=n, centers=k, random_state=0)
    ref = KMeans(n_clusters=k, n_init=20, tol=tol, random_state=0).fit(np.asarray(x))
    res = kmeans(x, k, key=KEY, n_init=20, tol=tol)
    assert _same_clustering(res.labels, ref.labels_)
    np.testing.assert_allclose(res.inertia, ref.inertia_, rtol=1e-3, atol=1e-3)
