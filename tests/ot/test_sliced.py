"""``wasserstein_1d`` / ``sliced_wasserstein``: closed forms, random projections, gradients
and bad input (POT cross-checks: tests/peers/test_pot_sliced.py; jit/vmap/FD: conformance)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sliced_wasserstein, wasserstein_1d

X = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)), jnp.float32)
Y = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2)), jnp.float32)


@pytest.mark.slow
def test_closed_forms_and_random_directions():
    # a pure shift by s: every 1-D cost is |<theta, s>|^p; with unit random directions in 2-D
    # E <theta, s>^2 = |s|^2 / 2, so SW_2 -> |s| / sqrt(2) (Monte-Carlo, 2000 directions)
    s = jnp.asarray([3.0, 4.0])
    sw = sliced_wasserstein(X, X + s[None, :], n_projections=2000, key=jax.random.key(1))
    np.testing.assert_allclose(float(sw), 5.0 / np.sqrt(2.0), rtol=0.03)  # MC error ~1.5%
    # same key, same result; the 1-D cost of a shift is |shift|^p
    again = sliced_wasserstein(X, X + s[None, :], n_projections=2000, key=jax.random.key(1))
    assert float(again) == float(sw)
    np.testing.assert_allclose(float(wasserstein_1d(X[:, 0], X[:, 0] + 2.0, p=2)), 4.0,
                               rtol=1e-6)


def _raises_both(fn, message, jit=True):
    with pytest.raises(ValueError, match=message):
        fn(X, Y)
    if jit:  # trace-time errors are cheap under jit; value errors compile (~1 s each)
        with pytest.raises(Exception, match=message):
            jax.block_until_ready(jax.jit(fn)(X, Y))


@pytest.mark.parametrize("fn, message", [
    (lambda x, y: sliced_wasserstein(x, y[:, :1], key=jax.random.key(0)),
     "same number of features"),
    (lambda x, y: sliced_wasserstein(x, y), "`key` is None"),
    (lambda x, y: sliced_wasserstein(x, y, projections=jnp.ones((3, 2))),
     re.escape("`projections` must have shape (d, L) = (2, L)")),
    (lambda x, y: sliced_wasserstein(x, y, key=jax.random.key(0), p=0.5), "`p` must be"),
    (lambda x, y: sliced_wasserstein(x, y, key=jax.random.key(0), n_projections=0),
     "`n_projections` must be"),
    (lambda x, y: sliced_wasserstein(x, y, jnp.ones(4), key=jax.random.key(0)),
     re.escape("`a` must have shape (5,)")),
    (lambda x, y: wasserstein_1d(x, y[:, 0]), "`u` must be 1-D"),
    (lambda x, y: wasserstein_1d(x[:0, 0], y[:, 0]), "`u` is empty"),
])
def test_bad_shapes_and_options(fn, message):
    _raises_both(fn, message)


@pytest.mark.parametrize("fn, message", [
    (lambda x, y: sliced_wasserstein(x.at[0, 0].set(jnp.nan), y, key=jax.random.key(0)),
     "`x` contains NaN"),
    (lambda x, y: sliced_wasserstein(x, y, b=-jnp.ones(4), key=jax.random.key(0)),
     "`b` has negative entries"),
    (lambda x, y: wasserstein_1d(x[:, 0], y[:, 0], jnp.zeros(5)), "`u_weights` sums to 0"),
])
def test_bad_values(fn, message):
    _raises_both(fn, message, jit="NaN" in message)
