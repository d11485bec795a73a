"""SDP relaxations of clustering: the Peng–Wei k-means SDP (ADMM, Burer–Monteiro), the
iterative likelihood-adjusted SDP for heterogeneous clusters (iLA-SDP) and rounding helpers."""

from .ila import LASDPResult as LASDPResult, la_sdp as la_sdp
from .peng_wei import (
    ADMM_MAX_N as ADMM_MAX_N,
    KMeansSDPResult as KMeansSDPResult,
    kmeans_sdp as kmeans_sdp,
)
from .rounding import (
    membership_matrix as membership_matrix,
    round_labels as round_labels,
    spectral_embedding as spectral_embedding,
)

__all__ = [
    "ADMM_MAX_N",
    "KMeansSDPResult",
    "LASDPResult",
    "kmeans_sdp",
    "la_sdp",
    "membership_matrix",
    "round_labels",
    "spectral_embedding",
]
