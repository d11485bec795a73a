"""``gromov_wasserstein``: invariance to isometries, bad input (POT cross-checks in
tests/peers/test_pot_gromov.py; jit / vmap / FD of the envelope gradients: conformance)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import gromov_wasserstein

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(6, 2)), jnp.float32)


def _d(p):
    return jnp.sum((p[:, None, :] - p[None, :, :]) ** 2, -1)


@pytest.mark.slow
def test_isometric_clouds_match_their_points():
    # a rotated, permuted copy: at small epsilon the plan puts its mass on the permutation
    rot = jnp.asarray([[0.6, -0.8], [0.8, 0.6]], jnp.float32)
    perm = jnp.asarray([3, 0, 5, 1, 4, 2])
    C1, C2 = _d(X), _d(X[perm] @ rot)
    res = gromov_wasserstein(C1 / C1.max(), C2 / C1.max(), epsilon=0.05)
    assert bool(res.converged)
    np.testing.assert_array_equal(jnp.argmax(res.plan, 1), jnp.argsort(perm))


C = _d(X)


@pytest.mark.parametrize("kwargs, message", [
    (dict(C1=C[:, :5]), "`C1` must be a non-empty square matrix"),
    (dict(M=jnp.ones((6, 5))), "`M` must have shape \\(n, m\\) = \\(6, 6\\)"),
    (dict(epsilon=0.0), "`epsilon` must be a finite number > 0"),
    (dict(tol=0), "`tol` must be a Python number > 0"),
    (dict(a=jnp.ones(5)), "`a` must have shape \\(6,\\)"),
])
def test_bad_static_input(kwargs, message):
    args = dict(C1=C, C2=C, epsilon=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        gromov_wasserstein(args.pop("C1"), args.pop("C2"), **args)


def test_bad_values_eager():
    bad = C.at[0, 1].set(jnp.nan)
    with pytest.raises(ValueError, match="`C2` contains NaN"):
        gromov_wasserstein(C, bad, epsilon=0.1)
    with pytest.raises(ValueError, match="`alpha` must be in \\[0, 1\\]"):
        gromov_wasserstein(C, C, epsilon=0.1, M=C, alpha=1.5)



@pytest.mark.slow  # ~1.5 s of compilation
def test_bad_values_under_jit():
    bad = C.at[0, 1].set(jnp.nan)
    with pytest.raises(Exception, match="`C2` contains NaN"):
        jax.block_until_ready(jax.jit(lambda c: gromov_wasserstein(C, c, epsilon=0.1,
                                                                   max_iter=2).plan)(bad))
