"""Clustering benchmark: jaxclust vs scikit-learn vs faiss-cpu (Lloyd), vs scikit-learn
(k-means++ seeding) and vs the `kmedoids` package (FasterPAM), one process, interleaved.

    python benchmarks/bench_cluster.py            # full sizes (the issue's)
    python benchmarks/bench_cluster.py --quick    # small sizes, a smoke test
    python benchmarks/bench_cluster.py --large    # also n = 1e6, d = 128, k = 1000 vs faiss
    python benchmarks/bench_cluster.py --only lloyd --out /tmp/cluster.md

Problems (float32):

* **Lloyd**: n = 100,000 points in d = 64 from a mixture of k = 100 Gaussians, k = 100,
  20 Lloyd iterations; and n = 200,000, d = 64, k = 1000, 5 iterations (issue 15 §2). tol = 0
  and the same initial centres for everyone. faiss runs with ``max_points_per_centroid``
  large enough to use every point (no subsampling) and the same initial centres. Inertia of
  each result is recomputed in float64 by the same code; the relative inertia difference to
  jaxclust is reported (the bar: 1e-5).
* **GEMM evidence**: for the same shapes, the raw matrix product of the assignment
  (``x @ c.T``) by XLA (``jnp.matmul`` in the row blocks jaxclust uses, reduced by a
  row-min so that nothing ``n x k`` is stored) and by NumPy's BLAS (8192-row blocks), next to
  one whole jaxclust Lloyd pass (product, argmin, centre sums): wall time and process CPU
  time (the machine is shared; CPU time shows the work, wall time the parallelism).
* **Large** (``--large``): n = 1,000,000, d = 128, k = 1000 (an embedding workload),
  3 iterations, jaxclust vs faiss, each in a fresh process: time per iteration and the peak
  resident memory of the process (``ru_maxrss``; the data alone are 0.5 GB).
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


def _cpu_timed(prepare, log):
    """``prepare`` whose calls also append their process CPU time (all threads) to ``log``:
    on a shared machine a multi-threaded peer's wall time also measures its waiting."""
    def prep():
        call = prepare()

        def timed_call():
            p0 = time.process_time()
            out = call()
            log.append(time.process_time() - p0)
            return out
        return timed_call
    return prep


def bench_lloyd(n, d, k, iters, budget, lines, spherical=False):
    x = make_data(n, d, k)
    if spherical:  # cosine k-means of unit rows (scikit-learn has none)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    c0 = x[np.random.default_rng(1).choice(n, k, replace=False)]
    xj, cj = jnp.asarray(x), jnp.asarray(c0)
    proto = Protocol(budget, 7)
    cpu = {}
    add = lambda name, prep: proto.add(name, _cpu_timed(prep, cpu.setdefault(name, [])))  # noqa: E731

    def ours(x, c, algorithm="auto"):
        r = kmeans(x, k, key=jax.random.key(0), init=c, max_iter=iters, tol=0.0,
                   spherical=spherical, algorithm=algorithm)
        return r.centroids, r.n_iters

    add("jaxclust", jax_prepare(ours, xj, cj))
    if not spherical:  # the default ("auto") is Hamerly's bounds here; plain Lloyd beside
        add("jaxclust (algorithm='lloyd')",
            jax_prepare(lambda x, c: ours(x, c, "lloyd"), xj, cj))

    from sklearn.cluster import KMeans

    def sk():
        m = KMeans(k, init=c0, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd").fit(x)
        return m.cluster_centers_, m.n_iter_

    def sk_elkan():
        m = KMeans(k, init=c0, n_init=1, max_iter=iters, tol=0.0, algorithm="elkan").fit(x)
        return m.cluster_centers_, m.n_iter_

    if not spherical:
        add("scikit-learn (lloyd)", lambda: sk)
        add("scikit-learn (elkan)", lambda: sk_elkan)
    try:
        import faiss

        def fa():
            km = faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=n, seed=0,
                              verbose=False, spherical=spherical)
            km.train(x, init_centroids=c0)
            return km.centroids, iters

        add("faiss-cpu", lambda: fa)
    except ImportError:
        lines.append("- faiss-cpu not installed: skipped (pip install faiss-cpu)")
    load = os.getloadavg()[0]
    info = proto.run()
    base = median(info["jaxclust"]["times"])
    cpu_base = median(cpu["jaxclust"])
    ref = inertia64(x, info["jaxclust"]["out"][0])
    rows = []
    for name, v in info.items():
        t = median(v["times"])
        c, it = v["out"]
        inr = inertia64(x, c)
        t_cpu = median(cpu[name])
        rows.append([name, fmt_s(t), f"{t / iters * 1e3:.1f}", f"{base and t / base:.2f}",
                     fmt_s(t_cpu), f"{cpu_base and t_cpu / cpu_base:.2f}", int(it),
                     f"{inr:.6e}", f"{abs(inr - ref) / ref:.1e}", fmt_s(v["compile"])])
    kind = "Spherical k-means (unit rows)" if spherical else "Lloyd"
    lines += ["", f"### {kind}: n = {n:,}, d = {d}, k = {k}, {iters} iterations, float32", "",
              f"1-min load average before the run: {load:.1f} (2 cores).", "",
              md_table(["library", "time (median)", "ms / iter", "ratio (time / jaxclust)",
                        "CPU time (median)", "ratio (CPU / jaxclust)", "iters",
                        "inertia (float64)", "rel. diff.", "compile"], rows)]
    return x, info


