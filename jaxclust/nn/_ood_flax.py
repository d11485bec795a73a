"""OOD heads in Flax NNX (private module, re-exported by ``jaxclust.nn.flax``).

The same heads, with the same parameters (``nnx.Param``\\ s) in the same roles and layouts,
are in ``jaxclust.nn._ood_equinox``. Each is a thin wrapper over pure functions of
[`jaxclust.ood`][jaxclust.ood]; scores follow its convention: higher = more
in-distribution. Heads take a batch of features ``(n, d)`` (the prototype head's
Sinkhorn assignments need the whole batch).
"""

from __future__ import annotations

from typing import cast

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike, Float, Int

from ..ood import losses as _losses, scores as _scores
from ._common import (
    check_batch_norm,
    check_size,
    initial,
    normal,
    palm_options,
    prototype_scale,
)

__all__ = ["PrototypeHead", "TemperatureHead"]


class TemperatureHead(nnx.Module):
    r"""A learned-temperature classifier head (GODIN / AbeT).

    The Flax NNX twin of
    [`jaxclust.nn.equinox.TemperatureHead`][jaxclust.nn.equinox.TemperatureHead] (see there
    for the math): cosine logits over a per-sample learned temperature $T(x) \in (0, 1)$;
    ``__call__``, ``temperature``, ``loss`` and ``score`` as there, ``rngs`` for ``key``.

    With ``batch_norm=True`` the head holds an ``nnx.BatchNorm`` (field ``bn``: learned
    ``scale``/``bias``, running ``mean``/``var``). In training mode (``model.train()``, the
    default) $g$ is normalised with the batch's statistics and each call updates the running
    ones; in ``model.eval()`` mode the running statistics are used, as torch's BatchNorm.
    The running variance is Flax's (the biased batch variance; torch averages the unbiased
    one, a factor $n/(n-1)$).

    Args:
      d: feature size.
      k: number of classes.
      weight: initial class directions ``(d, k)``; default ``normal / sqrt(d)``.
      temp_weight: initial ``(d,)``; default ``normal / sqrt(d)``.
      temp_bias: initial scalar (default 0).
      batch_norm: batch-normalise $g$ (the reference's layout; default off: $T$ is then a
        per-sample function, independent of the batch).
      bn_momentum: torch-convention momentum of the running statistics (torch default 0.1;
        ``nnx.BatchNorm(momentum=1 - bn_momentum)``).
      rngs: ``nnx.Rngs`` (its ``params`` stream), required unless both weights are given.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn._ood_flax import TemperatureHead
      >>> head = TemperatureHead(8, 3, rngs=nnx.Rngs(0))
      >>> x = jax.numpy.ones((5, 8))
      >>> t = head.temperature(x)
      >>> head(x).shape, head.score(x).shape, bool((t > 0).all() and (t < 1).all())
      ((5, 3), (5,), True)

    """

    def __init__(self, d: int, k: int, *, weight: Float[ArrayLike, "d k"] | None = None,
                 temp_weight: Float[ArrayLike, " d"] | None = None,
                 temp_bias: float = 0.0, batch_norm: bool = False, bn_momentum: float = 0.1,
                 rngs: nnx.Rngs | None = None):
        d, k = check_size(d, "d"), check_size(k, "k")
        check_batch_norm(batch_norm, bn_momentum)
        k1 = k2 = None
        if rngs is not None:
            k1, k2 = jax.random.split(rngs.params())
        self.weight = nnx.Param(initial(
            weight, (d, k), "weight", "rngs",
            None if k1 is None else lambda: normal(k1, (d, k), prototype_scale(d))))
        self.temp_weight = nnx.Param(initial(
            temp_weight, (d,), "temp_weight", "rngs",
            None if k2 is None else lambda: normal(k2, (d,), prototype_scale(d))))
        self.temp_bias = nnx.Param(jnp.asarray(temp_bias, jnp.result_type(float)))
        self.bn = (nnx.BatchNorm(1, momentum=1.0 - float(bn_momentum), epsilon=1e-5,
                                 use_fast_variance=False, rngs=nnx.Rngs(0))
                   if batch_norm else None)

    def temperature(self, x: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
        """$T(x) = \\sigma(g(x)) \\in (0, 1)$; in training mode with batch norm, also updates
        the running statistics."""
        v, c = self.temp_weight[...], self.temp_bias[...]
        if self.bn is None:
            return _losses.learned_temperature(x, v, c)
        # use_scale / use_bias are on (the constructor's defaults): both are Params
        scale = cast(nnx.Param, self.bn.scale)[...][0]
        offset = cast(nnx.Param, self.bn.bias)[...][0]
        if self.bn.use_running_average:
            return _losses.learned_temperature(x, v, c, batch_norm=True, scale=scale,
                                               offset=offset, mean=self.bn.mean[...][0],
                                               var=self.bn.var[...][0])
        t = _losses.learned_temperature(x, v, c, batch_norm=True, scale=scale, offset=offset)
        a = jnp.asarray(x).astype(t.dtype) @ v.astype(t.dtype) + c
        stat_dtype = self.bn.mean[...].dtype  # nnx.BatchNorm keeps float32 statistics
        self.bn(jax.lax.stop_gradient(a).astype(stat_dtype)[:, None])  # running statistics
        return t

    def cosine_logits(self, x: Float[ArrayLike, "n d"]) -> Float[Array, "n k"]:
        """The cosine logits $h(x)$."""
        return _losses.cosine_logits(x, self.weight[...])

    def __call__(self, x: Float[ArrayLike, "n d"]) -> Float[Array, "n k"]:
        return self.cosine_logits(x) / self.temperature(x)[:, None]

    def loss(self, x: Float[ArrayLike, "n d"], labels: Int[ArrayLike, " n"]
             ) -> Float[Array, ""]:
        """Cross-entropy of $h/T$."""
        return _losses.learned_temperature_loss(self.cosine_logits(x), self.temperature(x),
                                                labels)

    def score(self, x: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
        """AbeT's ablated energy (higher = more in-distribution)."""
        return _scores.ablated_energy(self.cosine_logits(x), self.temperature(x))


class PrototypeHead(nnx.Module):
    r"""A PALM mixture-of-prototypes head: ``m`` unit prototypes per class.

    The Flax NNX twin of
    [`jaxclust.nn.equinox.PrototypeHead`][jaxclust.nn.equinox.PrototypeHead] (see there for
    the math): ``m`` prototypes per class, an ``nnx.Param`` ``(k, m, d)``; ``__call__``,
    ``assignments``, ``loss`` and ``score`` as there, ``rngs`` for ``key``. Flax modules are
    mutable: ``update_prototypes(z, labels)`` applies PALM's EMA update in place (the
    Equinox head returns the updated head).

    Args:
      d: embedding size.
      k: number of classes.
      m: prototypes per class (``>= 2`` for the contrastive term).
      temperature: $\tau > 0$ of the likelihood term (static; PALM uses 0.1).
      weight: weight of the prototype-contrastive term (static; PALM uses 1).
      proto_temperature: temperature of the contrastive term (static; PALM uses 0.5).
      momentum: EMA momentum of the prototypes (static; PALM uses 0.999).
      top_k: prototypes kept per sample within its class (static; PALM keeps 5; 0: all).
      epsilon: entropic temperature of the assignments (static; PALM: 0.05).
      n_iter: Sinkhorn rounds of the assignments (static; PALM: 3).
      prototypes: initial ``(k, m, d)``; default ``normal / sqrt(d)`` from ``rngs``.
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``prototypes``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn._ood_flax import PrototypeHead
      >>> head = PrototypeHead(8, 3, 4, rngs=nnx.Rngs(0))
      >>> z = jax.numpy.eye(6, 8)
      >>> head(z).shape, head.loss(z, jax.numpy.arange(6) % 3).shape
      ((6, 3), ())

    """

    def __init__(self, d: int, k: int, m: int, *, temperature: float = 0.1,
                 weight: float = 1.0, proto_temperature: float = 0.5,
                 momentum: float = 0.999, top_k: int = 5, epsilon: float = 0.05,
                 n_iter: int = 3, prototypes: Float[ArrayLike, "k m d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k, m = check_size(d, "d"), check_size(k, "k"), check_size(m, "m")
        (self.temperature, self.weight, self.proto_temperature, self.momentum, self.top_k,
         self.epsilon, self.n_iter) = palm_options(temperature, weight, proto_temperature,
                                                   momentum, top_k, epsilon, n_iter)
        draw = (None if rngs is None
                else lambda: normal(rngs.params(), (k, m, d), prototype_scale(d)))
        self.prototypes = nnx.Param(initial(prototypes, (k, m, d), "prototypes", "rngs", draw))

    def __call__(self, z: Float[ArrayLike, "n d"]) -> Float[Array, "n k"]:
        return _losses.mixture_logits(z, self.prototypes[...], temperature=self.temperature)

    def assignments(self, z: Float[ArrayLike, "n d"],
                    labels: Int[ArrayLike, " n"] | None = None) -> Float[Array, "n k m"]:
        """Sinkhorn codes of the batch over all prototypes; with ``labels``, PALM's
        class-masked, top-k-pruned weights (no gradient)."""
        return _losses.mixture_assignments(z, self.prototypes[...], labels, epsilon=self.epsilon,
                                           n_iter=self.n_iter, top_k=self.top_k)

    def loss(self, z: Float[ArrayLike, "n d"], labels: Int[ArrayLike, " n"]
             ) -> Float[Array, ""]:
        """PALM's loss on a labelled batch (the prototypes get no gradient)."""
        return _losses.palm_loss(z, labels, self.prototypes[...], temperature=self.temperature,
                                 weight=self.weight, proto_temperature=self.proto_temperature,
                                 momentum=self.momentum, epsilon=self.epsilon,
                                 n_iter=self.n_iter, top_k=self.top_k)

    def update_prototypes(self, z: Float[ArrayLike, "n d"], labels: Int[ArrayLike, " n"]
                          ) -> None:
        """PALM's EMA update of the prototypes with the batch, in place."""
        old = self.prototypes[...]
        self.prototypes[...] = _losses.update_prototypes(
            old, jax.lax.stop_gradient(jnp.asarray(z)), labels, momentum=self.momentum,
            epsilon=self.epsilon, n_iter=self.n_iter, top_k=self.top_k).astype(old.dtype)

    def score(self, z: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
        """Free energy of the mixture (higher = more in-distribution)."""
        return _scores.energy(self(z), temperature=self.temperature)
