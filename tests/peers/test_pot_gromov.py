"""Entropic GW and fused GW against POT 0.9.7 on shared inputs (float64).

Peer: PythonOT/POT ``ot/gromov/_bregman.py::entropic_gromov_wasserstein`` and
``entropic_fused_gromov_wasserstein`` (solver ``"PGD"``, ``loss_fun="square_loss"``), with
``ot/gromov/_utils.py::init_matrix`` / ``tensor_product`` / ``gwloss`` / ``gwggrad``. The same
``epsilon`` (POT's ``sinkhorn(p, q, tens, epsilon)`` and our KL-regularised Sinkhorn have the
same minimiser), the same start ``p q^T``, POT's defaults ``tol=1e-9``, ``max_iter=1000`` and
inner ``stopThr=1e-9``. POT checks the plan change every 10 iterations, we every iteration:
both stop within 1e-9 of the same fixed point. Tolerance: plans to 1e-8 absolute (entries
~1e-2), losses ``gw_dist`` / ``fgw_dist`` to 1e-8 relative.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import gromov_wasserstein
from tests.utils import enable_x64


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    xs, xt = rng.normal(size=(10, 2)), rng.normal(size=(8, 3))
    C1, C2 = ot.dist(xs, xs), ot.dist(xt, xt)
    C1, C2 = C1 / C1.max(), C2 / C2.max()
    p, q = rng.uniform(0.2, 1, 10), rng.uniform(0.2, 1, 8)
    M = ot.dist(xs, xt[:, :2])
    return C1, C2, p / p.sum(), q / q.sum(), M / M.max()


@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_entropic_gw_and_fused_gw_equal_pot(fused):
    C1, C2, p, q, M = _problem()
    eps = 0.05
    if fused:
        T, log = ot.gromov.entropic_fused_gromov_wasserstein(M, C1, C2, p, q, epsilon=eps,
                                                             alpha=0.3, log=True)
        expected = log["fgw_dist"]
    else:
        T, log = ot.gromov.entropic_gromov_wasserstein(C1, C2, p, q, epsilon=eps, log=True)
        expected = log["gw_dist"]
    with enable_x64():
        kw = dict(M=jnp.asarray(M), alpha=0.3) if fused else {}
        res = gromov_wasserstein(jnp.asarray(C1), jnp.asarray(C2), jnp.asarray(p),
                                 jnp.asarray(q), epsilon=eps, **kw)
        assert bool(res.converged)
        np.testing.assert_allclose(res.plan, T, atol=1e-8)
        np.testing.assert_allclose(float(res.cost), expected, rtol=1e-8)


@pytest.mark.slow
def test_ott_with_half_epsilon_gives_the_same_plan():
    """ott-jax 0.6 ``solvers/quadratic/gromov_wasserstein.py`` linearises the square loss with
    half of POT's gradient ``2 tens(T)``: its ``epsilon`` is half of ours / POT's for the same
    problem (found while benchmarking). Both to convergence, float64: plans to 1e-6."""
    from ott.geometry import geometry
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein as ott_gw

    from tests.utils import allow_rank_promotion

    C1, C2, _, _, _ = _problem()
    with enable_x64(), allow_rank_promotion():
        ours = gromov_wasserstein(jnp.asarray(C1), jnp.asarray(C2), epsilon=0.02)
        solver = ott_gw.GromovWasserstein(
            ott_sinkhorn.Sinkhorn(threshold=1e-9, max_iterations=5000), epsilon=0.01,
            max_iterations=200, threshold=1e-9)
        out = solver(quadratic_problem.QuadraticProblem(
            geometry.Geometry(cost_matrix=jnp.asarray(C1)),
            geometry.Geometry(cost_matrix=jnp.asarray(C2))))
        assert bool(ours.converged) and bool(out.converged)
        np.testing.assert_allclose(out.matrix, ours.plan, atol=1e-6)


@pytest.mark.slow
def test_non_symmetric_costs_equal_pot():
    """Non-symmetric C1, C2: POT averages the gradients of the problem and its transpose, as
    we do (with uniform weights on this data the iteration cycles: both run 1000 steps to the
    same plan and we say ``converged=False``, seen in a manual run)."""
    rng = np.random.default_rng(1)
    A, B = rng.uniform(size=(10, 10)), rng.uniform(size=(8, 8))
    _, _, p, q, _ = _problem()
    T, log = ot.gromov.entropic_gromov_wasserstein(A, B, p, q, epsilon=0.05, log=True)
    with enable_x64():
        res = gromov_wasserstein(jnp.asarray(A), jnp.asarray(B), jnp.asarray(p),
                                 jnp.asarray(q), epsilon=0.05)
        np.testing.assert_allclose(res.plan, T, atol=1e-8)
        np.testing.assert_allclose(float(res.cost), log["gw_dist"], rtol=1e-8)
        assert bool(res.converged) == (float(res.error) < 1e-9)
