"""The sharded functions take the signature of their single-device counterparts (issue 17
§1): the same parameter names, order and defaults after the data argument (a
``ShardedPoints`` instead of an array), and every option that cannot apply to sharded points
raises a ``ValueError`` naming it instead of being ignored."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import pytest

from jaxclust import cluster, distributed as jd, ood, ot, sdp

PAIRS = [
    (jd.kmeans, cluster.kmeans, set()),
    (jd.minibatch_kmeans, cluster.minibatch_kmeans, set()),
    (jd.sinkhorn, ot.sinkhorn, set()),
    # `mesh`: where an unsharded batch of scores goes (a ShardedPoints carries its own)
    (jd.swav_codes, ot.swav_codes, {"mesh"}),
    (jd.knn, ood.knn, set()),
    (jd.kmeans_sdp, sdp.kmeans_sdp, set()),
]


def _params(fn, skip=()):
    ps = list(inspect.signature(fn).parameters.values())[1:]  # after the data argument
    return [(p.name, p.kind, p.default) for p in ps if p.name not in skip]


@pytest.mark.parametrize("sharded, single, extra", PAIRS,
                         ids=[p[0].__name__ for p in PAIRS])
def test_same_signature_as_single_device(sharded, single, extra):
    if sharded is jd.knn:  # the bank (a ShardedPoints) stands where the fitted stats stand
        assert _params(sharded)[1:] == _params(single)[1:]
        return
    if sharded is jd.sinkhorn:  # chunk_size: None is the automatic (online) block of 512
        got = [(n, k, None if n == "chunk_size" else d) for n, k, d in _params(sharded)]
        want = [(n, k, None if n == "chunk_size" else d) for n, k, d in _params(single)]
        assert got == want
        return
    if sharded is jd.kmeans_sdp:  # default solver: the one that applies (ADMM forms n x n)
        assert [(n, k) for n, k, _ in _params(sharded)] == [(n, k) for n, k, _ in
                                                           _params(single)]
        assert isinstance(inspect.signature(sharded).parameters["solver"].default,
                          sdp.BurerMonteiro)
        return
    assert _params(sharded, extra) == _params(single)


_MESH = jd.make_mesh(jax.devices()[:1])
_PTS = jd.shard(jnp.ones((4, 2)), _MESH)
_KEY = jax.random.key(0)

NOT_APPLICABLE = [
    ("kmeans", lambda: jd.kmeans(_PTS, 2, key=_KEY, weights=jnp.ones(4)), "weights"),
    ("kmeans", lambda: jd.kmeans(_PTS, 2, key=_KEY, callback=print), "callback"),
    ("kmeans", lambda: jd.kmeans(_PTS, 2, key=_KEY, algorithm="hamerly"), "algorithm"),
    ("minibatch_kmeans", lambda: jd.minibatch_kmeans(_PTS, 2, key=_KEY, weights=jnp.ones(4)),
     "weights"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), jnp.ones(4) / 4, epsilon=1.0),
     "a"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0, mass=0.5), "mass"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0,
                                     init=(jnp.zeros(4), jnp.zeros(3))), "init"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0, epsilon_init=10.0),
     "epsilon_init"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0, epsilon_decay=0.5),
     "epsilon_decay"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0, implicit=False),
     "implicit"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0, callback=print),
     "callback"),
    ("sinkhorn", lambda: jd.sinkhorn(_PTS, jnp.ones((3, 2)), epsilon=1.0, mode="kernel"),
     "mode"),
]


@pytest.mark.parametrize("name, call, option", NOT_APPLICABLE,
                         ids=[f"{n}-{o}" for n, _, o in NOT_APPLICABLE])
def test_option_that_does_not_apply_raises(name, call, option):
    with pytest.raises(ValueError, match=f"`{option}`"):
        call()
