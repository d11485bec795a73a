"""k-medoids at scale: jaxclust.cluster.fastclara vs CLARA assembled from the `kmedoids`
package and vs a full FasterPAM on the n x n matrix (jaxclust.cluster.kmedoids and the
`kmedoids` package), one process, interleaved.

    python benchmarks/bench_medoids.py            # n = 4000, d = 16, k = 10
    python benchmarks/bench_medoids.py --n 2000   # smaller

The installed `kmedoids` package has no fastclara entry point, so the peer CLARA is
assembled from its own pieces as the kmedoids crate's CLARA runs them: 5 subsamples of
80 + 4k points (each holding the best medoids so far, the others drawn by NumPy),
``kmedoids.pam_build`` + ``kmedoids.fasterpam`` on each subsample's float64 distances, the
full-data loss of each result, the best kept (tests/peers/test_kmedoids_clara.py shows it
equal to jaxclust's on the same subsamples). The full FasterPAM (its n x n float64 matrix
included in the time, as jaxclust's) gives the reference loss (sum of Euclidean distances
to the nearest medoid); the CLARA runs use different seeds (their randomness).
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

    def run_peer_clara(n_samples=5):
        rng = np.random.default_rng(next(seeds))
        s = min(a.n, 80 + 4 * a.k)
        x64 = x.astype(np.float64)
        best, best_loss = None, np.inf
        for _ in range(n_samples):
            if best is None:
                idx = rng.choice(a.n, s, replace=False)
            else:
                rest = np.setdiff1d(np.arange(a.n), best)
                idx = np.r_[best, rng.choice(rest, s - a.k, replace=False)]
            d = cdist(x64[idx], x64[idx])
            build = kmedoids.pam_build(d, a.k)
            res = kmedoids.fasterpam(d, np.asarray(build.medoids), max_iter=100)
            cand = idx[np.asarray(res.medoids)]
            loss = cdist(x64, x64[cand]).min(1).sum()
            if loss < best_loss:
                best, best_loss = cand, loss
        return float(best_loss)

    def run_peer():
        d = cdist(x.astype(np.float64), x.astype(np.float64))
        return float(kmedoids.fasterpam(d, a.k, init="build").loss)

    runs = {"jaxclust fastclara": run_clara,
            "kmedoids CLARA (pam_build + fasterpam)": run_peer_clara,
            "jaxclust kmedoids (full)": run_jk, "kmedoids.fasterpam (full)": run_peer}
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
    tref = statistics.median(times["jaxclust fastclara"])
    print(f"n = {a.n}, d = {a.d}, k = {a.k}, float32; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print("| method | median time (s) | time / jaxclust fastclara | loss / full FasterPAM loss |")
    print("|---|---|---|---|")
    for name in runs:
        tm = statistics.median(times[name])
        rel = ", ".join(f"{v / ref:.4f}" for v in losses[name])
        print(f"| {name} | {tm:.3f} | {tm / tref:.2f} | {rel} |")


if __name__ == "__main__":
    main()
