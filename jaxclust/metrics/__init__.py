"""Metrics. Clustering: contingency table, NMI, ARI, clustering accuracy (Hungarian
matching), inertia and the silhouette coefficient. Detection (OOD): AUROC, FPR at a TPR,
AUPR-In / AUPR-Out, exact with ties and jittable. Distributions: energy distance and
MMD between sample sets."""

from .clustering import (
    ari as ari,
    clustering_accuracy as clustering_accuracy,
    contingency as contingency,
    inertia as inertia,
    nmi as nmi,
    silhouette as silhouette,
)
from .detection import (
    aupr_in as aupr_in,
    aupr_out as aupr_out,
    auroc as auroc,
    fpr_at_tpr as fpr_at_tpr,
)
from .distribution import energy_distance as energy_distance, mmd as mmd

__all__ = [
    "ari",
    "aupr_in",
    "aupr_out",
    "auroc",
    "clustering_accuracy",
    "contingency",
    "energy_distance",
    "fpr_at_tpr",
    "inertia",
    "mmd",
    "nmi",
    "silhouette",
]
