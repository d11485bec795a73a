"""The winning restart of ``n_init`` runs, reproducible across batching and backends.

A plain ``argmin`` over the restarts' objectives breaks ties by rounding: when several
restarts reach the same partition (the usual case on well-separated data) their objectives
differ only in the last bits, and which one wins then depends on the summation order of the
program, which differs between a single solve and a batched one (``vmap``), between CPU and
GPU kernels and between XLA versions. The labels of the winner are then a permutation of
another restart's: the same clustering, reported differently. Measured on an H200 (jax
0.11.2): ``jit(vmap(kmeans(..., n_init=4)))`` over 64 problems of 64 points chose another
restart than the single solves in 39 of 64 problems (benchmarks/results/batched_gpu_h200.md).

:func:`best_restart` takes the **first** restart whose objective is within a relative
``rtol`` of the best one, as scikit-learn's ``KMeans`` keeps an earlier restart unless a
later one is strictly better and a different clustering. A restart better by less than
``rtol`` (relative) loses to an earlier one: the cost of reproducibility, below float32's
summation error on the inertia of a few thousand points.
"""

from __future__ import annotations

import jax.numpy as jnp

#: objectives within this relative distance of the best count as a tie (float32 sums)
RESTART_RTOL = 1e-5


def best_restart(scores, *, axis: int = 0, maximize: bool = False,
                 rtol: float = RESTART_RTOL):
    """Index along ``axis`` of the first restart within ``rtol`` (relative) of the best.

    NaN scores never win (unless all are NaN: index 0).
    """
    s = -scores if maximize else scores
    s = jnp.where(jnp.isnan(s), jnp.inf, s)
    best = jnp.min(s, axis=axis, keepdims=True)
    slack = rtol * jnp.maximum(jnp.abs(best), jnp.finfo(s.dtype).tiny)
    within = s <= jnp.where(jnp.isfinite(best), best + slack, best)
    return jnp.argmax(within, axis=axis)  # the first True
