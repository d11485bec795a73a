"""Spectral clustering for new points (Nystrom extension) and the LOBPCG eigensolver.

* `spectral_predict` against an independent NumPy oracle of the Nystrom formula of Bengio et
  al., "Out-of-Sample Extensions for LLE, Isomap, MDS, Eigenmaps, and Spectral Clustering"
  (NeurIPS 2003), Proposition 1 / eq. (for spectral clustering): with the normalised kernel
  K~(a, b) = K(a, b) / sqrt(d(a) d(b)) (degrees over the training points) and the training
  eigenpairs (v_k, l_k) of K~, the extension is f_k(p) = (1 / l_k) sum_i v_ik K~(p, x_i).
  The oracle builds everything in float64 NumPy (scikit-learn's rbf_kernel and
  kneighbors_graph for the affinities, numpy.linalg.eigh), shares only the inputs.
* predicting the training points gives back the fit's labels (kNN fit; RBF oracle fit),
  held-out moons get their moon's cluster, the kNN and RBF affinity rules, isolated new
  points, bad input.
* `eigen_solver="lobpcg"`: the same subspace, eigenvalues and labels as the dense eigh.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_moons
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.neighbors import kneighbors_graph

from jaxclust.cluster import SpectralResult, spectral, spectral_predict

# training moons: the data set of test_spectral.py (kNN, 10 neighbours: ARI 1); held-out
# moons: fresh draws of the same distribution
XM_TR, YM_TR = (a.astype(t) for a, t in zip(make_moons(150, noise=0.05, random_state=0),
                                            (np.float32, int)))
XM_TE, YM_TE = (a.astype(t) for a, t in zip(make_moons(40, noise=0.05, random_state=1),
                                            (np.float32, int)))


@functools.partial(jax.jit, static_argnames=("affinity", "eigen_solver"))
def _fit(x, gamma, *, affinity, eigen_solver="dense"):
    return spectral(x, 2, key=jax.random.key(0), affinity=affinity, gamma=gamma,
                    n_neighbors=10, n_init=2, eigen_solver=eigen_solver)


# one compiled program per option set (eagerly every primitive compiles on its own)
_predict = jax.jit(spectral_predict, static_argnames=("affinity", "n_neighbors", "row_norm"))


def _oracle_result(w_train, m, k, row_norm, seed=0):
    """A SpectralResult built in NumPy (float64) from a training affinity: the top-m
    eigenvectors of S = D^-1/2 W0 D^-1/2 and random centroids (the formula does not need
    k-means ones); also the degrees and eigenpairs for the oracle."""
    w0 = w_train - np.diag(np.diag(w_train))
    deg = w0.sum(1)
    s = w0 / np.sqrt(deg)[:, None] / np.sqrt(deg)[None, :]
    ev, v = np.linalg.eigh(s)
    ev, v = ev[::-1][:m], v[:, ::-1][:, :m]
    emb = v / np.sqrt(deg)[:, None] if row_norm == "degree" else v
    rng = np.random.default_rng(seed)
    cent = emb[rng.choice(len(emb), k, replace=False)]
    labels = np.argmin(((emb[:, None] - cent[None]) ** 2).sum(-1), 1)
    res = SpectralResult(jnp.asarray(labels, jnp.int32), jnp.asarray(emb, jnp.float32),
                         jnp.asarray(1.0 - ev, jnp.float32), jnp.float32(0.0),
                         jnp.asarray(cent, jnp.float32), jnp.int32(1), jnp.bool_(True))
    return res, deg, ev, v, cent


def _nystrom_oracle(w_new, deg, ev, v, cent, row_norm):
    dp = w_new.sum(1)
    ktilde = w_new / np.sqrt(dp)[:, None] / np.sqrt(deg)[None, :]  # K~(p, x_i)
    f = ktilde @ v / ev[None, :]  # Bengio et al.: (1 / l_k) sum_i v_ik K~(p, x_i)
    if row_norm == "degree":  # random-walk scaling of the embedding rows
        f = f / np.sqrt(dp)[:, None]
    return np.argmin(((f[:, None] - cent[None]) ** 2).sum(-1), 1), f


@pytest.mark.parametrize("row_norm", ["degree", "none"])
def test_nystrom_equals_a_numpy_oracle_rbf_and_precomputed(row_norm):
    """RBF and precomputed affinities against the float64 oracle on held-out points; the
    training points themselves (one call: training rows, held-out rows, a far point) give
    back the fit's embedding and labels (a new point equal to a training point drops its
    self-affinity, as the fit drops self-loops); a point with no affinity gets label -1."""
    x = XM_TR[:80].astype(np.float64)
    held = np.r_[XM_TE, XM_TE[:5] + 0.3].astype(np.float64)
    far = np.asarray([[1e3, 1e3]])  # exp(-2 * 2e6) = 0: no affinity to anyone
    gamma = 2.0
    res, deg, ev, v, cent = _oracle_result(rbf_kernel(x, gamma=gamma), 3, 2, row_norm)
    want_lab, want = _nystrom_oracle(rbf_kernel(held, x, gamma=gamma), deg, ev, v, cent,
                                     row_norm)
    lab, got = _predict(jnp.asarray(np.r_[x, held, far], jnp.float32),
                        jnp.asarray(x, jnp.float32), res, gamma=gamma, row_norm=row_norm)
    lab, got = np.asarray(lab), np.asarray(got)
    # float32 affinities (~5e-6 absolute, see test_spectral.py) divided by eigenvalues
    # ~0.7-1 and summed over 80 points: 1e-4 relative to the embedding's scale
    scale = np.abs(want).max()
    np.testing.assert_allclose(got[80:-1], want, atol=1e-4 * scale)
    np.testing.assert_array_equal(lab[80:-1], want_lab)
    np.testing.assert_allclose(got[:80], np.asarray(res.embedding), atol=1e-4 * scale)
    np.testing.assert_array_equal(lab[:80], np.asarray(res.labels))
    assert lab[-1] == -1 and not np.any(got[-1])
    # precomputed: the same affinities given as matrices
    lab_p, got_p = _predict(jnp.asarray(rbf_kernel(held, x, gamma=gamma), jnp.float32),
                            jnp.asarray(rbf_kernel(x, gamma=gamma), jnp.float32), res,
                            affinity="precomputed", row_norm=row_norm)
    np.testing.assert_allclose(np.asarray(got_p), want, atol=1e-4 * scale)
    np.testing.assert_array_equal(np.asarray(lab_p), want_lab)


def test_knn_rule_and_training_points_reproduce_the_fit():
    """kNN: the new-point affinities equal the rows of scikit-learn's kneighbors_graph
    (include_self=True) recomputed with the new point added to the training set, and
    predicting the training points gives back the fit (labels exactly, embedding to
    float32 eigh accuracy); held-out moons get the cluster of their moon."""
    res = _fit(jnp.asarray(XM_TR), None, affinity="knn")
    assert bool(res.converged)
    assert adjusted_rand_score(YM_TR, np.asarray(res.labels)) == 1.0
    lab, emb = _predict(jnp.asarray(XM_TR), jnp.asarray(XM_TR), res, affinity="knn",
                                n_neighbors=10)
    np.testing.assert_array_equal(np.asarray(lab), np.asarray(res.labels))
    # float32: eigh's eigenvectors satisfy P E = E mu to ~1e-6 relative; the extension
    # multiplies the residual by 1 / mu ~ 1
    np.testing.assert_allclose(np.asarray(emb), np.asarray(res.embedding),
                               atol=1e-5 * float(jnp.abs(res.embedding).max()))

    lab_te, emb_te = _predict(jnp.asarray(XM_TE), jnp.asarray(XM_TR), res,
                                      affinity="knn", n_neighbors=10)
    mapping = {int(y): int(c) for y, c in zip(YM_TR, np.asarray(res.labels))}
    np.testing.assert_array_equal(np.asarray(lab_te), [mapping[int(y)] for y in YM_TE])

    # the affinity rule and the formula, independently: p's row of scikit-learn's symmetric
    # kNN graph (include_self=True) of train + {p}, restricted to the training points, then
    # Nystrom with it in float64 NumPy
    emb_fit = np.asarray(res.embedding, np.float64)
    mu = 1.0 - np.asarray(res.eigenvalues, np.float64)
    for i in range(4):
        both = np.r_[XM_TR, XM_TE[i][None]].astype(np.float64)
        a = kneighbors_graph(both, 10, include_self=True).toarray()
        w_np = 0.5 * (a[-1, :-1] + a[:-1, -1])
        e_np = (w_np / w_np.sum()) @ emb_fit / mu
        np.testing.assert_allclose(np.asarray(emb_te[i]), e_np, rtol=1e-4,
                                   atol=1e-5 * np.abs(emb_fit).max())


def test_lobpcg_equals_dense_eigh():
    """eigen_solver="lobpcg" (what "auto" uses from n >= 1000) against the dense eigh on the
    same kNN graph: the same eigenvalues and embedding subspace (float32: LOBPCG's residual
    criterion 10 n eps |S| ~ 1e-4 here), the same labels, converged."""
    x = jnp.asarray(XM_TR)
    dense = _fit(x, None, affinity="knn")
    lob = _fit(x, None, affinity="knn", eigen_solver="lobpcg")
    assert bool(lob.converged) and bool(dense.converged)
    np.testing.assert_allclose(np.asarray(lob.eigenvalues), np.asarray(dense.eigenvalues),
                               atol=1e-4)

    def proj(e):
        q, _ = np.linalg.qr(np.asarray(e, np.float64))
        return q @ q.T

    assert np.abs(proj(lob.embedding) - proj(dense.embedding)).max() < 1e-3
    assert adjusted_rand_score(np.asarray(dense.labels), np.asarray(lob.labels)) == 1.0


X = jnp.asarray(XM_TR[:20])
W = jnp.asarray(rbf_kernel(XM_TR[:20], gamma=1.0), jnp.float32)
RES, *_ = _oracle_result(np.asarray(W, np.float64), 2, 2, "degree")


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X[:, :1], X, RES), {}, "`x` must have 2 features"),
        ((X[0], X, RES), {}, "`x`.*2-D"),
        ((X.at[0, 0].set(jnp.nan), X, RES), {}, "`x`.*NaN"),
        ((X, X[:19], RES), {}, "`result` does not match"),
        ((X, X, RES.labels), {}, "`result` must be the SpectralResult"),
        ((X, X, RES), dict(affinity="cosine"), "`affinity`"),
        ((X, X, RES), dict(row_norm="row"), "`row_norm=\"row\"` has no out-of-sample"),
        ((X, X, RES), dict(row_norm="l2"), "`row_norm`"),
        ((X, X, RES), dict(affinity="knn", n_neighbors=20), "`n_neighbors`"),
        ((X, X, RES), dict(gamma=-1.0), "`gamma`"),
        ((W[:3, :19], W, RES), dict(affinity="precomputed"), "`x` must hold affinities"),
        ((-W[:3], W, RES), dict(affinity="precomputed"), "`x` has negative"),
        ((W[:3], W[:, :19], RES), dict(affinity="precomputed"), "`x_train`.*square"),
        ((X, X, RES._replace(eigenvalues=jnp.asarray([0.0, 1.5]))), {},
         "`result.eigenvalues` has a Laplacian eigenvalue >= 1"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        spectral_predict(*args, **kwargs)


def test_spectral_eigen_solver_bad_input():
    with pytest.raises(ValueError, match="`eigen_solver` must be one of"):
        spectral(X, 2, key=jax.random.key(0), eigen_solver="arpack")
    with pytest.raises(ValueError, match=r"needs n > 5 \* \(n_components"):
        spectral(X, 2, key=jax.random.key(0), eigen_solver="lobpcg")
