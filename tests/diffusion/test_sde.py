"""SDE schedules against their own drift/diffusion (variance ODE), parametrisation
round-trips, and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.diffusion import (
    VESDE,
    VPSDE,
    CosineVPSDE,
    SubVPSDE,
    from_eps,
    to_eps,
)

from ..utils import enable_x64

SDES = [VPSDE(), SubVPSDE(beta_min=0.2, beta_max=10.0, T=2.0),
        VESDE(sigma_min=0.01, sigma_max=20.0), CosineVPSDE(logsnr_min=-12.0, logsnr_max=9.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_marginal_solves_the_moment_odes(sde):
    # for dx = f x dt + g dw: d log(alpha)/dt = f and d(sigma^2)/dt = 2 f sigma^2 + g^2,
    # up to the VE convention sigma_0 = sigma_min (the ODE holds for sigma^2 - sigma_0^2)
    with enable_x64():
        T = sde.horizon
        ts = jnp.linspace(0.05 * T, 0.95 * T, 7)

        @jax.jit
        def residuals(t):
            dloga = jax.grad(lambda u: jnp.log(sde.marginal_coefs(u)[0]))(t)
            dvar = jax.grad(lambda u: sde.marginal_coefs(u)[1] ** 2)(t)
            f, g2 = sde._f_g2(t)
            var = sde.marginal_coefs(t)[1] ** 2
            return dloga - f, dvar - (2 * f * var + g2)

        r1, r2 = jax.vmap(residuals)(ts)
        np.testing.assert_allclose(r1, 0.0, atol=1e-9)
        np.testing.assert_allclose(r2, 0.0, atol=1e-9 * (1 + float(sde.prior_std) ** 2))


def test_schedule_identities():
    t = jnp.linspace(0.0, 1.0, 5)
    a, s = VPSDE().marginal_coefs(t)
    np.testing.assert_allclose(a ** 2 + s ** 2, 1.0, rtol=1e-6)
    a2, s2 = SubVPSDE().marginal_coefs(t)
    np.testing.assert_allclose(s2, 1.0 - a2 ** 2, atol=1e-6)
    a3, s3 = VESDE(sigma_min=0.1, sigma_max=10.0).marginal_coefs(t)
    np.testing.assert_allclose(a3, 1.0)
    np.testing.assert_allclose(s3, 0.1 * 100.0 ** t, rtol=1e-5)
    a4, s4 = CosineVPSDE(logsnr_min=-10.0, logsnr_max=10.0).marginal_coefs(jnp.asarray([0., 1.]))
    np.testing.assert_allclose(2 * jnp.log(a4 / s4), [10.0, -10.0], rtol=1e-4)


def test_prior_logp_and_perturb(key):
    sde = VESDE(sigma_min=0.1, sigma_max=3.0)
    z = jax.random.normal(key, (4, 2, 3))
    expected = (-0.5 * np.sum(np.asarray(z).reshape(4, -1) ** 2, 1) / 9.0
                - 6 * np.log(np.sqrt(2 * np.pi) * 3.0))
    np.testing.assert_allclose(sde.prior_logp(z), expected, rtol=1e-5)
    x0 = jnp.ones((4, 2, 3))
    xt = VPSDE().perturb(x0, jnp.full((4,), 0.3), z)
    a, s = VPSDE().marginal_coefs(0.3)
    np.testing.assert_allclose(xt, a * x0 + s * z, rtol=1e-6)


@pytest.mark.parametrize("param", ["eps", "score", "x0", "v"])
def test_parametrisations_round_trip_and_agree_with_the_forward_model(param, key):
    k1, k2 = jax.random.split(key)
    x0 = jax.random.normal(k1, (3, 4))
    eps = jax.random.normal(k2, (3, 4))
    a, s = jnp.asarray([0.9, 0.5, 0.2]), jnp.asarray([0.4, 0.85, 0.98])
    x_t = a[:, None] * x0 + s[:, None] * eps
    # the true target of each parametrisation, written from its definition
    target = {"eps": eps, "score": -eps / s[:, None], "x0": x0,
              "v": a[:, None] * eps - s[:, None] * x0}[param]
    np.testing.assert_allclose(to_eps(target, x_t, a, s, param=param), eps, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(from_eps(eps, x_t, a, s, param=param), target, rtol=1e-4,
                               atol=1e-5)


# --- bad input, one test per rule ---------------------------------------------------------

def test_time_outside_horizon():
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        VPSDE().marginal_coefs(1.5)


def test_time_outside_horizon_under_jit():
    with pytest.raises(Exception, match=r"\[0, T\]"):
        jax.jit(lambda t: VPSDE().marginal_coefs(t)[0])(-0.1).block_until_ready()


def test_time_nan():
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        VESDE().marginal_coefs(jnp.nan)


def test_time_shape_not_matching_batch():
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        VPSDE().marginal(jnp.ones((3, 2)), jnp.full((4,), 0.5))


def test_noise_shape_not_matching_data():
    with pytest.raises(ValueError, match="noise"):
        VPSDE().perturb(jnp.ones((3, 2)), 0.5, jnp.ones((3, 3)))


def test_score_shape_not_matching_data():
    with pytest.raises(ValueError, match="score"):
        VPSDE().pf_ode_drift(jnp.ones((3, 2)), 0.5, jnp.ones((2, 2)))


def test_non_positive_schedule():
    with pytest.raises(ValueError, match="beta_max"):
        VPSDE(beta_max=-1.0)


def test_inverted_schedule():
    with pytest.raises(ValueError, match="sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=0.5)


def test_non_positive_horizon():
    with pytest.raises(ValueError, match="`T`"):
        CosineVPSDE(T=0.0)


def test_unknown_parametrisation():
    with pytest.raises(ValueError, match="param"):
        to_eps(jnp.ones((1, 1)), jnp.ones((1, 1)), 1.0, 1.0, param="noise")
