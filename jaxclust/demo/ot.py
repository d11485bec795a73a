"""Demo section: entropic optimal transport between two classes of handwritten digits.

Takes 100 images of 3s and 100 images of 8s from scikit-learn's digits (64 pixels in
``[0, 1]``), and transports the 3s onto the 8s under the squared Euclidean cost with
[`jaxclust.ot.sinkhorn`][jaxclust.ot.sinkhorn] in three flavours:

- **balanced**: both marginals are matched exactly;
- **unbalanced**: marginals relaxed by a KL penalty of strength ``rho``
  (``tau = rho / (rho + epsilon)``), so atypical images may keep part of their mass;
- **partial**: only a total mass of 0.7 is moved, the cheapest 70% of the matching.

The functions are public so that ``examples/ot_digits.py`` and notebooks can reuse them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxclust._core.results import with_summary_repr
from jaxclust.data import load_digits_classes
from jaxclust.demo import _pyplot
from jaxclust.ot import default_epsilon, sinkhorn

if TYPE_CHECKING:
    from rich.console import Console

    from jaxclust.demo import DemoContext

__all__ = [
    "OTRun",
    "digits_clouds",
    "pca_2d",
    "plot_links",
    "plot_plans",
    "print_table",
    "run",
    "solve_variants",
]


@with_summary_repr
class OTRun(NamedTuple):
    """One solved variant of the digits transport problem.

    Attributes:
        name: ``"balanced"``, ``"unbalanced"`` or ``"partial"``.
        epsilon: the entropic regularisation used (absolute, in cost units).
        result: the [`SinkhornResult`][jaxclust.ot.SinkhornResult].
        seconds: wall time of one call after compilation.
        marginal_error: how far the plan is from its constraints (see
            [`solve_variants`][jaxclust.demo.ot.solve_variants]).
        mass: total mass of the plan.
        note: a few words on the variant's parameters.
    """

    name: str
    epsilon: float
    result: Any
    seconds: float
    marginal_error: float
    mass: float
    note: str


def digits_clouds(
    seed: int = 0, classes: tuple[int, int] = (3, 8), n_per_class: int = 100
) -> tuple[Float[Array, "n 64"], Float[Array, "m 64"]]:
    """Two point clouds of digit images, one per class, pixels scaled to ``[0, 1]``."""
    x, labels = load_digits_classes(classes, n_per_class, seed=seed)
    return x[labels == classes[0]], x[labels == classes[1]]


def _timed(fn, *args) -> tuple[Any, float]:
    jax.block_until_ready(fn(*args))  # compile and warm up
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def solve_variants(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    mass: float = 0.7,
    tol: float = 1e-4,
) -> list[OTRun]:
    """Solve the balanced, unbalanced and partial problems between ``x`` and ``y``.

    Weights are uniform. The marginal error of each run measures the violation of the
    constraints that variant enforces exactly:

    - balanced: ``|P 1 - a|_1 + |P^T 1 - b|_1``;
    - unbalanced: the same L1 deviation, which the KL relaxation *allows* (it is the mass
      the solver chose not to move, not a failure);
    - partial: ``|<P, 1> - m| + |(P 1 - a)_+|_1 + |(P^T 1 - b)_+|_1``.

    Args:
        x: source points, shape ``(n, d)``.
        y: target points, shape ``(m, d)``.
        epsilon: entropic regularisation; ``None`` uses
            [`default_epsilon`][jaxclust.ot.default_epsilon].
        rho: KL penalty strength of the unbalanced run; ``None`` uses the mean cost, a
            scale at which the most isolated images keep part of their mass.
        mass: transported mass of the partial run, in ``(0, 1]``.
        tol: Sinkhorn tolerance on the L1 marginal error.

    Returns:
        One [`OTRun`][jaxclust.demo.ot.OTRun] per variant.
    """
    n, m = x.shape[0], y.shape[0]
    a = jnp.full((n,), 1.0 / n, dtype=x.dtype)
    b = jnp.full((m,), 1.0 / m, dtype=y.dtype)
    eps = float(default_epsilon(x, y)) if epsilon is None else float(epsilon)
    if rho is None:
        sq = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        rho = float(jnp.mean(sq))
    tau = rho / (rho + eps)

    opts = dict(epsilon=eps, tol=tol)
    balanced = jax.jit(lambda x, y: sinkhorn(x, y, a, b, **opts))
    unbalanced = jax.jit(lambda x, y: sinkhorn(x, y, a, b, tau_a=tau, tau_b=tau, **opts))
    partial = jax.jit(lambda x, y: sinkhorn(x, y, a, b, mass=mass, **opts))

    runs = []
    for name, fn, note in (
        ("balanced", balanced, "P1 = a, P^T1 = b"),
        ("unbalanced", unbalanced, f"rho = {rho:.3g}, tau = {tau:.3f}"),
        ("partial", partial, f"mass m = {mass:g}"),
    ):
        res, seconds = _timed(fn, x, y)
        plan = res.plan
        row, col = plan.sum(axis=1), plan.sum(axis=0)
        total = float(plan.sum())
        if name == "partial":
            err = (
                abs(total - mass)
                + float(jnp.sum(jnp.maximum(row - a, 0.0)))
                + float(jnp.sum(jnp.maximum(col - b, 0.0)))
            )
        else:
            err = float(jnp.sum(jnp.abs(row - a)) + jnp.sum(jnp.abs(col - b)))
        runs.append(OTRun(name, eps, res, seconds, err, total, note))
    return runs


def print_table(console: Console, runs: list[OTRun]) -> None:
    """Print one row per run: iterations, convergence, marginal error, cost and time."""
    from rich import box
    from rich.table import Table

    n, m = runs[0].result.f.shape[0], runs[0].result.g.shape[0]
    table = Table(title=f"Sinkhorn on digits ({n} x {m}, squared Euclidean cost)",
                  box=box.SIMPLE_HEAD)
    table.add_column("problem")
    table.add_column("epsilon", justify="right")
    table.add_column("iters", justify="right")
    table.add_column("conv.", justify="center")
    table.add_column("marg. err", justify="right")
    table.add_column("mass", justify="right")
    table.add_column("<P,C>", justify="right")
    table.add_column("ms", justify="right")
    for r in runs:
        ok = bool(r.result.converged)
        table.add_row(
            r.name,
            f"{r.epsilon:.3g}",
            str(int(r.result.n_iters)),
            "[green]yes" if ok else "[red]no",
            f"{r.marginal_error:.1e}",
            f"{r.mass:.3f}",
            f"{float(r.result.linear_cost):.3f}",
            f"{1e3 * r.seconds:.1f}",
        )
    console.print(table)
    console.print("[dim]" + "; ".join(f"{r.name}: {r.note}" for r in runs))
    console.print(
        "[dim]marg. err: L1 distance to the marginals (for unbalanced, the mass the KL "
        "relaxation chose not to move), or for partial the violation of P1 <= a, P^T1 <= b, "
        "<P,1> = m. ms: one call after compilation."
    )


def pca_2d(*clouds: Float[Array, "n d"]) -> list[np.ndarray]:
    """Project several clouds onto the top two principal axes of their union."""
    arrays = [np.asarray(c, dtype=np.float64) for c in clouds]
    joint = np.concatenate(arrays, axis=0)
    mean = joint.mean(axis=0)
    _, _, vt = np.linalg.svd(joint - mean, full_matrices=False)
    return [(c - mean) @ vt[:2].T for c in arrays]


def _orders(x, plan) -> tuple[np.ndarray, np.ndarray]:
    """Rows by first principal component; columns by their plan-weighted mean row rank."""
    (px,) = pca_2d(x)
    rows = np.argsort(px[:, 0])
    rank = np.empty_like(rows)
    rank[rows] = np.arange(rows.size)
    plan = np.asarray(plan, dtype=np.float64)
    mean_rank = (rank @ plan) / np.maximum(plan.sum(axis=0), 1e-300)
    return rows, np.argsort(mean_rank)


def plot_plans(x, y, runs: list[OTRun], path: str | Path) -> Path:
    """Heatmaps of the plans, with rows and columns sorted to show their structure.

    Rows (source points) are sorted by their first principal component, columns (target
    points) by the mean rank of the rows they receive mass from under the first plan, the
    same order in every panel. Entries are shown as ``n * m * P_ij`` (1 is the independent
    coupling), on a square-root colour scale shared by all panels.
    """
    plt = _pyplot()
    from matplotlib.colors import PowerNorm

    ox, oy = _orders(x, runs[0].result.plan)
    n, m = x.shape[0], y.shape[0]
    plans = [np.asarray(r.result.plan)[np.ix_(ox, oy)] * n * m for r in runs]
    vmax = max(float(p.max()) for p in plans)
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 4.2), squeeze=False)
    for ax, r, p in zip(axes[0], runs, plans):
        im = ax.imshow(p, cmap="magma_r", norm=PowerNorm(0.5, vmin=0.0, vmax=vmax),
                       interpolation="nearest", aspect="auto")
        ax.set_title(f"{r.name}  (mass {r.mass:.2f})")
        ax.set_xlabel("8s, sorted by matched 3s")
        ax.set_ylabel("3s, sorted by PC1")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label=r"$n\,m\,P_{ij}$")
    fig.suptitle(f"Entropic OT plans, epsilon = {runs[0].epsilon:.3g}")
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_links(x, y, runs: list[OTRun], path: str | Path, *, n_links: int = 150) -> Path:
    """Both clouds in 2-D PCA with the ``n_links`` strongest plan entries drawn as segments.

    Points that send (or receive) less than half of their weight are drawn hollow: in the
    unbalanced and partial plans these are the images left out of the matching.
    """
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    px, py = pca_2d(x, y)
    n, m = x.shape[0], y.shape[0]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 4.4), squeeze=False,
                             sharex=True, sharey=True)
    for ax, r in zip(axes[0], runs):
        plan = np.asarray(r.result.plan, dtype=np.float64)
        flat = np.argsort(plan, axis=None)[::-1][:n_links]
        i, j = np.unravel_index(flat, plan.shape)
        w = plan[i, j] / plan[i, j].max()
        segs = np.stack([px[i], py[j]], axis=1)
        colors = np.zeros((len(w), 4))
        colors[:, 3] = 0.15 + 0.6 * w
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.5 + 1.2 * w))
        sent = plan.sum(axis=1) * n >= 0.5
        recv = plan.sum(axis=0) * m >= 0.5
        for pts, full, color, label in ((px, sent, "tab:blue", "3s"),
                                        (py, recv, "tab:orange", "8s")):
            ax.scatter(*pts[full].T, s=16, color=color, label=label, zorder=3)
            ax.scatter(*pts[~full].T, s=16, facecolors="none", edgecolors=color, zorder=3,
                       label=f"{label} (mostly not moved)" if (~full).any() else None)
        ax.set_title(f"{r.name}: top {n_links} links (mass {r.mass:.2f})")
        ax.set_xlabel("PC1")
    axes[0][0].set_ylabel("PC2")
    handles: dict = {}  # one legend for the figure, below the panels (none covers points)
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles),
               fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Digits 3 -> 8 in the first two principal components")
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def run(ctx: DemoContext) -> None:
    """The ``ot`` section of ``jaxclust demo``."""
    x, y = digits_clouds(ctx.seed)
    ctx.console.print(
        f"digits 3 vs 8 from scikit-learn: x {tuple(x.shape)}, y {tuple(y.shape)}, "
        f"pixels in [0, 1], backend {jax.default_backend()}"
    )
    runs = solve_variants(x, y)
    print_table(ctx.console, runs)
    if ctx.out is not None:
        p1 = plot_plans(x, y, runs, ctx.out / "ot_plans.png")
        p2 = plot_links(x, y, runs, ctx.out / "ot_links.png")
        ctx.console.print(f"saved {p1} and {p2}")
