"""``barycenter`` against POT 0.9.7 ``ot.lp.free_support_barycenter`` from the same initial
support (float64).

Peer: PythonOT/POT ``ot/lp/_barycenter_solvers.py::free_support_barycenter``: exact plans by
``ot.emd`` to each measure, ``X <- sum_i w_i diag(1/b) T_i Y_i``, stop when the squared move
is at most ``stopThr=1e-7`` or after ``numItermax=100``. With uniform weights and ``k = n`` the
exact plans are scaled permutations, found by our device Hungarian solver. Random continuous
data: the optimal plans are unique, so both runs take the same steps. Tolerance 1e-12.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import barycenter
from tests.utils import enable_x64


@pytest.mark.parametrize("lambdas", [None, pytest.param([0.2, 0.5, 0.3],
                                                        marks=pytest.mark.slow)])
def test_exact_barycenter_equals_pot(lambdas):
    rng = np.random.default_rng(0)
    locs = [rng.normal(size=(8, 2)) + i for i in range(3)]
    x0 = rng.normal(size=(8, 2))
    lam = None if lambdas is None else np.asarray(lambdas)
    X, log = ot.lp.free_support_barycenter(locs, [np.full(8, 1 / 8)] * 3, x0, weights=lam,
                                           log=True)
    with enable_x64():
        res = barycenter(jnp.asarray(np.stack(locs)), jnp.asarray(x0),
                         lambdas=None if lam is None else jnp.asarray(lam))
        assert bool(res.converged)
        assert int(res.n_iters) == len(log["displacement_square_norms"])
        np.testing.assert_allclose(res.x, X, atol=1e-12)
