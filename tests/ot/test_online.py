"""Online mode (``chunk_size``): the cost is recomputed in blocks of rows, never stored.

Against the dense solver in the log domain (the same iterations), the potentials agree to
float32 rounding; the plan-free quantities (``marginals``, ``apply``, ``linear_cost``,
``reg_cost``) and the gradients agree with the dense default mode too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sinkhorn

from ..utils import problem

N, M, D = 11, 9, 2


def _data(seed=0, mass_b=1.0):
    rng = np.random.default_rng(seed)
    x, y, a, b, C = problem(rng, N, M, D, mass_b=mass_b)
    wn, wm = rng.normal(size=N), rng.normal(size=M)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    return [f32(t) for t in (x, y, a, b, wn, wm)] + [f32(0.1 * np.median(C))]


@functools.partial(jax.jit, static_argnames=("chunk_size", "mode", "relax"))
def _solve(x, y, a, b, wn, wm, eps, *, chunk_size, mode, relax="balanced"):
    kw = dict(epsilon=eps, tol=1e-5, max_iter=5000, chunk_size=chunk_size, mode=mode)
    if relax == "unbalanced":
        kw.update(tau_a=0.8, tau_b=0.6)
    elif relax == "partial":
        kw.update(mass=0.6)
    res = sinkhorn(x, y, a, b, **kw)
    row, col = res.marginals
    return dict(f=res.f, g=res.g, row=row, col=col, linear_cost=res.linear_cost,
                reg_cost=res.reg_cost, apply1=res.apply(wm, axis=1),
                apply0=res.apply(wn, axis=0), n_iters=res.n_iters, converged=res.converged)


PLAN_FREE = ("row", "col", "linear_cost", "reg_cost", "apply1", "apply0")


@pytest.mark.parametrize("chunk_size", [1, 4, N, 32])  # 4 does not divide 11; 32 > n
def test_online_equals_dense(chunk_size):
    args = _data()
    dense_log = _solve(*args, chunk_size=None, mode="log")
    online = _solve(*args, chunk_size=chunk_size, mode="log")
    assert bool(online["converged"]) and bool(dense_log["converged"])
    # rounding may move the stopping test across the tolerance by one block
    assert abs(int(online["n_iters"]) - int(dense_log["n_iters"])) <= 10
    # float32: the same log-domain iterations on the same cost entries; blockwise matmuls
    # round differently, so potentials agree to a few float32 ulps of their size (~1e-6)
    np.testing.assert_allclose(online["f"], dense_log["f"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(online["g"], dense_log["g"], rtol=1e-5, atol=1e-5)
    for k in PLAN_FREE:
        np.testing.assert_allclose(online[k], dense_log[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_online_plan_free_quantities_match_dense_default_mode():
    args = _data(1)
    x, y, a, b, wn, wm, eps = args
    dense = _solve(*args, chunk_size=None, mode="auto")
    online = _solve(*args, chunk_size=4, mode="log")
    # an independent evaluation from the dense plan of the default (kernel) mode
    res = sinkhorn(x, y, a, b, epsilon=eps, tol=1e-6, max_iter=5000)
    P = np.asarray(res.plan, np.float64)
    np.testing.assert_allclose(P.sum(1), a, atol=1e-6)
    # float32: both solves stop within 1e-6 (L1) of the marginals, by different iterations
    # (kernel vs log domain), so plan-derived quantities agree to ~1e-5 relative
    np.testing.assert_allclose(online["row"], P.sum(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(online["col"], P.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(online["apply1"], P @ np.asarray(wm), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(online["apply0"], P.T @ np.asarray(wn), rtol=1e-4, atol=1e-6)
    for k in ("linear_cost", "reg_cost"):
        np.testing.assert_allclose(online[k], dense[k], rtol=1e-5, err_msg=k)


@pytest.mark.parametrize("relax", ["unbalanced", "partial"])
def test_online_relaxed_equals_dense(relax):
    args = _data(2)
    dense = _solve(*args, chunk_size=None, mode="log", relax=relax)
    online = _solve(*args, chunk_size=4, mode="log", relax=relax)
    assert bool(online["converged"])
    # float32 as in test_online_equals_dense
    for k in ("f", "g") + PLAN_FREE:
        np.testing.assert_allclose(online[k], dense[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_online_plan_property_equals_dense_plan():
    x, y, a, b, _, _, eps = _data(3)
    online = sinkhorn(x, y, a, b, epsilon=eps, chunk_size=4, mode="log", tol=1e-6)
    dense = sinkhorn(x, y, a, b, epsilon=eps, mode="log", tol=1e-6)
    # float32: same iterations, rounding-level differences only
    np.testing.assert_allclose(online.plan, dense.plan, rtol=1e-5, atol=1e-8)


@functools.partial(jax.jit, static_argnames=("chunk_size", "implicit"))
def _grads(x, y, a, wn, wm, eps, *, chunk_size, implicit=True):
    def loss(x, y, a):
        res = sinkhorn(x, y, a, epsilon=eps, tau_a=0.9, tol=1e-6, max_iter=5000,
                       chunk_size=chunk_size, implicit=implicit)
        return res.reg_cost + jnp.dot(wn, res.apply(wm, axis=1))

    return jax.grad(loss, argnums=(0, 1, 2))(x, y, a)


@pytest.mark.parametrize("implicit", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_online_gradients_equal_dense_gradients(implicit):
    # tau_a < 1 so that the gradient w.r.t. `a` has no gauge freedom
    x, y, a, _, wn, wm, eps = _data(4)
    dense = _grads(x, y, a, wn, wm, eps, chunk_size=None, implicit=implicit)
    online = _grads(x, y, a, wn, wm, eps, chunk_size=4, implicit=implicit)
    for name, gd, go in zip("xya", dense, online):
        assert np.all(np.isfinite(np.asarray(go))), name
        assert float(jnp.abs(gd).max()) > 1e-3, name  # not vacuous
        # float32: the two forward solves stop within 1e-6 of the solution by different
        # iterations (kernel vs log domain) and the adjoint CG solve runs to 1e-6: 1e-4 rel.
        np.testing.assert_allclose(go, gd, rtol=1e-4, atol=1e-4 * float(jnp.abs(gd).max()),
                                   err_msg=name)
