"""``wasserstein_1d`` / ``sliced_wasserstein``: closed forms, random projections, gradients
and bad input (POT cross-checks: tests/peers/test_pot_sliced.py; jit/vmap/FD: conformance)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import sliced_wasserstein, wasserstein_1d
from jaxclust.ot.sliced import _sort
from tests.utils import enable_x64

X = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)), jnp.float32)
Y = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2)), jnp.float32)


def test_uniform_fast_path_equals_pot_and_the_weighted_path():
    """Default (None) weights take the uniform path (integer-key sorts, static merged levels);
    float64 against POT (same projections, 1e-10), n == m and n != m, p = 1, 2; gradients
    equal to those of the general path (sort + searchsorted merge) with explicit uniform
    weights (1e-10; FD of that path: conformance `sliced_and_1d`, slow)."""
    import ot

    rng = np.random.default_rng(7)
    proj = ot.sliced.get_random_projections(3, 6, seed=0)

    @jax.jit
    def both(x, y, pj):  # one program per shape: values and gradients of both paths
        ua = jnp.full((x.shape[0],), 1.0 / x.shape[0], x.dtype)
        ub = jnp.full((y.shape[0],), 1.0 / y.shape[0], y.dtype)
        out = []
        for p in (1, 2):
            fast = lambda x, y, p=p: sliced_wasserstein(x, y, p=p, projections=pj)  # noqa: E731
            general = lambda x, y, p=p: sliced_wasserstein(  # noqa: E731
                x, y, ua, ub, p=p, projections=pj)
            if p == 1:  # values only (the p = 2 gradients exercise both sort JVPs)
                out.append(((fast(x, y), ()), (general(x, y), ())))
                continue
            out.append((jax.value_and_grad(fast, (0, 1))(x, y),
                        jax.value_and_grad(general, (0, 1))(x, y)))
        return out, wasserstein_1d(x[:, 0], y[:, 1], p=2)

    with enable_x64():
        for n, m in ((7, 7), (7, 4)):
            x, y = rng.normal(size=(n, 3)), rng.normal(0.5, 1.5, size=(m, 3))
            out, w1 = both(jnp.asarray(x), jnp.asarray(y), jnp.asarray(proj))
            for p, ((v_fast, g_fast), (v_gen, g_gen)) in zip((1, 2), out):
                expected = ot.sliced_wasserstein_distance(x, y, projections=proj, p=p)
                np.testing.assert_allclose(float(v_fast), expected, rtol=1e-10)
                np.testing.assert_allclose(float(v_gen), expected, rtol=1e-10)
                for a, b in zip(g_fast, g_gen):
                    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(float(w1), ot.wasserstein_1d(x[:, 0], y[:, 1], p=2),
                                       rtol=1e-10)


def test_weighted_ties_and_zero_weights_equal_the_lp():
    """The weighted path pools tied values' weights and merges the cumulative levels without a
    sort: ties inside and across the samples, zero weights, float64, against ``ot.emd2`` on
    the materialised cost (an LP, independent code) and POT's ``wasserstein_1d``."""
    import ot

    u = np.array([0.5, -1.0, 0.5, 2.0, 0.5, 3.0, -1.0])
    v = np.array([0.5, 2.0, -2.0, 2.0, 1.0])
    wu = np.array([0.2, 0.1, 0.0, 0.3, 0.15, 0.0, 0.25])
    wv = np.array([0.3, 0.2, 0.1, 0.25, 0.15])
    with enable_x64():
        got = jax.jit(lambda *a: [wasserstein_1d(*a, p=p) for p in (1, 2)])(
            *(jnp.asarray(t) for t in (u, v, wu, wv)))
    for p, g in zip((1, 2), got):
        np.testing.assert_allclose(float(g), ot.emd2(wu, wv, np.abs(u[:, None] - v) ** p),
                                   rtol=1e-10)
        np.testing.assert_allclose(float(g), ot.wasserstein_1d(u, v, wu, wv, p=p), rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_integer_key_sort_equals_numpy(dtype):
    """Negative and positive values, ties, -0.0 and +0.0, extremes of the dtype."""
    with enable_x64():
        info = jnp.finfo(dtype)
        v = np.array([[3.0, -1.0, 0.0, -0.0, 2.5, -1.0, float(info.max), float(info.min),
                       float(info.tiny), -float(info.tiny)], [1, 1, 1, -2, -3, 4, 0, 5, 6, -7]])
        got = np.asarray(_sort(jnp.asarray(v, dtype)), np.float64)
        np.testing.assert_array_equal(got, np.sort(np.asarray(jnp.asarray(v, dtype), np.float64)))


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
