"""Conformance cases of the OT additions of issue 18 (sliced / 1-D OT, Gromov-Wasserstein,
barycenters, assignment): jit, vmap (batch of 3) and float64 finite differences.

Weights are normalised inside the wrapped functions (the multiplicative perturbations of the
checks keep them positive). Fast-suite budget: the float64 finite-difference checks and the
gromov / barycenter / assignment / accuracy cases are slow-marked (each ~2-6 s of compilation
on a loaded 2-core machine); their fast jit / vmap checks live in tests/ot/test_lap.py,
tests/metrics/test_clustering.py and the peer tests."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxclust.metrics as jmet
import jaxclust.ot as jot
from tests.conformance import Case

MODULES = [jot]

_rng = np.random.default_rng(18)


def _f32(a):
    return jnp.asarray(a, jnp.float32)


def _w1d(u, v, wu, wv):
    return jot.wasserstein_1d(u, v, wu, wv, p=2)


def _sliced(x, y, a, theta):
    return jot.sliced_wasserstein(x, y, a, p=2, projections=theta)


def _sliced_and_1d(x, y, a, theta, u, v, wv):
    # one compiled program for both functions (fast suite); each also has a slow case of its own
    return _sliced(x, y, a, theta), _w1d(u, v, a, wv)


def _lap(c):
    res = jot.linear_sum_assignment(c)
    return res.cols, res.cost


def _accuracy(lt, lp):
    # eagerly a Python float (SciPy), traced a float32 scalar (device Hungarian): same value
    return jnp.asarray(jmet.clustering_accuracy(lt, lp, n_true=3, n_pred=4), jnp.float32)


def _gw(C1, C2, M, b):
    # reg_cost's gradients are envelope gradients: exact at a tightly converged plan
    tol = 1e-11 if C1.dtype == jnp.float64 else 1e-5
    res = jot.gromov_wasserstein(C1, C2, None, b / b.sum(), M=M, alpha=0.4, epsilon=0.3,
                                 tol=tol, inner_tol=tol * 0.1, max_iter=500)
    # the plan carries no gradient (stop-gradient: envelope theorem), so it is not an output
    return res.reg_cost, res.converged


def _pnorm_sinkhorn(x, y, z):
    # a named p-norm cost, online (dense = online = materialised: tests/ot/test_costs.py),
    # and the entropic map / potentials at new points (ott-jax peer: tests/peers/
    # test_ott_entropic_map.py); tight tol for the float64 FD check
    tol = 1e-11 if x.dtype == jnp.float64 else 1e-4
    res = jot.sinkhorn(x, y, epsilon=0.5, cost=jot.Minkowski(1.5), chunk_size=2, tol=tol,
                       max_iter=3000)
    # balanced potentials are defined up to a constant: differentiate their differences
    pot = res.potentials(z, forward=False)
    return res.reg_cost, res.transport(z), pot - pot[0]


def _barycenter(locs, x0):
    # exact mode (device Hungarian); x is differentiable in locs (implicit, locally constant
    # assignments), x0 is a start only (zero gradient)
    res = jot.barycenter(locs, x0, max_iter=20)
    return res.x, res.converged


def _barycenter_entropic(locs, w):
    tol = 1e-24 if locs.dtype == jnp.float64 else 1e-10
    res = jot.barycenter(locs, locs[0, :3] * 0.5, w / w.sum(1, keepdims=True), epsilon=0.5,
                         tol=tol, inner_tol=1e-12 if locs.dtype == jnp.float64 else 1e-5,
                         max_iter=300)
    return res.x


def cases() -> list[Case]:
    x, y = _f32(_rng.normal(size=(6, 2))), _f32(_rng.normal(size=(5, 2)))
    u, v = _f32(_rng.normal(size=6)), _f32(_rng.normal(size=5))
    wu, wv = _f32(_rng.uniform(0.2, 1, 6)), _f32(_rng.uniform(0.2, 1, 5))
    theta = _f32(_rng.normal(size=(2, 4)))
    return [
        Case("sliced_and_1d", "sliced_wasserstein", _sliced_and_1d, (x, y, wu, theta, u, v, wv),
             (0, 1, 2, 3, 4, 5, 6), slow_grad=True),
        Case("sinkhorn_pnorm_costs", "sinkhorn", _pnorm_sinkhorn,
             (x, y, _f32(_rng.normal(size=(3, 2)))), (0, 1, 2),
             slow_grad=True, rtol=1e-4),
        Case("wasserstein_1d", "wasserstein_1d", _w1d, (u, v, wu, wv), (0, 1, 2, 3), slow=True),
        Case("sliced_wasserstein", "sliced_wasserstein", _sliced, (x, y, wu, theta),
             (0, 1, 2, 3), slow=True),
        # the total cost is differentiable in the matrix (the assignment is locally constant)
        Case("linear_sum_assignment", "linear_sum_assignment", _lap,
             (_f32(_rng.normal(size=(4, 5))),), (0,), slow=True),
        Case("gromov_wasserstein", "gromov_wasserstein", _gw,
             (_f32(_rng.uniform(size=(5, 5))) + _f32(_rng.uniform(size=(5, 5))).T,
              _f32(_rng.uniform(size=(4, 4))) + _f32(_rng.uniform(size=(4, 4))).T,
              _f32(_rng.uniform(size=(5, 4))), _f32(_rng.uniform(0.2, 1, 4))), (0, 1, 2),
             rtol=1e-4, slow=True),
        Case("barycenter", "barycenter", _barycenter,
             (_f32(_rng.normal(size=(2, 4, 2))), _f32(_rng.normal(size=(4, 2)))), (0,),
             slow=True),
        Case("barycenter_entropic", "barycenter", _barycenter_entropic,
             (_f32(_rng.normal(size=(2, 4, 2))), _f32(_rng.uniform(0.2, 1, (2, 4)))), (0, 1),
             slow=True, rtol=1e-4),
        Case("clustering_accuracy", "clustering_accuracy", _accuracy,
             (jnp.asarray([0, 1, 2, 0, 1, 2, 0, 1], jnp.int32),
              jnp.asarray([1, 1, 2, 3, 0, 2, 1, 0], jnp.int32)), slow=True),
    ]
