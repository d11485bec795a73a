"""Spectral clustering against scikit-learn (affinities, embedding subspace, labels) and SciPy
(Laplacian eigenvalues); isolated nodes; gradients vs finite differences; jit/vmap; bad input.

Every call of `spectral` is jitted once per shape: eagerly, the k-means inside re-compiles
its loops on every call."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.sparse.csgraph import laplacian as csgraph_laplacian
from sklearn.cluster import SpectralClustering
from sklearn.datasets import load_iris, make_circles, make_moons
from sklearn.manifold import spectral_embedding
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.neighbors import kneighbors_graph

from jaxclust.cluster.spectral_clustering import affinity_matrix, spectral


@functools.partial(jax.jit, static_argnames=("k", "n_components"))
def _precomputed(w, k, n_components=None):
    return spectral(w, k, key=jax.random.key(0), affinity="precomputed",
                    n_components=n_components)


def _sk_knn(x, n_neighbors):
    c = kneighbors_graph(x, n_neighbors, include_self=True).toarray()
    return 0.5 * (c + c.T)


def _projector(e):
    q, _ = np.linalg.qr(np.asarray(e, np.float64))
    return q @ q.T


def _datasets():
    xm, ym = make_moons(150, noise=0.05, random_state=0)
    xc, yc = make_circles(150, factor=0.4, noise=0.04, random_state=0)
    xi, yi = load_iris(return_X_y=True)
    return {"moons": (xm, ym), "circles": (xc, yc), "iris": (xi, yi)}


DATA = _datasets()


def test_knn_affinity_matches_sklearn_kneighbors_graph():
    x = DATA["moons"][0][:80].astype(np.float32)
    for nn in (1, 5, 10):
        got = affinity_matrix(jnp.asarray(x), kind="knn", n_neighbors=nn)
        np.testing.assert_array_equal(np.asarray(got), _sk_knn(x, nn))


def test_rbf_affinity_matches_sklearn_and_default_gamma():
    x = DATA["iris"][0].astype(np.float32)
    x64 = x.astype(np.float64)
    got = affinity_matrix(jnp.asarray(x), gamma=0.7)
    # float32: |x|^2 + |y|^2 - 2 x.y cancels; with centred |x|^2 <~ 20 the squared distances
    # carry ~20 * 6e-8 * few absolute error, times gamma: <~ 5e-6 on the affinity
    np.testing.assert_allclose(np.asarray(got), rbf_kernel(x64, gamma=0.7), atol=5e-6)
    g = 1.0 / (x.shape[1] * x64.var())  # gamma="scale"
    np.testing.assert_allclose(np.asarray(affinity_matrix(jnp.asarray(x))),
                               rbf_kernel(x64, gamma=g), atol=5e-6)
    # scale invariance of the default
    np.testing.assert_allclose(np.asarray(affinity_matrix(jnp.asarray(10.0 * x))),
                               np.asarray(affinity_matrix(jnp.asarray(x))), atol=1e-5)


@pytest.mark.parametrize("name, k, kind", [("moons", 2, "knn"), ("circles", 2, "knn"),
                                           ("iris", 3, "rbf")])
@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_embedding_eigenvalues_and_labels_vs_sklearn(name, k, kind):
    x, y = DATA[name]
    w = _sk_knn(x, 10) if kind == "knn" else rbf_kernel(x, gamma=1.0)
    res = _precomputed(jnp.asarray(w, jnp.float32), k)

    # same affinity, scikit-learn's embedding (random-walk eigenvectors D^-1/2 V): compare the
    # spanned subspaces (eigenvectors are defined up to sign / rotation). float32 eigh: the
    # error is ~ eps / eigengap; the gaps here are >= 2e-3, so ~1e-4 at worst
    ref = spectral_embedding(w, n_components=k, drop_first=False, random_state=0)
    diff = np.abs(_projector(res.embedding) - _projector(ref)).max()
    assert diff < 1e-4, diff

    # eigenvalues of the normalised Laplacian (scipy's convention: self-loops ignored)
    lap = csgraph_laplacian(w, normed=True)
    ev = scipy.linalg.eigh(lap, eigvals_only=True)[:k]
    np.testing.assert_allclose(np.asarray(res.eigenvalues), ev, atol=2e-6)  # float32 eigh

    # labels: the same as scikit-learn's SpectralClustering on that affinity
    sk = SpectralClustering(k, affinity="precomputed", assign_labels="kmeans",
                            random_state=0).fit(w)
    assert adjusted_rand_score(sk.labels_, np.asarray(res.labels)) > 0.99
    if name != "iris":  # k-means alone fails here; the graph separates the shapes exactly
        assert adjusted_rand_score(y, np.asarray(res.labels)) == 1.0
    # the inertia is the k-means objective of the embedding at the labels
    e = np.asarray(res.embedding, np.float64)
    lab = np.asarray(res.labels)
    inert = sum(((e[lab == c] - e[lab == c].mean(0)) ** 2).sum() for c in range(k))
    np.testing.assert_allclose(float(res.inertia), inert, rtol=1e-4, atol=1e-8)


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
def test_isolated_nodes_give_no_nan():
    x, _ = DATA["moons"]
    w = _sk_knn(x, 10)  # one connected component
    w[7, :] = w[:, 7] = 0.0  # node 7 isolated (no self-loop either)
    w[20, :] = w[:, 20] = 0.0
    w[20, 20] = 1.0  # node 20: only a self-loop, which the Laplacian ignores
    res = _precomputed(jnp.asarray(w, jnp.float32), 3)
    assert np.all(np.isfinite(np.asarray(res.embedding)))
    ev = scipy.linalg.eigh(csgraph_laplacian(w, normed=True), eigvals_only=True)[:3]
    np.testing.assert_allclose(np.asarray(res.eigenvalues), ev, atol=2e-6)
    # three components, three zero eigenvalues; the next one is 2.6e-3 away
    np.testing.assert_allclose(np.asarray(res.eigenvalues), 0.0, atol=2e-6)
    # the null space is exactly {1 on the big component, e_7, e_20} after the degree
    # scaling; scikit-learn's ARPACK path does not resolve this threefold eigenvalue 0 (it
    # warns that the graph is not connected), so the reference is SciPy's dense eigh
    lap, dd = csgraph_laplacian(w, normed=True, return_diag=True)
    ref = scipy.linalg.eigh(lap)[1][:, :3] / dd[:, None]
    assert np.abs(_projector(res.embedding) - _projector(ref)).max() < 1e-4
    # the components are the clusters: each isolated node alone
    lab = np.asarray(res.labels)
    assert np.sum(lab == lab[7]) == 1 and np.sum(lab == lab[20]) == 1


def test_rbf_row_normalised_gradients_vs_finite_differences(x64):
    """Eigenvalues and a sign/rotation-invariant function of the embedding, float64."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(np.r_[rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 3.0])
    rmat = jnp.asarray(rng.normal(size=(12, 12)))

    def f(x):
        res = spectral(x, 2, key=jax.random.key(0), gamma=0.3, n_components=3,
                       row_norm="row")
        p = res.embedding @ res.embedding.T  # invariant to signs and rotations
        return jnp.sum(res.eigenvalues) + jnp.sum(rmat * p), res

    vg = jax.jit(jax.value_and_grad(f, has_aux=True))
    (val, res), g = vg(x)
    # the rbf option is the affinity of scikit-learn's rbf_kernel; NJW rows have unit length
    w = rbf_kernel(np.asarray(x), gamma=0.3)
    ev = scipy.linalg.eigh(csgraph_laplacian(w, normed=True), eigvals_only=True)
    np.testing.assert_allclose(np.asarray(res.eigenvalues), ev[:3], atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(res.embedding), axis=1), 1.0,
                               atol=1e-12)
    assert np.diff(ev[:4]).min() > 1e-2  # simple eigenvalues and a gap: differentiable
    for seed in range(2):
        v = jnp.asarray(np.random.default_rng(seed).normal(size=x.shape))
        h = 1e-5
        fd = (vg(x + h * v)[0][0] - vg(x - h * v)[0][0]) / (2 * h)
        # float64 central differences, h = 1e-5: truncation ~1e-10, rounding ~1e-11
        np.testing.assert_allclose(float(jnp.sum(g * v)), float(fd), rtol=1e-6, atol=1e-9)
        assert abs(float(fd)) > 1e-3


