"""jaxclust.sklearn: the estimators equal the functional API, warn when a fit did not converge,
keep scikit-learn optional, and pass scikit-learn's own estimator checks.

The fast part fits every estimator once on one tiny data set (one shape, so one compilation
per function) and runs a handful of representative checks; the full
``parametrize_with_checks`` run (hundreds of shapes to compile) is marked ``slow``.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_clustering,
    check_estimators_pickle,
    check_fit2d_1sample,
    check_n_features_in_after_fitting,
    check_transformer_preserve_dtypes,
    parametrize_with_checks,
)

import jaxclust.sklearn as js  # noqa: E402
from jaxclust.cluster import (  # noqa: E402
    gmm,
    gmm_log_prob,
    kmeans,
    kmeans_plusplus,
    kmedoids,
    minibatch_kmeans,
    minibatch_kmeans_init,
    minibatch_kmeans_update,
    sinkhorn_kmeans,
    spectral,
)
from jaxclust.sdp import kmeans_sdp, la_sdp  # noqa: E402

from .utils import enable_x64  # noqa: E402

SEED = 3


@pytest.fixture(scope="module")
def blobs():
    """Three separated blobs, 24 points in 2-D (float64, as a scikit-learn user passes)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    x = np.repeat(centres, 8, axis=0) + rng.normal(scale=0.7, size=(24, 2))
    w = rng.uniform(0.5, 2.0, size=24)
    return x, w


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # these fits must converge
        return est.fit(*args, **kwargs)


# ----------------------------------------------------------------------------- optional


