"""OOD heads: Flax NNX and Equinox give the same outputs for the same parameters, and both
equal the pure functions of jaxclust.ood (float32, identical operations: 1e-6)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxclust.ood as ood
from jaxclust.nn import _ood_equinox as E, _ood_flax as F

ATOL = 1e-6


@pytest.fixture
def data(rng):
    x = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    y = jnp.asarray(np.arange(6) % 3)
    return x, y


def _temperature_outputs(head, x, y):
    return head(x), head.temperature(x), head.score(x), head.loss(x, y)


def _prototype_outputs(head, x, y):
    return head(x), head.assignments(x), head.score(x), head.loss(x, y)


def test_temperature_heads_agree(data):
    # each framework's outputs under its own jit (one compilation, not op-by-op)
    x, y = data
    eq = E.TemperatureHead(5, 3, key=jax.random.key(0), temp_bias=0.3)
    fl = F.TemperatureHead(5, 3, weight=eq.weight, temp_weight=eq.temp_weight, temp_bias=0.3)
    out_eq = eqx.filter_jit(_temperature_outputs)(eq, x, y)
    out_fl = nnx.jit(_temperature_outputs)(fl, x, y)
    for a, b in zip(out_fl, out_eq):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # against the pure functions (same jitted program: rounding-free agreement)
    h, t = ood.cosine_logits(x, eq.weight), ood.learned_temperature(x, eq.temp_weight, 0.3)
    np.testing.assert_allclose(out_eq[2], ood.ablated_energy(h, t), atol=ATOL)


def test_prototype_heads_agree(data):
    x, y = data
    eq = E.PrototypeHead(5, 3, 2, key=jax.random.key(1), temperature=0.5, epsilon=0.5)
    fl = F.PrototypeHead(5, 3, 2, prototypes=eq.prototypes, temperature=0.5, epsilon=0.5)
    out_eq = eqx.filter_jit(_prototype_outputs)(eq, x, y)
    out_fl = nnx.jit(_prototype_outputs)(fl, x, y)
    for a, b in zip(out_fl, out_eq):
        np.testing.assert_allclose(a, b, atol=ATOL)
    # PALM's EMA update: in place (Flax), a new head (Equinox); the prototypes get no
    # gradient from the loss (the reference's buffer)
    eq2 = eqx.filter_jit(lambda h: h.update_prototypes(x, y))(eq)
    nnx.jit(lambda h: h.update_prototypes(x, y))(fl)
    np.testing.assert_allclose(fl.prototypes[...], eq2.prototypes, atol=ATOL)
    assert not np.allclose(eq2.prototypes, eq.prototypes)
    g = eqx.filter_jit(jax.grad(lambda h: h.loss(x, y)))(eq)
    np.testing.assert_array_equal(g.prototypes, 0.0)


def test_gradients_agree(data):
    # the gradient of the loss with respect to the parameters, in both frameworks
    x, y = data
    eq = E.TemperatureHead(5, 3, key=jax.random.key(2))
    fl = F.TemperatureHead(5, 3, weight=eq.weight, temp_weight=eq.temp_weight)
    g_eq = eqx.filter_jit(jax.grad(lambda m: m.loss(x, y)))(eq)
    g_fl = nnx.jit(nnx.grad(lambda m: m.loss(x, y)))(fl)
    np.testing.assert_allclose(g_fl["weight"][...], g_eq.weight, atol=ATOL)
    np.testing.assert_allclose(g_fl["temp_weight"][...], g_eq.temp_weight, atol=ATOL)
    np.testing.assert_allclose(g_fl["temp_bias"][...], g_eq.temp_bias, atol=ATOL)


def test_missing_key():
    with pytest.raises(ValueError, match="`key` is required"):
        E.PrototypeHead(4, 2, 2)
    with pytest.raises(ValueError, match="`rngs` is required"):
        F.TemperatureHead(4, 2)


def test_bad_initial_shape():
    with pytest.raises(ValueError, match="`prototypes` must have shape"):
        E.PrototypeHead(4, 2, 2, prototypes=jnp.ones((2, 3, 4)))


def test_bad_temperature():
    with pytest.raises(ValueError, match="`temperature`"):
        F.PrototypeHead(4, 2, 2, temperature=0.0, rngs=nnx.Rngs(0))
