"""jaxclust.data: the synthetic generator (pure, keyed, jittable, vmappable) and the digits
loader (data shipped inside scikit-learn)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxclust.data import gaussian_mixture, load_digits_classes

CENTERS = jnp.asarray([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def test_gaussian_mixture_same_key_same_sample_and_jit():
    x1, l1 = gaussian_mixture(jax.random.key(3), 50, CENTERS, std=0.5)
    x2, l2 = gaussian_mixture(jax.random.key(3), 50, CENTERS, std=0.5)
    xj, lj = jax.jit(lambda k: gaussian_mixture(k, 50, CENTERS, std=0.5))(jax.random.key(3))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(l1, l2)
    # float32: jit may fuse the affine map differently (rounding only)
    np.testing.assert_allclose(xj, x1, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(lj, l1)
    x3, _ = gaussian_mixture(jax.random.key(4), 50, CENTERS, std=0.5)
    assert not np.allclose(x3, x1)


def test_gaussian_mixture_vmap_over_keys():
    keys = jax.random.split(jax.random.key(0), 3)
    xb, lb = jax.vmap(lambda k: gaussian_mixture(k, 20, CENTERS))(keys)
    assert xb.shape == (3, 20, 2) and lb.shape == (3, 20)
    for i in range(3):
        xi, li = gaussian_mixture(keys[i], 20, CENTERS)
        np.testing.assert_allclose(xb[i], xi, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(lb[i], li)


def test_gaussian_mixture_moments_and_weights():
    w = jnp.asarray([0.6, 0.3, 0.1])
    std = jnp.asarray([0.5, 1.0, 2.0])
    x, labels = gaussian_mixture(jax.random.key(1), 20_000, CENTERS, std=std, weights=w * 7)
    x, labels = np.asarray(x), np.asarray(labels)
    freq = np.bincount(labels, minlength=3) / labels.size
    # 20,000 draws: the standard error of a frequency is <= 0.0035, so 0.02 is > 5 sigma
    np.testing.assert_allclose(freq, w, atol=0.02)
    for k in range(3):
        xk = x[labels == k]
        np.testing.assert_allclose(xk.mean(0), CENTERS[k], atol=0.1)
        np.testing.assert_allclose(xk.std(0), [std[k]] * 2, rtol=0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(centers=jnp.zeros(3)), "centers"),
        (dict(n=0), "`n`"),
        (dict(std=jnp.ones(2)), "std"),
        (dict(weights=jnp.ones(5)), "weights"),
        (dict(weights=jnp.asarray([0.5, -0.1, 0.6])), "weights"),
        (dict(weights=jnp.zeros(3)), "weights"),
    ],
)
def test_gaussian_mixture_bad_input(kwargs, match):
    args = dict(n=10, centers=CENTERS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gaussian_mixture(jax.random.key(0), args.pop("n"), args.pop("centers"), **args)


def test_load_digits_classes_matches_sklearn():
    x, labels = load_digits_classes((3, 8))
    ref = load_digits()
    mask3, mask8 = ref.target == 3, ref.target == 8
    assert x.dtype == jnp.float32 and labels.dtype == jnp.int32
    assert x.shape == (mask3.sum() + mask8.sum(), 64)
    # all images of each class, grouped in the order asked for, scaled to [0, 1]
    np.testing.assert_allclose(x[: mask3.sum()], ref.data[mask3] / 16.0, atol=1e-7)
    np.testing.assert_allclose(x[mask3.sum():], ref.data[mask8] / 16.0, atol=1e-7)
    np.testing.assert_array_equal(labels, [3] * mask3.sum() + [8] * mask8.sum())


def test_load_digits_classes_subsample_is_keyed():
    xa, la = load_digits_classes((0, 1, 2), n_per_class=30, seed=5)
    xb, _ = load_digits_classes((0, 1, 2), n_per_class=30, seed=5)
    xc, _ = load_digits_classes((0, 1, 2), n_per_class=30, seed=6)
    assert xa.shape == (90, 64)
    np.testing.assert_array_equal(np.bincount(np.asarray(la)), [30, 30, 30])
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(classes=(3, 10)), "digits 0..9"),
        (dict(classes=(3, 3)), "repeat"),
        (dict(classes=()), "at least one"),
        (dict(n_per_class=0), "n_per_class"),
        (dict(n_per_class=10_000), "n_per_class|fewer"),
    ],
)
def test_load_digits_classes_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_digits_classes(**kwargs)


@pytest.mark.parametrize("args, expect", [
    ((None, 5, [[0.0, 0.0]]), "`key` must be a JAX PRNG key"),
    ((0, 5, [[0.0, 0.0]]), "`key` must be a JAX PRNG key"),
    (("key", 5, None), "`centers` must be an array"),
    (("key", 5, np.zeros((0, 2))), "`centers` must have shape"),
    (("key", 5, [[np.nan, 0.0]]), "`centers` contains NaN"),
])
def test_gaussian_mixture_bad_arguments_are_named(args, expect):
    # issue 14 (1.8): NaN centres gave NaN points silently, None/empty gave numpy errors
    key = jax.random.key(0) if args[0] == "key" else args[0]
    with pytest.raises(ValueError, match=expect):
        gaussian_mixture(key, *args[1:])
