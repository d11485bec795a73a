"""Greedy k-means++ seeding: the law of its draws and the shape of its program.

The exact probabilities come from the definition of k-means++ (Arthur & Vassilvitskii,
SODA 2007, section 2.2): the first centre is point ``i`` with probability ``w_i / W``; with
one candidate per centre (``n_local_trials=1``: plain k-means++), the next centre is point
``j`` with probability ``w_j D_j^2 / sum_l w_l D_l^2``, ``D`` the distance to the centres
chosen so far. They are computed here in NumPy, independently of the sampler (which draws by
inverse CDF from uniforms drawn all at once), and compared with the frequencies of 20,000
seedings (one vmapped program) by a chi-square statistic.

Threshold: for a correct sampler the statistic is chi-square with ``m - 1`` degrees of freedom
(``m`` cells of positive probability); the bounds used are its 1 - 1e-6 quantiles (30.7 for
m = 4, 48.9 for m = 12; scipy.stats.chi2.ppf), so a correct sampler fails with probability
1e-6 per check (the keys are fixed: the outcome is deterministic). A sampler that ignores
the weights or D^2 gives statistics in the thousands.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust.cluster import kmeans_plusplus
from jaxclust.cluster.lloyd import greedy_plusplus

_X = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)  # 5 distinct points
_W = np.array([1.0, 2.0, 3.0, 4.0, 0.0], np.float32)  # the last one is never drawn
_DRAWS = 20_000


def _seedings(k):
    """``(_DRAWS, k)`` indices of the centres of ``_DRAWS`` seedings (independent keys)."""
    keys = jax.random.split(jax.random.key(2026), _DRAWS)
    seed = jax.jit(jax.vmap(lambda kk: kmeans_plusplus(jnp.asarray(_X), k, key=kk,
                                                      weights=jnp.asarray(_W),
                                                      n_local_trials=1)))
    centres = np.asarray(seed(keys))[:, :, 0]  # (draws, k): 1-D points
    idx = np.argmin(np.abs(centres[:, :, None] - _X[None, None, :, 0]), axis=2)
    np.testing.assert_array_equal(_X[idx, 0], centres)  # every centre is a data point
    return idx


def _chi2(counts, probs):
    pos = probs > 0
    assert counts[~pos].sum() == 0, "a point of probability 0 was drawn"
    expected = probs[pos] * counts.sum()
    return float(np.sum((counts[pos] - expected) ** 2 / expected)), int(pos.sum())


def test_first_and_second_centre_follow_the_kmeanspp_law():
    idx = _seedings(2)
    w = _W.astype(np.float64)
    x = _X[:, 0].astype(np.float64)
    # first centre ~ w
    first = np.bincount(idx[:, 0], minlength=5)
    stat, m = _chi2(first, w / w.sum())
    assert m == 4 and stat < 30.7, (first, stat)
    # (first, second) jointly: P(i) * w_j (x_j - x_i)^2 / sum_l w_l (x_l - x_i)^2
    d2 = (x[None, :] - x[:, None]) ** 2
    joint = (w / w.sum())[:, None] * (w[None, :] * d2) / (w[None, :] * d2).sum(1, keepdims=True)
    counts = np.zeros((5, 5))
    np.add.at(counts, (idx[:, 0], idx[:, 1]), 1)
    stat, m = _chi2(counts.ravel(), joint.ravel())
    assert m == 12 and stat < 48.9, (counts, stat)


def _primitives(jaxpr, in_loop=False):
    """``(primitive name, inside a loop body)`` of every equation, nested jaxprs included."""
    for eqn in jaxpr.eqns:
        yield eqn.primitive.name, in_loop
        loop = in_loop or eqn.primitive.name in ("scan", "while")
        for v in eqn.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from _primitives(sub.jaxpr, loop)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from _primitives(sub, loop)


def test_random_numbers_are_drawn_once_outside_the_loop():
    # one random-number call (one threefry kernel in the compiled program) for the whole
    # seeding, none inside the loop over the centres (first-call compile time, issue 15 §3)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(40, 3)), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda kk: greedy_plusplus(x, 5, kk, jnp.ones(40), None))(
        jax.random.key(0))
    prims = list(_primitives(jaxpr.jaxpr))
    random = [(name, loop) for name, loop in prims if name.startswith("random_")]
    assert random == [("random_bits", False)], random
    assert any(loop for _, loop in prims)  # the loop over the centres was seen
