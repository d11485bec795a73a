"""ott-jax's linear Sinkhorn tests, ported to ``jaxclust.ot``.

Peer file: ott-jax/ott ``tests/solvers/linear/sinkhorn_test.py`` at tag 0.6.0, commit
5aa6da0fbd8fe9c255b749ac5fb49f3092860cc4 (the installed ott-jax 0.6.0). The peer's data is
reproduced exactly: its ``rng`` fixture is ``jax.random.key(0)``, split as in its ``initialize``
(17 x 29 points in ``[0, 1]^4``, random weights with ``a[0] = 0`` and ``b[3] = 0``); parameters
and tolerances are kept. float32, as the peer.

Translation of the API
----------------------
* ``linear.solve(PointCloud(x, y, epsilon=eps), a, b, tau_a, tau_b)`` ->
  ``sinkhorn(x, y, a, b, epsilon=eps, tau_a=, tau_b=)``. Both use the plan
  ``exp((f + g - C)/eps)`` and the updates ``f = eps log a - tau eps LSE((g - C)/eps)``, so ``f``,
  ``g`` are comparable directly (up to a constant when balanced), and the same
  ``tau``/``epsilon`` conventions (``rho = eps tau / (1 - tau)``).
* ``epsilon=None`` (ott: ``0.05 * std(C)``) -> ``default_epsilon(x, y)`` (the same rule).
  ``relative_epsilon="mean"`` -> not ported (``default_epsilon`` is std-based); the scaling
  property of the peer's ``test_autoepsilon`` is checked with it.
* ``epsilon_scheduler.Epsilon(target, init, decay)`` (``max(init decay^k, 1) target``) ->
  ``epsilon=target, epsilon_init=init * target, epsilon_decay=decay``.
* ``lse_mode=True/False`` -> ``mode="log"/"auto"`` (jaxclust's auto mode runs kernel
  (scaling) iterations); ``inner_iterations`` -> ``check_every``; ``threshold`` -> ``tol``;
  ``max_iterations`` -> ``max_iter``. ``norm_error`` (the p of the marginal error norm; jaxclust:
  always L1) and ``momentum``/``anderson`` (no acceleration in jaxclust) are dropped.
  ``min_iterations`` has no analog: ``test_euclidean_point_cloud_min_iter``/``_scan_loop`` and
  ``recenter_potentials`` are not ported; balanced potentials are compared after centering.
* ``PointCloud(..., batch_size=k)`` -> ``chunk_size=k`` (online mode).
* ``out.reg_ot_cost`` -> ``reg_cost``; ``out.primal_cost`` -> ``linear_cost``;
  ``out.dual_cost`` (``<a, f> + <b, g>``) -> computed from ``res.f``, ``res.g``;
  ``out.transport_mass`` -> ``sum(res.marginals[0])``; ``out.errors`` -> ``errors`` (ott: -1
  after stopping; jaxclust the same); ``out.apply(v, axis)`` -> ``res.apply(v, axis)``;
  ``geom.transport_from_potentials(f, g)`` -> ``res.plan``.
* Costs: ``SqEuclidean``/``Euclidean``/``NegDotProduct`` -> ``cost="sqeuclidean"``/
  ``"euclidean"``/``"dot"``. ott's ``SqPNorm(p)`` has no jaxclust name: its cost matrix (from
  the installed ott) is passed to ``sinkhorn_from_cost``.
* Unbalanced problems (convention difference): jaxclust's entropy is ``eps KL(P | a x b)``
  (POT's default ``reg_type="kl"``; its plans equal POT's to 1e-15). ott-jax 0.6.0 documents the
  same (``kl_reg_cost``) but its plans are those of the entropy relative to 1 (POT's
  ``reg_type="entropy"``, jaxclust on the cost ``C + eps (log a_i + log b_j)``; checked to 1e-14
  in float64 on this file's data): with ``tau < 1`` the two libraries' plans, masses and
  ``reg_ot_cost`` differ (here 0.1658 vs 0.1570 at ``tau_b = 0.91``). Unbalanced cases are
  therefore checked within jaxclust (the peer's own assertions are of that kind).
* float16/bfloat16 inputs (convention difference): ott solves in the input dtype; jaxclust
  solves in float32 (its precision rule) and returns float32.
* ``progress_fn`` callbacks -> the ``errors`` history they report.
* Low-rank geometries, grids and ``normalized_entropy``/``entropy`` properties have no analog.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy as sp

from jaxclust.ot import default_epsilon, sinkhorn, sinkhorn_from_cost

from ..utils import allow_rank_promotion


def _data():
    """The peer's ``initialize``: 17 x 29 points in dimension 4, zero weights a[0], b[3]."""
    rng = jax.random.key(0)
    rng, *rngs = jax.random.split(rng, 5)
    x = jax.random.uniform(rngs[0], (17, 4))
    y = jax.random.uniform(rngs[1], (29, 4))
    a = jax.random.uniform(rngs[2], (17,)).at[0].set(0)
    b = jax.random.uniform(rngs[3], (29,)).at[3].set(0)
    return rng, x, y, a / jnp.sum(a), b / jnp.sum(b)


