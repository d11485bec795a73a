"""``linear_sum_assignment`` (device Hungarian) against SciPy's ``linear_sum_assignment``:
the same pairs on random continuous costs (a unique optimum almost surely), the same total
on integer costs with ties, rectangular both ways, maximise; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_lsa

from jaxclust.ot import linear_sum_assignment


@pytest.mark.parametrize("shape", [(6, 6), pytest.param((4, 7), marks=pytest.mark.slow),
                                   pytest.param((7, 4), marks=pytest.mark.slow)])
def test_equals_scipy(shape):
    rng = np.random.default_rng(sum(shape))
    cont = rng.normal(size=(10, *shape)).astype(np.float32)
    ints = rng.integers(0, 4, size=(10, *shape)).astype(np.float32)  # many ties
    solve = jax.jit(jax.vmap(linear_sum_assignment))
    mx = jax.jit(jax.vmap(lambda c: linear_sum_assignment(c, maximize=True)))
    res, res_max = solve(jnp.asarray(cont)), mx(jnp.asarray(ints))
    for k in range(10):
        r, c = scipy_lsa(cont[k])
        np.testing.assert_array_equal(res.rows[k], r)
        np.testing.assert_array_equal(res.cols[k], c)
        r, c = scipy_lsa(ints[k], maximize=True)
        assert float(res_max.cost[k]) == ints[k][r, c].sum()  # exact: small integers
        assert len(set(np.asarray(res_max.cols[k]).tolist())) == min(shape)  # injective


def test_bad_input():
    with pytest.raises(ValueError, match="`cost` must be 2-D"):
        linear_sum_assignment(jnp.ones(3))
    with pytest.raises(ValueError, match="`cost` is empty"):
        linear_sum_assignment(jnp.ones((0, 3)))
    with pytest.raises(ValueError, match="`maximize` must be a Python bool"):
        linear_sum_assignment(jnp.ones((2, 2)), maximize=1)
    bad = jnp.ones((2, 2)).at[0, 1].set(jnp.inf)
    with pytest.raises(ValueError, match="`cost` contains NaN or Inf"):
        linear_sum_assignment(bad)
    with pytest.raises(Exception, match="`cost` contains NaN or Inf"):
        jax.block_until_ready(jax.jit(lambda c: linear_sum_assignment(c).cost)(bad))
