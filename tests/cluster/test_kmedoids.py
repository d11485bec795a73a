"""k-medoids against the `kmedoids` package (Rust FasterPAM, PAM and BUILD from the same
initial medoids), brute force on tiny problems, weights, metrics, jit/vmap/grad and bad
input."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import load_iris, load_wine
from sklearn.preprocessing import StandardScaler

from jaxclust.cluster.medoids import kmedoids, pam_build

pkg = pytest.importorskip("kmedoids")  # GPL, test-only oracle


def _blobs(rng, n, k, d=3, spread=3.0):
    """Gaussian blobs (continuous: no exact distance ties)."""
    centres = rng.normal(size=(k, d)) * spread
    return centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))


def _standardised(loader):
    return StandardScaler().fit_transform(loader().data)


def _loss(dmat, medoids, w=None):
    """Independent loss: weighted distance of every point to its nearest medoid."""
    near = dmat[:, medoids].min(axis=1)
    return float(np.sum(near if w is None else w * near))


def _swap_deltas(dmat, medoids, w=None):
    """All single-swap loss changes by brute force (numpy), shape (n, k)."""
    n = len(dmat)
    base = _loss(dmat, medoids, w)
    out = np.full((n, len(medoids)), np.inf)
    for j in set(range(n)) - set(medoids.tolist()):
        for b in range(len(medoids)):
            m = medoids.copy()
            m[b] = j
            out[j, b] = _loss(dmat, m, w) - base
    return out


# ----------------------------------------------------------------------------- FasterPAM
# Most tests share n = 40, k = 3 in float64: the swap search compiles once for all of them.
def _problem(seed, n=40, k=3, spread=3.0):
    rng = np.random.default_rng(seed)
    x = _blobs(rng, n, k, spread=spread)
    return x, cdist(x, x), rng.choice(n, k, replace=False)


@pytest.mark.parametrize("n, k", [(40, 3), (120, 6), pytest.param(200, 12, marks=pytest.mark.slow)])
def test_fasterpam_matches_package_from_same_init(x64, n, k):
    for seed, spread in [(0, 3.0), (1, 1.0), (2, 0.0)]:  # 0: one Gaussian cloud
        _, dmat, init = _problem(seed, n, k, spread)
        ref = pkg.fasterpam(dmat, init.copy(), max_iter=100, n_cpu=1)
        res = kmedoids(jnp.asarray(dmat), k, metric="precomputed", init=jnp.asarray(init))
        # float64: the two sum n terms in different orders; they agree to ~1e-15
        np.testing.assert_allclose(float(res.loss), ref.loss, rtol=1e-9)
        # same visiting order (0..n-1 cyclically, stop at the last swap): same swaps
        np.testing.assert_array_equal(res.medoids, ref.medoids)
        np.testing.assert_array_equal(res.labels, ref.labels)
        assert int(res.n_iters) == ref.n_iter and int(res.n_swaps) == ref.n_swap
        assert bool(res.converged)
        assert _swap_deltas(dmat, np.asarray(res.medoids)).min() >= -1e-9  # local optimum


def test_fasterpam_float32_matches_package():
    x, _, init = _problem(3, 120, 6)
    dmat = cdist(x, x).astype(np.float32)
    ref = pkg.fasterpam(dmat, init.copy(), n_cpu=1)
    res = jax.jit(lambda d, m: kmedoids(d, 6, metric="precomputed", init=m))(
        jnp.asarray(dmat), jnp.asarray(init))
    # float32 sums of 120 distances ~ 1e2: rounding ~1e-6 relative
    np.testing.assert_allclose(float(res.loss), ref.loss, rtol=1e-5)
    np.testing.assert_array_equal(res.medoids, ref.medoids)


@pytest.mark.parametrize("loader, k", [(load_iris, 3),
                                       pytest.param(load_wine, 4, marks=pytest.mark.slow)])
def test_real_data_matches_package_build_and_random_init(x64, loader, k):
    x = _standardised(loader)
    dmat = cdist(x, x)
    # our Euclidean distances come from the points (|x|^2 + |y|^2 - 2 x.y): same swaps
    ref = pkg.fasterpam(dmat, k, init="build", n_cpu=1)
    res = kmedoids(jnp.asarray(x), k)  # init="build", metric="euclidean"
    np.testing.assert_allclose(float(res.loss), ref.loss, rtol=1e-9)
    np.testing.assert_array_equal(res.medoids, ref.medoids)
    init = np.random.default_rng(0).choice(len(x), k, replace=False)
    ref = pkg.fasterpam(dmat, init.copy(), n_cpu=1)
    res = kmedoids(jnp.asarray(x), k, init=jnp.asarray(init))
    np.testing.assert_allclose(float(res.loss), ref.loss, rtol=1e-9)
    np.testing.assert_array_equal(res.medoids, ref.medoids)


# ----------------------------------------------------------------------------- BUILD, PAM
@pytest.mark.parametrize("n, k, seed, spread", [(40, 3, 0, 3.0), (120, 6, 1, 0.0),
                                                (80, 1, 2, 1.0)])
def test_build_matches_package(x64, n, k, seed, spread):
    _, dmat, _ = _problem(seed, n, max(k, 2), spread)
    ref = pkg.pam_build(dmat, k)
    got = pam_build(jnp.asarray(dmat), k, metric="precomputed")
    np.testing.assert_array_equal(got, ref.medoids)  # same medoids, same order
    np.testing.assert_allclose(_loss(dmat, np.asarray(got)), ref.loss, rtol=1e-12)


@pytest.mark.parametrize("loader, k", [(load_iris, 5), (load_wine, 3)])
def test_build_matches_package_on_real_data(x64, loader, k):
    x = _standardised(loader)
    ref = pkg.pam_build(cdist(x, x), k)
    np.testing.assert_array_equal(pam_build(jnp.asarray(x), k), ref.medoids)


def test_weighted_build_matches_numpy_greedy(x64, rng):
    _, dmat, _ = _problem(4)
    w = rng.uniform(0.1, 2.0, 40)
    chosen = [int(np.argmin(dmat @ w))]
    for _ in range(3):  # the greedy rule written out: largest weighted loss decrease
        dn = dmat[:, chosen].min(axis=1)
        gain = np.array([np.sum(w * np.minimum(dmat[:, i] - dn, 0.0)) for i in range(40)])
        gain[chosen] = np.inf
        chosen.append(int(np.argmin(gain)))
    got = pam_build(jnp.asarray(dmat), 4, metric="precomputed", weights=jnp.asarray(w))
    np.testing.assert_array_equal(got, chosen)


def test_pam_matches_package_pam(x64):
    for seed in (0, 1):
        _, dmat, init = _problem(seed, spread=1.5)
        ref = pkg.pam(dmat, init.copy(), max_iter=100)
        res = kmedoids(jnp.asarray(dmat), 3, metric="precomputed", method="pam",
                       init=jnp.asarray(init))
        np.testing.assert_allclose(float(res.loss), ref.loss, rtol=1e-9)
        np.testing.assert_array_equal(res.medoids, ref.medoids)
        assert int(res.n_iters) == ref.n_iter and int(res.n_swaps) == ref.n_swap
        assert _swap_deltas(dmat, np.asarray(res.medoids)).min() >= -1e-9


# ----------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("method, k", [("fasterpam", 2), ("fasterpam", 3),
                                       pytest.param("pam", 2, marks=pytest.mark.slow)])
def test_tiny_problems_against_exhaustive_search(x64, method, k):
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(8, 2))
        dmat = cdist(x, x)
        best = min(_loss(dmat, np.array(m)) for m in itertools.combinations(range(8), k))
        for init in ("build", jnp.asarray(rng.choice(8, k, replace=False))):
            res = kmedoids(jnp.asarray(dmat), k, metric="precomputed", method=method,
                           init=init)
            med = np.asarray(res.medoids)
            assert float(res.loss) >= best - 1e-12  # PAM is a local search
            np.testing.assert_allclose(float(res.loss), _loss(dmat, med), rtol=1e-12)
            assert _swap_deltas(dmat, med).min() >= -1e-12  # no single swap improves


# ----------------------------------------------------------------------------- options
def test_weights(x64, rng):
    x, dmat, _ = _problem(5, spread=1.0)
    w = rng.integers(1, 4, 40).astype(float)
    res = kmedoids(jnp.asarray(x), 3, weights=jnp.asarray(w))
    med = np.asarray(res.medoids)
    np.testing.assert_allclose(float(res.loss), _loss(dmat, med, w), rtol=1e-9)
    assert _swap_deltas(dmat, med, w).min() >= -1e-9  # local optimum of the weighted loss
    ones = kmedoids(jnp.asarray(x), 3, weights=jnp.ones(40))
    plain = kmedoids(jnp.asarray(x), 3)
    np.testing.assert_array_equal(ones.medoids, plain.medoids)
    np.testing.assert_allclose(ones.loss, plain.loss, rtol=1e-12)


@pytest.mark.parametrize("metric, scipy_metric",
                         [("sqeuclidean", "sqeuclidean"), ("manhattan", "cityblock"),
                          ("cosine", "cosine")])
def test_metrics_match_precomputed_and_package(x64, metric, scipy_metric):
    x, _, _ = _problem(6)
    x = x + 5.0  # off the origin: cosine has structure
    dmat = cdist(x, x, scipy_metric)
    a = kmedoids(jnp.asarray(x), 3, metric=metric)
    b = kmedoids(jnp.asarray(dmat), 3, metric="precomputed")
    np.testing.assert_array_equal(a.medoids, b.medoids)
    np.testing.assert_allclose(float(a.loss), float(b.loss), rtol=1e-9)
    ref = pkg.fasterpam(dmat, 3, init="build", n_cpu=1)
    np.testing.assert_allclose(float(a.loss), ref.loss, rtol=1e-9)
    np.testing.assert_array_equal(a.medoids, ref.medoids)


def test_diagonal_is_ignored(x64, rng):
    _, dmat, given = _problem(7, spread=1.0)
    noisy = dmat + np.diag(rng.uniform(1.0, 5.0, 40))
    for init in ("build", jnp.asarray(given)):
        a = kmedoids(jnp.asarray(dmat), 3, metric="precomputed", init=init)
        b = kmedoids(jnp.asarray(noisy), 3, metric="precomputed", init=init)
        np.testing.assert_array_equal(a.medoids, b.medoids)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)


def test_random_init(x64):
    x, dmat, _ = _problem(8, spread=1.0)
    a = kmedoids(jnp.asarray(x), 3, init="random", key=jax.random.key(1))
    b = kmedoids(jnp.asarray(x), 3, init="random", key=jax.random.key(1))
    np.testing.assert_array_equal(a.medoids, b.medoids)  # same key, same result
    med = np.asarray(a.medoids)
    assert len(set(med.tolist())) == 3
    np.testing.assert_array_equal(a.labels, np.argmin(dmat[:, med], axis=1))
    assert _swap_deltas(dmat, med).min() >= -1e-9


def test_max_iter_limits_passes(x64):
    _, dmat, init = _problem(1, spread=1.0)
    d, m = jnp.asarray(dmat), jnp.asarray(init)
    full = kmedoids(d, 3, metric="precomputed", init=m)
    assert int(full.n_iters) > 1 and bool(full.converged)
    one = kmedoids(d, 3, metric="precomputed", init=m, max_iter=1)
    assert int(one.n_iters) == 1 and not bool(one.converged)
    assert float(one.loss) > float(full.loss)


def test_k_equals_one_and_n():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(12, 2)), jnp.float32)
    dmat = cdist(np.asarray(x), np.asarray(x))
    one = kmedoids(x, 1, init=jnp.asarray([5]))
    assert int(one.medoids[0]) == int(np.argmin(dmat.sum(axis=1)))
    assert np.all(np.asarray(one.labels) == 0)
    full = kmedoids(x, 12)
    assert sorted(np.asarray(full.medoids).tolist()) == list(range(12))
    assert float(full.loss) == 0.0
    np.testing.assert_array_equal(np.asarray(full.medoids)[np.asarray(full.labels)],
                                  np.arange(12))


# ----------------------------------------------------------------------------- transforms
def _batch(rng):
    xs = [_blobs(rng, 30, 3, spread=1.5) for _ in range(3)]
    return jnp.asarray(np.stack([cdist(x, x) for x in xs]), jnp.float32)


def _assert_batch_matches(batched, single, ds):
    for i in range(ds.shape[0]):
        r = single(ds[i])
        np.testing.assert_array_equal(batched.medoids[i], r.medoids)
        np.testing.assert_array_equal(batched.labels[i], r.labels)
        assert int(batched.n_swaps[i]) == int(r.n_swaps)
        # float32: the loss sums 30 distances, batched or not (same order; 1e-6 is slack)
        np.testing.assert_allclose(batched.loss[i], r.loss, rtol=1e-6)


@pytest.mark.slow  # in make test-all: the fast suite stays under 8 min
def test_jit_and_vmap_over_dissimilarity_matrices_without_retracing(rng):
    ds = _batch(rng)
    traces = []

    def f(d):
        traces.append(1)
        return kmedoids(d, 3, metric="precomputed", init=jnp.asarray([0, 1, 2]))

    _assert_batch_matches(jax.vmap(f)(ds), jax.jit(f), ds)
    assert len(traces) == 2  # one trace for vmap, one for jit: none per call


@pytest.mark.slow  # compiles the PAM search twice more (batched and not)
def test_vmap_pam(rng):
    ds = _batch(rng)
    f = lambda d: kmedoids(d, 3, metric="precomputed", method="pam")  # noqa: E731
    _assert_batch_matches(jax.vmap(f)(ds), f, ds)


def test_loss_gradient_at_fixed_medoids(x64, rng):
    x, _, _ = _problem(5, spread=1.0)
    x, w = jnp.asarray(x), jnp.asarray(rng.uniform(0.5, 1.5, 40))
    res = kmedoids(x, 3, weights=w)
    med, lab = res.medoids, res.labels

    def fixed(x, w):  # the same loss with the medoids held fixed, written out
        diff = x - x[med[lab]]
        return jnp.sum(w * jnp.sqrt(jnp.sum(diff * diff, axis=1) + 1e-300))

    gx, gw = jax.grad(lambda x, w: kmedoids(x, 3, weights=w).loss, argnums=(0, 1))(x, w)
    ex, ew = jax.grad(fixed, argnums=(0, 1))(x, w)
    np.testing.assert_allclose(gx, ex, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(gw, ew, rtol=1e-9, atol=1e-12)
    v = jnp.asarray(rng.normal(size=x.shape))
    h = 1e-5
    fd = (kmedoids(x + h * v, 3, weights=w).loss - kmedoids(x - h * v, 3, weights=w).loss) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(gx * v)), float(fd), rtol=1e-6)


# ----------------------------------------------------------------------------- bad input
X = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)
DX = jnp.asarray(cdist(np.asarray(X), np.asarray(X)), jnp.float32)
PRE = dict(metric="precomputed")


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, 0), {}, "`k`"),
        ((X, 11), {}, "`k`"),
        ((X, 2.0), {}, "`k`"),
        ((X[0], 2), {}, "`x`"),
        ((X, 2), PRE, "`x` must be a square"),
        ((DX[:, :9], 2), PRE, "`x` must be a square"),
        ((X.at[0, 0].set(jnp.nan), 2), {}, "`x`.*NaN"),
        ((DX.at[1, 2].set(jnp.inf), 2), PRE, "`x`.*NaN or Inf"),
        ((DX.at[1, 2].set(jnp.nan), 2), PRE, "`x`.*NaN or Inf"),
        ((DX.at[1, 2].set(-1.0), 2), PRE, "`x`.*negative"),
        ((X, 2), dict(weights=-jnp.ones(10)), "`weights`.*negative"),
        ((X, 2), dict(weights=jnp.ones(9)), "`weights`"),
        ((X, 2), dict(weights=jnp.zeros(10)), "`weights` sums to 0"),
        ((X, 2), dict(weights=jnp.ones(10).at[0].set(jnp.nan)), "`weights`.*NaN"),
        ((X, 2), dict(init=jnp.asarray([0, 1, 2])), "`init`.*shape"),
        ((X, 2), dict(init=jnp.asarray([0.0, 1.0])), "`init`.*integer"),
        ((X, 2), dict(init=jnp.asarray([0, 10])), "`init`.*outside"),
        ((X, 2), dict(init=jnp.asarray([3, 3])), "`init`.*repeated"),
        ((X, 2), dict(init="kmeans++"), "`init`"),
        ((X, 2), dict(init="random"), "`key`"),
        ((X, 2), dict(method="clara"), "`method`"),
        ((X, 2), dict(metric="chebyshev"), "`metric`"),
        ((X, 2), dict(max_iter=0), "`max_iter`"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kmedoids(*args, **kwargs)


def test_bad_values_raise_under_jit():
    f = jax.jit(lambda d: kmedoids(d, 2, metric="precomputed").medoids)
    with pytest.raises(Exception, match="NaN or Inf"):
        jax.block_until_ready(f(DX.at[1, 2].set(jnp.nan)))
    with pytest.raises(Exception, match="negative"):
        jax.block_until_ready(f(DX.at[1, 2].set(-1.0)))


def test_pam_build_bad_input():
    with pytest.raises(ValueError, match="`k`"):
        pam_build(X, 0)
    with pytest.raises(ValueError, match="`x` must be a square"):
        pam_build(X, 2, metric="precomputed")
