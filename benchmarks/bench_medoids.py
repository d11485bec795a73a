"""k-medoids at scale: jaxclust.cluster.fastclara vs a full FasterPAM on the n x n matrix
(jaxclust.cluster.kmedoids and the `kmedoids` package), one process, interleaved.

    python benchmarks/bench_medoids.py            # n = 4000, d = 16, k = 10
    python benchmarks/bench_medoids.py --n 2000   # smaller

The installed `kmedoids` package has no fastclara, so the peer figures are the full
FasterPAM (its n x n float64 matrix included in the time, as jaxclust's) and the quality
figure is the loss (sum of Euclidean distances to the nearest medoid) relative to it.
Timings: median of 3 after one warm-up call (compilation excluded for jaxclust).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import kmedoids
import numpy as np
from scipy.spatial.distance import cdist

from jaxclust.cluster import fastclara, kmedoids as jk


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--k", type=int, default=10)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(a.k, a.d)) * 4.0
    x = (centres[rng.integers(0, a.k, a.n)] + rng.normal(size=(a.n, a.d))).astype(np.float32)
    xj = jnp.asarray(x)

    seeds = iter(range(1, 1_000_000))

    def run_clara():
        r = fastclara(xj, a.k, key=jax.random.key(next(seeds)))
        return float(jax.block_until_ready(r.objective))

    def run_jk():
        r = jk(xj, a.k)
        return float(jax.block_until_ready(r.objective))

    def run_peer():
        d = cdist(x.astype(np.float64), x.astype(np.float64))
        return float(kmedoids.fasterpam(d, a.k, init="build").loss)

    runs = {"jaxclust fastclara": run_clara, "jaxclust kmedoids (full)": run_jk,
            "kmedoids.fasterpam (full)": run_peer}
    for f in runs.values():
        f()  # warm-up / compile
    times = {name: [] for name in runs}
    losses = {name: [] for name in runs}
    for _ in range(3):
        for name, f in runs.items():
            t = time.perf_counter()
            losses[name].append(f())
            times[name].append(time.perf_counter() - t)
    ref = statistics.median(losses["kmedoids.fasterpam (full)"])
    tref = statistics.median(times["kmedoids.fasterpam (full)"])
    print(f"n = {a.n}, d = {a.d}, k = {a.k}, float32; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print("| method | median time (s) | peer time / time | loss / full FasterPAM loss |")
    print("|---|---|---|---|")
    for name in runs:
        tm = statistics.median(times[name])
        rel = ", ".join(f"{v / ref:.4f}" for v in losses[name])
        print(f"| {name} | {tm:.3f} | {tref / tm:.2f} | {rel} |")


if __name__ == "__main__":
    main()
