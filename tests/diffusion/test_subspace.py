"""K-subspaces against a NumPy re-implementation and on planted MoLRG data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.diffusion import k_subspaces, mixture_posterior, mixture_sample
from jaxclust.metrics import clustering_accuracy

from ._problems import random_molrg


def _numpy_k_subspaces(x, U, max_iter=100):
    """Textbook K-subspaces (Bradley & Mangasarian): assignment by largest projection
    energy, refit by SVD of each cluster."""
    x = np.asarray(x, np.float64)
    U = np.array(U, np.float64)
    labels = np.argmax(np.stack([np.sum((x @ u) ** 2, 1) for u in U], 1), 1)
    for _ in range(max_iter):
        for k in range(len(U)):
            xk = x[labels == k]
            if len(xk):
                U[k] = np.linalg.svd(xk, full_matrices=False)[2][: U.shape[2]].T
        new = np.argmax(np.stack([np.sum((x @ u) ** 2, 1) for u in U], 1), 1)
        if np.array_equal(new, labels):
            break
        labels = new
    resid = np.mean(np.sum(x ** 2, 1) - np.max(
        np.stack([np.sum((x @ u) ** 2, 1) for u in U], 1), 1))
    return labels, resid


def test_matches_numpy_from_the_same_start(key):
    rng = np.random.default_rng(0)
    mix = random_molrg(rng, 3, 8, 2, 0.05, dtype=jnp.float32)
    x, _ = mixture_sample(key, mix, 150)
    init = np.linalg.qr(rng.normal(size=(3, 8, 2)))[0]
    res = k_subspaces(x, 3, 2, init=jnp.asarray(init, jnp.float32))
    labels, resid = _numpy_k_subspaces(x, init)
    np.testing.assert_array_equal(res.labels, labels)
    # float32 objective vs float64: relative rounding ~1e-6 on O(1) sums
    np.testing.assert_allclose(res.residual, resid, rtol=1e-4)
    assert bool(res.converged)


@pytest.mark.slow
def test_recovers_planted_subspaces_as_well_as_the_bayes_rule(key):
    # the subspace-clustering view: K-subspaces on MoLRG samples recovers the planted
    # subspaces (principal angles ~0) and clusters as well as the exact posterior (Bayes)
    rng = np.random.default_rng(1)
    mix = random_molrg(rng, 3, 10, 2, 0.02, dtype=jnp.float32, equal=True)
    x, y = mixture_sample(key, mix, 600)
    res = k_subspaces(x, 3, 2, key=jax.random.key(5), n_init=8)
    bayes = jnp.argmax(mixture_posterior(x, mix), axis=1)
    acc = float(clustering_accuracy(y, res.labels))
    acc_bayes = float(jnp.mean(bayes == y))
    assert acc >= acc_bayes - 0.01
    # match each fitted subspace to a planted one: largest singular values of U_k^T V_j
    # (cosines of the principal angles) close to one
    U, V = np.asarray(mix.bases), np.asarray(res.bases)
    cos = np.array([[np.linalg.svd(U[i].T @ V[j], compute_uv=False).min() for j in range(3)]
                    for i in range(3)])
    assert np.all(cos.max(1) > 0.99)


# --- bad input, one test per rule ---------------------------------------------------------

def test_subspace_dimension_too_large(key):
    with pytest.raises(ValueError, match="`d`"):
        k_subspaces(jnp.ones((10, 3)), 2, 4, key=key)


def test_too_many_clusters(key):
    with pytest.raises(ValueError, match="`k`"):
        k_subspaces(jnp.ones((3, 3)), 5, 1, key=key)


def test_missing_key():
    with pytest.raises(ValueError, match="key"):
        k_subspaces(jnp.ones((10, 3)), 2, 1)


def test_bad_init_shape():
    with pytest.raises(ValueError, match="init"):
        k_subspaces(jnp.ones((10, 3)), 2, 1, init=jnp.ones((2, 3, 2)))
