"""The fixed-point loop (while vs unrolled scan) and implicit differentiation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust._core.fixed_point import gmres_adjoint_solve, implicit_root, iterate_blocks

from ..utils import enable_x64


def _babylonian_block(t, steps=2):
    """``steps`` Babylonian (Newton) iterations for sqrt(t) per block."""

    def block(state, k):
        z, _ = state
        for _ in range(steps):
            z = 0.5 * (z + t / z)
        return z, k

    return block


def _done(t, tol):
    return lambda state, k: jnp.abs(state[0] ** 2 - t) < tol


@pytest.mark.parametrize("t", [2.0, 10.0, 0.3])
def test_while_and_unrolled_give_the_same_result(t):
    t = jnp.float32(t)
    state0 = (jnp.float32(1.0), jnp.asarray(-1))
    out = {}
    for unrolled in (False, True):
        (z, last_k), count = jax.jit(
            lambda t0, s0, u=unrolled: iterate_blocks(
                _babylonian_block(t0), s0, max_blocks=50, done=_done(t0, 1e-5), unrolled=u)
        )(t, state0)
        out[unrolled] = (float(z), int(last_k), int(count))
    assert out[False] == out[True]
    z, last_k, count = out[False]
    np.testing.assert_allclose(z, np.sqrt(float(t)), rtol=1e-6)  # float32 Newton fixed point
    assert 1 <= count < 50 and last_k == count - 1  # stopped early, after block `count - 1`


def test_budget_is_respected_when_never_done():
    state0 = (jnp.float32(1.0), jnp.asarray(-1))
    never = lambda state, k: jnp.asarray(False)  # noqa: E731
    for unrolled in (False, True):
        (z, last_k), count = iterate_blocks(_babylonian_block(jnp.float32(2.0)), state0,
                                            max_blocks=7, done=never, unrolled=unrolled)
        assert int(count) == 7 and int(last_k) == 6


def test_unrolled_is_reverse_differentiable():
    def sqrt_unrolled(t):
        (z, _), _ = iterate_blocks(_babylonian_block(t), (jnp.float32(1.0), jnp.asarray(-1)),
                                   max_blocks=20, done=_done(t, 1e-6), unrolled=True)
        return z

    t = jnp.float32(3.0)
    g = jax.grad(sqrt_unrolled)(t)
    np.testing.assert_allclose(g, 0.5 / np.sqrt(3.0), rtol=1e-5)  # float32 Newton


def _sqrt_solver():
    """sqrt(t) by a while loop (not reverse-differentiable) + the implicit gradient."""

    def solve(t, init):
        (z, _), count = iterate_blocks(_babylonian_block(t), (init, jnp.asarray(-1)),
                                       max_blocks=50, done=_done(t, 1e-12), unrolled=False)
        return z, count

    def residual(z, t):
        return z * z - t

    return solve, residual


def test_implicit_root_gives_the_analytic_gradient():
    solve, residual = _sqrt_solver()
    with enable_x64():
        run = implicit_root(solve, residual)
        t = jnp.float64(5.0)
        z, count = run(t, jnp.float64(1.0))
        np.testing.assert_allclose(z, np.sqrt(5.0), rtol=1e-12)
        # the while loop alone cannot be reverse-differentiated ...
        with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
            jax.grad(lambda t: solve(t, jnp.float64(1.0))[0])(t)
        # ... the implicit rule gives d sqrt(t) / dt = 1 / (2 sqrt(t))
        g_t, g_init = jax.grad(lambda t, i: run(t, i)[0], argnums=(0, 1))(t, jnp.float64(1.0))
        np.testing.assert_allclose(g_t, 0.5 / np.sqrt(5.0), rtol=1e-10)
        assert float(g_init) == 0.0  # a warm start gets no gradient


def test_implicit_root_with_a_custom_adjoint_solve():
    solve, residual = _sqrt_solver()
    calls = []

    def adjoint(z, t, z_bar):  # (d r / d z)^T w = z_bar with d r / d z = 2 z
        calls.append(1)
        return z_bar / (2 * z)

    with enable_x64():
        run = implicit_root(solve, residual, adjoint)
        g = jax.grad(lambda t: run(t, jnp.float64(1.0))[0])(jnp.float64(2.0))
    np.testing.assert_allclose(g, 0.5 / np.sqrt(2.0), rtol=1e-10)
    assert calls


def test_implicit_root_on_a_linear_fixed_point():
    # z = A z + B theta  =>  z* = (I - A)^{-1} B theta and, for L = <w, z*>,
    # dL/dtheta = B^T (I - A)^{-T} w  (exercises the default GMRES adjoint on vectors)
    rng = np.random.default_rng(0)
    n, p = 5, 3
    A = rng.normal(size=(n, n))
    A *= 0.5 / np.linalg.norm(A, 2)  # a contraction
    Bm = rng.normal(size=(n, p))
    w = rng.normal(size=n)
    theta = rng.normal(size=p)
    with enable_x64():
        Aj, Bj = jnp.asarray(A), jnp.asarray(Bm)

        def solve(params, init):
            def block(state, k):
                return Aj @ state + Bj @ params

            z, count = iterate_blocks(
                block, init, max_blocks=200,
                done=lambda s, k: jnp.linalg.norm(s - Aj @ s - Bj @ params) < 1e-13,
                unrolled=False)
            return z, count

        def residual(z, params):
            return z - Aj @ z - Bj @ params

        run = implicit_root(solve, residual)
        g = jax.grad(lambda th: jnp.dot(jnp.asarray(w), run(th, jnp.zeros(n))[0]))(
            jnp.asarray(theta))
    expected = Bm.T @ np.linalg.solve((np.eye(n) - A).T, w)
    np.testing.assert_allclose(g, expected, rtol=1e-8)


def test_gmres_adjoint_solve():
    rng = np.random.default_rng(1)
    M = rng.normal(size=(4, 4)) + 4 * np.eye(4)
    z_bar = rng.normal(size=4)
    with enable_x64():
        Mj = jnp.asarray(M)
        w = gmres_adjoint_solve(lambda z, p: p @ z, jnp.zeros(4), Mj, jnp.asarray(z_bar),
                                tol=1e-12)
    np.testing.assert_allclose(w, np.linalg.solve(M.T, z_bar), rtol=1e-8)
