"""Burer–Monteiro k-means SDP solver: exact recovery, cvxpy cross-check, feasibility,
no n x n intermediates, jit/vmap and bad input."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.sdp.burer_monteiro import bm_solve

K, D = 3, 5


def _mixture(n, sep=6.0, seed=0):
    """K = 3 Gaussian clusters in d = 5 (sigma = 1), centres ``sep`` apart, balanced."""
    rng = np.random.default_rng(seed)
    lab = np.arange(n) % K
    centres = sep / np.sqrt(2.0) * np.eye(K, D)  # pairwise distance sep
    return (centres[lab] + rng.standard_normal((n, D))).astype(np.float32), lab


def _membership(lab):
    m = (lab[:, None] == lab[None, :]).astype(np.float64)
    return m / m.sum(axis=1, keepdims=True)


def _rel_err_factor(u, lab):
    """||U U^T - M||_F / ||M||_F from the factor only (O(n r^2)): ||U^T U||^2 -
    2 sum_a |U^T 1_a|^2 / n_a + K."""
    u = np.asarray(u, np.float64)
    g = u.T @ u
    cross = sum(np.sum(u[lab == a].sum(0) ** 2) / np.sum(lab == a) for a in range(K))
    return np.sqrt(max(np.sum(g * g) - 2.0 * cross + K, 0.0) / K)


def _sdp_objective(x, z):
    sq = np.sum(x.astype(np.float64) ** 2, axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * x.astype(np.float64) @ x.T.astype(np.float64)
    return float(np.sum(dist * z))


# n = 60 from a random start, n = 300 from the (default) k-means start; the other tests reuse
# these two compiled programs (compile time dominates the fast suite)
@pytest.mark.parametrize("n, init", [(60, "random"), (300, "kmeans")])  # default: random
def test_exact_recovery(n, init, key):
    x, lab = _mixture(n)
    st = bm_solve(x, K, key=key, init=init)
    assert bool(st.converged)
    u = np.asarray(st.U, np.float64)
    z = u @ u.T  # small n only: the test forms Z, the solver never does
    m = _membership(lab)
    # float32 iterates stopped at tol = 1e-5: Z matches to ~1e-5; the bar is 1e-2
    assert np.linalg.norm(z - m) / np.linalg.norm(m) < 1e-2
    assert _rel_err_factor(st.U, lab) < 1e-2
    # the objective is exact <D, U U^T>
    np.testing.assert_allclose(float(st.objective), _sdp_objective(x, z), rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("n, sep", [(2000, 9.0), (10000, 9.0)])
def test_exact_recovery_large(n, sep, key):
    # The exact-recovery threshold (Chen & Yang 2021) is Theta^2 ~ 8 sigma^2 log n for
    # K d << n log n: 7.8 sigma at n = 2000, 8.6 sigma at n = 10000. At 6 sigma the true
    # partition is not even the k-means optimum there (fewer points lie on the wrong side of
    # the mid-plane at n = 300), so the large runs use 9 sigma.
    x, lab = _mixture(n, sep=sep)
    st = bm_solve(x, K, key=key)
    assert bool(st.converged)
    assert _rel_err_factor(st.U, lab) < 1e-2


def _cvxpy_sdp(x, solver, **kw):
    cp = pytest.importorskip("cvxpy")
    n = x.shape[0]
    sq = np.sum(x.astype(np.float64) ** 2, axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * x.astype(np.float64) @ x.T.astype(np.float64)
    z = cp.Variable((n, n), PSD=True)
    prob = cp.Problem(cp.Minimize(cp.trace(dist @ z)),
                      [z >= 0, cp.sum(z, axis=1) == 1, cp.trace(z) == K])
    prob.solve(solver=solver, **kw)
    return prob.value, z.value


@pytest.mark.parametrize("init", ["random", pytest.param("kmeans", marks=pytest.mark.slow)])
def test_matches_cvxpy_scs(init, key):
    x, _ = _mixture(60)  # 6 sigma, n = 60: above the threshold, the SDP is tight
    ref_obj, ref_z = _cvxpy_sdp(x, "SCS", eps=1e-7, max_iters=100_000)
    st = bm_solve(x, K, key=key, init=init)
    u = np.asarray(st.U, np.float64)
    np.testing.assert_allclose(float(st.objective), ref_obj, rtol=1e-3)
    assert np.linalg.norm(u @ u.T - ref_z) / np.linalg.norm(ref_z) < 1e-2


@pytest.mark.slow
def test_matches_cvxpy_below_threshold(key):
    # 3 sigma: the SDP is not tight (its solution has rank > K), BM still solves it with a
    # factor of rank 10 from a random start
    x, _ = _mixture(60, sep=3.0)
    ref_obj, ref_z = _cvxpy_sdp(x, "SCS", eps=1e-7, max_iters=100_000)
    st = bm_solve(x, K, key=key, rank=10, init="random", max_iter=100_000)
    u = np.asarray(st.U, np.float64)
    np.testing.assert_allclose(float(st.objective), ref_obj, rtol=1e-3)
    assert np.linalg.norm(u @ u.T - ref_z) / np.linalg.norm(ref_z) < 5e-2


@pytest.mark.slow
@pytest.mark.parametrize("n", [100, 200])
def test_matches_cvxpy_larger(n, key):
    # 6 sigma is below the threshold at n = 200 (the SDP solution has a 4th eigenvalue 2e-3):
    # the random start reaches it (the k-means start stalls 2e-5 above, see the docstring;
    # at tol = 1e-5 the random start also stops on a plateau 2e-5 above, Z 1.1% away)
    x, _ = _mixture(n)
    ref_obj, ref_z = _cvxpy_sdp(x, "SCS", eps=1e-7, max_iters=100_000)
    st = bm_solve(x, K, key=key)
    u = np.asarray(st.U, np.float64)
    np.testing.assert_allclose(float(st.objective), ref_obj, rtol=1e-3)
    assert np.linalg.norm(u @ u.T - ref_z) / np.linalg.norm(ref_z) < 1e-2


def test_feasible_at_convergence(key):
    x, _ = _mixture(300, sep=4.0)  # not tight: the factor is genuinely fractional
    st = bm_solve(x, K, key=key, init="kmeans")
    u = np.asarray(st.U, np.float64)
    assert bool(st.converged)
    assert np.all(u >= 0)
    # float32: ||U||_F^2 is rescaled to k every step, exact to rounding
    np.testing.assert_allclose(np.sum(u * u), K, rtol=1e-5)
    res = np.linalg.norm(u @ u.sum(0) - 1.0) / np.sqrt(len(u))
    assert res < 1e-6 and float(st.primal_residual) <= 1e-7  # tol (default 1e-7)
    assert st.U.shape == (300, 2 * K) and st.multiplier.shape == (300,)


def test_never_forms_n_by_n(key):
    x, _ = _mixture(500)
    for init in ("random", "kmeans"):
        solve = partial(bm_solve, k=K, init=init)
        hlo = jax.jit(lambda x, key, f=solve: f(x, key=key)).lower(x, key).as_text()
        assert "500x500" not in hlo and "[500,500]" not in hlo
        assert "500x6" in hlo or "[500,6]" in hlo  # the check does see the (n, r) factor


def test_jit_and_vmap(key):
    x, _ = _mixture(60)
    x2, _ = _mixture(60, seed=1)
    xs = jnp.stack([jnp.asarray(x), jnp.asarray(x2)])
    # one compile for both transformations (compile time dominates this test)
    batch = jax.jit(jax.vmap(lambda x: bm_solve(x, K, key=key, init="random")))(xs)
    assert batch.U.shape == (2, 60, 2 * K)
    assert bool(jnp.all(batch.converged))
    # the batch runs until both members converge: each at least as converged as alone
    for i, xi in enumerate((x, x2)):
        one = bm_solve(xi, K, key=key, init="random")
        np.testing.assert_allclose(float(batch.objective[i]), float(one.objective), rtol=1e-4)
        np.testing.assert_allclose(batch.U[i], one.U, atol=1e-3)


def test_deterministic(key):
    x, _ = _mixture(60)
    a, b = bm_solve(x, K, key=key, init="random"), bm_solve(x, K, key=key, init="random")
    np.testing.assert_array_equal(a.U, b.U)


def test_bad_k():
    x, _ = _mixture(60)
    with pytest.raises(ValueError, match="`k` must satisfy 2 <= k < n"):
        bm_solve(x, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`k` must satisfy 2 <= k < n"):
        bm_solve(x, 60, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`k` must be a Python int"):
        bm_solve(x, 3.0, key=jax.random.key(0))


def test_bad_rank():
    x, _ = _mixture(60)
    with pytest.raises(ValueError, match="`rank` must be a Python int with k <= rank <= n"):
        bm_solve(x, 3, key=jax.random.key(0), rank=2)
    with pytest.raises(ValueError, match="`rank`"):
        bm_solve(x, 3, key=jax.random.key(0), rank=61)


def test_nan_input():
    x, _ = _mixture(60)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
        bm_solve(x, 3, key=jax.random.key(0))


def test_not_2d():
    with pytest.raises(ValueError, match="`x` must be 2-D"):
        bm_solve(np.zeros((2, 3, 4), np.float32), 3, key=jax.random.key(0))


def test_bad_options():
    x, _ = _mixture(60)
    with pytest.raises(ValueError, match="`init`"):
        bm_solve(x, 3, key=jax.random.key(0), init="spectral")
    with pytest.raises(ValueError, match="`tol`"):
        bm_solve(x, 3, key=jax.random.key(0), tol=-1.0)
    with pytest.raises(ValueError, match="`max_iter`"):
        bm_solve(x, 3, key=jax.random.key(0), max_iter=0)
    with pytest.raises(ValueError, match="`beta`"):
        bm_solve(x, 3, key=jax.random.key(0), beta=0.0)
