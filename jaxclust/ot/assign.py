"""Balanced cluster assignments from optimal transport."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float

from .._core import checks, collectives
from .._core.fixed_point import sequential_vmap

__all__ = ["swav_codes"]


def swav_codes(
    scores: Float[Array, "batch k"], *, epsilon: float = 0.05, n_iter: int = 3
) -> Float[Array, "batch k"]:
    r"""Balanced soft cluster codes of SwAV (equipartition by a few Sinkhorn steps).

    Given prototype scores $S \in \mathbb{R}^{B\times K}$ (e.g. cosine similarities
    between normalised features and prototypes), returns codes $Q = B\,P$ where
    $P$ approximately solves the entropic OT problem

    $$
        \max_{P \ge 0}\ \langle P, S\rangle + \varepsilon H(P)
        \quad\text{s.t.}\quad P1 = \tfrac1B 1,\ P^\top 1 = \tfrac1K 1,
    $$

    by ``n_iter`` rounds of column (prototype) then row (sample) normalisation of
    $\exp(S/\varepsilon)$, in the log domain. Each row of the result sums to 1 (a soft
    assignment per sample) and the prototypes receive equal total mass up to the
    ``n_iter`` truncation. The codes are targets: no gradient flows through them
    (``stop_gradient``), as in SwAV's swapped-prediction loss.

    Args:
      scores: ``(batch, k)`` sample-to-prototype scores.
      epsilon: temperature of the codes (SwAV uses 0.05 on cosine scores).
      n_iter: Sinkhorn rounds (SwAV uses 3).

    Returns:
      ``(batch, k)`` codes, rows summing to 1.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.ot import swav_codes
      >>> s = jax.random.normal(jax.random.key(0), (256, 4)) + jnp.array([3.0, 0, 0, 0])
      >>> q = swav_codes(s, epsilon=0.5, n_iter=10)
      >>> q.sum(1)[:3].round(4).tolist(), (q.mean(0) * 4).round(2).tolist()
      ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0])

    References:
      Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
      Assignments" (SwAV), NeurIPS 2020. Asano, Rupprecht, Vedaldi, "Self-labelling via
      simultaneous clustering and representation learning", ICLR 2020.
    """
    scores = checks.as_float_array(scores, "scores")
    checks.check_ndim(scores, "scores", 2, "(batch, k)")
    checks.check_int(n_iter, "n_iter")
    eps = checks.check_positive_scalar(epsilon, "epsilon")
    scores = checks.check_finite(scores, "scores")
    scores = jax.lax.stop_gradient(scores)
    dtype = jnp.promote_types(scores.dtype, jnp.float32)
    codes = _swav_codes_jit(scores, jnp.asarray(eps, dtype), n_iter)
    return codes.astype(scores.dtype)


def swav_iterations(scores, eps, n_iter: int, *, axis_name=None, row_mask=None):
    """The log-domain iterations of :func:`swav_codes` (package-internal kernel; the sharded
    codes of ``jaxclust.distributed`` call it inside ``shard_map``).

    With ``axis_name`` the rows (samples) are this device's block of a batch sharded over
    that mesh axis inside ``shard_map``: the column log-sum-exp over the batch combines the
    per-device ones (``pmax`` then ``psum``, ``2k`` numbers), rows outside ``row_mask``
    (padding) are left out of it; the row normalisation is local.
    """
    dtype = jnp.promote_types(scores.dtype, jnp.float32)
    # at a tiny epsilon s / eps overflows to +-inf and inf - inf would make NaN codes: clip
    # to a finite range whose sums and differences stay finite (the limit is the hard code)
    lim = float(jnp.finfo(dtype).max) / 8
    logq = jnp.clip(jax.lax.stop_gradient(scores).astype(dtype) / eps, -lim, lim)
    k = scores.shape[1]

    def body(_, lq):
        col_lse = collectives.logsumexp_rows(lq, axis_name, row_mask, keepdims=True)
        lq = lq - col_lse - jnp.log(k)  # prototypes: mass 1/K
        return lq - logsumexp(lq, axis=1, keepdims=True)  # samples: rows sum to 1

    logq = jax.lax.fori_loop(0, n_iter, body, logq)
    return jax.lax.stop_gradient(jnp.exp(logq))


#: from this many scores (batch x k) on, ``vmap(swav_codes)`` maps the problems one after
#: another; measured (benchmarks/results/batched.md, B = 64): (64, 4) vectorised 26x a loop
#: of single calls, (1024, 64) vectorised 0.6-0.85x, mapped 1.1-1.2x
_SEQUENTIAL_MIN_ENTRIES = 32768


def _codes(scores, eps, n_iter):
    def run(s, e):
        return swav_iterations(s, e, n_iter)

    if scores.shape[0] * scores.shape[1] >= _SEQUENTIAL_MIN_ENTRIES:
        # under vmap: one problem after another (a batch of large score matrices leaves the
        # cache: batched iterations cost more per problem than single ones on CPU)
        run = sequential_vmap(run)
    return run(scores, eps)


# eager calls: one compilation per (shape, dtype, n_iter), not one per call (the loop body and
# the batching wrapper are fresh closures on every call, which an un-jitted call would trace
# and compile again)
_swav_codes_jit = jax.jit(_codes, static_argnums=(2,))
