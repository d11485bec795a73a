"""Eager Sinkhorn calls compile one program (issue 15 §3).

With concrete inputs the value checks run on the host (NumPy) and the validation, the solve
and the result are one jitted program: a first call builds exactly one XLA executable (it
built 41 for ``sinkhorn``, 3 for ``sinkhorn_from_cost``, 15 for ``sinkhorn_divergence``
before), a second call with new values of the same shapes none. Bad values still raise the
named ``ValueError`` eagerly (the general path reports them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from jaxclust.ot import sinkhorn, sinkhorn_divergence, sinkhorn_from_cost

from ..test_compile import count_compilations


def _clouds(n, m):  # shapes used by no other test: the first call starts from a cold cache
    x = jax.random.normal(jax.random.key(0), (n, 3))
    y = jax.random.normal(jax.random.key(1), (m, 3)) + 1.0
    return jax.block_until_ready((x, y))


def _first_and_second(fn, *args):
    with count_compilations() as first:
        jax.block_until_ready(fn(*args))
    again = jax.block_until_ready(tuple(a * 1.001 for a in args))
    with count_compilations() as second:
        jax.block_until_ready(fn(*again))
    return first.count, second.count


@pytest.mark.parametrize("which", ["sinkhorn", "sinkhorn_from_cost", "sinkhorn_divergence"])
def test_first_eager_call_compiles_one_program(which):
    x, y = _clouds(13, 11)
    kw = dict(epsilon=0.5, max_iter=20, check_every=5, mode="log")
    if which == "sinkhorn":
        counts = _first_and_second(lambda x, y: sinkhorn(x, y, **kw).f, x, y)
    elif which == "sinkhorn_from_cost":
        C = jnp.sum((x[:, None] - y[None]) ** 2, -1)
        counts = _first_and_second(lambda C: sinkhorn_from_cost(C, **kw).f, C)
    else:
        counts = _first_and_second(lambda x, y: sinkhorn_divergence(x, y, **kw).divergence,
                                   x, y)
    assert counts == (1, 0)


def test_host_checked_call_equals_jitted_call_and_still_reports():
    x, y = _clouds(13, 11)
    kw = dict(epsilon=0.5, max_iter=20, check_every=5, mode="log")
    eager = sinkhorn(x, y, **kw)
    jitted = jax.jit(lambda x, y: sinkhorn(x, y, **kw))(x, y)  # the general (traced) path
    # (small eager problems compile with other XLA options: equal up to float32 rounding)
    for u, v in ((eager.f, jitted.f), (eager.g, jitted.g), (eager.errors, jitted.errors)):
        assert jnp.allclose(u, v, rtol=1e-5, atol=1e-6)
    assert int(eager.n_iters) == int(jitted.n_iters)
    with pytest.raises(ValueError, match="`x` contains NaN"):
        sinkhorn(x.at[0, 0].set(jnp.nan), y, **kw)
    # (every other value check: tests/ot/test_bad_input.py, now through the host checks)
