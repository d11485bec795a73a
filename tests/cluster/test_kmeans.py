"""k-means against scikit-learn (shared initialisation and best-of-10), determinism, empty
clusters, weights, chunking, jit/vmap and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris, load_wine, make_blobs
from sklearn.preprocessing import StandardScaler

from jaxclust.cluster import kmeans, kmeans_plusplus


def _standardised(loader):
    return StandardScaler().fit_transform(loader().data).astype(np.float32)


@pytest.mark.parametrize("loader, k", [(load_iris, 3), (load_wine, 4)])
def test_shared_init_matches_sklearn_lloyd(loader, k):
    x = _standardised(loader)
    c0 = x[np.random.default_rng(0).choice(len(x), k, replace=False)]
    ref = KMeans(k, init=c0, n_init=1, algorithm="lloyd", tol=1e-4).fit(x)
    res = kmeans(jnp.asarray(x), k, key=jax.random.key(0), init=jnp.asarray(c0))
    # float32 sums over <= 200 points: inertia to ~1e-6 relative; 1e-5 is the bar
    np.testing.assert_allclose(float(res.inertia), ref.inertia_, rtol=1e-5)
    np.testing.assert_allclose(res.centroids, ref.cluster_centers_, atol=1e-4)
    np.testing.assert_array_equal(res.labels, ref.labels_)
    assert int(res.n_iters) == ref.n_iter_ and bool(res.converged)


@pytest.mark.slow  # in make test-all: the fast suite stays under 8 min
def test_kmeanspp_best_of_10_within_one_percent_of_sklearn():
    x = _standardised(load_wine)
    ref = KMeans(3, n_init=10, algorithm="lloyd", random_state=0).fit(x)
    res = kmeans(jnp.asarray(x), 3, key=jax.random.key(0), n_init=10)
    assert float(res.inertia) <= 1.01 * ref.inertia_


def test_same_key_same_result_and_restarts_help():
    x = jax.random.normal(jax.random.key(0), (200, 3))
    r1 = kmeans(x, 6, key=jax.random.key(5), n_init=4)
    r2 = kmeans(x, 6, key=jax.random.key(5), n_init=4)
    np.testing.assert_array_equal(r1.centroids, r2.centroids)
    # the restarts that n_init=4 runs: k-means++ from each key of split(key, 4), then Lloyd
    # (kmeans(x, 6, key=k) would seed from split(k, 1)[0]: other restarts, whose best may be
    # lower by chance, as it is after the seeding's random stream changed)
    runs = [float(kmeans(x, 6, key=k, init=kmeans_plusplus(x, 6, key=k)).inertia)
            for k in jax.random.split(jax.random.key(5), 4)]
    assert float(r1.inertia) <= min(runs) * (1 + 1e-6)


def test_empty_cluster_is_relocated_not_nan():
    # the third centre attracts no point; 10.3 is the point farthest from its centre (0.09;
    # the others 0.01 or 0: no tie for the rounding to break)
    x = jnp.asarray([[0.0], [0.1], [0.2], [10.0], [10.3]])
    init = jnp.asarray([[0.1], [10.0], [100.0]])
    res = kmeans(x, 3, key=jax.random.key(0), init=init)
    assert np.all(np.isfinite(res.centroids))
    assert sorted(np.bincount(np.asarray(res.labels), minlength=3).tolist())[0] >= 1
    assert float(res.inertia) < 0.05
    # eager on CPU this ran the quick-compile program, whose labels were once 2**31 - 1 for
    # the point 0.2 (the row minimum and the index equal to it were recomputed with
    # different roundings); the empty cluster goes to the farthest point, 10.3
    np.testing.assert_array_equal(res.labels, [0, 0, 0, 1, 2])
    assert int(res.n_iters) < 10 and bool(res.converged)


@pytest.mark.parametrize("d, k", [(1, 3), (1, 8), (1, 17), (1, 100), (2, 40), (3, 5), (8, 40)])
def test_nearest_centre_is_the_first_minimum_in_both_compile_flavours(d, k):
    """The assignment's labels equal NumPy's first-index argmin of the squared distances,
    in the default program and in the quick-compile one (classic emitters, LLVM -O0) used
    for eager calls of small problems. Two centres are repeated, so exact ties occur and
    must go to the lower index. (Before the fix, d = 1 gave labels 2**31 - 1 in the quick
    flavour on an AMD EPYC.)"""
    from jaxclust._core import programs
    from jaxclust.cluster.lloyd import _nearest

    rng = np.random.default_rng(d * 100 + k)
    x = rng.normal(size=(300, d)).astype(np.float32)
    c = np.concatenate([x[:k - 2] + 0.01, x[:1] + 0.01, x[1:2] + 0.01])  # repeated: ties
    d2 = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    expected = np.argmin(d2, axis=1)  # the first index on ties
    fn = lambda x, c: _nearest(x, c, jnp.sum(c * c, axis=1), False)[0]  # noqa: E731
    for flavour in (jax.jit(fn), jax.jit(fn, compiler_options=dict(programs._options))):
        lab = np.asarray(flavour(jax.device_put(x), jax.device_put(c)))
        np.testing.assert_array_equal(lab, expected)


def test_weights_equal_repeated_points():
    x = jax.random.normal(jax.random.key(1), (40, 2))
    rep = jnp.asarray(np.r_[np.ones(20, int) * 2, np.ones(20, int)])
    xr = jnp.repeat(x, rep, axis=0)
    init = x[:3]
    rw = kmeans(x, 3, key=jax.random.key(0), init=init, weights=rep.astype(jnp.float32))
    rr = kmeans(xr, 3, key=jax.random.key(0), init=init)
    np.testing.assert_allclose(rw.centroids, rr.centroids, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rw.inertia, rr.inertia, rtol=1e-5)


def test_chunked_assignment_is_identical():
    x = jax.random.normal(jax.random.key(2), (103, 4))
    a = kmeans(x, 5, key=jax.random.key(0))
    b = kmeans(x, 5, key=jax.random.key(0), chunk_size=16)  # 16 does not divide 103
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # the conformance case "kmeans" checks jit and vmap in the fast suite
def test_jit_and_vmap_over_keys():
    x = jax.random.normal(jax.random.key(3), (60, 2))
    f = jax.jit(lambda kk: kmeans(x, 4, key=kk))
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(lambda kk: kmeans(x, 4, key=kk))(keys)
    for i in range(3):
        single = f(keys[i])
        np.testing.assert_allclose(batched.inertia[i], single.inertia, rtol=1e-6)
        np.testing.assert_array_equal(batched.labels[i], single.labels)


def test_kmeanspp_returns_distinct_data_points():
    x = jax.random.normal(jax.random.key(4), (30, 2))
    c = np.asarray(kmeans_plusplus(x, 5, key=jax.random.key(0)))
    assert len({tuple(r) for r in c}) == 5
    assert all(np.any(np.all(np.asarray(x) == r, axis=1)) for r in c)


X = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, 0), {}, "`k`"),
        ((X, 11), {}, "`k`"),
        ((X[0], 2), {}, "`x`"),
        ((X.at[0, 0].set(jnp.nan), 2), {}, "`x`.*NaN"),
        ((X, 2), dict(weights=-jnp.ones(10)), "`weights`.*negative"),
        ((X, 2), dict(weights=jnp.ones(9)), "`weights`"),
        ((X, 2), dict(init=jnp.zeros((3, 2))), "`init`"),
        ((X, 2), dict(init="kmeans"), "`init`"),
        ((X, 2), dict(max_iter=0), "`max_iter`"),
        ((X, 2), dict(n_init=0), "`n_init`"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kmeans(*args, key=jax.random.key(0), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name, k", [("iris", 3), ("wine", 3), ("breast_cancer", 2),
                                     ("digits", 10)])
def test_best_of_10_within_one_percent_on_four_datasets(name, k):
    # issue 3, acceptance 1: measured 0.0% (iris, wine, breast cancer) and 0.03-0.5% (digits,
    # 5 keys) above scikit-learn's best of 10; two sklearn seeds differ by up to 0.73% there
    from sklearn import datasets

    x = _standardised(getattr(datasets, f"load_{name}"))
    ref = KMeans(k, n_init=10, algorithm="lloyd", random_state=0).fit(x)
    res = kmeans(jnp.asarray(x), k, key=jax.random.key(0), n_init=10)
    assert float(res.inertia) <= 1.01 * ref.inertia_


def _far_blobs(offset):
    """20 blobs of 5,000 points in 8-d (scikit-learn's make_blobs), moved by ``offset``."""
    x, _ = make_blobs(5000, n_features=8, centers=20, cluster_std=1.0, random_state=0)
    return (x + offset).astype(np.float32)


@pytest.mark.parametrize("algorithm", ["lloyd", "hamerly"])
def test_points_far_from_the_origin_equal_sklearn(algorithm):
    """Distances are ``|x|^2 - 2 <x, c> + |c|^2`` (one matrix product): in float32 with
    coordinates near 1e4 the terms are ~1e9 and round by ~1e2, more than the gaps between
    nearby blobs. Before the iterations ran around the points' mean, the same init gave
    40 (offset 1e3) and 1,025 (offset 1e4) of 5,000 labels other than the float64 argmin for
    the returned centres, and an inertia 2x the true one at 1e4. scikit-learn centres the
    data (its ``KMeans`` subtracts the mean before Lloyd): same labels and inertia here."""
    for offset in (1e3, 1e4):
        x = _far_blobs(offset)
        c0 = x[np.random.default_rng(1).choice(len(x), 20, replace=False)]
        res = kmeans(jnp.asarray(x), 20, key=jax.random.key(0), init=jnp.asarray(c0),
                     max_iter=50, tol=0.0, algorithm=algorithm)
        sk = KMeans(20, init=c0, n_init=1, max_iter=50, tol=0.0, algorithm="lloyd").fit(x)
        np.testing.assert_array_equal(res.labels, sk.labels_)
        c = np.asarray(res.centroids, np.float64)
        d2 = ((x.astype(np.float64)[:, None] - c[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(res.labels, d2.argmin(1))  # the exact nearest centre
        np.testing.assert_allclose(float(res.inertia), d2.min(1).sum(), rtol=1e-5)
        np.testing.assert_allclose(float(res.inertia), sk.inertia_, rtol=1e-5)
        np.testing.assert_allclose(res.centroids, sk.cluster_centers_, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("algorithm,chunk_size", [("lloyd", None), ("lloyd", 8192),
                                                  ("hamerly", None)])
def test_large_clusters_far_from_the_origin_have_their_float64_means(algorithm, chunk_size):
    """The centre update sums the points around their mean, not as given: 40,000 float32
    points per cluster near 1e4 sum to ~4e8, where float32's spacing is 32, and their
    running sum loses the cluster's spread (summed as given, Lloyd's centres here were 3.7
    off the float64 means of their own labels, the inertia 9x the true one). Each
    returned centre is the float64 mean of the points with its label, and the inertia their
    float64 sum of squares."""
    x, y = make_blobs(120_000, n_features=4, centers=3, random_state=0)
    x = (x + 1e4).astype(np.float32)
    x64 = x.astype(np.float64)
    c0 = np.stack([x64[y == j].mean(0) for j in range(3)]).astype(np.float32) + 0.5
    res = kmeans(jnp.asarray(x), 3, key=jax.random.key(0), init=jnp.asarray(c0),
                 max_iter=50, algorithm=algorithm, chunk_size=chunk_size)
    lab = np.asarray(res.labels)
    means = np.stack([x64[lab == j].mean(0) for j in range(3)])
    np.testing.assert_allclose(np.asarray(res.centroids, np.float64), means, rtol=0, atol=2e-3)
    true = ((x64 - means[lab]) ** 2).sum()
    np.testing.assert_allclose(float(res.inertia), true, rtol=1e-5)


def test_seeding_in_row_blocks_equals_one_block(monkeypatch):
    """k-means++ moves ``x`` to its mean one block of rows at a time (about 2^18 entries);
    the last block overlaps the one before (no padding copy). With blocks of 700 rows (8
    blocks over 4,999 points, the last one overlapping) the draws equal the single-block
    ones, and under ``vmap`` each problem's draws equal its own call's."""
    import jaxclust.cluster.lloyd as lloyd

    x = jnp.asarray(_far_blobs(1e4)[:4999])
    key = jax.random.key(5)
    one = kmeans_plusplus(x, 20, key=key)
    jax.clear_caches()
    monkeypatch.setattr(lloyd, "_SEED_BLOCK", 700 * 8)
    blocks = kmeans_plusplus(x, 20, key=key)
    # batched (vmap) in blocks: each problem's draws as alone
    xs = jnp.stack([x, x[::-1] - 5.0])
    keys = jax.random.split(key)
    both = jax.vmap(lambda xi, ki: kmeans_plusplus(xi, 20, key=ki))(xs, keys)
    alone = [kmeans_plusplus(xi, 20, key=ki) for xi, ki in zip(xs, keys)]
    jax.clear_caches()
    np.testing.assert_array_equal(blocks, one)
    np.testing.assert_array_equal(both, jnp.stack(alone))


def test_seeding_prediction_and_soft_kmeans_far_from_the_origin():
    """The k-means family away from 0: k-means++ and soft k-means are translation
    equivariant, so moving the points by 1e4 moves their results by 1e4 (same draws, same
    labels, same energy); ``kmeans_predict`` and ``minibatch_kmeans``' labels are the float64
    nearest centres. Before the shift to the points' (or centres') mean, soft k-means' energy
    at offset 1e4 was 4.4x the one at 0 and its labels agreed with ARI 0.94."""
    from sklearn.metrics import adjusted_rand_score

    from jaxclust.cluster import kmeans_predict, minibatch_kmeans, soft_kmeans

    key = jax.random.key(3)
    # x0 is x1 moved back exactly (float32 values near 1e4, minus 1e4, are exact): the two
    # clouds are translates of each other. float32(x + 1e4) - 1e4 and float32(x) would
    # differ by up to 5e-4 per coordinate, enough to change a draw of k-means++
    x1 = _far_blobs(1e4)
    x0, x1 = jnp.asarray(x1 - np.float32(1e4)), jnp.asarray(x1)
    s0 = kmeans_plusplus(x0, 20, key=key)
    s1 = kmeans_plusplus(x1, 20, key=key)
    np.testing.assert_allclose(s1 - 1e4, s0, atol=2e-3)  # the same rows drawn
    r0 = soft_kmeans(x0, 20, temperature=1.0, key=key)
    r1 = soft_kmeans(x1, 20, temperature=1.0, key=key)
    np.testing.assert_array_equal(r1.labels, r0.labels)
    np.testing.assert_allclose(float(r1.energy), float(r0.energy), rtol=1e-4)
    np.testing.assert_allclose(r1.centroids - 1e4, r0.centroids, atol=5e-3)
    lab, dist = kmeans_predict(x1, s1)
    c = np.asarray(s1, np.float64)
    d2 = ((np.asarray(x1, np.float64)[:, None] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(lab, d2.argmin(1))
    np.testing.assert_allclose(dist, d2.min(1), rtol=1e-3, atol=1e-2)
    mb = minibatch_kmeans(x1, 20, key=key)
    c = np.asarray(mb.centroids, np.float64)
    d2 = ((np.asarray(x1, np.float64)[:, None] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(mb.labels, d2.argmin(1))
    ref = minibatch_kmeans(x0, 20, key=key)
    assert adjusted_rand_score(np.asarray(ref.labels), np.asarray(mb.labels)) > 0.99
