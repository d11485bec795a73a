"""Unbalanced and semi-relaxed Sinkhorn (``tau_a``, ``tau_b`` < 1) against POT and ott-jax.

Conversion to POT: our marginal penalty is ``rho KL(P1 | a)`` with ``rho = eps tau / (1 - tau)``
(ott-jax's parametrisation), and the entropy is ``eps KL(P | a x b)``; that is POT's
``ot.unbalanced.sinkhorn_unbalanced(a, b, C, reg=eps, reg_m=(rho_a, rho_b))`` with its default
``reg_type="kl"``. An exact marginal (``tau = 1``) is ``reg_m = inf`` in POT.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import sinkhorn

from ..utils import allow_rank_promotion, enable_x64, problem


def _rho(eps, tau):
    return np.inf if tau == 1.0 else eps * tau / (1.0 - tau)


def _pot_unbalanced(a, b, C, eps, tau_a, tau_b):
    return ot.unbalanced.sinkhorn_unbalanced(
        a, b, C, eps, (_rho(eps, tau_a), _rho(eps, tau_b)), method="sinkhorn",
        numItermax=200000, stopThr=1e-14,
    )


def _kl(p, q):
    m = p > 0
    return np.sum(p[m] * np.log(p[m] / q[m])) - p.sum() + q.sum()


def _objective(P, C, a, b, eps, tau_a, tau_b):
    """<P, C> + eps KL(P | a x b) + rho_a KL(P1 | a) + rho_b KL(P^T 1 | b) (numpy)."""
    value = np.sum(P * C) + eps * _kl(P.ravel(), np.outer(a, b).ravel())
    if tau_a < 1:
        value += _rho(eps, tau_a) * _kl(P.sum(1), a)
    if tau_b < 1:
        value += _rho(eps, tau_b) * _kl(P.sum(0), b)
    return float(value)


@functools.partial(jax.jit, static_argnames=("tol",))
def _solve(x, y, a, b, eps, tau_a, tau_b, *, tol=1e-10):
    res = sinkhorn(x, y, a, b, epsilon=eps, tau_a=tau_a, tau_b=tau_b, tol=tol, max_iter=20000)
    return res.plan, res.reg_cost, res.linear_cost, res.converged


TAUS = [(0.5, 0.5), (0.8, 0.6), (0.95, 0.3)]


@pytest.mark.parametrize("tau_a,tau_b", TAUS)
@pytest.mark.parametrize("eps_rel", [0.05, 0.5])
def test_unbalanced_matches_pot_float64(tau_a, tau_b, eps_rel):
    rng = np.random.default_rng(int(tau_a * 100 + tau_b * 10))
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=1.5)  # masses 1 and 1.5
    eps = eps_rel * np.median(C)
    with enable_x64():
        P, reg, lin, ok = _solve(x, y, a, b, eps, tau_a, tau_b)
    assert bool(ok)
    P = np.asarray(P)
    P_pot = _pot_unbalanced(a, b, C, eps, tau_a, tau_b)
    assert np.abs(P - P_pot).sum() < 1e-4
    np.testing.assert_allclose(float(lin), np.sum(P_pot * C), rtol=1e-6)
    np.testing.assert_allclose(float(reg), _objective(P_pot, C, a, b, eps, tau_a, tau_b),
                               rtol=1e-6)


def test_unbalanced_matches_pot_float32():
    rng = np.random.default_rng(21)
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=1.5)
    eps = 0.1 * np.median(C)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    P, reg, _, ok = _solve(*map(f32, (x, y, a, b, eps)), f32(0.8), f32(0.6), tol=1e-6)
    assert bool(ok) and P.dtype == jnp.float32
    P_pot = _pot_unbalanced(a, b, C, eps, 0.8, 0.6)
    # float32: stopping at an L1 change of 1e-6 per round, with a contraction factor of about
    # tau, leaves ~1e-5 of the solution; entries carry float32 rounding of exp(.) (~1e-6 rel)
    assert np.abs(np.asarray(P, np.float64) - P_pot).sum() < 1e-4
    np.testing.assert_allclose(float(reg), _objective(P_pot, C, a, b, eps, 0.8, 0.6),
                               rtol=1e-5)


@pytest.mark.parametrize("relaxed", ["b", "a"])
def test_semi_relaxed(relaxed):
    rng = np.random.default_rng(22)
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=1.5)
    eps = 0.1 * np.median(C)
    tau_a, tau_b = (1.0, 0.6) if relaxed == "b" else (0.6, 1.0)
    with enable_x64():
        P, reg, _, ok = _solve(x, y, a, b, eps, tau_a, tau_b)
    assert bool(ok)
    P = np.asarray(P)
    # the exact side holds exactly, the relaxed side does not
    if relaxed == "b":
        np.testing.assert_allclose(P.sum(1), a, atol=1e-9)
        assert np.abs(P.sum(0) - b).sum() > 1e-2
    else:
        np.testing.assert_allclose(P.sum(0), b, atol=1e-9)
        assert np.abs(P.sum(1) - a).sum() > 1e-2
    P_pot = _pot_unbalanced(a, b, C, eps, tau_a, tau_b)
    assert np.abs(P - P_pot).sum() < 1e-4
    np.testing.assert_allclose(float(reg), _objective(P_pot, C, a, b, eps, tau_a, tau_b),
                               rtol=1e-6)


def test_tau_one_is_balanced():
    # traced tau = 1 must give the balanced solution (the balanced mass check applies)
    rng = np.random.default_rng(23)
    x, y, a, b, C = problem(rng, 12, 9, 2)
    eps = 0.1 * np.median(C)
    with enable_x64():
        P, reg, _, ok = _solve(x, y, a, b, eps, 1.0, 1.0)
    assert bool(ok)
    P_pot = ot.bregman.sinkhorn_log(a, b, C, eps, numItermax=100000, stopThr=1e-13)
    assert np.abs(np.asarray(P) - P_pot).sum() < 1e-6


@pytest.mark.slow  # documents the ott-jax relation; POT is the fast reference above
def test_unbalanced_plan_matches_ott_with_shifted_cost():
    # ott-jax's unbalanced Sinkhorn uses the plain entropy (reference measure 1) instead of
    # KL(P | a x b). Since eps KL(P | a x b) = eps sum P (log P - 1) - eps <P, log a + log b>
    # + eps |a| |b|, our problem on C is ott's problem on the shifted cost
    # C'_ij = C_ij - eps (log a_i + log b_j): the plans coincide. (ott's unbalanced
    # `reg_ot_cost` follows yet another dual convention, so only the plans are compared.)
    from ott.geometry import geometry
    from ott.solvers import linear

    rng = np.random.default_rng(24)
    x, y, a, b, C = problem(rng, 12, 9, 2, mass_b=1.5)
    eps, tau_a, tau_b = 0.1 * np.median(C), 0.8, 0.6
    shifted = C - eps * (np.log(a)[:, None] + np.log(b)[None, :])
    with enable_x64():
        P, _, _, ok = _solve(x, y, a, b, eps, tau_a, tau_b)
        with allow_rank_promotion():  # ott-jax relies on implicit rank promotion
            out = linear.solve(geometry.Geometry(cost_matrix=jnp.asarray(shifted), epsilon=eps),
                               jnp.asarray(a), jnp.asarray(b), tau_a=tau_a, tau_b=tau_b,
                               threshold=1e-11, max_iterations=20000)
    assert bool(ok)
    assert np.abs(np.asarray(P) - np.asarray(out.matrix)).sum() < 1e-4
