"""Clustering benchmark: jaxclust vs scikit-learn vs faiss-cpu (Lloyd), vs scikit-learn
(k-means++ seeding) and vs the `kmedoids` package (FasterPAM), one process, interleaved.

    python benchmarks/bench_cluster.py            # full sizes (the issue's)
    python benchmarks/bench_cluster.py --quick    # small sizes, a smoke test
    python benchmarks/bench_cluster.py --out /tmp/cluster.md

Problems (float32):

* **Lloyd**: n = 100,000 points in d = 64 from a mixture of k = 100 Gaussians, k = 100;
  20 Lloyd iterations (tol = 0) from the same initial centres for everyone. faiss runs with
  ``max_points_per_centroid`` large enough to use every point (no subsampling) and the same
  initial centres. Inertia of each result is recomputed in float64 by the same code.
* **k-means++**: greedy k-means++ seeding (2 + ln k candidates per centre) on the same data,
  jaxclust ``kmeans_plusplus`` vs ``sklearn.cluster.kmeans_plusplus``; the potential
  (inertia of the seeds) is reported as the quality figure.
* **FasterPAM**: n = 5,000 points in d = 16, k = 50, Euclidean dissimilarities computed once
  (float64 matrix, given to both), the same BUILD-free random initial medoids; loss compared.
* **Distance step rate**: GFLOP/s of the jaxclust assignment (the ``n x k`` distance
  matrix-multiply plus argmin, 2 n k d flops) against this CPU's measured float32
  matrix-multiply rate (``jnp.dot`` of 2048 x 2048 matrices, and numpy's BLAS).

Ratios are peer time / jaxclust time (> 1: jaxclust is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Protocol, fmt_s, jax_prepare, machine_lines, md_table, median  # noqa: E402

from jaxclust.cluster import kmeans, kmeans_plusplus  # noqa: E402


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 2.0
    x = centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    return x.astype(np.float32)


def inertia64(x, c, chunk=20000):
    """Inertia of centres ``c`` on ``x`` in float64 (the same evaluation for everyone)."""
    c = np.asarray(c, np.float64)
    cs = (c * c).sum(1)
    total = 0.0
    for lo in range(0, len(x), chunk):
        xb = x[lo:lo + chunk].astype(np.float64)
        d = (xb * xb).sum(1)[:, None] - 2 * xb @ c.T + cs[None]
        total += np.maximum(d.min(1), 0).sum()
    return total


def bench_lloyd(n, d, k, iters, budget, lines):
    x = make_data(n, d, k)
    c0 = x[np.random.default_rng(1).choice(n, k, replace=False)]
    xj, cj = jnp.asarray(x), jnp.asarray(c0)
    proto = Protocol(budget, 7)

    def ours(x, c):
        r = kmeans(x, k, key=jax.random.key(0), init=c, max_iter=iters, tol=0.0)
        return r.centroids, r.n_iters

    proto.add("jaxclust", jax_prepare(ours, xj, cj))

    from sklearn.cluster import KMeans

    def sk():
        m = KMeans(k, init=c0, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(x)
        return m.cluster_centers_, m.n_iter_

    proto.add("scikit-learn (lloyd)", lambda: sk)
    try:
        import faiss

        def fa():
            km = faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=n, seed=0,
                              verbose=False)
            km.train(x, init_centroids=c0)
            return km.centroids, iters

        proto.add("faiss-cpu", lambda: fa)
    except ImportError:
        lines.append("- faiss-cpu not installed: skipped (pip install faiss-cpu)")
    info = proto.run()
    base = median(info["jaxclust"]["times"])
    rows = []
    for name, v in info.items():
        t = median(v["times"])
        c, it = v["out"]
        rows.append([name, fmt_s(t), f"{t / iters * 1e3:.1f}", f"{base and t / base:.2f}",
                     int(it), f"{inertia64(x, c):.6e}", fmt_s(v["compile"])])
    lines += ["", f"### Lloyd: n = {n:,}, d = {d}, k = {k}, {iters} iterations, float32", "",
              md_table(["library", "time", "ms / iter", "ratio (time / jaxclust)", "iters",
                        "inertia (float64)", "compile"], rows)]
    return x, info


def bench_plusplus(x, k, budget, lines):
    from sklearn.cluster import kmeans_plusplus as sk_pp

    xj = jnp.asarray(x)
    proto = Protocol(budget, 7)
    proto.add("jaxclust", jax_prepare(lambda x: kmeans_plusplus(x, k, key=jax.random.key(0)),
                                      xj))
    proto.add("scikit-learn", lambda: lambda: sk_pp(x, k, random_state=0)[0])
    info = proto.run()
    base = median(info["jaxclust"]["times"])
    rows = [[name, fmt_s(median(v["times"])), f"{median(v['times']) / base:.2f}",
             f"{inertia64(x, v['out']):.6e}"] for name, v in info.items()]
    lines += ["", f"### k-means++ seeding: n = {len(x):,}, d = {x.shape[1]}, k = {k}", "",
              md_table(["library", "time", "ratio (time / jaxclust)", "potential (float64)"],
                       rows)]
    return info


def bench_fasterpam(n, d, k, budget, lines):
    try:
        import kmedoids as kmed

        from jaxclust.cluster import kmedoids
    except ImportError as err:
        lines.append(f"- FasterPAM skipped: {err}")
        return None
    rng = np.random.default_rng(2)
    x = make_data(n, d, k, seed=2).astype(np.float64)
    sq = (x * x).sum(1)
    diss = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * x @ x.T, 0))
    np.fill_diagonal(diss, 0.0)
    init = rng.choice(n, k, replace=False)
    proto = Protocol(budget, 5)
    rows = []
    for dtype in (np.float32, np.float64):
        with jax.enable_x64(dtype == np.float64):
            dj, ij = jnp.asarray(diss, dtype), jnp.asarray(init)
            fn = jax.jit(lambda dd, i0: kmedoids(dd, k, init=i0, metric="precomputed",
                                                 max_iter=100).loss)
            compiled = fn.lower(dj, ij).compile()
        proto.add(f"jaxclust ({np.dtype(dtype).name})",
                  lambda c=compiled, dj=dj, ij=ij: lambda: np.asarray(c(dj, ij)))
    proto.add("kmedoids (Rust, n_cpu=1)", lambda: lambda: kmed.fasterpam(
        diss, init.copy(), max_iter=100, n_cpu=1).loss)
    proto.add("kmedoids (Rust, default threads)", lambda: lambda: kmed.fasterpam(
        diss, init.copy(), max_iter=100).loss)
    info = proto.run()
    base = median(info["kmedoids (Rust, n_cpu=1)"]["times"])
    for name, v in info.items():
        t = median(v["times"])
        rows.append([name, fmt_s(t), f"{t / base:.2f}", f"{float(v['out']):.6f}"])
    lines += ["", f"### FasterPAM: n = {n:,}, k = {k} (precomputed Euclidean dissimilarities)",
              "", md_table(["library", "time", "time / kmedoids (n_cpu=1)", "loss"], rows),
              "", "Same initial medoids for all; the float64 run is the exact comparison of "
              "the loss (the package computes in float64)."]
    return info


def bench_rate(x, k, lines):
    """GFLOP/s of the assignment step vs this CPU's matrix-multiply rate."""
    n, d = x.shape
    xj = jnp.asarray(x)
    c = xj[:k]

    from jaxclust.cluster.lloyd import _auto_chunk, _blocks, _lloyd_sums

    # one Lloyd assignment pass as kmeans runs it: scores, argmin, per-centre sums
    chunk = _auto_chunk(n, k, None)
    w = jnp.ones((n,), xj.dtype)
    xb, wb = (xj, w) if chunk is None else (_blocks(xj, chunk), _blocks(w, chunk))
    step = jax.jit(lambda c: _lloyd_sums(xb, wb, c, False)[2])
    mm = jax.jit(lambda a, b: a @ b)
    a = jnp.asarray(np.random.default_rng(0).normal(size=(2048, 2048)).astype(np.float32))
    an = np.asarray(a)

    def best(f, reps=7):
        jax.block_until_ready(f())
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(f())
            ts.append(time.perf_counter() - t)
        return min(ts)

    t_step = best(lambda: step(c))
    t_mm = best(lambda: mm(a, a))
    t_np = best(lambda: an @ an)
    g_step = 2 * n * k * d / t_step / 1e9
    g_mm = 2 * 2048**3 / t_mm / 1e9
    g_np = 2 * 2048**3 / t_np / 1e9
    lines += ["", "### Distance step throughput", "",
              md_table(["kernel", "time (best of 7)", "GFLOP/s", "% of jnp matmul"], [
                  [f"Lloyd assignment pass n={n:,} k={k} d={d} (matmul, argmin, sums)",
                   fmt_s(t_step),
                   f"{g_step:.1f}", f"{100 * g_step / g_mm:.0f}%"],
                  ["jnp.dot 2048^3 float32", fmt_s(t_mm), f"{g_mm:.1f}", "100%"],
                  ["numpy BLAS 2048^3 float32", fmt_s(t_np), f"{g_np:.1f}",
                   f"{100 * g_np / g_mm:.0f}%"]])]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--out", default=str(HERE / "results" / "cluster.md"))
    args = p.parse_args()
    if args.quick:
        n, d, k, iters, pam_n, pam_k, budget = 5000, 16, 10, 5, 500, 10, 1.0
    else:
        n, d, k, iters, pam_n, pam_k, budget = 100_000, 64, 100, 20, 5000, 50, 20.0
    lines = ["# Clustering benchmark", "", *machine_lines(
        ("jax", "jaxlib", "scikit-learn", "faiss-cpu", "kmedoids", "numpy")),
        f"- threads: XLA and BLAS use every usable core (os.cpu_count() = {os.cpu_count()})",
        "- protocol: compile excluded; one warm-up; interleaved rounds; median time"]
    x, _ = bench_lloyd(n, d, k, iters, budget, lines)
    bench_plusplus(x, k, budget, lines)
    bench_rate(x, k, lines)
    bench_fasterpam(pam_n, 16, pam_k, budget, lines)
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick or args.out != str(HERE / "results" / "cluster.md"):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
