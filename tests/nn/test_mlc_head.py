"""The MLC head: Flax and Equinox twins give the pure functions' outputs; gradients flow to
both heads (the cluster head through the membership)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxclust.cluster import mlc_loss, mlc_membership
from jaxclust.nn.equinox import MLCHead as EqxMLC
from jaxclust.nn.flax import MLCHead as FlaxMLC


@pytest.mark.slow  # ~5-12 s of eager op-by-op compiles; the heads' doctests run in the fast suite
def test_mlc_head_twins_match_the_pure_functions():
    x = jax.random.normal(jax.random.key(1), (12, 6))
    w = 0.4 * jax.random.normal(jax.random.key(2), (6, 3))
    eh, fh = EqxMLC(6, 3, weight=w, eta=0.3), FlaxMLC(6, 3, weight=w, eta=0.3)
    (ze, ge), (zf, gf) = eh(x), fh(x)
    z_ref = (x @ w) / jnp.linalg.norm(x @ w, axis=1, keepdims=True)
    np.testing.assert_allclose(ze, z_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ge, mlc_membership(x @ w, eta=0.3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zf, ze, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gf, ge, rtol=1e-6, atol=1e-7)
    assert abs(float(eh.loss(x)) - float(mlc_loss(z_ref, ge.T))) < 1e-5
    assert abs(float(fh.loss(x)) - float(eh.loss(x))) < 1e-6
    # gradients reach both heads, and one step down the gradient lowers the loss
    g = eqx.filter_grad(lambda h: h.loss(x))(eh)
    assert float(jnp.abs(g.cluster_weight).max()) > 0
    assert float(jnp.abs(g.subspace_weight).max()) > 0
    step = jax.tree_util.tree_map(lambda p, d: p - 1e-2 * d, eh, g)
    assert float(step.loss(x)) < float(eh.loss(x))
    fg = nnx.grad(lambda m: m.loss(x))(fh)
    np.testing.assert_allclose(fg["cluster_weight"][...], g.cluster_weight, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: EqxMLC(6, 3), "key"),
    (lambda: FlaxMLC(6, 3), "rngs"),
    (lambda: EqxMLC(6, 0, key=jax.random.key(0)), "d"),
    (lambda: EqxMLC(6, 3, weight=jnp.ones((5, 3))), "weight"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
