"""scikit-learn's spectral-clustering tests, ported to `jaxclust.cluster.spectral`.

Peer file: ``sklearn/cluster/tests/test_spectral.py`` of scikit-learn 1.9.1 (the installed
package). Data (the 7 x 7 block affinity, ``make_blobs(n_samples=20, centers=[[1, 1], [-1,
-1]], cluster_std=0.01)`` with the peer's seeds, ``check_random_state(10).rand(10, 5) * 10``),
parameters and expected values are the peer's; ``global_random_seed`` is the peer's default,
42. Where the peer relies on its own embedding we compare with the installed
``sklearn.manifold.spectral_embedding``.

Translation of the API differences:

* ``SpectralClustering(n_clusters=k, affinity=a, gamma=g, n_neighbors=m, n_components=c,
  random_state=s).fit(X).labels_`` -> ``spectral(X, k, key=jax.random.key(s), affinity=...,
  gamma=g, n_neighbors=m, n_components=c).labels``; ``affinity="nearest_neighbors"`` ->
  ``"knn"``. The peer's default ``gamma=1.0`` is passed explicitly (jaxclust's default is the
  ``1 / (d var x)`` scale rule). Only ``assign_labels="kmeans"`` exists in jaxclust (no
  ``"discretize"`` / ``"cluster_qr"``); the peer's ``eigen_solver`` grid (``"arpack"``,
  ``"lobpcg"``) has no counterpart (jaxclust uses a dense ``eigh``), so it is kept as the
  solver of the peer's ``spectral_embedding`` that jaxclust's embedding is compared with.
* Sparse affinities are passed dense; ``affinity="precomputed"`` takes the same matrix.
* **Convention:** a precomputed affinity with negative entries is a ValueError in jaxclust
  (the peer's kernel loop feeds ``linear``, ``polynomial``, ``sigmoid`` ... kernels that can
  be negative and only checks the label shape); for those kernels the ported case asserts
  the error, for the non-negative ones the label shape. Callable affinities have no
  counterpart (the user passes the matrix).
* The peer's "graph is not fully connected" warning has no counterpart (no warning).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.manifold import spectral_embedding
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import kernel_metrics, pairwise_kernels, rbf_kernel
from sklearn.utils import check_random_state

from jaxclust.cluster import spectral

from ..utils import enable_x64

SEED = 42  # the peer's global_random_seed
S_BLOCKS = np.array(
    [
        [1.0, 1.0, 1.0, 0.2, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.2, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 0.2, 0.0, 0.0, 0.0],
        [0.2, 0.2, 0.2, 1.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
    ]
)


def _blobs(random_state):
    return make_blobs(n_samples=20, random_state=random_state, centers=[[1, 1], [-1, -1]],
                      cluster_std=0.01)


# --- peer: test_spectral_clustering (assign_labels="kmeans")
@pytest.mark.parametrize("eigen_solver", ["arpack", "lobpcg"])
def test_spectral_clustering(eigen_solver):
    with enable_x64():
        res = spectral(S_BLOCKS, 2, key=jax.random.key(SEED), affinity="precomputed")
        embedding = np.asarray(res.embedding)
    labels = np.asarray(res.labels)
    if labels[0] == 0:
        labels = 1 - labels
    assert adjusted_rand_score(labels, [1, 1, 1, 0, 0, 0, 0]) == 1
    # the embedding the peer clusters (random-walk eigenvectors, deterministic signs)
    expected = spectral_embedding(S_BLOCKS, n_components=2, eigen_solver=eigen_solver,
                                  random_state=SEED, drop_first=False)
    np.testing.assert_allclose(embedding, expected, atol=1e-8)


# --- peer: test_spectral_clustering_sparse (assign_labels="kmeans", dense container)
def test_spectral_clustering_sparse():
    x, y = _blobs(SEED)
    s = rbf_kernel(x, gamma=1)
    s = np.maximum(s - 1e-4, 0)
    labels = spectral(s, 2, key=jax.random.key(SEED), affinity="precomputed").labels
    assert adjusted_rand_score(y, np.asarray(labels)) == 1


# --- peer: test_affinities (nearest neighbours and rbf with gamma=2)
@pytest.mark.parametrize("affinity, kwargs", [("knn", {"n_neighbors": 10}),
                                              ("rbf", {"gamma": 2.0})])
def test_affinities(affinity, kwargs):
    x, y = _blobs(0)
    res = spectral(x, 2, key=jax.random.key(SEED), affinity=affinity, **kwargs)
    assert adjusted_rand_score(y, np.asarray(res.labels)) == 1


# --- peer: test_affinities (the kernel loop; additive_chi2 excluded as by the peer)
@pytest.mark.parametrize("kern", [k for k in kernel_metrics() if k != "additive_chi2"])
def test_affinities_kernels(kern):
    x = check_random_state(10).rand(10, 5) * 10
    w = pairwise_kernels(x, metric=kern)
    if np.any(w < 0):
        # peer: fits and returns 10 labels; jaxclust refuses negative affinities
        with pytest.raises(ValueError, match="negative entries"):
            spectral(w, 2, key=jax.random.key(0), affinity="precomputed")
    else:
        labels = spectral(w, 2, key=jax.random.key(0), affinity="precomputed").labels
        assert (x.shape[0],) == labels.shape


# --- peer: test_n_components (a k = 8 compilation: make test-all)
@pytest.mark.slow
def test_n_components():
    x, y = _blobs(SEED)
    key = jax.random.key(SEED)
    labels = spectral(x, 2, key=key, gamma=1.0).labels
    # n_components = n_clusters by default
    labels_same_ncomp = spectral(x, 2, key=key, gamma=1.0, n_components=2).labels
    np.testing.assert_array_equal(labels, labels_same_ncomp)
    # n_components changes the result: the peer's default n_clusters=8 with n_components=2
    labels_diff_ncomp = spectral(x, 8, key=key, gamma=1.0, n_components=2).labels
    assert not np.array_equal(labels, labels_diff_ncomp)
