"""Named p-norm costs (issue 18): ``"manhattan"``, ``Minkowski(p)``, ``PNormP(p)``,
``SqPNorm(p)``.

* the cost matrices equal SciPy's ``cdist`` (``cityblock`` / ``minkowski``) and ott-jax's
  ``costs.PNormP(p)`` / ``costs.SqPNorm(p)`` ``all_pairs`` (float64, independent code);
* ``sinkhorn(x, y, cost=...)`` in the dense and the online (``chunk_size``) mode equals
  ``sinkhorn_from_cost`` on the materialised matrix, and (slow) ott-jax's Sinkhorn on a
  ``PointCloud`` with the same cost (float64);
* gradients through the cost agree with finite differences; at coincident coordinates the
  derivative of ``|t|`` (p = 1) is the subgradient 0;
* bad ``p`` and unknown names raise ``ValueError`` naming ``cost``; clouds whose cost
  overflows raise naming the cloud.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from jaxclust._core.costs import pairwise_cost
from jaxclust.ot import Minkowski, PNormP, SqPNorm, sinkhorn, sinkhorn_from_cost
from tests.conformance import check_grad_fd
from tests.utils import enable_x64

_rng = np.random.default_rng(1818)
_X = _rng.normal(size=(7, 3))
_Y = _rng.normal(size=(5, 3)) + 0.5


def _l1_15(u, v):  # a custom cost c(x_i, y_j) (not a named one)
    return jnp.sum(jnp.abs(u - v)) ** 1.5


def _l1_15_matrix(x, y):
    return jnp.sum(jnp.abs(x[:, None, :] - y[None, :, :]), -1) ** 1.5


def test_matrices_equal_scipy_and_ott_float64():
    from ott.geometry import costs as ott_costs

    minkowski = [Minkowski(p) for p in (0.5, 1.0, 1.5, 3.0)]
    ott_pairs = [(cls(p), ott_cls(p)) for p in (1.0, 1.5, 3.0)
                 for cls, ott_cls in ((PNormP, ott_costs.PNormP), (SqPNorm, ott_costs.SqPNorm))]

    @jax.jit
    def ours(x, y):  # one program for all the matrices and pair calls
        return (pairwise_cost(x, y, "manhattan"), [pairwise_cost(x, y, c) for c in minkowski],
                [(pairwise_cost(x, y, c), c(x[0], y[1])) for c, _ in ott_pairs])

    with enable_x64():
        x, y = jnp.asarray(_X), jnp.asarray(_Y)
        l1, mink, pnorms = ours(x, y)
        np.testing.assert_allclose(l1, cdist(_X, _Y, "cityblock"), rtol=1e-13)
        for c, got in zip(minkowski, mink):
            np.testing.assert_allclose(got, cdist(_X, _Y, "minkowski", p=c.p), rtol=1e-13)
        for (c, theirs), (got, pair) in zip(ott_pairs, pnorms):
            np.testing.assert_allclose(got, theirs.all_pairs(x, y), rtol=1e-12, err_msg=repr(c))
            # the pair call (a custom cost c(x_i, y_j)) is the same function
            np.testing.assert_allclose(pair, theirs(x[0], y[1]), rtol=1e-12)


def test_sinkhorn_dense_online_equal_materialised():
    """One float64 program: dense, online (blocks of 3 rows, a ragged last one) and
    ``sinkhorn_from_cost`` on the materialised matrix, for PNormP(1.5) (ott's cost), and a
    plain callable cost online against its matrix (the fast-suite check of the callable
    path; tests/ot/test_custom_cost.py adds its gradients, slow)."""
    cost = PNormP(1.5)
    kw = dict(epsilon=0.3, tol=1e-11, max_iter=5000)
    with enable_x64():
        x, y = jnp.asarray(_X), jnp.asarray(_Y)

        @jax.jit
        def solve(x, y):
            dense = sinkhorn(x, y, cost=cost, **kw)
            online = sinkhorn(x, y, cost=cost, chunk_size=3, **kw)
            ref = sinkhorn_from_cost(pairwise_cost(x, y, cost), **kw)
            # a plain callable (double vmap, online) against its materialised matrix
            call = sinkhorn(x, y, cost=_l1_15, chunk_size=3, **kw)
            call_ref = sinkhorn_from_cost(_l1_15_matrix(x, y), **kw)
            return ((dense.reg_cost, dense.converged), (online.reg_cost, online.converged),
                    ref.reg_cost, dense.plan, ref.plan, (call.reg_cost, call.converged),
                    call_ref.reg_cost)

        (v_d, ok_d), (v_o, ok_o), v_ref, plan_d, plan_ref, (v_c, ok_c), v_cref = solve(x, y)
        assert bool(ok_d) and bool(ok_o) and bool(ok_c)
        np.testing.assert_allclose(v_d, v_ref, rtol=1e-10)
        np.testing.assert_allclose(v_o, v_ref, rtol=1e-10)
        np.testing.assert_allclose(v_c, v_cref, rtol=1e-10)
        np.testing.assert_allclose(plan_d, plan_ref, rtol=1e-8, atol=1e-13)


@pytest.mark.slow  # ~3-4 s of ott compilation; the fast suite compares the matrices with ott
def test_sinkhorn_equals_ott_pointcloud_with_the_same_cost():
    from ott.geometry import pointcloud
    from ott.geometry.costs import PNormP as OttPNormP
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    kw = dict(epsilon=0.3, tol=1e-11, max_iter=5000)
    with enable_x64():
        x, y = jnp.asarray(_X), jnp.asarray(_Y)
        v_d = sinkhorn(x, y, cost=PNormP(1.5), **kw).reg_cost
        geom = pointcloud.PointCloud(x, y, cost_fn=OttPNormP(1.5), epsilon=0.3)
        with jax.numpy_rank_promotion("allow"):  # ott broadcasts implicitly
            out = ott_sinkhorn.Sinkhorn(threshold=1e-11, max_iterations=5000)(
                linear_problem.LinearProblem(geom))
        # both are the same dual objective at a solution converged to 1e-11 (marginals)
        np.testing.assert_allclose(v_d, out.reg_ot_cost, rtol=1e-9)


def test_gradient_through_cost_matches_finite_differences():
    """float64, implicit gradients at tol 1e-11, w.r.t. both clouds, manhattan and SqPNorm(3)
    in one program; no coordinate of x equals one of y, so the costs are differentiable there
    (rtol 1e-5: FD step 1e-4)."""

    def fn(x, y):
        kw = dict(epsilon=0.3, tol=1e-11, max_iter=5000)
        return (sinkhorn(x, y, cost="manhattan", **kw).reg_cost,
                sinkhorn(x, y, cost=SqPNorm(3.0), **kw).reg_cost)

    check_grad_fd(fn, jnp.asarray(_X), jnp.asarray(_Y), argnums=(0, 1), rtol=1e-5)


def test_subgradient_at_coincident_coordinates():
    """|t| at t = 0 (p = 1): derivative 0, a subgradient; coincident points: finite, zero
    gradient for the roots (Minkowski, SqPNorm), as for ``"euclidean"``."""
    x = jnp.asarray([[0.0, 1.0], [2.0, 2.0]])
    y = jnp.asarray([[0.0, 3.0], [2.0, 2.0]])  # x_00 == y_00; x_1 == y_1
    g = jax.grad(lambda x: jnp.sum(pairwise_cost(x, y, "manhattan")))(x)
    # d/dx_ik sum_j |x_ik - y_jk|: sign terms, 0 where x_ik == y_jk
    expected = np.sign(np.asarray(x)[:, None, :] - np.asarray(y)[None, :, :]).sum(1)
    np.testing.assert_array_equal(g, expected)
    for cost in (Minkowski(1.5), SqPNorm(1.5), PNormP(0.5)):
        g = jax.grad(lambda x, c=cost: jnp.sum(pairwise_cost(x, y, c)))(x)
        assert np.all(np.isfinite(np.asarray(g))), cost


@pytest.mark.parametrize("p", [0, -1.0, float("nan"), float("inf"), True, "2", None])
def test_bad_p_names_cost(p):
    for cls in (Minkowski, PNormP, SqPNorm):
        with pytest.raises(ValueError, match=r"`cost`: \w+\(p\) needs a concrete, finite"):
            cls(p)


@pytest.mark.parametrize("cost", ["l1", "minkowski", 2.0, None])
def test_unknown_cost_names_cost(cost):
    x = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="`cost` must be one of .*'manhattan'.*Minkowski"):
        sinkhorn(x, x, epsilon=0.5, cost=cost)


def test_overflowing_pnorm_cost_names_the_cloud():
    x = jnp.ones((3, 2), jnp.float32) * 1e20  # |x - y|^3 / 3 ~ 1e60 > float32 max
    y = jnp.zeros((2, 2), jnp.float32)
    with pytest.raises(ValueError, match="`x` is too large for float32: the PNormP"):
        sinkhorn(x, y, epsilon=0.5, cost=PNormP(3))


def test_equal_costs_share_a_program():
    """Costs are static and hashable by value: a new object with the same p is no new
    compilation (the eager program's cache key)."""
    assert PNormP(2) == PNormP(2.0) and hash(PNormP(2)) == hash(PNormP(2.0))
    assert PNormP(2) != SqPNorm(2) and Minkowski(1) != PNormP(1)
