"""The clustering heads of ``jaxclust.nn`` as pure functions of their parameters (private).

Each head's math is written once here, as functions ``f(params, inputs, spec)`` of the
learnable arrays (centroids, prototypes), the inputs and a static, already checked ``spec``
(a NamedTuple of the head's settings). The Equinox and Flax classes hold the parameters in
their framework's way and call these functions: nothing of the math is in the framework
modules, so the two cannot drift apart. Constructor-time checks live in the ``*_spec``
builders, shared by both frameworks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from ..cluster.deep import dec_target, tell_assignment, tell_loss
from ..cluster.losses import kmeans_loss, soft_assignment, swav_loss
from ..ot.progressive import PartialCodes
from . import _common as c

# ------------------------------------------------------------------------------------------
# parameters


def init_params(given, k: int, d: int, name: str, key_name: str, key, scale: float
                ) -> jax.Array:
    """Initial ``(k, d)`` centroids / prototypes: ``given`` (checked) or ``scale * normal``
    from ``key``, a PRNG key or a callable returning one, called only when drawing (a Flax
    ``rngs.params``; ``None``: ``given`` is required). A given array of the transposed shape
    ``(d, k)`` gets a hint about the argument order ``(d, k)`` of every head."""
    draw = None if key is None else lambda: c.normal(key() if callable(key) else key,
                                                     (k, d), scale)
    if given is not None and k != d:
        shape = tuple(getattr(given, "shape", ()))
        if shape == (d, k):
            raise ValueError(f"`{name}` must have shape ({k}, {d}) = (k, d), got {shape}; the "
                             "heads take their sizes in the order (d, k), feature size first "
                             "(KMeansLayer took (k, d) before).")
    return c.initial(given, (k, d), name, key_name, draw)


def check_sizes(d, k) -> tuple[int, int]:
    """The feature size ``d`` and the number of clusters ``k`` of a head, in that order."""
    return c.check_size(d, "d"), c.check_size(k, "k")


# ------------------------------------------------------------------------------------------
# KMeansLayer


class KMeansSpec(NamedTuple):
    temperature: float
    kind: str
    alpha: float


def kmeans_spec(temperature, kind, alpha) -> KMeansSpec:
    return KMeansSpec(c.check_number(temperature, "temperature"), c.check_kind(kind),
                      c.check_number(alpha, "alpha"))


def kmeans_layer(centroids: jax.Array, x, spec: KMeansSpec) -> tuple[jax.Array, jax.Array]:
    """Soft assignments of ``x`` to the centroids and the soft k-means free energy."""
    d = centroids.shape[1]
    if getattr(x, "ndim", None) == 2 and x.shape[1] != d:
        raise ValueError(f"`x` must have d = {d} features (the layer's feature size), got "
                         f"shape {tuple(x.shape)}. The heads take their sizes as (d, k), "
                         "feature size first (KMeansLayer took (k, d) before).")
    q = soft_assignment(x, centroids, temperature=spec.temperature, kind=spec.kind,
                        alpha=spec.alpha)
    return q, kmeans_loss(x, centroids, temperature=spec.temperature)


# ------------------------------------------------------------------------------------------
# SinkhornClusteringHead (SwAV / SIGMA)


class SwAVSpec(NamedTuple):
    temperature: float
    epsilon: float
    n_iter: int
    targets: str


def swav_spec(temperature, epsilon, n_iter, targets) -> SwAVSpec:
    return SwAVSpec(c.check_number(temperature, "temperature", "SwAV uses 0.1."),
                    c.check_number(epsilon, "epsilon", "SwAV uses 0.05."),
                    c.check_size(n_iter, "n_iter"), c.check_swav_targets(targets))


def swav_scores(prototypes: jax.Array, z) -> jax.Array:
    """Cosine scores of the features against the prototypes."""
    return c.prototype_scores(z, prototypes)


def swav_targets(prototypes: jax.Array, z, spec: SwAVSpec) -> jax.Array:
    """SwAV codes of the batch (one-hot with ``targets="hard"``), constants."""
    return c.swav_head_targets(swav_scores(prototypes, z), spec.epsilon, spec.n_iter,
                               spec.targets)


def swav_head_loss(prototypes: jax.Array, z_a, z_b, spec: SwAVSpec) -> jax.Array:
    """Swapped-prediction loss between two views of one batch."""
    s_a, s_b = c.two_views(z_a, z_b, prototypes)
    return swav_loss(s_a, s_b, temperature=spec.temperature, epsilon=spec.epsilon,
                     n_iter=spec.n_iter, targets=spec.targets)


# ------------------------------------------------------------------------------------------
# PartialOTClusteringHead (P²OT / SP²OT); its spec is ``_common.PartialOTConfig``


def partial_ot_logits(prototypes: jax.Array, z, normalize: bool, cfg: c.PartialOTConfig,
                      name: str = "z") -> jax.Array:
    """Cosine (``normalize``) or linear classifier logits over the prototypes."""
    return c.head_logits(z, prototypes, cfg.temperature, normalize, name)


def partial_ot_codes(prototypes: jax.Array, z, mass, features, normalize: bool,
                     cfg: c.PartialOTConfig) -> PartialCodes:
    """Partial-OT pseudo-labels of the batch (SP²OT with ``features`` when gamma > 0)."""
    return c.partial_codes(partial_ot_logits(prototypes, z, normalize, cfg), mass,
                           z if features is None else features, cfg)


def partial_ot_loss(prototypes: jax.Array, z_a, z_b, mass, normalize: bool,
                    cfg: c.PartialOTConfig) -> jax.Array:
    """Swapped pseudo-label loss of two views, weighted by the transported mass."""
    s_a = partial_ot_logits(prototypes, z_a, normalize, cfg, "z_a")
    s_b = partial_ot_logits(prototypes, z_b, normalize, cfg, "z_b")
    return c.swapped_pseudo_label_loss(s_a, s_b, mass, z_a, z_b, cfg)


# ------------------------------------------------------------------------------------------
# DECHead (DEC / DEPICT)


class DECSpec(NamedTuple):
    kind: str
    alpha: float
    temperature: float
    target: str
    power: float


def dec_spec(kind, alpha, temperature, target, power) -> DECSpec:
    return DECSpec(c.check_kind(kind), c.check_number(alpha, "alpha"),
                   c.check_number(temperature, "temperature"), c.check_target(target),
                   c.check_number(power, "power", "DEC uses 2."))


def dec_assign(centroids: jax.Array, z, spec: DECSpec) -> jax.Array:
    """Student-t (or softmax) soft assignments of the features."""
    return soft_assignment(c.features(z, centroids.shape[1]), centroids,
                           temperature=spec.temperature, kind=spec.kind, alpha=spec.alpha)


def dec_head_target(q, spec: DECSpec) -> jax.Array:
    """The sharpened target of the assignments (a constant)."""
    return dec_target(q, kind=spec.target, power=spec.power)


def dec_head_loss(centroids: jax.Array, z, p, spec: DECSpec) -> jax.Array:
    """Mean KL(p || q) of the batch; ``p`` defaults to the target of this batch."""
    return c.dec_head_loss(dec_assign(centroids, z, spec), p, spec.target, spec.power)


# ------------------------------------------------------------------------------------------
# TELLLayer


def tell_spec(temperature, normalize) -> tuple[float, bool]:
    return c.check_number(temperature, "temperature"), bool(normalize)


def tell_layer(centroids: jax.Array, x, temperature: float, normalize: bool
               ) -> tuple[jax.Array, jax.Array]:
    """TELL's assignments and differentiable k-means loss."""
    return (tell_assignment(x, centroids, temperature=temperature, normalize=normalize),
            tell_loss(x, centroids, temperature=temperature, normalize=normalize))


def tell_weight_bias(centroids: jax.Array, normalize: bool) -> tuple[jax.Array, jax.Array]:
    """The layer's weights ``2 c`` and bias ``-|c|^2``."""
    return c.tell_weight_bias(centroids, normalize)


__all__ = [
    "DECSpec", "KMeansSpec", "SwAVSpec", "check_sizes", "dec_assign", "dec_head_loss",
    "dec_head_target", "dec_spec", "init_params", "kmeans_layer", "kmeans_spec",
    "partial_ot_codes", "partial_ot_logits", "partial_ot_loss", "swav_head_loss",
    "swav_scores", "swav_spec", "swav_targets", "tell_layer", "tell_spec",
    "tell_weight_bias",
]
