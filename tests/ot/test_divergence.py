"""Debiased Sinkhorn divergence ``S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2``.

ott-jax's ``ott.tools.sinkhorn_divergence`` uses the same definition with the same
``reg_ot_cost`` (``<P, C> + eps KL(P | a b^T)``), plus ``eps (|a| - |b|)^2 / 2``, which is zero
for probability weights: the values are directly comparable.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sinkhorn_divergence

from ..utils import allow_rank_promotion, enable_x64, weights


@functools.partial(jax.jit, static_argnames=("tol",))
def _div(x, y, a, b, eps, *, tol=1e-6):
    return sinkhorn_divergence(x, y, a, b, epsilon=eps, tol=tol, max_iter=5000)


@pytest.mark.slow  # a property over many random pairs; the fixed cases below stay fast
def test_nonnegative_on_random_pairs():
    rng = np.random.default_rng(0)
    k, n, m, d = 8, 10, 7, 2
    xs = rng.normal(size=(k, n, d)) * rng.uniform(0.2, 2.0, size=(k, 1, 1))
    ys = rng.normal(size=(k, m, d)) + rng.uniform(-1, 1, size=(k, 1, d))
    a = np.stack([weights(rng, n) for _ in range(k)])
    b = np.stack([weights(rng, m) for _ in range(k)])
    eps = rng.uniform(0.05, 2.0, size=k)
    args = [jnp.asarray(t, jnp.float32) for t in (xs, ys, a, b, eps)]
    values = np.asarray(jax.jit(jax.vmap(_div))(*args))
    # float32: each of the three costs is accurate to ~1e-6 relative at tol 1e-6
    assert np.all(values >= -1e-5), values
    assert np.all(values > 1e-3), values  # these pairs differ: strictly positive


def test_zero_for_identical_inputs():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(9, 2)), jnp.float32)
    a = jnp.asarray(weights(rng, 9), jnp.float32)
    assert float(sinkhorn_divergence(x, x, epsilon=0.3)) == 0.0
    assert float(sinkhorn_divergence(x, jnp.array(x), a, jnp.array(a), epsilon=0.3)) == 0.0


def test_translation_gives_the_squared_shift():
    # For the squared Euclidean cost, C(x, y + t) = C(x, y) - 2<x - y, t> + |t|^2 and the middle
    # term is separable, so it does not move the plan: OT(a, a + t) = OT(a, a) + |t|^2 and
    # S(a, a + t) = |t|^2 for every epsilon (a closed form independent of any solver).
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 2))
    a = weights(rng, 10)
    for t, eps in [((0.3, 0.0), 0.1), ((1.0, -2.0), 0.5), ((0.05, 0.05), 2.0)]:
        t = np.asarray(t)
        args = [jnp.asarray(v, jnp.float32) for v in (x, x + t, a, a, eps)]
        value = float(_div(*args))
        # float32: |t|^2 is a difference of costs of size ~|x|^2 ~ 4 computed to 1e-6 relative
        np.testing.assert_allclose(value, np.sum(t**2), rtol=1e-3, atol=2e-5)


def test_gradient_vanishes_at_equal_inputs():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    grad = jax.jit(jax.grad(lambda x, y: sinkhorn_divergence(x, y, epsilon=0.5, tol=1e-6,
                                                             max_iter=5000)))
    g0 = np.asarray(grad(x, jnp.array(x)))
    g1 = np.asarray(grad(x, x + 0.5))
    # float32: at x == y the gradient is zero up to the solver tolerance; compare with the
    # gradient scale at a small shift
    assert np.abs(g1).max() > 0.05
    assert np.abs(g0).max() < 1e-3 * np.abs(g1).max()


@pytest.mark.slow  # ott-jax compiles three solves; the closed-form translation test is fast
@pytest.mark.parametrize("eps", [0.2])
def test_matches_ott(eps):
    from ott.geometry import pointcloud
    from ott.tools import sinkhorn_divergence as ott_sd

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(7, 2)) + 0.5
    a, b = weights(rng, 9), weights(rng, 7)
    @jax.jit
    def ott_divergence(x, y, a, b):
        value, _ = ott_sd.sinkhorn_divergence(
            pointcloud.PointCloud, x, y, a=a, b=b, epsilon=eps,
            solve_kwargs=dict(threshold=1e-11, max_iterations=20000))
        return value

    with enable_x64():
        ours = float(_div(x, y, a, b, eps, tol=1e-10))
        with allow_rank_promotion():  # ott-jax relies on implicit rank promotion
            theirs = ott_divergence(*(jnp.asarray(t) for t in (x, y, a, b)))
    np.testing.assert_allclose(ours, float(theirs), rtol=1e-4)
