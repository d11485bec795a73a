"""Conformance cases of the deep clustering functions (``jaxclust.ot.progressive``,
``jaxclust.cluster.deep``) and of the deep clustering heads' losses (P²OT, DEC, TELL, SwAV,
soft k-means).

Fast cases group several public functions in one compiled program; every function also has
a case of its own, marked slow. Pseudo-labels (``p2ot_codes``, ``sp2ot_codes``,
``dec_target``) are ``stop_gradient`` targets, so autodiff is by design not the derivative
finite differences see: they are checked under jit and vmap only, and the losses that
consume them are differentiated with the targets given as inputs. The solvers run a fixed
number of iterations here (``tol`` below reach), so that jit, eager and every vmapped item
stop at the same iteration. Each head's loss is checked as a function of its parameter
arrays (the Equinox head rebuilt from the arrays inside ``fn``; the Flax head gives the same
values, tests/nn/test_deep_heads.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxclust.cluster.deep as jdeep
import jaxclust.nn.equinox as jeqx
import jaxclust.ot.progressive as jprog
from jaxclust.cluster import soft_assignment
from tests.conformance import Case

MODULES = [jprog, jdeep]

_FIXED = dict(tol=1e-30, max_iter=60)  # run exactly 60 rounds (jit = eager = vmap items)


def _normalise_rows(p):
    p = jnp.abs(p) + 0.1
    return p / jnp.sum(p, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------
# pure functions


def _p2ot(lp, mass):
    res = jprog.p2ot_codes(jax.nn.log_softmax(lp), mass=mass, **_FIXED)
    return res.plan, res.codes, res.weights, res.n_iters


def _sp2ot(lp, z):
    res = jprog.sp2ot_codes(jax.nn.log_softmax(lp), z, mass=0.6, gamma=0.5, n_mm=3,
                            mm_tol=0.0, **_FIXED)
    return res.plan, res.codes, res.weights


def _mass_schedule(step, start):
    return (jprog.mass_schedule(step, 10, start=start),
            jprog.mass_schedule(step, 10, start=start, end=0.9, kind="linear"))


def _dec_target(q):
    q = _normalise_rows(q)
    return jdeep.dec_target(q), jdeep.dec_target(q, kind="depict")


def _group_targets(lp, q, step):
    # the stop-gradient targets in one program: jit and vmap only (sp2ot_codes, which runs
    # p2ot's loop inside its MM loop, has its own case)
    return _p2ot(lp, 0.5)[:3] + _dec_target(q) + _mass_schedule(step, 0.2)


def _dec_loss(x, c, p):
    return jdeep.dec_loss(soft_assignment(x, c, kind="student_t"), _normalise_rows(p))


def _pseudo_label_loss(logits, codes, w):
    return (jdeep.pseudo_label_loss(logits, _normalise_rows(codes), jnp.abs(w)),
            jdeep.pseudo_label_loss(logits, _normalise_rows(codes)))


def _tell(x, c, t):
    return (jdeep.tell_assignment(x, c, temperature=t),
            jdeep.tell_loss(x, c, temperature=t),
            jdeep.tell_assignment(x, c, temperature=t, normalize=True),
            jdeep.tell_loss(x, c, temperature=t, normalize=True))


def _group_losses(x, c, p, logits, w, t):
    # the differentiable losses in one program (targets given as inputs)
    return (_dec_loss(x, c, p),) + _pseudo_label_loss(logits, p, w) + _tell(x, c, t)


# ------------------------------------------------------------------------------------------
# the heads' losses as functions of their parameter arrays (Equinox heads rebuilt inside)


def _partial_ot_head(protos, z, z_b, codes, w):
    # the head's logits and its swapped loss at fixed pseudo-labels (the head's gradient:
    # the codes are stop-gradient targets, tests/nn/test_deep_heads.py checks the head's
    # autodiff gradient equals this one)
    head = jeqx.PartialOTClusteringHead(z.shape[1], protos.shape[0], temperature=0.5,
                                        prototypes=protos)
    c = _normalise_rows(codes)
    w = jnp.abs(w)
    loss = 0.5 * (jdeep.pseudo_label_loss(head(z), c[::-1], w[::-1])
                  + jdeep.pseudo_label_loss(head(z_b), c, w))
    return head(z), loss


def _dec_head(centroids, z, p):
    head = jeqx.DECHead(z.shape[1], centroids.shape[0], centroids=centroids)
    return head(z), head.loss(z, _normalise_rows(p))


def _tell_layer(centroids, z):
    layer = jeqx.TELLLayer(z.shape[1], centroids.shape[0], temperature=0.8,
                           centroids=centroids)
    return layer(z)


def _swav_head(protos, z, codes):
    # SwAV/SIGMA's gradient path: the cosine scores, and the swapped cross-entropy at given
    # codes (``swav_codes`` are stop-gradient targets, as in the head's ``loss``)
    head = jeqx.SinkhornClusteringHead(z.shape[1], protos.shape[0], temperature=0.5,
                                       prototypes=protos)
    s = head(z)
    return s, jdeep.pseudo_label_loss(s / head.temperature, _normalise_rows(codes))


def _kmeans_layer(centroids, z):
    layer = jeqx.KMeansLayer(z.shape[1], centroids.shape[0], temperature=0.8,
                             centroids=centroids)
    return layer(z)


def _mlc_head(w_z, w_c, x):
    # MLC: both heads' weights and the input; the loss reaches the cluster head through Gamma
    import equinox as eqx

    head = jeqx.MLCHead(x.shape[1], w_z.shape[1], weight=w_z, eta=0.5)
    head = eqx.tree_at(lambda h: h.cluster_weight, head, w_c)
    z, g = head(x)
    return z, g, head.loss(x)


def _group_heads(protos, c, z, z_b, codes, w):
    return (_partial_ot_head(protos, z, z_b, codes, w) + _dec_head(c, z, codes)
            + _tell_layer(c, z) + _swav_head(protos, z, codes) + _kmeans_layer(c, z))


def cases() -> list[Case]:
    rng = np.random.default_rng(77)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    x = f32(rng.normal(size=(10, 3)))
    c = f32(rng.normal(size=(4, 3)))
    p = f32(rng.uniform(size=(10, 4)))
    lp = f32(2.0 * rng.normal(size=(10, 4)))
    z = f32(rng.normal(size=(10, 5)))
    w = f32(rng.uniform(0.2, 1.0, size=10))
    step = f32(4.0)
    return [
        Case("deep-group-targets", "p2ot_codes", _group_targets, (lp, p, step)),
        Case("deep-group-losses", "tell_loss", _group_losses, (x, c, p, lp, w, f32(0.8)),
             (0, 1, 2, 3, 4, 5)),
        # the five heads' outputs and losses in their parameters and inputs
        Case("deep-group-heads", "pseudo_label_loss", _group_heads,
             (c, c * 0.7 + 0.1, x, x[::-1] + 0.1, p, w), (0, 1, 2, 3, 4, 5)),
        # one case per function and head (slow: the groups above run the same code)
        Case("nn-PartialOTClusteringHead", "pseudo_label_loss", _partial_ot_head,
             (c, x, x[::-1] + 0.1, p, w), (0, 1, 2, 3, 4), slow=True),
        Case("nn-DECHead", "dec_loss", _dec_head, (c, x, p), (0, 1, 2), slow=True),
        Case("nn-MLCHead", "mlc_loss", _mlc_head, (c[:3, :2], c[1:, :2] * 0.8 + 0.1, x),
             (0, 1, 2), slow=True),
        Case("nn-TELLLayer", "tell_loss", _tell_layer, (c, x), (0, 1), slow=True),
        Case("nn-SinkhornClusteringHead", "pseudo_label_loss", _swav_head, (c, x, p),
             (0, 1, 2), slow=True),
        Case("nn-KMeansLayer", "kmeans_loss", _kmeans_layer, (c, x), (0, 1), slow=True),
        Case("p2ot_codes", "p2ot_codes", _p2ot, (lp, f32(0.4)), slow=True),
        Case("sp2ot_codes", "sp2ot_codes", _sp2ot, (lp, z), slow=True),
        Case("mass_schedule", "mass_schedule", _mass_schedule, (step, f32(0.2)), (1,),
             slow=True),
        Case("dec_target", "dec_target", _dec_target, (p,), slow=True),
        Case("dec_loss", "dec_loss", _dec_loss, (x, c, p), (0, 1, 2), slow=True),
        Case("pseudo_label_loss", "pseudo_label_loss", _pseudo_label_loss, (lp, p, w),
             (0, 1, 2), slow=True),
        Case("tell_assignment", "tell_assignment", _tell, (x, c, f32(0.8)), (0, 1, 2),
             slow=True),
    ]
