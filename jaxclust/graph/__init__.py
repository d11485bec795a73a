"""Graphs and heat diffusion: dense graph construction with static shapes, Laplacians, the heat
kernel (Chebyshev polynomials or exact ``expm``), heat-geodesic embeddings, metric MDS,
FastRP node embeddings, local clustering with noisy labels.

See the [guide](../guide/graph.md) for the formulas and the measured numbers.
"""

from ._construction import (
    alpha_decay_graph as alpha_decay_graph,
    epsilon_graph as epsilon_graph,
    knn_graph as knn_graph,
    laplacian as laplacian,
    pairwise_sq_dists as pairwise_sq_dists,
)
from ._embedding import (
    HeatGeoResult as HeatGeoResult,
    heat_geodesic_distances as heat_geodesic_distances,
    heat_geodesic_embedding as heat_geodesic_embedding,
    mds as mds,
)
from ._fastrp import fastrp as fastrp
from ._heat import (
    chebyshev_coefficients as chebyshev_coefficients,
    heat_diffusion as heat_diffusion,
    heat_kernel as heat_kernel,
    heat_kernel_expm as heat_kernel_expm,
)
from ._local import (
    LocalClusterResult as LocalClusterResult,
    label_weighted_graph as label_weighted_graph,
    local_cluster as local_cluster,
    personalized_pagerank as personalized_pagerank,
    sweep_cut as sweep_cut,
)

__all__ = [
    "HeatGeoResult",
    "LocalClusterResult",
    "alpha_decay_graph",
    "chebyshev_coefficients",
    "epsilon_graph",
    "fastrp",
    "heat_diffusion",
    "heat_geodesic_distances",
    "heat_geodesic_embedding",
    "heat_kernel",
    "heat_kernel_expm",
    "knn_graph",
    "label_weighted_graph",
    "laplacian",
    "local_cluster",
    "mds",
    "pairwise_sq_dists",
    "personalized_pagerank",
    "sweep_cut",
]
