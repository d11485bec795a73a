"""Precision on accelerators (issue 15 §4): explicit matmul precision, bfloat16 inputs.

1. **Matmul precision in the lowered program.** On GPUs a float32 ``dot`` at ``DEFAULT``
   precision runs in TF32 (TPUs: one bfloat16 pass). The kernels whose documented accuracy
   needs full float32 products set ``Precision.HIGHEST`` (policy and reasons:
   ``jaxclust/_core/precision.py``, docs/guide/performance.md). CPU ignores the setting, so
   the check reads the StableHLO text of ``jax.jit(f).lower(...)``: every ``dot_general``
   of the kernel must carry ``precision = [HIGHEST, HIGHEST]``.
2. **bfloat16 inputs** (the policy of DESIGN.md, as implemented): half-precision inputs are
   promoted to float32 at the boundary, every solver computes in float32 and returns float32.
   Checked two ways: (a) ``f(x_bf16)`` equals ``f(float32(x_bf16))`` to float32 rounding
   (same input values, same float32 program: a bfloat16 computation inside would differ by
   ~1e-3); (b) ``f(x_bf16)`` is within a stated tolerance of ``f(x)``: bfloat16 rounds each
   input to 8 significant bits (relative 2^-9 = 2e-3), which moves the result by the
   conditioning of the problem times that.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxclust.cluster as jcl
import jaxclust.ood as jood
import jaxclust.ot as jot
import jaxclust.sdp as jsdp
from jaxclust._core.precision import highest_matmul_precision

_KEY = jax.random.key(0)
_rng = np.random.default_rng(0)
_X = jnp.asarray(_rng.normal(size=(12, 2)), jnp.float32)
_Y = jnp.asarray(_rng.normal(size=(9, 2)) + 0.5, jnp.float32)
_DOT = re.compile(r"stablehlo\.dot_general[^\n]*")


def _dot_precisions(fn, *args):
    text = jax.jit(fn).lower(*args).as_text()
    dots = _DOT.findall(text)
    return [re.search(r"precision = \[(\w+), (\w+)\]", d) for d in dots]


def _assert_all_highest(fn, *args):
    precs = _dot_precisions(fn, *args)
    assert precs, "no matrix product in the lowered program"
    kinds = [m.groups() if m else ("DEFAULT", "DEFAULT") for m in precs]
    bad = [k for k in kinds if k != ("HIGHEST", "HIGHEST")]
    assert not bad, f"{len(bad)} of {len(kinds)} dot_general ops not at HIGHEST: {bad[:3]}"


def test_the_hlo_check_can_fail():
    _assert_all_highest(lambda a: jnp.matmul(a, a.T, precision=jax.lax.Precision.HIGHEST), _X)
    with pytest.raises(AssertionError, match="not at HIGHEST"):
        _assert_all_highest(lambda a: a @ a.T, _X)


def test_decorator_overrides_the_callers_default():
    # the solver's setting is part of its program, whatever context the caller traces in
    f = highest_matmul_precision(lambda a: a @ a.T)
    with jax.default_matmul_precision("bfloat16"):
        _assert_all_highest(f, _X)


# kernel -> a program that runs it (every dot_general in it must be at HIGHEST)
_KERNELS = {
    # Sinkhorn: the kernel-path matrix-vector products, the cost matrix, the error
    "sinkhorn-kernel-path": (lambda x, y: jot.sinkhorn(x, y, epsilon=0.5).reg_cost, (_X, _Y)),
    "sinkhorn-online": (lambda x, y: jot.sinkhorn(x, y, epsilon=0.5, chunk_size=5).reg_cost,
                        (_X, _Y)),
    # k-means distances |x|^2 - 2 x.c + |c|^2 (k <= 16 and the k > 16 lane path)
    "kmeans": (lambda x: jcl.kmeans(x, 3, key=_KEY).inertia, (_X,)),
    "kmeans-k20": (lambda x: jcl.kmeans(x, 20, key=_KEY).inertia, (jnp.tile(_X, (3, 1)),)),
    # kNN: similarity GEMM of the OOD score (whole and chunked bank), kNN graph distances
    "knn": (lambda x: jood.knn(x, jood.fit_knn(_Y), k=2), (_X,)),
    "knn-chunked": (lambda x: jood.knn(x, jood.fit_knn(_Y), k=2, chunk_size=4), (_X,)),
    "affinity-knn": (lambda x: jcl.affinity_matrix(x, kind="knn", n_neighbors=3), (_X,)),
    # soft / Sinkhorn k-means and GMM: distances, centroid and covariance updates
    "soft_kmeans": (lambda x: jcl.soft_kmeans(x, 3, temperature=0.5, key=_KEY).energy, (_X,)),
    "sinkhorn_kmeans": (lambda x: jcl.sinkhorn_kmeans(x, 3, key=_KEY, epsilon=0.5).loss, (_X,)),
    "gmm": (lambda x: jcl.gmm(x, 3, key=_KEY).log_likelihood, (_X,)),
    # SDP: distance matrix, ADMM projections, Burer-Monteiro gradients
    "kmeans_sdp-admm": (lambda x: jsdp.kmeans_sdp(x, 3, solver=jsdp.ADMM(), key=_KEY).objective,
                        (_X,)),
    "kmeans_sdp-bm": (lambda x: jsdp.kmeans_sdp(x, 3, solver=jsdp.BurerMonteiro(),
                                                key=_KEY).objective, (_X,)),
}


# their own modules (or owners) already set HIGHEST; ~1 s of tracing each: slow
_SLOW_KERNELS = {"gmm", "sinkhorn_kmeans"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.slow] if n in _SLOW_KERNELS else [])
    for n in sorted(_KERNELS)])
def test_kernel_matmuls_at_highest(name):
    fn, args = _KERNELS[name]
    _assert_all_highest(fn, *args)


@pytest.mark.slow  # ~50 products in nested loops: a few seconds to trace
def test_la_sdp_matmuls_at_highest():
    _assert_all_highest(lambda x: jsdp.la_sdp(x, 3, key=_KEY).proportions, _X)


# --- bfloat16 inputs ------------------------------------------------------------------------

_C3 = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], np.float32)
_BLOBS = jnp.asarray(_rng.normal(size=(30, 2)) * 0.5 + np.repeat(_C3, 10, axis=0), jnp.float32)
_LABELS = jnp.repeat(jnp.arange(3), 10)
# bfloat16-representable: the same values in every run of (a)
_YB = jnp.asarray(_rng.normal(size=(20, 2)), jnp.bfloat16).astype(jnp.float32)
_LOGITS = _BLOBS @ jnp.asarray([[1.0, -0.5, 0.25], [0.375, 0.75, -1.0]], jnp.float32)


def _sinkhorn(x):
    r = jot.sinkhorn(x, _YB.astype(x.dtype), epsilon=0.5)
    return r.reg_cost, r.marginals[0]


def _kmeans(x):
    r = jcl.kmeans(x, 3, key=_KEY)
    return r.inertia, r.centroids, r.labels


def _soft_kmeans(x):
    r = jcl.soft_kmeans(x, 3, temperature=1.0, key=_KEY)
    return r.energy, r.centroids


def _gmm(x):
    r = jcl.gmm(x, 3, key=_KEY)
    return r.log_likelihood, r.means


def _kmeans_sdp(x):
    r = jsdp.kmeans_sdp(x, 3, key=_KEY)
    return r.objective, r.labels


def _mahalanobis(x):
    return jood.mahalanobis(x, jood.fit_mahalanobis(_BLOBS, _LABELS))


def _knn(x):
    return jood.knn(x, jood.fit_knn(_BLOBS), k=3)


def _energy(logits):
    return jood.energy(logits)


# entry point -> (function, tolerance of (b) relative to max |f(x)| of each output). The
# measured gaps (this data, CPU) are 5e-4..7e-4 for the solvers and 3e-3..1e-2 for the
# OOD scores (Mahalanobis squares a 2e-3 input error through a precision matrix).
_BF16 = {
    "sinkhorn": (_sinkhorn, 5e-3),
    "kmeans": (_kmeans, 5e-3),
    "soft_kmeans": (_soft_kmeans, 5e-3),
    "gmm": (_gmm, 5e-3),
    "kmeans_sdp": (_kmeans_sdp, 5e-3),
    "mahalanobis": (_mahalanobis, 3e-2),
    "knn": (_knn, 3e-2),
    "energy": (_energy, 3e-2),  # input: bfloat16 logits (a network's output in that dtype)
}


# the fast suite keeps one entry point per kernel family (Sinkhorn, k-means, soft k-means,
# the kNN and logit scores); the others cost 2-4 s of first compilation each: slow
_SLOW_BF16 = {"gmm", "kmeans_sdp", "mahalanobis"}


def _bf16_params():
    return [pytest.param(n, marks=[pytest.mark.slow] if n in _SLOW_BF16 else [])
            for n in sorted(_BF16)]


@pytest.mark.parametrize("name", _bf16_params())
def test_bfloat16_inputs_computed_in_float32(name):
    fn, tol = _BF16[name]
    x = _LOGITS if name == "energy" else _BLOBS
    x16 = x.astype(jnp.bfloat16)
    got = jax.tree_util.tree_leaves(fn(x16))
    same_values = jax.tree_util.tree_leaves(fn(x16.astype(jnp.float32)))
    full = jax.tree_util.tree_leaves(fn(x))
    for g, s, f in zip(got, same_values, full):
        g, s, f = np.asarray(g), np.asarray(s), np.asarray(f)
        if np.issubdtype(f.dtype, np.floating):
            assert g.dtype == np.float32, f"bfloat16 input gave a {g.dtype} result"
            # (a) the same float32 program on the same values (rounding-level differences)
            np.testing.assert_allclose(g, s, rtol=1e-5, atol=1e-6 * np.abs(s).max())
            # (b) the bfloat16 rounding of the inputs, propagated
            np.testing.assert_allclose(g, f, rtol=0, atol=tol * np.abs(f).max())
        else:  # the partition of three well-separated blobs does not move (labels up to
            # their numbering)
            np.testing.assert_array_equal(g[:, None] == g[None, :], f[:, None] == f[None, :])
