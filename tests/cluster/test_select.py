"""select_k (issue 18): every k's clustering against scikit-learn's KMeans from the same
initial centres (the first k of one k-means++ seeding of k_max), and every score against
sklearn.metrics on the returned labels.

Tolerances: float32 Lloyd on n = 60 well-separated points reaches the same partition as
sklearn's float64 Lloyd (labels equal), inertia to 1e-5 relative; scores recomputed by
scikit-learn in float64 from the returned labels: 1e-5 relative (float32 sums of n terms).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.cluster import KMeans

from jaxclust.cluster import kmeans_plusplus, select_k

_RNG = np.random.default_rng(0)
_X = np.r_[[_RNG.normal(size=(20, 2)) + 6.0 * np.array([i, i % 2]) for i in range(3)]
           ].reshape(60, 2)
_KS = (2, 3, 4, 5)


def test_select_k_matches_sklearn():
    x = jnp.asarray(_X, jnp.float32)
    res = select_k(x, _KS, key=jax.random.key(0), n_init=1)
    assert res.labels.shape == (4, 60) and res.centroids.shape == (4, 5, 2)
    assert bool(jnp.all(res.converged))
    # the seeding select_k used (one restart: jax.random.split(key, 1)[0])
    kk = jax.random.split(jax.random.key(0), 1)[0]
    seeds = np.asarray(kmeans_plusplus(x, 5, key=kk, n_local_trials=2 + int(np.log(5))),
                       float)
    for i, k in enumerate(_KS):
        km = KMeans(k, init=seeds[:k], n_init=1, algorithm="lloyd", tol=1e-4).fit(_X)
        lab = np.asarray(res.labels[i])
        np.testing.assert_array_equal(lab, km.labels_)
        np.testing.assert_allclose(float(res.inertia[i]), km.inertia_, rtol=1e-5)
        np.testing.assert_allclose(float(res.silhouette[i]), skm.silhouette_score(_X, lab),
                                   rtol=1e-5)
        np.testing.assert_allclose(float(res.calinski_harabasz[i]),
                                   skm.calinski_harabasz_score(_X, lab), rtol=1e-5)
        np.testing.assert_allclose(float(res.davies_bouldin[i]),
                                   skm.davies_bouldin_score(_X, lab), rtol=1e-5)
    assert [int(res.best(c)) for c in ("silhouette", "calinski_harabasz",
                                       "davies_bouldin")] == [3, 3, 3]


def test_select_k_bad_input():
    x = jnp.asarray(_X[:6], jnp.float32)
    with pytest.raises(ValueError, match=r"`k_values` must lie in \[2, n - 1\]"):
        select_k(x, (1, 2), key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`k_values` must lie in \[2, n - 1\]"):
        select_k(x, (2, 6), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`k_values` must be a non-empty sequence of ints"):
        select_k(x, (2.5,), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`x` contains NaN"):
        select_k(x.at[0, 0].set(jnp.nan), (2,), key=jax.random.key(0))
