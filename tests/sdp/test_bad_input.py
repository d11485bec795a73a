"""Bad input of the SDP functions (issue 14, section 1): each test names the defect it pins
down; before the fix it failed as its docstring says. Tiny sizes; most checks raise during
validation, before a solver compiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust import sdp
from jaxclust.sdp.burer_monteiro import bm_solve

KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).normal(size=(12, 3)), jnp.float32)

POINT_FUNCTIONS = {
    "kmeans_sdp-admm": lambda x: sdp.kmeans_sdp(x, 2, key=KEY),
    "kmeans_sdp-bm": lambda x: sdp.kmeans_sdp(x, 2, solver=sdp.BurerMonteiro(), key=KEY),
    "la_sdp": lambda x: sdp.la_sdp(x, 2, key=KEY),
    "bm_solve": lambda x: bm_solve(x, 2, key=KEY),
}


@pytest.mark.parametrize("name", sorted(POINT_FUNCTIONS))
def test_float32_overflow_is_an_error_naming_x(name):
    """Before: ADMM raised "`sol` contains NaN or Inf" (a `sol` the user never passed); BM
    returned a NaN objective with ``converged=True``; iLA-SDP a NaN objective."""
    with pytest.raises(ValueError, match="`x` has values too large for float32"):
        POINT_FUNCTIONS[name](X * 1e20)


def test_round_labels_overflow_names_sol():
    """Before: the rounding k-means raised about an `x` the user never passed."""
    with pytest.raises(ValueError, match="`sol` has values too large for float32"):
        sdp.round_labels(jnp.eye(4) * 1e20, 2)


@pytest.mark.parametrize("name", sorted(POINT_FUNCTIONS))
def test_empty_x_blames_x_not_k(name):
    """Before: "`k` must satisfy 2 <= k < n = 0"."""
    with pytest.raises(ValueError, match="`x` has no rows"):
        POINT_FUNCTIONS[name](jnp.zeros((0, 3)))
    with pytest.raises(ValueError, match="`x` is None"):
        POINT_FUNCTIONS[name](None)


@pytest.mark.parametrize("call", [
    lambda key: sdp.kmeans_sdp(X, 2, key=key),
    lambda key: sdp.la_sdp(X, 2, key=key),
    lambda key: sdp.round_labels(jnp.eye(4), 2, key),
    lambda key: bm_solve(X, 2, key=key),
], ids=["kmeans_sdp", "la_sdp", "round_labels", "bm_solve"])
def test_bad_key_names_key(call):
    """Before: JAX's internal "invalid PRNG key data"."""
    with pytest.raises(ValueError, match=r"`key` must be a JAX PRNG key such as "
                                         r"jax\.random\.key\(0\)"):
        call(0)


@pytest.mark.parametrize("k", [-1, 0, 13, 2.0])
def test_spectral_embedding_validates_k(k):
    """Before: ``spectral_embedding(sol, -1)`` returned shape (n, n - 1) and ``(sol, 13)``
    shape (n, n) for n = 12."""
    z = sdp.membership_matrix(jnp.arange(12) % 3, 3)
    with pytest.raises(ValueError, match=r"`k` must be a Python int in \[1, n\] = \[1, 12\]"):
        sdp.spectral_embedding(z, k)
    with pytest.raises(ValueError, match="`sol` must be 2-D"):
        sdp.spectral_embedding(jnp.ones((3, 3, 3)), 2)  # before: a jnp.pad error
    with pytest.raises(ValueError, match="`sol` contains NaN"):  # before: NaN returned
        sdp.spectral_embedding(jnp.full((12, 12), jnp.nan), 3)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_spectral_embedding_half_precision(dtype):
    """Before: NotImplementedError (no float16 eigh/svd in XLA). Now computed in float32,
    returned in the input dtype."""
    z = sdp.membership_matrix(jnp.asarray([0, 0, 1, 1, 1, 2]), 3)
    for sol in (z, z[:, :4]):  # a solution Z and a (non-square) factor
        emb = sdp.spectral_embedding(sol.astype(dtype), 3)
        assert emb.dtype == dtype and emb.shape == (6, 3)
        ref = sdp.spectral_embedding(sol, 3)
        # the Gram matrix is sign- and rotation-free; half precision holds ~3 digits
        np.testing.assert_allclose(np.asarray(emb @ emb.T, np.float32),
                                   np.asarray(ref @ ref.T), atol=2e-2)


def test_rounding_inputs_name_their_argument():
    """Found by the fuzzer: an empty `sol` blamed `k` ("[1, n] = [1, 0]"); labels=None gave
    "None is not a valid value for jnp.array"."""
    for f in (sdp.spectral_embedding, sdp.round_labels):
        with pytest.raises(ValueError, match="`sol` has no rows"):
            f(jnp.zeros((0, 3)), 3)
    with pytest.raises(ValueError, match="`labels` is None"):
        sdp.membership_matrix(None, 2)
