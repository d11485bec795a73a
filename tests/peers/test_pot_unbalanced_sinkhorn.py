"""POT's unbalanced entropic OT tests, ported to ``jaxclust.ot`` (``tau_a``/``tau_b`` < 1).

Peer file: PythonOT/POT ``test/unbalanced/test_sinkhorn.py`` (the former
``test/test_unbalanced.py``, moved in POT 0.9.5) at commit
aed0120242e86ab29e630fee59593ee99f416d97. The peer's data (``RandomState(42)``/``(50)``,
``ot.dist``, ``make_1D_gauss``), parameters (``reg=1``, ``reg_m=1``, sizes) and tolerances are
kept; the peer's checks of its own fixed-point equations are applied to jaxclust's potentials,
and its cross-method comparisons are made against the installed POT (0.9.7.post1). float64.

Translation of the API
----------------------
* ``ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg, reg_m)`` solves
  ``<P, M> + reg KL(P | c) + reg_m1 KL(P1 | a) + reg_m2 KL(P^T 1 | b)``; jaxclust's
  ``sinkhorn_from_cost(M, a, b, epsilon=reg, tau_a, tau_b)`` solves the same with
  ``rho = eps tau / (1 - tau)``, i.e. **``tau = reg_m / (reg_m + reg)``** (POT's ``fi``; 1/2
  for the peer's ``reg = reg_m = 1``) and ``reg_m = inf`` <-> ``tau = 1``. A pair
  ``reg_m = (m1, m2)`` or a list/tuple/array form -> ``tau_a``, ``tau_b``.
* ``reg_type="kl"`` (``c = a x b``, POT's default) is jaxclust's reference measure.
  ``reg_type="entropy"`` (``c = 1``) differs from it by ``reg <P, log a (+) log b>`` (a linear
  term), so it is jaxclust on the shifted cost ``M + reg (log a_i + log b_j)``.
* POT's scalings (``log["logu"]``, ``log["logv"]``) and plan ``u_i K_ij v_j`` are jaxclust's
  potentials through ``logu = f / reg - log a``, ``logv = g / reg - log b`` (both reg types).
  ``warmstart=(logu0, logv0)`` -> ``init=(reg (logu0 + log a), reg (logv0 + log b))``.
* ``sinkhorn_unbalanced2`` returns ``<P, M>`` -> ``SinkhornResult.linear_cost``.
* ``method`` -> jaxclust options: ``"sinkhorn"`` -> ``mode="auto"``;
  ``"sinkhorn_stabilized"`` -> ``mode="auto", check_every=1`` (absorption every iteration);
  ``"sinkhorn_reg_scaling"`` -> an epsilon annealing (``epsilon_init=1e4``, decay ``e^-1``);
  ``"sinkhorn_translation_invariant"`` (Séjourné et al.'s translation-invariant updates) has no
  analog, jaxclust's log mode stands in. Unknown ``method`` -> unknown ``mode``.
* ``a = b = []`` (uniform) -> ``a = b = None``; several histograms ``b`` of shape ``(n, k)``
  (POT then uses ``c = 1`` whatever ``reg_type``) -> one solve per column with the ``entropy``
  translation.
* ``reg_m = inf`` on both sides with unequal masses (convention difference): POT runs the
  balanced iterations anyway (a plan that matches neither marginal); jaxclust raises a
  ValueError asking to normalise or relax. The cases assert the error.
* Barycenters (``barycenter_unbalanced``), ``c`` given by hand and ``returnCost`` have no
  analog and are not ported.
"""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
from scipy.special import logsumexp

from jaxclust.ot import sinkhorn_from_cost

from ..utils import enable_x64

METHODS = {  # the same static options as test_pot_bregman.py, so compilations are shared
    "sinkhorn": dict(mode="auto"),
    "sinkhorn_stabilized": dict(mode="auto", check_every=1),
    "sinkhorn_reg_scaling": dict(epsilon_init=1e4, epsilon_decay=math.exp(-1.0)),
    "sinkhorn_translation_invariant": dict(mode="log"),
}
REG_TYPES = ["kl", "entropy"]
TOL, MAX_ITER = 1e-10, 2000
EPS, REG_M = 1.0, 1.0

