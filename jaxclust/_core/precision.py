"""Matrix-product precision of the kernels (issue 15 §4; policy in docs/guide/performance.md).

On CPU a float32 ``dot`` is computed in float32 whatever its ``precision``. On GPUs the
default float32 product is TF32 (10-bit mantissa, relative error ~5e-4 per operand) and on
TPUs a single bfloat16 pass (~4e-3): far above what the solvers promise. The kernels
therefore state their precision:

* ``HIGHEST`` (full float32) wherever an error of the product reaches the result through
  cancellation or a fixed point: squared distances ``|x|^2 + |y|^2 - 2 x.y`` (k-means, kNN,
  cost matrices, SDP distance matrices), the Sinkhorn kernel matrix-vector products (a
  relative error ``delta`` of ``K v`` is a marginal error ``delta`` that no iteration
  removes: TF32 would floor the error at ~1e-3, the default ``tol``) and the SDP solvers'
  products (ADMM / Burer-Monteiro run to relative tolerances of 1e-5..1e-7).
* ``DEFAULT`` nowhere in a solver today; a kernel that uses it states why next to the call.

Matrix-vector products are memory bound, so ``HIGHEST`` costs nothing there; on GPUs a
float32 GEMM at ``HIGHEST`` runs at the plain float32 rate (no TF32 tensor cores): the
price of distances that mean what they say.
"""

from __future__ import annotations

import functools

import jax

HIGHEST = jax.lax.Precision.HIGHEST


def highest_matmul_precision(fn):
    """Trace ``fn`` with every matrix product at ``Precision.HIGHEST`` (products that name
    their own precision keep it). Put it *under* ``jax.jit`` so that the setting is part of
    the traced program, whatever ``jax.default_matmul_precision`` the caller runs under."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapper
