"""Demo section: a heat-geodesic embedding of a Swiss roll.

A Swiss roll (600 points, generated as scikit-learn's ``make_swiss_roll`` does) is a rolled-up
rectangle: its true geodesic distances are those of the unrolled rectangle (arc length
along the spiral and height). [`heat_geodesic_embedding`][jaxclust.graph.heat_geodesic_embedding]
(alpha-decay graph, Chebyshev heat kernel, Varadhan's formula, metric MDS) unrolls it in two
dimensions. Reported: the Spearman correlation with the true geodesics of the heat-geodesic
distances, of the 2-D embedding's distances and of the ambient Euclidean distances, and the
time of one jitted call. The figure shows the roll coloured by the position along the
spiral, and its embedding with the same colours.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust.graph import heat_geodesic_embedding, pairwise_sq_dists

if TYPE_CHECKING:
    from jaxclust.demo import DemoContext

__all__ = ["run", "swiss_roll", "unroll"]


def swiss_roll(seed: int, n: int = 600):
    """Swiss roll points (float32), the spiral parameter and the true geodesic distances.

    ``t = 1.5 pi (1 + 2 u)``, ``x = (t cos t, 21 v, t sin t)`` with ``u, v`` uniform on
    [0, 1] (the formula of scikit-learn's ``make_swiss_roll``, no noise). The roll is
    developable: the geodesic between two points is the Euclidean distance of their
    (arc length, height) coordinates, arc length ``(t sqrt(1 + t^2) + asinh t) / 2``.
    """
    rng = np.random.default_rng(seed)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    x = np.stack([t * np.cos(t), 21 * rng.uniform(size=n), t * np.sin(t)], axis=1)
    s = 0.5 * (t * np.sqrt(1 + t**2) + np.arcsinh(t))
    u = np.stack([s, x[:, 1]], axis=1)
    g = np.sqrt(((u[:, None] - u[None]) ** 2).sum(-1))
    return x.astype(np.float32), t, g


def _spearman(d, g):
    from scipy.stats import spearmanr

    iu = np.triu_indices_from(g, 1)
    return float(spearmanr(d[iu], g[iu]).statistic)


def unroll(seed: int, n: int = 600, t: float = 10.0):
    """Embed a Swiss roll; returns points, spiral parameter, embedding and the correlations."""
    x, param, g = swiss_roll(seed, n)
    fn = jax.jit(lambda x: heat_geodesic_embedding(x, k=5, t=t, order=32, mds_iters=200))
    res = fn(jnp.asarray(x))
    jax.block_until_ready(res)
    start = time.perf_counter()
    res = fn(jnp.asarray(x))
    jax.block_until_ready(res)
    seconds = time.perf_counter() - start
    emb = np.asarray(res.embedding)
    scores = {
        "heat-geodesic distances": _spearman(np.asarray(res.distances), g),
        "2-D embedding": _spearman(np.sqrt(np.asarray(pairwise_sq_dists(emb))), g),
        "ambient Euclidean": _spearman(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)), g),
    }
    return x, param, emb, scores, seconds


def run(ctx: DemoContext) -> None:
    from rich.table import Table

    x, param, emb, scores, seconds = unroll(ctx.seed)
    table = Table(title=f"Swiss roll, n = {len(x)}: Spearman correlation with true geodesics")
    table.add_column("distances")
    table.add_column("Spearman", justify="right")
    for name, value in scores.items():
        table.add_row(name, f"{value:.3f}")
    ctx.console.print(table)
    ctx.console.print(f"heat_geodesic_embedding: {seconds:.2f} s per jitted call (CPU)")
    if ctx.out is not None:
        _plot(x, param, emb, scores, Path(ctx.out) / "graph_swiss_roll.png")


def _plot(x, param, emb, scores, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 4.5))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    ax.scatter(x[:, 0], x[:, 1], x[:, 2], c=param, cmap="viridis", s=6)
    ax.set_title("Swiss roll (colour: position along the spiral)")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.scatter(emb[:, 0], emb[:, 1], c=param, cmap="viridis", s=6)
    ax2.set_title(f"heat-geodesic embedding (Spearman {scores['2-D embedding']:.2f})")
    ax2.set_aspect("equal")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