# POT warns on every reg_type="entropy" call that it overwrites `c`
pytestmark = pytest.mark.filterwarnings("ignore:If reg_type = entropy:UserWarning")


def _tau(reg_m, reg=EPS):
    return 1.0 if reg_m == float("inf") else reg_m / (reg_m + reg)


def _cost(M, a, b, reg, reg_type):
    if reg_type == "kl":
        return M
    return M + reg * (np.log(a)[:, None] + np.log(b)[None, :])


def _solve(M, a, b, reg, reg_m, method, reg_type="kl", **kw):
    """jaxclust for POT's (``reg_m``, ``method``, ``reg_type``); ``reg_m`` a number or pair.
    Returns the result, POT's log-scalings ``(logu, logv)`` and POT's loss ``<P, M>`` (the
    result's ``linear_cost`` is on the shifted cost for ``entropy``), all from the result."""
    m1, m2 = reg_m if isinstance(reg_m, (tuple, list)) else (reg_m, reg_m)
    opts = dict(METHODS[method], tol=TOL, max_iter=MAX_ITER)
    opts.update(kw)
    a_ = ot.unif(M.shape[0]) if a is None else a
    b_ = ot.unif(M.shape[1]) if b is None else b
    res = sinkhorn_from_cost(_cost(M, a_, b_, reg, reg_type), a, b, epsilon=reg,
                             tau_a=_tau(m1, reg), tau_b=_tau(m2, reg), **opts)
    logu = np.asarray(res.f) / reg - np.log(a_)
    logv = np.asarray(res.g) / reg - np.log(b_)
    lin = float(res.linear_cost)
    if reg_type == "entropy":
        row, col = (np.asarray(t) for t in res.marginals)
        lin -= reg * (row @ np.log(a_) + col @ np.log(b_))
    return res, logu, logv, lin


def _cloud(seed=42, n=100):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 2)
    return rng, ot.utils.unif(n), ot.dist(x, x)


def _fixed_point(logu, logv, a, b, M, reg, reg_m, reg_type):
    """The peer's fixed-point equations (log domain), written from its test."""
    fi = reg_m / (reg_m + reg)
    loga, logb = np.log(a + 1e-16), np.log(b + 1e-16)
    off = loga[:, None] + logb[None, :] if reg_type == "kl" else 0.0
    logKtu = logsumexp(logu[None, :] - M.T / reg + np.transpose(off), axis=1)
    logKv = logsumexp(logv[None, :] - M / reg + off, axis=1)
    return fi * (loga - logKv), fi * (logb - logKtu)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("reg_type", REG_TYPES)
def test_unbalanced_convergence(method, reg_type):
    """Peer: ``a`` uniform, ``b = 1.5 * uniform``; the returned scalings satisfy the
    fixed-point equations within 1e-5 and ``sinkhorn_unbalanced2`` is ``<G, M>`` within 1e-5."""
    _, a, M = _cloud()
    b = ot.utils.unif(100) * 1.5
    with enable_x64():
        res, logu, logv, lin = _solve(M, a, b, EPS, REG_M, method, reg_type)
        assert bool(res.converged)
        G = np.asarray(res.plan)
    u_final, v_final = _fixed_point(logu, logv, a, b, M, EPS, REG_M, reg_type)
    np.testing.assert_allclose(u_final, logu, atol=1e-05)
    np.testing.assert_allclose(v_final, logv, atol=1e-05)
    np.testing.assert_allclose(np.sum(G * M), lin, atol=1e-5)
    loss = ot.unbalanced.sinkhorn_unbalanced2(a, b, M, reg=EPS, reg_m=REG_M, method="sinkhorn",
                                              reg_type=reg_type, stopThr=1e-12,
                                              numItermax=10000)
    np.testing.assert_allclose(lin, loss, atol=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("reg_type", REG_TYPES)
def test_unbalanced_marginals(method, reg_type):
    """Peer: empty histograms mean uniform: same scalings, plan and loss within 1e-5."""
    _, a, M = _cloud()
    b = ot.utils.unif(100)
    with enable_x64():
        res0, logu0, logv0, loss0 = _solve(M, a, b, EPS, REG_M, method, reg_type)
        res, logu, logv, loss = _solve(M, None, None, EPS, REG_M, method, reg_type)
        G0, G = np.asarray(res0.plan), np.asarray(res.plan)
    np.testing.assert_allclose(logu, logu0, atol=1e-05)
    np.testing.assert_allclose(logv, logv0, atol=1e-05)
    np.testing.assert_allclose(G, G0, atol=1e-05)
    np.testing.assert_allclose(loss, loss0, atol=1e-5)
    G_pot = ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg=EPS, reg_m=REG_M, reg_type=reg_type,
                                              stopThr=1e-12, numItermax=10000)
    np.testing.assert_allclose(G, G_pot, atol=1e-05)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("reg_type", REG_TYPES)
