"""Entropic optimal transport: balanced, unbalanced and partial Sinkhorn, with implicit
differentiation, an online mode for large point clouds, the debiased Sinkhorn divergence and
SwAV-style balanced cluster codes and progressive partial OT pseudo-labels (P²OT, SP²OT)
for imbalanced clustering."""

from .._core.costs import Minkowski as Minkowski, PNormP as PNormP, SqPNorm as SqPNorm
from .assign import swav_codes as swav_codes
from .barycenters import BarycenterResult as BarycenterResult, barycenter as barycenter
from .divergence import (
    SinkhornDivergenceResult as SinkhornDivergenceResult,
    sinkhorn_divergence as sinkhorn_divergence,
)
from .entropic import (
    SinkhornResult as SinkhornResult,
    default_epsilon as default_epsilon,
    sinkhorn as sinkhorn,
    sinkhorn_from_cost as sinkhorn_from_cost,
)
from .gromov import GromovResult as GromovResult, gromov_wasserstein as gromov_wasserstein
from .lap import (
    LinearAssignment as LinearAssignment,
    linear_sum_assignment as linear_sum_assignment,
)
from .progressive import (
    PartialCodes as PartialCodes,
    mass_schedule as mass_schedule,
    p2ot_codes as p2ot_codes,
    sp2ot_codes as sp2ot_codes,
)
from .sliced import sliced_wasserstein as sliced_wasserstein, wasserstein_1d as wasserstein_1d

__all__ = [
    "BarycenterResult",
    "GromovResult",
    "LinearAssignment",
    "Minkowski",
    "PNormP",
    "PartialCodes",
    "SinkhornDivergenceResult",
    "SinkhornResult",
    "SqPNorm",
    "barycenter",
    "default_epsilon",
    "gromov_wasserstein",
    "linear_sum_assignment",
    "mass_schedule",
    "p2ot_codes",
    "sinkhorn",
    "sinkhorn_divergence",
    "sinkhorn_from_cost",
    "sliced_wasserstein",
    "sp2ot_codes",
    "swav_codes",
    "wasserstein_1d",
]