def _ott_cost(x, y, cost_fn):
    from ott.geometry import pointcloud

    with allow_rank_promotion():
        return pointcloud.PointCloud(x, y, cost_fn=cost_fn).cost_matrix


def _last_error(res):
    e = np.asarray(res.errors)
    return e[e > -1][-1]


def test_diag_sum():
    """Peer: comparing a cloud with itself at eps = 0.01 puts almost all mass on the diagonal:
    ``0.99 < sum(diag(P)) < 1``."""
    _, x, *_ = _data()
    P = sinkhorn(x, x, epsilon=0.01).plan
    assert 0.99 < float(jnp.sum(jnp.diag(P))) < 1.0


def test_sqeucl_matches_hungarian():
    """Peer: at eps = 0.01 the squared-Euclidean plan is close to the Hungarian assignment
    (cosine distance < 0.2) and to the negative-dot-product plan (< 0.02)."""
    rng, x, *_ = _data()
    y = jax.random.uniform(rng, x.shape)
    n = x.shape[0]
    C = np.asarray(jnp.sum((x[:, None] - y[None]) ** 2, -1))
    rows, cols = sp.optimize.linear_sum_assignment(C)
    out_h = np.zeros((n, n))
    out_h[rows, cols] = 1.0 / n
    p1 = np.asarray(sinkhorn(x, y, epsilon=0.01).plan).ravel()
    p2 = np.asarray(sinkhorn(x, y, epsilon=0.01, cost="dot").plan).ravel()

    def cos(u, v):
        return 1.0 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))

    assert cos(p1, p2) < 0.02
    assert cos(p1, out_h.ravel()) < 0.2


@pytest.mark.parametrize("tau_a", [1.0, 0.93])
@pytest.mark.parametrize("tau_b", [1.0, 0.91])
def test_lse_matches(tau_a, tau_b):
    """Peer: log and kernel modes converge to the same regularised cost (rtol/atol 1e-6) and
    primal cost (1e-5). (ott's own unbalanced values are not a reference here: see the module
    docstring.)"""
    _, x, y, a, b = _data()
    eps = default_epsilon(x, y)
    lse = sinkhorn(x, y, a, b, epsilon=eps, tau_a=tau_a, tau_b=tau_b, mode="log")
    ker = sinkhorn(x, y, a, b, epsilon=eps, tau_a=tau_a, tau_b=tau_b, mode="auto")
    assert bool(lse.converged) and bool(ker.converged)
    np.testing.assert_allclose(lse.reg_cost, ker.reg_cost, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lse.linear_cost, ker.linear_cost, rtol=1e-5, atol=1e-5)


def _sqpnorm(p):
    from ott.geometry import costs

    return costs.SqPNorm(p)


@pytest.mark.parametrize(
    "mode,check_every,cost",
    [
        ("log", 10, "sqeuclidean"),
        # slow (time budget): ott's own fast selection is the first and the last case
        pytest.param("auto", 10, 2.2, marks=pytest.mark.slow),
        pytest.param("log", 1, "euclidean", marks=pytest.mark.slow),
        ("log", 24, 1.0),
    ],
    ids=["lse-Leh-mom", "scal-Leh-mom", "lse-Leh-1", "lse-Leh-24"],
)
def test_euclidean_point_cloud(mode, check_every, cost):
    """Peer (eps = 0.1, threshold 1e-3): the last error is below the threshold and the
    transported mass is 1 within 1e-4; the cost of the plan at another geometry is not NaN.
    A number in ``cost`` is ott's ``SqPNorm(p)``, solved on its cost matrix."""
    _, x, y, a, b = _data()
    kw = dict(epsilon=0.1, tol=1e-3, check_every=check_every, mode=mode)
    if isinstance(cost, str):
        res = sinkhorn(x, y, a, b, cost=cost, **kw)
    else:
        res = sinkhorn_from_cost(_ott_cost(x, y, _sqpnorm(cost)), a, b, **kw)
    assert _last_error(res) < 1e-3
    np.testing.assert_allclose(jnp.sum(res.marginals[0]), 1.0, rtol=1e-4, atol=1e-4)
    C_other = jnp.sum((x[:, None] - (y[None] + 0.3)) ** 2, -1)
    assert np.isfinite(float(jnp.sum(res.plan * C_other)))


