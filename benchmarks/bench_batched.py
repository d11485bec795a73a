"""Batched solves: a Python loop of jitted single solves vs ``jit(vmap(solve))`` (issue 15, 1).

For every iterative solver and every configuration (``B`` problems of size ``n``) the script
compiles the single solve and the batched solve ahead of time, runs each once as warm-up,
then times them in interleaved rounds (loop, vmap, loop, vmap, ...) and reports the medians
and the ratio ``loop / vmap`` (above 1: vmap is faster). It also checks that the batched
results equal the unbatched ones: integer and boolean leaves (labels, ``n_iters``,
``converged``) exactly, floating leaves to a relative 1e-4 of the value or of the lane's
largest value of that leaf (float32: a batched matrix product may round differently from a
single one).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_batched.py            # all, B in {8, 64}
    PYTHONPATH=. .venv/bin/python benchmarks/bench_batched.py --quick    # small n, a subset
    PYTHONPATH=. .venv/bin/python benchmarks/bench_batched.py --only sinkhorn kmeans --out /tmp/b.md
    PYTHONPATH=. .venv/bin/python benchmarks/bench_batched.py --sinkhorn-compile  # vs ott-jax
    PYTHONPATH=. .venv/bin/python benchmarks/bench_batched.py --faults   # memory, medium n

``--faults``: for each solver at ``B = 64`` and its medium ``n``, the temporaries of the
compiled ``jit(vmap)`` program (XLA's buffer assignment) and the minor page faults of one call
of it and of one single solve (Linux ``getrusage``): a batched program whose temporaries grow
with ``B`` past glibc's mmap threshold (32 MiB) gets them as fresh pages at every call, which
made some batched solves slower than the loop on a 2-core EPYC VM (``batched.md``, session 31).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine_lines  # noqa: E402

import jaxclust.cluster as jc  # noqa: E402
import jaxclust.ot as jot  # noqa: E402
from jaxclust.diffusion import VPSDE, diffusion_classify  # noqa: E402
from jaxclust.sdp import BurerMonteiro, kmeans_sdp  # noqa: E402

D = 8  # feature dimension of the point clouds
K = 4  # clusters


def _clouds(key, B, n, d=D):
    """``B`` clouds of ``n`` points: a mixture of ``K`` Gaussians with random centres."""
    k1, k2, k3 = jax.random.split(key, 3)
    centres = 3.0 * jax.random.normal(k1, (B, K, d))
    lab = jax.random.randint(k2, (B, n), 0, K)
    return jnp.take_along_axis(centres, lab[..., None], 1) + jax.random.normal(k3, (B, n, d))


def _pair(key, B, n):
    k1, k2 = jax.random.split(key)
    return _clouds(k1, B, n), _clouds(k2, B, n) + 0.5


def _eps(x, y):
    return jot.default_epsilon(x, y)


def _sk(**kw):
    def fn(x, y):
        r = jot.sinkhorn(x, y, epsilon=_eps(x, y), **kw)
        return r.f, r.g, r.n_iters, r.converged
    return fn


def _div_value(x, y):
    return jot.sinkhorn_divergence(x, y, epsilon=_eps(x, y)).divergence


def _div_grad(x, y):
    eps = jax.lax.stop_gradient(_eps(x, y))
    return jax.grad(lambda xx: jot.sinkhorn_divergence(xx, y, epsilon=eps).divergence)(x)


def _scores(key, B, n):
    return (jax.nn.log_softmax(2.0 * jax.random.normal(key, (B, n, max(K, n // 16))), -1),)


def _xkey(key, B, n):
    k1, k2 = jax.random.split(key)
    return _clouds(k1, B, n), jax.random.split(k2, B)


def _kmeans(n_init):
    def fn(x, key):
        r = jc.kmeans(x, K, key=key, n_init=n_init)
        return r.centroids, r.labels, r.inertia, r.n_iters
    return fn


def _soft(x, key):
    r = jc.soft_kmeans(x, K, temperature=1.0, key=key)
    return r


def _skm(x, key):
    return jc.sinkhorn_kmeans(x, K, key=key)


def _gmm(x, key):
    r = jc.gmm(x, K, key=key)
    return r


def _medoids(x, key):
    return jc.kmedoids(x, K)


def _sdp(x, key):
    r = kmeans_sdp(x, K, solver=BurerMonteiro(), key=key)
    return r.labels, r.stats.factor, r.converged


_SDE = VPSDE()
_MEANS = 2.0 * jax.random.normal(jax.random.key(7), (10, 2))


def _eps_fn(x, t, y):
    a, s = _SDE.marginal_coefs(t)
    return s[:, None] * (x - a[:, None] * _MEANS[y])


def _diff_inputs(key, B, n):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (B, 2)) * 2.0, jax.random.split(k2, B)


def _diff(n_timesteps):
    def fn(x, key):
        r = diffusion_classify(_eps_fn, x, key, _SDE, num_classes=10, n_timesteps=n_timesteps)
        return r.label, r.errors
    return fn


#: name -> (inputs(key, B, n) -> batched args, fn(*single args) or fn-from-n, (small n, medium n))
CASES: dict[str, tuple[Callable, Callable, tuple[int, int]]] = {
    "sinkhorn": (_pair, lambda n: _sk(), (64, 512)),
    "sinkhorn log mode": (_pair, lambda n: _sk(mode="log"), (64, 256)),
    "sinkhorn unbalanced": (_pair, lambda n: _sk(tau_a=0.9, tau_b=0.9), (64, 512)),
    "sinkhorn partial": (_pair, lambda n: _sk(mass=0.7), (64, 256)),
    "sinkhorn online": (_pair, lambda n: _sk(chunk_size=n // 4), (64, 256)),
    "sinkhorn_divergence": (_pair, lambda n: _div_value, (64, 256)),
    "grad sinkhorn_divergence": (_pair, lambda n: _div_grad, (64, 256)),
    "swav_codes": (_scores, lambda n: (lambda s: jot.swav_codes(s)), (64, 1024)),
    "p2ot_codes": (_scores, lambda n: (lambda s: jot.p2ot_codes(s, mass=0.5)), (64, 512)),
    "kmeans": (_xkey, lambda n: _kmeans(1), (64, 2000)),
    "kmeans n_init=4": (_xkey, lambda n: _kmeans(4), (64, 2000)),
    "soft_kmeans": (_xkey, lambda n: _soft, (64, 1000)),
    "sinkhorn_kmeans": (_xkey, lambda n: _skm, (64, 256)),
    "gmm": (_xkey, lambda n: _gmm, (64, 1000)),
    "kmedoids": (_xkey, lambda n: _medoids, (64, 256)),
    "kmeans_sdp bm": (_xkey, lambda n: _sdp, (64, 256)),
    "diffusion_classify": (_diff_inputs, lambda n: _diff(n), (64, 256)),
}

QUICK = ["sinkhorn", "sinkhorn log mode", "sinkhorn unbalanced", "sinkhorn partial",
         "grad sinkhorn_divergence", "kmeans", "kmeans n_init=4", "gmm"]


def _ready(tree):
    return jax.block_until_ready(tree)


#: floating leaves of a lane equal the single solve to this, relative to each value and to the
#: lane's largest value (float32: a solve compiled inside the batched program may round
#: differently from the standalone one)
RTOL = 1e-4
#: a lane whose integer leaves (iteration counts, flags) differ: that rounding moved its error
#: across a stopping test (``err < tol``, a label change), so it ran a check more or less and
#: its floating leaves differ by about that check's progress: accepted up to this, reported
RTOL_STOP = 1e-2


def _compare(loop_outs, vmap_out) -> str:
    """'yes' when every lane of the batched output equals the single solve; 'yes, up to the
    stopping test' when the only differing lanes are ones whose integer leaves differ
    (iteration counts: a float32 rounding difference at the stopping threshold) and their
    floating leaves agree to ``RTOL_STOP``; else 'NO' with the differences."""
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                                     *loop_outs)
    pairs = [(np.asarray(a), np.asarray(b)) for a, b in zip(
        jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(vmap_out), strict=True)]
    B = pairs[0][0].shape[0]
    int_bad = np.zeros(B, bool)
    for a, b in pairs:
        if a.dtype.kind in "biu":
            int_bad |= np.any((a != b).reshape(B, -1), axis=1)
    bad, worst = [], 0.0
    for i, (a, b) in enumerate(pairs):
        if a.dtype.kind in "biu":
            continue
        # atol relative to the lane's scale: potentials are O(cost) (~100 here), and float32
        # rounding of a value that size is ~1e-5 absolute
        scale = np.maximum(1.0, np.max(np.abs(np.nan_to_num(a)).reshape(B, -1), axis=1))
        atol = RTOL * scale.reshape((B,) + (1,) * (a.ndim - 1))
        close = np.all((np.isclose(a, b, rtol=RTOL, atol=0.0, equal_nan=True)
                        | (np.abs(a - b) <= atol)).reshape(B, -1), axis=1)
        far = ~close & ~int_bad
        if far.any():
            rel = np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-30)
            bad.append(f"leaf {i}: {int(far.sum())} lanes, max rel. diff {rel:.1e}")
        if (~close & int_bad).any():
            sel = int_bad
            rel = np.max(np.abs(a[sel] - b[sel])) / max(float(np.max(np.abs(a[sel]))), 1e-30)
            worst = max(worst, rel)
    if bad:
        return "NO (" + "; ".join(bad) + ")"
    if worst > RTOL_STOP:
        return f"NO ({int(int_bad.sum())} lanes stop at another check, values differ {worst:.1e})"
    if int_bad.any():
        return (f"yes, up to the stopping test ({int(int_bad.sum())} of {B} lanes: other "
                f"iteration count or flag, values within {max(worst, RTOL):.0e})")
    return "yes"


def bench_one(name, B, n, rounds, key):
    make_inputs, make_fn, _ = CASES[name]
    fn = make_fn(n)
    args = make_inputs(key, B, n)
    lanes = [tuple(a[i] for a in args) for i in range(B)]
    lanes = _ready(lanes)
    t0 = time.perf_counter()
    single = jax.jit(fn).lower(*lanes[0]).compile()
    batched = jax.jit(jax.vmap(fn)).lower(*args).compile()
    t_compile = time.perf_counter() - t0

    def loop():
        return _ready([single(*lane) for lane in lanes])

    def vm():
        return _ready(batched(*args))

    loop_out, vmap_out = loop(), vm()  # warm-up
    same = _compare(loop_out, vmap_out)
    t_loop, t_vmap = [], []
    for _ in range(rounds):
        for fn_, acc in ((loop, t_loop), (vm, t_vmap)):
            t = time.perf_counter()
            fn_()
            acc.append(time.perf_counter() - t)
    tl, tv = statistics.median(t_loop), statistics.median(t_vmap)
    return dict(name=name, B=B, n=n, loop=tl, vmap=tv, ratio=tl / tv, same=same,
                compile=t_compile)


def _table(rows):
    lines = ["| solver | B | n | loop (ms) | jit(vmap) (ms) | loop / vmap | batched == single |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        flag = "" if r["ratio"] >= 1.0 else " (slower)"
        lines.append(f"| {r['name']} | {r['B']} | {r['n']} | {1e3 * r['loop']:.2f} | "
                     f"{1e3 * r['vmap']:.2f} | {r['ratio']:.2f}{flag} | {r['same']} |")
    return lines


def write(rows, out: Path, head: list[str], args):
    text = ["# Batched solves: Python loop vs jit(vmap)", "",
            "Generated by `benchmarks/bench_batched.py"
            + (" --quick" if args.quick else "") + "` (issue 15, section 1).", "",
            *head,
            *([] if jax.default_backend() != "cpu" else [
                "- **Shared machine**: other sessions were compiling and testing on the same 2 "
                "cores during this run; absolute times are noisy, the interleaved ratios less "
                "so."]),
            "",
            f"Per configuration: ahead-of-time compilation of `jit(solve)` and "
            f"`jit(vmap(solve))`, one warm-up call each, then {args.rounds} interleaved rounds; "
            "medians. *loop*: a Python loop of the jitted single solve over the B problems "
            "(inputs already split per problem, results blocked on); *jit(vmap)*: one call on "
            "the stacked inputs. Ratio above 1: vmap is faster. Problems: mixtures of 4 "
            f"Gaussians in d = {D} (k = 4 clusters); Sinkhorn: epsilon = "
            "`default_epsilon(x, y)` (0.05 x std of the cost), tol 1e-3; unbalanced tau = 0.9; "
            "partial mass 0.7; online chunk n/4; codes: (n, n/16) log-probabilities; "
            "kmeans_sdp: BM; diffusion_classify: 10 classes in 2-d, exact noise predictor, "
            "n = number of timesteps.", "",
            *_table(rows), ""]
    out.write_text("\n".join(text))


def sinkhorn_compile_times(n: int = 300, d: int = D, rounds: int = 3) -> dict[str, float]:
    """Compile time of a jitted Sinkhorn solve, jaxclust vs ott-jax, on the same problem
    (issue 15, section 3): two clouds of ``n`` points in ``d`` dimensions, the same concrete
    epsilon (0.05 x std of the cost), tol 1e-3 (ott's default threshold), each library's
    default mode (jaxclust ``mode="auto"``: kernel path with log-domain fallback; ott:
    ``lse_mode=True``), the potentials as outputs. Each round clears JAX's caches and times
    ``jax.jit(f).lower(x, y).compile()`` (trace, lowering and XLA compilation), alternating
    the two libraries; returns the medians in seconds (``"jaxclust"``, ``"jaxclust log"``,
    ``"ott"``)."""
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    x, y = (c[0] for c in _pair(jax.random.key(1), 1, n))
    eps = float(jot.default_epsilon(x, y))

    def ours(x, y, mode="auto"):
        r = jot.sinkhorn(x, y, epsilon=eps, tol=1e-3, mode=mode)
        return r.f, r.g

    def theirs(x, y):
        geom = pointcloud.PointCloud(x, y, epsilon=eps)
        out = ott_sinkhorn.Sinkhorn(threshold=1e-3)(linear_problem.LinearProblem(geom))
        return out.f, out.g

    fns = {"jaxclust": ours, "jaxclust log": lambda x, y: ours(x, y, "log"), "ott": theirs}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            jax.clear_caches()
            t = time.perf_counter()
            jax.jit(f).lower(x, y).compile()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def faults(names, B=64):
    """Print, per solver (medium ``n``), the temporaries of ``jit(vmap)`` and the minor page
    faults of one batched call and of one single solve (see the module docstring)."""
    import resource

    def flt():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    for name in names:
        inputs, make, sizes = CASES[name]
        n = sizes[1]
        args = inputs(jax.random.key(0), B, n)
        fn = make(n)
        vj, sj = jax.jit(jax.vmap(fn)), jax.jit(fn)
        temp = vj.lower(*args).compile().memory_analysis().temp_size_in_bytes
        one = tuple(a[0] for a in args)
        jax.block_until_ready(vj(*args))
        jax.block_until_ready(sj(*one))
        f0 = flt()
        jax.block_until_ready(vj(*args))
        fv = flt() - f0
        f0 = flt()
        jax.block_until_ready(sj(*one))
        fs = flt() - f0
        print(f"{name:26s} B={B} n={n:5d}  jit(vmap) temporaries {temp / 2**20:7.1f} MiB, "
              f"page faults per call {fv:6d} ({fv * 4 / 1024:6.1f} MiB); single {fs:5d}",
              flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small n only, a subset of solvers")
    ap.add_argument("--only", nargs="*", help="substrings of solver names to run")
    ap.add_argument("--batches", nargs="*", type=int, default=[8, 64])
    ap.add_argument("--sizes", choices=["small", "medium", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batched.md")
    ap.add_argument("--sinkhorn-compile", action="store_true",
                    help="only: compile time of jitted sinkhorn vs ott-jax (issue 15, 3)")
    ap.add_argument("--faults", action="store_true",
                    help="only: temporaries and page faults of jit(vmap) at B = 64, medium n")
    args = ap.parse_args(argv)
    if args.faults:
        faults([c for c in CASES if not args.only or any(s in c for s in args.only)])
        return
    if args.sinkhorn_compile:
        load = os.getloadavg()[0]
        t = sinkhorn_compile_times()
        print(" | ".join(f"{k}: {v:.2f} s" for k, v in t.items())
              + f" | jaxclust / ott: {t['jaxclust'] / t['ott']:.2f} (1-min load {load:.1f})")
        return
    load0 = os.getloadavg()
    head = machine_lines(packages=("jax", "jaxlib", "numpy"))
    names = QUICK if args.quick else list(CASES)
    if args.only:
        names = [c for c in CASES if any(s in c for s in args.only)]
    sizes = (0,) if args.quick or args.sizes == "small" else (1,) if args.sizes == "medium" \
        else (0, 1)
    rows = []
    key = jax.random.key(0)
    for name in names:
        for si in sizes:
            n = CASES[name][2][si]
            for B in args.batches:
                r = bench_one(name, B, n, args.rounds, key)
                rows.append(r)
                print(f"{name:26s} B={B:3d} n={n:5d} loop {1e3 * r['loop']:9.2f} ms  vmap "
                      f"{1e3 * r['vmap']:9.2f} ms  ratio {r['ratio']:6.2f}  same {r['same']}"
                      f"  (compile {r['compile']:.1f} s, load {os.getloadavg()[0]:.1f})",
                      flush=True)
                write(rows, args.out, head + [
                    f"- load average when the run started (1/5/15 min): "
                    f"{' / '.join(f'{v:.2f}' for v in load0)}; at the last row: "
                    f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}"], args)


if __name__ == "__main__":
    main()
