"""Graph construction and the heat kernel against independent references.

* kNN / epsilon graphs against scikit-learn's ``kneighbors_graph`` / ``radius_neighbors_graph``;
  Laplacians against ``scipy.sparse.csgraph.laplacian``; the alpha-decay kernel against a NumPy
  oracle of graphtools' formula (bandwidth = distance to the k-th neighbour, exponent ``decay``,
  ``(K + K^T) / 2``).
* Chebyshev heat kernel against ``scipy.linalg.expm`` and against a NumPy oracle of the heat
  filter of the HeatGeo reference code (KrishnaswamyLab/HeatGeo, ``heatgeo/cheb.py``, commit
  620ec20f62d63145ec444b1acc4090e480ed3ac4: coefficients ``2 * ive(k, -t * phi)``,
  ``phi = lambda_max / 2``, recurrence ``T_{k+1} = (2/phi) L T_k - 2 T_k - T_{k-1}``),
  written here from those formulas, in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.csgraph
import scipy.special
from sklearn.neighbors import kneighbors_graph, radius_neighbors_graph

import jaxclust.graph as jg
from tests.utils import enable_x64

_rng = np.random.default_rng(0)


def J(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` under one ``jit`` (eager dispatch compiles every primitive
    separately: about 5x slower for these small tests)."""
    arrays = [i for i, a in enumerate(args) if not isinstance(a, (int, float))]

    def f(*arr):
        full = list(args)
        for i, a in zip(arrays, arr):
            full[i] = a
        return fn(*full, **kwargs)

    return np.asarray(jax.jit(f)(*[jnp.asarray(args[i]) for i in arrays]))
X = _rng.normal(size=(30, 3))


def _heatgeo_cheb_oracle(L, X0, t, K):
    """NumPy oracle of HeatGeo's ``expm_multiply`` (see the module docstring)."""
    phi = np.linalg.eigvalsh(L)[-1] / 2.0
    c = 2.0 * scipy.special.ive(np.arange(K + 1), -t * phi)
    t0, t1 = X0, L @ X0 / phi - X0
    y = 0.5 * c[0] * t0 + c[1] * t1
    for j in range(2, K + 1):
        t2 = (2.0 / phi) * (L @ t1) - 2.0 * t1 - t0
        y = y + c[j] * t2
        t0, t1 = t1, t2
    return y, 2.0 * phi


def test_graphs_and_laplacians_match_references():
    with enable_x64():
        x = jnp.asarray(X)
        a = kneighbors_graph(X, 4, mode="connectivity", include_self=False).toarray()
        np.testing.assert_allclose(J(jg.knn_graph, x, k=4), 0.5 * (a + a.T), atol=0)
        np.testing.assert_allclose(J(jg.knn_graph, x, k=4, symmetrize="max"), np.maximum(a, a.T))
        d = kneighbors_graph(X, 4, mode="distance", include_self=False).toarray()
        g = np.where(a > 0, np.exp(-d**2 / (2 * 0.7**2)), 0.0)
        np.testing.assert_allclose(J(jg.knn_graph, x, k=4, sigma=0.7), 0.5 * (g + g.T), atol=1e-12)
        r = radius_neighbors_graph(X, 1.2, mode="connectivity", include_self=False).toarray()
        np.testing.assert_array_equal(J(jg.epsilon_graph, x, epsilon=1.2), r)
        # alpha decay (graphtools' formula)
        D = scipy.spatial.distance.cdist(X, X)
        eps = np.sort(D, axis=1)[:, 5]  # 5th nearest other point (column 0 is the point)
        K = np.exp(-((D / eps[:, None]) ** 10.0))
        W = 0.5 * (K + K.T)
        W[W < 1e-4] = 0.0
        np.fill_diagonal(W, 0.0)
        wj = np.asarray(J(jg.alpha_decay_graph, x, k=5, decay=10.0))
        np.testing.assert_allclose(wj, W, atol=1e-12)
        for kind, normed in (("combinatorial", False), ("symmetric", True)):
            ref = scipy.sparse.csgraph.laplacian(W, normed=normed)
            np.testing.assert_allclose(J(jg.laplacian, wj, kind=kind), ref, atol=1e-12)
        deg = W.sum(1)
        np.testing.assert_allclose(J(jg.laplacian, wj, kind="random_walk"),
                                   np.eye(30) - W / deg[:, None], atol=1e-12)
        # an isolated node: zero row/column, no NaN
        w_iso = np.zeros((3, 3))
        w_iso[0, 1] = w_iso[1, 0] = 1.0
        lap = np.asarray(J(jg.laplacian, w_iso))
        assert np.isfinite(lap).all() and not lap[2].any()


