"""kmeans_sdp (ADMM) against cvxpy (Clarabel, else SCS), exact recovery of well-separated
mixtures, the duality-gap certificate, rounding helpers, jit/vmap and bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from jaxclust.sdp import (
    ADMM,
    ADMM_MAX_N,
    ADMMStats,
    BurerMonteiro,
    kmeans_sdp,
    membership_matrix,
    round_labels,
)
from jaxclust.sdp._solver import _as_value

from ..utils import enable_x64

cp = pytest.importorskip("cvxpy")


def _mixture(n, sep, seed, d=5, k=3):
    """k spherical unit-variance Gaussians whose centres are pairwise ``sep`` apart."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((k, d))
    centres[np.arange(k), np.arange(k)] = sep / np.sqrt(2.0)
    labels = np.arange(n) % k
    return centres[labels] + rng.standard_normal((n, d)), labels


def _cvxpy_sdp(x, k, accurate=True):
    """Reference solution of the Peng-Wei SDP: Clarabel (interior point, accurate) when
    ``accurate`` and installed, else SCS with eps 1e-6 (about 6x faster at n = 60, where its
    objective agrees with Clarabel's to ~1e-5 relative). Clarabel's memory grows too fast
    beyond n = 60 (over 20 GB at n = 100), so larger problems use SCS."""
    n = len(x)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    z = cp.Variable((n, n), PSD=True)
    prob = cp.Problem(cp.Minimize(cp.trace(d @ z)),
                      [z >= 0, z @ np.ones(n) == 1, cp.trace(z) == k])
    if accurate and "CLARABEL" in cp.installed_solvers():
        prob.solve(solver="CLARABEL")
    else:
        prob.solve(solver="SCS", eps=1e-6)
    return np.asarray(z.value), float(prob.value)


@functools.cache
def _solve64(n, sep, seed, tol=1e-6):
    """ADMM solution in float64 (cached: several tests share one solve)."""
    x, labels = _mixture(n, sep, seed)
    with enable_x64():
        res = kmeans_sdp(jnp.asarray(x), 3, solver=ADMM(tol=tol))
        res = jax.tree_util.tree_map(np.asarray, res)
    return x, labels, res


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# -- against cvxpy -------------------------------------------------------------------------

def _check_vs_cvxpy(n, sep, accurate=True):
    x, _, res = _solve64(n, sep, 0)
    z_ref, v_ref = _cvxpy_sdp(x, 3, accurate)
    assert bool(res.converged)
    assert abs(float(res.objective) - v_ref) <= 1e-3 * abs(v_ref)
    assert _rel(res.Z, z_ref) <= 1e-2


# slow (~12 s, mostly SCS): in the fast suite the duality-gap test below certifies ADMM's
# optimum independently, and BM and the iLA-SDP step are checked against cvxpy
@pytest.mark.slow
def test_matches_cvxpy_n60():
    # sep = 3: overlapping clusters, the SDP solution is not a membership matrix
    _check_vs_cvxpy(60, 3.0, accurate=False)  # SCS: keeps the fast suite fast


@pytest.mark.slow
def test_matches_clarabel_n60():
    _check_vs_cvxpy(60, 3.0, accurate=True)


@pytest.mark.slow
@pytest.mark.parametrize("n", [100, 200])
def test_matches_scs_slow(n):
    _check_vs_cvxpy(n, 3.0, accurate=False)


# -- certificate, residuals ----------------------------------------------------------------

def test_gap_and_residuals_small_at_convergence():
    _, _, res = _solve64(60, 3.0, 0)
    assert bool(res.converged) and 0 < int(res.n_iters) < 10000
    assert isinstance(res.stats, ADMMStats)
    assert 0 <= float(res.primal_residual) <= 1e-6 and 0 <= float(res.stats.dual_residual) <= 1e-6
    assert abs(float(res.stats.gap)) <= 1e-4
    z = res.Z
    np.testing.assert_allclose(z, z.T, atol=1e-12)
    np.testing.assert_allclose(z.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.trace(z), 3.0, atol=1e-9)
    assert np.linalg.eigvalsh(z).min() >= -1e-9 and z.min() >= -1e-5
    x = _mixture(60, 3.0, 0)[0]
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(float(res.objective), np.sum(d * z), rtol=1e-9)


def test_gap_is_large_before_convergence():
    x, _ = _mixture(60, 3.0, 0)
    with enable_x64():
        res = kmeans_sdp(jnp.asarray(x), 3, solver=ADMM(max_iter=3))
    assert not bool(res.converged) and int(res.n_iters) == 3
    assert float(res.stats.gap) > 1e-4


# -- exact recovery ------------------------------------------------------------------------

