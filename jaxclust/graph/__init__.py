"""Graphs and heat diffusion: dense graph construction with static shapes, Laplacians, the heat
kernel (Chebyshev polynomials or exact ``expm``).

See the [guide](../guide/graph.md) for the formulas and the measured numbers.
"""

from ._construction import (
    alpha_decay_graph as alpha_decay_graph,
    epsilon_graph as epsilon_graph,
    knn_graph as knn_graph,
    laplacian as laplacian,
    pairwise_sq_dists as pairwise_sq_dists,
)
from ._heat import (
    chebyshev_coefficients as chebyshev_coefficients,
    heat_diffusion as heat_diffusion,
    heat_kernel as heat_kernel,
    heat_kernel_expm as heat_kernel_expm,
)

__all__ = [
    "alpha_decay_graph",
    "chebyshev_coefficients",
    "epsilon_graph",
    "heat_diffusion",
    "heat_kernel",
    "heat_kernel_expm",
    "knn_graph",
    "laplacian",
    "pairwise_sq_dists",
]
