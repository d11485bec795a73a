"""Custom callable costs (issue 18): ``sinkhorn(x, y, cost=c)`` with ``c(x_i, y_j)`` equals
``sinkhorn_from_cost`` on the materialised matrix, dense and online (``chunk_size``), and so
do the gradients through the cost; bad callables raise naming ``cost``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sinkhorn, sinkhorn_from_cost
from tests.utils import enable_x64


def _l1_15(u, v):  # |u - v|_1^1.5: neither a named cost nor translation-free in float
    return jnp.sum(jnp.abs(u - v)) ** 1.5


def _matrix(x, y):
    return jnp.sum(jnp.abs(x[:, None, :] - y[None, :, :]), -1) ** 1.5


@pytest.mark.slow  # ~5 s (dense) on a loaded 2-core machine; online ~5 s more
@pytest.mark.parametrize("chunk", [None, 3])
def test_callable_cost_equals_materialised_matrix_and_gradients(chunk):
    """Dense (fast) and online in blocks of 3 rows, a ragged last one (slow: ~5 s more)."""
    rng = np.random.default_rng(0)
    with enable_x64():
        x = jnp.asarray(rng.normal(size=(7, 3)))
        y = jnp.asarray(rng.normal(size=(5, 3)) + 0.5)
        kw = dict(epsilon=0.5, tol=1e-10, max_iter=5000)

        def ours(x, chunk):
            r = sinkhorn(x, y, cost=_l1_15, chunk_size=chunk, **kw)
            return r.reg_cost, r

        def ref(x):
            r = sinkhorn_from_cost(_matrix(x, y), **kw)
            return r.reg_cost, r

        (v_ref, r_ref), g_ref = jax.value_and_grad(ref, has_aux=True)(x)
        (v, r), g = jax.value_and_grad(ours, has_aux=True)(x, chunk)
        assert bool(r.converged)
        np.testing.assert_allclose(r.plan, r_ref.plan, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(v, v_ref, rtol=1e-10)
        np.testing.assert_allclose(g, g_ref, rtol=1e-7, atol=1e-10)  # implicit, tol 1e-10


@pytest.mark.parametrize("cost, message", [
    (lambda u, v: u - v, "must map two points of shape \\(2,\\) to a scalar"),
    ("manhattan-ish", "`cost` must be one of"),
    (3, "`cost` must be one of"),
])
def test_bad_costs(cost, message):
    x = jnp.ones((3, 2))
    with pytest.raises(ValueError, match=message):
        sinkhorn(x, x, epsilon=0.5, cost=cost)
