"""SDP relaxations of clustering: the Peng–Wei k-means SDP (ADMM, Burer–Monteiro) and
rounding helpers."""

from .kmeans_sdp import (
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
    "kmeans_sdp",
    "membership_matrix",
    "round_labels",
    "spectral_embedding",
]