def test_unbalanced_warmstart(method, reg_type):
    """Peer: a warm start of zeros (= the cold start) and one from the exact OT duals give the
    cold-start scalings, plan and loss within 1e-5."""
    _, a, M = _cloud()
    b = ot.utils.unif(100)
    _, log_emd = ot.lp.emd(a, b, M, log=True)
    with enable_x64():
        res0, logu0, logv0, loss0 = _solve(M, a, b, EPS, REG_M, method, reg_type)
        zeros = (EPS * np.log(a), EPS * np.log(b))  # POT's (0, 0) log-scalings
        res, logu, logv, loss = _solve(M, a, b, EPS, REG_M, method, reg_type, init=zeros)
        emd = (EPS * (log_emd["u"] + np.log(a)), EPS * (log_emd["v"] + np.log(b)))
        res1, logu1, logv1, loss1 = _solve(M, a, b, EPS, REG_M, method, reg_type, init=emd)
        assert bool(res1.converged)
        G0, G, G1 = (np.asarray(r.plan) for r in (res0, res, res1))
    np.testing.assert_allclose(logu, logu0, atol=1e-05)
    np.testing.assert_allclose(logv, logv0, atol=1e-05)
    np.testing.assert_allclose(logu0, logu1, atol=1e-05)
    np.testing.assert_allclose(logv0, logv1, atol=1e-05)
    np.testing.assert_allclose(G, G0, atol=1e-05)
    np.testing.assert_allclose(G0, G1, atol=1e-05)
    np.testing.assert_allclose(loss, loss0, atol=1e-5)
    np.testing.assert_allclose(loss0, loss1, atol=1e-5)


def _two_histograms():
    rng, a, M = _cloud(seed=50)
    return a, rng.rand(100, 2), M


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("reg_m", [1, float("inf")])
def test_unbalanced_relaxation_parameters(method, reg_m):
    """Peer: ``reg_m`` given as a number, a pair, a list, a 1-tuple or an array gives the same
    scalings and plan within 1e-5 (``b``: two random histograms of mass ~50). jaxclust: ``tau``
    as a Python float, a numpy float and a JAX scalar; with ``reg_m = inf`` (both marginals
    exact) the masses differ, and jaxclust raises (module docstring)."""
    import jax.numpy as jnp

    a, bs, M = _two_histograms()
    tau = _tau(reg_m)
    with enable_x64():
        for b in bs.T:
            if reg_m == float("inf"):
                with pytest.raises(ValueError, match="same mass"):
                    sinkhorn_from_cost(M, a, b, epsilon=EPS, tau_a=tau, tau_b=tau,
                                       **METHODS[method])
                continue
            forms = [(tau, tau), (np.float64(tau), np.float64(tau)),
                     (jnp.asarray(tau), jnp.asarray(tau))]
            outs = [sinkhorn_from_cost(_cost(M, a, b, EPS, "entropy"), a, b, epsilon=EPS,
                                       tau_a=ta, tau_b=tb, tol=TOL, max_iter=MAX_ITER,
                                       **METHODS[method]) for ta, tb in forms]
            ref = ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg=EPS, reg_m=reg_m,
                                                    reg_type="entropy", stopThr=1e-12,
                                                    numItermax=10000)
            for out in outs:
                np.testing.assert_allclose(np.asarray(out.f), np.asarray(outs[0].f), atol=1e-5)
                np.testing.assert_allclose(np.asarray(out.plan), ref, atol=1e-05)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("reg_m1", [1, float("inf")])
