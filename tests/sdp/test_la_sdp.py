"""la_sdp (iLA-SDP): the group SDP step against cvxpy, the closed-form covariance step and
objective against NumPy, recovery, the heterogeneous-mixture claim (iLA-SDP beats k-means, the
k-means SDP and EM), jit/vmap and bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import gmm, kmeans
from jaxclust.demo.sdp import heterogeneous_mixture
from jaxclust.metrics import clustering_accuracy
from jaxclust.sdp import BurerMonteiro, kmeans_sdp, la_sdp
from jaxclust.sdp.ila import _costs, _covariances, _factors_from_labels, _sdp_step

from ..utils import enable_x64


def _error(y, labels):
    return 1.0 - float(clustering_accuracy(y, np.asarray(labels)))


def test_covariance_step_matches_numpy_at_a_partition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    labels = np.arange(30) % 3
    with enable_x64():
        u = _factors_from_labels(jnp.asarray(labels), 3, 2, jnp.float64, 0.0)
        cov, w, nk, means = _covariances(jnp.asarray(x), u, jnp.asarray(0.1), "full")
    for j in range(3):
        g = x[labels == j]
        np.testing.assert_allclose(cov[j], np.cov(g.T, bias=True) + 0.1 * np.eye(3),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(means[j], g.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w, np.eye(3)[labels], atol=1e-12)
    np.testing.assert_allclose(nk, [10, 10, 10])
    with enable_x64():
        diag = _covariances(jnp.asarray(x), u, jnp.asarray(0.1), "diag")[0]
        sph = _covariances(jnp.asarray(x), u, jnp.asarray(0.1), "spherical")[0]
    for j in range(3):
        var = x[labels == j].var(0)
        np.testing.assert_allclose(diag[j], np.diag(var + 0.1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sph[j], (var.mean() + 0.1) * np.eye(3), rtol=1e-12,
                                   atol=1e-12)


def test_group_sdp_step_matches_cvxpy():
    """The SDP step at fixed covariances solves min sum_k <A_k, Z_k> over the relaxation:
    its objective equals cvxpy's (SCS, eps 1e-7) to 1e-3 relative, a lower bound that no
    partition can beat."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(3)
    n, d, k = 24, 2, 2
    x = np.r_[rng.normal(size=(12, d)) * 1.5, rng.normal(size=(12, d)) * 0.4 + [3.0, 0.0]]
    labels = (np.arange(n) >= 12).astype(np.int32)
    labels[[0, 13]] = labels[[13, 0]]  # a slightly wrong start
    with enable_x64():
        xj = jnp.asarray(x)
        u0 = _factors_from_labels(jnp.asarray(labels), k, 2, jnp.float64, 1e-3)
        cov, _, nk, _ = _covariances(xj, u0, jnp.asarray(1e-3), "full")
        y, s, gamma, _ = _costs(xj, cov, nk, n, True)
        u, _, _, ok, res = _sdp_step(u0, jnp.zeros(n), y, s, gamma, jax.random.key(0),
                                     jnp.asarray(1e-10), jnp.asarray(1.0), jnp.asarray(1.0),
                                     200_000, 10)
        yn, sn, gn = np.asarray(y), np.asarray(s), np.asarray(gamma)
        z = np.einsum("knr,kmr->knm", np.asarray(u), np.asarray(u))
    a = [sn[j][:, None] + sn[j][None] - 2 * yn[j] @ yn[j].T + gn[j] for j in range(k)]
    ours = sum(float(np.sum(a[j] * z[j])) for j in range(k))
    zs = [cp.Variable((n, n), PSD=True) for _ in range(k)]
    cons = [sum(zj @ np.ones(n) for zj in zs) == 1]
    for zj in zs:
        cons += [zj >= 0, cp.trace(zj) == 1]
    prob = cp.Problem(cp.Minimize(sum(cp.trace(a[j] @ zs[j]) for j in range(k))), cons)
    prob.solve(solver=cp.SCS, eps=1e-7, max_iters=200_000)
    assert bool(ok) and float(res) < 1e-6
    ref = prob.value
    assert abs(ours - ref) <= 1e-3 * abs(ref), (ours, ref)
    # the relaxation's value is below every partition's (here: the true one)
    part = np.zeros((k, n, n))
    for j in range(k):
        g = (np.arange(n) >= 12) == bool(j)
        part[j] = np.outer(g, g) / g.sum()
    assert ours <= sum(float(np.sum(a[j] * part[j])) for j in range(k)) + 1e-6 * abs(ref)


