"""Partial optimal transport (``mass=m``) against POT.

Our partial problem is POT's ``ot.partial.entropic_partial_wasserstein(a, b, C, reg=eps, m=m)``:
transport exactly ``m`` under ``P1 <= a``, ``P^T 1 <= b``, with the plain entropy
``eps sum P (log P - 1)``. POT's solver is reliable only for ``eps >= ~0.1 x`` the cost scale
(it returns NaN for small eps), so the problems here stay in that range.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import sinkhorn

from ..utils import enable_x64, problem


def _pot_partial(a, b, C, eps, m):
    return ot.partial.entropic_partial_wasserstein(a, b, C, eps, m=m, numItermax=100000,
                                                   stopThr=1e-15)


def _objective(P, C, eps):
    mask = P > 0
    return float(np.sum(P * C) + eps * np.sum(P[mask] * (np.log(P[mask]) - 1.0)))


@functools.partial(jax.jit, static_argnames=("tol",))
def _solve(x, y, a, b, eps, mass, *, tol=1e-11):
    res = sinkhorn(x, y, a, b, epsilon=eps, mass=mass, tol=tol, max_iter=20000)
    return res.plan, res.reg_cost, res.linear_cost, res.converged


@pytest.mark.parametrize("frac", [0.25, 0.6, 0.95])
@pytest.mark.parametrize("eps_rel", [0.1, 0.5])
def test_partial_matches_pot_float64(frac, eps_rel):
    rng = np.random.default_rng(int(frac * 100 + eps_rel * 10))
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=0.8)  # available mass min(1, 0.8)
    m = frac * min(a.sum(), b.sum())
    eps = eps_rel * np.median(C)
    with enable_x64():
        P, reg, lin, ok = _solve(x, y, a, b, eps, m)
    assert bool(ok)
    P = np.asarray(P)
    np.testing.assert_allclose(P.sum(), m, rtol=1e-9)
    assert np.all(P.sum(1) <= a + 1e-10) and np.all(P.sum(0) <= b + 1e-10)
    P_pot = _pot_partial(a, b, C, eps, m)
    assert np.all(np.isfinite(P_pot))
    assert np.abs(P - P_pot).sum() < 1e-4
    np.testing.assert_allclose(float(lin), np.sum(P_pot * C), rtol=1e-6)
    np.testing.assert_allclose(float(reg), _objective(P_pot, C, eps), rtol=1e-6)


def test_partial_with_all_the_mass_saturates_the_smaller_side():
    rng = np.random.default_rng(31)
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=0.8)
    eps = 0.2 * np.median(C)
    m = b.sum()  # the available mass, min(|a|, |b|) = |b| = 0.8
    with enable_x64():
        P, _, _, ok = _solve(x, y, a, b, eps, m)
    assert bool(ok)
    P = np.asarray(P)
    np.testing.assert_allclose(P.sum(0), b, atol=1e-8)  # all of b is transported
    assert np.all(P.sum(1) <= a + 1e-10)
    assert np.abs(P - _pot_partial(a, b, C, eps, m)).sum() < 1e-4


def test_partial_matches_pot_float32():
    rng = np.random.default_rng(32)
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=0.8)
    eps = 0.2 * np.median(C)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    P, reg, _, ok = _solve(*map(f32, (x, y, a, b, eps)), f32(0.5), tol=1e-6)
    assert bool(ok) and P.dtype == jnp.float32
    P = np.asarray(P, np.float64)
    # float32: marginal tolerance 1e-6 (L1) plus float32 rounding of each entry (~1e-6 rel)
    np.testing.assert_allclose(P.sum(), 0.5, rtol=1e-5)
    assert np.all(P.sum(1) <= a + 1e-6) and np.all(P.sum(0) <= b + 1e-6)
    P_pot = _pot_partial(a, b, C, eps, 0.5)
    assert np.abs(P - P_pot).sum() < 1e-4
    np.testing.assert_allclose(float(reg), _objective(P_pot, C, eps), rtol=1e-5)


@functools.partial(jax.jit, static_argnames=("partial",))
def _warm(x, y, a, b, eps, f0, g0, *, partial):
    kw = dict(mass=0.5) if partial else dict(tau_a=0.7, tau_b=0.7)
    res = sinkhorn(x, y, a, b, epsilon=eps, tol=1e-5, max_iter=5000, init=(f0, g0), **kw)
    return res.f, res.g, res.n_iters, res.converged, res.plan


def _warm_start_from_the_solution(partial):
    rng = np.random.default_rng(33)
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=0.8)
    args = [jnp.asarray(t, jnp.float32) for t in (x, y, a, b, 0.05 * np.median(C))]
    zeros = jnp.zeros(12, jnp.float32), jnp.zeros(9, jnp.float32)
    f, g, it_cold, ok_cold, P_cold = _warm(*args, *zeros, partial=partial)
    _, _, it_warm, ok_warm, P_warm = _warm(*args, f, g, partial=partial)
    assert bool(ok_cold) and bool(ok_warm)
    assert int(it_cold) > 10  # a problem that needs more than one block from scratch
    # float32, tol 1e-5: both plans are within ~1e-5 (L1) of the solution
    assert np.abs(np.asarray(P_cold) - np.asarray(P_warm)).sum() < 1e-4
    # restarted at its own solution, the solver must stop after the first block
    assert int(it_warm) == 10, (int(it_warm), int(it_cold))


def test_unbalanced_warm_start_from_the_solution_stops_at_once():
    _warm_start_from_the_solution(partial=False)


def test_partial_warm_start_from_the_solution_stops_at_once():
    # regression: res.f includes the mass multiplier, which a warm start used to discard
    _warm_start_from_the_solution(partial=True)
