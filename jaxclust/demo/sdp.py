"""Demo section: SDP relaxations of clustering.

Two experiments, each on generated data (nothing is downloaded):

1. **Exact recovery through the threshold.** Three unit-variance Gaussian clusters in
   d = 5 (n = 150, balanced) whose centres are ``sep`` sigma apart, for ``sep`` from 2 to 8:
   the k-means SDP (Burer–Monteiro) recovers the membership matrix $Z^*$ of the true
   partition once the separation passes the threshold and degrades gracefully below it.
   Reported per separation: the fraction of seeds with exact recovery ($\\lVert Z - Z^*
   \\rVert_F / \\lVert Z^*\\rVert_F < 10^{-2}$), the mean relative error and the ARI.
2. **Heterogeneous clusters.** [`heterogeneous_mixture`][jaxclust.demo.sdp.heterogeneous_mixture]:
   one wide isotropic cluster and two tight elongated ones in d = 10, where k-means and the
   k-means SDP (which assume equal spherical clusters) cut the wide cluster, EM with full
   covariances is right unless its start traps it, and iLA-SDP (likelihood-adjusted SDP)
   fixes both. Reported: mean mis-clustering error over seeds (1 - ACC with the best
   one-to-one matching) and time per call after compilation.

The figure shows both tables (recovery curve; mean and worst-seed error per method) and,
below, one heterogeneous sample (the last seed, labelled) coloured by each method.
The functions are public so that ``benchmarks/bench_sdp.py`` and the tests reuse them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust._core.results import with_summary_repr
from jaxclust.cluster import gmm, kmeans
from jaxclust.metrics import ari, clustering_accuracy
from jaxclust.sdp import BurerMonteiro, kmeans_sdp, la_sdp, membership_matrix

if TYPE_CHECKING:
    from rich.console import Console

    from jaxclust.demo import DemoContext

__all__ = ["RecoveryRow", "compare_heterogeneous", "heterogeneous_mixture",
           "homogeneous_mixture", "plot", "print_tables", "recovery_sweep", "run"]

METHODS = ("k-means", "k-means SDP", "EM (full)", "iLA-SDP")


def homogeneous_mixture(seed: int, n: int = 150, sep: float = 6.0, d: int = 5, k: int = 3):
    """``k`` unit-variance spherical Gaussians in ``d`` dimensions with centres pairwise
    ``sep`` apart (balanced). Returns float32 points and int labels."""
    rng = np.random.default_rng(seed)
    centres = sep / np.sqrt(2.0) * np.eye(k, d)
    labels = np.arange(n) % k
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def heterogeneous_mixture(seed: int, n: int = 300, d: int = 10, sep: float = 4.0):
    """Three Gaussians of different shapes (balanced, ``n // 3`` points each).

    Cluster 0 is wide and isotropic (standard deviation 2.5), centred at the origin;
    clusters 1 and 2 are tight and elongated (standard deviation 0.5 along one random
    direction, 0.15 across), centred ``sep`` along the first and second axes. Returns
    float32 points ``(n, d)`` and int labels.
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, d))
    centres[1, 0] = centres[2, 1] = sep
    xs, ys = [], []
    for j in range(3):
        q = np.linalg.qr(rng.normal(size=(d, d)))[0]
        ev = 2.5 * np.ones(d) if j == 0 else 0.5 * np.r_[1.0, 0.3 * np.ones(d - 1)]
        cov = q @ np.diag(ev**2) @ q.T
        xs.append(rng.multivariate_normal(centres[j], cov, size=n // 3))
        ys += [j] * (n // 3)
    return np.concatenate(xs).astype(np.float32), np.array(ys)


@with_summary_repr
class RecoveryRow(NamedTuple):
    """The k-means SDP at one separation, over seeds."""

    sep: float
    rate: float  # fraction of seeds with relative error to Z* below 1e-2
    error: float  # mean relative Frobenius error to Z*
    ari: float  # mean ARI of the rounded labels


def recovery_sweep(seps=(2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0), seeds=range(5),
                   n: int = 150) -> list[RecoveryRow]:
    """Exact recovery of the k-means SDP (``BurerMonteiro``) across separations."""
    solve = jax.jit(lambda x, key: kmeans_sdp(x, 3, solver=BurerMonteiro(), key=key))
    rows = []
    for sep in seps:
        errs, aris = [], []
        for seed in seeds:
            x, y = homogeneous_mixture(seed, n=n, sep=sep)
            res = solve(jnp.asarray(x), jax.random.key(seed))
            zs = np.asarray(membership_matrix(jnp.asarray(y), 3), np.float64)
            u = np.asarray(res.stats.factor, np.float64)
            errs.append(np.linalg.norm(u @ u.T - zs) / np.linalg.norm(zs))
            aris.append(float(ari(jnp.asarray(y), res.labels)))
        errs = np.asarray(errs)
        rows.append(RecoveryRow(float(sep), float(np.mean(errs < 1e-2)), float(errs.mean()),
                                float(np.mean(aris))))
    return rows


def _solvers():
    return {
        "k-means": jax.jit(lambda x, key: kmeans(x, 3, key=key).labels),
        "k-means SDP": jax.jit(lambda x, key: kmeans_sdp(x, 3, solver=BurerMonteiro(),
                                                         key=key).labels),
        "EM (full)": jax.jit(lambda x, key: gmm(x, 3, key=key).labels),
        "iLA-SDP": jax.jit(lambda x, key: la_sdp(x, 3, key=key).labels),
    }


def compare_heterogeneous(seeds=range(5), n: int = 300, d: int = 10, sep: float = 4.0,
                          ) -> dict[str, dict[str, np.ndarray]]:
    """Mis-clustering error and time of each method on ``heterogeneous_mixture`` samples.

    Returns ``{method: {"error": (n_seeds,), "seconds": (n_seeds,), "labels": last}}``;
    every method gets the same key per seed and is compiled before it is timed.
    """
    solvers = _solvers()
    out = {m: {"error": [], "seconds": []} for m in solvers}
    warm = jnp.asarray(heterogeneous_mixture(0, n=n, d=d, sep=sep)[0])
    for fn in solvers.values():  # compile once per method (same shapes for every seed)
        jax.block_until_ready(fn(warm, jax.random.key(0)))
    for seed in seeds:
        x, y = heterogeneous_mixture(seed, n=n, d=d, sep=sep)
        x = jnp.asarray(x)
        for name, fn in solvers.items():
            t0 = time.perf_counter()
            labels = np.asarray(jax.block_until_ready(fn(x, jax.random.key(seed))))
            out[name]["seconds"].append(time.perf_counter() - t0)
            out[name]["error"].append(1.0 - float(clustering_accuracy(y, labels)))
            out[name]["labels"] = labels
    return {m: {k: np.asarray(v) for k, v in r.items()} for m, r in out.items()}


def print_tables(console: Console, rows: list[RecoveryRow], comp: dict) -> None:
    """The recovery sweep and the heterogeneous comparison as rich tables."""
    from rich.table import Table

    t = Table(title="k-means SDP (Burer-Monteiro): exact recovery, K = 3, d = 5, n = 150")
    for col in ("separation (sigma)", "exact recovery", "rel. error to Z*", "ARI"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(f"{r.sep:g}", f"{100 * r.rate:.0f}%", f"{r.error:.1e}", f"{r.ari:.3f}")
    console.print(t)
    n_seeds = len(next(iter(comp.values()))["error"])
    t = Table(title=f"Heterogeneous clusters (d = 10, n = 300, {n_seeds} seeds)")
    for col in ("method", "mis-clustering error (mean)", "worst seed", "ms / call"):
        t.add_column(col, justify="right")
    best = min(float(r["error"].mean()) for r in comp.values())
    for m, r in comp.items():
        e = f"{100 * r['error'].mean():.1f}%"
        t.add_row(m, f"[bold]{e}" if float(r["error"].mean()) == best else e,
                  f"{100 * r['error'].max():.1f}%", f"{1e3 * np.median(r['seconds']):.1f}")
    console.print(t)


def plot(rows: list[RecoveryRow], comp: dict, path: str | Path, *, seed: int) -> Path:
    """What the tables show, and one sample. Top left: exact-recovery rate and ARI against
    separation (means over the sweep's seeds, the first table). Top right: mis-clustering
    error of each method on the heterogeneous clusters, mean over seeds with the worst seed
    marked (the second table). Bottom: the heterogeneous sample of ``seed`` (the seed whose
    labels ``comp`` holds: the last one) coloured by each method, each panel titled with
    that seed's error, which can differ from the mean above (EM's start may trap it on
    another seed)."""
    from jaxclust.demo import _pyplot
    from jaxclust.demo.cluster import _matched

    plt = _pyplot()
    x, y = heterogeneous_mixture(seed)
    n_seeds = len(next(iter(comp.values()))["error"])
    fig = plt.figure(figsize=(3.4 * len(comp), 7.0), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.0, 1.15))
    half = len(comp) // 2
    top_axes = top.subplots(1, 2, width_ratios=(half, len(comp) - half))
    ax = top_axes[0]
    seps = [r.sep for r in rows]
    ax.plot(seps, [r.rate for r in rows], "o-", label="exact recovery rate")
    ax.plot(seps, [r.ari for r in rows], "s--", label="ARI (mean)")
    ax.set_xlabel("centre separation (sigma)")
    ax.set_ylabel("rate / ARI")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("k-means SDP, K = 3, d = 5, n = 150: exact recovery "
                 "(first table, means over seeds)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax = top_axes[1]
    names = list(comp)
    means = [100 * float(comp[m]["error"].mean()) for m in names]
    worst = [100 * float(comp[m]["error"].max()) for m in names]
    ax.bar(names, means, color="tab:blue", label=f"mean over {n_seeds} seeds")
    ax.plot(names, worst, "v", color="tab:red", label="worst seed")
    for i, v in enumerate(means):
        ax.annotate(f"{v:.1f}%", (i, v), ha="right", va="bottom", fontsize=8,
                    xytext=(-6, 2), textcoords="offset points")
    ax.set_ylabel("mis-clustering error (%)")
    ax.set_ylim(0, max(worst + [1.0]) * 1.2)
    ax.set_title(f"heterogeneous clusters, d = 10, n = 300: {n_seeds} seeds (second table)",
                 fontsize=9)
    ax.legend(fontsize=8)
    bottom.suptitle(f"one sample: seed {seed} only (the last of the {n_seeds} seeds above), "
                    "first two coordinates (where the centres lie), coloured by each method",
                    fontsize=9, style="italic")
    for j, (ax, (m, r)) in enumerate(zip(bottom.subplots(1, len(comp)), comp.items())):
        ax.scatter(x[:, 0], x[:, 1], c=_matched(y, r["labels"]), cmap="tab10", s=6,
                   vmin=0, vmax=9, linewidths=0)
        err = 1.0 - float(clustering_accuracy(y, r["labels"]))
        ax.set_title(f"{m}: error {100 * err:.0f}% on seed {seed}", fontsize=9)
        ax.set_xlabel("$x_1$")
        if j == 0:
            ax.set_ylabel("$x_2$")
        ax.tick_params(labelsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run(ctx: DemoContext) -> None:
    """The demo section: the recovery sweep, the heterogeneous comparison, the figure."""
    rows = recovery_sweep(seeds=range(ctx.seed, ctx.seed + 5))
    last = ctx.seed + 4
    comp = compare_heterogeneous(seeds=range(ctx.seed, last + 1))
    print_tables(ctx.console, rows, comp)
    ctx.console.print("[dim]error: 1 - ACC (best one-to-one matching); ms: median of one "
                      "call after compilation. The full 20-seed table is in "
                      "benchmarks/results/sdp.md.")
    if ctx.out is not None:
        path = plot(rows, comp, ctx.out / "sdp.png", seed=last)
        ctx.console.print(f"saved {path}")
