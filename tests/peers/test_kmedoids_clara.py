"""fastclara against the ``kmedoids`` package (Schubert's Rust kmedoids, Python binding).

The installed ``kmedoids`` has no ``fastclara`` entry point, so the peer CLARA is assembled
from its own pieces on the **same subsamples** jaxclust draws: ``kmedoids.pam_build`` +
``kmedoids.fasterpam`` on each subsample's dissimilarities, the full-data loss of the
result, the best kept and fed into the next subsample (Kaufman and Rousseeuw's CLARA as
the kmedoids crate implements it). Equal losses in float64 (1e-10 relative). Then, over
seeds, the loss distribution against a full FasterPAM on the n x n matrix: never below it,
and within a few per cent on blob data (the statement "equal loss within its randomness").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import kmedoids
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from jaxclust.cluster import fastclara
from jaxclust.cluster.clara import _sample

from ..utils import enable_x64

_RNG = np.random.default_rng(0)
_X = np.r_[_RNG.normal(size=(150, 2)) + 4.0, _RNG.normal(size=(150, 2)) - 4.0,
           _RNG.normal(size=(100, 2)) + np.array([4.0, -4.0])]


def _peer_clara(x, k, key, n_samples, s):
    """CLARA with kmedoids.pam_build + kmedoids.fasterpam on jaxclust's subsamples."""
    n = x.shape[0]
    k0, key = jax.random.split(key)
    best = np.asarray(jax.random.permutation(k0, n)[:k], np.int32)
    best_loss = np.inf
    for kr in jax.random.split(key, n_samples):
        idx = np.asarray(_sample(kr, n, s, k, jnp.asarray(best)))
        d = cdist(x[idx], x[idx])
        build = kmedoids.pam_build(d, k)
        res = kmedoids.fasterpam(d, np.asarray(build.medoids), max_iter=100)
        cand = idx[np.asarray(res.medoids)]
        loss = cdist(x, x[cand]).min(1).sum()
        if loss < best_loss:
            best, best_loss = cand, loss
    return best_loss


@pytest.mark.parametrize("seed", [0, 1])
def test_fastclara_equals_peer_clara_on_same_samples(seed):
    with enable_x64():
        key = jax.random.key(seed)
        res = fastclara(jnp.asarray(_X), 3, key=key, n_samples=3, sample_size=40)
        ref = _peer_clara(_X, 3, key, 3, 40)
    assert bool(res.converged)
    np.testing.assert_allclose(float(res.objective), ref, rtol=1e-10)
    np.testing.assert_allclose(float(res.objective),
                               cdist(_X, _X[np.asarray(res.medoids)]).min(1).sum(), rtol=1e-10)


def test_fastclara_loss_distribution_vs_full_fasterpam():
    full = kmedoids.fasterpam(cdist(_X, _X), 3, init="build").loss
    run = jax.jit(jax.vmap(lambda kk: fastclara(jnp.asarray(_X, jnp.float32), 3, key=kk,
                                                n_samples=5).objective))
    losses = np.asarray(run(jax.random.split(jax.random.key(5), 8)), float)
    # float32 sums of 400 distances: 1e-5 relative
    assert np.all(losses >= full * (1 - 1e-5)), (losses, full)
    assert np.median(losses) <= full * 1.02, (losses, full)


def test_fastclara_bad_input():
    x = jnp.asarray(_X[:20], jnp.float32)
    with pytest.raises(ValueError, match="`metric` must be one of"):
        fastclara(x, 2, key=jax.random.key(0), metric="precomputed")
    with pytest.raises(ValueError, match="sample_size"):
        fastclara(x, 2, key=jax.random.key(0), sample_size=2)
    with pytest.raises(ValueError, match="`x` contains NaN"):
        fastclara(x.at[0, 0].set(jnp.nan), 2, key=jax.random.key(0))
