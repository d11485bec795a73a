"""Gradients of Sinkhorn in float64: implicit (IFT) == unrolled == central finite differences.

The differentiated quantity is ``L = reg_cost + <P, W>`` for a fixed random ``W``, with
respect to ``x``, ``y``, ``a``, ``b`` and ``epsilon``. For balanced problems the potentials,
and hence the gradients w.r.t. ``a`` and ``b``, are defined up to a constant (``a`` and ``b``
live on the simplex), so those gradients are compared after removing their mean and the
finite-difference directions for ``a`` and ``b`` sum to zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sinkhorn

from ..utils import enable_x64, problem

RELAX = {
    "balanced": {},
    "unbalanced": dict(tau_a=0.7, tau_b=0.5),
    "semi-relaxed": dict(tau_b=0.5),
    "partial": dict(mass=0.6),
}
# fixed seeds; for partial OT the problem has active row *and* column constraints, so every
# gradient (incl. d/db) is non-zero and the finite-difference comparison is not vacuous
SEEDS = {"balanced": 101, "unbalanced": 102, "semi-relaxed": 103, "partial": 0}


def _loss(x, y, a, b, eps, W, *, relax, implicit, tol=1e-11):
    res = sinkhorn(x, y, a, b, epsilon=eps, tol=tol, max_iter=5000, implicit=implicit,
                   **RELAX[relax])
    return res.reg_cost + jnp.sum(res.plan * W)


@functools.partial(jax.jit, static_argnames=("relax", "implicit"))
def _value_and_grad(x, y, a, b, eps, W, *, relax, implicit):
    fn = functools.partial(_loss, relax=relax, implicit=implicit)
    return jax.value_and_grad(fn, argnums=(0, 1, 2, 3, 4))(x, y, a, b, eps, W)


def _problem(seed):
    rng = np.random.default_rng(seed)
    x, y, a, b, C = problem(rng, 8, 6, 2)
    W = rng.normal(size=C.shape)
    eps = 0.2 * np.median(C)
    return rng, (x, y, a, b, eps, W)


def _directions(rng, args, gauge):
    x, y, a, b, eps, _ = args
    dirs = [rng.normal(size=x.shape), rng.normal(size=y.shape), rng.normal(size=a.shape) * a,
            rng.normal(size=b.shape) * b, eps]
    if gauge:  # stay on the balanced manifold: perturbations of a and b sum to zero
        dirs[2] -= dirs[2].mean()
        dirs[3] -= dirs[3].mean()
    return dirs


@pytest.mark.parametrize(
    "relax", ["balanced", "unbalanced", pytest.param("semi-relaxed", marks=pytest.mark.slow),
              pytest.param("partial", marks=pytest.mark.slow)])
def test_implicit_unrolled_and_finite_differences_agree(relax):
    gauge = relax == "balanced"
    rng, args = _problem(SEEDS[relax])  # fixed: str hashes change between processes
    with enable_x64():
        args = tuple(jnp.asarray(t, jnp.float64) for t in args)
        value, g_imp = _value_and_grad(*args, relax=relax, implicit=True)
        _, g_unr = _value_and_grad(*args, relax=relax, implicit=False)
        names = ["x", "y", "a", "b", "epsilon"]
        for i, name in enumerate(names):
            gi, gu = np.asarray(g_imp[i]), np.asarray(g_unr[i])
            if gauge and name in ("a", "b"):
                gi, gu = gi - gi.mean(), gu - gu.mean()
            assert np.all(np.isfinite(gi)), name
            np.testing.assert_allclose(gi, gu, rtol=1e-6, atol=1e-8 * np.abs(gi).max(),
                                       err_msg=f"{relax}: implicit vs unrolled, d/d{name}")
        h = 1e-5
        for i, v in enumerate(_directions(rng, args, gauge)):
            v = jnp.asarray(v)
            plus = list(args)
            minus = list(args)
            plus[i] = args[i] + h * v
            minus[i] = args[i] - h * v
            fd = (_value_and_grad(*plus, relax=relax, implicit=True)[0]
                  - _value_and_grad(*minus, relax=relax, implicit=True)[0]) / (2 * h)
            assert abs(float(fd)) > 1e-6, names[i]  # not a vacuous comparison
            for label, g in (("implicit", g_imp), ("unrolled", g_unr)):
                np.testing.assert_allclose(
                    float(jnp.sum(g[i] * v)), float(fd), rtol=1e-5,
                    err_msg=f"{relax}: {label} vs finite differences, d/d{names[i]}")
    if relax == "balanced":
        # the float32 gradient is accurate too (nothing relies on float64 to be correct)
        _check_float32_gradient(args, [np.asarray(t) for t in g_imp])


def _check_float32_gradient(args, g64):
    f32 = [jnp.asarray(np.asarray(t), jnp.float32) for t in args]
    _, g32 = _value_and_grad(*f32, relax="balanced", implicit=True)
    for name, u, v in zip(["x", "y", "a", "b", "epsilon"], g32, g64):
        assert u.dtype == jnp.float32
        u = np.asarray(u, np.float64)
        if name in ("a", "b"):
            u, v = u - u.mean(), v - v.mean()
        assert np.all(np.isfinite(u)), name
        # float32: the forward solve floors at a marginal error of ~1e-7 (L1) whatever tol
        # asks, and the CG adjoint stops at 1e-6 relative: gradients agree to ~1e-4 of scale
        np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-4 * np.abs(v).max(),
                                   err_msg=f"float32 vs float64, d/d{name}")


# ------------------------------------------------------------------------------------------
# zero-weight padding ("zero weights act as padding") must not poison gradients

_XP = jnp.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], jnp.float32)
_YP = jnp.asarray([[1.0, 1.0], [2.0, 0.0]], jnp.float32)
_AP = jnp.asarray([0.5, 0.5, 0.0], jnp.float32)  # the last point is padding


@functools.partial(jax.jit, static_argnames=("implicit",))
def _padded_grad(x, a, W, tau, *, implicit):
    def loss(x):
        res = sinkhorn(x, _YP, a, epsilon=0.5, tau_a=tau, tau_b=tau, tol=1e-6, max_iter=5000,
                       implicit=implicit)
        return res.reg_cost + jnp.sum(res.plan * W)

    return jax.grad(loss)(x)


@pytest.mark.parametrize("tau,implicit", [(1.0, True), (0.8, True),
                                          pytest.param(1.0, False, marks=pytest.mark.slow)])
def test_padded_gradients_equal_unpadded(tau, implicit):
    # regression: gradients used to be NaN when a marginal entry was exactly 0 (reg_cost's KL
    # term; and the unrolled kernel path)
    W = jnp.asarray([[1.0, -2.0], [0.5, 3.0], [7.0, 7.0]], jnp.float32)
    g_pad = np.asarray(_padded_grad(_XP, _AP, W, tau, implicit=implicit))
    g = np.asarray(_padded_grad(_XP[:2], _AP[:2], W[:2], tau, implicit=implicit))
    assert np.all(np.isfinite(g_pad))
    assert np.abs(g).max() > 0.1  # not vacuous
    # float32, tol 1e-6: the padded point contributes exp(-87)-sized terms only
    np.testing.assert_allclose(g_pad[:2], g, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_pad[2], 0.0, atol=1e-6)
