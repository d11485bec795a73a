"""Entropic optimal transport: balanced, unbalanced and partial Sinkhorn, with implicit
differentiation, an online mode for large point clouds, the debiased Sinkhorn divergence and
SwAV-style balanced cluster codes."""

from .assign import swav_codes as swav_codes
from .divergence import sinkhorn_divergence as sinkhorn_divergence
from .sinkhorn import (
    SinkhornResult as SinkhornResult,
    default_epsilon as default_epsilon,
    sinkhorn as sinkhorn,
    sinkhorn_from_cost as sinkhorn_from_cost,
)

__all__ = [
    "SinkhornResult",
    "default_epsilon",
    "sinkhorn",
    "sinkhorn_divergence",
    "sinkhorn_from_cost",
    "swav_codes",
]
