"""Clustering: k-means (greedy k-means++ seeding, Lloyd, restarts by vmap)."""

from .kmeans import (
    KMeansResult as KMeansResult,
    kmeans as kmeans,
    kmeans_plusplus as kmeans_plusplus,
)

__all__ = ["KMeansResult", "kmeans", "kmeans_plusplus"]
