"""``wasserstein_1d`` and ``sliced_wasserstein`` against POT 0.9.7 on shared inputs (float64).

Peer: PythonOT/POT ``ot/lp/solver_1d.py::wasserstein_1d`` (returns W_p^p from the quantile
functions, weights taken as given) and ``ot/sliced/_sliced_distances.py::
sliced_wasserstein_distance`` (``(mean_l W_p^p(theta_l # mu, theta_l # nu))^(1/p)`` with the
projections as columns of a ``(d, L)`` matrix). Our weights are normalised, so the shared
inputs use normalised weights. A second, independent reference is POT's exact LP solver
``ot.emd2`` on the materialised cost ``|u_i - v_j|^p``. Cases from POT's ``test/test_sliced.py``
(same distribution gives 0; 1-D sliced equals the exact EMD) are ported at the end.
Tolerance: 1e-10 relative (both compute the same finite sum in float64; ``emd2`` solves an LP,
exact to its own rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import sliced_wasserstein, wasserstein_1d
from tests.utils import enable_x64


def _w(rng, n, zeros=0):
    w = rng.uniform(0.2, 1.0, size=n)
    w[:zeros] = 0.0
    return w / w.sum()


@pytest.mark.parametrize("p", [2, pytest.param(1, marks=pytest.mark.slow),
                               pytest.param(1.5, marks=pytest.mark.slow)])
def test_wasserstein_1d_weighted_equals_pot_and_emd(p):
    rng = np.random.default_rng(int(10 * p))
    u, v = rng.normal(size=7), rng.normal(1.0, 2.0, size=5)
    u[3] = u[1]  # a tie
    wu, wv = _w(rng, 7, zeros=1), _w(rng, 5)
    expected = ot.wasserstein_1d(u, v, wu, wv, p=p)
    lp = ot.emd2(wu, wv, np.abs(u[:, None] - v[None, :]) ** p)
    with enable_x64():
        got = float(wasserstein_1d(jnp.asarray(u), jnp.asarray(v), jnp.asarray(wu),
                                   jnp.asarray(wv), p=p))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(got, lp, rtol=1e-9)


@pytest.mark.slow
def test_wasserstein_1d_uniform_equals_pot():
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=6), rng.normal(size=9)
    with enable_x64():
        got = float(wasserstein_1d(jnp.asarray(u), jnp.asarray(v), p=2))
    np.testing.assert_allclose(got, ot.wasserstein_1d(u, v, p=2), rtol=1e-10)


@pytest.mark.parametrize("p", [2, pytest.param(1, marks=pytest.mark.slow)])
def test_sliced_equals_pot_same_projections(p):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(8, 3)), rng.normal(0.5, 1.5, size=(6, 3))
    a, b = _w(rng, 8), _w(rng, 6)
    proj = ot.sliced.get_random_projections(3, 20, seed=0)
    expected = ot.sliced_wasserstein_distance(x, y, a, b, projections=proj, p=p)
    with enable_x64():
        got = float(sliced_wasserstein(jnp.asarray(x), jnp.asarray(y), jnp.asarray(a),
                                       jnp.asarray(b), p=p, projections=jnp.asarray(proj)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.slow
def test_pot_sliced_same_dist():
    """POT ``test_sliced_same_dist``: a measure against itself (any order, own weights) is 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 2))
    u = _w(rng, 10)
    perm = rng.permutation(10)
    got = sliced_wasserstein(jnp.asarray(x, jnp.float32), jnp.asarray(x[perm], jnp.float32),
                             jnp.asarray(u, jnp.float32), jnp.asarray(u[perm], jnp.float32),
                             n_projections=10, key=jax.random.key(0))
    assert float(got) < 1e-6  # float32 rounding of the projections only


@pytest.mark.slow
def test_pot_1d_sliced_equals_emd():
    """POT ``test_1d_sliced_equals_emd``: in 1-D, sliced with the direction +-1 is the exact W_2."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 1)), rng.normal(size=(7, 1))
    a, b = _w(rng, 9), _w(rng, 7)
    expected = np.sqrt(ot.emd2(a, b, ot.dist(x, y)))
    with enable_x64():
        got = float(sliced_wasserstein(jnp.asarray(x), jnp.asarray(y), jnp.asarray(a),
                                       jnp.asarray(b), projections=jnp.ones((1, 1))))
    np.testing.assert_allclose(got, expected, rtol=1e-9)
