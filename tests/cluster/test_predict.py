"""Prediction for new points (issue 18): soft / Sinkhorn k-means, k-medoids, Laplacian
k-means, each against an independent float64 reference (NumPy softmax, POT's ``ot.sinkhorn``,
SciPy ``cdist``, a NumPy transcription of the out-of-sample formula) on given parameters
(fast), and against the fit on its own training points (slow: the fits' compilations).

Tolerances: float64 references 1e-10 (1e-7 for Sinkhorn: both solve to a marginal
tolerance); reproducing a float32 fit's assignments: 1e-5 (soft), 1e-3 (Sinkhorn solves to
1e-6 in L1 marginals, the fit's last solve was warm-started).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from scipy.spatial.distance import cdist

from jaxclust.cluster import (
    LaplacianKMeansResult,
    kmedoids,
    kmedoids_predict,
    laplacian_kmeans_predict,
    sinkhorn_kmeans,
    sinkhorn_kmeans_predict,
    soft_kmeans,
    soft_kmeans_predict,
)

from ..utils import enable_x64

_RNG = np.random.default_rng(0)
_X = np.r_[_RNG.normal(size=(15, 2)) + 3.0, _RNG.normal(size=(15, 2)) - 3.0]
_NEW = _RNG.normal(size=(7, 2)) * 3.0


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.slow
def test_soft_kmeans_predict_reproduces_fit():
    res = soft_kmeans(jnp.asarray(_X, jnp.float32), 2, temperature=2.0, key=jax.random.key(0))
    lab, q = soft_kmeans_predict(jnp.asarray(_X, jnp.float32), res.centroids, temperature=2.0)
    np.testing.assert_allclose(q, res.assignments, atol=1e-5)
    np.testing.assert_array_equal(lab, res.labels)


def test_soft_kmeans_predict():
    c = _X[[0, 20]]
    with enable_x64():
        lab, q = soft_kmeans_predict(jnp.asarray(_NEW), jnp.asarray(c), temperature=2.0)
    ref = _softmax(-cdist(_NEW, c, "sqeuclidean") / 2.0)
    np.testing.assert_allclose(q, ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(lab, ref.argmax(1))


@pytest.mark.slow
def test_sinkhorn_kmeans_predict_reproduces_fit():
    x = jnp.asarray(_X, jnp.float32)
    # equal sizes: the two blobs (a 1:2 split of equal blobs converges too slowly to test)
    res = sinkhorn_kmeans(x, 2, key=jax.random.key(1), epsilon=0.5)
    lab, q, ok = sinkhorn_kmeans_predict(x, res.centroids, epsilon=0.5)
    assert bool(res.converged) and bool(ok)
    np.testing.assert_allclose(q, res.assignments, atol=1e-3)


def test_sinkhorn_kmeans_predict():
    c = _X[[0, 20]]
    w = _RNG.uniform(0.5, 1.5, size=7)
    sizes = jnp.asarray([1.0, 2.0])
    with enable_x64():
        lab, q, ok = sinkhorn_kmeans_predict(jnp.asarray(_NEW), jnp.asarray(c), epsilon=0.5,
                                             sizes=sizes, weights=jnp.asarray(w), tol=1e-12,
                                             max_iter=20000)
    a, b = w / w.sum(), np.array([1.0, 2.0]) / 3.0
    plan = ot.sinkhorn(a, b, cdist(_NEW, c, "sqeuclidean"), 0.5, stopThr=1e-14,
                       numItermax=100000)
    assert bool(ok)
    np.testing.assert_allclose(q, plan / a[:, None], rtol=1e-7, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan", "cosine"])
def test_kmedoids_predict_reproduces_fit(metric):
    x = jnp.asarray(_X, jnp.float32)
    res = kmedoids(x, 3, metric=metric)
    lab, _ = kmedoids_predict(x, x[res.medoids], metric=metric)
    np.testing.assert_array_equal(lab, res.labels)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan", "cosine"])
def test_kmedoids_predict(metric):
    m = _X[[0, 5, 20]]
    scipy_metric = {"manhattan": "cityblock"}.get(metric, metric)
    ref = cdist(_NEW, m, scipy_metric)
    with enable_x64():
        lab, d = kmedoids_predict(jnp.asarray(_NEW), jnp.asarray(m), metric=metric)
        lab_p, d_p = kmedoids_predict(jnp.asarray(ref), metric="precomputed")
    np.testing.assert_array_equal(lab, ref.argmin(1))
    np.testing.assert_allclose(d, ref.min(1), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(lab_p, ref.argmin(1))
    np.testing.assert_allclose(d_p, ref.min(1), rtol=0)


def _laplacian_oracle(new, xt, z, c, n_neighbors, lam, temp):
    mean = xt.mean(0)
    f = (new - mean) / np.linalg.norm(new - mean, axis=1, keepdims=True)
    ft = (xt - mean) / np.linalg.norm(xt - mean, axis=1, keepdims=True)
    idx = np.argsort(cdist(f, ft, "sqeuclidean"), axis=1)[:, :n_neighbors]
    logits = (-cdist(f, c, "sqeuclidean") + lam * z[idx].sum(1)) / temp
    return _softmax(logits)


def test_laplacian_kmeans_predict():
    # a fitted model's arrays: soft assignments and prototypes on the CL2N features
    z = _RNG.dirichlet(np.ones(2), size=30)
    res = LaplacianKMeansResult(
        jnp.asarray(z), jnp.asarray(z.argmax(1)), jnp.asarray(_RNG.normal(size=(2, 2)) * 0.5),
        jnp.zeros(1), jnp.int32(1), jnp.bool_(True))
    with enable_x64():
        r64 = res._replace(assignments=jnp.asarray(np.asarray(res.assignments, float)),
                           centroids=jnp.asarray(np.asarray(res.centroids, float)))
        lab, q = laplacian_kmeans_predict(jnp.asarray(_NEW), jnp.asarray(_X), r64,
                                          n_neighbors=3, lam=0.5, temperature=0.5)
    ref = _laplacian_oracle(_NEW, _X, np.asarray(res.assignments, float),
                            np.asarray(res.centroids, float), 3, 0.5, 0.5)
    np.testing.assert_allclose(q, ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(lab, ref.argmax(1))


def test_predict_bad_input():
    c = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match="`x` must have 2 features"):
        soft_kmeans_predict(jnp.zeros((3, 3)), c, temperature=1.0)
    with pytest.raises(ValueError, match="`temperature` must be"):
        soft_kmeans_predict(jnp.zeros((3, 2)), c, temperature=0.0)
    with pytest.raises(ValueError, match="`epsilon` must be"):
        sinkhorn_kmeans_predict(jnp.zeros((3, 2)), c, epsilon=-1.0)
    with pytest.raises(ValueError, match="`sizes` must have shape"):
        sinkhorn_kmeans_predict(jnp.zeros((3, 2)), c, epsilon=1.0, sizes=jnp.ones(3))
    with pytest.raises(ValueError, match="`x` contains NaN"):
        kmedoids_predict(jnp.full((3, 2), jnp.nan), c)
    with pytest.raises(ValueError, match="`medoids` .* is required"):
        kmedoids_predict(jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="`medoids` must be None"):
        kmedoids_predict(jnp.zeros((3, 2)), c, metric="precomputed")
    with pytest.raises(ValueError, match="`metric` must be one of"):
        kmedoids_predict(jnp.zeros((3, 2)), c, metric="l3")
