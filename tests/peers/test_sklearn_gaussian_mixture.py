"""scikit-learn's Gaussian-mixture tests, ported to `jaxclust.cluster.gmm`.

Peer file: ``sklearn/mixture/tests/test_gaussian_mixture.py`` of scikit-learn 1.9.1 (the
installed package). Data (the peer's ``RandomData(np.random.RandomState(seed))``: 200 points,
2 features, 2 components, one sample per covariance type; the degenerate and 3-point arrays),
parameters and expected values are the peer's. Where the peer compares with its own
implementation, we compare with the installed ``GaussianMixture`` started from the same
parameters (float64 both, inside ``enable_x64``: jaxclust documents scikit-learn's EM
updates, so the iterates agree to rounding, ``rtol=1e-8``).

Translation of the API differences:

* ``GaussianMixture(n_components=k, covariance_type=c, weights_init=w, means_init=m,
  precisions_init=P, max_iter=..., tol=...).fit(X)`` -> ``gmm(X, k, key=...,
  covariance_type=c, init=(m, inv(P), w), max_iter=..., tol=...)``: jaxclust starts from
  covariances, the peer from precisions (the peer's ``RandomData`` holds both). Fitted
  ``means_`` / ``covariances_`` / ``weights_`` / ``n_iter_`` / ``converged_`` / ``score(X)`` /
  ``predict(X)`` -> ``means`` / ``covariances`` / ``weights`` / ``n_iters`` / ``converged`` /
  ``log_likelihood`` / ``labels``. ``fit_predict`` and ``fit(...).predict`` are the one
  ``labels`` property.
* The peer's private ``_estimate_log_gaussian_prob(X, means, precisions_cholesky, c)``
  (per-component log densities) -> ``gmm_log_prob(X, means, covariances, weights)``, which
  returns the mixture log density and the log responsibilities; the per-component log
  density is ``log_resp + log_prob - log(weights)``.
* **Convention:** with ``reg_covar=0`` on collapsed data the peer raises ("ill-defined
  empirical covariance"); jaxclust keeps every output finite (a ridge of
  ``sqrt(eps) tr(Sigma) / d`` where a covariance is not positive definite, documented in
  ``gmm``), so the ported case asserts finite outputs.
* BIC/AIC, ``sample``, ``warm_start``, the verbose output and the array-API tests have no
  counterpart.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.mixture.tests.test_gaussian_mixture import COVARIANCE_TYPE, RandomData

from jaxclust.cluster import gmm, gmm_log_prob

from ..utils import enable_x64

SLOW = pytest.mark.slow  # a new compilation per case (about 1 s on one core): make test-all


def _naive_lmvnpdf_diag(x, means, covars):
    """The peer's reference: per-component log densities with diagonal covariances."""
    resp = np.empty((len(x), len(means)))
    stds = np.sqrt(covars)
    for i, (mean, std) in enumerate(zip(means, stds)):
        resp[:, i] = stats.norm.logpdf(x, mean, std).sum(axis=1)
    return resp


# --- peer: test_gaussian_mixture_log_probabilities
@pytest.mark.parametrize("covar_type", COVARIANCE_TYPE)
def test_gaussian_mixture_log_probabilities(covar_type):
    rng = np.random.RandomState(0)
    rand_data = RandomData(rng)
    n_samples, n_features, n_components = 500, rand_data.n_features, rand_data.n_components
    means = rand_data.means
    covars_diag = rng.rand(n_components, n_features)
    x = rng.rand(n_samples, n_features)
    if covar_type == "full":
        cov = np.array([np.diag(c) for c in covars_diag])
        naive = _naive_lmvnpdf_diag(x, means, covars_diag)
    elif covar_type == "diag":
        cov = covars_diag
        naive = _naive_lmvnpdf_diag(x, means, covars_diag)
    elif covar_type == "tied":
        covars_tied = covars_diag.mean(axis=0)
        cov = np.diag(covars_tied)
        naive = _naive_lmvnpdf_diag(x, means, [covars_tied] * n_components)
    else:
        covars_spherical = covars_diag.mean(axis=1)
        cov = covars_spherical
        naive = _naive_lmvnpdf_diag(x, means, [[k] * n_features for k in covars_spherical])
    weights = rand_data.weights
    with enable_x64():
        log_prob, log_resp = gmm_log_prob(x, means, cov, weights, covariance_type=covar_type)
        per_component = np.asarray(log_resp) + np.asarray(log_prob)[:, None] - np.log(weights)
    np.testing.assert_array_almost_equal(per_component, naive)


def _fit_both(seed, max_iter, tol, covar_type):
    rng = np.random.RandomState(seed)
    rand_data = RandomData(rng)
    x, y = rand_data.X[covar_type], rand_data.Y
    g = GaussianMixture(
        n_components=rand_data.n_components,
        random_state=rng,
        weights_init=rand_data.weights,
        means_init=rand_data.means,
        precisions_init=rand_data.precisions[covar_type],
        covariance_type=covar_type,
        max_iter=max_iter,
        tol=tol,
    ).fit(x)
    init = (rand_data.means, rand_data.covariances[covar_type], rand_data.weights)
    with enable_x64():
        res = gmm(x, rand_data.n_components, key=jax.random.key(seed),
                  covariance_type=covar_type, init=init, max_iter=max_iter, tol=tol)
        log_prob, _ = gmm_log_prob(x, res.means, res.covariances, res.weights,
                                   covariance_type=covar_type)
        res = jax.tree_util.tree_map(np.asarray, res)
    return x, y, g, res, np.asarray(log_prob)


