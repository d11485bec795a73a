"""Debiased Sinkhorn divergence
``S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2 + eps (|a| - |b|)^2 / 2``.

ott-jax's unbalanced Sinkhorn uses the plain entropy instead of ``KL(P | a x b)`` (see
tests/ot/test_unbalanced.py), so its unbalanced divergence is another quantity: the unbalanced
divergence is checked against POT only.

ott-jax's ``ott.tools.sinkhorn_divergence`` uses the same definition with the same
``reg_ot_cost`` (``<P, C> + eps KL(P | a b^T)`` + the KL marginal penalties when unbalanced)
and the same mass term (Séjourné et al. 2019, eq. 15; zero for probability weights): the values
are directly comparable. The independent float64 reference here: POT's plans of the three
problems, solved to ``stopThr=1e-14``, with the primal objectives evaluated in NumPy.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import sinkhorn_divergence

from ..utils import allow_rank_promotion, enable_x64, weights


@functools.partial(jax.jit, static_argnames=("tol",))
def _div(x, y, a, b, eps, *, tol=1e-6):
    return sinkhorn_divergence(x, y, a, b, epsilon=eps, tol=tol, max_iter=5000).divergence


@pytest.mark.slow  # a property over many random pairs; the fixed cases below stay fast
def test_nonnegative_on_random_pairs():
    rng = np.random.default_rng(0)
    k, n, m, d = 8, 10, 7, 2
    xs = rng.normal(size=(k, n, d)) * rng.uniform(0.2, 2.0, size=(k, 1, 1))
    ys = rng.normal(size=(k, m, d)) + rng.uniform(-1, 1, size=(k, 1, d))
    a = np.stack([weights(rng, n) for _ in range(k)])
    b = np.stack([weights(rng, m) for _ in range(k)])
    eps = rng.uniform(0.05, 2.0, size=k)
    args = [jnp.asarray(t, jnp.float32) for t in (xs, ys, a, b, eps)]
    values = np.asarray(jax.jit(jax.vmap(_div))(*args))
    # float32: each of the three costs is accurate to ~1e-6 relative at tol 1e-6
    assert np.all(values >= -1e-5), values
    assert np.all(values > 1e-3), values  # these pairs differ: strictly positive


def test_zero_for_identical_inputs():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(9, 2)), jnp.float32)
    a = jnp.asarray(weights(rng, 9), jnp.float32)
    # OT(x, x) by the plain iterations, the debiasing terms by the symmetric update: the two
    # agree to the dual gap at tol (~1e-6 relative) plus float32 rounding of OT ~ 1
    scale = float(sinkhorn_divergence(x, x + 1.0, epsilon=0.3).xy.reg_cost)
    assert abs(float(sinkhorn_divergence(x, x, epsilon=0.3).divergence)) < 2e-5 * scale
    res = sinkhorn_divergence(x, jnp.array(x), a, jnp.array(a), epsilon=0.3, tol=1e-5)
    assert abs(float(res.divergence)) < 2e-6 * scale and bool(res.converged)


def test_translation_gives_the_squared_shift():
    # For the squared Euclidean cost, C(x, y + t) = C(x, y) - 2<x - y, t> + |t|^2 and the middle
    # term is separable, so it does not move the plan: OT(a, a + t) = OT(a, a) + |t|^2 and
    # S(a, a + t) = |t|^2 for every epsilon (a closed form independent of any solver).
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 2))
    a = weights(rng, 10)
    for t, eps in [((0.3, 0.0), 0.1), ((1.0, -2.0), 0.5), ((0.05, 0.05), 2.0)]:
        t = np.asarray(t)
        args = [jnp.asarray(v, jnp.float32) for v in (x, x + t, a, a, eps)]
        value = float(_div(*args))
        # float32: |t|^2 is a difference of costs of size ~|x|^2 ~ 4 computed to 1e-6 relative
        np.testing.assert_allclose(value, np.sum(t**2), rtol=1e-3, atol=2e-5)


def test_gradient_vanishes_at_equal_inputs():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    grad = jax.jit(jax.grad(lambda x, y: sinkhorn_divergence(
        x, y, epsilon=0.5, tol=1e-5, max_iter=5000).divergence))
    g0 = np.asarray(grad(x, jnp.array(x)))
    g1 = np.asarray(grad(x, x + 0.5))
    # float32: at x == y the gradient is zero up to the solver tolerance; compare with the
    # gradient scale at a small shift
    assert np.abs(g1).max() > 0.05
    assert np.abs(g0).max() < 1e-3 * np.abs(g1).max()


@pytest.mark.slow  # ott-jax compiles three solves; the closed-form translation test is fast
@pytest.mark.parametrize("eps", [0.2])
def test_matches_ott(eps):
    from ott.geometry import pointcloud
    from ott.tools import sinkhorn_divergence as ott_sd

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(7, 2)) + 0.5
    a, b = weights(rng, 9), weights(rng, 7)
    @jax.jit
    def ott_divergence(x, y, a, b):
        value, _ = ott_sd.sinkhorn_divergence(
            pointcloud.PointCloud, x, y, a=a, b=b, epsilon=eps,
            solve_kwargs=dict(threshold=1e-11, max_iterations=20000))
        return value

    with enable_x64():
        ours = float(_div(x, y, a, b, eps, tol=1e-10))
        with allow_rank_promotion():  # ott-jax relies on implicit rank promotion
            theirs = ott_divergence(*(jnp.asarray(t) for t in (x, y, a, b)))
    np.testing.assert_allclose(ours, float(theirs), rtol=1e-4)


# ------------------------------------------------------------------------------------------
# the value at the default tolerance, the flags, the unbalanced divergence (issue 14, 1.2/1.5)


def _kl(p, q):
    m = p > 0
    return np.sum(p[m] * np.log(p[m] / q[m])) - p.sum() + q.sum()


def _pot_ot(x, y, a, b, eps, tau):
    """OT_eps(a, b) from POT's plan (float64): <P, C> + eps KL(P | a x b)
    + rho KL(P1 | a) + rho KL(P^T 1 | b), rho = eps tau / (1 - tau) (POT's ``reg_m``)."""
    C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    if tau == 1.0:
        P = ot.sinkhorn(a, b, C, eps, numItermax=20000, stopThr=1e-11)
    else:
        rho = eps * tau / (1.0 - tau)
        P = ot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, rho, method="sinkhorn",
                                              numItermax=200000, stopThr=1e-15)
    value = np.sum(P * C) + eps * _kl(P.ravel(), np.outer(a, b).ravel())
    if tau < 1.0:
        value += eps * tau / (1.0 - tau) * (_kl(P.sum(1), a) + _kl(P.sum(0), b))
    return value


