"""Conformance cases of ``jaxclust.distributed``: the sharded functions on a one-device mesh
(the test process has one CPU device; the 8-device behaviour is checked in a subprocess by
test_sharded_cluster.py) under jit and vmap, and against float64 finite differences where
the single-device function is differentiable: the envelope gradients of ``kmeans``
(centroids and inertia) and the KNN score. ``minibatch_kmeans`` has no exact derivative
(its centroids are a stochastic stream; see its docstring), so it has no gradient check.

The points enter as plain arrays and are sharded inside the wrapped functions (``shard``
runs under jit and vmap too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxclust.distributed as jd
import jaxclust.ood as ood
from tests.conformance import Case
from tests.distributed._ot_cases import ot_cases

MODULES = [jd]
# host-side helpers: building a mesh, placing arrays on it, fetching arrays to numpy and
# reading the text of compiled HLO are not array functions to jit, vmap or differentiate
HOST_ONLY = {"make_mesh", "shard", "gather"}

_MESH = jd.make_mesh(jax.devices()[:1])


def _kmeans_knn(x, f):
    res = jd.kmeans(jd.shard(x, _MESH), 3, key=jax.random.key(0), n_init=2)
    bank = jd.shard(ood.fit_knn(x).bank, _MESH)
    return res.centroids, res.labels, res.inertia, jd.knn(f, bank, k=2)


def _minibatch_kmeans(x):
    res = jd.minibatch_kmeans(jd.shard(x, _MESH), 3, key=jax.random.key(0), batch_size=6,
                              max_steps=10)
    return res.centroids, res.labels, res.inertia


def _minibatch_kmeans_init(x):
    # given centres: the sharded batch stream and final assignment without the seeding
    # program (a third of the compile time); the seeding is in the slow case above
    res = jd.minibatch_kmeans(jd.shard(x, _MESH), 3, key=jax.random.key(0), batch_size=6,
                              max_steps=10, init=x[jnp.array([0, 4, 8])])
    return res.centroids, res.labels, res.inertia


def cases() -> list[Case]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 2)) + np.repeat([[0, 0], [4, 0], [0, 4]], 4, axis=0),
                    jnp.float32)
    f = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
    return [
        Case("distributed-kmeans-knn", "kmeans", _kmeans_knn, (x, f), (0, 1)),
        Case("distributed-knn", "knn", _kmeans_knn, (x, f), (0, 1), slow=True),
        Case("distributed-minibatch_kmeans-init", "minibatch_kmeans", _minibatch_kmeans_init,
             (x,)),
        Case("distributed-minibatch_kmeans", "minibatch_kmeans", _minibatch_kmeans, (x,),
             slow=True),
    ] + ot_cases()  # Sinkhorn, SwAV codes and the SDP
