"""Helpers shared by the Flax and Equinox layers of ``jaxclust.nn`` (private).

Checks of the static layer settings (constructor time), parameter initialisation, and the
framework-free pieces of the heads' math that several heads use. The heads themselves are
pure functions of their parameters in ``jaxclust.nn._heads``; the framework modules only
hold parameters and call them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._core import checks
from ..cluster.deep import dec_loss, dec_target, pseudo_label_loss
from ..ot.assign import swav_codes
from ..ot.progressive import p2ot_codes, sp2ot_codes

KINDS = ("softmax", "student_t")


def check_size(value, name: str) -> int:
    return checks.check_int(value, name, why="it fixes a parameter shape")


def check_number(value, name: str, hint: str = "") -> float:
    """A static layer hyper-parameter: a finite Python number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a Python number > 0 (a static layer setting), "
                         f"got {value!r}.")
    checks.check_positive_scalar(value, name, hint)
    return float(value)


class PALMOptions(NamedTuple):
    """The static settings of a PALM prototype head, in the constructor's order."""

    temperature: float
    weight: float
    proto_temperature: float
    momentum: float
    top_k: int
    epsilon: float
    n_iter: int


def palm_options(temperature, weight, proto_temperature, momentum, top_k, epsilon,
                 n_iter) -> PALMOptions:
    """The static settings of both frameworks' PALM prototype heads, checked once."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"`weight` must be a Python number >= 0, got {weight!r}.")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
            0 <= momentum <= 1):
        raise ValueError(f"`momentum` must be a Python number in [0, 1] (PALM uses 0.999), "
                         f"got {momentum!r}.")
    top_k = checks.check_int(top_k, "top_k", low=0, why="0: no pruning")
    return PALMOptions(
        temperature=check_number(temperature, "temperature", "PALM uses 0.1."),
        weight=float(weight),
        proto_temperature=check_number(proto_temperature, "proto_temperature",
                                       "PALM uses 0.5."),
        momentum=float(momentum),
        top_k=top_k,
        epsilon=check_number(epsilon, "epsilon"),
        n_iter=check_size(n_iter, "n_iter"),
    )


def check_batch_norm(batch_norm, bn_momentum) -> None:
    """The batch-norm settings of both frameworks' temperature heads."""
    if not isinstance(batch_norm, bool):
        raise ValueError(f"`batch_norm` must be a bool, got {batch_norm!r}.")
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not (
            0 <= bn_momentum <= 1):
        raise ValueError(f"`bn_momentum` must be a number in [0, 1] (torch's convention: "
                         f"the weight of the new batch), got {bn_momentum!r}.")


def check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
    return kind


def initial(given, shape: tuple[int, ...], name: str, key_name: str, draw):
    """Given initial parameters (checked against ``shape``) or ``draw()`` from a key."""
    if given is None:
        if draw is None:
            raise ValueError(f"`{key_name}` is required to initialise `{name}` at random; pass "
                             f"{key_name}=... or an initial array `{name}` of shape {shape}.")
        return draw()
    arr = checks.as_float_array(given, name)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(arr.shape)}.")
    return checks.check_finite(arr, name)


