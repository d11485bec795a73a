"""Metrics. Clustering: contingency table, NMI, AMI, ARI, clustering accuracy (Hungarian
matching), inertia, silhouette (mean and per sample), Calinski-Harabasz and Davies-Bouldin.
Detection (OOD): AUROC, FPR at a TPR, AUPR-In / AUPR-Out, exact with ties and jittable.
Distributions: energy distance and MMD between sample sets."""

from .clustering import (
    adjusted_mutual_info as adjusted_mutual_info,
    ari as ari,
    calinski_harabasz as calinski_harabasz,
    clustering_accuracy as clustering_accuracy,
    contingency as contingency,
    davies_bouldin as davies_bouldin,
    inertia as inertia,
    nmi as nmi,
    silhouette as silhouette,
    silhouette_samples as silhouette_samples,
)
from .detection import (
    aupr_in as aupr_in,
    aupr_out as aupr_out,
    auroc as auroc,
    fpr_at_tpr as fpr_at_tpr,
)
from .distribution import energy_distance as energy_distance, mmd as mmd

__all__ = [
    "adjusted_mutual_info",
    "ari",
    "aupr_in",
    "aupr_out",
    "auroc",
    "calinski_harabasz",
    "clustering_accuracy",
    "contingency",
    "davies_bouldin",
    "energy_distance",
    "fpr_at_tpr",
    "inertia",
    "mmd",
    "nmi",
    "silhouette",
    "silhouette_samples",
]