def bench_gemm(n, d, k, lines, reps=5):
    """The assignment's matrix product by XLA and by BLAS on the Lloyd shapes, and one
    jaxclust Lloyd pass (evidence for the GEMM bound)."""
    from jaxclust.cluster.lloyd import _auto_chunk, _blocks, _lloyd_sums

    rng = np.random.default_rng(0)
    x = make_data(n, d, k)
    c = x[rng.choice(n, k, replace=False)]
    xj, cj = jnp.asarray(x), jnp.asarray(c)
    chunk = _auto_chunk(n, k, None) or n
    xb = _blocks(xj, chunk)
    wb = _blocks(jnp.ones((n,), xj.dtype), chunk)
    hi = jax.lax.Precision.HIGHEST
    mm_min = jax.jit(lambda c: jax.lax.map(
        lambda b: jnp.min(jnp.matmul(b, c.T, precision=hi), axis=1), xb))
    lloyd_pass = jax.jit(lambda c: _lloyd_sums(xb, wb, c, False)[2:])
    step = 8192

    def blas():
        for lo in range(0, n, step):
            np.min(x[lo:lo + step] @ c.T, axis=1)

    calls = {f"XLA matmul + row-min, {chunk}-row blocks": lambda: mm_min(cj),
             "NumPy BLAS matmul + row-min, 8192-row blocks": blas,
             "jaxclust Lloyd pass (matmul, argmin, sums)": lambda: lloyd_pass(cj)}
    for f in calls.values():
        jax.block_until_ready(f())
    t = {name: [] for name in calls}
    load = os.getloadavg()[0]
    for _ in range(reps):
        for name, f in calls.items():
            w0, p0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(f())
            t[name].append((time.perf_counter() - w0, time.process_time() - p0))
    flops = 2 * n * d * k
    rows = []
    for name, ts in t.items():
        ts = np.asarray(ts)
        wall, cpu = ts[:, 0].min(), np.median(ts[:, 1])
        rows.append([name, fmt_s(wall), fmt_s(cpu), f"{flops / wall / 1e9:.0f}",
                     f"{flops / cpu / 1e9:.0f}"])
    lines += ["", f"### GEMM evidence: n = {n:,}, d = {d}, k = {k} (one assignment pass, "
              f"{flops / 1e9:.2f} GFLOP)", "",
              f"1-min load average before: {load:.1f} (2 cores). Wall: best of {reps}; CPU: "
              "median process CPU time (all threads).", "",
              md_table(["kernel", "wall", "CPU time", "GFLOP/s (wall)", "GFLOP / CPU-s"],
                       rows)]


_LARGE = (1_000_000, 128, 1000, 3)


