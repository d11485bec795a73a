"""Heat-geodesic distances vs diffusion-map, PHATE-style and shortest-path distances.

    python benchmarks/bench_graph.py                  # writes benchmarks/results/graph.md
    python benchmarks/bench_graph.py --n 300 --seeds 1 --out /tmp/graph.md

The claim (Huguet et al. 2023, "A Heat Diffusion Perspective on Geodesic Preserving
Dimensionality Reduction"): heat-geodesic distances correlate with the true geodesic
distances of a manifold better than diffusion-based baselines. Data, generated here:

* **Swiss roll**: ``sklearn.datasets.make_swiss_roll(n, noise=0)``; the surface is
  developable, so the true geodesic is exact: arc length along the spiral
  ``s(t) = (t sqrt(1 + t^2) + asinh t) / 2`` and the height ``y``,
  ``g_ij = sqrt((s_i - s_j)^2 + (y_i - y_j)^2)``.
* **Sphere**: ``n`` uniform points on the unit sphere S^2, ``g_ij = arccos <x_i, x_j>``.

Every method uses the same alpha-decay graph (``jaxclust.graph.alpha_decay_graph``, k = 5,
decay = 40, the reference code's defaults). Methods (all but the first in NumPy, float64):

* heat-geodesic: ``jaxclust.graph.heat_geodesic_distances`` (float64, Chebyshev order
  ``max(32, t + 20)``; also with the Harnack correction rho = 0.5) and the distances of its 2-D ``mds`` embedding;
* diffusion maps: Euclidean distance between the diffusion coordinates ``lambda^t psi``
  (all nontrivial eigenvectors of the random-walk operator ``P = D^-1 W``);
* PHATE-style potential distance: Euclidean distance between rows of ``-log(P^t + 1e-7)``;
* shortest path (Isomap's geodesic estimate) on the kNN graph with Euclidean edge lengths,
  a non-diffusion reference;
* Euclidean distance in the ambient space.

Local clustering with noisy labels (Back de Luca, Fountoulakis, Yang 2023): on stochastic
block models with flipped node labels, ``local_cluster`` (personalised PageRank + sweep cut)
on the label-weighted graph vs on the original graph vs the labels alone; F1 of the target.

For each diffusion method the time ``t`` is swept over ``--times``; the table shows the best
time and, for heat-geodesic, also the reference default ``t = 10``. Correlations are over
all pairs ``i < j``: Pearson and Spearman, mean over ``--seeds`` seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.csgraph  # noqa: E402
from _common import machine_lines, md_table  # noqa: E402
from scipy.stats import pearsonr, spearmanr  # noqa: E402

import jaxclust.graph as jg  # noqa: E402


def swiss_roll(n, seed):
    from sklearn.datasets import make_swiss_roll

    x, t = make_swiss_roll(n, noise=0.0, random_state=seed)
    s = 0.5 * (t * np.sqrt(1 + t**2) + np.arcsinh(t))
    y = x[:, 1]
    g = np.sqrt((s[:, None] - s[None]) ** 2 + (y[:, None] - y[None]) ** 2)
    return x, g


def sphere(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    g = np.arccos(np.clip(x @ x.T, -1.0, 1.0))
    return x, g


def diffusion_map_dist(w, t):
    deg = w.sum(1)
    a = w / np.sqrt(deg[:, None] * deg[None])
    vals, vecs = np.linalg.eigh(a)
    psi = vecs / np.sqrt(deg)[:, None]
    coords = psi[:, :-1] * (np.abs(vals[:-1]) ** t)[None]  # drop the trivial eigenvector
    return np.sqrt(np.maximum(((coords[:, None] - coords[None]) ** 2).sum(-1), 0))


def phate_dist(w, t):
    p = w / w.sum(1, keepdims=True)
    pt = np.linalg.matrix_power(p, int(t))
    u = -np.log(pt + 1e-7)
    sq = (u * u).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * u @ u.T, 0))


def shortest_path_dist(x, k):
    from sklearn.neighbors import kneighbors_graph

    g = kneighbors_graph(x, k, mode="distance")
    return scipy.sparse.csgraph.shortest_path(g, directed=False)


def corr(d, g):
    iu = np.triu_indices_from(g, 1)
    a, b = d[iu], g[iu]
    ok = np.isfinite(a)
    return pearsonr(a[ok], b[ok]).statistic, spearmanr(a[ok], b[ok]).statistic


def run(dataset, n, seeds, times, order):
    make = {"Swiss roll": swiss_roll, "sphere": sphere}[dataset]
    hgd = jax.jit(lambda w, t, rho, order: jg.heat_geodesic_distances(w, t, order=order,
                                                                       harnack=rho),
                  static_argnums=3)
    emb = jax.jit(lambda d: jg.mds(d, dim=2, n_iter=200))
    scores: dict[str, list] = {}
    for seed in range(seeds):
        x, g = make(n, seed)
        w = np.asarray(jg.alpha_decay_graph(jnp.asarray(x), k=5, decay=40.0))
        rows = {}
        for t in times:
            k_t = max(order, int(t) + 20)  # K >= t lmax / 2 + 10 with lmax = 2
            d = np.asarray(hgd(w, float(t), 0.0, k_t))
            rows[f"heat-geodesic, t = {t}"] = corr(d, g)
            rows[f"heat-geodesic, Harnack rho = 0.5, t = {t}"] = corr(
                np.asarray(hgd(w, float(t), 0.5, k_t)), g)
            rows[f"heat-geodesic 2-D MDS, t = {t}"] = corr(
                np.sqrt(np.asarray(jg.pairwise_sq_dists(emb(jnp.asarray(d))))), g)
            rows[f"diffusion maps, t = {t}"] = corr(diffusion_map_dist(w, t), g)
            rows[f"PHATE potential, t = {t}"] = corr(phate_dist(w, t), g)
        rows["shortest path (kNN, k = 5)"] = corr(shortest_path_dist(x, 5), g)
        rows["Euclidean (ambient)"] = corr(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)), g)
        for name, v in rows.items():
            scores.setdefault(name, []).append(v)
    return {k: tuple(np.mean(v, axis=0)) for k, v in scores.items()}


def table(res, times):
    out = []
    for method in ("heat-geodesic", "heat-geodesic, Harnack rho = 0.5", "heat-geodesic 2-D MDS",
                   "diffusion maps", "PHATE potential"):
        cands = {t: res[f"{method}, t = {t}"] for t in times}
        best = max(cands, key=lambda t: cands[t][1])
        out.append([method, f"t = {best} (best Spearman)", f"{cands[best][0]:.3f}",
                    f"{cands[best][1]:.3f}"])
        if method.startswith("heat") and 10 in cands:
            out.append([method, "t = 10 (reference default)", f"{cands[10][0]:.3f}",
                        f"{cands[10][1]:.3f}"])
    for name in ("shortest path (kNN, k = 5)", "Euclidean (ambient)"):
        out.append([name, "-", f"{res[name][0]:.3f}", f"{res[name][1]:.3f}"])
    return md_table(["method", "time", "Pearson", "Spearman"], out)


def local_clustering_table(draws, noises=(0.1, 0.2, 0.3, 0.4)):
    """Back de Luca et al. (2023): F1 of the target cluster of an SBM from one seed inside it."""
    f = jax.jit(lambda a, s, y: (jg.local_cluster(a, s).mask, jg.local_cluster(a, s, y).mask))
    rows = []
    for noise in noises:
        res = []
        for draw in range(draws):
            rng = np.random.default_rng(draw)
            lab = np.repeat(np.arange(5), 60)
            p = np.where(lab[:, None] == lab[None], 0.2, 0.02)
            a = np.triu(rng.uniform(size=p.shape) < p, 1).astype(float)
            a = a + a.T
            target = lab == 0
            y = target.astype(int)
            y[rng.uniform(size=len(y)) < noise] ^= 1
            s = int(rng.choice(np.flatnonzero(target)))
            plain, weighted = (np.asarray(m) for m in f(jnp.asarray(a, jnp.float32), s, y))

            def f1(m, target=target):
                return 2 * (m & target).sum() / (m.sum() + target.sum())

            res.append((f1(weighted), f1(plain), f1(y.astype(bool))))
        m = np.mean(res, axis=0)
        rows.append([f"{noise:.0%}", f"{m[0]:.3f}", f"{m[1]:.3f}", f"{m[2]:.3f}"])
    return md_table(["label noise", "PPR on label-weighted graph", "PPR on original graph",
                     "labels alone"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--times", type=int, nargs="+", default=[1, 3, 10, 30, 100])
    ap.add_argument("--order", type=int, default=32, help="min Chebyshev order (t + 20 above)")
    ap.add_argument("--draws", type=int, default=20, help="SBM draws per noise level")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "graph.md")
    args = ap.parse_args()
    import os

    lines = ["# Graph benchmarks: heat-geodesic distances", "",
             f"Generated by `python benchmarks/bench_graph.py --n {args.n} --seeds {args.seeds}"
             f" --order {args.order}`; 1-min load average at start "
             f"{os.getloadavg()[0]:.1f} (quality numbers only, no timings).", "",
             *machine_lines(), "",
             "Correlation (over all pairs i < j) between each method's distances and the true "
             f"geodesic distances, mean over {args.seeds} seeds, n = {args.n}, same alpha-decay "
             "graph (k = 5, decay = 40) for every diffusion method; heat-geodesic in float64 "
             f"with Chebyshev order max({args.order}, t + 20).", ""]
    for dataset in ("Swiss roll", "sphere"):
        res = run(dataset, args.n, args.seeds, args.times, args.order)
        lines += [f"## {dataset}", "", table(res, args.times), ""]
        print(lines[-2], flush=True)
    lines += ["## Local clustering with noisy labels", "",
              "Stochastic block model, 5 blocks of 60 nodes, p_in = 0.2, p_out = 0.02; target = "
              "block 0, one seed drawn in it; each label flipped with the stated probability; "
              "`local_cluster` defaults (alpha = 0.15, epsilon = 0.05; the seed's own label is "
              f"taken as 1). F1 of the recovered set vs the target, mean over {args.draws} "
              "draws (float32).", "", local_clustering_table(args.draws), ""]
    print(lines[-2], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