def test_chebyshev_heat_kernel_equals_expm_and_the_reference_filter():
    with enable_x64():
        w = np.asarray(J(jg.alpha_decay_graph, jnp.asarray(X), k=5, decay=10.0))
        L = scipy.sparse.csgraph.laplacian(w, normed=True)
        t, K = 3.0, 30
        ref_filter, lmax = _heatgeo_cheb_oracle(L, np.eye(30), t, K)
        h = np.asarray(J(jg.heat_kernel, jnp.asarray(L), t, order=K, lmax=lmax))
        exact = scipy.linalg.expm(-t * L)
        # measured: 8.0e-16 vs the reference filter, 8.9e-16 vs expm
        assert np.abs(h - ref_filter).max() < 1e-13
        assert np.abs(h - exact).max() < 1e-10
        np.testing.assert_allclose(J(jg.heat_kernel_expm, jnp.asarray(L), t), exact, atol=1e-12)
        # the default (Gershgorin) bound is wider: more terms, same kernel
        h_def = np.asarray(J(jg.heat_kernel, jnp.asarray(L), t, order=40))
        assert np.abs(h_def - exact).max() < 1e-10
        # random-walk Laplacian (not symmetric), combinatorial Laplacian with a signal matrix
        Lrw = np.eye(30) - w / w.sum(1)[:, None]
        np.testing.assert_allclose(J(jg.heat_kernel, jnp.asarray(Lrw), t, order=K, lmax=2.0),
                                   scipy.linalg.expm(-t * Lrw), atol=1e-10)
        Lc = scipy.sparse.csgraph.laplacian(w)
        sig = _rng.normal(size=(30, 2))
        np.testing.assert_allclose(J(jg.heat_diffusion, jnp.asarray(Lc), sig, 0.5, order=40),
                                   scipy.linalg.expm(-0.5 * Lc) @ sig, atol=1e-10)
        # coefficients: quadrature vs the Bessel closed form
        for a in (0.0, 1.0, 15.0):
            np.testing.assert_allclose(jg.chebyshev_coefficients(a, 40),
                                       2 * scipy.special.ive(np.arange(41), -a), atol=1e-14)
    # float32: the same kernel to rounding (1e-6 of entries of size <= 1)
    h32 = J(jg.heat_kernel, jnp.asarray(L, jnp.float32), t, order=K, lmax=2.0)
    assert h32.dtype == jnp.float32
    assert np.abs(np.asarray(h32) - exact).max() < 2e-6


def test_order_too_small_is_visible_not_silent():
    """Truncation error grows when K < t * lmax / 2: the test a user would run."""
    with enable_x64():
        w = np.asarray(J(jg.knn_graph, jnp.asarray(X), k=4))
        L = scipy.sparse.csgraph.laplacian(w, normed=True)
        exact = scipy.linalg.expm(-20.0 * L)
        err_small = np.abs(np.asarray(J(jg.heat_kernel, jnp.asarray(L), 20.0, order=8,
                                                     lmax=2.0)) - exact).max()
        err_big = np.abs(np.asarray(J(jg.heat_kernel, jnp.asarray(L), 20.0, order=48,
                                                   lmax=2.0)) - exact).max()
        assert err_small > 1e-3 > 1e-10 > err_big


