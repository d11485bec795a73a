"""Shared small problems of the diffusion tests: a 2-D Gaussian mixture and a MoLRG."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxclust.diffusion import GaussianMixture, MoLRG


def gmm2d(dtype=jnp.float32) -> GaussianMixture:
    """Three well separated, anisotropic components in the plane."""
    covs = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 0.5]],
                     [[1.0, -0.3], [-0.3, 0.3]]])
    return GaussianMixture(jnp.asarray([0.3, 0.3, 0.4], dtype),
                           jnp.asarray([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], dtype),
                           jnp.asarray(covs, dtype))


def random_gmm(rng: np.random.Generator, K: int, D: int, dtype=jnp.float64) -> GaussianMixture:
    A = rng.normal(size=(K, D, D))
    covs = A @ A.transpose(0, 2, 1) / D + 0.1 * np.eye(D)
    w = rng.uniform(0.2, 1.0, K)
    return GaussianMixture(jnp.asarray(w / w.sum(), dtype),
                           jnp.asarray(2.0 * rng.normal(size=(K, D)), dtype),
                           jnp.asarray(covs, dtype))


def random_molrg(rng: np.random.Generator, K: int, D: int, d: int, floor: float,
                 dtype=jnp.float64, equal: bool = False) -> MoLRG:
    U = np.linalg.qr(rng.normal(size=(K, D, d)))[0]
    w = np.ones(K) if equal else rng.uniform(0.2, 1.0, K)
    return MoLRG(jnp.asarray(w / w.sum(), dtype), jnp.asarray(U, dtype), floor)


def molrg_as_gmm(mix: MoLRG) -> GaussianMixture:
    """The same mixture with explicit covariances U U^T + floor I (NumPy, float64)."""
    U = np.asarray(mix.bases, np.float64)
    D = U.shape[1]
    covs = U @ U.transpose(0, 2, 1) + float(mix.floor) * np.eye(D)
    return GaussianMixture(jnp.asarray(mix.weights), jnp.zeros((U.shape[0], D)),
                           jnp.asarray(covs))
