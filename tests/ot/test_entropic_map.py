"""``SinkhornResult.transport`` / ``.potentials`` (float32, fast): the plan's barycentric
projection at solved points, dense == online, gradients in ``z``, bad input. The cross-check
against ott-jax is tests/peers/test_ott_entropic_map.py (slow)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sinkhorn, sinkhorn_from_cost

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(7, 2)), jnp.float32)
Y = jnp.asarray(_rng.normal(size=(6, 2)) + 1.0, jnp.float32)
Z = jnp.asarray(_rng.normal(size=(3, 2)), jnp.float32)


@pytest.mark.slow  # ~5 s on a loaded 2-core machine
def test_map_is_the_plans_barycentric_projection_dense_and_online():
    res = sinkhorn(X, Y, epsilon=0.5, tol=1e-6)
    online = sinkhorn(X, Y, epsilon=0.5, tol=1e-6, chunk_size=4)
    plan = np.asarray(res.plan, np.float64)
    # float32, marginal error 1e-6: 1e-5 absolute on unit-scale coordinates
    np.testing.assert_allclose(res.transport(X), plan @ np.asarray(Y) / plan.sum(1)[:, None],
                               atol=1e-5)
    np.testing.assert_allclose(res.transport(Y, forward=False),
                               plan.T @ np.asarray(X) / plan.sum(0)[:, None], atol=1e-5)
    np.testing.assert_allclose(online.transport(Z), res.transport(Z), atol=1e-5)
    np.testing.assert_allclose(online.potentials(Z, forward=False),
                               res.potentials(Z, forward=False), atol=1e-5)
    g = jax.grad(lambda z: jnp.sum(res.transport(z) ** 2))(Z)
    assert g.shape == Z.shape and bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.slow  # ~4.7 s: a solve and a jit compilation
def test_bad_new_points():
    res = sinkhorn(X, Y, epsilon=0.5)
    with pytest.raises(ValueError, match=re.escape("`z` must have the problem's 2 features")):
        res.transport(Z[:, :1])
    with pytest.raises(ValueError, match="`z` must be 2-D"):
        res.potentials(Z[0])
    with pytest.raises(ValueError, match="`z` contains NaN"):
        res.transport(Z.at[0, 0].set(jnp.nan))
    with pytest.raises(Exception, match="`z` contains NaN"):
        jax.block_until_ready(jax.jit(lambda z: res.transport(z))(Z.at[0, 0].set(jnp.nan)))
    cost_only = sinkhorn_from_cost(jnp.ones((3, 2)), epsilon=0.5)
    with pytest.raises(ValueError, match="cost matrix only"):
        cost_only.transport(Z)
