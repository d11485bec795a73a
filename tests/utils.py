"""Small helpers shared by the tests: precision contexts and random OT problems."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np


@contextlib.contextmanager
def enable_x64():
    """float64 inside the block, restored afterwards.

    ``jax.experimental.enable_x64`` no longer exists in recent jax; ``jax.enable_x64`` is the
    config context manager that replaced it. Fall back to a config update with restore.
    """
    ctx = getattr(jax, "enable_x64", None)
    if ctx is not None:
        with ctx(True):
            yield
        return
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


@contextlib.contextmanager
def allow_rank_promotion():
    """Let third-party code (ott-jax relies on implicit rank promotion) run inside."""
    with jax.numpy_rank_promotion("allow"):
        yield


def weights(rng: np.random.Generator, n: int, total: float = 1.0, low: float = 0.2):
    """Non-uniform positive weights summing to ``total`` (numpy float64)."""
    w = rng.uniform(low, 1.0, n)
    return total * w / w.sum()


def problem(rng: np.random.Generator, n: int, m: int, d: int, *, shift: float = 0.5,
            uniform: bool = False, mass_b: float = 1.0):
    """A random point-cloud problem ``(x, y, a, b, C)`` in float64 numpy arrays, with the
    squared Euclidean cost ``C`` (computed independently of jaxclust)."""
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + shift
    if uniform:
        a, b = np.full(n, 1.0 / n), np.full(m, mass_b / m)
    else:
        a, b = weights(rng, n), weights(rng, m, mass_b)
    C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return x, y, a, b, C


def as_dtype(dtype, *arrays):
    return tuple(jnp.asarray(t, dtype) for t in arrays)
