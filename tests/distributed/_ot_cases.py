"""Conformance cases of the sharded Sinkhorn, SwAV codes and BM k-means SDP of
``jaxclust.distributed`` on a one-device mesh (jit and vmap; the 8-device equality with the
single-device functions is checked in a subprocess by test_sharded_ot.py).

Gradients: ``sinkhorn`` (implicit differentiation) against float64 finite differences;
``swav_codes`` are targets without gradient (``stop_gradient``, as the single-device
function) and the SDP is not differentiable (labels, a non-convex factor).
``ot_cases()`` is meant to be added to the list of ``conformance_cases.cases()``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust.distributed import _mesh as jd
from jaxclust.distributed._ot import sinkhorn, swav_codes
from jaxclust.distributed._sdp import kmeans_sdp
from jaxclust.sdp import BurerMonteiro
from tests.conformance import Case

_MESH = jd.make_mesh(jax.devices()[:1])


def _sinkhorn(x, y):
    # gauge-invariant outputs (balanced potentials are defined up to (f + c, g - c)), as in
    # the single-device sinkhorn cases of tests/test_conformance.py
    tol = 1e-10 if x.dtype == jnp.float64 else 1e-5
    res = sinkhorn(jd.shard(x, _MESH), y, epsilon=1.0, tol=tol, max_iter=3000, chunk_size=4)
    return res.reg_cost, res.linear_cost, res.converged


def _swav(s):
    return swav_codes(jd.shard(s, _MESH), epsilon=0.5, n_iter=3)


def _kmeans_sdp(x):
    res = kmeans_sdp(jd.shard(x, _MESH), 3, key=jax.random.key(0),
                     solver=BurerMonteiro(max_iter=60))
    return res.stats.factor, res.labels, res.objective


def ot_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 2)) + np.repeat([[0, 0], [4, 0], [0, 4]], 4, axis=0),
                    jnp.float32)
    y = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
    s = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    return [
        # the float64 gradient check compiles the solve twice more: slow, like the single-device
        # online case; its fast counterpart is the 8-device float64 gradient equality test
        # (test_sharded_ot.py::test_sinkhorn_gradients_equal_single_device)
        Case("distributed-sinkhorn", "sinkhorn", _sinkhorn, (x, y), (0, 1), slow_grad=True),
        Case("distributed-swav_codes", "swav_codes", _swav, (s,)),
        # slow: BM + the k-means rounding compile twice (jit, vmap); the fast counterpart is
        # the 8-device equality test (test_sharded_ot.py::test_bm_sdp_equals_single_device)
        Case("distributed-kmeans_sdp", "kmeans_sdp", _kmeans_sdp, (x,), slow=True),
    ]
