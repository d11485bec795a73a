"""jaxclust: pure, jittable, differentiable clustering, optimal transport and friends in JAX.

The public surface is the subpackages (``jaxclust.ot`` ...) and the most used functions,
re-exported here. Everything under ``jaxclust._core`` is private.

``import jaxclust`` imports none of its subpackages: each one (and each re-exported function)
is imported on first attribute access (PEP 562 module ``__getattr__``), so that the training
loop's ``optax``/``rich`` and the sharded code are loaded only by the programs that use them.
``import jaxclust.ot`` and ``from jaxclust import sinkhorn`` work as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._core.lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "cluster": ("jaxclust.cluster", None),
    "diffusion": ("jaxclust.diffusion", None),
    "distributed": ("jaxclust.distributed", None),
    "metrics": ("jaxclust.metrics", None),
    "ood": ("jaxclust.ood", None),
    "ot": ("jaxclust.ot", None),
    "sdp": ("jaxclust.sdp", None),
    "train": ("jaxclust.train", None),
    "kmeans": ("jaxclust.cluster", "kmeans"),
    "sinkhorn": ("jaxclust.ot", "sinkhorn"),
    "sinkhorn_divergence": ("jaxclust.ot", "sinkhorn_divergence"),
    "sinkhorn_from_cost": ("jaxclust.ot", "sinkhorn_from_cost"),
    "swav_codes": ("jaxclust.ot", "swav_codes"),
}

if TYPE_CHECKING:  # what a type checker (and a reader) sees; nothing runs here
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


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)


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
