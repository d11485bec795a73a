"""Gaussian mixtures by EM against scikit-learn's GaussianMixture (same initialisation, float64
and float32), SciPy densities, finite-difference gradients (implicit and unrolled),
degenerate components, weights, jit/vmap and bad input."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from jaxclust.cluster import kmeans
from jaxclust.cluster.mixture import GMMResult, gmm, gmm_log_prob


def _standardised(loader):
    return StandardScaler().fit_transform(loader().data)


def _synthetic():
    rng = np.random.default_rng(0)
    centres = np.asarray([[0.0, 0.0, 0.0], [4.0, 1.0, 0.0], [0.0, 4.0, 2.0]])
    scales = np.asarray([[1.0, 0.5, 0.8], [0.6, 1.2, 0.4], [0.9, 0.9, 0.9]])
    sizes = (60, 40, 50)
    return np.concatenate([c + s * rng.normal(size=(m, 3))
                           for c, s, m in zip(centres, scales, sizes)])


DATA = {"iris": lambda: _standardised(load_iris), "wine": lambda: _standardised(load_wine),
        "synthetic": _synthetic}


def _sklearn(x, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, **kw).fit(x)


def _compare(res, ref, x, *, atol):
    np.testing.assert_allclose(float(res.log_likelihood), ref.score(x), rtol=0, atol=atol)
    np.testing.assert_allclose(res.means, ref.means_, rtol=0, atol=atol)
    np.testing.assert_allclose(res.covariances, ref.covariances_, rtol=0, atol=atol)
    np.testing.assert_allclose(res.weights, ref.weights_, rtol=0, atol=atol)
    np.testing.assert_allclose(res.responsibilities, ref.predict_proba(x), rtol=0, atol=atol)


CASES = [("iris", "full"), ("wine", "diag"), ("synthetic", "spherical")]


@pytest.mark.parametrize("data, ctype", CASES)
def test_kmeans_start_matches_sklearn_float64(x64, data, ctype):
    """sklearn's own init_params='kmeans' (KMeans(n_init=1, random_state=0) labels) given to
    jaxclust as one-hot responsibilities; tol = 1e-3 (sklearn's rule) on both sides."""
    x = DATA[data]()
    k = 3
    labels = KMeans(k, n_init=1, random_state=0).fit(x).labels_
    ref = _sklearn(x, k, covariance_type=ctype, init_params="kmeans", random_state=0)
    res = gmm(jnp.asarray(x), k, key=jax.random.key(0), covariance_type=ctype,
              init=jnp.asarray(np.eye(k)[labels]))
    assert res.means.dtype == jnp.float64
    assert int(res.n_iters) == ref.n_iter_ and bool(res.converged) == ref.converged_
    # same float64 iterates up to rounding: observed <= 5e-15; the acceptance bar is 1e-4
    _compare(res, ref, x, atol=1e-10)
    np.testing.assert_array_equal(res.labels, ref.predict(x))


def _m_step_numpy(x, resp, reg, ctype):
    """Independent M-step (scikit-learn's formulas) -> weights, means, precisions."""
    nk = resp.sum(0) + 10 * np.finfo(float).eps
    means = resp.T @ x / nk[:, None]
    covs = np.stack([(resp[:, j, None] * (x - means[j])).T @ (x - means[j]) / nk[j]
                     for j in range(len(nk))]) + reg * np.eye(x.shape[1])
    var = np.diagonal(covs, axis1=1, axis2=2)
    prec = {"full": lambda: np.linalg.inv(covs), "diag": lambda: 1.0 / var,
            "spherical": lambda: 1.0 / var.mean(1)}[ctype]()
    return nk / nk.sum(), means, prec


@pytest.mark.parametrize("data, ctype", CASES)
def test_100_steps_from_random_responsibilities_float64(x64, data, ctype):
    """Random (Dirichlet) initial responsibilities; sklearn gets the parameters of their
    M-step (means_init, weights_init, precisions_init, computed here in NumPy); tol = 0, so
    both run exactly max_iter = 100 EM steps."""
    x = DATA[data]()
    k = 3
    resp = np.random.default_rng(1).dirichlet(np.ones(k), size=len(x))
    w0, mu0, prec0 = _m_step_numpy(x, resp, 1e-6, ctype)
    ref = _sklearn(x, k, covariance_type=ctype, weights_init=w0, means_init=mu0,
                   precisions_init=prec0, max_iter=100, tol=0.0)
    res = gmm(jnp.asarray(x), k, key=jax.random.key(0), covariance_type=ctype,
              init=jnp.asarray(resp), max_iter=100, tol=0.0)
    assert int(res.n_iters) == ref.n_iter_ == 100 and not bool(res.converged)
    # observed <= 2e-14 after 100 steps
    _compare(res, ref, x, atol=1e-10)


def test_float32_close_to_sklearn(rng):
    x = _standardised(load_iris)
    labels = KMeans(3, n_init=1, random_state=0).fit(x).labels_
    ref = _sklearn(x, 3, covariance_type="full", init_params="kmeans", random_state=0)
    res = gmm(jnp.asarray(x, jnp.float32), 3, key=jax.random.key(0),
              init=jnp.asarray(np.eye(3)[labels], jnp.float32))
    assert res.means.dtype == jnp.float32
    assert int(res.n_iters) == ref.n_iter_
    # float32 rounding (~1e-7 relative) over 19 EM steps: observed <= 3e-7 on parameters,
    # responsibilities and the mean log-likelihood; 1e-5 leaves margin for other CPUs and is
    # ten times tighter than the acceptance bar (1e-4)
    _compare(res, ref, x, atol=1e-5)


@pytest.mark.slow  # compiles k-means (the doctest of gmm runs the default init="kmeans")
def test_string_inits_reach_the_sklearn_optimum():
    x = _synthetic().astype(np.float32)
    ref = _sklearn(x.astype(np.float64), 3, covariance_type="diag", n_init=5, random_state=0)
    for init in ("kmeans", "random"):
        res = gmm(jnp.asarray(x), 3, key=jax.random.key(0), covariance_type="diag", init=init,
                  n_init=3, tol=1e-6, max_iter=500)
        again = gmm(jnp.asarray(x), 3, key=jax.random.key(0), covariance_type="diag",
                    init=init, n_init=3, tol=1e-6, max_iter=500)
        np.testing.assert_array_equal(res.means, again.means)  # same key, same result
        assert bool(res.converged)
        # well-separated clusters: one optimum; float32 log-likelihood, observed 5e-7
        np.testing.assert_allclose(float(res.log_likelihood), ref.score(x), atol=1e-5)


def test_log_prob_matches_scipy_and_sklearn(x64, rng):
    x = rng.normal(size=(20, 3))
    k = 3
    means = rng.normal(size=(k, 3))
    a = rng.normal(size=(k, 3, 3))
    covs = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(3)
    w = np.asarray([0.2, 0.5, 0.3])
    dens = np.stack([w[j] * multivariate_normal(means[j], covs[j]).pdf(x) for j in range(k)], 1)
    lp, lr = gmm_log_prob(jnp.asarray(x), jnp.asarray(means), jnp.asarray(covs),
                          jnp.asarray(w))
    np.testing.assert_allclose(lp, np.log(dens.sum(1)), rtol=1e-12)
    np.testing.assert_allclose(np.exp(lr), dens / dens.sum(1, keepdims=True), atol=1e-12)
    for ctype, c in [("diag", np.diagonal(covs, axis1=1, axis2=2)),
                     ("spherical", np.diagonal(covs, axis1=1, axis2=2).mean(1)),
                     ("tied", covs[0])]:
        ref = GaussianMixture(k, covariance_type=ctype)
        prec = {"diag": lambda c=c: 1 / c, "spherical": lambda c=c: 1 / c,
                "tied": lambda c=c: np.linalg.inv(c)}[ctype]()
        ref.weights_, ref.means_, ref.covariances_ = w, means, c
        ref.precisions_cholesky_ = (np.linalg.cholesky(prec) if ctype == "tied"
                                    else np.sqrt(prec))
        lp, _ = gmm_log_prob(jnp.asarray(x), jnp.asarray(means), jnp.asarray(c),
                             jnp.asarray(w), covariance_type=ctype)
        np.testing.assert_allclose(lp, ref.score_samples(x), rtol=1e-12)


def test_integer_weights_equal_repeated_points():
    x = jnp.asarray(_synthetic()[::3], jnp.float32)  # 50 points
    r0 = jax.nn.one_hot(jnp.arange(50) % 3, 3)
    kw = dict(key=jax.random.key(0), covariance_type="diag", tol=1e-6, max_iter=30)
    # the first 25 points twice, unweighted ...
    rr = gmm(jnp.concatenate([x[:25], x[:25]]), 3, init=jnp.concatenate([r0[:25], r0[:25]]),
             **kw)
    # ... equal the first 25 with weight 2 (the other 25 rows weigh 0: padding)
    w = jnp.concatenate([jnp.full(25, 2.0), jnp.zeros(25)])
    rw = gmm(x, 3, init=r0, weights=w, **kw)
    # float32: same sums in another order
    np.testing.assert_allclose(rw.means, rr.means, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rw.covariances, rr.covariances, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rw.log_likelihood, rr.log_likelihood, rtol=1e-5)
    # the stopping test (lower-bound change below tol = 1e-6) sits at float32 rounding, so
    # the two runs may stop one iteration apart (summation order differs with the codegen)
    assert abs(int(rw.n_iters) - int(rr.n_iters)) <= 1


# two tight groups and two identical points, away from the origin
XD = jnp.asarray([[10.0, 10.0], [10.1, 10.2], [10.2, 10.1], [15.0, 15.0], [15.1, 14.9],
                  [15.0, 15.2], [19.0, 10.0], [19.0, 10.0]])
EYE3 = jnp.broadcast_to(jnp.eye(2), (3, 2, 2))


def test_empty_and_degenerate_components_stay_finite():
    # the third component starts far from every point: it becomes empty
    means = jnp.asarray([[10.0, 10.0], [16.0, 13.0], [100.0, -100.0]])
    res = gmm(XD, 3, key=jax.random.key(0), init=(means, EYE3, jnp.full(3, 1 / 3)))
    assert all(bool(jnp.all(jnp.isfinite(t))) for t in res[:5])
    assert 0 < float(res.weights[2]) < 1e-5  # floor: 10 eps / n
    # reg_covar I plus the scatter of the ~1e-7 mass left on it
    np.testing.assert_allclose(res.covariances[2], 1e-6 * np.eye(2), rtol=0.2, atol=1e-9)
    # reg_covar = 0: the component on two identical points has a singular covariance
    means = jnp.asarray([[10.0, 10.0], [15.0, 15.0], [19.0, 10.0]])
    res0 = gmm(XD, 3, key=jax.random.key(0), init=(means, EYE3, jnp.full(3, 1 / 3)),
               reg_covar=0.0)
    assert all(bool(jnp.all(jnp.isfinite(t))) for t in res0[:5])
    np.testing.assert_array_equal(res0.labels, [0, 0, 0, 1, 1, 1, 2, 2])


def test_kmeans_start_is_the_public_kmeans():
    """init="kmeans" (the default) starts EM from the one-hot labels of the public
    ``kmeans(x, k, key=k_r, weights=w)``, with ``k_r = split(key, n_init)[r]`` and ``w`` the
    sample weights scaled to mean one (as the fit scales them): the same fit as passing those
    responsibilities. The start runs k-means without checking ``x`` and the weights again
    (``gmm`` has checked them); this pins that it is still the same k-means."""
    # one Gaussian blob: k-means' partition and the mixture EM reaches from it depend on the
    # seeding (checked below), so a start from another key or other weights would show
    x = jnp.asarray(np.random.default_rng(6).normal(size=(50, 2)), jnp.float32)
    n = x.shape[0]
    w = jnp.asarray(np.random.default_rng(5).uniform(0.5, 2.0, n), jnp.float32)
    w_fit = w * (n / jnp.sum(w))
    key = jax.random.key(7)
    res = gmm(x, 3, key=key, weights=w, covariance_type="diag")

    def from_kmeans(kk):
        labels = kmeans(x, 3, key=kk, weights=w_fit).labels
        return gmm(x, 3, key=key, weights=w, covariance_type="diag",
                   init=jax.nn.one_hot(labels, 3, dtype=x.dtype))

    ref = from_kmeans(jax.random.split(key, 1)[0])
    np.testing.assert_array_equal(res.labels, ref.labels)
    for a, b in zip(res[:5], ref[:5]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(res.n_iters) == int(ref.n_iters)
    other = from_kmeans(jax.random.split(key, 2)[1])
    assert np.max(np.abs(np.sort(other.weights) - np.sort(res.weights))) > 1e-2


def test_warm_start_from_a_result_is_a_fixed_point():
    means = jnp.asarray([[10.0, 10.0], [15.0, 15.0], [19.0, 10.0]])
    res = gmm(XD, 3, key=jax.random.key(0), init=(means, EYE3, jnp.full(3, 1 / 3)),
              tol=1e-7)
    again = gmm(XD, 3, key=jax.random.key(0), init=res, tol=1e-7)
    assert bool(res.converged) and int(again.n_iters) <= 2
    np.testing.assert_allclose(again.means, res.means, atol=1e-5)


def _separated(n=24):
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(size=(n // 2, 2)) * [0.8, 0.6] + [-3.0, 0.0],
              rng.normal(size=(n // 2, 2)) * [1.0, 0.5] + [3.0, 1.0]]
    r0 = np.eye(2)[(np.arange(n) >= n // 2).astype(int)] * 0.8 + 0.1
    return jnp.asarray(x), jnp.asarray(r0)


def _functional(ctype, **kw):
    rng = np.random.default_rng(4)
    wm = jnp.asarray(rng.normal(size=(2, 2)))
    wc = jnp.asarray(rng.normal(size={"full": (2, 2, 2), "spherical": (2,)}[ctype]))
    wr = jnp.asarray(rng.normal(size=(24, 2)))

    def f(x, r0):
        res = gmm(x, 2, key=jax.random.key(0), init=r0, covariance_type=ctype, **kw)
        return (jnp.sum(wm * res.means) + jnp.sum(wc * res.covariances) + res.log_likelihood
                + res.weights[0] + 0.1 * jnp.sum(wr * res.responsibilities))
    return f


def _fd(f, x, r0, v, h=1e-5):
    return (f(x + h * v, r0) - f(x - h * v, r0)) / (2 * h)


@pytest.mark.parametrize("ctype", ["spherical", pytest.param("full", marks=pytest.mark.slow)])
def test_implicit_gradient_matches_finite_differences(x64, ctype):
    x, r0 = _separated()
    v = jnp.asarray(np.random.default_rng(5).normal(size=x.shape))
    f = _functional(ctype, tol=1e-13, max_iter=300)
    g = jax.jit(jax.grad(f))(x, r0)
    # float64, converged to |change| < 1e-13: observed relative error <= 5e-10
    np.testing.assert_allclose(float(jnp.sum(g * v)), float(_fd(jax.jit(f), x, r0, v)),
                               rtol=1e-6)


@pytest.mark.slow
def test_unrolled_gradient_equals_implicit_at_convergence(x64):
    x, r0 = _separated()
    g_imp = jax.jit(jax.grad(_functional("full", tol=1e-13, max_iter=300)))(x, r0)
    g_unr = jax.jit(jax.grad(_functional("full", tol=1e-13, max_iter=40, implicit=False)))(
        x, r0)
    # both differentiate the same fixed point: observed ~1e-9
    np.testing.assert_allclose(g_unr, g_imp, rtol=1e-6, atol=1e-8)


def test_unrolled_gradient_of_a_fixed_number_of_steps(x64):
    """tol = 0: exactly 5 EM steps, a smooth function of x, including the initial M-step."""
    x, r0 = _separated()
    v = jnp.asarray(np.random.default_rng(6).normal(size=x.shape))
    f = _functional("spherical", tol=0.0, max_iter=5, implicit=False)
    g = jax.jit(jax.grad(f, argnums=(0, 1)))(x, r0)
    np.testing.assert_allclose(float(jnp.sum(g[0] * v)), float(_fd(jax.jit(f), x, r0, v)),
                               rtol=1e-7)
    assert float(jnp.max(jnp.abs(g[1]))) > 0  # the start matters after 5 steps


def test_jit_and_vmap(key):
    # the configuration of test_integer_weights_equal_repeated_points (shared compilation)
    x = _synthetic()[::3]
    xs = jnp.asarray(x[None] * (1 + 0.05 * np.random.default_rng(7).uniform(-1, 1, (3, 50, 3))),
                     jnp.float32)
    r0 = jax.nn.one_hot(jnp.arange(50) % 3, 3)

    def fit(x):
        return gmm(x, 3, key=key, init=r0, covariance_type="diag", tol=1e-6, max_iter=30)

    batched = jax.jit(jax.vmap(fit))(xs)
    assert isinstance(batched, GMMResult) and batched.means.shape == (3, 3, 3)
    jitted = jax.jit(fit)
    for i in range(3):
        single = jitted(xs[i])
        item = jax.tree_util.tree_map(lambda t, i=i: t[i], batched)
        # float32, same iterations; differences are reduction order only
        for got in (item,) + ((fit(xs[i]),) if i == 0 else ()):
            np.testing.assert_allclose(got.means, single.means, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got.covariances, single.covariances, rtol=1e-5,
                                       atol=1e-5)
            np.testing.assert_allclose(got.log_likelihood, single.log_likelihood, rtol=1e-5)
            np.testing.assert_array_equal(got.n_iters, single.n_iters)


X = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, 0), {}, "`k`"),
        ((X, 11), {}, "`k`"),
        ((X, 2.0), {}, "`k`"),
        ((X[0], 2), {}, "`x`"),
        ((X.at[0, 0].set(jnp.nan), 2), {}, "`x`.*NaN"),
        ((X.at[3, 1].set(jnp.inf), 2), {}, "`x`.*Inf"),
        ((X, 2), dict(reg_covar=-1e-3), "`reg_covar`"),
        ((X, 2), dict(reg_covar=jnp.asarray(-1.0)), "`reg_covar`"),
        ((X, 2), dict(covariance_type="full_rank"), "`covariance_type`"),
        ((X, 2), dict(max_iter=0), "`max_iter`"),
        ((X, 2), dict(n_init=0), "`n_init`"),
        ((X, 2), dict(tol=-1.0), "`tol`"),
        ((X, 2), dict(init="k-means++"), "`init`"),
        ((X, 2), dict(init=jnp.ones((2, 2))), "`init`.*responsibilities"),
        ((X, 2), dict(init=-jnp.ones((10, 2))), "`init`.*>= 0"),
        ((X, 2), dict(init=(X[:2], jnp.ones((2, 2)), jnp.ones(2) / 2)), "`init covariances`"),
        ((X, 2), dict(init=(X[:2], -jnp.ones((2,)), jnp.ones(2) / 2),
                      covariance_type="spherical"), "`init covariances`.*> 0"),
        ((X, 2), dict(init=(X[:2], jnp.ones((2,)), jnp.ones(2)),
                      covariance_type="spherical"), "`init weights`.*sum to 1"),
        ((X, 2), dict(weights=-jnp.ones(10)), "`weights`.*negative"),
        ((X, 2), dict(weights=jnp.ones(9)), "`weights`"),
        ((X, 2), dict(implicit="yes"), "`implicit`"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmm(*args, key=jax.random.key(0), **kwargs)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, X[:2, :1], jnp.ones(2), jnp.ones(2) / 2), {}, "`means`"),
        ((X, X[:2], jnp.ones(2), jnp.ones(2) / 2), {}, "`covariances`"),
        ((X, X[:2], jnp.asarray([[[1.0, 2.0], [2.0, 1.0]]] * 2), jnp.ones(2) / 2), {},
         "`covariances`.*positive definite"),
        ((X, X[:2], jnp.ones(2), jnp.asarray([1.5, -0.5])), dict(covariance_type="spherical"),
         "`weights`.*negative"),
        ((X, X[:2], jnp.ones(2), jnp.ones(2) / 2), dict(covariance_type="sph"),
         "`covariance_type`"),
    ],
)
def test_log_prob_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmm_log_prob(*args, **kwargs)


def _params_of(ctype, covs):
    return {"full": covs, "tied": covs[0], "diag": np.diagonal(covs, axis1=1, axis2=2),
            "spherical": np.diagonal(covs, axis1=1, axis2=2).mean(1)}[ctype]


@pytest.mark.parametrize("ctype", ["full", "tied", "diag", "spherical"])
def test_step_schedules_agree_and_match_scipy(x64, monkeypatch, ctype):
    """The E- and M-steps form the ``(n, k, d)`` differences in one broadcast (small
    problems) or per component, vectorised over all k or, once ``n k d`` passes
    ``_core.groups.DIFF_ENTRIES``, in groups mapped one after another (``lax.map``; the
    vectorised form is the same per-component function under ``vmap``). The broadcast and
    the grouped schedule (3 + 3 + 1 components: a short last group) give the same log
    densities, M-step parameters and gradients, and the log densities equal SciPy's (an
    independent implementation). The jaxprs are checked to hold the schedule compared (a
    map or not)."""
    from jaxclust._core import groups
    from jaxclust.cluster import mixture

    rng = np.random.default_rng(3)
    n, d, k = 37, 3, 7
    x = jnp.asarray(rng.normal(size=(n, d)))
    means = jnp.asarray(rng.normal(size=(k, d)))
    a = rng.normal(size=(k, d, d))
    covs = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    cov = jnp.asarray(_params_of(ctype, covs))
    resp = jnp.asarray(rng.dirichlet(np.ones(k), size=n))
    sw = jnp.asarray(rng.uniform(0.5, 2.0, size=n))

    def objective(x):  # touches every output of both steps
        m, c, w = mixture._m_step(x, sw, resp, 1e-6, ctype)
        lg = mixture._log_gaussian(x, m, c, ctype)
        return jnp.sum(jnp.tanh(lg)) + jnp.sum(w * jnp.sum(m, 1))

    def run(per_component_points, entries):
        monkeypatch.setattr(mixture, "_PER_COMPONENT_POINTS", per_component_points)
        monkeypatch.setattr(groups, "DIFF_ENTRIES", entries)
        log_g = lambda x: mixture._log_gaussian(x, means, cov, ctype)  # fresh: re-traced
        m_step = lambda x: mixture._m_step(x, sw, resp, 1e-6, ctype)
        jaxprs = str(jax.make_jaxpr(log_g)(x)) + str(jax.make_jaxpr(m_step)(x))
        return (jax.jit(log_g)(x), jax.jit(m_step)(x), jax.jit(jax.grad(objective))(x),
                jaxprs)

    *ref, jaxprs = run(1 << 30, 1 << 30)  # all differences in one broadcast
    assert "scan" not in jaxprs
    *out, jaxprs = run(0, 3 * n * d)  # per component, groups of 3 + 3 + 1
    assert "scan" in jaxprs
    for got, want in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    full_covs = {"full": covs, "tied": np.broadcast_to(covs[0], covs.shape),
                 "diag": np.eye(d) * np.asarray(_params_of("diag", covs))[:, None, :],
                 "spherical": np.eye(d) * np.asarray(_params_of("spherical", covs))[:, None,
                                                                                     None]}
    scipy_lg = np.stack([multivariate_normal(np.asarray(means[j]), full_covs[ctype][j])
                         .logpdf(np.asarray(x)) for j in range(k)], 1)
    for got in (ref[0], out[0]):
        np.testing.assert_allclose(got, scipy_lg, rtol=1e-12)


def test_jitted_fit_never_forms_all_differences_at_once(monkeypatch, key):
    """Memory of a jitted fit and its gradient: O(n k + n d) per group of components, not
    O(n k d). Before, ``jit(gmm)`` at n = 40,000, d = 32, k = 32 held 338 MB of temporaries
    and its implicit gradient 2.8 GB (56 MB and 226 MB now, at the default budget). Here the
    budget is small (one component per group) and the shapes are this test's own, so the
    programs are traced afresh: the fit's temporaries stay below half of one ``(n, k, d)``
    float32 tensor, its gradient's (full covariances) below two (before: 2.1x and 17x at
    these sizes)."""
    from jaxclust._core import groups

    monkeypatch.setattr(groups, "DIFF_ENTRIES", 1 << 14)
    n, d, k = 2053, 32, 24
    x = jax.random.normal(key, (n, d))
    one_tensor = n * k * d * 4
    # full covariances (diag and spherical go through the same grouping, compared with the
    # broadcast schedule in test_step_schedules_agree_and_match_scipy)
    fit = lambda x: gmm(x, k, key=key, covariance_type="full", max_iter=3).log_likelihood
    for fn, bound in ((fit, one_tensor / 2), (jax.grad(fit), 2 * one_tensor)):
        temps = jax.jit(fn).lower(x).compile().memory_analysis().temp_size_in_bytes
        assert temps < bound, (temps, one_tensor)
