"""SDP relaxations of clustering: the Peng–Wei k-means SDP (solvers ``ADMM`` and
``BurerMonteiro``), the iterative likelihood-adjusted SDP for heterogeneous clusters (iLA-SDP)
and rounding helpers."""

from ._solver import ADMM as ADMM, BurerMonteiro as BurerMonteiro
from .ila import LASDPResult as LASDPResult, la_sdp as la_sdp
from .peng_wei import (
    ADMM_MAX_N as ADMM_MAX_N,
    ADMMStats as ADMMStats,
    BMStats as BMStats,
    KMeansSDPResult as KMeansSDPResult,
    kmeans_sdp as kmeans_sdp,
)
from .rounding import (
    membership_matrix as membership_matrix,
    round_labels as round_labels,
    spectral_embedding as spectral_embedding,
)

__all__ = [
    "ADMM",
    "ADMMStats",
    "ADMM_MAX_N",
    "BMStats",
    "BurerMonteiro",
    "KMeansSDPResult",
    "LASDPResult",
    "kmeans_sdp",
    "la_sdp",
    "membership_matrix",
    "round_labels",
    "spectral_embedding",
]
