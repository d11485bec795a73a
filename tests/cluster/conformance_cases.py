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
    ]