def test_import_jaxclust_does_not_import_sklearn_and_missing_sklearn_is_named():
    code = (
        "import sys\n"
        "import jaxclust\n"
        "assert 'sklearn' not in sys.modules, 'import jaxclust imported scikit-learn'\n"
        "sys.modules['sklearn'] = None  # as if it were not installed\n"
        "try:\n"
        "    import jaxclust.sklearn\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "jaxclust[data]" in out.stdout and "scikit-learn" in out.stdout


# ----------------------------------------------------------------------------- = functional


def test_kmeans_equals_functional(blobs):
    x, w = blobs
    est = _fit(js.KMeans(3, n_init=2, random_state=SEED), x, sample_weight=w)
    ref = kmeans(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(SEED), n_init=2,
                 weights=jnp.asarray(w, jnp.float32))
    np.testing.assert_array_equal(est.labels_, ref.labels)
    np.testing.assert_array_equal(est.cluster_centers_, ref.centroids)
    assert est.inertia_ == float(ref.inertia) and est.n_iter_ == int(ref.n_iters)
    assert est.converged_ and est.n_features_in_ == 2
    # float64 in, float32 out without x64 (documented); predict / transform / score at the
    # fitted centres, against a NumPy float64 evaluation (float32 tolerances)
    assert est.cluster_centers_.dtype == np.float32 and est.labels_.dtype == np.int32
    c = est.cluster_centers_.astype(np.float64)
    d = np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(-1))
    np.testing.assert_allclose(est.transform(x), d, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(est.predict(x), d.argmin(1))
    np.testing.assert_array_equal(est.predict(x), est.labels_)
    np.testing.assert_allclose(est.score(x, sample_weight=w), -(w * d.min(1) ** 2).sum(),
                               rtol=1e-5)
    np.testing.assert_allclose(-est.score(x, sample_weight=w), est.inertia_, rtol=1e-5)
    assert list(est.get_feature_names_out()) == ["kmeans0", "kmeans1", "kmeans2"]


def test_minibatch_kmeans_equals_functional(blobs):
    x, w = blobs
    est = _fit(js.MiniBatchKMeans(3, batch_size=8, max_steps=50, random_state=SEED), x,
               sample_weight=w)
    ref = minibatch_kmeans(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(SEED),
                           batch_size=8, max_steps=50, weights=jnp.asarray(w, jnp.float32))
    np.testing.assert_array_equal(est.labels_, ref.labels)
    np.testing.assert_array_equal(est.cluster_centers_, ref.centroids)
    assert est.inertia_ == float(ref.inertia) and est.n_steps_ == int(ref.n_iters)
    assert est.converged_ == bool(ref.converged)


def test_minibatch_partial_fit_equals_the_streaming_functions(blobs):
    x, w = blobs
    est = js.MiniBatchKMeans(3, random_state=SEED)
    batches = [x[:12], x[12:]]
    key_init, key = jax.random.split(jax.random.key(SEED))
    c0 = kmeans_plusplus(jnp.asarray(x[:12], jnp.float32), 3, key=key_init,
                         weights=jnp.asarray(w[:12], jnp.float32))
    state = minibatch_kmeans_init(c0)
    for i, xb in enumerate(batches):
        est.partial_fit(xb, sample_weight=w[12 * i:12 * (i + 1)])
        key, sub = jax.random.split(key)
        state, _ = minibatch_kmeans_update(state, jnp.asarray(xb, jnp.float32),
                                           weights=jnp.asarray(w[12 * i:12 * (i + 1)],
                                                               jnp.float32), key=sub)
        np.testing.assert_array_equal(est.cluster_centers_, state.centroids)
    assert est.n_steps_ == 2 and est.labels_.shape == (12,)
    np.testing.assert_array_equal(est.labels_, est.predict(x[12:]))
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(x[:, :1])


def test_gaussian_mixture_equals_functional(blobs):
    x, w = blobs
    est = _fit(js.GaussianMixture(3, covariance_type="diag", random_state=SEED), x,
               sample_weight=w)
    x32 = jnp.asarray(x, jnp.float32)
    ref = gmm(x32, 3, key=jax.random.key(SEED), covariance_type="diag",
              weights=jnp.asarray(w, jnp.float32))
    for a, b in [(est.means_, ref.means), (est.covariances_, ref.covariances),
                 (est.weights_, ref.weights)]:
        np.testing.assert_array_equal(a, b)
    assert est.lower_bound_ == float(ref.log_likelihood) and est.converged_
    lp, lr = gmm_log_prob(x32, ref.means, ref.covariances, ref.weights,
                          covariance_type="diag")
    np.testing.assert_array_equal(est.score_samples(x), lp)
    np.testing.assert_allclose(est.predict_proba(x), ref.responsibilities, atol=1e-6)
    np.testing.assert_array_equal(est.predict(x), jnp.argmax(lr, axis=1))
    np.testing.assert_allclose(est.score(x), float(jnp.mean(lp)), rtol=1e-6)
    # scikit-learn's precision conventions: P P^T = inverse covariance, elementwise for diag
    np.testing.assert_allclose(est.precisions_ * est.covariances_, 1.0, rtol=1e-5)
    n_par = 3 * 2 + 3 * 2 + 2  # diag covariances, means, free weights
    np.testing.assert_allclose(est.bic(x), -2 * est.score(x) * 24 + n_par * np.log(24),
                               rtol=1e-6)


def test_gaussian_mixture_full_precisions(blobs):
    x, _ = blobs
    est = _fit(js.GaussianMixture(2, random_state=SEED), x)
    for cov, prec in zip(est.covariances_, est.precisions_):
        np.testing.assert_allclose(prec @ cov, np.eye(2), atol=1e-4)
    assert est.fit_predict(x).tolist() == est.predict(x).tolist()


def test_kmedoids_equals_functional(blobs):
    x, w = blobs
    for metric in ("euclidean", "manhattan"):
        est = _fit(js.KMedoids(3, metric=metric), x, sample_weight=w)
        ref = kmedoids(jnp.asarray(x, jnp.float32), 3, metric=metric,
                       weights=jnp.asarray(w, jnp.float32))
        np.testing.assert_array_equal(est.medoid_indices_, ref.medoids)
        np.testing.assert_array_equal(est.labels_, ref.labels)
        assert est.inertia_ == float(ref.loss) and est.converged_
        np.testing.assert_array_equal(est.cluster_centers_, x[ref.medoids].astype(np.float32))
        # transform: dissimilarities to the medoids; predict: the nearest one (NumPy float64)
        diff = x[:, None, :] - x[np.asarray(ref.medoids)][None]
        d = np.abs(diff).sum(-1) if metric == "manhattan" else np.sqrt((diff ** 2).sum(-1))
        np.testing.assert_allclose(est.transform(x), d, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(est.predict(x), est.labels_)
    # precomputed: fit on the square matrix, predict from query-to-training dissimilarities
    dm = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    pre = _fit(js.KMedoids(3, metric="precomputed"), dm)
    assert pre.cluster_centers_ is None
    np.testing.assert_array_equal(pre.predict(dm[:5]), pre.labels_[:5])


def test_sinkhorn_kmeans_equals_functional(blobs):
    x, w = blobs
    sizes = np.array([1.0, 1.0, 2.0])
    est = _fit(js.SinkhornKMeans(3, sizes=sizes, epsilon=0.5, random_state=SEED), x,
               sample_weight=w)
    ref = sinkhorn_kmeans(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(SEED),
                          epsilon=0.5, sizes=jnp.asarray(sizes, jnp.float32),
                          weights=jnp.asarray(w, jnp.float32))
    np.testing.assert_array_equal(est.labels_, ref.labels)
    np.testing.assert_array_equal(est.cluster_centers_, ref.centroids)
    np.testing.assert_array_equal(est.assignments_, ref.assignments)
    assert est.transport_cost_ == float(ref.loss) and est.converged_
    # the size constraint: column masses of the plan P = a * assignments are the sizes
    mass = (w / w.sum())[:, None] * est.assignments_
    np.testing.assert_allclose(mass.sum(0), sizes / sizes.sum(), atol=1e-4)


def test_spectral_equals_functional(blobs):
    x, _ = blobs
    est = _fit(js.SpectralClustering(3, n_init=2, random_state=SEED), x)
    ref = spectral(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(SEED), n_init=2)
    np.testing.assert_array_equal(est.labels_, ref.labels)
    np.testing.assert_array_equal(est.embedding_, ref.embedding)
    np.testing.assert_array_equal(est.eigenvalues_, ref.eigenvalues)
    assert not hasattr(est, "predict")  # transductive, as scikit-learn's
    np.testing.assert_array_equal(clone(est).fit_predict(x), est.labels_)


def test_kmeans_sdp_equals_functional(blobs):
    x, _ = blobs
    est = _fit(js.KMeansSDP(3, random_state=SEED), x)
    ref = kmeans_sdp(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(SEED))
    np.testing.assert_array_equal(est.labels_, ref.labels)
    np.testing.assert_array_equal(est.Z_, ref.Z)
    assert est.objective_ == float(ref.objective) and est.n_iter_ == int(ref.n_iters)
    assert est.converged_ and not hasattr(est, "factor_") and not hasattr(est, "predict")


@pytest.mark.parametrize("params, match", [
    (dict(method="bm", rho=1.0), "`rho` does not apply to method='bm'"),
    (dict(method="bm", adaptive_rho=False), "`adaptive_rho` does not apply to method='bm'"),
    (dict(method="admm", bm_options={"rank": 4}), "`bm_options` does not apply"),
    (dict(method="bm", bm_options={"rho": 1.0}), "`rho` does not apply to BurerMonteiro"),
    (dict(method="bm", bm_options={"tol": 1e-3}), "`bm_options` must not hold 'tol'"),
    (dict(method="scs"), "`method` must be 'admm' or 'bm'"),
])
def test_kmeans_sdp_inapplicable_parameter_raises_at_fit(blobs, params, match):
    """Before: rho / adaptive_rho were passed to kmeans_sdp and silently ignored for BM."""
    with pytest.raises(ValueError, match=match):
        js.KMeansSDP(3, **params).fit(blobs[0])


def test_la_sdp_equals_functional(blobs):
    x, _ = blobs
    est = _fit(js.LASDP(3, covariance_type="spherical", random_state=SEED), x)
    ref = la_sdp(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(SEED),
                 covariance_type="spherical")
    np.testing.assert_array_equal(est.labels_, ref.labels)
    np.testing.assert_array_equal(est.memberships_, ref.weights)
    np.testing.assert_array_equal(est.covariances_, ref.covariances)
    assert est.objective_ == float(ref.objective) and est.n_iter_ == int(ref.n_outer)
    assert est.converged_ == bool(ref.converged)


def test_sdp_one_cluster_is_the_only_feasible_point(blobs):
    """n_clusters=1 (which scikit-learn's checks and a grid search may ask for) is answered in
    closed form: Z = 1 1^T / n; for iLA-SDP one Gaussian at the sample mean and covariance."""
    x, _ = blobs
    n, d = x.shape
    sq = ((x[:, None] - x[None]) ** 2).sum(-1)
    est = js.KMeansSDP(1).fit(x)
    np.testing.assert_allclose(est.Z_, np.full((n, n), 1 / n), rtol=1e-6)
    np.testing.assert_allclose(est.objective_, sq.sum() / n, rtol=1e-5)
    assert est.labels_.tolist() == [0] * n and est.converged_
    la = js.LASDP(1, reg_covar=1e-3).fit(x)
    cov = np.cov(x.T, bias=True) + 1e-3 * np.eye(d)
    np.testing.assert_allclose(la.covariances_[0], cov, rtol=1e-5)
    from scipy.stats import multivariate_normal

    ll = multivariate_normal(x.mean(0), cov).logpdf(x).sum()
    np.testing.assert_allclose(la.log_likelihood_, ll, rtol=1e-6)
    np.testing.assert_allclose(la.objective_, -2 * ll - n * d * np.log(2 * np.pi), rtol=1e-6)


# ----------------------------------------------------------------------------- semantics


def test_random_state_none_uses_numpy_global_rng(blobs):
    x, _ = blobs
    fits = []
    for _ in range(2):
        np.random.seed(11)
        fits.append(js.KMeans(3, init="random", n_init=1).fit(x).cluster_centers_)
    np.testing.assert_array_equal(*fits)
    with pytest.raises(ValueError):
        js.KMeans(3, random_state=-1).fit(x)


def test_integer_weights_equal_repeated_rows_for_a_fixed_seeding(blobs):
    """The reason given for the expected failure of scikit-learn's weight-equivalence check:
    with the seeding fixed (given centres), integer weights are repeated rows."""
    x, _ = blobs
    sw = np.random.default_rng(1).integers(0, 3, size=24)
    sw[[0, 8, 16]] = 1
    init = x[[0, 8, 16]]
    a = js.KMeans(3, init=init).fit(x, sample_weight=sw)
    b = js.KMeans(3, init=init).fit(np.repeat(x, sw, axis=0))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-5)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_convergence_warning(blobs):
    x, _ = blobs
    with pytest.warns(ConvergenceWarning, match="KMeans did not converge"):
        est = js.KMeans(3, init=x[:3], max_iter=1, random_state=0).fit(x)
    assert est.converged_ is False and est.n_iter_ == 1
    with pytest.warns(ConvergenceWarning, match="GaussianMixture did not converge"):
        est = js.GaussianMixture(3, covariance_type="diag", max_iter=1, random_state=0).fit(x)
    assert est.converged_ is False


def test_bad_input_is_named(blobs):
    x, _ = blobs
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_clusters=3"):
        js.KMeans(3).fit(x[:2])
    with pytest.raises(ValueError, match="n_samples=24 should be > n_clusters=24"):
        js.KMeansSDP(24).fit(x)
    with pytest.raises(ValueError, match="n_samples=1.*pass epsilon"):
        js.SinkhornKMeans(1).fit(x[:1])
    with pytest.raises(ValueError, match="NaN"):
        js.KMeans(3).fit(np.where(np.eye(24, 2) > 0, np.nan, x))
    est = js.KMeans(3, random_state=0).fit(x)
    with pytest.raises(ValueError, match="3 features"):
        est.predict(np.zeros((2, 3)))


def test_float64_is_preserved_under_x64(blobs):
    x, _ = blobs
    assert js.KMeans().__sklearn_tags__().transformer_tags.preserves_dtype == ["float32"]
    with enable_x64():
        est = js.KMeans(3, random_state=SEED).fit(x)
        assert est.cluster_centers_.dtype == np.float64
        assert est.transform(x).dtype == np.float64
        assert est.__sklearn_tags__().transformer_tags.preserves_dtype == ["float64",
                                                                           "float32"]


# ----------------------------------------------------------------------------- sklearn checks

# The instances the checks run on: small budgets and two clusters, as scikit-learn's own test
# suite configures its KMeans / SpectralClustering (sklearn/utils/_test_common).
CHECKED = [
    js.KMeans(n_clusters=2, n_init=2, max_iter=20),
    js.MiniBatchKMeans(n_clusters=2, batch_size=10, max_steps=20),
    js.GaussianMixture(n_components=2, max_iter=20),
    js.KMedoids(n_clusters=2),
    js.SinkhornKMeans(n_clusters=2, max_iter=20),
    js.SpectralClustering(n_clusters=2, n_init=2),
    js.KMeansSDP(n_clusters=2, max_iter=500),
    js.LASDP(n_clusters=2, max_outer=3, max_iter=500),
]

_SEEDING = ("sample_weight is not equivalent to removing/repeating samples: the random "
            "{what} draws from a different sequence when rows are repeated, so the same "
            "random_state reaches another (equally valid) partition; the weighted objective "
            "itself is the repeated one (scikit-learn marks its KMeans the same way).")


def expected_failed_checks(estimator) -> dict[str, str]:
    """Checks that cannot apply, with the reason, per estimator."""
    name = type(estimator).__name__
    if name in ("KMeans", "SinkhornKMeans"):
        return {"check_sample_weight_equivalence_on_dense_data":
                _SEEDING.format(what="k-means++ seeding")}
    if name == "MiniBatchKMeans":
        return {"check_sample_weight_equivalence_on_dense_data":
                _SEEDING.format(what="k-means++ seeding and the random mini-batches")}
    if name == "GaussianMixture":
        return {"check_sample_weight_equivalence_on_dense_data":
                _SEEDING.format(what="k-means++ seeding of the k-means initialisation")}
    return {}


@pytest.mark.slow
@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # small budgets on purpose
        check(estimator)


# A representative handful in the fast suite (one per kind of guarantee).
@pytest.mark.parametrize("check", [check_clustering, check_transformer_preserve_dtypes,
                                   check_fit2d_1sample, check_estimators_pickle,
                                   check_n_features_in_after_fitting],
                         ids=lambda c: c.__name__)
def test_representative_sklearn_checks(check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check("KMeans", js.KMeans(n_clusters=2, n_init=2, max_iter=20))