def test_objective_is_minus_twice_the_classification_loglik():
    x, y = heterogeneous_mixture(0, n=90, d=2, sep=6.0)
    res = la_sdp(x, 3, key=jax.random.key(0))
    assert bool(res.converged)
    # hard solution: weights are 0/1, so F = -2 l - n d log(2 pi) exactly (float32 rounding)
    np.testing.assert_allclose(np.asarray(res.weights).max(1), 1.0, atol=1e-3)
    n, d = x.shape
    np.testing.assert_allclose(float(res.objective),
                               -2 * float(res.log_likelihood) - n * d * math.log(2 * math.pi),
                               rtol=1e-3)
    # the reported log-likelihood is the Gaussian classification likelihood, recomputed here
    lab = np.asarray(res.labels)
    ll = 0.0
    for j in range(3):
        g = x[lab == j].astype(np.float64)
        cov = np.asarray(res.covariances[j], np.float64)
        diff = g - g.mean(0)
        quad = np.einsum("nd,de,ne->n", diff, np.linalg.inv(cov), diff)
        ll += np.sum(np.log(len(g) / n) - 0.5 * (quad + np.linalg.slogdet(cov)[1]
                                                 + d * math.log(2 * math.pi)))
    np.testing.assert_allclose(float(res.log_likelihood), ll, rtol=1e-4)
    # overlapping clusters (the wide one reaches the others): at most 2 points of 90 off
    assert _error(y, res.labels) <= 2 / 90


def test_recovers_a_well_separated_homoscedastic_mixture():
    # same shapes as the test above: one compilation
    rng = np.random.default_rng(1)
    c = 9.0 * np.eye(3, 2)[[0, 1, 2]]
    c[2] = [9.0, 9.0]
    y = np.arange(90) % 3
    x = (c[y] + rng.normal(size=(90, 2))).astype(np.float32)
    res = la_sdp(x, 3, key=jax.random.key(2))
    assert _error(y, res.labels) == 0.0 and bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.proportions), 1 / 3, atol=1e-3)
    # a given start (the truth) is kept, and the same key gives the same result
    again = la_sdp(x, 3, key=jax.random.key(2), init_labels=jnp.asarray(y, jnp.int32))
    assert _error(y, again.labels) == 0.0
    np.testing.assert_allclose(again.factors, la_sdp(
        x, 3, key=jax.random.key(2), init_labels=jnp.asarray(y, jnp.int32)).factors)


def _compare(seeds, n, d):
    errs = {m: [] for m in ("kmeans", "kmeans_sdp", "gmm", "la_sdp")}
    for seed in seeds:
        x, y = heterogeneous_mixture(seed, n=n, d=d)
        key = jax.random.key(seed)
        errs["kmeans"].append(_error(y, kmeans(x, 3, key=key).labels))
        sdp = kmeans_sdp(x, 3, solver=BurerMonteiro(), key=key)
        errs["kmeans_sdp"].append(_error(y, sdp.labels))
        errs["gmm"].append(_error(y, gmm(x, 3, key=key).labels))
        errs["la_sdp"].append(_error(y, la_sdp(x, 3, key=key).labels))
    return {m: float(np.mean(v)) for m, v in errs.items()}


@pytest.mark.slow
def test_beats_kmeans_sdp_and_em_on_heterogeneous_clusters_20_seeds():
    # acceptance 3 (also run by benchmarks/bench_sdp.py, which writes the table); jit and
    # vmap are checked by the conformance suite
    mean = _compare(range(20), n=300, d=10)
    assert mean["la_sdp"] < min(mean["kmeans"], mean["kmeans_sdp"], mean["gmm"]), mean


@pytest.mark.parametrize("kwargs, match", [
    (dict(covariance_type="tied"), "covariance_type"),
    (dict(rank=0), "rank"),
    (dict(max_outer=0), "max_outer"),
    (dict(reg_covar=-1.0), "reg_covar"),
    (dict(beta=0.0), "beta"),
    (dict(init_labels=np.zeros(5, np.int32)), "init_labels"),
    (dict(init_labels=np.full(20, 3, np.int32)), "init_labels"),
])
def test_bad_options(kwargs, match):
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=match):
        la_sdp(x, 3, key=jax.random.key(0), **kwargs)


def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="x"):
        la_sdp(np.zeros(10), 2, key=key)
    with pytest.raises(ValueError, match="k"):
        la_sdp(np.random.default_rng(0).normal(size=(10, 2)), 1, key=key)
    x = np.random.default_rng(0).normal(size=(10, 2))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite|NaN"):
        la_sdp(x, 2, key=key)
