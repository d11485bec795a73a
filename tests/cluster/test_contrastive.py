"""NT-Xent against a NumPy loop, its lower bound and scale invariance, jit/vmap and the
gradient against finite differences, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster.contrastive import nt_xent_loss


def _numpy_nt_xent(za, zb, t):
    """The SimCLR definition, written as a loop over the 2B anchors in float64."""
    z = np.concatenate([za, zb]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    b, total = len(za), 0.0
    for i in range(2 * b):
        p = (i + b) % (2 * b)
        others = [np.exp(z[i] @ z[j] / t) for j in range(2 * b) if j != i]
        total += -np.log(np.exp(z[i] @ z[p] / t) / np.sum(others))
    return total / (2 * b)


def test_matches_numpy_and_bounds():
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    loss = jax.jit(lambda a, b, t: nt_xent_loss(a, b, temperature=t))
    for t in (0.1, 0.5, 2.0):
        got = float(loss(jnp.asarray(za, jnp.float32), jnp.asarray(zb, jnp.float32), t))
        # float32 logits up to 1/T = 10: rounding ~1e-6 relative
        np.testing.assert_allclose(got, _numpy_nt_xent(za, zb, t), rtol=1e-5)
    # scale invariance per row; identical partners beat shuffled ones
    s = jnp.asarray(rng.uniform(0.5, 3.0, size=(6, 1)), jnp.float32)
    za32, zb32 = jnp.asarray(za, jnp.float32), jnp.asarray(zb, jnp.float32)
    np.testing.assert_allclose(nt_xent_loss(za32 * s, zb32), nt_xent_loss(za32, zb32),
                               rtol=1e-5)
    # lower bound log(2B - 1) - 2/T, approached by orthogonal samples with equal views
    eye = jnp.eye(6, 8)
    low = float(nt_xent_loss(eye, eye, temperature=0.1))
    assert np.log(11) - 20 <= low < 1e-3 + np.log(1 + 10 * np.exp(-10.0))


def test_bad_input():
    z = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(z, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        nt_xent_loss(z[:1], z[:1])
    with pytest.raises(ValueError, match="z_a"):
        nt_xent_loss(jnp.ones(3), jnp.ones(3))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="NaN"):
        nt_xent_loss(z.at[0, 0].set(jnp.nan), z)
