r"""Data-parallel jaxclust on many devices through JAX's own SPMD machinery.

Points are sharded along their first axis over a one-axis device mesh
([`make_mesh`][jaxclust.distributed.make_mesh], axis ``"points"``);
[`shard`][jaxclust.distributed.shard] pads them to a multiple of the number of devices with
zero-weight rows; the sharded algorithms run under ``jax.shard_map`` and communicate only
small reductions (centroid sums, counts, top-k candidates);
[`gather`][jaxclust.distributed.gather] brings per-point results back to the host without
the padding. See the guide page "Scaling out".
"""

from ._cluster import kmeans as kmeans, minibatch_kmeans as minibatch_kmeans
from ._mesh import (
    AXIS as AXIS,
    ShardedPoints as ShardedPoints,
    gather as gather,
    make_mesh as make_mesh,
    shard as shard,
)
from ._ood import knn as knn
from ._ot import sinkhorn as sinkhorn, swav_codes as swav_codes
from ._sdp import kmeans_sdp as kmeans_sdp

__all__ = [
    "AXIS",
    "ShardedPoints",
    "gather",
    "kmeans",
    "kmeans_sdp",
    "knn",
    "make_mesh",
    "minibatch_kmeans",
    "shard",
    "sinkhorn",
    "swav_codes",
]