# --- peer: test_gaussian_mixture_fit_predict (global_dtype = float64)
@pytest.mark.filterwarnings("ignore:.*did not converge.*")
@pytest.mark.parametrize("covar_type", COVARIANCE_TYPE)
@pytest.mark.parametrize(
    "seed, max_iter, tol",
    [
        pytest.param(0, 2, 1e-7, marks=SLOW),  # strict non-convergence
        pytest.param(1, 2, 1e-1, marks=SLOW),  # loose non-convergence
        (3, 300, 1e-7),  # strict convergence
        (4, 300, 1e-1),  # loose convergence
    ],
)
def test_gaussian_mixture_fit_predict(seed, max_iter, tol, covar_type):
    x, y, g, res, log_prob = _fit_both(seed, max_iter, tol, covar_type)
    labels = np.argmax(res.responsibilities, axis=1)
    np.testing.assert_array_equal(labels, g.predict(x))
    assert adjusted_rand_score(y, labels) > 0.95
    assert res.means.dtype == np.float64 and res.weights.dtype == np.float64
    # the same EM as the peer from the same start
    assert int(res.n_iters) == g.n_iter_
    assert bool(res.converged) == g.converged_
    np.testing.assert_allclose(res.means, g.means_, rtol=1e-8)
    np.testing.assert_allclose(res.weights, g.weights_, rtol=1e-8)
    np.testing.assert_allclose(res.covariances, g.covariances_, rtol=1e-8)
    np.testing.assert_allclose(res.responsibilities.sum(axis=1), 1.0)
    # the peer's test_score: score(X) equals the mean of score_samples(X)
    np.testing.assert_allclose(float(res.log_likelihood), g.score(x), rtol=1e-10)
    np.testing.assert_allclose(float(res.log_likelihood), log_prob.mean(), rtol=1e-12)
    np.testing.assert_allclose(log_prob, g.score_samples(x), rtol=1e-10)


# --- peer: test_gaussian_mixture_fit (recover the ground truth; n_init=20, reg_covar=0)
@SLOW
@pytest.mark.parametrize("covar_type", COVARIANCE_TYPE)
def test_gaussian_mixture_fit(covar_type):
    rng = np.random.RandomState(0)
    rand_data = RandomData(rng)
    n_features, n_components = rand_data.n_features, rand_data.n_components
    x = rand_data.X[covar_type]
    g = gmm(x, n_components, key=jax.random.key(0), covariance_type=covar_type, n_init=20,
            reg_covar=0.0)
    weights, means, cov = (np.asarray(a, float) for a in (g.weights, g.means, g.covariances))
    np.testing.assert_allclose(np.sort(weights), np.sort(rand_data.weights), rtol=0.1,
                               atol=1e-2)
    arg_idx1, arg_idx2 = means[:, 0].argsort(), rand_data.means[:, 0].argsort()
    np.testing.assert_allclose(means[arg_idx1], rand_data.means[arg_idx2], rtol=0.1, atol=1e-2)
    # the peer compares precisions: jaxclust returns covariances, inverted here
    if covar_type == "full":
        prec_pred, prec_test = np.linalg.inv(cov), rand_data.precisions["full"]
    elif covar_type == "tied":
        prec_pred = np.array([np.linalg.inv(cov)] * n_components)
        prec_test = np.array([rand_data.precisions["tied"]] * n_components)
    elif covar_type == "spherical":
        prec_pred = np.array([np.eye(n_features) / c for c in cov])
        prec_test = np.array([np.eye(n_features) * c for c in rand_data.precisions["spherical"]])
    else:
        prec_pred = np.array([np.diag(1.0 / d) for d in cov])
        prec_test = np.array([np.diag(d) for d in rand_data.precisions["diag"]])
    arg_idx1 = np.trace(prec_pred, axis1=1, axis2=2).argsort()
    arg_idx2 = np.trace(prec_test, axis1=1, axis2=2).argsort()
    for k, h in zip(arg_idx1, arg_idx2):
        ecov = EmpiricalCovariance()
        ecov.covariance_ = prec_test[h]
        np.testing.assert_allclose(ecov.error_norm(prec_pred[k]), 0, atol=0.15)


# --- peer: test_regularisation
@SLOW
@pytest.mark.parametrize("covar_type", COVARIANCE_TYPE)
def test_regularisation(covar_type):
    n_samples, n_features = 10, 5
    x = np.vstack((np.ones((n_samples // 2, n_features)),
                   np.zeros((n_samples // 2, n_features))))
    # peer: reg_covar=0 raises "Fitting the mixture model failed because some components
    # have ill-defined empirical covariance"; jaxclust: finite outputs (documented ridge)
    for reg_covar in (0.0, 1e-6):
        res = gmm(x, n_samples, key=jax.random.key(0), covariance_type=covar_type,
                  reg_covar=reg_covar)
        for leaf in (res.means, res.covariances, res.weights, res.responsibilities,
                     res.log_likelihood):
            assert np.all(np.isfinite(np.asarray(leaf))), (reg_covar, leaf)
        np.testing.assert_allclose(float(np.sum(res.weights)), 1.0, rtol=1e-5)


# --- peer: test_gaussian_mixture_single_component_stable
def test_gaussian_mixture_single_component_stable():
    rng = np.random.RandomState(0)
    x = rng.multivariate_normal(np.zeros(2), np.identity(2), size=3)
    res = gmm(x, 1, key=jax.random.key(0))
    # peer: fit(X).sample() runs (no sample() here); one component holds the data's moments
    np.testing.assert_allclose(res.means[0], x.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.covariances[0], np.cov(x.T, bias=True) + 1e-6 * np.eye(2),
                               rtol=1e-4, atol=1e-6)
    assert bool(res.converged)