def test_vmap_and_the_knn_option():
    """vmap over three perturbed copies equals the per-item (jitted) results; the knn option
    equals spectral on affinity_matrix(kind="knn") (the same compiled solver per item)."""
    rng = np.random.default_rng(1)
    base = DATA["moons"][0]
    xs = jnp.asarray(np.stack([base * (1 + 0.02 * rng.uniform(-1, 1, base.shape))
                               for _ in range(3)]), jnp.float32)

    def f(x):
        r = spectral(x, 2, key=jax.random.key(0), affinity="knn", n_neighbors=10)
        return r.labels, r.embedding, r.eigenvalues, r.inertia

    batched = jax.jit(jax.vmap(f))(xs)
    for i in range(3):
        single = _precomputed(affinity_matrix(xs[i], kind="knn", n_neighbors=10), 2)
        single = (single.labels, single.embedding, single.eigenvalues, single.inertia)
        np.testing.assert_array_equal(np.asarray(batched[0][i]), np.asarray(single[0]))
        for j in (1, 2, 3):  # float32: batched eigh / matmuls may round differently
            np.testing.assert_allclose(np.asarray(batched[j][i]), np.asarray(single[j]),
                                       rtol=1e-5, atol=1e-5)
        assert adjusted_rand_score(DATA["moons"][1], np.asarray(single[0])) == 1.0


X = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)
W = np.asarray(affinity_matrix(X, gamma=1.0))
KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, 0), {}, "`k`"),
        ((X, 11), {}, "`k`"),
        ((X, 2.0), {}, "`k`"),
        ((X[0], 2), {}, "`x`.*2-D"),
        ((X.at[3, 1].set(jnp.nan), 2), {}, "`x`.*NaN"),
        ((X, 2), dict(affinity="knn", n_neighbors=10), "`n_neighbors`"),
        ((X, 2), dict(affinity="knn", n_neighbors=0), "`n_neighbors`"),
        ((X, 2), dict(affinity="cosine"), "`affinity`"),
        ((X, 2), dict(row_norm="l2"), "`row_norm`"),
        ((X, 2), dict(gamma=-1.0), "`gamma`"),
        ((X, 2), dict(n_components=11), "`n_components`"),
        ((X, 2), dict(n_init=0), "`n_init`"),
        ((W[:, :9], 2), dict(affinity="precomputed"), "`x`.*square"),
        ((W + np.triu(np.ones((10, 10)), 1), 2), dict(affinity="precomputed"),
         "`x`.*symmetric"),
        ((W - 2.0, 2), dict(affinity="precomputed"), "`x`.*negative"),
        ((np.where(np.eye(10) > 0, np.nan, W), 2), dict(affinity="precomputed"),
         "`x`.*NaN"),
        ((W, 11), dict(affinity="precomputed"), "`k`"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        spectral(*args, key=KEY, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="cosine"), "`kind`"),
        (dict(kind="knn", n_neighbors=10), "`n_neighbors`"),
        (dict(gamma=0.0), "`gamma`"),
    ],
)
def test_affinity_matrix_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        affinity_matrix(X, **kwargs)
    with pytest.raises(ValueError, match="`x`"):
        affinity_matrix(X[None])


def test_traced_value_checks_raise_under_jit():
    w = _sk_knn(DATA["moons"][0], 10)
    w[3, 5] = w[5, 3] = -0.5
    with pytest.raises(Exception, match="negative"):
        jax.block_until_ready(_precomputed(jnp.asarray(w, jnp.float32), 2))
    with pytest.raises(Exception, match="gamma"):
        jax.block_until_ready(jax.jit(lambda g: affinity_matrix(X, gamma=g))(-1.0))
