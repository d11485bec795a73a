"""Clustering metrics: contingency table, NMI, ARI, clustering accuracy (Hungarian
matching), inertia and the silhouette coefficient."""

from .clustering import (
    ari as ari,
    clustering_accuracy as clustering_accuracy,
    contingency as contingency,
    inertia as inertia,
    nmi as nmi,
    silhouette as silhouette,
)

__all__ = [
    "ari",
    "clustering_accuracy",
    "contingency",
    "inertia",
    "nmi",
    "silhouette",
]
