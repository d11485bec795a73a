"""Strict test configuration shared by the whole suite.

* ``jax_numpy_rank_promotion = "raise"`` at import: implicit rank promotion
  (``(n, d) - (d,)``) is an error everywhere, library code included.
* ``key`` / ``rng``: a fixed-seed JAX key and numpy generator per test.
* ``x64``: float64 enabled only for the duration of one test (finite-difference gradient
  checks); everything else runs in the default float32.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# `jaxclust.cli.main` turns on JAX's on-disk compilation cache; not inside the test process
os.environ.setdefault("JAXCLUST_NO_CACHE", "1")

from .utils import enable_x64  # noqa: E402  (re-exported for tests)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def x64():
    with enable_x64():
        yield
