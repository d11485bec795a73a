"""``SinkhornResult.transport`` / ``.potentials`` against ott-jax 0.6
``SinkhornOutput.to_dual_potentials()`` (``ott/problems/linear/potentials.py::DualPotentials.
transport``, ``ott/problems/linear/linear_problem.py::potential_fn_from_dual_vec``) on the same
problem, float64, and against the plan itself (the barycentric projection at solved points).

Convention difference found while porting (stated in the docstrings): ott's forward potential
function is ``-eps LSE_j(log b_j + (g_j - c(z, y_j)) / eps)`` although its ``g`` vector already
carries ``eps log b_j`` (ott's plan is ``exp((f + g - C) / eps)``, like ours). So ott's ``.f`` is
ours minus ``eps log m`` for uniform ``b``, its forward map equals ours for uniform ``b`` only;
backwards (``.g``, ``transport(forward=False)``) ott equals ours for any weights.
Tolerance: 1e-9 (both solved to a marginal error of 1e-12 in float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as ott_sinkhorn

from jaxclust.ot import sinkhorn
from tests.utils import allow_rank_promotion, enable_x64


@pytest.mark.slow  # ~12 s (two float64 solves and their compilations)
def test_entropic_map_equals_ott_and_the_plan():
    rng = np.random.default_rng(0)
    with enable_x64(), allow_rank_promotion():
        x = jnp.asarray(rng.normal(size=(12, 2)))
        y = jnp.asarray(rng.normal(size=(9, 2)) + 1.0)
        z = jnp.asarray(rng.normal(size=(5, 2)))
        a = jnp.asarray(rng.uniform(0.2, 1.0, 12))
        a = a / a.sum()
        eps = 0.3
        out = ott_sinkhorn.Sinkhorn(threshold=1e-12, max_iterations=10000)(
            linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=eps), a))
        pot = out.to_dual_potentials()
        res = sinkhorn(x, y, a, epsilon=eps, tol=1e-12, max_iter=10000)
        assert bool(res.converged)
        np.testing.assert_allclose(res.transport(z), pot.transport(z), atol=1e-9)
        np.testing.assert_allclose(res.transport(z, forward=False),
                                   pot.transport(z, forward=False), atol=1e-9)
        np.testing.assert_allclose(res.potentials(z), jax.vmap(pot.f)(z) - eps * np.log(9),
                                   atol=1e-9)
        np.testing.assert_allclose(res.potentials(z, forward=False), jax.vmap(pot.g)(z),
                                   atol=1e-9)
        # at the solved points: the plan's barycentric projection and the relative potentials
        plan = res.plan
        np.testing.assert_allclose(res.transport(x), (plan @ y) / plan.sum(1)[:, None],
                                   atol=1e-9)
        np.testing.assert_allclose(res.potentials(x), res.f - eps * jnp.log(a), atol=1e-9)
