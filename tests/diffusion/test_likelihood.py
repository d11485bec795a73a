"""Probability-flow likelihood against exact mixture log densities (float64), the Hutchinson
estimator against the exact divergence, dequantisation and bits/dim, bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.diffusion import (
    VPSDE,
    bits_per_dim,
    dequantize,
    divergence,
    mixture_logp,
    mixture_sample,
    mixture_score_fn,
    ode_likelihood,
)

from ..utils import enable_x64
from ._problems import gmm2d


def test_pf_ode_nll_matches_the_exact_log_density():
    # acceptance 2: beta_max = 50 makes the prior mismatch |log p_T - log N(0, I)| ~ 1e-5
    # (alpha_T ~ 4e-6); RK4 with 100 steps leaves an ODE error ~ 1e-6
    with enable_x64():
        mix = gmm2d(jnp.float64)
        sde = VPSDE(beta_max=50.0)
        x, _ = mixture_sample(jax.random.key(0), mix, 16)
        res = jax.jit(lambda x: ode_likelihood(mixture_score_fn(mix, sde), x, sde,
                                               n_steps=100, t0=1e-5))(x)
        a0, s0 = sde.marginal_coefs(1e-5)
        truth = mixture_logp(x, mix, a0, s0)
        assert float(jnp.abs(res.logp - truth).max()) < 1e-4
        # the transport alone, with the exact terminal density instead of the prior
        aT, sT = sde.marginal_coefs(1.0)
        exact_T = mixture_logp(res.z, mix, aT, sT)
        assert float(jnp.abs(res.delta_logp + exact_T - truth).max()) < 1e-5
        np.testing.assert_allclose(res.logp, res.prior_logp + res.delta_logp)


def test_exact_divergence_of_a_linear_field(key):
    A = jax.random.normal(key, (3, 3))
    x = jax.random.normal(jax.random.key(1), (4, 3))
    div = divergence(lambda v: v @ A.T, x)
    np.testing.assert_allclose(div, jnp.full((4,), jnp.trace(A)), rtol=1e-5)


def test_hutchinson_is_unbiased(key):
    # acceptance 2: for a non-symmetric linear field in D = 10, the mean of m = 4000 probes
    # is within 4 standard errors (sample std / sqrt(m)) of the exact divergence tr(A), for
    # both probe laws
    A = jax.random.normal(key, (10, 10))
    x = jax.random.normal(jax.random.key(1), (3, 10))
    field = lambda v: jnp.tanh(v) @ A.T  # noqa: E731  (nonlinear: the trace depends on x)
    exact = divergence(field, x)
    expected = jnp.einsum("ii,ni->n", A, 1.0 - jnp.tanh(x) ** 2)
    np.testing.assert_allclose(exact, expected, rtol=1e-5, atol=1e-5)
    m = 4000

    @jax.jit
    def draws(k):  # (2, m, n): one probe per draw, both probe laws in one compilation
        return jnp.stack([jax.vmap(lambda kk, noise=noise: divergence(
            field, x, kk, method="hutchinson", noise=noise))(jax.random.split(k, m))
            for noise in ("rademacher", "gaussian")])

    for d in draws(jax.random.key(2)):
        se = d.std(0) / math.sqrt(m)
        assert float(se.min()) > 0.01  # the probes do vary: the check is not vacuous
        assert bool(jnp.all(jnp.abs(d.mean(0) - exact) < 4 * se))


@pytest.mark.slow
def test_hutchinson_likelihood_is_unbiased_slow():
    # the Hutchinson log-likelihood averaged over probe draws matches the exact one within
    # 4 standard errors
    with enable_x64():
        mix = gmm2d(jnp.float64)
        sde = VPSDE()
        score = mixture_score_fn(mix, sde)
        x, _ = mixture_sample(jax.random.key(0), mix, 4)
        exact = ode_likelihood(score, x, sde, n_steps=50).logp
        run = jax.jit(jax.vmap(lambda k: ode_likelihood(
            score, x, sde, k, n_steps=50, divergence_method="hutchinson").logp))
        draws = run(jax.random.split(jax.random.key(1), 400))
        se = draws.std(0) / math.sqrt(400)
        assert bool(jnp.all(jnp.abs(draws.mean(0) - exact) < 4 * se))


def test_bits_per_dim_of_uniform_densities():
    # the uniform density on [low, high)^D has log p = -D log(high - low): 8 bits at 256 bins
    np.testing.assert_allclose(bits_per_dim(jnp.asarray([0.0]), 5), 8.0, rtol=1e-6)
    np.testing.assert_allclose(bits_per_dim(-3 * math.log(2.0), 3, low=-1.0, high=1.0), 8.0,
                               rtol=1e-6)
    np.testing.assert_allclose(bits_per_dim(0.0, 4, n_bins=2), 1.0, rtol=1e-6)


def test_dequantize_stays_in_its_bin(key):
    k = jnp.arange(16).reshape(4, 4)
    y = dequantize(key, k, n_bins=16, low=-1.0, high=1.0)
    np.testing.assert_array_equal(np.floor((np.asarray(y) + 1.0) / 2.0 * 16), np.asarray(k))


# --- bad input, one test per rule ---------------------------------------------------------

def test_non_positive_steps():
    with pytest.raises(ValueError, match="n_steps"):
        ode_likelihood(lambda x, t: -x, jnp.ones((2, 2)), VPSDE(), n_steps=0)


def test_hutchinson_needs_a_key():
    with pytest.raises(ValueError, match="key"):
        ode_likelihood(lambda x, t: -x, jnp.ones((2, 2)), VPSDE(),
                       divergence_method="hutchinson")


def test_start_time_beyond_horizon():
    with pytest.raises(ValueError, match="t0"):
        ode_likelihood(lambda x, t: -x, jnp.ones((2, 2)), VPSDE(), t0=2.0)


def test_nan_data():
    with pytest.raises(ValueError, match="NaN"):
        ode_likelihood(lambda x, t: -x, jnp.full((2, 2), jnp.nan), VPSDE())


def test_dequantize_out_of_range(key):
    with pytest.raises(ValueError, match="integers in"):
        dequantize(key, jnp.asarray([[0, 256]]))


def test_bits_per_dim_bad_range():
    with pytest.raises(ValueError, match="high"):
        bits_per_dim(0.0, 2, low=1.0, high=0.0)
