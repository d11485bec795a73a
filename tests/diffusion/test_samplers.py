"""Samplers against closed forms (Gaussian data, point masses), the exact-score mixture
reproduction (Sinkhorn divergence to fresh data vs the data-vs-data floor), guidance, bad
input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.diffusion import (
    VESDE,
    VPSDE,
    CosineVPSDE,
    SubVPSDE,
    classifier_free_guidance,
    classifier_guidance,
    ddim,
    euler_maruyama,
    mixture_sample,
    mixture_score_fn,
    predictor_corrector,
    probability_flow,
)
from jaxclust.ot import sinkhorn_divergence

from ..utils import enable_x64
from ._problems import gmm2d

MU, S0 = jnp.asarray([1.0, -1.0]), 0.5  # Gaussian data N(MU, S0^2 I)


def _gauss_score(sde):
    def score(x, t):
        a, s = sde._coefs(t)
        var = (a * a * S0 ** 2 + s * s)[:, None]
        return -(x - a[:, None] * MU[None, :].astype(x.dtype)) / var
    return score


def _pf_map(sde, x_T, t_end):
    """Exact probability-flow map of Gaussian data: the standardised residual is invariant."""
    aT, sT = sde._coefs(jnp.asarray(sde.horizon, x_T.dtype))
    ae, se = sde._coefs(jnp.asarray(t_end, x_T.dtype))
    rT, re = jnp.sqrt(aT ** 2 * S0 ** 2 + sT ** 2), jnp.sqrt(ae ** 2 * S0 ** 2 + se ** 2)
    return ae * MU[None, :] + re * (x_T - aT * MU[None, :]) / rT


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_min=0.01, sigma_max=5.0)],
                         ids=["vp", "ve"])
def test_probability_flow_matches_the_exact_gaussian_flow(sde, key):
    with enable_x64():
        x_T = sde.prior_std * jax.random.normal(key, (6, 2), jnp.float64)
        expected = _pf_map(sde, x_T, 1e-3)
        run = jax.jit(functools.partial(probability_flow, _gauss_score(sde), None, sde,
                                        t_end=1e-3, denoise=False), static_argnames="method")
        err = {m: float(jnp.abs(run(x_T=x_T, method=m) - expected).max())
               for m in ("rk4", "heun")}
        assert err["rk4"] < 1e-6  # 4th order, 100 steps
        assert err["heun"] < 1e-3 and err["rk4"] < err["heun"]


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_max=10.0), CosineVPSDE()],
                         ids=lambda s: type(s).__name__)
def test_ddim_is_exact_for_a_point_mass(sde, key):
    # with x0 known, eps_hat is the true noise and DDIM (eta = 0) is exact at any step count
    def score(x, t):
        a, s = sde._coefs(t)
        return -(x - a[:, None] * MU[None, :]) / (s * s)[:, None]

    x = jax.jit(lambda k: ddim(score, k, sde, (5, 2), n_steps=4))(key)
    # float32: the last division by sigma_t_end^2 ~ 1e-3 (VP) amplifies rounding ~1e3
    np.testing.assert_allclose(x, jnp.broadcast_to(MU, (5, 2)), atol=2e-3)


@pytest.mark.parametrize("name", ["em", "pc", "ancestral"])
def test_stochastic_samplers_reproduce_gaussian_moments(name, key):
    sde = VPSDE()
    score = _gauss_score(sde)
    run = {"em": lambda k: euler_maruyama(score, k, sde, (4000, 2), n_steps=200),
           "pc": lambda k: predictor_corrector(score, k, sde, (4000, 2), n_steps=100),
           "ancestral": lambda k: ddim(score, k, sde, (4000, 2), n_steps=200, eta=1.0)}[name]
    x = jax.jit(run)(key)
    # Monte-Carlo standard errors: mean 0.5/sqrt(4000) ~ 0.008, std ~ 0.006; the
    # discretisation bias at 100-200 steps is below that
    np.testing.assert_allclose(x.mean(0), MU, atol=0.04)
    np.testing.assert_allclose(x.std(0), S0, atol=0.04)


def _divergence(x, y):
    return float(sinkhorn_divergence(x, y, epsilon=0.1, tol=1e-4, max_iter=5000).divergence)


@pytest.mark.slow
def test_exact_score_sampler_reproduces_the_mixture(key):
    # acceptance 1, small: PF-ODE (Heun) samples of the exact score of a 2-D mixture are as
    # close to fresh data as another fresh data set; a wrong score (a shifted mixture) is not
    mix = gmm2d()
    sde = VPSDE()
    n = 500
    keys = jax.random.split(key, 4)
    sample = jax.jit(lambda m, k: probability_flow(mixture_score_fn(m, sde), k, sde, (n, 2),
                                                   n_steps=40))
    x = sample(mix, keys[0])
    data = mixture_sample(keys[1], mix, n)[0]
    floor = _divergence(mixture_sample(keys[2], mix, n)[0], mixture_sample(keys[3], mix, n)[0])
    assert _divergence(x, data) < 2.0 * floor  # one seed: the floor itself varies ~30%
    wrong = sample(mix._replace(means=mix.means + 1.0), keys[0])
    assert _divergence(wrong, data) > 3.0 * floor


@pytest.mark.slow
@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_max=50.0), CosineVPSDE()],
                         ids=lambda s: type(s).__name__)
def test_every_sampler_reproduces_the_mixture_slow(sde):
    # acceptance 1: mean over 4 seeds of S(samples, fresh data) <= 1.5 x the mean
    # data-vs-data floor (n = 1000, epsilon = 0.1). VE needs sigma_max >> the data spread:
    # with sigma_max = 10 the prior N(0, 100 I) is far enough from p_T that the
    # deterministic PF-ODE lands at 2.2 x the floor (measured), the SDE samplers are fine
    mix = gmm2d()
    n = 1000
    score = mixture_score_fn(mix, sde)
    samplers = {
        "em": lambda k: euler_maruyama(score, k, sde, (n, 2), n_steps=500),
        "pc": lambda k: predictor_corrector(score, k, sde, (n, 2), n_steps=300),
        "heun": lambda k: probability_flow(score, k, sde, (n, 2), n_steps=50),
        "rk4": lambda k: probability_flow(score, k, sde, (n, 2), n_steps=25, method="rk4"),
        "ddim": lambda k: ddim(score, k, sde, (n, 2), n_steps=100),
        "ancestral": lambda k: ddim(score, k, sde, (n, 2), n_steps=1000, eta=1.0),
    }
    seeds = range(4)
    data = [mixture_sample(jax.random.key(100 + s), mix, n)[0] for s in seeds]
    floor = np.mean([_divergence(mixture_sample(jax.random.key(200 + s), mix, n)[0], data[s])
                     for s in seeds])
    for name, run in samplers.items():
        run = jax.jit(run)
        got = np.mean([_divergence(run(jax.random.key(s)), data[s]) for s in seeds])
        assert got < 1.5 * floor, (name, got, floor)


def test_classifier_free_guidance_formula():
    c, u = jnp.asarray([[1.0, 2.0]]), jnp.asarray([[0.5, -1.0]])
    np.testing.assert_allclose(classifier_free_guidance(c, u, scale=1.0), c)
    np.testing.assert_allclose(classifier_free_guidance(c, u, scale=0.0), u)
    np.testing.assert_allclose(classifier_free_guidance(c, u, scale=2.5), u + 2.5 * (c - u))


def test_classifier_guidance_adds_the_classifier_gradient():
    # Gaussian class likelihood log p(y|x) = -|x - m_y|^2 / 2 + c: gradient m_y - x
    m = jnp.asarray([[1.0, 0.0], [0.0, 2.0]])
    logp = lambda x, t, y: -0.5 * jnp.sum((x - m[y]) ** 2, axis=1)  # noqa: E731
    x = jnp.asarray([[0.3, 0.4], [1.0, -1.0]])
    y = jnp.asarray([1, 0])
    guided = classifier_guidance(lambda x, t: -x, logp, y, scale=3.0)
    np.testing.assert_allclose(guided(x, jnp.asarray([0.5, 0.5])), -x + 3.0 * (m[y] - x),
                               rtol=1e-6)


# --- bad input, one test per rule ---------------------------------------------------------

def test_non_positive_step_count(key):
    with pytest.raises(ValueError, match="n_steps"):
        euler_maruyama(lambda x, t: -x, key, VPSDE(), (2, 2), n_steps=0)


def test_non_positive_end_time(key):
    with pytest.raises(ValueError, match="t_end"):
        probability_flow(lambda x, t: -x, key, VPSDE(), (2, 2), t_end=0.0)


def test_end_time_beyond_horizon(key):
    with pytest.raises(ValueError, match="t_end"):
        ddim(lambda x, t: -x, key, VPSDE(), (2, 2), t_end=1.5)


def test_bad_shape(key):
    with pytest.raises(ValueError, match="shape"):
        euler_maruyama(lambda x, t: -x, key, VPSDE(), (2, 0))


def test_score_output_shape(key):
    with pytest.raises(ValueError, match="score_fn returned shape"):
        predictor_corrector(lambda x, t: x[:, :1], key, VPSDE(), (2, 2), n_steps=2)


def test_negative_eta(key):
    with pytest.raises(ValueError, match="eta"):
        ddim(lambda x, t: -x, key, VPSDE(), (2, 2), eta=-0.5)


def test_nan_start(key):
    with pytest.raises(ValueError, match="NaN"):
        probability_flow(lambda x, t: -x, None, VPSDE(), x_T=jnp.full((2, 2), jnp.nan))


def test_unknown_ode_method(key):
    with pytest.raises(ValueError, match="method"):
        probability_flow(lambda x, t: -x, key, VPSDE(), (2, 2), method="rk45")
