r"""The KNN out-of-distribution score with the feature bank sharded over a device mesh."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec
from jaxtyping import ArrayLike, Float

from .._core import checks
from .._core.collectives import merge_top_k, psum, row_mask
from .._core.costs import safe_sqrt
from ..ood.scores import knn_queries, top_similarities
from ._mesh import AXIS, ShardedPoints, check_points, check_values_now, replicated

__all__ = ["knn"]


def knn(
    features: Float[ArrayLike, "n d"],
    bank: ShardedPoints,
    *,
    k: int = 1,
    chunk_size: int | None = None,
) -> Float[ArrayLike, " n"]:
    r"""Deep nearest-neighbour OOD score with the feature bank sharded over the devices.

    The score of [`jaxclust.ood.knn`][jaxclust.ood.knn],
    $s(x) = -\lVert z - b_{(k)}(z)\rVert$ with $z = x / \lVert x\rVert$ and $b_{(k)}$ the
    $k$-th nearest bank feature, for a bank of ``m`` unit-norm features split over $P$
    devices (``bank = shard(fit_knn(train_features).bank)``). Each device finds the top
    $k$ similarities of every query among its $m/P$ bank rows; the $P k$ candidates of each
    query are all-gathered and merged, so per call the devices exchange $n P k$ numbers,
    never bank rows. The queries ``features`` are replicated. Equal to the single-device
    score up to float32 rounding.

    Args:
      features: ``(n, d)`` queries (replicated on every device).
      bank: the unit-norm bank, sharded with [`shard`][jaxclust.distributed.shard]
        (padding rows are ignored).
      k: rank of the neighbour (static), ``1 <= k <= bank.n``.
      chunk_size: bank rows per block on each device (static), or ``None``.

    Returns:
      ``(n,)`` scores in $[-2, 0]$ (higher = more in-distribution), replicated.

    Raises:
      ValueError: ``bank`` not a ``ShardedPoints``, features not 2-D / NaN / of the wrong
        width, ``k`` outside ``[1, m]``, ``chunk_size < 1``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> from jaxclust.ood import fit_knn
      >>> bank = jd.shard(fit_knn(jnp.array([[1.0, 0.0], [0.0, 1.0]])).bank)
      >>> jd.knn(jnp.array([[2.0, 0.0], [-1.0, 0.0]]), bank).round(4).tolist()
      [0.0, -1.4142]

    References:
      Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
      ICML 2022.
    """
    check_points(bank, "bank")
    # a concrete bank: a ValueError now (a traced one is checked inside the program)
    check_values_now(bank, "bank", overflow=False, weights=False)
    x = checks.as_float_array(features, "features")
    checks.check_ndim(x, "features", 2, "(n, d)")
    if x.shape[0] < 1:
        raise ValueError("`features` has no rows; pass at least one sample.")
    if not checks.is_traced(x):  # eager: raise now; traced: inside the sharded program
        x = checks.check_finite(x, "features")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    m = bank.n
    z, k, chunk_size = knn_queries(x, m, bank.x.shape[1], k, chunk_size)
    z = replicated(z, bank.mesh)
    return _knn(z, bank.x.astype(z.dtype), k=k, n=m, mesh=bank.mesh, chunk_size=chunk_size)


@partial(jax.jit, static_argnames=("k", "n", "mesh", "chunk_size"))
def _knn(z, bank, *, k, n, mesh, chunk_size):
    def body(z, bank):
        # value checks inside the sharded program, with the same verdict on every device
        # (a check outside shard_map runs on one device and leaves the others waiting)
        z = checks.ensure(z, ~jnp.isfinite(z), "`features` contains NaN or Inf; clean or "
                          "mask the input before calling.")
        bad = psum(jnp.sum(~jnp.isfinite(bank)), AXIS) > 0
        bank = checks.ensure(bank, bad, "`bank.x` contains NaN or Inf; build the bank with "
                             "shard(fit_knn(features).bank).")
        m_local = bank.shape[0]
        kk = min(k, m_local)
        top = top_similarities(z, bank, kk, chunk_size, row_mask(m_local, n, AXIS))
        if kk < k:
            top = jnp.pad(top, ((0, 0), (0, k - kk)), constant_values=-jnp.inf)
        kth = merge_top_k(top, k, AXIS)[:, -1]  # an all-gather of n_queries x P k numbers
        return -safe_sqrt(jnp.maximum(2.0 - 2.0 * kth, 0.0))

    return jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(AXIS)),
                         out_specs=PartitionSpec(), check_vma=False)(z, bank)