def _check_recovery(n):
    _, labels, res = _solve64(n, 6.0, 1, tol=1e-5)
    z_star = np.asarray(membership_matrix(jnp.asarray(labels), 3))
    assert bool(res.converged)
    assert _rel(res.Z, z_star) < 1e-2
    assert adjusted_rand_score(labels, res.labels) == 1.0


def test_exact_recovery_n60():
    _check_recovery(60)


@pytest.mark.slow
def test_exact_recovery_n150():
    _check_recovery(150)


@pytest.mark.slow
@pytest.mark.parametrize("n", [1000, 2000])
def test_exact_recovery_large_admm(n):
    # above the threshold sigma sqrt(8 log n) (7.4 / 7.8 sigma): 9 sigma, float32; the
    # partial (LOBPCG) projection makes these sizes practical
    x, labels = _mixture(n, 9.0, 2)
    res = kmeans_sdp(jnp.asarray(x, jnp.float32), 3)
    z_star = np.asarray(membership_matrix(jnp.asarray(labels), 3))
    assert bool(res.converged)
    assert _rel(np.asarray(res.Z), z_star) < 1e-2
    assert adjusted_rand_score(labels, res.labels) == 1.0


@pytest.mark.slow
def test_recovery_rate_rises_with_separation():
    rates = []
    for sep in (1.0, 2.0, 3.0, 4.0, 6.0):
        ok = 0
        for seed in range(4):
            x, labels = _mixture(30, sep, 10 + seed)
            res = kmeans_sdp(jnp.asarray(x, jnp.float32), 3)
            z_star = np.asarray(membership_matrix(jnp.asarray(labels), 3))
            ok += _rel(np.asarray(res.Z), z_star) < 1e-2
        rates.append(ok / 4)
    assert rates[0] == 0.0 and rates[-1] == 1.0
    assert all(b >= a for a, b in zip(rates, rates[1:]))


# -- rounding helpers ----------------------------------------------------------------------

def test_membership_matrix_is_feasible_and_rounds_back():
    # n = 24, k = 3 in float32: the rounding's k-means shares its compilation with the
    # single solves of the jit/vmap test
    labels = jnp.asarray(np.random.default_rng(3).permutation(np.arange(24) % 3 + (
        np.arange(24) < 4)) % 3)
    lab_np = np.asarray(labels)
    sizes = np.bincount(lab_np, minlength=3)
    z = np.asarray(membership_matrix(labels, 3))
    np.testing.assert_allclose(z.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.trace(z), 3.0, rtol=1e-6)
    assert np.linalg.eigvalsh(z).min() >= -1e-6 and z.min() >= 0
    for i, j in [(0, 1), (2, 5), (7, 20)]:
        want = 1.0 / sizes[lab_np[i]] if lab_np[i] == lab_np[j] else 0.0
        assert z[i, j] == pytest.approx(want)
    lab = round_labels(jnp.asarray(z, jnp.float32), 3, jax.random.key(0))
    assert adjusted_rand_score(lab_np, np.asarray(lab)) == 1.0
    # a nonnegative factor of the same Z (U U^T = Z, r = 5 columns) rounds the same
    u = np.zeros((24, 5))
    for a in range(3):
        u[lab_np == a, a] = 1.0 / np.sqrt(sizes[a])
    np.testing.assert_allclose(u @ u.T, z, atol=1e-6)
    lab_u = round_labels(jnp.asarray(u, jnp.float32), 3, jax.random.key(0))
    assert adjusted_rand_score(lab_np, np.asarray(lab_u)) == 1.0


def test_membership_matrix_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        membership_matrix(jnp.array([0, 3]), 3)
    with pytest.raises(ValueError, match="labels"):
        membership_matrix(jnp.zeros((2, 2), jnp.int32), 2)


# -- jit / vmap ----------------------------------------------------------------------------

def _small_batch():
    return jnp.stack([jnp.asarray(_mixture(24, 8.0, s)[0], jnp.float32) for s in (0, 1)])


# jit of vmap: one compilation, shared by the two tests below
_jit_batch = jax.jit(jax.vmap(lambda x: kmeans_sdp(x, 3)))


@pytest.mark.slow  # the conformance cases kmeans_sdp-admm / -bm check jit and vmap fast
def test_jit_and_vmap_match_single_solves():
    xs = _small_batch()
    batch = _jit_batch(xs)
    assert batch.Z.shape == (2, 24, 24) and batch.labels.shape == (2, 24)
    for b in range(2):
        one = kmeans_sdp(xs[b], 3)
        assert bool(batch.converged[b]) and bool(one.converged)
        np.testing.assert_allclose(batch.objective[b], one.objective, rtol=1e-4)
        np.testing.assert_allclose(batch.Z[b], one.Z, atol=1e-3)
        assert adjusted_rand_score(np.asarray(batch.labels[b]), np.asarray(one.labels)) == 1.0


