"""jaxclust: pure, jittable, differentiable clustering, optimal transport and friends in JAX.

The public surface is the subpackages (``jaxclust.ot`` ...) and the most used functions,
re-exported here. Everything under ``jaxclust._core`` is private.
"""

__version__ = "0.1.0"

from . import (
    cluster as cluster,
    diffusion as diffusion,
    distributed as distributed,
    metrics as metrics,
    ood as ood,
    ot as ot,
    sdp as sdp,
    train as train,
)
from .cluster import kmeans as kmeans
from .ot import (
    sinkhorn as sinkhorn,
    sinkhorn_divergence as sinkhorn_divergence,
    sinkhorn_from_cost as sinkhorn_from_cost,
    swav_codes as swav_codes,
)

__all__ = [
    "__version__",
    "cluster",
    "diffusion",
    "distributed",
    "kmeans",
    "metrics",
    "ood",
    "ot",
    "sdp",
    "sinkhorn",
    "sinkhorn_divergence",
    "sinkhorn_from_cost",
    "swav_codes",
    "train",
]
