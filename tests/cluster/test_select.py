"""select_k (issue 18): every k's clustering against scikit-learn's KMeans from the same
initial centres (the first k of one k-means++ seeding of k_max), and every score against
sklearn.metrics on the returned labels.

Tolerances: float32 Lloyd on n = 60 well-separated points reaches the same partition as
sklearn's float64 Lloyd (labels equal), inertia to 1e-5 relative; scores recomputed by
scikit-learn in float64 from the returned labels: 1e-5 relative (float32 sums of n terms).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.cluster import KMeans

from jaxclust.cluster import SelectKResult, kmeans_plusplus, select_k

_RNG = np.random.default_rng(0)
_X = np.r_[[_RNG.normal(size=(20, 2)) + 6.0 * np.array([i, i % 2]) for i in range(3)]
           ].reshape(60, 2)
_KS = (2, 3, 4, 5)


def test_select_k_matches_sklearn():
    x = jnp.asarray(_X, jnp.float32)
    res = select_k(x, _KS, key=jax.random.key(0), n_init=1)
    assert res.labels.shape == (4, 60) and res.centroids.shape == (4, 5, 2)
    assert bool(jnp.all(res.converged))
    # the seeding select_k used (one restart: jax.random.split(key, 1)[0])
    kk = jax.random.split(jax.random.key(0), 1)[0]
    seeds = np.asarray(kmeans_plusplus(x, 5, key=kk, n_local_trials=2 + int(np.log(5))),
                       float)
    for i, k in enumerate(_KS):
        km = KMeans(k, init=seeds[:k], n_init=1, algorithm="lloyd", tol=1e-4).fit(_X)
        lab = np.asarray(res.labels[i])
        np.testing.assert_array_equal(lab, km.labels_)
        np.testing.assert_allclose(float(res.inertia[i]), km.inertia_, rtol=1e-5)
        np.testing.assert_allclose(float(res.silhouette[i]), skm.silhouette_score(_X, lab),
                                   rtol=1e-5)
        np.testing.assert_allclose(float(res.calinski_harabasz[i]),
                                   skm.calinski_harabasz_score(_X, lab), rtol=1e-5)
        np.testing.assert_allclose(float(res.davies_bouldin[i]),
                                   skm.davies_bouldin_score(_X, lab), rtol=1e-5)
    assert [int(res.best(c)) for c in ("silhouette", "calinski_harabasz",
                                       "davies_bouldin")] == [3, 3, 3]


def test_select_k_bad_input():
    x = jnp.asarray(_X[:6], jnp.float32)
    with pytest.raises(ValueError, match=r"`k_values` must lie in \[2, n - 1\]"):
        select_k(x, (1, 2), key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`k_values` must lie in \[2, n - 1\]"):
        select_k(x, (2, 6), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`k_values` must be a non-empty sequence of ints"):
        select_k(x, (2.5,), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`x` contains NaN"):
        select_k(x.at[0, 0].set(jnp.nan), (2,), key=jax.random.key(0))


def _sk_with_params(k, cov_type, means, cov, weights):
    """A scikit-learn GaussianMixture holding the given parameters (its bic / aic / score
    then evaluate them: the peer's own code on our fitted parameters)."""
    from sklearn.mixture import GaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    sk = GaussianMixture(k, covariance_type=cov_type)
    sk.means_, sk.covariances_, sk.weights_ = (np.asarray(a, np.float64)
                                                for a in (means, cov, weights))
    sk.precisions_cholesky_ = _compute_precision_cholesky(sk.covariances_, cov_type)
    return sk


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_select_k_gmm_bic_aic_equal_sklearn_on_the_same_parameters():
    """model="gmm": every k's BIC / AIC equal scikit-learn's GaussianMixture.bic / aic on the
    same parameters (the refit that the docstring promises reproduces them: same key and
    options), the label scores equal sklearn.metrics on the returned labels, and the k
    chosen by BIC / AIC is scikit-learn's own choice from its own fits (3 blobs).
    float32 log-likelihood sums of 60 terms of size ~3: 1e-5 relative."""
    from sklearn.mixture import GaussianMixture

    from jaxclust.cluster import gmm

    x = jnp.asarray(_X, jnp.float32)
    ks = (2, 3)  # one EM program per k is compiled (~3 s each at light load): two k's
    res = select_k(x, ks, key=jax.random.key(0), model="gmm", covariance_type="diag",
                   n_init=1)
    assert res.bic.shape == (2,) and res.centroids.shape == (2, 3, 2)
    assert bool(jnp.all(res.converged))
    sk_bic = []
    for i, k in enumerate(ks):
        r = gmm(x, k, key=jax.random.key(0), covariance_type="diag", n_init=1, max_iter=300,
                tol=1e-3)
        np.testing.assert_array_equal(np.asarray(r.means), np.asarray(res.centroids[i, :k]))
        sk = _sk_with_params(k, "diag", r.means, r.covariances, r.weights)
        np.testing.assert_allclose(float(res.bic[i]), sk.bic(_X), rtol=1e-5)
        np.testing.assert_allclose(float(res.aic[i]), sk.aic(_X), rtol=1e-5)
        np.testing.assert_allclose(float(res.objective[i]), -60 * sk.score(_X), rtol=1e-5)
        lab = np.asarray(res.labels[i])
        np.testing.assert_array_equal(lab, sk.predict(_X))
        np.testing.assert_allclose(float(res.silhouette[i]), skm.silhouette_score(_X, lab),
                                   rtol=1e-5)
        np.testing.assert_allclose(float(res.davies_bouldin[i]),
                                   skm.davies_bouldin_score(_X, lab), rtol=1e-5)
        own = GaussianMixture(k, covariance_type="diag", n_init=3, random_state=0).fit(_X)
        sk_bic.append(own.bic(_X))
    assert int(res.best("bic")) == ks[int(np.argmin(sk_bic))] == 3
    assert int(res.best("aic")) == 3
    assert np.all(np.isnan(np.asarray(select_k(x, (2, 3), key=jax.random.key(0),
                                               n_init=1).bic)))


def test_select_k_gmm_bad_input():
    x = jnp.asarray(_X[:6], jnp.float32)
    with pytest.raises(ValueError, match="`model` must be one of"):
        select_k(x, (2,), key=jax.random.key(0), model="dbscan")
    with pytest.raises(ValueError, match=r"`covariance_type` applies to model=\"gmm\" only"):
        select_k(x, (2,), key=jax.random.key(0), covariance_type="diag")
    with pytest.raises(ValueError, match=r"`reg_covar` applies to model=\"gmm\" only"):
        select_k(x, (2,), key=jax.random.key(0), reg_covar=1e-3)
    with pytest.raises(ValueError, match=r"`k_values` must lie in \[1, n\] = \[1, 6\]"):
        select_k(x, (2, 7), key=jax.random.key(0), model="gmm")
    with pytest.raises(ValueError, match="`covariance_type`"):
        select_k(x, (2,), key=jax.random.key(0), model="gmm", covariance_type="round")
    with pytest.raises(ValueError, match="`criterion` must be one of"):
        SelectKResult(*[jnp.zeros(1)] * len(SelectKResult._fields)).best("bick")


_GX = jnp.ones((5, 2))
_GM, _GC, _GW = jnp.zeros((2, 2)), jnp.ones(2), jnp.asarray([0.5, 0.5])


@pytest.mark.parametrize(
    "args, cov_type, match",
    [
        ((_GX, _GM[:, :1], _GC, _GW), "spherical", r"`means` must have shape \(k, 2\)"),
        ((_GX, _GM, _GC, _GW), "round", "`covariance_type` must be one of"),
        ((_GX, _GM, -_GC, _GW), "spherical", r"`covariances` \(variances\) must be > 0"),
        ((_GX, _GM, _GC, jnp.asarray([0.7, 0.7])), "spherical", "`weights` must sum to 1"),
        ((_GX, _GM, _GC, jnp.asarray([-0.5, 1.5])), "spherical", "`weights` has negative"),
        ((_GX.at[0, 0].set(jnp.nan), _GM, _GC, _GW), "spherical", "`x` contains NaN"),
        ((_GX, _GM, _GC, _GW), "full", r"`covariances` must have shape \(2, 2, 2\)"),
        ((_GX[0], _GM, _GC, _GW), "spherical", "`x` must be 2-D"),
    ],
)
def test_gmm_bic_aic_bad_input(args, cov_type, match):
    from jaxclust.cluster import gmm_aic, gmm_bic

    for fn in (gmm_bic, gmm_aic):
        with pytest.raises(ValueError, match=match):
            fn(*args, covariance_type=cov_type)


def test_best_bic_of_a_kmeans_result_raises():
    """Regression (findings, fuzzuser 09:21): best("aic") on a k-means result (BIC / AIC
    all NaN) silently returned the first k."""
    nan = jnp.full((2,), jnp.nan)
    res = SelectKResult(jnp.asarray([2, 3]), *[jnp.ones(2)] * 4, jnp.zeros((2, 4), int),
                        jnp.zeros((2, 3, 2)), jnp.ones(2, bool), nan, nan)
    for c in ("bic", "aic"):
        with pytest.raises(ValueError, match=f"`criterion='{c}'` needs a mixture"):
            res.best(c)
    assert int(res.best("silhouette")) == 2
