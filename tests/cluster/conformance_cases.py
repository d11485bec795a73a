"""Conformance cases of the cluster additions of issue 18 (model selection, prediction),
registered through ``tests.conformance.pillar_cases``; jaxclust.cluster's coverage is
checked by tests/test_conformance.py itself, so MODULES is empty here."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..conformance import Case

MODULES: list = []


def _criteria(x, means, w):
    # BIC and AIC in one program (one compilation)
    from jaxclust.cluster import gmm_aic, gmm_bic

    cov = jnp.asarray([0.5, 1.5, 1.0], x.dtype)
    w = w / w.sum()
    return (gmm_bic(x, means, cov, w, covariance_type="spherical"),
            gmm_aic(x, means, cov, w, covariance_type="spherical"))


def _aic(x, means):
    from jaxclust.cluster import gmm_aic

    return gmm_aic(x, means, jnp.ones((3, 2), x.dtype), jnp.full((3,), 1 / 3, x.dtype),
                   covariance_type="diag")


def _mlc_terms(z, c):
    # MLC: membership from the head, the loss through it, and the rate (one program)
    from jaxclust.cluster import coding_rate, mlc_loss, mlc_membership

    g = mlc_membership(c, eta=0.5, n_iter=5)
    return mlc_loss(z, g), coding_rate(z), g


def _mlc(x):
    import jax

    from jaxclust.cluster import mlc

    res = mlc(x, 2, key=jax.random.key(0), steps=3)
    return res.labels, res.objective
_RNG = np.random.default_rng(6)
_XT = jnp.asarray(np.r_[_RNG.normal(size=(6, 2)), _RNG.normal(size=(6, 2)) + 3.0], jnp.float32)
_Z = jnp.asarray(_RNG.dirichlet(np.ones(2), size=12), jnp.float32)


def _laplacian_result(c):
    from jaxclust.cluster.laplacian import LaplacianKMeansResult

    z = jnp.zeros((1,), jnp.float32)
    return LaplacianKMeansResult(_Z, jnp.argmax(_Z, 1), c, z, jnp.int32(1), jnp.bool_(True))


def _predicts(x, c):
    # the closed-form predictors in one program (one compilation)
    from jaxclust.cluster import kmedoids_predict, laplacian_kmeans_predict, soft_kmeans_predict

    return (soft_kmeans_predict(x, c, temperature=0.7),
            kmedoids_predict(x, c), kmedoids_predict(x, c, metric="manhattan"),
            laplacian_kmeans_predict(x, _XT, _laplacian_result(c), n_neighbors=3, lam=0.5))


def _kmedoids_predict(x, c):
    from jaxclust.cluster import kmedoids_predict

    return kmedoids_predict(x, c, metric="cosine")


def _laplacian_predict(x, c):
    from jaxclust.cluster import laplacian_kmeans_predict

    return laplacian_kmeans_predict(x, _XT, _laplacian_result(c), n_neighbors=2,
                                    normalize=None)


def _sinkhorn_predict(x, c):
    from jaxclust.cluster import sinkhorn_kmeans_predict

    tol = 1e-10 if x.dtype == jnp.float64 else 1e-5
    return sinkhorn_kmeans_predict(x, c, epsilon=1.0, sizes=jnp.asarray([1.0, 2.0], x.dtype),
                                   tol=tol, max_iter=5000)


def _spectral_result():
    # a SpectralResult of _XT built in NumPy: top-2 random-walk eigenvectors of the RBF
    # graph (gamma 0.5) and the two training halves' means as centres
    from jaxclust.cluster import SpectralResult

    xt = np.asarray(_XT, np.float64)
    w = np.exp(-0.5 * ((xt[:, None] - xt[None]) ** 2).sum(-1))
    np.fill_diagonal(w, 0.0)
    deg = w.sum(1)
    ev, v = np.linalg.eigh(w / np.sqrt(np.outer(deg, deg)))
    emb = v[:, ::-1][:, :2] / np.sqrt(deg)[:, None]
    lab = np.repeat([0, 1], 6)
    cent = np.stack([emb[:6].mean(0), emb[6:].mean(0)])
    return SpectralResult(jnp.asarray(lab, jnp.int32), jnp.asarray(emb, jnp.float32),
                          jnp.asarray(1.0 - ev[::-1][:2], jnp.float32), jnp.float32(0.0),
                          jnp.asarray(cent, jnp.float32), jnp.int32(1), jnp.bool_(True))


def _spectral_predict(x):
    from jaxclust.cluster import spectral_predict

    return spectral_predict(x, _XT, _spectral_result(), gamma=0.5)


def _select_k(x):
    import jax

    from jaxclust.cluster import select_k

    res = select_k(x, (2, 3), key=jax.random.key(0), n_init=2)
    return res.labels, res.inertia, res.silhouette, res.calinski_harabasz, res.davies_bouldin


def _select_k_gmm(x):
    import jax

    from jaxclust.cluster import select_k

    res = select_k(x, (1, 2), key=jax.random.key(0), n_init=1, model="gmm",
                   covariance_type="spherical")
    return res.labels, res.objective, res.bic, res.aic


def _fastclara(x):
    import jax

    from jaxclust.cluster import fastclara

    res = fastclara(x, 2, key=jax.random.key(0), n_samples=2, sample_size=6)
    return res.medoids, res.labels, res.objective


def _ssgmm(x):
    import jax

    from jaxclust.cluster import semi_supervised_gmm

    labels = jnp.asarray([0, 1, 0, 1] + [-1] * 6)
    res = semi_supervised_gmm(x, labels, 2, max_components=4, n_components=3,
                              key=jax.random.key(0), covariance_type="diag", n_rounds=1,
                              max_iter=5, prior_scale=1.0)
    return res.labels, res.n_components, res.active


def _ssgmm_predict(x, m, w):
    from jaxclust.cluster import semi_supervised_gmm_predict

    cov = jnp.ones((3, 2), x.dtype) * jnp.asarray([[0.5], [1.0], [2.0]], x.dtype)
    w = w.at[2].set(0.0)  # an inactive component, as in SSGMMResult
    return semi_supervised_gmm_predict(x, m, cov, w, covariance_type="diag")[1][:, :2]


def cases() -> list[Case]:
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    m = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    w = jnp.asarray([0.2, 0.5, 0.3], jnp.float32)
    return [
        Case("gmm_bic+aic", "gmm_bic", _criteria, (x, m, w), (0, 1, 2)),
        Case("gmm_aic", "gmm_aic", _aic, (x, m), (0, 1), slow=True),
        # MLC (misc19): loss, membership and rate differentiated together; the clustering
        # (spectral eigh + k-means restarts, ~4 s of compiles) jit / vmap only, slow
        Case("mlc_loss+membership+rate", "mlc_loss", _mlc_terms, (x[:6], m[:, :2].repeat(2, 0)),
             (0, 1)),
        Case("mlc_membership", "mlc_membership", _mlc_terms, (x[:6], m.repeat(2, 0)), (1,),
             slow=True),
        Case("coding_rate", "coding_rate", _mlc_terms, (x[:6], m.repeat(2, 0)), (0,),
             slow=True),
        Case("mlc", "mlc", _mlc, (x,), slow=True),
        # hard assignments (Lloyd in a while_loop): jit / vmap only
        Case("select_k", "select_k", _select_k, (x,)),
        # the mixture path (one EM program per k, ~3 s of compiles each): slow
        Case("select_k(model=gmm)", "select_k", _select_k_gmm, (x,), slow=True),
        # Nystrom embedding of new points: differentiable in them (RBF affinity); the FD
        # check (a float64 compile) runs in make test-all
        Case("spectral_predict", "spectral_predict", _spectral_predict, (x,), (0,),
             slow_grad=True),
        # medoid indices carry no gradient; the loss at fixed medoids is differentiable
        # slow: the fast tests/peers/test_kmedoids_clara.py runs fastclara under jit(vmap)
        Case("fastclara", "fastclara", _fastclara, (x,), (0,), slow=True),
        Case("soft+kmedoids+laplacian_predict", "soft_kmeans_predict", _predicts,
             (x, m[:2]), (0, 1)),
        Case("kmedoids_predict", "kmedoids_predict", _kmedoids_predict, (x, m), (0, 1),
             slow=True),
        Case("laplacian_kmeans_predict", "laplacian_kmeans_predict", _laplacian_predict,
             (x, m[:2]), (0, 1), slow=True),
        # GPC: hard assignments and random accept / reject, jit / vmap only (compile-heavy:
        # slow; the fast tests/cluster/test_semi_supervised.py runs it under jit(vmap))
        Case("semi_supervised_gmm", "semi_supervised_gmm", _ssgmm, (x,), slow=True),
        Case("semi_supervised_gmm_predict", "semi_supervised_gmm_predict", _ssgmm_predict,
             (x, m, w), (0, 1, 2)),
        Case("sinkhorn_kmeans_predict", "sinkhorn_kmeans_predict", _sinkhorn_predict,
             (x, m[:2]), (0, 1), slow_grad=True),
    ]
