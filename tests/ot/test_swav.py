"""SwAV codes: an equipartition of a batch over prototypes by a few Sinkhorn rounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import swav_codes


def swav_reference(scores: np.ndarray, epsilon: float, n_iter: int) -> np.ndarray:
    """The Sinkhorn-Knopp step of SwAV (Caron et al. 2020, Algorithm / ``distributed_sinkhorn``
    of the official code), in numpy float64 and in the exp domain."""
    Q = np.exp(scores / epsilon).T  # K x B
    Q /= Q.sum()
    K, B = Q.shape
    for _ in range(n_iter):
        Q /= Q.sum(axis=1, keepdims=True)  # each prototype gets mass 1/K
        Q /= K
        Q /= Q.sum(axis=0, keepdims=True)  # each sample gets mass 1/B
        Q /= B
    Q *= B  # columns (samples) sum to 1
    return Q.T


def _cosine_scores(rng, batch, k, d=8):
    z = rng.normal(size=(batch, d))
    c = rng.normal(size=(k, d))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return z @ c.T


@pytest.mark.parametrize("epsilon,n_iter", [(0.05, 3), (0.5, 1), (0.1, 10)])
def test_matches_reference(epsilon, n_iter):
    rng = np.random.default_rng(0)
    scores = _cosine_scores(rng, 32, 5)
    q = np.asarray(swav_codes(jnp.asarray(scores, jnp.float32), epsilon=epsilon, n_iter=n_iter))
    ref = swav_reference(scores, epsilon, n_iter)
    assert q.dtype == np.float32
    # float32, log domain: entries are exp of values up to 1/eps = 20, accurate to ~1e-6
    # relative; tiny entries are compared absolutely
    np.testing.assert_allclose(q, ref, rtol=1e-4, atol=1e-7)


def test_rows_sum_to_one():
    rng = np.random.default_rng(1)
    scores = jnp.asarray(rng.normal(size=(16, 4)) * 3, jnp.float32)
    for n_iter in (1, 3):
        q = np.asarray(swav_codes(scores, epsilon=0.2, n_iter=n_iter))
        assert np.all(q >= 0)
        np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-5)  # float32 normalisation


def test_columns_approach_equipartition():
    rng = np.random.default_rng(2)
    B, K = 64, 4
    # an imbalanced batch: most samples prefer prototype 0
    scores = rng.normal(size=(B, K)) + np.array([2.0, 0.0, 0.0, -1.0])
    scores = jnp.asarray(scores, jnp.float32)
    raw = np.asarray(jax.nn.softmax(scores / 0.5, axis=1)).sum(0)
    gaps = []
    for n_iter in (1, 3, 10, 100):
        q = np.asarray(swav_codes(scores, epsilon=0.5, n_iter=n_iter))
        gaps.append(np.abs(q.sum(0) - B / K).max())
    assert np.abs(raw - B / K).max() > 5  # the softmax alone is far from balanced
    assert all(g2 < g1 for g1, g2 in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-3 * B / K  # float32: the fixed point is reached to ~1e-5


def test_no_gradient_flows():
    rng = np.random.default_rng(3)
    scores = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    W = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    g = jax.grad(lambda s: jnp.sum(swav_codes(s, epsilon=0.3) * W))(scores)
    assert np.all(np.asarray(g) == 0.0)
    # the control: the same functional of a plain softmax does have a gradient
    g_soft = jax.grad(lambda s: jnp.sum(jax.nn.softmax(s / 0.3) * W))(scores)
    assert np.abs(np.asarray(g_soft)).max() > 1e-3


def test_bfloat16_in_bfloat16_out():
    rng = np.random.default_rng(4)
    scores = jnp.asarray(_cosine_scores(rng, 16, 4), jnp.bfloat16)
    q = swav_codes(scores, epsilon=0.05, n_iter=3)
    assert q.dtype == jnp.bfloat16
    q = np.asarray(q, np.float32)
    assert np.all(np.isfinite(q))
    # computed in float32 and rounded once to bfloat16 (8 bits of mantissa: ~4e-3 relative)
    ref = swav_reference(np.asarray(scores, np.float64), 0.05, 3)
    np.testing.assert_allclose(q, ref, rtol=1e-2, atol=1e-3)
