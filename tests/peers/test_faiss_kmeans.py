"""k-means against faiss (``faiss.Kmeans``) from the same initial centres: Lloyd and
spherical (``spherical=True``) k-means.

faiss's rules, read in facebookresearch/faiss ``faiss/Clustering.cpp`` (commit
06a7033cdd46a021cc24c26c0b98c5a5b493fefd, ``Clustering::train_encoded``,
``post_process_centroids``, ``compute_centroids``) and ``faiss/python/extra_wrappers.py``
(``Kmeans.set_index``): each of ``niter`` iterations assigns every point to its nearest centre
(``IndexFlatL2``; ``IndexFlatIP``, the largest inner product, when spherical), then moves each
centre to the mean of its points; with ``spherical`` the centres (the given initial ones
included) are rescaled to unit L2 norm after every update. Empty clusters are split (not
relocated as in jaxclust): the data here keep every cluster populated. faiss subsamples more
than ``k * max_points_per_centroid`` points: the tests lift that cap.

Skipped when faiss is not installed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import kmeans, kmeans_predict

faiss = pytest.importorskip("faiss")

N, D, K, ITERS = 240, 6, 4, 12


def _data(unit: bool):
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(K, D)) * 3.0
    x = centres[rng.integers(0, K, N)] + rng.normal(size=(N, D))
    if unit:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    c0 = x[rng.choice(N, K, replace=False)].copy()
    return x, c0


def _faiss(x, c0, spherical):
    km = faiss.Kmeans(D, K, niter=ITERS, spherical=spherical, max_points_per_centroid=N,
                      min_points_per_centroid=1, seed=0, verbose=False)
    km.train(x, init_centroids=c0)
    _, lab = km.index.search(x, 1)
    return km.centroids, lab[:, 0]


# (True, False): rows and initial centres not of unit norm; faiss normalises the initial
# centres (not the points), and so does jaxclust
@pytest.mark.parametrize("spherical, unit", [(False, False), (True, True), (True, False)])
def test_same_centres_and_labels_as_faiss_from_the_same_init(spherical, unit):
    x, c0 = _data(unit)
    ref_c, ref_lab = _faiss(x, c0, spherical)
    # tol=0: the centre-shift rule never stops early; stopping when the labels repeat leaves
    # the centres where faiss's remaining iterations keep them
    res = kmeans(jnp.asarray(x), K, key=jax.random.key(0), init=jnp.asarray(c0),
                 max_iter=ITERS, tol=0.0, spherical=spherical)
    assert np.bincount(np.asarray(res.labels), minlength=K).min() > 0  # no empty cluster
    np.testing.assert_array_equal(res.labels, ref_lab)
    # float32 means of ~60 points, summed in a different order: ~1e-6 relative
    np.testing.assert_allclose(res.centroids, ref_c, rtol=1e-5, atol=1e-5)
    if spherical:
        np.testing.assert_allclose(np.linalg.norm(ref_c, axis=1), 1.0, rtol=1e-6)
    lab, _ = kmeans_predict(jnp.asarray(x), jnp.asarray(ref_c), spherical=spherical)
    np.testing.assert_array_equal(lab, ref_lab)