def l2_normalize(v: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows divided by their norm (floored at ``eps``: zero rows stay finite, with a finite
    gradient)."""
    sq = jnp.sum(v * v, axis=-1, keepdims=True)
    return v * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def prototype_scores(z, prototypes: jax.Array, name: str = "z") -> jax.Array:
    """Cosine scores ``normalize(z) @ normalize(prototypes).T`` for ``z (batch, d)``."""
    z = checks.as_float_array(z, name)
    k, d = prototypes.shape
    if z.ndim != 2 or z.shape[1] != d:
        raise ValueError(f"`{name}` must have shape (batch, {d}) (d = the prototypes' feature "
                         f"size), got {tuple(z.shape)}. For a batch of batches, use "
                         "jax.vmap.")
    z = checks.check_finite(z, name)
    dtype = jnp.result_type(z, prototypes)
    return l2_normalize(z.astype(dtype)) @ l2_normalize(prototypes.astype(dtype)).T


def normal(key, shape, scale):
    return scale * jax.random.normal(key, shape)


def prototype_scale(d: int) -> float:
    return 1.0 / math.sqrt(d)


SWAV_TARGETS = ("soft", "hard")


def check_swav_targets(targets) -> str:
    if targets not in SWAV_TARGETS:
        raise ValueError(f"`targets` must be one of {SWAV_TARGETS} (SwAV's soft codes or "
                         f"SIGMA's argmax), got {targets!r}.")
    return targets


def swav_head_targets(scores, epsilon, n_iter, targets) -> jax.Array:
    """The SwAV head's targets: the codes, or their one-hot argmax (SIGMA); constants."""
    q = swav_codes(scores, epsilon=epsilon, n_iter=n_iter)
    if targets == "hard":
        q = jax.nn.one_hot(jnp.argmax(q, axis=1), q.shape[1], dtype=q.dtype)
    return jax.lax.stop_gradient(q)


def two_views(z_a, z_b, prototypes: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Scores of two views of one batch (same shape, checked)."""
    s_a = prototype_scores(z_a, prototypes, "z_a")
    s_b = prototype_scores(z_b, prototypes, "z_b")
    if s_a.shape != s_b.shape:
        raise ValueError(f"`z_b` must have the same batch size as `z_a` ({s_a.shape[0]}; two "
                         f"views of one batch), got {s_b.shape[0]}.")
    return s_a, s_b


def features(z, d: int, name: str = "z") -> jax.Array:
    """``z (batch, d)``, floating and finite."""
    z = checks.as_float_array(z, name)
    if z.ndim != 2 or z.shape[1] != d:
        raise ValueError(f"`{name}` must have shape (batch, {d}) (the same number of features "
                         f"as the head, d = {d}), got {tuple(z.shape)}. For a batch of "
                         "batches, use jax.vmap.")
    return checks.check_finite(z, name)


def head_logits(z, prototypes: jax.Array, temperature: float, normalize: bool,
                name: str = "z") -> jax.Array:
    """Logits of a prototype classifier: cosine scores (``normalize``) or ``z @ W.T``,
    divided by the temperature."""
    if normalize:
        return prototype_scores(z, prototypes, name) / temperature
    z = features(z, prototypes.shape[1], name)
    dtype = jnp.result_type(z, prototypes)
    return (z.astype(dtype) @ prototypes.astype(dtype).T) / temperature


def check_prior(prior, k: int):
    """A static prior: ``None`` or a tuple of ``k`` floats >= 0 summing to 1."""
    if prior is None:
        return None
    try:
        values = tuple(float(v) for v in prior)
    except TypeError as err:
        raise ValueError(f"`prior` must be a sequence of {k} cluster proportions, got "
                         f"{prior!r}.") from err
    if len(values) != k or any(not (v >= 0) for v in values) or abs(sum(values) - 1) > 1e-4:
        raise ValueError(f"`prior` must be {k} non-negative cluster proportions summing to 1, "
                         f"got {values}.")
    return values


class PartialOTConfig(NamedTuple):
    """Static settings of the partial-OT head (shared by both frameworks)."""

    temperature: float
    epsilon: float
    reg: float
    prior: tuple | None
    gamma: float
    n_neighbors: int | None
    n_mm: int
    tol: float
    max_iter: int
    gamma_decay: bool = True
    prior_order: str | None = "size"


def partial_ot_config(k, temperature, epsilon, reg, prior, gamma, n_neighbors, n_mm, tol,
                      max_iter, gamma_decay=True, prior_order="size") -> PartialOTConfig:
    if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg > 0:
        raise ValueError(f"`reg` must be a Python number > 0 (inf for exact cluster sizes), "
                         f"got {reg!r}.")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"`gamma` (the SP2OT semantic weight) must be a Python number >= 0, "
                         f"got {gamma!r}.")
    if n_neighbors is not None:
        check_size(n_neighbors, "n_neighbors")
    max_iter = checks.check_int(max_iter, "max_iter")
    if not isinstance(gamma_decay, bool):
        raise ValueError(f"`gamma_decay` must be True or False, got {gamma_decay!r}.")
    if prior_order not in ("size", "reference", None):
        raise ValueError(f"`prior_order` must be 'size', 'reference' or None, got "
                         f"{prior_order!r}.")
    return PartialOTConfig(
        temperature=check_number(temperature, "temperature"),
        epsilon=check_number(epsilon, "epsilon", "P2OT uses 0.1."),
        reg=float(reg), prior=check_prior(prior, k), gamma=float(gamma),
        n_neighbors=n_neighbors, n_mm=check_size(n_mm, "n_mm"),
        tol=check_number(tol, "tol"), max_iter=max_iter, gamma_decay=gamma_decay,
        prior_order=prior_order,
    )


def semantic_weight(mass, cfg: PartialOTConfig) -> jax.Array:
    """The SP²OT semantic weight at transported mass ``mass``: ``(1 - mass) * gamma`` with
    ``gamma_decay`` (the reference's schedule), else ``gamma``; traced values are fine."""
    g = jnp.asarray(cfg.gamma, jnp.result_type(float))
    if not cfg.gamma_decay:
        return g
    return (1.0 - jnp.asarray(mass, g.dtype)) * g


def partial_codes(logits: jax.Array, mass, features, cfg: PartialOTConfig):
    """P²OT codes of the logits, or, when gamma > 0, SP²OT codes with the cosine similarity
    of ``features`` (the head's input features by default)."""
    log_probs = jax.nn.log_softmax(logits, axis=1)
    prior = None if cfg.prior is None else jnp.asarray(cfg.prior, log_probs.dtype)
    common = dict(mass=mass, epsilon=cfg.epsilon, reg=cfg.reg, prior=prior,
                  prior_order=cfg.prior_order, tol=cfg.tol, max_iter=cfg.max_iter)
    if cfg.gamma > 0:
        return sp2ot_codes(log_probs, features, gamma=semantic_weight(mass, cfg),
                           n_neighbors=cfg.n_neighbors, n_mm=cfg.n_mm, **common)
    return p2ot_codes(log_probs, **common)


def swapped_pseudo_label_loss(logits_a, logits_b, mass, z_a, z_b, cfg: PartialOTConfig):
    """Each view's logits predict the other view's partial-OT codes, weighted by the
    transported mass of each sample: the sum of the two weighted cross-entropies, as the
    reference (rhfeiyang/SPPOT ``SK_loss.forward``) sums over the ordered pairs of views."""
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"`z_b` must have the same batch size as `z_a` ({logits_a.shape[0]}; "
                         f"two views of one batch), got {logits_b.shape[0]}.")
    qa = partial_codes(logits_a, mass, z_a, cfg)
    qb = partial_codes(logits_b, mass, z_b, cfg)
    return (pseudo_label_loss(logits_a, qb.codes, qb.weights)
            + pseudo_label_loss(logits_b, qa.codes, qa.weights))


TARGET_KINDS = ("dec", "depict", "depict_paper")


def check_target(target) -> str:
    if target not in TARGET_KINDS:
        raise ValueError(f"`target` must be one of {TARGET_KINDS}, got {target!r}.")
    return target


def dec_head_loss(q: jax.Array, p, target: str, power: float) -> jax.Array:
    """KL(p || q) averaged over the batch; ``p`` defaults to the sharpened target of ``q``."""
    if p is None:
        p = dec_target(q, kind=target, power=power)
    return dec_loss(q, p)


def tell_weight_bias(centroids: jax.Array, normalize: bool) -> tuple[jax.Array, jax.Array]:
    """TELL's layer parameters: ``W = 2 c`` and ``b = -|c|^2`` (``c`` on the unit sphere
    with ``normalize``)."""
    c = l2_normalize(centroids) if normalize else centroids
    return 2.0 * c, -jnp.sum(c * c, axis=1)