@pytest.mark.parametrize("call, match", [
    (lambda: jg.knn_graph(jnp.zeros((4, 2)), k=4), "`k` must be"),
    (lambda: jg.knn_graph(jnp.zeros((4, 2)), k=2.0), "`k` must be"),
    (lambda: jg.knn_graph(jnp.zeros(4), k=1), "`x` must be 2-D"),
    (lambda: jg.knn_graph(jnp.zeros((4, 2)), k=1, symmetrize="min"), "`symmetrize`"),
    (lambda: jg.knn_graph(jnp.array([[0.0, jnp.nan], [1.0, 1.0]]), k=1), "`x` contains NaN"),
    (lambda: jg.knn_graph(jnp.zeros((4, 2)), k=1, sigma=-1.0), "`sigma` must be"),
    (lambda: jg.epsilon_graph(jnp.zeros((4, 2)), epsilon=0.0), "`epsilon` must be"),
    (lambda: jg.alpha_decay_graph(jnp.zeros((4, 2)), k=2, decay=0.0), "`decay` must be"),
    (lambda: jg.laplacian(jnp.zeros((3, 2))), "`adjacency` must be a square"),
    (lambda: jg.laplacian(-jnp.ones((2, 2))), "negative weights"),
    (lambda: jg.laplacian(jnp.eye(2), kind="normalized"), "`kind` must be one of"),
    (lambda: jg.heat_kernel(jnp.eye(2), -1.0), "`t` must be"),
    (lambda: jg.heat_kernel(jnp.eye(2), 1.0, order=0), "`order` must be"),
    (lambda: jg.heat_kernel(jnp.eye(2), jnp.ones(2)), "`t` must be a scalar"),
    (lambda: jg.heat_kernel(jnp.eye(2), 1.0, lmax=0.0), "`lmax` must be"),
    (lambda: jg.heat_kernel(jnp.ones(3), 1.0), "`laplacian` must be a square"),
    (lambda: jg.heat_diffusion(jnp.eye(2), jnp.ones((3, 1)), 1.0), "`signals` must have"),
    (lambda: jg.heat_kernel_expm(jnp.array([[jnp.inf]]), 1.0), "`laplacian` contains NaN"),
    # Python numbers beyond float32 (inf in the program): rejected on the host, as when
    # they were converted with jnp.asarray (a6286c3 checked them in float64 and let 1e39 by)
    (lambda: jg.knn_graph(jnp.eye(4), k=2, sigma=1e39), "`sigma` must be a finite number"),
    (lambda: jg.epsilon_graph(jnp.eye(4), epsilon=1e300), "`epsilon` must be a finite"),
    (lambda: jg.alpha_decay_graph(jnp.eye(4), k=2, threshold=1e39), "`threshold` must be"),
    (lambda: jg.heat_kernel(jnp.eye(2), 1e39), "`t` must be a finite"),
    (lambda: jg.chebyshev_coefficients(1e39, 4), "`a` must be a finite"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_value_under_jit_raises():
    f = jax.jit(lambda t: jg.heat_kernel(jnp.eye(2), t, order=2))
    with pytest.raises(Exception, match="ValueError: `t` must be"):
        f(-1.0).block_until_ready()


def test_distances_of_a_cloud_far_from_the_origin():
    """float32, points at 1e4 with unit spacing: centring keeps the graph exact (without it,
    |x|^2 ~ 1e8 leaves ~8 units of rounding in every squared distance)."""
    x = np.array([[0.0], [1.0], [3.0], [6.0]]) + 1e4
    d2 = J(jg.pairwise_sq_dists, x.astype(np.float32))
    np.testing.assert_allclose(d2, (x - x.T) ** 2, atol=1e-3)
    np.testing.assert_array_equal(J(jg.knn_graph, x.astype(np.float32), k=1),
                                  jg.knn_graph(x - 1e4, k=1))
