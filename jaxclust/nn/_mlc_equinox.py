"""The MLC head in Equinox (private module, re-exported by ``jaxclust.nn.equinox``).

The same head, with the same parameters in the same roles and layouts, is in
``jaxclust.nn._mlc_flax``. A thin wrapper over [`mlc_membership`][jaxclust.cluster.mlc_membership]
and [`mlc_loss`][jaxclust.cluster.mlc_loss].
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..cluster.rate_reduction import mlc_loss, mlc_membership
from ._common import check_size, initial, normal, prototype_scale

__all__ = ["MLCHead"]


def _unit(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class MLCHead(eqx.Module):
    r"""The two heads of MLC (Manifold Linearizing and Clustering) on a batch of features.

    A subspace head $Z = \mathrm{normalize}(xW_z + b_z)$ (the linearised representation)
    and a cluster head $C = xW_c + b_c$ whose membership
    $\Gamma$ = [`mlc_membership`][jaxclust.cluster.mlc_membership]$(C)$ is doubly
    stochastic over the batch. Both heads start equal (the paper's one-shot initialisation
    of the membership from the representation).

    * ``__call__(x)``: ``(z, gamma)``, ``(n, d)`` and ``(n, n)``;
    * ``loss(x)``: [`mlc_loss`][jaxclust.cluster.mlc_loss]$(Z, \Gamma^\top)$ to minimise
      (the reference's soft clusters are the columns of $\Gamma$);
    * read clusters with ``jaxclust.cluster.spectral(gamma, k, affinity="precomputed")``.

    Args:
      d_in: input feature size.
      d: representation size.
      eps: the precision $\epsilon$ of ``mlc_loss`` (static).
      gamma: the compression weight $\gamma$ of ``mlc_loss`` (static).
      reg: the Frobenius penalty $\lambda$ of ``mlc_loss`` (static).
      eta: the temperature $\eta$ of ``mlc_membership`` (static).
      n_iter: the Sinkhorn half-steps of ``mlc_membership`` (static).
      weight: initial ``(d_in, d)`` weight of both heads; by default normal / sqrt(d_in).
      key: PRNG key, required without ``weight``.

    Example:
      >>> import jax
      >>> from jaxclust.nn.equinox import MLCHead
      >>> head = MLCHead(8, 4, key=jax.random.key(0))
      >>> z, g = head(jax.random.normal(jax.random.key(1), (10, 8)))
      >>> z.shape, g.shape
      ((10, 4), (10, 10))
    """

    subspace_weight: Array
    subspace_bias: Array
    cluster_weight: Array
    cluster_bias: Array
    eps: float = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    reg: float = eqx.field(static=True)
    eta: float = eqx.field(static=True)
    n_iter: int = eqx.field(static=True)

    def __init__(self, d_in: int, d: int, *, eps: float = 0.1, gamma: float = 1.0,
                 reg: float = 0.05, eta: float = 0.175, n_iter: int = 5,
                 weight: ArrayLike | None = None, key: PRNGKeyArray | None = None):
        check_size(d_in, "d_in")
        check_size(d, "d")
        draw = None if key is None else (lambda: normal(key, (d_in, d), prototype_scale(d_in)))
        w = initial(weight, (d_in, d), "weight", "key", draw)
        self.subspace_weight = w
        self.cluster_weight = jnp.array(w)
        self.subspace_bias = jnp.zeros((d,), w.dtype)
        self.cluster_bias = jnp.zeros((d,), w.dtype)
        self.eps, self.gamma, self.reg, self.eta, self.n_iter = eps, gamma, reg, eta, n_iter

    def __call__(self, x: Float[ArrayLike, "n d_in"]) -> tuple[Array, Array]:
        x = jnp.asarray(x)
        z = _unit(x @ self.subspace_weight + self.subspace_bias[None, :])
        c = x @ self.cluster_weight + self.cluster_bias[None, :]
        return z, mlc_membership(c, eta=self.eta, n_iter=self.n_iter)

    def loss(self, x: Float[ArrayLike, "n d_in"]) -> Array:
        z, g = self(x)
        # the reference's soft clusters are the columns of Gamma (it passes Gamma^T)
        return mlc_loss(z, g.T, eps=self.eps, gamma=self.gamma, reg=self.reg)