@pytest.mark.parametrize("reg_m2", [1, float("inf")])
def test_unbalanced_relaxation_parameters_pair(method, reg_m1, reg_m2):
    """Peer: ``reg_m = (reg_m1, reg_m2)`` as a tuple or a list gives the same solution; here
    jaxclust's ``(tau_a, tau_b)`` (semi-relaxed when one side is ``inf``) against POT's plan
    and scalings (first histogram of the peer's pair, ``reg_type="kl"``), and the error when
    both sides are exact."""
    a, bs, M = _two_histograms()
    b = bs[:, 0]
    pair = (reg_m1, reg_m2)
    with enable_x64():
        if reg_m1 == reg_m2 == float("inf"):
            with pytest.raises(ValueError, match="same mass"):
                _solve(M, a, b, EPS, pair, method)
            return
        res, logu, logv, _ = _solve(M, a, b, EPS, pair, method)
        assert bool(res.converged)
        G = np.asarray(res.plan)
    G_pot, log = ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg=EPS, reg_m=list(pair),
                                                   stopThr=1e-13, numItermax=100000, log=True)
    np.testing.assert_allclose(G, G_pot, rtol=1e-6, atol=1e-05)
    # scalings: the balanced side of a semi-relaxed problem is fixed only up to its log-mass
    np.testing.assert_allclose(logu, log["logu"], atol=1e-05)
    np.testing.assert_allclose(logv, log["logv"], atol=1e-05)


@pytest.mark.parametrize("method", list(METHODS))
def test_unbalanced_multiple_inputs(method):
    """Peer: ``b`` with two columns (``c = 1``): the scalings satisfy the fixed-point
    equations within 1e-5 and the batched losses equal the per-column ones within 1e-4."""
    rng, a, M = _cloud(seed=42)
    bs = rng.rand(100, 2)
    losses = ot.unbalanced.sinkhorn_unbalanced2(a, bs, M, reg=EPS, reg_m=REG_M,
                                                reg_type="entropy", stopThr=1e-12,
                                                numItermax=10000)
    with enable_x64():
        for k, b in enumerate(bs.T):
            res, logu, logv, lin = _solve(M, a, b, EPS, REG_M, method, "entropy")
            u_final, v_final = _fixed_point(logu, logv, a, b, M, EPS, REG_M, "entropy")
            np.testing.assert_allclose(u_final, logu, atol=1e-05)
            np.testing.assert_allclose(v_final, logv, atol=1e-05)
            np.testing.assert_allclose(lin, losses[k], atol=1e-4)


@pytest.mark.parametrize("method", ["sinkhorn_stabilized", "sinkhorn",
                                    "sinkhorn_translation_invariant"])
def test_stabilized_vs_sinkhorn(method):
    """Peer: Gaussians ``a`` (m=20, s=5) vs ``b1`` (m=60, s=8), ``b2`` (m=30, s=4),
    ``M = dist0(100) / median``, reg = reg_m = 1, stopThr 1e-12: the methods' losses agree
    within 1e-5 (POT uses ``c = 1`` for several histograms: the ``entropy`` translation)."""
    n = 100
    a = ot.datasets.make_1D_gauss(n, m=20, s=5)
    b1 = ot.datasets.make_1D_gauss(n, m=60, s=8)
    b2 = ot.datasets.make_1D_gauss(n, m=30, s=4)
    M = ot.utils.dist0(n)
    M /= np.median(M)
    loss = ot.unbalanced.sinkhorn_unbalanced2(a, np.vstack((b1, b2)).T, M, EPS, REG_M,
                                              method="sinkhorn", stopThr=1e-12)
    with enable_x64():
        ours = [_solve(M, a, b, EPS, REG_M, method, "entropy")[3] for b in (b1, b2)]
    np.testing.assert_allclose(ours, loss, atol=1e-5)


def test_wrong_method():
    """Peer: an unknown ``method`` raises ValueError; here an unknown ``mode``."""
    rng = np.random.RandomState(42)
    x = rng.randn(10, 2)
    M = ot.dist(x, x)
    with pytest.raises(ValueError, match="mode"):
        sinkhorn_from_cost(M, ot.unif(10), ot.unif(10) * 1.5, epsilon=EPS, tau_a=0.5,
                           tau_b=0.5, mode="badmethod")
