"""``kmeans(algorithm="hamerly")``: Lloyd's iterates with Hamerly's distance bounds.

The claim is exactness: the bounds only skip distances that cannot change a label, so every
iterate equals Lloyd's. Checked against jaxclust's own Lloyd (``algorithm="lloyd"``, float32,
labels and iteration counts exactly) and against an independent float64 NumPy Lloyd (the
textbook iteration: nearest centre by squared distance, first index on ties, centres to the
weighted means, scikit-learn's stopping rules), on data with many near-ties (uniform points,
k > 16 lanes), exact ties (integer grid with duplicates), weights and an empty cluster. The
pruning itself is tested on the assignment step: with bounds from an exact pass and unmoved
centres no distance is recomputed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import kmeans
from jaxclust.cluster.hamerly import _assign_pruned
from jaxclust.cluster.lloyd import resolve_algorithm
from tests.utils import enable_x64


def _data(kind, rng):
    if kind == "blobs":
        c = rng.normal(size=(20, 5)) * 3.0
        return c[rng.integers(0, 20, 1500)] + rng.normal(size=(1500, 5)), 20
    if kind == "uniform":  # no structure: labels keep changing, many near-ties
        return rng.random((1000, 3)), 37
    if kind == "grid":  # integer coordinates, duplicated points: exact distance ties
        return rng.integers(0, 6, size=(600, 2)).astype(float), 9
    raise ValueError(kind)


def _np_lloyd(x, w, c, max_iter, tol_abs):
    """Float64 Lloyd: labels, centres, iterations (scikit-learn's rules: stop when the squared
    centre shift is <= tol_abs or the labels repeat; empty clusters do not occur here)."""
    lab_old = None
    for it in range(1, max_iter + 1):  # noqa: B007 (returned)
        d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        lab = np.argmin(d2, axis=1)
        mass = np.bincount(lab, weights=w, minlength=len(c))
        assert np.all(mass > 0)
        new = np.stack([np.bincount(lab, weights=w * x[:, j], minlength=len(c))
                        for j in range(x.shape[1])], 1) / mass[:, None]
        shift = ((new - c) ** 2).sum()
        same = lab_old is not None and np.array_equal(lab, lab_old)
        c, lab_old = new, lab
        if shift <= tol_abs or same:
            break
    lab = np.argmin(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1), axis=1)
    return lab, c, it


@pytest.mark.parametrize("kind", ["blobs", "uniform", "grid"])
def test_iterates_equal_lloyd_float32(kind):
    rng = np.random.default_rng(0)
    x, k = _data(kind, rng)
    x = jnp.asarray(x, jnp.float32)
    w = jnp.asarray(rng.random(len(x)) + 0.5, jnp.float32)
    c0 = x[rng.choice(len(x), k, replace=False)]
    for weights in (None, w):
        kw = dict(key=jax.random.key(0), init=c0, max_iter=60, weights=weights)
        lo = kmeans(x, k, algorithm="lloyd", **kw)
        ha = kmeans(x, k, algorithm="hamerly", **kw)
        np.testing.assert_array_equal(ha.labels, lo.labels)
        assert int(ha.n_iters) == int(lo.n_iters) and bool(ha.converged) == bool(lo.converged)
        np.testing.assert_allclose(ha.centroids, lo.centroids, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(float(ha.inertia), float(lo.inertia), rtol=1e-5)


@pytest.mark.parametrize("kind", ["blobs", "uniform"])
def test_iterates_equal_numpy_lloyd_float64(kind):
    rng = np.random.default_rng(1)
    x, k = _data(kind, rng)
    w = rng.random(len(x)) + 0.5
    c0 = x[rng.choice(len(x), k, replace=False)]
    tol = 1e-4
    tol_abs = tol * np.mean(np.var(x, axis=0))
    lab, c, it = _np_lloyd(x, w, c0, 100, tol_abs)
    with enable_x64():
        res = kmeans(jnp.asarray(x), k, key=jax.random.key(0), init=jnp.asarray(c0),
                     weights=jnp.asarray(w), max_iter=100, tol=tol, algorithm="hamerly")
        np.testing.assert_array_equal(res.labels, lab)
        np.testing.assert_allclose(res.centroids, c, rtol=1e-10, atol=1e-12)
        assert int(res.n_iters) == it
        inertia = np.sum(w * ((x - c[lab]) ** 2).sum(1))
        np.testing.assert_allclose(float(res.inertia), inertia, rtol=1e-10)


def test_empty_cluster_relocated_as_lloyd():
    x = jnp.asarray([[0.0], [0.1], [0.2], [10.0], [10.1]])
    init = jnp.asarray([[0.1], [10.0], [100.0]])  # the third centre attracts no point
    lo = kmeans(x, 3, key=jax.random.key(0), init=init, algorithm="lloyd")
    ha = kmeans(x, 3, key=jax.random.key(0), init=init, algorithm="hamerly")
    np.testing.assert_array_equal(ha.labels, lo.labels)
    np.testing.assert_allclose(ha.centroids, lo.centroids, atol=1e-6)
    assert float(ha.inertia) < 0.05


def test_restarts_jit_vmap_and_gradient_equal_lloyd():
    rng = np.random.default_rng(2)
    x, k = _data("blobs", rng)
    x = jnp.asarray(x[:400], jnp.float32)
    run = lambda alg: kmeans(x, 7, key=jax.random.key(3), n_init=3, algorithm=alg)  # noqa: E731
    np.testing.assert_array_equal(run("hamerly").labels, run("lloyd").labels)
    # jit and vmap over keys
    f = jax.jit(jax.vmap(lambda kk: kmeans(x, 7, key=kk, algorithm="hamerly").labels))
    g = jax.vmap(lambda kk: kmeans(x, 7, key=kk, algorithm="lloyd").labels)
    keys = jax.random.split(jax.random.key(4), 3)
    np.testing.assert_array_equal(f(keys), g(keys))
    # envelope gradient of the inertia: the same as Lloyd's
    grad = lambda alg: jax.grad(  # noqa: E731
        lambda z: kmeans(z, 7, key=jax.random.key(3), algorithm=alg).inertia)(x)
    np.testing.assert_allclose(grad("hamerly"), grad("lloyd"), rtol=1e-5, atol=1e-5)


def test_progress_callback_once_per_iteration():
    seen = []
    x = jnp.asarray(_data("blobs", np.random.default_rng(3))[0][:300], jnp.float32)
    res = kmeans(x, 5, key=jax.random.key(0), algorithm="hamerly",
                 callback=lambda it, err: seen.append(int(it)))
    jax.effects_barrier()
    assert seen == list(range(1, int(res.n_iters) + 1))


def test_unmoved_centres_recompute_nothing():
    """The pruning itself: bounds from an exact pass, the same centres again -> no distance
    is recomputed except for points whose two nearest centres tie within rounding."""
    rng = np.random.default_rng(4)
    x, k = _data("blobs", rng)
    x = jnp.asarray(x, jnp.float32)
    c = x[:k]
    x_sq = jnp.sum(x * x, axis=1)
    slack = 1e-5 * (x_sq + jnp.max(jnp.sum(c * c, 1)))
    n = x.shape[0]
    lab0 = jnp.full((n,), -1, jnp.int32)
    up0, lo0 = jnp.full((n,), jnp.inf), jnp.zeros((n,))
    lab, up, lo, count = _assign_pruned(x, x_sq, c, lab0, up0, lo0, 256, slack)
    assert int(count) == n
    d = np.sqrt(((np.asarray(x)[:, None] - np.asarray(c)[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(lab, np.argmin(d, 1))
    srt = np.sort(d, 1)
    assert np.all(np.asarray(up) >= srt[:, 0] - 1e-4) and np.all(np.asarray(lo) <= srt[:, 1] + 1e-4)
    lab2, _, _, count2 = _assign_pruned(x, x_sq, c, lab, up, lo, 256, slack)
    np.testing.assert_array_equal(lab2, lab)
    assert int(count2) <= n // 100, int(count2)


def test_algorithm_option():
    # n * k >= 2**22, k * d >= 2**11, max_iter >= 10, Euclidean
    assert resolve_algorithm("auto", 1 << 16, 64, 32, False, 300) == "hamerly"
    assert resolve_algorithm("auto", 1 << 16, 63, 2048, False, 300) == "lloyd"
    assert resolve_algorithm("auto", 1 << 16, 64, 2048, True, 300) == "lloyd"
    assert resolve_algorithm("auto", 1 << 16, 64, 2048, False, 9) == "lloyd"
    assert resolve_algorithm("auto", 1 << 16, 64, 16, False, 300) == "lloyd"
    assert resolve_algorithm("lloyd", 1 << 16, 64, 2048, False, 300) == "lloyd"
    assert resolve_algorithm("hamerly", 10, 2, 2, False, 300) == "hamerly"
    x = jnp.ones((10, 2))
    with pytest.raises(ValueError, match="`algorithm` must be 'auto', 'lloyd' or 'hamerly'"):
        kmeans(x, 2, key=jax.random.key(0), algorithm="elkan")
    with pytest.raises(ValueError, match="`algorithm`='hamerly' .* spherical"):
        kmeans(x, 2, key=jax.random.key(0), algorithm="hamerly", spherical=True)


def test_sklearn_estimator_algorithm_names():
    """scikit-learn's names: 'elkan' runs the bound-pruned iterations (the same labels as
    'lloyd'); an unknown name is a ValueError naming `algorithm`."""
    from jaxclust.sklearn import KMeans

    x, k = _data("blobs", np.random.default_rng(5))
    x = x[:300].astype(np.float32)
    fits = {a: KMeans(6, random_state=0, algorithm=a).fit(x) for a in ("lloyd", "elkan")}
    np.testing.assert_array_equal(fits["elkan"].labels_, fits["lloyd"].labels_)
    assert fits["elkan"].n_iter_ == fits["lloyd"].n_iter_
    with pytest.raises(ValueError, match="`algorithm` must be 'lloyd', 'elkan'"):
        KMeans(3, algorithm="full").fit(x)
