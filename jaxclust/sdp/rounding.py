"""Rounding of k-means SDP solutions to labels, and the membership matrix of a partition."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._core import checks
from ..cluster.lloyd import kmeans

__all__ = ["membership_matrix", "round_labels", "spectral_embedding"]


def membership_matrix(labels: Int[Array, " n"], k: int) -> Float[Array, "n n"]:
    r"""The normalised membership matrix $Z^*$ of a partition (the Peng–Wei SDP point).

    $Z^*_{ij} = 1 / |G_a|$ when $i, j$ both lie in cluster $G_a$ and $0$ otherwise, so
    $Z^* \succeq 0$, $Z^* \ge 0$, $Z^* \mathbf 1 = \mathbf 1$ and
    $\operatorname{tr} Z^*$ equals the number of non-empty clusters. Empty clusters contribute
    nothing.

    Args:
      labels: integer cluster index of every point in ``[0, k)``, shape ``(n,)``.
      k: number of clusters (static).

    Returns:
      ``Z*``, shape ``(n, n)``, in the default float dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.sdp import membership_matrix
      >>> membership_matrix(jnp.array([0, 0, 1]), 2).tolist()
      [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]

    References:
      Peng & Wei, "Approximating K-means-type clustering via semidefinite programming",
      SIAM J. Optim. 2007.
    """
    if labels is None:
        raise ValueError("`labels` is None; pass an integer array of cluster indices (n,).")
    try:
        labels = jnp.asarray(labels)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`labels` must be an integer array of cluster indices (n,), got "
                         f"{type(labels).__name__}.") from err
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D with shape (n,), got shape {labels.shape}.")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"`labels` must be integers, got dtype {labels.dtype}.")
    k = checks.check_int(k, "k")
    labels = checks.ensure(labels, (labels < 0) | (labels >= k),
                           f"`labels` must lie in [0, k) = [0, {k}); relabel the clusters.")
    onehot = jax.nn.one_hot(labels, k, dtype=jnp.result_type(float))
    size = jnp.sum(onehot, axis=0)
    scaled = onehot / jnp.where(size > 0, size, 1.0)[None, :]
    return scaled @ onehot.T


def spectral_embedding(sol: Float[Array, "n m"], k: int) -> Float[Array, "n k"]:
    r"""Rows of the best rank-``k`` factor of an SDP solution.

    For a square ``sol`` (a solution $Z$) the top-``k`` eigenpairs give
    $V_k \Lambda_k^{1/2}$ (negative eigenvalues clipped at 0); for a factor $U$ of shape
    ``(n, r)`` with $r \ne n$ ($Z = U U^\top$) the top-``k`` left singular pairs give
    $U_k \Sigma_k$ (zero columns beyond $r$). Either way the rows' inner products are the
    best rank-``k`` approximation of $Z$: on the membership matrix of a partition, every
    point of cluster $a$ maps to the same row, of norm $1/\sqrt{|G_a|}$, orthogonal to the
    others.

    float16 / bfloat16 inputs are decomposed in float32 (XLA has no half-precision
    ``eigh``/``svd``) and the embedding is returned in the input dtype.

    Args:
      sol: SDP solution ``(n, n)`` or factor ``(n, r)``.
      k: embedding dimension (static), ``1 <= k <= n``.

    Returns:
      The embedding, shape ``(n, k)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.sdp import membership_matrix, spectral_embedding
      >>> e = spectral_embedding(membership_matrix(jnp.array([0, 0, 1]), 2), 2)
      >>> e.shape, [round(float(v), 4) for v in jnp.sort(jnp.linalg.norm(e, axis=1))]
      ((3, 2), [0.7071, 0.7071, 1.0])
    """
    sol = checks.as_float_array(sol, "sol")
    checks.check_ndim(sol, "sol", 2, "(n, n) or (n, r)")
    n = sol.shape[0]
    if n == 0:
        raise ValueError("`sol` has no rows (shape (0, m)); pass an SDP solution of n >= 1 "
                         "points.")
    k = checks.check_int(k, "k", high=n, bounds=f"in [1, n] = [1, {n}]",
                         why="the embedding dimension")
    sol = checks.check_finite(sol, "sol")
    dtype = sol.dtype
    return _spectral_embedding(sol.astype(jnp.promote_types(dtype, jnp.float32)),
                               k).astype(dtype)


def _spectral_embedding(sol, k):
    if sol.shape[0] == sol.shape[1]:
        zs = 0.5 * (sol + sol.T)
        lam, vec = jnp.linalg.eigh(zs)
        lam, vec = lam[::-1][:k], vec[:, ::-1][:, :k]
        return vec * jnp.sqrt(jnp.maximum(lam, 0.0))[None, :]
    u, s, _ = jnp.linalg.svd(sol, full_matrices=False)
    kk = min(k, s.shape[0])
    emb = u[:, :kk] * s[None, :kk]
    return jnp.pad(emb, ((0, 0), (0, k - kk)))


def round_labels(
    sol: Float[Array, "n m"],
    k: int,
    key: PRNGKeyArray | None = None,
    *,
    n_init: int = 4,
) -> Int[Array, " n"]:
    r"""Labels from an SDP solution $Z$ (``(n, n)``) or a factor $U$ (``(n, r)``, $r \ne n$).

    Embeds the points by the best rank-``k`` factor of $Z$ (see
    [`spectral_embedding`][jaxclust.sdp.spectral_embedding]: top-``k`` eigenvectors scaled by
    the square roots of their eigenvalues, or the factor's top-``k`` left singular vectors
    scaled by the singular values) and runs [`kmeans`][jaxclust.cluster.kmeans] (k-means++,
    ``n_init`` restarts) on the rows. On an exact solution $Z^*$ the rows are ``k`` distinct
    points, so the partition is recovered exactly.

    A square factor ($r = n$) would be read as $Z$: pass $U U^\top$ instead.

    Args:
      sol: SDP solution ``(n, n)`` or nonnegative low-rank factor ``(n, r)``.
      k: number of clusters (static).
      key: PRNG key of the k-means seeding; ``None`` uses ``jax.random.key(0)``.
      n_init: k-means restarts.

    Returns:
      Labels in ``[0, k)``, shape ``(n,)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.sdp import membership_matrix, round_labels
      >>> z = membership_matrix(jnp.array([0, 0, 1, 1, 1, 2]), 3)
      >>> lab = round_labels(z, 3)
      >>> bool(lab[0] == lab[1]), bool(lab[2] == lab[3] == lab[4]), len(set(lab.tolist()))
      (True, True, 3)

    References:
      Peng & Wei, "Approximating K-means-type clustering via semidefinite programming",
      SIAM J. Optim. 2007.
    """
    sol = checks.as_float_array(sol, "sol")
    checks.check_ndim(sol, "sol", 2, "(n, n) or (n, r)")
    sol = sol.astype(jnp.promote_types(sol.dtype, jnp.float32))
    if sol.shape[0] == 0:
        raise ValueError("`sol` has no rows (shape (0, m)); pass an SDP solution of n >= 1 "
                         "points.")
    k = checks.check_int(k, "k", high=sol.shape[0], bounds=f"in [1, n] = [1, {sol.shape[0]}]")
    sol = checks.check_sq_norms(checks.check_finite(sol, "sol"), "sol")
    checks.check_int(n_init, "n_init")
    key = jax.random.key(0) if key is None else checks.check_key(key)
    return _kmeans_labels(_embed(sol, k), k, key, n_init)


@partial(jax.jit, static_argnums=(1,))
def _embed(sol, k):
    return _spectral_embedding(sol, k)


@partial(jax.jit, static_argnums=(1, 3))
def _kmeans_labels(emb, k, key, n_init):
    """k-means on the ``(n, k)`` embedding as one compiled program (shared by ``Z`` and
    factor inputs of the same ``n``)."""
    return kmeans(emb, k, key=key, n_init=n_init).labels
