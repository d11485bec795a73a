"""Pairwise costs and geometries: against scipy/numpy, and dense against online (chunked)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from jaxclust._core.costs import COSTS, CostMatrix, PointCloud, pairwise_cost

from ..utils import enable_x64


def _reference(x, y, cost):
    if cost == "sqeuclidean":
        return cdist(x, y, "sqeuclidean")
    if cost == "euclidean":
        return cdist(x, y, "euclidean")
    if cost == "cosine":
        return cdist(x, y, "cosine")
    if cost == "dot":
        return -x @ y.T
    raise AssertionError(cost)


def _clouds(seed=0, n=7, m=5, d=3, offset=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) + offset, rng.normal(size=(m, d)) + offset


def test_cost_names():
    assert set(COSTS) == {"sqeuclidean", "euclidean", "cosine", "dot"}


@pytest.mark.parametrize("cost", COSTS)
def test_pairwise_cost_matches_scipy_float64(cost):
    x, y = _clouds()
    with enable_x64():
        C = np.asarray(pairwise_cost(jnp.asarray(x), jnp.asarray(y), cost))
    assert C.dtype == np.float64
    np.testing.assert_allclose(C, _reference(x, y, cost), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cost", COSTS)
def test_pairwise_cost_matches_scipy_float32(cost):
    x, y = _clouds(1)
    C = np.asarray(pairwise_cost(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), cost))
    assert C.dtype == np.float32
    # float32: |x|^2 + |y|^2 - 2 x.y on unit-scale data loses ~1e-6 absolute to cancellation
    np.testing.assert_allclose(C, _reference(x, y, cost), rtol=1e-5, atol=1e-5)


def test_coincident_points_have_zero_cost_and_finite_gradient():
    x, _ = _clouds(2)
    xj = jnp.asarray(x, jnp.float32)
    for cost in ("sqeuclidean", "euclidean", "cosine"):
        C = np.asarray(pairwise_cost(xj, xj, cost))
        np.testing.assert_allclose(np.diag(C), 0.0, atol=1e-5)  # float32 cancellation
    g = jax.grad(lambda x: jnp.sum(pairwise_cost(x, x, "euclidean")))(xj)
    assert np.all(np.isfinite(np.asarray(g)))


def test_invalid_cost_name():
    x, y = _clouds()
    with pytest.raises(ValueError, match="`cost` must be one of"):
        pairwise_cost(jnp.asarray(x), jnp.asarray(y), "l1")


@pytest.mark.parametrize("cost", COSTS)
def test_pointcloud_cost_matrix(cost):
    x, y = _clouds(3)
    geom = PointCloud(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), cost)
    assert geom.shape == (7, 5) and geom.dtype == jnp.float32
    # float32 as in test_pairwise_cost_matches_scipy_float32
    np.testing.assert_allclose(geom.cost_matrix(), _reference(x, y, cost), rtol=1e-5, atol=1e-5)


def test_pointcloud_centring_keeps_float32_accuracy_far_from_the_origin():
    # data at 1e3 from the origin: without centring, |x|^2 ~ 1e6 and float32 cancellation in
    # |x|^2 + |y|^2 - 2 x.y costs ~0.1 absolute; after centring it is ~1e-5
    x, y = _clouds(4, offset=1000.0)
    geom = PointCloud(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    xr, yr = np.asarray(geom.x, np.float64), np.asarray(geom.y, np.float64)  # rounded inputs
    np.testing.assert_allclose(geom.cost_matrix(), cdist(xr, yr, "sqeuclidean"), atol=1e-3)


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_pointcloud_centring_respects_rank_promotion(cost):
    x, y = _clouds(4)
    with jax.numpy_rank_promotion("raise"):
        C = PointCloud(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), cost).cost_matrix()
    np.testing.assert_allclose(C, _reference(x, y, cost), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------
# reductions: dense == online, and both == numpy


def _geoms(cost, chunk_size, seed=5):
    x, y = _clouds(seed, n=9, m=6)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    return (x, y), PointCloud(xj, yj, cost), PointCloud(xj, yj, cost, chunk_size)


CHUNKS = [1, 4, 9, 20]  # 4 does not divide 9 (rows) nor 6 (columns); 20 exceeds both


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("cost", ["sqeuclidean", "cosine"])
def test_lse_dense_equals_online(cost, chunk_size):
    (x, y), dense, online = _geoms(cost, chunk_size)
    assert online.is_online and not dense.is_online
    rng = np.random.default_rng(6)
    C = _reference(x, y, cost)
    eps = 0.3
    for axis, size in ((1, 6), (0, 9)):
        h = jnp.asarray(rng.normal(size=size), jnp.float32)
        ld, lo = dense.lse(h, eps, axis), online.lse(h, eps, axis)
        # float32: the same per-row computations on row blocks; matmul blocking may round
        # differently in the last ulp
        np.testing.assert_allclose(lo, ld, rtol=1e-6, atol=1e-6)
        Ct = C if axis == 1 else C.T
        ref = logsumexp((np.asarray(h, np.float64)[None, :] - Ct) / eps, axis=1)
        np.testing.assert_allclose(ld, ref, rtol=1e-5, atol=1e-5)  # float32 vs float64


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_plan_reductions_dense_equal_online(chunk_size):
    (x, y), dense, online = _geoms("sqeuclidean", chunk_size)
    rng = np.random.default_rng(7)
    f = jnp.asarray(rng.normal(size=9) * 0.1, jnp.float32)
    g = jnp.asarray(rng.normal(size=6) * 0.1, jnp.float32)
    eps = 0.5
    P = np.exp((np.asarray(f, np.float64)[:, None] + np.asarray(g, np.float64)[None, :]
                - _reference(x, y, "sqeuclidean")) / eps)
    wm = jnp.asarray(rng.normal(size=6), jnp.float32)
    wn = jnp.asarray(rng.normal(size=9), jnp.float32)
    # float32: identical per-block arithmetic; ~1e-6 relative against float64 numpy
    for geom in (dense, online):
        np.testing.assert_allclose(geom.plan_apply(f, g, eps, wm, 1), P @ wm, rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(geom.plan_apply(f, g, eps, wn, 0), P.T @ wn, rtol=1e-5,
                                   atol=1e-6)
        rows, total = geom.plan_cost_sums(f, g, eps)
        np.testing.assert_allclose(rows, P.sum(1), rtol=1e-5)
        np.testing.assert_allclose(total, np.sum(P * _reference(x, y, "sqeuclidean")),
                                   rtol=1e-5)
        np.testing.assert_allclose(geom.plan(f, g, eps), P, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(online.plan_apply(f, g, eps, wm, 1),
                               dense.plan_apply(f, g, eps, wm, 1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_cost_moments(chunk_size):
    (x, y), _, geom = _geoms("sqeuclidean", chunk_size)
    C = _reference(x, y, "sqeuclidean")
    mean, std = geom.cost_moments()
    # float32: E[C^2] - E[C]^2 on costs ~4 loses ~1e-6 * 16 absolute in the variance
    np.testing.assert_allclose(mean, C.mean(), rtol=1e-5)
    np.testing.assert_allclose(std, C.std(), rtol=1e-4)


def test_cost_matrix_geometry():
    rng = np.random.default_rng(8)
    C = rng.uniform(size=(4, 3))
    geom = CostMatrix(jnp.asarray(C, jnp.float32))
    assert geom.shape == (4, 3) and not geom.is_online
    h = jnp.asarray(rng.normal(size=4), jnp.float32)
    ref = logsumexp((np.asarray(h, np.float64)[None, :] - C.T) / 0.2, axis=1)
    np.testing.assert_allclose(geom.lse(h, 0.2, 0), ref, rtol=1e-5)  # float32 vs float64
