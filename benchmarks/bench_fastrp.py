"""FastRP node embeddings vs an eigendecomposition embedding on stochastic block models.

    python benchmarks/bench_fastrp.py                 # writes benchmarks/results/fastrp.md
    python benchmarks/bench_fastrp.py --seeds 1 --out /tmp/fastrp.md

The claim (Chen et al. 2019, "Fast and Accurate Network Embeddings via Very Sparse Random
Projection"): FastRP's embeddings (very sparse random projections of powers of the
transition matrix, degree-reweighted) are as useful as those of much costlier methods, at
a fraction of their time. Peer-free check, one process, same graphs:

* data: stochastic block model, 5 blocks of ``--block`` nodes, ``p_in`` / ``p_out`` as
  stated in the output (generated here with NumPy);
* ``jaxclust.graph.fastrp`` with dim 64 (and 512, the paper's), 4 powers with equal weights ``(1, 1, 1, 1)``,
  ``alpha = -0.5``, no row normalisation (chosen once, not tuned per graph), and the same
  with one power only (``weights=(1,)``: a plain random projection of ``D^-1 A``);
* the eigendecomposition baseline (Laplacian eigenmaps / spectral embedding): the top 5
  eigenvectors of ``D^-1/2 A D^-1/2`` by ``jnp.linalg.eigh`` (a full ``O(n^3)``
  decomposition, as a dense library computes it);
* the paper's evaluation, node classification: scikit-learn ``LogisticRegression`` trained
  on the standardised embeddings of 10% of the nodes (random, per seed), accuracy on the other 90%;
* and unsupervised: each embedding clustered by ``cluster.kmeans(n_init=10)``, ACC
  (Hungarian) and NMI of the blocks;
* mean +- std over seeds; time of the embedding alone (jitted, compiled and warmed up
  first, median of 3 interleaved runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_lines, md_table  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from jaxclust.cluster import kmeans  # noqa: E402
from jaxclust.graph import fastrp  # noqa: E402
from jaxclust.metrics.clustering import clustering_accuracy, nmi  # noqa: E402


def sbm(seed, block, p_in, p_out, k=5):
    rng = np.random.default_rng(seed)
    lab = np.repeat(np.arange(k), block)
    p = np.where(lab[:, None] == lab[None], p_in, p_out)
    a = np.triu(rng.uniform(size=p.shape) < p, 1).astype(np.float32)
    return a + a.T, lab


@jax.jit
def spectral_embedding(a):
    d = jnp.maximum(a.sum(1), 1e-12) ** -0.5
    _, vec = jnp.linalg.eigh(d[:, None] * a * d[None, :])
    return vec[:, -5:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--block", type=int, default=300)
    ap.add_argument("--p-in", type=float, default=0.05)
    ap.add_argument("--p-out", type=float, default=0.01)
    ap.add_argument("--out", default=str(HERE / "results" / "fastrp.md"))
    args = ap.parse_args()
    key = jax.random.key(0)
    methods = {
        "FastRP, dim 64, 4 powers (1, 1, 1, 1), alpha -0.5": jax.jit(
            lambda a: fastrp(a, key, weights=(1.0, 1.0, 1.0, 1.0), dim=64, alpha=-0.5)),
        "FastRP, dim 512, 4 powers (1, 1, 1, 1), alpha -0.5": jax.jit(
            lambda a: fastrp(a, key, weights=(1.0, 1.0, 1.0, 1.0), dim=512, alpha=-0.5)),
        "random projection of D^-1 A (1 power)": jax.jit(
            lambda a: fastrp(a, key, weights=(1.0,), dim=64, alpha=-0.5)),
        "spectral embedding (eigh, top 5)": spectral_embedding,
    }
    res = {m: [] for m in methods}
    for s in range(args.seeds):
        a, y = sbm(s, args.block, args.p_in, args.p_out)
        a = jnp.asarray(a)
        embs = {m: f(a).block_until_ready() for m, f in methods.items()}   # compile + warm-up
        times = {m: [] for m in methods}
        for _ in range(3):
            for m, f in methods.items():
                t0 = time.perf_counter()
                f(a).block_until_ready()
                times[m].append(time.perf_counter() - t0)
        train = np.random.default_rng(100 + s).uniform(size=len(y)) < 0.1
        for m, e in embs.items():
            lab = np.asarray(kmeans(e, 5, key=jax.random.key(s), n_init=10).labels)
            en = np.asarray(e, np.float64)
            en = (en - en.mean(0)) / np.maximum(en.std(0), 1e-12)   # standardised, as FastRP's
            clf = LogisticRegression(max_iter=2000).fit(en[train], y[train])
            res[m].append((float(np.mean(clf.predict(en[~train]) == y[~train])),
                           clustering_accuracy(y, lab), float(nmi(y, lab)),
                           float(np.median(times[m]))))
            print(f"seed {s} {m}: {np.round(res[m][-1], 3)}", flush=True)
    rows = []
    for m, vals in res.items():
        v = np.array(vals)
        rows.append([m] + [f"{100 * v[:, i].mean():.1f} ± {100 * v[:, i].std():.1f}"
                           for i in range(3)] + [f"{1e3 * np.median(v[:, 3]):.0f} ms"])
    n = 5 * args.block
    lines = ["# FastRP vs a spectral embedding (stochastic block models)", "",
             *machine_lines(("jax", "numpy")), "",
             f"Script: `benchmarks/bench_fastrp.py` (its docstring states the protocol). SBM "
             f"with 5 blocks of {args.block} nodes (n = {n}), p_in = {args.p_in}, p_out = "
             f"{args.p_out}; node classification: logistic regression trained on 10% of the nodes, "
             f"accuracy on the rest; clustering: k-means (n_init 10) on each embedding, ACC / "
             f"NMI; in %, mean ± std "
             f"over {args.seeds} seeds; time: the embedding alone, after compilation (median).",
             "", md_table(["embedding", "node classification acc", "k-means ACC", "k-means NMI",
                             "time"], rows), ""]
    print("\n".join(lines), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
