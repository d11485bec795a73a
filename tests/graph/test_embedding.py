"""Heat-geodesic distances and metric MDS against independent references (float64).

* Distances: a NumPy oracle of ``new_heatgeo.metric_computation`` of the reference code
  (KrishnaswamyLab/HeatGeo, ``heatgeo/embedding.py``, commit
  15683616153b349337b3f119e92040b926a22763, filter ``"mar"`` = ``heatgeo/cheb.py`` @620ec20):
  heat kernel by the Bessel-coefficient Chebyshev filter, negative entries set to 0,
  ``s = -4 t log(H + 1e-16) + rho 4 t log((H_ii + H_jj)/2 + 1e-16)``, ``s[s < 0] = 0``,
  ``d = sqrt(s)``; written here from those formulas. Compared off the diagonal (ours is 0
  there by design, see the docstring).
* MDS: classical MDS against a NumPy eigendecomposition (up to axis signs), SMACOF against
  ``sklearn.manifold.smacof`` started from the same classical solution, same iterations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse.csgraph
from sklearn.manifold import smacof

import jaxclust.graph as jg
from tests.graph.test_heat import _heatgeo_cheb_oracle
from tests.utils import enable_x64

_rng = np.random.default_rng(1)


def _helix(n=40):
    s = np.sort(_rng.uniform(0, 4, n))
    return np.stack([np.cos(s), np.sin(s), 0.3 * s], 1) + 0.01 * _rng.normal(size=(n, 3))


def test_heat_geodesic_distances_match_the_reference_formula():
    x = _helix()
    with enable_x64():
        w = np.asarray(jax.jit(lambda x: jg.alpha_decay_graph(x, k=5, decay=40.0))(x))
        L = scipy.sparse.csgraph.laplacian(w, normed=True)
        off = ~np.eye(len(x), dtype=bool)
        dist = jax.jit(lambda w, t, lm, r: jg.heat_geodesic_distances(w, t, order=32, lmax=lm,
                                                                      harnack=r))
        worst = worst_all = 0.0
        for t, rho in ((5.0, 0.0), (10.0, 0.5)):
            H, lmax = _heatgeo_cheb_oracle(L, np.eye(len(x)), t, 32)
            H[H < 0] = 0
            s = -4 * t * np.log(H + 1e-16) + rho * 4 * t * np.log(
                0.5 * (np.diag(H)[:, None] + np.diag(H)[None, :]) + 1e-16)
            s[s < 0] = 0
            ref = np.sqrt(s)
            ours = np.asarray(dist(w, t, lmax, rho))
            # where H is at rounding level (1e-14 here, far pairs) the log amplifies the
            # 1e-15 differences of the two kernels: compare where H > 1e-6, and bound the rest
            ok = off & (H > 1e-6)
            worst = max(worst, np.abs(ours - ref)[ok].max() / ref[off].max())
            worst_all = max(worst_all, np.abs(ours - ref)[off].max() / ref[off].max())
            assert np.all(np.diag(ours) == 0) and np.allclose(ours, ours.T)
        # measured: 4.8e-12 where H > 1e-6, 1.2e-6 everywhere (relative to the largest distance)
        assert worst < 1e-10, worst
        assert worst_all < 1e-4, worst_all


def test_mds_matches_numpy_classical_and_sklearn_smacof():
    x = _helix(25)
    with enable_x64():
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)) ** 0.8  # not Euclidean: stress > 0
        f = jax.jit(lambda d, it: jg.mds(d, dim=2, n_iter=it), static_argnums=1)
        y0 = np.asarray(f(d, 0))
        n = len(d)
        J = np.eye(n) - 1.0 / n
        vals, vecs = np.linalg.eigh(-0.5 * J @ (d**2) @ J)
        ref0 = vecs[:, ::-1][:, :2] * np.sqrt(vals[::-1][:2])
        np.testing.assert_allclose(np.abs(y0), np.abs(ref0), atol=1e-10)
        ref, _, n_it = smacof(d, metric=True, n_components=2, init=y0, n_init=1, max_iter=30,
                              eps=0.0, normalized_stress=False, return_n_iter=True)
        assert n_it > 5  # stops once the stress no longer decreases
        y = np.asarray(f(d, n_it))
        # measured: 5.6e-16 after 30 steps
        np.testing.assert_allclose(y, ref, atol=1e-10)

        def stress(z):
            dz = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))
            return ((dz - d) ** 2).sum() / 2

        assert stress(y) < stress(y0)


def test_embedding_recovers_a_curve_parameter():
    """A helix unrolls to its arc length: |Spearman| of the 1-D embedding vs the parameter."""
    from scipy.stats import spearmanr

    x = _helix(40)
    res = jax.jit(lambda x: jg.heat_geodesic_embedding(x, k=5, t=5.0, dim=1, mds_iters=30))(
        jnp.asarray(x, jnp.float32))
    rho = abs(spearmanr(np.asarray(res.embedding[:, 0]), np.arange(40)).statistic)
    assert rho > 0.99, rho


@pytest.mark.parametrize("call, match", [
    (lambda: jg.heat_geodesic_distances(jnp.eye(3), 1.0, harnack=2.0), "`harnack` must be"),
    (lambda: jg.heat_geodesic_distances(jnp.eye(3), -1.0), "`t` must be"),
    (lambda: jg.heat_geodesic_distances(jnp.ones((2, 3)), 1.0), "`adjacency` must be"),
    (lambda: jg.mds(jnp.ones((3, 3)), dim=4), "`dim` must be"),
    (lambda: jg.mds(jnp.ones((3, 3)), n_iter=-1), "`n_iter` must be"),
    (lambda: jg.mds(-jnp.ones((3, 3))), "negative entries"),
    (lambda: jg.mds(jnp.ones((3, 2))), "`distances` must be a square"),
    (lambda: jg.heat_geodesic_embedding(jnp.zeros((5, 2)), k=5), "`k` must be"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
