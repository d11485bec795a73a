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


def cases() -> list[Case]:
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    m = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    w = jnp.asarray([0.2, 0.5, 0.3], jnp.float32)
    return [
        Case("gmm_bic+aic", "gmm_bic", _criteria, (x, m, w), (0, 1, 2)),
        Case("gmm_aic", "gmm_aic", _aic, (x, m), (0, 1), slow=True),
    ]