def test_nan_under_jit_raises():
    xs = _small_batch().at[1, 3, 1].set(jnp.nan)
    with pytest.raises(Exception, match="NaN"):
        _jit_batch(xs).Z.block_until_ready()


# -- bad input -----------------------------------------------------------------------------

def _x(n=10, d=2):
    return jnp.asarray(np.random.default_rng(0).standard_normal((n, d)), jnp.float32)


def test_k_below_two_raises():
    with pytest.raises(ValueError, match="`k`"):
        kmeans_sdp(_x(), 1)


def test_k_at_least_n_raises():
    with pytest.raises(ValueError, match="`k`"):
        kmeans_sdp(_x(), 10)


def test_k_not_int_raises():
    with pytest.raises(ValueError, match="`k`"):
        kmeans_sdp(_x(), 2.0)


def test_x_not_2d_raises():
    with pytest.raises(ValueError, match="`x` must be 2-D"):
        kmeans_sdp(jnp.zeros((10,)), 2)


def test_nan_or_inf_raises():
    with pytest.raises(ValueError, match="NaN or Inf"):
        kmeans_sdp(_x().at[0, 0].set(jnp.nan), 2)
    with pytest.raises(ValueError, match="NaN or Inf"):
        kmeans_sdp(_x().at[0, 0].set(jnp.inf), 2)


def test_n_too_large_for_admm_points_to_bm():
    with pytest.raises(ValueError, match=r"solver=BurerMonteiro\(\)"):
        kmeans_sdp(jnp.zeros((ADMM_MAX_N + 1, 2)), 3)


@pytest.mark.parametrize("solver", ["bm", BurerMonteiro, None, {"rank": 4}])
def test_solver_must_be_an_instance(solver):
    with pytest.raises(ValueError, match="`solver` must be"):
        kmeans_sdp(_x(), 2, solver=solver)


def test_bad_options_raise():
    for make, match in [(lambda: ADMM(tol=0.0), "`tol`"), (lambda: ADMM(max_iter=0), "`max_iter`"),
                        (lambda: ADMM(rho=-1.0), "`rho`"),
                        (lambda: ADMM(adaptive_rho=1), "`adaptive_rho`"),
                        (lambda: BurerMonteiro(init="spectral"), "`init`"),
                        (lambda: BurerMonteiro(beta=0.0), "`beta`"),
                        (lambda: BurerMonteiro(check_every=0), "`check_every`"),
                        (lambda: ADMM(1.0), "keyword options only")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match="`rank` must be a Python int with k <= rank <= n"):
        kmeans_sdp(_x(), 3, solver=BurerMonteiro(rank=2))
    # a traced value is checked inside the program (the helper kmeans_sdp applies to it)
    with pytest.raises(Exception, match="`rho` must be a finite number > 0"):
        jax.jit(lambda r: _as_value(ADMM(rho=r).rho, "rho", jnp.float32))(-1.0)


# Every option belongs to one solver; one of the other solver raises (issue 17, 2), eagerly
# and when the solver is built inside a jitted function (before anything compiles).
INAPPLICABLE = [(ADMM, "rank", 4), (ADMM, "beta", 1.0), (ADMM, "step", 1.0),
                (ADMM, "check_every", 10), (ADMM, "init", "kmeans"),
                (BurerMonteiro, "rho", 1.0), (BurerMonteiro, "adaptive_rho", False)]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("cls, option, value", INAPPLICABLE,
                         ids=[f"{c.__name__}-{o}" for c, o, _ in INAPPLICABLE])
def test_inapplicable_option_raises(cls, option, value, jit):
    def run(x):
        return kmeans_sdp(x, 2, solver=cls(**{option: value})).objective

    with pytest.raises(ValueError, match=rf"`{option}` does not apply to {cls.__name__}"):
        (jax.jit(run) if jit else run)(_x())


def test_solvers_are_static_pytrees():
    a, b = ADMM(rho=2.0), ADMM(rho=2.0)
    assert a == b and hash(a) == hash(b) and a != ADMM(rho=3.0)
    assert jax.tree_util.tree_leaves(a) == [2.0, 1e-5]  # numeric options are leaves
    bm = BurerMonteiro(rank=8, init="kmeans")
    assert jax.tree_util.tree_leaves(bm) == [1e-5, 1.0, 1.0]
    # static options live in the tree structure: a new rank is a new program
    assert (jax.tree_util.tree_structure(bm)
            != jax.tree_util.tree_structure(BurerMonteiro(rank=6, init="kmeans")))
