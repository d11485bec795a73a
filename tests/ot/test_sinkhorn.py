"""Balanced Sinkhorn: cross-checks against POT and ott-jax, the two execution modes, warm
start, annealing, padding, batching, dtypes and recompilation.

Unbalanced, partial, online, gradients, bad input, the divergence and SwAV codes have their
own files next to this one.

Conventions checked here: the plan is ``P = exp((f + g - C) / eps)`` with ``P 1 = a`` and
``P^T 1 = b``; ``reg_cost = <P, C> + eps KL(P | a x b)``, which is exactly ott-jax's
``reg_ot_cost`` for balanced problems; POT's ``ot.bregman.sinkhorn_log(a, b, C, reg=eps)``
solves the same problem (its entropy reference differs from ``a x b`` by a linear term that
is constant on the balanced transport polytope, so the plans coincide).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from jax import monitoring
from scipy.spatial.distance import cdist

from jaxclust.ot import default_epsilon, sinkhorn, sinkhorn_from_cost

from ..utils import allow_rank_promotion, enable_x64, problem


@functools.partial(jax.jit, static_argnames=("mode", "tol", "max_iter", "epsilon_init"))
def _solve(x, y, a, b, eps, *, mode="auto", tol=1e-9, max_iter=20000, epsilon_init=None):
    res = sinkhorn(x, y, a, b, epsilon=eps, mode=mode, tol=tol, max_iter=max_iter,
                   epsilon_init=epsilon_init, epsilon_decay=0.8)
    return dict(plan=res.plan, reg_cost=res.reg_cost, linear_cost=res.linear_cost,
                converged=res.converged, f=res.f, g=res.g, n_iters=res.n_iters,
                errors=res.errors)


def _pot_plan(a, b, C, eps):
    return ot.bregman.sinkhorn_log(a, b, C, eps, numItermax=200000, stopThr=1e-13)


def _kl_objective(P, C, a, b, eps):
    """<P, C> + eps KL(P | a x b), with the generalised KL, in numpy float64."""
    ab = np.outer(a, b)
    mask = P > 0
    kl = np.sum(P[mask] * np.log(P[mask] / ab[mask])) - P.sum() + ab.sum()
    return float(np.sum(P * C) + eps * kl)


SHAPES = [(7, 5, 2), (16, 11, 3)]


# ------------------------------------------------------------------------------------------
# cross-checks


@pytest.mark.parametrize("n,m,d", SHAPES)
@pytest.mark.parametrize("eps_rel", [0.05, 0.5])
@pytest.mark.parametrize("uniform", [True, False])
def test_plan_matches_pot_float64(n, m, d, eps_rel, uniform):
    rng = np.random.default_rng(n * 100 + int(eps_rel * 10) + uniform)
    x, y, a, b, C = problem(rng, n, m, d, uniform=uniform)
    eps = eps_rel * np.median(C)
    with enable_x64():
        out = _solve(x, y, a, b, jnp.float64(eps))
    assert out["plan"].dtype == jnp.float64
    assert bool(out["converged"])
    P = np.asarray(out["plan"])
    P_pot = _pot_plan(a, b, C, eps)
    assert np.abs(P - P_pot).sum() < 1e-4
    np.testing.assert_allclose(P.sum(1), a, atol=1e-8)
    np.testing.assert_allclose(P.sum(0), b, atol=1e-8)
    # costs against independent numpy formulas at the reference plan
    np.testing.assert_allclose(float(out["linear_cost"]), np.sum(P_pot * C), rtol=1e-6)
    np.testing.assert_allclose(float(out["reg_cost"]), _kl_objective(P_pot, C, a, b, eps),
                               rtol=1e-6)


@pytest.mark.parametrize("n,m,d", SHAPES)
@pytest.mark.parametrize("eps_rel", [0.05, 0.5])
def test_plan_matches_pot_float32(n, m, d, eps_rel):
    rng = np.random.default_rng(n + 7)
    x, y, a, b, C = problem(rng, n, m, d)
    eps = eps_rel * np.median(C)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    out = _solve(f32(x), f32(y), f32(a), f32(b), f32(eps), tol=1e-5, max_iter=5000)
    assert out["plan"].dtype == jnp.float32
    assert bool(out["converged"])
    P = np.asarray(out["plan"], np.float64)
    P_pot = _pot_plan(a, b, C, eps)
    # float32: the marginal tolerance is 1e-5 in L1 and each entry exp((f+g-C)/eps) carries
    # a relative rounding error of about |f+g-C|/eps * 6e-8 <= 1e-5 here, so 1e-4 in L1.
    assert np.abs(P - P_pot).sum() < 1e-4
    # float32: <P, C> and the KL are sums of n*m float32 terms of size ~1: 1e-5 relative.
    np.testing.assert_allclose(float(out["linear_cost"]), np.sum(P_pot * C), rtol=1e-5)
    np.testing.assert_allclose(float(out["reg_cost"]), _kl_objective(P_pot, C, a, b, eps),
                               rtol=1e-5, atol=1e-5)


@functools.partial(jax.jit, static_argnames=())
def _ott_reg_cost(x, y, a, b, eps):
    from ott.geometry import pointcloud
    from ott.solvers import linear

    geom = pointcloud.PointCloud(x, y, epsilon=eps)
    out = linear.solve(geom, a, b, threshold=1e-11, max_iterations=20000, lse_mode=True)
    return out.reg_ot_cost, out.matrix


@pytest.mark.parametrize("eps_rel", [0.05, 0.5])
def test_reg_cost_matches_ott(eps_rel):
    # ott-jax's `reg_ot_cost` is <P, C> + eps KL(P | a b^T) (see its `kl_reg_cost`
    # docstring): the same convention as ours for balanced problems, so no conversion.
    rng = np.random.default_rng(3)
    x, y, a, b, C = problem(rng, 16, 11, 3)
    eps = eps_rel * np.median(C)
    with enable_x64():
        out = _solve(x, y, a, b, jnp.float64(eps))
        with allow_rank_promotion():  # ott-jax relies on implicit rank promotion
            ott_cost, ott_plan = _ott_reg_cost(*map(jnp.asarray, (x, y, a, b)), eps)
    np.testing.assert_allclose(float(out["reg_cost"]), float(ott_cost), rtol=1e-4)
    assert np.abs(np.asarray(out["plan"]) - np.asarray(ott_plan)).sum() < 1e-4
    # and linear_cost is the plan-based <P, C>
    np.testing.assert_allclose(float(out["linear_cost"]), np.sum(np.asarray(ott_plan) * C),
                               rtol=1e-6)


def test_from_cost_matches_pot_with_asymmetric_cost():
    rng = np.random.default_rng(5)
    C = rng.uniform(0.0, 3.0, size=(6, 9))  # not a point-cloud cost
    a, b = rng.uniform(0.1, 1, 6), rng.uniform(0.1, 1, 9)
    a, b = a / a.sum(), b / b.sum()
    with enable_x64():
        res = sinkhorn_from_cost(C, a, b, epsilon=0.2, tol=1e-10, max_iter=20000)
        P = np.asarray(res.plan)
    assert bool(res.converged)
    assert np.abs(P - _pot_plan(a, b, C, 0.2)).sum() < 1e-4


@functools.partial(jax.jit, static_argnames=("cost",))
def _solve_cost(x, y, a, b, eps, *, cost):
    res = sinkhorn(x, y, a, b, epsilon=eps, cost=cost, tol=1e-10, max_iter=20000)
    return res.plan, res.reg_cost, res.converged


@pytest.mark.parametrize("cost", ["euclidean", "cosine", "dot"])
def test_other_costs_match_pot(cost):
    rng = np.random.default_rng(6)
    x, y, a, b, _ = problem(rng, 9, 7, 3)
    C = {"euclidean": lambda: cdist(x, y), "cosine": lambda: cdist(x, y, "cosine"),
         "dot": lambda: -x @ y.T}[cost]()
    eps = 0.1 * np.std(C)
    with enable_x64():
        P, reg, ok = _solve_cost(x, y, a, b, eps, cost=cost)
    assert bool(ok)
    P_pot = _pot_plan(a, b, C, eps)
    assert np.abs(np.asarray(P) - P_pot).sum() < 1e-4
    np.testing.assert_allclose(float(reg), _kl_objective(P_pot, C, a, b, eps), rtol=1e-6)


def test_default_epsilon_is_a_fraction_of_the_cost_spread():
    rng = np.random.default_rng(7)
    x, y, _, _, C = problem(rng, 9, 7, 3)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    # float32: the std is computed as sqrt(E[C^2] - E[C]^2), ~1e-6 relative on these costs
    np.testing.assert_allclose(default_epsilon(xj, yj), 0.05 * C.std(), rtol=1e-4)
    np.testing.assert_allclose(default_epsilon(xj, yj, chunk_size=4), 0.05 * C.std(),
                               rtol=1e-4)
    np.testing.assert_allclose(default_epsilon(xj, yj, cost="cosine", scale=0.3),
                               0.3 * cdist(x, y, "cosine").std(), rtol=1e-4)
    np.testing.assert_allclose(default_epsilon(jnp.asarray(C, jnp.float32)), 0.05 * C.std(),
                               rtol=1e-4)


# ------------------------------------------------------------------------------------------
# execution modes, small epsilon, convergence flag


def test_kernel_mode_matches_log_mode():
    rng = np.random.default_rng(11)
    x, y, a, b, C = problem(rng, 16, 11, 3)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    args = (f32(x), f32(y), f32(a), f32(b), f32(0.1 * np.median(C)))
    auto = _solve(*args, mode="auto", tol=1e-6, max_iter=5000)
    log = _solve(*args, mode="log", tol=1e-6, max_iter=5000)
    assert bool(auto["converged"]) and bool(log["converged"])
    # float32: both stop at marginal error < 1e-6 (L1); rounding differs between matrix-vector
    # products and log-sum-exp, so plans agree to a few 1e-6 in L1 and costs to ~1e-6 rel.
    assert np.abs(np.asarray(auto["plan"]) - np.asarray(log["plan"])).sum() < 1e-5
    np.testing.assert_allclose(auto["reg_cost"], log["reg_cost"], rtol=1e-5)
    # the two modes must also agree with the float64 reference, not just with each other
    assert np.abs(np.asarray(log["plan"]) - _pot_plan(a, b, C, 0.1 * np.median(C))).sum() < 1e-4


@pytest.mark.parametrize("mode", ["auto", "log"])
def test_small_epsilon_float32_is_finite_and_honest(mode):
    rng = np.random.default_rng(2)
    x, y, a, b, C = problem(rng, 16, 11, 3)
    scale = np.median(C)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    tol = 1e-3
    out = _solve(f32(x), f32(y), f32(a), f32(b), f32(1e-4 * scale), mode=mode, tol=tol,
                 max_iter=1000)
    for k in ("plan", "f", "g", "reg_cost", "linear_cost"):
        assert np.all(np.isfinite(np.asarray(out[k]))), k
    P = np.asarray(out["plan"], np.float64)
    err = np.abs(P.sum(1) - a).sum()  # the row marginal error (columns are exact)
    errors = np.asarray(out["errors"])
    ran = int(out["n_iters"]) // 10
    assert np.all(errors[ran:] == -1.0) and np.all(errors[:ran] >= 0)
    if bool(out["converged"]):
        # float32, eps = 1e-4 * scale: potentials are ~1e4 * eps, so the recomputed plan
        # carries ~1e-3 relative rounding; the reported error must still be near the truth
        assert err < 10 * tol
        assert errors[ran - 1] < tol
    else:
        assert errors[ran - 1] >= tol or not np.isfinite(errors[ran - 1])
        assert int(out["n_iters"]) == 1000


def test_not_converged_is_reported():
    rng = np.random.default_rng(4)
    x, y, a, b, C = problem(rng, 16, 11, 3)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    out = _solve(f32(x), f32(y), f32(a), f32(b), f32(0.01 * np.median(C)), tol=1e-6,
                 max_iter=20)
    assert not bool(out["converged"])
    assert int(out["n_iters"]) == 20
    errors = np.asarray(out["errors"])
    assert errors.shape == (2,) and np.all(errors >= 1e-6)


def test_n_iters_never_exceeds_max_iter():
    rng = np.random.default_rng(4)
    x, y, a, b, C = problem(rng, 7, 5, 2)
    res = sinkhorn(x, y, a, b, epsilon=0.001 * np.median(C), tol=1e-9, max_iter=15,
                   check_every=10)
    assert not bool(res.converged)
    assert int(res.n_iters) <= 15


# ------------------------------------------------------------------------------------------
# warm start and annealing


def test_warm_start_converges_faster_to_the_same_plan():
    rng = np.random.default_rng(8)
    x, y, a, b, C = problem(rng, 16, 11, 3)
    eps = jnp.float32(0.02 * np.median(C))
    x, y, a, b = (jnp.asarray(t, jnp.float32) for t in (x, y, a, b))

    @jax.jit
    def solve(x, y, f0, g0):
        res = sinkhorn(x, y, a, b, epsilon=eps, tol=1e-5, max_iter=5000, init=(f0, g0))
        return res.plan, res.n_iters, res.converged, res.f, res.g

    zeros = (jnp.zeros(16), jnp.zeros(11))
    _, _, _, f, g = solve(x, y, *zeros)
    x2 = x + 0.01 * jnp.asarray(rng.normal(size=x.shape), jnp.float32)  # a nearby problem
    P_cold, it_cold, ok_cold, _, _ = solve(x2, y, *zeros)
    P_warm, it_warm, ok_warm, _, _ = solve(x2, y, f, g)
    assert bool(ok_cold) and bool(ok_warm)
    assert int(it_warm) < int(it_cold) / 2, (int(it_warm), int(it_cold))
    # float32, tol 1e-5: both plans are within ~1e-5 (L1) of the solution
    assert np.abs(np.asarray(P_cold) - np.asarray(P_warm)).sum() < 1e-4


def test_annealing_reaches_the_same_solution():
    rng = np.random.default_rng(9)
    x, y, a, b, C = problem(rng, 16, 11, 3)
    scale = float(np.median(C))
    with enable_x64():
        plain = _solve(x, y, a, b, 0.03 * scale)
        annealed = _solve(x, y, a, b, 0.03 * scale, epsilon_init=scale)
    assert bool(plain["converged"]) and bool(annealed["converged"])
    # the annealing schedule (decay 0.8 per block) must have run down to eps before stopping
    # (the first blocks, at large epsilon, converge at once): 0.03 = 0.8^k needs k >= 16
    assert int(annealed["n_iters"]) >= 16 * 10
    assert np.abs(np.asarray(plain["plan"]) - np.asarray(annealed["plan"])).sum() < 1e-6
    np.testing.assert_allclose(annealed["reg_cost"], plain["reg_cost"], rtol=1e-8)


# ------------------------------------------------------------------------------------------
# padding and batching


def _pad(rng, x, a, total):
    """Append points (inside the data range) with zero weight up to ``total`` rows."""
    extra = total - x.shape[0]
    x_pad = np.concatenate([x, rng.uniform(x.min(), x.max(), size=(extra, x.shape[1]))])
    return x_pad, np.concatenate([a, np.zeros(extra)])


def test_zero_weight_padding_gives_the_unpadded_solution():
    rng = np.random.default_rng(12)
    x, y, a, b, C = problem(rng, 9, 7, 2)
    eps = jnp.float32(0.1 * np.median(C))
    xp, ap = _pad(rng, x, a, 13)
    yp, bp = _pad(rng, y, b, 10)
    f32 = lambda *t: [jnp.asarray(s, jnp.float32) for s in t]  # noqa: E731
    small = _solve(*f32(x, y, a, b), eps, tol=1e-6, max_iter=5000)
    big = _solve(*f32(xp, yp, ap, bp), eps, tol=1e-6, max_iter=5000)
    assert bool(small["converged"]) and bool(big["converged"])
    P, Pp = np.asarray(small["plan"]), np.asarray(big["plan"])
    # float32: identical iterations up to the padded terms (exp(-87) ~ 1e-38 contributions)
    # and the centring of the clouds, which moves the cost by float32 rounding only
    np.testing.assert_allclose(Pp[:9, :7], P, rtol=1e-4, atol=1e-7)
    assert np.abs(Pp[9:]).max() < 1e-30 and np.abs(Pp[:, 7:]).max() < 1e-30
    for k in ("reg_cost", "linear_cost"):
        np.testing.assert_allclose(big[k], small[k], rtol=1e-5)


def test_vmap_over_padded_problems_matches_a_loop_and_pot():
    rng = np.random.default_rng(13)
    sizes = [(9, 7), (6, 10), (12, 4), (12, 10)]
    N, M, d = 12, 10, 2
    batch, refs = [], []
    for n, m in sizes:
        x, y, a, b, C = problem(rng, n, m, d)
        xp, ap = _pad(rng, x, a, N)
        yp, bp = _pad(rng, y, b, M)
        eps = 0.1 * np.median(C)
        batch.append((xp, yp, ap, bp, eps))
        refs.append((_pot_plan(a, b, C, eps), n, m))
    stacked = [jnp.asarray(np.stack(t), jnp.float32) for t in zip(*batch)]

    def one(x, y, a, b, eps):
        res = sinkhorn(x, y, a, b, epsilon=eps, tol=1e-6, max_iter=5000)
        return res.plan, res.reg_cost, res.converged

    P_b, cost_b, ok_b = jax.jit(jax.vmap(one))(*stacked)
    single = jax.jit(one)
    for k, (P_ref, n, m) in enumerate(refs):
        P_k, cost_k, ok_k = single(*(t[k] for t in stacked))
        assert bool(ok_b[k]) and bool(ok_k)
        # float32: the batched and the single solve run the same iterations, but batched
        # reductions round differently, which can move the stopping point; both plans are
        # within the 1e-6 (L1) marginal tolerance of the solution, so within ~1e-5 of each other
        assert np.abs(np.asarray(P_b[k]) - np.asarray(P_k)).sum() < 1e-5
        np.testing.assert_allclose(cost_b[k], cost_k, rtol=1e-5)
        # and the restricted plan is the unpadded problem's (float32 as above: 1e-4 in L1)
        assert np.abs(np.asarray(P_b[k])[:n, :m] - P_ref).sum() < 1e-4


# ------------------------------------------------------------------------------------------
# dtypes


def test_float32_in_float32_out():
    rng = np.random.default_rng(15)
    x, y, a, b, C = problem(rng, 7, 5, 2)
    out = _solve(*(jnp.asarray(t, jnp.float32) for t in (x, y, a, b)), jnp.float32(0.5),
                 tol=1e-5, max_iter=5000)
    for k in ("f", "g", "plan", "reg_cost", "linear_cost", "errors"):
        assert out[k].dtype == jnp.float32, k


def test_bfloat16_input_is_solved_in_float32():
    rng = np.random.default_rng(14)
    x, y, a, b, C = problem(rng, 8, 6, 2)
    xb, yb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16)
    res = sinkhorn(xb, yb, epsilon=0.05 * float(np.median(C)), tol=1e-5, max_iter=5000)
    assert res.f.dtype == jnp.float32 and res.plan.dtype == jnp.float32
    assert bool(res.converged)
    P = np.asarray(res.plan)
    assert np.all(np.isfinite(P))
    # the marginals hold to the solver tolerance in float32 (not bfloat16's 1e-2)
    np.testing.assert_allclose(P.sum(1), np.full(8, 1 / 8), atol=1e-5)
    # and the plan is that of the bfloat16-rounded points, solved in float64 by POT
    xr, yr = np.asarray(xb, np.float64), np.asarray(yb, np.float64)
    Cr = ((xr[:, None] - yr[None]) ** 2).sum(-1)
    ref = _pot_plan(np.full(8, 1 / 8), np.full(6, 1 / 6), Cr, 0.05 * float(np.median(C)))
    assert np.abs(P - ref).sum() < 1e-3  # float32 solve at eps = 0.05 * scale, tol 1e-5


def test_float64_when_x64_is_on(x64, key):
    x = jax.random.normal(key, (6, 2), jnp.float64)
    assert x.dtype == jnp.float64  # the x64 fixture is active
    res = sinkhorn(x, x + 1.0, epsilon=0.5, tol=1e-12, max_iter=5000)
    assert res.f.dtype == jnp.float64 and res.plan.dtype == jnp.float64
    # float64 reaches a marginal error far below float32's rounding floor
    assert bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.plan).sum(1), np.full(6, 1 / 6), atol=1e-12)


def test_x64_fixture_is_scoped_to_its_test():
    assert jnp.asarray(1.0).dtype == jnp.float32


def test_float32_far_from_the_origin():
    # the squared Euclidean cost is translation invariant; in float32 the solver must not lose
    # it to cancellation in |x|^2 + |y|^2 - 2 x.y when the data sit 1e3 from the origin
    rng = np.random.default_rng(16)
    x, y, a, b, C = problem(rng, 7, 5, 2)
    args = [jnp.asarray(t, jnp.float32) for t in (a, b, 0.1 * np.median(C))]
    near = _solve(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), *args, tol=1e-5,
                  max_iter=5000)
    far = _solve(jnp.asarray(x + 1e3, jnp.float32), jnp.asarray(y + 1e3, jnp.float32), *args,
                 tol=1e-5, max_iter=5000)
    assert bool(far["converged"])
    # float32: the shifted inputs are rounded to ~6e-5 absolute, which moves costs by ~1e-4
    assert np.abs(np.asarray(far["plan"]) - np.asarray(near["plan"])).sum() < 1e-3
    np.testing.assert_allclose(far["reg_cost"], near["reg_cost"], rtol=1e-4)


# ------------------------------------------------------------------------------------------
# recompilation


def test_no_retrace_on_new_values():
    traces = []

    @jax.jit
    def solve(x, y, a, b, eps, tau, mass):
        traces.append(1)
        r1 = sinkhorn(x, y, a, b, epsilon=eps, tol=1e-4)
        r2 = sinkhorn(x, y, a, b, epsilon=eps, tau_a=tau, tau_b=tau, tol=1e-4)
        r3 = sinkhorn(x, y, a, b, epsilon=eps, mass=mass, tol=1e-4)
        return r1.reg_cost, r2.reg_cost, r3.reg_cost

    rng = np.random.default_rng(0)
    for i in range(3):
        x, y, a, b, C = problem(rng, 8, 6, 2)
        args = [jnp.asarray(t, jnp.float32) for t in (x, y, a, b)]
        out = solve(*args, jnp.float32(0.2 + 0.1 * i), jnp.float32(0.5 + 0.1 * i),
                    jnp.float32(0.5 + 0.1 * i))
        assert all(np.isfinite(np.asarray(o)) for o in out)
    assert len(traces) == 1


def test_no_recompile_on_new_values_chex():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def cost(x, y, eps):
        return sinkhorn(x, y, epsilon=eps).reg_cost

    x = jax.random.normal(jax.random.key(0), (8, 2))
    c1 = cost(x, x + 1.0, jnp.float32(0.5))
    c2 = cost(x * 2.0, x, jnp.float32(0.3))  # raises if traced again
    assert float(c1) != float(c2)


class _CompileCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            self.count += 1


def test_eager_second_call_does_not_compile():
    x = jax.random.normal(jax.random.key(0), (8, 2))
    y = x[:5] + 1.0
    x2 = jax.block_until_ready(x * 1.1)  # outside the counted region
    eps2 = jnp.float32(0.3)
    jax.block_until_ready(sinkhorn(x, y, epsilon=jnp.float32(0.5)).f)
    counter = _CompileCounter()
    monitoring.register_event_duration_secs_listener(counter)
    try:
        jax.block_until_ready(sinkhorn(x2, y, epsilon=eps2).f)
    finally:
        monitoring.unregister_event_duration_listener(counter)
    assert counter.count == 0