def test_autoepsilon():
    """Peer: scaling the clouds by 2.77 scales the automatic epsilon and the optimal ``f`` by
    2.77^2 (tau_a = 0.99, tau_b = 0.97; rtol/atol 1e-3), jitted or not."""
    _, x, y, a, b = _data()
    scale, tau_a, tau_b = 2.77, 0.99, 0.97
    eps1 = default_epsilon(x, y)
    f1 = sinkhorn(x, y, a, b, epsilon=eps1, tau_a=tau_a, tau_b=tau_b).f
    eps2 = default_epsilon(scale * x, scale * y)

    @jax.jit
    def compute_f(x, y):
        return sinkhorn(x, y, a, b, epsilon=default_epsilon(x, y), tau_a=tau_a, tau_b=tau_b).f

    f2 = compute_f(scale * x, scale * y)
    np.testing.assert_allclose(eps1 * scale ** 2, eps2, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(f1[1:] * scale ** 2, f2[1:], rtol=1e-3, atol=1e-3)


# the auto-mode half is slow (time budget); the log-mode half stays fast
@pytest.mark.parametrize("mode", [pytest.param("auto", marks=pytest.mark.slow), "log"])
@pytest.mark.parametrize("tau_a", [1.0, 0.93])
@pytest.mark.parametrize("tau_b", [1.0, 0.91])
def test_autoepsilon_with_decay(mode, tau_a, tau_b):
    """Peer: an epsilon schedule (init 5, decay 0.9, target the automatic epsilon) reaches the
    same ``f`` as the fixed target (threshold 1e-5, rtol/atol 1e-4, recentred when balanced)."""
    _, x, y, a, b = _data()
    target = float(default_epsilon(x, y))
    kw = dict(tau_a=tau_a, tau_b=tau_b, mode=mode, tol=1e-5)
    out_1 = sinkhorn(x, y, a, b, epsilon=target, epsilon_init=5 * target, epsilon_decay=0.9,
                     **kw)
    out_2 = sinkhorn(x, y, a, b, epsilon=target, **kw)
    assert bool(out_1.converged) and bool(out_2.converged)
    f_1, f_2 = np.asarray(out_1.f)[1:], np.asarray(out_2.f)[1:]  # a[0] = 0: f[0] is moot
    if tau_a == tau_b == 1.0:
        f_1, f_2 = f_1 - f_1.mean(), f_2 - f_2.mean()
    np.testing.assert_allclose(f_1, f_2, rtol=1e-4, atol=1e-4)


def test_geom_vs_point_cloud():
    """Peer: the point cloud and its cost matrix give the same (recentred) ``f`` (1e-5)."""
    _, x, y, a, b = _data()
    eps = default_epsilon(x, y)
    f_1 = np.asarray(sinkhorn(x, y, a, b, epsilon=eps).f)[1:]
    C = jnp.sum((x[:, None] - y[None]) ** 2, -1)
    f_2 = np.asarray(sinkhorn_from_cost(C, a, b, epsilon=eps).f)[1:]
    np.testing.assert_allclose(f_1 - f_1.mean(), f_2 - f_2.mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["auto", "log"])
def test_online_vs_batch_euclidean_point_cloud(mode):
    """Peer (eps = 0.1, batch_size 7): online and dense solves agree on the regularised cost
    (rtol 1e-5) and the plan (1e-5); the KL-regularised cost is positive. The online solve's
    last error is below 1e-3 (the peer's ``test_online_euclidean_point_cloud``)."""
    _, x, y, a, b = _data()
    online = sinkhorn(x, y, a, b, epsilon=0.1, chunk_size=7, mode=mode)
    batch = sinkhorn(x, y, a, b, epsilon=0.1, mode=mode)
    assert _last_error(online) < 1e-3
    np.testing.assert_allclose(online.reg_cost, batch.reg_cost, rtol=1e-5)
    assert float(online.reg_cost) > 0.0
    P_online = online.geom.plan(online.f, online.g, online.epsilon)
    np.testing.assert_allclose(P_online, batch.plan, rtol=1e-5, atol=1e-5)


# slow (time budget: a new shape); fast twin: tests/ot/test_online.py (apply, both axes,
# online vs the dense plan)
@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [2, None])
def test_apply_transport_geometry_from_potentials(chunk_size):
    """Peer (n, m, d = 20, 23, 3, eps = 0.2): applying the plan to vectors without forming it
    equals the dense products (1e-3), online (batch size 2) or not."""
    rngs = jax.random.split(jax.random.key(0), 6)
    n, m, d = 20, 23, 3
    x = jax.random.uniform(rngs[0], (n, d))
    y = jax.random.uniform(rngs[1], (m, d))
    a = jax.random.uniform(rngs[2], (n,))
    b = jax.random.uniform(rngs[3], (m,))
    a, b = a / jnp.sum(a), b / jnp.sum(b)
    vec_a = jax.random.normal(rngs[4], (n,))
    vec_b = jax.random.normal(rngs[5], (7, m))
    res = sinkhorn(x, y, a, b, epsilon=0.2, chunk_size=chunk_size)
    P = res.geom.plan(res.f, res.g, res.epsilon)
    np.testing.assert_allclose(res.apply(vec_a, axis=0), P.T @ vec_a, rtol=1e-3, atol=1e-3)
    applied = jnp.stack([res.apply(v, axis=1) for v in vec_b])
    np.testing.assert_allclose(applied, (P @ vec_b.T).T, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("mode", ["auto", "log"])  # auto: issue 14 1.3 (fixed in d579fde)
def test_restart(mode):
    """Peer (eps = 0.05, threshold 1e-2, inner_iterations 1): restarting from the potentials
    of a converged solve stops after one iteration, with a first error below the previous
    final error."""
    _, x, y, a, b = _data()
    kw = dict(epsilon=0.05, tol=1e-2, check_every=1, mode=mode)
    out = sinkhorn(x, y, a, b, **kw)
    err = _last_error(out)
    assert err < 1e-2
    assert not np.allclose(out.f, 0.0) and not np.allclose(out.g, 0.0)
    restarted = sinkhorn(x, y, a, b, init=(out.f, out.g), **kw)
    err_restarted = _last_error(restarted)
    assert err_restarted < 1e-2
    assert err > err_restarted
    assert err > float(restarted.errors[0])
    assert int(restarted.n_iters) == 1


@pytest.mark.parametrize("cost", ["sqeuclidean", 1.6])
def test_primal_cost_pointcloud(cost):
    """Peer (eps = 1e-3): the primal cost is positive and equals ``sum(P * C)`` (1e-5), the
    dual cost ``<a, f> + <b, g>`` is finite, below the primal, within 10% of it."""
    _, x, y, a, b = _data()
    if isinstance(cost, str):
        res = sinkhorn(x, y, a, b, epsilon=1e-3)
        C = jnp.sum((x[:, None] - y[None]) ** 2, -1)
    else:
        C = _ott_cost(x, y, _sqpnorm(cost))
        res = sinkhorn_from_cost(C, a, b, epsilon=1e-3)
    primal = float(res.linear_cost)
    dual = float(jnp.sum(jnp.where(a > 0, a * res.f, 0.0)) + jnp.sum(
        jnp.where(b > 0, b * res.g, 0.0)))
    assert primal > 0.0
    assert np.isfinite(dual)
    assert primal - dual > 0.0
    np.testing.assert_allclose((primal - dual) / primal, 0, atol=1e-1)
    np.testing.assert_allclose(float(jnp.sum(res.plan * C)), primal, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_sinkhorn_dtype(dtype):
    """Peer: half-precision inputs give outputs of the input dtype. Convention difference:
    jaxclust solves (and returns) in float32 for float16/bfloat16 inputs; the solve converges
    at the peer's threshold 1e-2 and the outputs are finite."""
    _, x, y, *_ = _data()
    out = sinkhorn(x.astype(dtype), y.astype(dtype), epsilon=jnp.array(1e-1, dtype=dtype),
                   tol=1e-2)
    # ott: out.f.dtype == dtype (and g, errors, matrix, costs)
    for t in (out.f, out.g, out.errors, out.plan, out.reg_cost, out.linear_cost):
        assert t.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(t)))
    assert bool(out.converged)


def test_custom_progress_fn():
    """Peer: a callback every 10 iterations (30 iterations, eps = 1e-3) sees the error
    decrease; here the ``errors`` history of the same solve."""
    _, x, y, a, b = _data()
    out = sinkhorn(x, y, a, b, epsilon=1e-3, max_iter=30, check_every=10)
    errors = np.asarray(out.errors)
    assert errors.shape == (3,) and int(out.n_iters) == 30
    np.testing.assert_array_equal(np.diff(errors) < 0, True)
