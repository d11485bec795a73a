"""Energy distance and MMD against scipy and direct NumPy formulas; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import energy_distance as scipy_energy

from jaxclust.metrics.distribution import energy_distance, mmd

from ..utils import enable_x64


def _pairwise(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def test_energy_distance_matches_scipy_in_1d(rng):
    with enable_x64():
        x, y = rng.normal(size=30), rng.normal(0.5, 2.0, size=20)
        got = energy_distance(jnp.asarray(x), jnp.asarray(y), unbiased=False)
        np.testing.assert_allclose(np.sqrt(float(got)), scipy_energy(x, y), rtol=1e-10)


def test_unbiased_energy_distance_matches_numpy(rng):
    with enable_x64():
        x, y = rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) + 0.3
        dxx, dyy = _pairwise(x, x), _pairwise(y, y)
        expected = (2 * _pairwise(x, y).mean() - dxx.sum() / (12 * 11)
                    - dyy.sum() / (9 * 8))
        np.testing.assert_allclose(energy_distance(jnp.asarray(x), jnp.asarray(y)), expected,
                                   rtol=1e-10)


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_matches_numpy(rng, unbiased):
    with enable_x64():
        x, y = rng.normal(size=(10, 2)), rng.normal(size=(7, 2)) + 0.5
        h = np.array([0.5, 2.0])

        def k(a, b):
            d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
            return sum(np.exp(-d2 / (2 * hh ** 2)) for hh in h)

        kxx, kyy = k(x, x), k(y, y)
        if unbiased:
            exx = (kxx.sum() - np.trace(kxx)) / (10 * 9)
            eyy = (kyy.sum() - np.trace(kyy)) / (7 * 6)
        else:
            exx, eyy = kxx.mean(), kyy.mean()
        expected = exx + eyy - 2 * k(x, y).mean()
        got = mmd(jnp.asarray(x), jnp.asarray(y), bandwidth=jnp.asarray(h), unbiased=unbiased)
        np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_gradient_is_finite_with_duplicate_points():
    x = jnp.asarray([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    g = jax.grad(lambda x: energy_distance(x, x[::-1] + 0.1))(x)
    assert bool(jnp.all(jnp.isfinite(g)))


# --- bad input, one test per rule ---------------------------------------------------------

def test_feature_mismatch():
    with pytest.raises(ValueError, match="features"):
        energy_distance(jnp.ones((3, 2)), jnp.ones((3, 3)))


def test_too_few_samples_for_unbiased():
    with pytest.raises(ValueError, match="at least 2"):
        mmd(jnp.ones((1, 2)), jnp.ones((3, 2)), bandwidth=1.0)


def test_non_positive_bandwidth():
    with pytest.raises(ValueError, match="bandwidth"):
        mmd(jnp.ones((3, 2)), jnp.ones((3, 2)), bandwidth=0.0)


def test_nan_samples():
    with pytest.raises(ValueError, match="NaN"):
        energy_distance(jnp.full((3, 2), jnp.nan), jnp.ones((3, 2)))
