"""The MLC head in Flax NNX (private module, re-exported by ``jaxclust.nn.flax``).

The Flax twin of ``jaxclust.nn._mlc_equinox.MLCHead``: the same parameters
(``nnx.Param``\\ s) in the same roles and layouts, the same outputs.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike, Float

from ..cluster.rate_reduction import mlc_loss, mlc_membership
from ._common import check_size, initial, normal, prototype_scale

__all__ = ["MLCHead"]


def _unit(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class MLCHead(nnx.Module):
    r"""The two heads of MLC (Manifold Linearizing and Clustering).

    The Flax NNX twin of [`jaxclust.nn.equinox.MLCHead`][jaxclust.nn.equinox.MLCHead] (see
    there for the math): ``__call__(x)`` returns ``(z, gamma)``, ``loss(x)`` the MLC loss;
    ``rngs`` for ``key``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import MLCHead
      >>> head = MLCHead(8, 4, rngs=nnx.Rngs(0))
      >>> z, g = head(jax.random.normal(jax.random.key(1), (10, 8)))
      >>> z.shape, g.shape
      ((10, 4), (10, 10))
    """

    def __init__(self, d_in: int, d: int, *, eps: float = 0.1, gamma: float = 1.0,
                 reg: float = 0.05, eta: float = 0.175, n_iter: int = 5,
                 weight: ArrayLike | None = None, rngs: nnx.Rngs | None = None):
        check_size(d_in, "d_in")
        check_size(d, "d")
        draw = None
        if rngs is not None:
            key = rngs.params()
            draw = lambda: normal(key, (d_in, d), prototype_scale(d_in))  # noqa: E731
        w = initial(weight, (d_in, d), "weight", "rngs", draw)
        self.subspace_weight = nnx.Param(w)
        self.cluster_weight = nnx.Param(jnp.array(w))
        self.subspace_bias = nnx.Param(jnp.zeros((d,), w.dtype))
        self.cluster_bias = nnx.Param(jnp.zeros((d,), w.dtype))
        self.eps, self.gamma, self.reg, self.eta, self.n_iter = eps, gamma, reg, eta, n_iter

    def __call__(self, x: Float[ArrayLike, "n d_in"]) -> tuple[Array, Array]:
        x = jnp.asarray(x)
        z = _unit(x @ self.subspace_weight[...] + self.subspace_bias[...][None, :])
        c = x @ self.cluster_weight[...] + self.cluster_bias[...][None, :]
        return z, mlc_membership(c, eta=self.eta, n_iter=self.n_iter)

    def loss(self, x: Float[ArrayLike, "n d_in"]) -> Array:
        z, g = self(x)
        # the reference's soft clusters are the columns of Gamma (it passes Gamma^T)
        return mlc_loss(z, g.T, eps=self.eps, gamma=self.gamma, reg=self.reg)


