"""Denoising score matching against its closed form on Gaussian data; time samplers; bad
input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from jaxclust.diffusion import VPSDE, dsm_loss, from_eps, sample_times

S0 = 1.5  # data N(0, S0^2 I)


def _optimal_eps(sde):
    """E[eps | x_t] for Gaussian data: sigma x_t / (alpha^2 S0^2 + sigma^2)."""
    def fn(x, t):
        a, s = sde.marginal_coefs(t)
        return (s / (a * a * S0 ** 2 + s * s))[:, None] * x
    return fn


def _expected(sde, weight, eps_t=1e-5):
    """(1/(T - eps_t)) int w(t) alpha^2 S0^2 / (alpha^2 S0^2 + sigma^2) dt (per dimension)."""
    def integrand(t):
        a, s = (float(v) for v in sde.marginal_coefs(t))
        return weight(a, s) * a * a * S0 ** 2 / (a * a * S0 ** 2 + s * s)
    return quad(integrand, eps_t, 1.0, limit=200)[0] / (1.0 - eps_t)


@pytest.mark.parametrize("weighting, weight", [("simple", lambda a, s: 1.0),
                                               ("x0", lambda a, s: (s / a) ** 2)])
def test_loss_of_the_optimal_predictor_matches_the_closed_form(weighting, weight, key):
    sde = VPSDE()
    k1, k2 = jax.random.split(key)
    x0 = S0 * jax.random.normal(k1, (20000, 2))
    fn = jax.jit(lambda x0, k: dsm_loss(_optimal_eps(sde), x0, k, sde, weighting=weighting,
                                        time_sampling="stratified"))
    got = float(fn(x0, k2))
    # per-sample losses are O(1) with variance < 1: the standard error is < 0.01 at
    # n = 20000; stratified times lower it further
    assert abs(got - _expected(sde, weight)) < 0.03


@pytest.mark.parametrize("param", ["score", "x0", "v"])
def test_parametrisation_does_not_change_the_objective(param, key):
    # the same predictor expressed in another parametrisation gives the same loss
    sde = VPSDE()
    x0 = S0 * jax.random.normal(key, (64, 3))
    eps_fn = _optimal_eps(sde)

    def other(x, t):
        a, s = sde.marginal_coefs(t)
        return from_eps(eps_fn(x, t), x, a, s, param=param)

    ref = dsm_loss(eps_fn, x0, key, sde, weighting="likelihood")
    got = dsm_loss(other, x0, key, sde, param=param, weighting="likelihood")
    # float32, the conversions divide by alpha, sigma >= ~3e-3: relative rounding ~1e-4
    np.testing.assert_allclose(got, ref, rtol=2e-3)


def test_time_samplers(key):
    sde = VPSDE()
    n = 8
    t = sample_times(key, n, sde, method="antithetic", eps_t=1e-3)
    np.testing.assert_allclose(t[:4] + t[4:], 1e-3 + 1.0, rtol=1e-6)
    u = (np.sort(np.asarray(sample_times(key, n, sde, method="stratified", eps_t=1e-3)))
         - 1e-3) / (1.0 - 1e-3)
    assert np.all(np.floor(u * n) == np.arange(n))  # one time per stratum
    t = sample_times(key, 1000, sde)
    assert float(t.min()) >= 1e-5 and float(t.max()) <= 1.0


def test_conditioning_labels_reach_the_model(key):
    sde = VPSDE()
    seen = []

    def model(x, t, y):
        seen.append(y.shape)
        return jnp.zeros_like(x)

    dsm_loss(model, jnp.ones((5, 2)), key, sde, y=jnp.arange(5))
    assert seen == [(5,)]


# --- bad input, one test per rule ---------------------------------------------------------

def test_labels_length_mismatch(key):
    with pytest.raises(ValueError, match="`y`"):
        dsm_loss(lambda x, t, y: x, jnp.ones((5, 2)), key, VPSDE(), y=jnp.arange(4))


def test_model_output_shape_mismatch(key):
    with pytest.raises(ValueError, match="model_fn returned shape"):
        dsm_loss(lambda x, t: x[:, :1], jnp.ones((5, 2)), key, VPSDE())


def test_unknown_weighting(key):
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(lambda x, t: x, jnp.ones((5, 2)), key, VPSDE(), weighting="snr2")


def test_eps_t_not_below_horizon(key):
    with pytest.raises(ValueError, match="eps_t"):
        dsm_loss(lambda x, t: x, jnp.ones((5, 2)), key, VPSDE(), eps_t=2.0)


def test_non_positive_eps_t(key):
    with pytest.raises(ValueError, match="eps_t"):
        dsm_loss(lambda x, t: x, jnp.ones((5, 2)), key, VPSDE(), eps_t=0.0)


def test_nan_data(key):
    with pytest.raises(ValueError, match="NaN"):
        dsm_loss(lambda x, t: x, jnp.full((5, 2), jnp.nan), key, VPSDE())
