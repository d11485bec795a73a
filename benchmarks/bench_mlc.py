"""MLC (coding-rate clustering) vs k-means and k-subspaces, on unions of subspaces and digits.

    python benchmarks/bench_mlc.py                  # writes benchmarks/results/mlc.md
    python benchmarks/bench_mlc.py --seeds 2 --out /tmp/mlc.md

Claim (issue 19, from "Unsupervised Manifold Linearizing and Clustering", Ding et al. 2023):
on a union of low-dimensional subspaces, and on digits features, MLC clusters better than
k-means and ``diffusion.k_subspaces``. Methods, same data, one process:

* ``cluster.kmeans(x, k, key, n_init=10)``;
* ``diffusion.k_subspaces(x, k, d_sub, key, n_init=10)`` (the true subspace dimension);
* ``cluster.mlc(x, k, key=key)`` with its defaults (the reference's eps 0.1, eta 0.175, 5
  Sinkhorn half-steps, reg 0.05; 100 steps), and with ``steps=0`` (spectral clustering of
  the membership at the PCA initialisation: what the training adds).

Data: (a) 5 random 3-dim subspaces of R^20, 50 points each, Gaussian coefficients, isotropic
noise sigma in {0.05, 0.3}; (b) digits (scikit-learn, 8x8, 10 classes): 40 images per class
per seed (400), pixels / 16, PCA to 30 dims; k_subspaces with d_sub = 5, MLC with d = 16.
ACC (Hungarian) and NMI, mean +- std over seeds.
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

from jaxclust.cluster import kmeans, mlc  # noqa: E402
from jaxclust.diffusion import k_subspaces  # noqa: E402
from jaxclust.metrics.clustering import clustering_accuracy, nmi  # noqa: E402


def union(seed, noise, k=5, dim=20, d=3, m=50):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for j in range(k):
        u = np.linalg.qr(rng.normal(size=(dim, d)))[0]
        xs.append(rng.normal(size=(m, d)) @ u.T)
        ys += [j] * m
    x = np.concatenate(xs)
    x += noise * rng.normal(size=x.shape)
    return np.asarray(x, np.float32), np.asarray(ys)


def digits(seed, per_class=40, dim=30):
    from sklearn.datasets import load_digits

    dd = load_digits()
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.nonzero(dd.target == c)[0], per_class, replace=False)
                          for c in range(10)])
    x = dd.data[idx] / 16.0
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return np.asarray(x @ vt[:dim].T, np.float32), dd.target[idx]


def run(x, y, k, d_sub, d_mlc, seed):
    x = jnp.asarray(x)
    key = jax.random.key(seed)
    methods = {
        "k-means": lambda: kmeans(x, k, key=key, n_init=10).labels,
        "k-subspaces": lambda: k_subspaces(x, k, d_sub, key=key, n_init=10).labels,
        "MLC (PCA init, 0 steps)": lambda: mlc(x, k, key=key, d=d_mlc, steps=0).labels,
        "MLC (100 steps)": lambda: mlc(x, k, key=key, d=d_mlc).labels,
    }
    out = {}
    for name, fn in methods.items():
        t0 = time.perf_counter()
        lab = np.asarray(fn())
        out[name] = (clustering_accuracy(y, lab), float(nmi(y, lab)), time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "mlc.md"))
    args = ap.parse_args()
    lines = ["# MLC vs k-means and k-subspaces", "", *machine_lines(("jax", "numpy")), "",
             "Script: `benchmarks/bench_mlc.py` (its docstring states the protocol). ACC / NMI "
             f"in %, mean ± std over {args.seeds} seeds; time: one call incl. compilation.",
             ""]
    settings = [("union of 5 3-dim subspaces in R^20, noise 0.05", lambda s: union(s, 0.05), 5,
                 3, 20),
                ("union of 5 3-dim subspaces in R^20, noise 0.3", lambda s: union(s, 0.3), 5,
                 3, 20),
                ("digits, 400 images, PCA 30", digits, 10, 5, 16)]
    for title, make, k, d_sub, d_mlc in settings:
        res = {}
        for s in range(args.seeds):
            x, y = make(s)
            for name, v in run(x, y, k, d_sub, d_mlc, s).items():
                res.setdefault(name, []).append(v)
        rows = []
        for name, vals in res.items():
            a = np.array(vals)
            rows.append([name, f"{100 * a[:, 0].mean():.1f} ± {100 * a[:, 0].std():.1f}",
                         f"{100 * a[:, 1].mean():.1f} ± {100 * a[:, 1].std():.1f}",
                         f"{np.median(a[:, 2]):.2f} s"])
        lines += [f"## {title}", "", md_table(["method", "ACC", "NMI", "time"], rows), ""]
        print("\n".join(lines[-4:]), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
