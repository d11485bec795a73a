"""Conformance cases of ``jaxclust.graph``: jit, vmap (batch of 3) and float64 finite-difference
gradients.

Graph constructions select neighbours (``top_k``, thresholds): piecewise in ``x``; the cases
use points whose neighbour sets do not change under the small perturbations of the checks,
and their gradients are taken through the weights only (Gaussian / alpha-decay kernels).
``epsilon_graph`` is differentiated through its Gaussian weights as well. The gradients of
``heat_kernel`` (same code as ``heat_diffusion``, whose gradient is fast) and of
``heat_kernel_expm`` are slow checks (fast-suite budget). ``heat_geodesic_embedding`` is
not differentiated here (its parts are: ``alpha_decay_graph``, ``heat_geodesic_distances``,
``mds``). ``sweep_cut`` and ``local_cluster`` select a prefix (piecewise constant
mask): jit and vmap only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxclust.graph as jg
from tests.conformance import Case

MODULES = [jg]

_rng = np.random.default_rng(0)
# a jittered grid: distinct, well separated neighbour distances
_X = jnp.asarray(np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0)), -1).reshape(9, 2)
                 * np.array([1.0, 1.7]) + 0.05 * _rng.normal(size=(9, 2)), jnp.float32)
_W = jnp.asarray(jg.knn_graph(_X, k=3, sigma=1.0))
_L = jnp.asarray(jg.laplacian(_W))
_S = jnp.asarray(_rng.normal(size=(9, 2)), jnp.float32)
_T = jnp.asarray(1.5, jnp.float32)


def _knn(x):
    return jg.knn_graph(x, k=3, sigma=1.0)


def _eps(x):
    return jg.epsilon_graph(x, epsilon=1.5, sigma=1.0)


def _alpha(x):
    return jg.alpha_decay_graph(x, k=3, decay=4.0, threshold=0.0)


def _lap(w):
    return jg.laplacian(0.5 * (w + w.T), kind="symmetric")


def _lap_rw(w):
    return jg.laplacian(w, kind="random_walk")


def _heat(lap, t):
    return jg.heat_kernel(lap, t, order=16, lmax=2.5)


def _heat_diff(lap, s, t):
    return jg.heat_diffusion(lap, s, t, order=16)


def _expm(lap, t):
    return jg.heat_kernel_expm(lap, t)


def _coeffs(a):
    return jg.chebyshev_coefficients(a, 8)


def _hgd(w, t):
    return jg.heat_geodesic_distances(w, t, order=12, harnack=0.3)


def _mds(d):
    d = 0.5 * (d + d.T)
    return jg.mds(d, dim=2, n_iter=5)


def _hge(x):
    return jg.heat_geodesic_embedding(x, k=3, decay=10.0, t=2.0, order=12, mds_iters=5)


def _fastrp(a):
    return jg.fastrp(a, jax.random.key(0), weights=(1.0, 2.0), dim=4, alpha=-0.5,
                     normalization=True)


_Y = jnp.asarray([1, 1, 1, 0, 1, 0, 0, 1, 0], jnp.int32)
_SEED = jnp.asarray(0, jnp.int32)


def _lwg(a, y):
    return jg.label_weighted_graph(a, y, epsilon=0.2)


def _ppr(a, s):
    return jg.personalized_pagerank(a, s, alpha=0.3)


def _sweep(a, p):
    return jg.sweep_cut(a, p)


def _local(a, s, y):
    return jg.local_cluster(a, s, y)


_P = jnp.asarray(jg.personalized_pagerank(_W, 0))
_D = jnp.sqrt(jg.pairwise_sq_dists(_X)) ** 0.9


def cases() -> list[Case]:
    return [
        Case("pairwise_sq_dists", "pairwise_sq_dists", jg.pairwise_sq_dists, (_X,), (0,)),
        Case("knn_graph", "knn_graph", _knn, (_X,), (0,)),
        Case("epsilon_graph", "epsilon_graph", _eps, (_X,), (0,)),
        Case("alpha_decay_graph", "alpha_decay_graph", _alpha, (_X,), (0,)),
        Case("laplacian", "laplacian", _lap, (_W,), (0,)),
        Case("laplacian_rw", "laplacian", _lap_rw, (_W,), (0,)),
        Case("heat_kernel", "heat_kernel", _heat, (_L, _T), (0, 1), rtol=1e-4, slow_grad=True),
        Case("heat_diffusion", "heat_diffusion", _heat_diff, (_L, _S, _T), (0, 1, 2),
             rtol=1e-4),
        Case("heat_kernel_expm", "heat_kernel_expm", _expm, (_L, _T), (0, 1), rtol=1e-4,
             slow_grad=True),
        Case("chebyshev_coefficients", "chebyshev_coefficients", _coeffs,
             (jnp.asarray(2.0, jnp.float32),), (0,)),
        Case("heat_geodesic_distances", "heat_geodesic_distances", _hgd, (_W, _T), (0, 1),
             rtol=1e-4),
        # eigh + SMACOF: float32 rounding differs between the fused and vmapped programs
        Case("mds", "mds", _mds, (_D,), (0,), rtol=1e-3),
        Case("heat_geodesic_embedding", "heat_geodesic_embedding", _hge, (_X,), rtol=1e-3),
        Case("fastrp", "fastrp", _fastrp, (_W,), (0,), rtol=1e-4),
        Case("label_weighted_graph", "label_weighted_graph", _lwg, (_W, _Y), (0,)),
        Case("personalized_pagerank", "personalized_pagerank", _ppr, (_W, _SEED), (0,),
             rtol=1e-4),
        Case("sweep_cut", "sweep_cut", _sweep, (_W, _P), rtol=1e-4),
        Case("local_cluster", "local_cluster", _local, (_W, _SEED, _Y), rtol=1e-4),
    ]
