"""First-call and second-call latency of every public solver, beside ott-jax and scikit-learn
(issue 15 §3).

A research tool is called on a small problem far more often than it is benchmarked on a big
one, so the time to the *first* answer matters: for jitted code it is dominated by tracing
and XLA compilation. Each entry runs in a **fresh Python process** (nothing compiled yet,
no warm cache): the script re-executes itself with ``--one NAME``, which imports the
libraries (timed apart), calls the solver once on ``x`` (the *first call*), then once on
another ``x`` of the same shape (the *second call*: no compilation left when nothing
recompiles, see tests/test_compile.py), and prints one JSON line.

Problems (the sizes of the issue): clustering on ``n = 300`` points in ``d = 8`` (four
Gaussian blobs), ``k = 4``; Sinkhorn between two such clouds (300 x 300, ``epsilon = 5``,
about 3% of the mean cost, ``tol = 1e-3``); ``jit`` rows wrap the call in ``jax.jit``
(what a training step does).
Peers on the same data: ott-jax (``linear.solve`` Sinkhorn, ``tools.k_means``),
scikit-learn (``KMeans``, ``GaussianMixture``, ``SpectralClustering``) and the ``kmedoids``
package (``KMedoids``, FasterPAM). scikit-learn's times are its whole fit (no compilation).

The persistent compilation cache rows (skipped with ``--no-cache-rows``) run the k-means
and Sinkhorn entries in fresh processes: without a cache, then twice sharing an empty cache
directory (*cold* fills it, *warm* reads it), in two rounds.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_compile.py                  # -> results/compile.md
    PYTHONPATH=. .venv/bin/python benchmarks/bench_compile.py --only kmeans sinkhorn-jit
    PYTHONPATH=. .venv/bin/python benchmarks/bench_compile.py --one kmeans     # one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
N, D, K, EPS = 300, 8, 4, 5.0  # EPS: ~3% of the mean squared distance (~160)


def _data(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(K, D))
    lab = rng.integers(0, K, size=N)
    x = (centres[lab] + rng.normal(size=(N, D))).astype(np.float32)
    y = (centres[rng.integers(0, K, size=N)] + rng.normal(size=(N, D)) + 0.5).astype(
        np.float32)
    return x, y


def _block(out):
    import jax

    return jax.block_until_ready(out)


# name -> (library, description, builder); the builder runs after the imports and returns
# call(x, y) -> something to block on.
def _entries():
    def jc():
        import jaxclust.cluster as m
        return m

    def jot():
        import jaxclust.ot as m
        return m

    def jsdp():
        import jaxclust.sdp as m
        return m

    def key():
        import jax
        return jax.random.key(0)

    def ott_sinkhorn(jit):
        from ott.geometry import pointcloud
        from ott.solvers import linear

        def f(x, y):
            return linear.solve(pointcloud.PointCloud(x, y, epsilon=EPS),
                                threshold=1e-3).reg_ot_cost
        if jit:
            import jax
            f = jax.jit(f)
        return lambda x, y: f(x, y)

    def jc_sinkhorn(jit, **kw):
        import jax
        ot = jot()

        def f(x, y):
            return ot.sinkhorn(x, y, epsilon=EPS, tol=1e-3, **kw).reg_cost
        g = jax.jit(f) if jit else f
        return lambda x, y: g(x, y)

    def ott_kmeans():
        import jax
        from ott.tools.k_means import k_means
        return lambda x, y: k_means(x, K, rng=jax.random.key(0)).error

    def sk_fit(cls_path, **kw):
        import importlib
        mod, cls = cls_path.rsplit(".", 1)
        est = getattr(importlib.import_module(mod), cls)
        return lambda x, y: est(**kw).fit(x)

    return {
        # --- OT
        "sinkhorn": ("jaxclust", "`ot.sinkhorn` eager", lambda: jc_sinkhorn(False)),
        "sinkhorn-jit": ("jaxclust", "`jit(ot.sinkhorn)`", lambda: jc_sinkhorn(True)),
        "sinkhorn-online": ("jaxclust", "`ot.sinkhorn(chunk_size=128)` eager",
                            lambda: jc_sinkhorn(False, chunk_size=128)),
        "ott-sinkhorn": ("ott-jax", "`linear.solve(PointCloud)` eager",
                         lambda: ott_sinkhorn(False)),
        "ott-sinkhorn-jit": ("ott-jax", "`jit(linear.solve(PointCloud))`",
                             lambda: ott_sinkhorn(True)),
        "sinkhorn_divergence": ("jaxclust", "`ot.sinkhorn_divergence` eager",
                                lambda: (lambda x, y: jot().sinkhorn_divergence(
                                    x, y, epsilon=EPS).divergence)),
        "swav_codes": ("jaxclust", "`ot.swav_codes` (300 x 4 scores)",
                       lambda: (lambda x, y: jot().swav_codes(x[:, :K], epsilon=0.5))),
        # --- k-means family
        "kmeans": ("jaxclust", "`cluster.kmeans` eager",
                   lambda: (lambda x, y: jc().kmeans(x, K, key=key()).inertia)),
        "ott-kmeans": ("ott-jax", "`tools.k_means.k_means`", ott_kmeans),
        "sklearn-kmeans": ("scikit-learn", "`KMeans(n_init=1).fit`",
                           lambda: sk_fit("sklearn.cluster.KMeans", n_clusters=K, n_init=1,
                                          random_state=0)),
        "minibatch_kmeans": ("jaxclust", "`cluster.minibatch_kmeans`",
                             lambda: (lambda x, y: jc().minibatch_kmeans(
                                 x, K, key=key(), batch_size=64).inertia)),
        "soft_kmeans": ("jaxclust", "`cluster.soft_kmeans`",
                        lambda: (lambda x, y: jc().soft_kmeans(
                            x, K, temperature=1.0, key=key()).energy)),
        "sinkhorn_kmeans": ("jaxclust", "`cluster.sinkhorn_kmeans`",
                            lambda: (lambda x, y: jc().sinkhorn_kmeans(x, K, key=key()).loss)),
        "gmm": ("jaxclust", "`cluster.gmm`",
                lambda: (lambda x, y: jc().gmm(x, K, key=key()).log_likelihood)),
        "sklearn-gmm": ("scikit-learn", "`GaussianMixture.fit`",
                        lambda: sk_fit("sklearn.mixture.GaussianMixture", n_components=K,
                                       random_state=0)),
        "kmedoids": ("jaxclust", "`cluster.kmedoids` (FasterPAM)",
                     lambda: (lambda x, y: jc().kmedoids(x, K).loss)),
        "kmedoids-pkg": ("kmedoids", "`KMedoids(method='fasterpam').fit`",
                         lambda: sk_fit("kmedoids.KMedoids", n_clusters=K, method="fasterpam",
                                        metric="euclidean", random_state=0)),
        "spectral": ("jaxclust", "`cluster.spectral`",
                     lambda: (lambda x, y: jc().spectral(x, K, key=key()).labels)),
        "sklearn-spectral": ("scikit-learn", "`SpectralClustering.fit`",
                             lambda: sk_fit("sklearn.cluster.SpectralClustering", n_clusters=K,
                                            random_state=0)),
        "laplacian_kmeans": ("jaxclust", "`cluster.laplacian_kmeans`",
                             lambda: (lambda x, y: jc().laplacian_kmeans(
                                 x, K, key=key()).objective)),
        # --- SDP
        "kmeans_sdp": ("jaxclust", "`sdp.kmeans_sdp` (ADMM)",
                       lambda: (lambda x, y: jsdp().kmeans_sdp(x, K, key=key()).objective)),
        "kmeans_sdp-bm": ("jaxclust", "`sdp.kmeans_sdp(solver=BurerMonteiro())`",
                          lambda: (lambda x, y: jsdp().kmeans_sdp(
                              x, K, solver=jsdp().BurerMonteiro(), key=key()).objective)),
        "la_sdp": ("jaxclust", "`sdp.la_sdp`",
                   lambda: (lambda x, y: jsdp().la_sdp(x, K, key=key()).proportions)),
    }


# which rows sit side by side in the table (jaxclust entry -> peers)
PEERS = {
    "sinkhorn": ["ott-sinkhorn"], "sinkhorn-jit": ["ott-sinkhorn-jit"],
    "kmeans": ["ott-kmeans", "sklearn-kmeans"], "gmm": ["sklearn-gmm"],
    "kmedoids": ["kmedoids-pkg"], "spectral": ["sklearn-spectral"],
}


def run_one(name: str) -> dict:
    t0 = time.perf_counter()
    import jax  # noqa: F401  (the import is part of the first-use cost, timed apart)
    lib, _, build = _entries()[name]
    call = build()
    t_import = time.perf_counter() - t0
    import numpy as np

    x1, y1 = _data(0)
    x2, y2 = _data(1)
    if lib in ("jaxclust", "ott-jax"):
        import jax.numpy as jnp
        x1, y1, x2, y2 = (jnp.asarray(a) for a in (x1, y1, x2, y2))
        _block((x1, y1, x2, y2))
    on_host = lib in ("scikit-learn", "kmedoids")
    # JAX's own monitoring events: the time the first call spends tracing, lowering and in
    # XLA's compiler, summed over the programs it builds (nothing else is changed)
    phases = {"trace": 0.0, "lower": 0.0, "compile": 0.0, "programs": 0}
    events = {"/jax/core/compile/jaxpr_trace_duration": "trace",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
              "/jax/core/compile/backend_compile_duration": "compile"}

    def listen(event, duration, **kwargs):
        if event in events:
            phases[events[event]] += duration
            phases["programs"] += event.endswith("backend_compile_duration")

    from jax import monitoring
    times, cpu = [], []
    for i, (x, y) in enumerate(((x1, y1), (x2, y2))):
        if i == 0:
            monitoring.register_event_duration_secs_listener(listen)
        c, t = time.process_time(), time.perf_counter()
        if on_host:
            call(np.asarray(x), np.asarray(y))
        else:
            _block(call(x, y))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if i == 0:
            monitoring.unregister_event_duration_listener(listen)
    first, second = times
    return dict(name=name, lib=lib, imports=t_import, first=first, second=second,
                first_cpu=cpu[0], **{f"first_{k}": v for k, v in phases.items()})


def _subprocess(name: str, env_extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(HERE.parent))
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", name],
                         capture_output=True, text=True, env=env, cwd=HERE.parent)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return dict(name=name, error=(out.stderr.strip().splitlines() or ["?"])[-1][:200])


def _fmt(s):
    return "-" if s is None else (f"{s:.2f} s" if s >= 0.1 else f"{s * 1e3:.1f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", help="run one entry in this process, print JSON")
    ap.add_argument("--only", nargs="*", help="entries to run (default: all)")
    ap.add_argument("--no-cache-rows", action="store_true",
                    help="skip the persistent-cache cold / warm rows")
    ap.add_argument("--no-aot", action="store_true",
                    help="skip the ahead-of-time Sinkhorn compile comparison")
    ap.add_argument("--out", default=str(HERE / "results" / "compile.md"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    sys.path.insert(0, str(HERE))
    from _common import machine_lines

    entries = _entries()
    names = args.only or list(entries)
    rows = {}
    for name in names:
        rows[name] = _subprocess(name)
        print(rows[name], flush=True)

    lines = ["# First-call and second-call latency (issue 15 §3)", "",
             "Generated by `benchmarks/bench_compile.py`. Each row is a fresh Python process: "
             "*imports* (jax + the library), *first call* (tracing + compilation + run, the "
             "latency a new user sees), *second call* (another `x` of the same shape: no "
             "compilation when nothing recompiles). Clustering: n = 300, d = 8, k = 4; "
             "Sinkhorn: 300 x 300 points, epsilon = 5 (about 3% of the mean cost), "
             "tol = 1e-3. scikit-learn and kmedoids have nothing to compile: their first call "
             "is the whole fit.", "",
             *machine_lines(("jax", "jaxlib", "ott-jax", "scikit-learn", "kmedoids")), "",
             "| entry | library | call | imports | first call | second call |",
             "|---|---|---|---:|---:|---:|"]
    done = set()
    for name in names:
        group = [name] + [p for p in PEERS.get(name, []) if p in rows]
        for g in group:
            if g in done:
                continue
            done.add(g)
            r = rows[g]
            lib, desc, _ = entries[g]
            if "error" in r:
                lines.append(f"| {g} | {lib} | {desc} | - | error: {r['error']} | - |")
            else:
                lines.append(f"| {g} | {lib} | {desc} | {_fmt(r['imports'])} | "
                             f"{_fmt(r['first'])} | {_fmt(r['second'])} |")

    if not args.no_cache_rows:
        rounds = 2
        lines += ["", "## Persistent compilation cache", "",
                  "Fresh processes: *no cache*; then two sharing one new cache directory "
                  "(`JAX_COMPILATION_CACHE_DIR`, `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0`,"
                  " `JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0`): *cold* starts with the "
                  "directory empty and fills it, *warm* is the next process. The three run "
                  f"in turn, {rounds} rounds; the table shows the fastest of the rounds (the "
                  "least disturbed by the load). A program with host callbacks is never "
                  "stored: under `jit` jaxclust's value checks are such callbacks (equinox "
                  "`error_if`) unless `EQX_ON_ERROR=nan` turns them into NaN outputs. See "
                  "docs/guide/performance.md.", "",
                  "| entry | first call, no cache | first call, cache cold | "
                  "first call, cache warm | second call (warm) |", "|---|---:|---:|---:|---:|"]
        # under jit, jaxclust's value checks are equinox error_if host callbacks, and JAX
        # never stores a program with host callbacks in the persistent cache;
        # EQX_ON_ERROR=nan turns the checks into NaN outputs (no callback): cacheable
        nan_env = {"EQX_ON_ERROR": "nan"}
        for label, name, extra in (("kmeans", "kmeans", {}), ("sinkhorn", "sinkhorn", {}),
                                   ("sinkhorn-jit", "sinkhorn-jit", {}),
                                   ("sinkhorn-jit, EQX_ON_ERROR=nan", "sinkhorn-jit", nan_env)):
            res = {"none": [], "cold": [], "warm": [], "second": []}
            for _ in range(rounds):
                res["none"].append(_subprocess(name, extra).get("first", float("nan")))
                with tempfile.TemporaryDirectory() as d:
                    env = {"JAX_COMPILATION_CACHE_DIR": d,
                           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0", **extra}
                    res["cold"].append(_subprocess(name, env).get("first", float("nan")))
                    warm = _subprocess(name, env)
                res["warm"].append(warm.get("first", float("nan")))
                res["second"].append(warm.get("second", float("nan")))
            print(label, res, flush=True)
            best = {k: min(v) for k, v in res.items()}
            lines.append(f"| {label} | {_fmt(best['none'])} | {_fmt(best['cold'])} | "
                         f"{_fmt(best['warm'])} | {_fmt(best['second'])} |")
    if not args.no_aot:
        # the batch helper's ahead-of-time measurement (benchmarks/bench_batched.py)
        code = ("import json, sys; sys.path.insert(0, 'benchmarks'); "
                "from bench_batched import sinkhorn_compile_times; "
                "print(json.dumps(sinkhorn_compile_times(n=300, d=8, rounds=3)))")
        env = dict(os.environ)
        env.setdefault("PYTHONPATH", str(HERE.parent))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, cwd=HERE.parent)
        res = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
        print("aot", res, out.stderr[-300:] if out.returncode else "", flush=True)
        lines += ["", "## Jitted Sinkhorn: compile time alone", "",
                  "`jax.jit(f).lower(x, y).compile()` (trace + lowering + XLA, no run) of one "
                  "solve returning the potentials, 300 x 300 points, d = 8, the same epsilon "
                  "(0.05 x std of the cost) and tol 1e-3 for both libraries, caches cleared "
                  "before each, the libraries alternated, median of 3 "
                  "(`bench_batched.sinkhorn_compile_times`).", "",
                  "| jaxclust (mode='auto') | jaxclust (mode='log') | ott-jax | "
                  "jaxclust auto / ott |", "|---:|---:|---:|---:|"]
        if res:
            lines.append(f"| {_fmt(res['jaxclust'])} | {_fmt(res['jaxclust log'])} | "
                         f"{_fmt(res['ott'])} | {res['jaxclust'] / res['ott']:.2f} |")
        else:
            lines.append("| error | | | |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