def _large_worker(lib, iters=None):
    """One library on the large problem in this (fresh) process: prints a result line."""
    import resource

    n, d, k, default_iters = _LARGE
    iters = iters or default_iters
    rng = np.random.default_rng(5)  # generated in float32: no float64 copy in the peak
    x = rng.standard_normal((n, d), dtype=np.float32)
    x += (rng.standard_normal((k, d), dtype=np.float32) * 2.0)[rng.integers(0, k, n)]
    c0 = x[np.random.default_rng(1).choice(n, k, replace=False)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    if lib == "jaxclust":
        xj, cj = jnp.asarray(x), jnp.asarray(c0)
        f = jax.jit(lambda x, c: kmeans(x, k, key=jax.random.key(0), init=c, max_iter=iters,
                                        tol=0.0).centroids)
        t0 = time.perf_counter()
        compiled = f.lower(xj, cj).compile()
        t_compile = time.perf_counter() - t0
        t0, p0 = time.perf_counter(), time.process_time()
        c = np.asarray(compiled(xj, cj))
    else:
        import faiss

        t_compile = 0.0
        t0, p0 = time.perf_counter(), time.process_time()
        km = faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=n, seed=0, verbose=False)
        km.train(x, init_centroids=c0)
        c = km.centroids
    wall, cpu = time.perf_counter() - t0, time.process_time() - p0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"RESULT {lib} {wall / iters:.4f} {cpu / iters:.4f} {base:.3f} {peak:.3f} "
          f"{t_compile:.3f} {inertia64(x, c):.9e}", flush=True)


def bench_large(lines, iters=None):
    import subprocess

    n, d, k, default_iters = _LARGE
    iters = iters or default_iters
    rows, load = [], os.getloadavg()[0]
    for lib in ("jaxclust", "faiss-cpu"):
        out = subprocess.run([sys.executable, __file__, "--large-worker", lib,
                              "--large-iters", str(iters)],
                             capture_output=True, text=True, check=False)
        got = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
        if not got:
            rows.append([lib, "failed", "", "", "", "", "", out.stderr.strip()[-200:]])
            continue
        _, name, wall, cpu, base, peak, comp, inr = got[0].split()
        rows.append([name, f"{float(wall):.2f} s", f"{float(cpu):.2f} s", f"{float(base):.2f}",
                     f"{float(peak):.2f}", f"{float(peak) - float(base):+.2f}",
                     f"{float(comp):.1f} s", inr])
    lines += ["", f"### Large: n = {n:,}, d = {d}, k = {k}, {iters} iterations (fresh process "
              "each)", "", f"1-min load average before: {load:.1f} (2 cores).", "",
              md_table(["library", "wall / iter", "CPU / iter", "RSS before (GiB)",
                        "peak RSS (GiB)", "solver's extra", "compile", "inertia (float64)"],
                       rows)]


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
    p.add_argument("--large", action="store_true", help="also n = 1e6, d = 128, k = 1000")
    p.add_argument("--only", choices=["lloyd", "spherical", "large", "all"], default="all",
                   help="lloyd: the Lloyd and GEMM sections only; spherical, large: that one only")
    p.add_argument("--large-worker", choices=["jaxclust", "faiss-cpu"], help=argparse.SUPPRESS)
    p.add_argument("--large-iters", type=int, default=None,
                   help="iterations of the large run (default 3; from 10 on jaxclust's "
                        "default algorithm='auto' prunes with Hamerly's bounds)")
    p.add_argument("--out", default=str(HERE / "results" / "cluster.md"))
    args = p.parse_args()
    if args.large_worker:
        return _large_worker(args.large_worker, args.large_iters)
    if args.quick:
        lloyd = [(5000, 16, 10, 5), (8000, 16, 100, 3)]
        pam_n, pam_k, budget = 500, 10, 1.0
    else:
        lloyd = [(100_000, 64, 100, 20), (200_000, 64, 1000, 5)]
        pam_n, pam_k, budget = 5000, 50, 20.0
    lines = ["# Clustering benchmark", "", *machine_lines(
        ("jax", "jaxlib", "scikit-learn", "faiss-cpu", "kmedoids", "numpy")),
        f"- threads: XLA and BLAS use every usable core (os.cpu_count() = {os.cpu_count()})",
        "- protocol: compile excluded; one warm-up; interleaved rounds; median time"]
    x = None
    if args.only in ("spherical", "large"):
        lloyd = []
    if args.only == "large":
        args.large = True
    for n, d, k, iters in lloyd:
        xk, _ = bench_lloyd(n, d, k, iters, budget, lines)
        x = xk if x is None else x
        bench_gemm(n, d, k, lines)
    if args.only in ("all", "spherical"):
        size = (5000, 16, 10, 5) if args.quick else (100_000, 64, 100, 20)
        bench_lloyd(*size, budget, lines, spherical=True)
    if args.large:
        bench_large(lines, args.large_iters)
    if args.only == "all":
        k = lloyd[0][2]
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
