"""Spectral clustering benchmark: jaxclust `spectral` (LOBPCG, the default from n = 1000 on,
and the dense eigh) vs scikit-learn `SpectralClustering(affinity="nearest_neighbors")`
(ARPACK), one process, interleaved.

    python benchmarks/bench_spectral.py                 # digits, n = 1797, k = 10
    python benchmarks/bench_spectral.py --out /tmp/spectral.md

Problem: scikit-learn's digits (n = 1797, d = 64, float32 for jaxclust, float64 for
scikit-learn), k = 10 clusters, the symmetric kNN graph with 10 neighbours (itself included:
the same graph for both, see tests/cluster/test_spectral.py), the random-walk embedding of
10 eigenvectors, k-means with 10 restarts. Times are medians of interleaved calls after
compilation and a warm-up call (benchmarks/_common.Protocol); quality: ARI of the labels to
scikit-learn's and to the digit classes. Ratios: time / jaxclust (LOBPCG) (> 1: slower).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Protocol, fmt_s, jax_prepare, machine_lines, md_table, median  # noqa: E402

from jaxclust.cluster import spectral  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timed calls per entry")
    p.add_argument("--out", default=str(HERE / "results" / "spectral.md"))
    args = p.parse_args()

    from sklearn.cluster import SpectralClustering
    from sklearn.datasets import load_digits
    from sklearn.metrics import adjusted_rand_score

    data = load_digits()
    x64, y = data.data, data.target
    xj = jnp.asarray(x64, jnp.float32)
    k = 10
    lines = ["# Spectral clustering benchmark", "", *machine_lines(
        ("jax", "jaxlib", "scikit-learn", "numpy")), ""]

    def ours(solver):
        def f(x):
            r = spectral(x, k, key=jax.random.key(0), affinity="knn", n_neighbors=10,
                         eigen_solver=solver)
            return r.labels, r.converged
        return jax_prepare(f, xj)

    def sk():
        est = SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=10,
                                 assign_labels="kmeans", random_state=0, n_init=10)
        return lambda: (est.fit(x64).labels_, True)

    proto = Protocol(args.budget, 7)
    proto.add("jaxclust (auto = LOBPCG)", ours("auto"))
    proto.add("jaxclust (dense eigh)", ours("dense"))
    proto.add("scikit-learn (ARPACK)", sk)
    info = proto.run()
    base = median(info["jaxclust (auto = LOBPCG)"]["times"])
    sk_labels = info["scikit-learn (ARPACK)"]["out"][0]
    rows = []
    for name, v in info.items():
        t = median(v["times"])
        lab = np.asarray(v["out"][0])
        rows.append([name, fmt_s(v["compile"]), fmt_s(t), len(v["times"]), f"{t / base:.2f}",
                     f"{adjusted_rand_score(sk_labels, lab):.4f}",
                     f"{adjusted_rand_score(y, lab):.4f}", bool(v["out"][1])])
    lines += [f"## digits: n = {len(x64)}, d = {x64.shape[1]}, k = {k}, kNN graph (10 "
              "neighbours), 10 k-means restarts", "",
              md_table(["method", "compile", "time (median)", "calls", "ratio (time / LOBPCG)",
                        "ARI vs scikit-learn", "ARI vs classes", "converged"], rows), ""]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
