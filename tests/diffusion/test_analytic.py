"""Closed-form mixture oracles: Tweedie's formula, log densities against scipy, MoLRG vs the
same mixture with explicit covariances, sampling moments, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from jaxclust.diffusion import (
    GaussianMixture,
    MoLRG,
    mixture_denoiser,
    mixture_logp,
    mixture_posterior,
    mixture_sample,
    mixture_score,
)

from ..utils import enable_x64
from ._problems import molrg_as_gmm, random_gmm, random_molrg

COEFS = [(0.9, 0.3), (0.2, 0.98), (0.999, 0.01), (1.0, 0.5)]


@pytest.mark.parametrize("kind", ["gmm", "molrg"])
def test_denoiser_is_tweedie_of_the_exact_log_density(kind):
    # acceptance 1: E[x0 | x_t] from the per-component posteriors equals Tweedie's formula
    # (x + sigma^2 grad log p_t(x)) / alpha with the gradient by autodiff of the log density
    with enable_x64():
        rng = np.random.default_rng(0)
        mix = (random_gmm(rng, 3, 4) if kind == "gmm"
               else random_molrg(rng, 4, 16, 3, 0.05))
        D = 4 if kind == "gmm" else 16
        x = jnp.asarray(2.0 * rng.normal(size=(len(COEFS), 5, D)))
        a, s = (jnp.asarray(c) for c in zip(*COEFS))

        @jax.jit
        @jax.vmap
        def check(x, a, s):
            grad = jax.grad(lambda z: jnp.sum(mixture_logp(z, mix, a, s)))(x)
            tweedie = (x + s ** 2 * grad) / a
            return mixture_denoiser(x, mix, a, s) - tweedie, mixture_score(x, mix, a, s) - grad

        den_err, score_err = check(x, a, s)
        assert float(jnp.abs(den_err).max()) < 1e-10
        assert float(jnp.abs(score_err).max()) < 1e-10


def test_logp_matches_scipy_mixture():
    with enable_x64():
        rng = np.random.default_rng(1)
        mix = random_gmm(rng, 3, 3)
        x = rng.normal(size=(10, 3))
        a, s = 0.7, 0.6
        comp = [multivariate_normal(a * np.asarray(m), a * a * np.asarray(c) + s * s * np.eye(3))
                .logpdf(x) for m, c in zip(mix.means, mix.covs)]
        expected = logsumexp(np.stack(comp, 1) + np.log(np.asarray(mix.weights)), axis=1)
        np.testing.assert_allclose(mixture_logp(jnp.asarray(x), mix, a, s), expected,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_molrg_woodbury_equals_explicit_covariances(floor):
    with enable_x64():
        rng = np.random.default_rng(2)
        mix = random_molrg(rng, 3, 10, 2, floor)
        full = molrg_as_gmm(mix)
        x = jnp.asarray(rng.normal(size=(7, 10)))
        a, s = jnp.asarray([0.9, 0.5, 0.99, 0.3, 0.8, 0.7, 0.6]), jnp.asarray(
            [0.2, 0.8, 0.05, 0.95, 0.5, 0.6, 0.7])
        every = jax.jit(lambda m: [fn(x, m, a, s) for fn in (
            mixture_logp, mixture_score, mixture_denoiser, mixture_posterior)])
        for u, v in zip(every(mix), every(full)):
            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-10)


def test_sample_moments(key):
    mix = random_molrg(np.random.default_rng(3), 2, 4, 1, 0.1, dtype=jnp.float32)
    x, labels = mixture_sample(key, mix, 20000)
    U = np.asarray(mix.bases)
    for k in range(2):
        xk = np.asarray(x)[np.asarray(labels) == k]
        cov = xk.T @ xk / len(xk)
        # Monte-Carlo error of a covariance entry ~ 1.1 / sqrt(10^4) ~ 0.011; 5 sigma
        np.testing.assert_allclose(cov, U[k] @ U[k].T + 0.1 * np.eye(4), atol=0.06)
    assert abs(float(jnp.mean(labels == 0)) - float(mix.weights[0])) < 0.02  # ~6 sigma


def test_posterior_rows_sum_to_one_and_pick_the_subspace():
    U = jnp.stack([jnp.eye(4)[:, :2], jnp.eye(4)[:, 2:]])
    mix = MoLRG(jnp.asarray([0.5, 0.5]), U, 0.01)
    r = mixture_posterior(jnp.asarray([[2.0, 1.0, 0.0, 0.1], [0.0, 0.1, 1.0, -2.0]]), mix)
    np.testing.assert_allclose(r.sum(1), 1.0, rtol=1e-6)
    assert r.argmax(1).tolist() == [0, 1]


# --- bad input, one test per rule ---------------------------------------------------------

def _mol():
    return MoLRG(jnp.asarray([0.5, 0.5]), jnp.stack([jnp.eye(3)[:, :1], jnp.eye(3)[:, 1:2]]),
                 0.1)


def test_bad_weights():
    mix = _mol()._replace(weights=jnp.asarray([0.5, 0.6]))
    with pytest.raises(ValueError, match="sum to one"):
        mixture_logp(jnp.zeros((1, 3)), mix)


def test_bad_bases_not_orthonormal():
    mix = _mol()._replace(bases=2.0 * _mol().bases)
    with pytest.raises(ValueError, match="orthonormal"):
        mixture_score(jnp.zeros((1, 3)), mix, 1.0, 0.5)


def test_bad_floor():
    with pytest.raises(ValueError, match="floor"):
        mixture_score(jnp.zeros((1, 3)), _mol()._replace(floor=-1.0), 1.0, 0.5)


def test_bad_x_dimension():
    with pytest.raises(ValueError, match="D = 3"):
        mixture_score(jnp.zeros((1, 4)), _mol(), 1.0, 0.5)


def test_bad_x_nan():
    with pytest.raises(ValueError, match="NaN"):
        mixture_score(jnp.full((1, 3), jnp.nan), _mol(), 1.0, 0.5)


def test_bad_gmm_covariance_shape():
    mix = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(3)[None])
    with pytest.raises(ValueError, match="covs"):
        mixture_logp(jnp.zeros((1, 2)), mix)


def test_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        mixture_score(jnp.zeros((1, 3)), _mol(), 0.0, 0.5)


def test_bad_mixture_type():
    with pytest.raises(ValueError, match="GaussianMixture or a MoLRG"):
        mixture_logp(jnp.zeros((1, 3)), (1, 2, 3))
