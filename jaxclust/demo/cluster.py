"""Demo section: every clustering method of ``jaxclust.cluster`` on real data sets.

Runs on three data sets that ship with scikit-learn (no download): iris (150 x 4, 3
species), wine (178 x 13, 3 cultivars), both standardised, and the 8x8 digits (1,797 x 64,
10 classes, pixels in ``[0, 1]``). Each method gets the true number of classes and one key;
the table reports clustering accuracy (best one-to-one matching), NMI (arithmetic
normalisation), ARI and the wall time of one call after compilation. The figure shows the
digits in 2-D (PCA) coloured by the clusters of several methods. A last line compares
Laplacian k-means (the SLK reference's defaults) with k-means on digits: the paper's claim
that the Laplacian term improves on the prototype term (0.822 vs 0.793 ACC at seed 0; five
seeds in ``benchmarks/results/laplacian.md``).

The functions are public so that ``examples/cluster_digits.py`` and notebooks can reuse them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust import cluster as jcl
from jaxclust._core.results import with_summary_repr
from jaxclust.demo import _pyplot
from jaxclust.metrics import ari, clustering_accuracy, nmi

if TYPE_CHECKING:
    from rich.console import Console

    from jaxclust.demo import DemoContext

__all__ = ["DataSet", "MethodRun", "evaluate", "load_datasets", "methods", "plot_embedding",
           "print_table", "run"]


@with_summary_repr
class DataSet(NamedTuple):
    """A labelled data set: points ``x`` (float32), classes ``y`` and the number of classes."""

    name: str
    x: jax.Array
    y: np.ndarray
    k: int


@with_summary_repr
class MethodRun(NamedTuple):
    """One method on one data set: predicted labels, scores and time (one call, compiled)."""

    dataset: str
    method: str
    labels: np.ndarray
    acc: float
    nmi: float
    ari: float
    seconds: float


def load_datasets(names: tuple[str, ...] = ("iris", "wine", "digits")) -> list[DataSet]:
    """Iris and wine standardised (zero mean, unit variance per feature); digits in [0, 1]."""
    from sklearn import datasets

    out = []
    for name in names:
        bunch = getattr(datasets, f"load_{name}")()
        x = np.asarray(bunch.data, np.float64)
        if name == "digits":
            x = x / 16.0
        else:
            x = (x - x.mean(0)) / x.std(0)
        y = np.asarray(bunch.target)
        out.append(DataSet(name, jnp.asarray(x, jnp.float32), y, int(y.max()) + 1))
    return out


def _mean_var(x):
    return float(jnp.mean(jnp.var(x, axis=0)))


def methods() -> dict[str, Callable[[jax.Array, int, jax.Array], jax.Array]]:
    """The methods of the demo: ``fn(x, k, key) -> labels``, each jittable (``k`` static).

    Temperatures and regularisations are set relative to the data's mean per-feature
    variance ``s2`` (scale-free choices, the same for every data set).
    """

    def kmeans(x, k, key):
        return jcl.kmeans(x, k, key=key, n_init=10).labels

    def minibatch(x, k, key):
        return jcl.minibatch_kmeans(x, k, key=key, batch_size=256, max_steps=200).labels

    def soft(x, k, key):
        # temperature in squared-distance units: a tenth of the total variance
        t = 0.1 * x.shape[1] * jnp.mean(jnp.var(x, axis=0))
        return jcl.soft_kmeans(x, k, temperature=t, key=key).labels

    def sinkhorn(x, k, key):
        return jcl.sinkhorn_kmeans(x, k, key=key).labels

    out = {"k-means": kmeans, "mini-batch k-means": minibatch, "soft k-means": soft,
           "Sinkhorn k-means": sinkhorn}
    extra = _optional_methods()
    out.update(extra)
    return out


def _optional_methods():
    """Methods whose modules may not be present in a partial install."""
    out = {}
    if hasattr(jcl, "kmedoids"):
        out["k-medoids (FasterPAM)"] = lambda x, k, key: jcl.kmedoids(x, k, key=key).labels
    if hasattr(jcl, "gmm"):
        out["GMM (diag)"] = lambda x, k, key: jcl.gmm(
            x, k, key=key, covariance_type="diag").responsibilities.argmax(1)
    if hasattr(jcl, "spectral"):
        out["spectral (kNN)"] = lambda x, k, key: jcl.spectral(
            x, k, key=key, affinity="knn").labels
    if hasattr(jcl, "laplacian_kmeans"):
        out["Laplacian k-means"] = lambda x, k, key: jcl.laplacian_kmeans(
            x, k, key=key).labels
    return out


def evaluate(datasets: list[DataSet], seed: int = 0,
             only: tuple[str, ...] | None = None) -> list[MethodRun]:
    """Run every method on every data set (compiled once, then timed on a second call)."""
    runs = []
    key = jax.random.key(seed)
    for ds in datasets:
        for name, fn in methods().items():
            if only is not None and name not in only:
                continue
            f = jax.jit(fn, static_argnums=1)
            jax.block_until_ready(f(ds.x, ds.k, key))
            start = time.perf_counter()
            labels = np.asarray(jax.block_until_ready(f(ds.x, ds.k, key)))
            seconds = time.perf_counter() - start
            y = jnp.asarray(ds.y)
            lp = jnp.asarray(labels)
            runs.append(MethodRun(
                ds.name, name, labels, clustering_accuracy(ds.y, labels),
                float(nmi(y, lp, n_true=ds.k, n_pred=ds.k)),
                float(ari(y, lp, n_true=ds.k, n_pred=ds.k)), seconds))
    return runs


def print_table(console: Console, runs: list[MethodRun]) -> None:
    """One table per data set: ACC / NMI / ARI (in %) and milliseconds per call."""
    from rich import box
    from rich.table import Table

    for ds in dict.fromkeys(r.dataset for r in runs):
        rows = [r for r in runs if r.dataset == ds]
        best = max(r.acc for r in rows)
        table = Table(title=f"{ds}", box=box.SIMPLE_HEAD)
        for col, just in (("method", "left"), ("ACC %", "right"), ("NMI %", "right"),
                          ("ARI %", "right"), ("ms", "right")):
            table.add_column(col, justify=just)
        for r in rows:
            acc = f"{100 * r.acc:.1f}"
            table.add_row(r.method, f"[bold]{acc}" if r.acc == best else acc,
                          f"{100 * r.nmi:.1f}", f"{100 * r.ari:.1f}", f"{1e3 * r.seconds:.1f}")
        console.print(table)
    console.print("[dim]ACC: best one-to-one matching (Hungarian); NMI: arithmetic-mean "
                  "normalisation (scikit-learn's default); ms: one call after compilation.")



def _matched(y, labels):
    """Relabel clusters by their Hungarian match to the classes (same colours as the truth)."""
    from scipy.optimize import linear_sum_assignment

    k = int(max(y.max(), labels.max())) + 1
    table = np.zeros((k, k))
    np.add.at(table, (labels, y), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.arange(k)
    mapping[rows] = cols
    return mapping[labels]


def laplacian_note(runs: list[MethodRun], dataset: str = "digits") -> str | None:
    """One line comparing Laplacian k-means with k-means on ``dataset`` (ACC), or ``None``
    when either did not run."""
    acc = {r.method: r.acc for r in runs if r.dataset == dataset}
    if "Laplacian k-means" not in acc or "k-means" not in acc:
        return None
    lap, km = acc["Laplacian k-means"], acc["k-means"]
    verdict = "improves on" if lap > km else "does not improve on"
    return (f"{dataset}: Laplacian k-means (SLK defaults: CL2N features, 5-NN graph, "
            f"k-means start) ACC {100 * lap:.1f}% vs k-means {100 * km:.1f}%: the Laplacian "
            f"term {verdict} k-means.")


def plot_embedding(ds: DataSet, runs: list[MethodRun], path: str | Path) -> Path:
    """The data set in 2-D (top two principal axes), one panel per method plus the truth;
    clusters are coloured as the class they are matched to (Hungarian matching)."""
    plt = _pyplot()
    x = np.asarray(ds.x, np.float64)
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    z = xc @ vt[:2].T
    panels = [("classes", ds.y)] + [(r.method + f"  (ACC {100 * r.acc:.1f}%)",
                                     _matched(ds.y, r.labels)) for r in runs
                                    if r.dataset == ds.name]
    cols = 3
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, (title, lab) in zip(axes.ravel(), panels):
        ax.scatter(z[:, 0], z[:, 1], c=lab, cmap="tab10", s=6, linewidths=0)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC1", fontsize=8)
        ax.set_ylabel("PC2", fontsize=8)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{ds.name}: PCA projection coloured by cluster", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run(ctx: DemoContext) -> None:
    """The demo section: all methods on iris, wine and digits; the digits figure."""
    datasets = load_datasets()
    runs = evaluate(datasets, seed=ctx.seed)
    print_table(ctx.console, runs)
    note = laplacian_note(runs)
    if note is not None:
        ctx.console.print(note)
    if ctx.out is not None:
        digits = next(d for d in datasets if d.name == "digits")
        path = plot_embedding(digits, runs, ctx.out / "cluster_digits.png")
        ctx.console.print(f"saved {path}")