def _pot_divergence(x, y, a, b, eps, tau=1.0):
    return (_pot_ot(x, y, a, b, eps, tau) - 0.5 * _pot_ot(x, x, a, a, eps, tau)
            - 0.5 * _pot_ot(y, y, b, b, eps, tau) + 0.5 * eps * (a.sum() - b.sum()) ** 2)


def _pair(seed, mass_b=1.0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(10, 2)) + 0.7
    return x, y, weights(rng, 12), weights(rng, 10, mass_b)


def test_value_at_default_tol_matches_converged_reference():
    """Acceptance (issue 14, 1.2): at the default ``tol=1e-3``, within 1e-6 relative of the
    converged value (measured 5e-7 at check_every=10, 8e-7 at 1: the dual gap of the OT(x, y)
    solve; the debiasing terms by the symmetric update are exact to 1e-10). The independence
    of ``check_every`` of ``reg_cost`` itself is tests/ot/test_accuracy.py's."""
    x, y, a, b = _pair(5)
    eps = 0.2
    ref = _pot_divergence(x, y, a, b, eps)
    with enable_x64():
        res = sinkhorn_divergence(*map(jnp.asarray, (x, y, a, b)), epsilon=eps)
        assert bool(res.converged)
        np.testing.assert_allclose(float(res.divergence), ref, rtol=1e-6)


def test_unbalanced_divergence_matches_pot():
    """Séjourné et al. 2019: three unbalanced problems (KL penalties on both marginals, the
    same rho) and the mass term eps (m(a) - m(b))^2 / 2; masses 1 and 1.6 here. At the
    default tol (measured 3e-8 relative) and converged (tol 1e-9, measured 1e-12)."""
    x, y, a, b = _pair(6, mass_b=1.6)
    eps, tau = 0.3, 0.8
    ref = _pot_divergence(x, y, a, b, eps, tau)
    assert 0.5 * eps * 0.6 ** 2 > 1e-3 * abs(ref)  # the mass term matters at this tolerance
    with enable_x64():
        args = map(jnp.asarray, (x, y, a, b))
        res = sinkhorn_divergence(*args, epsilon=eps, tau_a=tau, tau_b=tau)
        assert bool(res.converged)
        np.testing.assert_allclose(float(res.divergence), ref, rtol=1e-6)
        tight = sinkhorn_divergence(*map(jnp.asarray, (x, y, a, b)), epsilon=eps, tau_a=tau,
                                    tau_b=tau, tol=1e-9)
        np.testing.assert_allclose(float(tight.divergence), ref, rtol=1e-9)


def test_unconverged_solves_are_reported():
    """``max_iter=50`` at a small epsilon: the three solves do not converge and the result
    says so (the value used to be returned alone)."""
    x, y, a, b = _pair(7)
    res = sinkhorn_divergence(x, y, epsilon=0.005, max_iter=50)
    assert not bool(res.converged)
    assert not bool(res.xy.converged)
    assert np.isfinite(float(res.divergence))
    ok = sinkhorn_divergence(x, y, epsilon=0.5, max_iter=50)  # the same compiled solves
    assert bool(ok.converged) and bool(ok.xy.converged & ok.xx.converged & ok.yy.converged)
