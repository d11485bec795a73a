"""The winning restart of ``n_init`` runs (``jaxclust._core.restarts``): the first within a
relative 1e-5 of the best, so that restarts reaching the same partition (objectives equal up
to rounding) resolve the same way in a single solve, a batched one and on any backend."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust._core.restarts import best_restart
from jaxclust.cluster import gmm, kmeans


def test_ties_to_rounding_go_to_the_first_restart():
    assert int(best_restart(jnp.asarray([1.0 + 3e-6, 1.0, 2.0]))) == 0
    assert int(best_restart(jnp.asarray([1.1, 1.0, 2.0]))) == 1  # a real improvement wins
    assert int(best_restart(jnp.asarray([jnp.nan, 3.0, 2.0]))) == 2  # NaN never wins
    assert int(best_restart(jnp.asarray([jnp.nan, jnp.nan]))) == 0
    assert int(best_restart(jnp.asarray([-4.00002, -4.0, -5.0]), maximize=True)) == 0
    assert int(best_restart(jnp.asarray([-5.0, -4.0, -4.0 + 1e-6]), maximize=True)) == 1
    assert int(best_restart(jnp.asarray([0.0, 0.0]))) == 0
    scores = jnp.asarray([[3.0, 1.0], [1.0, 1.0 + 1e-7], [2.0, 0.5]])  # (n_init, K)
    np.testing.assert_array_equal(best_restart(scores, axis=0), [1, 2])
    # under vmap and jit
    np.testing.assert_array_equal(jax.jit(jax.vmap(best_restart, in_axes=1))(scores), [1, 2])


def test_kmeans_restarts_reaching_one_partition_keep_the_first():
    """Four well-separated blobs: every restart finds the same partition, and the result is
    restart 0's, labels included, not a relabelled copy chosen by rounding. Restart ``i``
    runs with ``jax.random.split(key, n_init)[i]``; a single solve (``n_init=1``) with
    ``split(key, 1)[0]``, which is restart 0's key (JAX's partitionable threefry)."""
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = jnp.asarray(np.repeat(centres, 40, 0) + rng.normal(size=(160, 2)), jnp.float32)
    key = jax.random.key(7)
    if not np.array_equal(jax.random.key_data(jax.random.split(key, 4)[0]),
                          jax.random.key_data(jax.random.split(key, 1)[0])):
        pytest.skip("split(key, n)[0] depends on n with this JAX's PRNG configuration")
    first = kmeans(x, 4, key=key)  # restart 0 alone
    best = kmeans(x, 4, key=key, n_init=4)
    np.testing.assert_allclose(float(best.inertia), float(first.inertia), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(best.labels), np.asarray(first.labels))
    batched = jax.jit(jax.vmap(lambda z: kmeans(z, 4, key=key, n_init=4).labels))(
        jnp.stack([x, x * 1.0000001]))
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(first.labels)[None].repeat(2, 0))


def test_gmm_restarts_reaching_one_fit_keep_the_first():
    rng = np.random.default_rng(4)
    x = jnp.asarray(np.concatenate([rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 8]),
                    jnp.float32)
    key = jax.random.key(1)
    first = gmm(x, 2, key=key)  # restart 0 alone (see the k-means test)
    best = gmm(x, 2, key=key, n_init=3)
    np.testing.assert_allclose(float(best.log_likelihood), float(first.log_likelihood),
                               rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(best.labels), np.asarray(first.labels))
