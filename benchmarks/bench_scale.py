"""Weak scaling of the sharded algorithms on 1, 2, 4, 8 simulated CPU devices.

    python benchmarks/bench_scale.py            # full: P in {1, 2, 4, 8}
    python benchmarks/bench_scale.py --quick    # smaller problems, fewer rounds
    python benchmarks/bench_scale.py --devices 1 2 --out /tmp/scale.md

Weak scaling: a fixed number of points PER DEVICE, so the global problem grows with the
device count P. For every P a fresh process is started with
``XLA_FLAGS=--xla_force_host_platform_device_count=P`` (the flag must be set before JAX
starts) and runs

* sharded k-means (``jaxclust.distributed.kmeans``, Lloyd iterations after k-means++), and
* sharded online Sinkhorn (``jaxclust.distributed.sinkhorn``, points sharded, y replicated).

Time per iteration: the median wall time of a run with ``T2`` iterations minus that of a run
with ``T1`` iterations, divided by the difference in iterations (so compilation, seeding and
setup cancel), after warm-up, the two runs interleaved. Bytes per iteration: read from the
compiled HLO of the same programs (the collectives inside the iteration loop, per device).

The simulated devices are threads of one process sharing this machine's cores: on 2 cores,
8 "devices" do 8x the work on the same 2 cores, so here the time per iteration GROWS with P.
These runs measure the program structure (what is communicated, that it does not grow with
n) and the single-device compute; the projection for real GPUs is computed, not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

from _common import fmt_s, machine_lines, md_table, median, timed  # noqa: E402

# problem sizes per device (full / quick)
SIZES = {
    "full": dict(km_n=50_000, km_d=32, km_k=32, sk_n=4096, sk_m=256, sk_d=16, rounds=5),
    "quick": dict(km_n=5_000, km_d=16, km_k=16, sk_n=1024, sk_m=128, sk_d=8, rounds=3),
}
KM_T = (3, 13)  # Lloyd iterations of the two timed runs
SK_T = (10, 60)  # Sinkhorn iterations of the two timed runs
CHECK_EVERY = 10

# projection constants (assumptions, stated in the output)
GPU = dict(name="H100 SXM", flops=50e12, hbm=3.0e12, link=300e9, latency=15e-6)


# ------------------------------------------------------------------------------------------
# collectives of compiled HLO, per loop


_COLL = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
          "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8}
_SHAPE = re.compile(r"\b(pred|[su](?:8|16|32|64)|bf16|f16|f32|f64)\[([0-9,]*)\]")
_INSTR = re.compile(r"^\s+(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s(" + "|".join(_COLL)
                    + r")(-start)?\(")
_CALLED = re.compile(r"(?:to_apply|calls|true_computation|false_computation)=%?([\w.\-]+)"
                     r"|branch_computations=\{([^}]*)\}")
_WHILE = re.compile(r"\swhile\(.*condition=%?([\w.\-]+), body=%?([\w.\-]+)")
_TRIP = re.compile(r'known_trip_count":\{"n":"(\d+)"')


def _nbytes(type_text: str, kind: str, async_start: bool) -> int:
    shapes = _SHAPE.findall(type_text)
    if async_start and kind != "all-reduce" and len(shapes) > 1:
        shapes = shapes[len(shapes) // 2:]  # (operands, results) tuple: keep the results
    total = 0
    for dt, dims in shapes:
        size = 1
        for s in dims.split(","):
            if s:
                size *= int(s)
        total += _BYTES[dt] * size
    return total


def hlo_loops(text: str) -> dict:
    """Collectives per ``while`` loop of an HLO module.

    Returns ``{"loops": [...], "top": {...}}``: each loop has its body name, its known trip
    count (``None`` for a data-dependent loop), the collectives executed once per trip
    outside nested loops (``bytes``, ``ops``, ``shapes``, ``kinds``) and its nested loops'
    body names; ``top`` the same for collectives outside every loop.
    """
    comps: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            head = line.split("(")[0].split()
            cur = head[-1].lstrip("%") if head else None
            comps[cur] = []
        elif cur is not None and line.startswith(" "):
            comps[cur].append(line)

    def own(name, seen=None):
        """Collectives of a computation and the non-loop computations it calls."""
        seen = set() if seen is None else seen
        if name in seen or name not in comps:
            return [], []
        seen.add(name)
        ops, loops = [], []
        for line in comps[name]:
            m = _INSTR.match(line)
            if m:
                ops.append((m.group(2), _nbytes(m.group(1), m.group(2), bool(m.group(3))),
                            tuple(tuple(int(s) for s in dims.split(",") if s)
                                  for _, dims in _SHAPE.findall(m.group(1)))))
            w = _WHILE.search(line)
            if w:
                trip = _TRIP.search(line)
                loops.append((w.group(2), int(trip.group(1)) if trip else None))
                continue
            for cm in _CALLED.finditer(line):
                for callee in filter(None, re.split(r"[,\s%]+", cm.group(1) or cm.group(2))):
                    o, lp = own(callee, seen)
                    ops += o
                    loops += lp
        return ops, loops

    def summary(ops):
        return dict(bytes=sum(b for _, b, _ in ops), ops=len(ops),
                    kinds=sorted({k for k, _, _ in ops}),
                    shapes=sorted({s for _, _, sh in ops for s in sh}))

    entry = next((n for n in comps if n.startswith("main")), None)
    for line in text.splitlines():
        if line.startswith("ENTRY"):
            entry = line.split("(")[0].split()[-1].lstrip("%")
    top_ops, todo = own(entry)
    loops, done = [], set()
    while todo:
        body, trip = todo.pop()
        if body in done:
            continue
        done.add(body)
        ops, nested = own(body)
        loops.append(dict(body=body, trip=trip, nested=[b for b, _ in nested], **summary(ops)))
        todo += nested
    return dict(loops=loops, top=summary(top_ops))


def per_iteration(info: dict, inner_trip: int | None) -> dict:
    """Bytes and collective ops per iteration of the main (data-dependent) loop.

    With ``inner_trip`` (Sinkhorn: blocks of ``check_every`` rounds) the iteration is the
    inner loop of that trip count; the block loop's own collectives are spread over it.
    """
    loops = {lp["body"]: lp for lp in info["loops"]}
    mains = [lp for lp in info["loops"] if lp["trip"] is None and (
        lp["bytes"] or any(loops[b]["bytes"] for b in lp["nested"] if b in loops))]
    if not mains:
        return dict(bytes=0, ops=0, shapes=[], kinds=[])
    main = max(mains, key=lambda lp: lp["bytes"] + sum(loops[b]["bytes"] for b in lp["nested"]
                                                      if b in loops))
    if inner_trip is None:
        return dict(bytes=main["bytes"], ops=main["ops"], shapes=main["shapes"],
                    kinds=main["kinds"])
    inner = [loops[b] for b in main["nested"] if b in loops and loops[b]["trip"] == inner_trip]
    b_in = sum(lp["bytes"] for lp in inner)
    o_in = sum(lp["ops"] for lp in inner)
    shapes = sorted({s for lp in inner + [main] for s in lp["shapes"]})
    kinds = sorted({k for lp in inner + [main] for k in lp["kinds"]})
    return dict(bytes=b_in + main["bytes"] / inner_trip, ops=o_in + main["ops"] / inner_trip,
                shapes=shapes, kinds=kinds)


# ------------------------------------------------------------------------------------------
# one device count (child process)


def child(p: int, size: str) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxclust.distributed import _mesh as jd, _ot

    try:
        from jaxclust.distributed._cluster import kmeans as sharded_kmeans
    except ImportError:  # the sharded k-means is not in this checkout
        sharded_kmeans = None

    assert jax.device_count() == p, (jax.device_count(), p)
    cfg = SIZES[size]
    mesh = jd.make_mesh()
    rng = np.random.default_rng(0)
    out: dict = {"devices": p}

    def timed_pair(run_a, run_b, rounds):
        run_a()
        run_b()  # warm-up
        ta, tb = [], []
        for _ in range(rounds):
            ta.append(timed(run_a)[0])
            tb.append(timed(run_b)[0])
        return median(ta), median(tb)

    # ---- k-means ---------------------------------------------------------------------
    if sharded_kmeans is not None:
        n, d, k = cfg["km_n"] * p, cfg["km_d"], cfg["km_k"]
        pts = jd.shard(rng.uniform(size=(n, d)).astype(np.float32), mesh)
        key = jax.random.key(0)

        def km(t):
            fn = jax.jit(lambda q: sharded_kmeans(q, k, key=key, max_iter=t, tol=0.0))
            compiled = fn.lower(pts).compile()
            return compiled, (lambda: jax.block_until_ready(compiled(pts)))

        (_, r1), (c2, r2) = km(KM_T[0]), km(KM_T[1])
        it1, it2 = int(r1().n_iters), int(r2().n_iters)
        t1, t2 = timed_pair(r1, r2, cfg["rounds"])
        info = hlo_loops(c2.as_text())
        out["kmeans"] = dict(n=n, d=d, k=k, iters=[it1, it2], t=[t1, t2],
                             per_iter=(t2 - t1) / max(it2 - it1, 1),
                             comm=per_iteration(info, None), top=info["top"])

    # ---- Sinkhorn --------------------------------------------------------------------
    n, m, d = cfg["sk_n"] * p, cfg["sk_m"], cfg["sk_d"]
    pts = jd.shard(rng.standard_normal((n, d)).astype(np.float32), mesh)
    y = jnp.asarray(rng.standard_normal((m, d)).astype(np.float32) + 0.5)

    def sk(t):
        fn = jax.jit(lambda q, yy: _ot.sinkhorn(q, yy, epsilon=1.0, tol=1e-12, max_iter=t,
                                                check_every=CHECK_EVERY, chunk_size=1024))
        compiled = fn.lower(pts, y).compile()
        return compiled, (lambda: jax.block_until_ready(compiled(pts, y)))

    (_, r1), (c2, r2) = sk(SK_T[0]), sk(SK_T[1])
    it1, it2 = int(r1().n_iters), int(r2().n_iters)
    t1, t2 = timed_pair(r1, r2, cfg["rounds"])
    info = hlo_loops(c2.as_text())
    out["sinkhorn"] = dict(n=n, m=m, d=d, iters=[it1, it2], t=[t1, t2],
                           per_iter=(t2 - t1) / max(it2 - it1, 1),
                           comm=per_iteration(info, CHECK_EVERY), top=info["top"])
    return out


# ------------------------------------------------------------------------------------------
# projection


def project(alg: str, r: dict, p: int, scale: float = 1.0) -> dict:
    """Projected time per iteration on ``p`` GPUs for ``scale`` x the points per device.

    compute = max(FLOPs / peak, bytes read / HBM bandwidth) of one device's share;
    communication = ops x latency + 2 (p - 1) / p x bytes / link bandwidth (ring all-reduce).
    """
    n_loc = r["n"] / p * scale
    if alg == "kmeans":
        d, k = r["d"], r["k"]
        flops = 2.0 * n_loc * d * k * 2  # distances (one matmul) + the centroid sums
        mem = 4.0 * n_loc * d  # the local points are read once
    else:
        m, d = r["m"], r["d"]
        flops = 2 * (2.0 * n_loc * m * d + 6.0 * n_loc * m)  # two half-steps: cost + LSE
        mem = 4.0 * (n_loc * d + m * d)
    compute = max(flops / GPU["flops"], mem / GPU["hbm"])
    c = r["comm"]
    comm = 0.0 if p == 1 else c["ops"] * GPU["latency"] + 2 * (p - 1) / p * c["bytes"] / GPU["link"]
    return dict(n_loc=n_loc, compute=compute, comm=comm, total=compute + comm)


# ------------------------------------------------------------------------------------------
# driver


def run_child(p: int, size: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                        + f" --xla_force_host_platform_device_count={p}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, __file__, "--child", str(p), "--size", size],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"P = {p} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_bytes(b: float) -> str:
    return f"{b:,.0f} B" if b < 10_000 else f"{b / 1024:,.1f} KiB"


def report(results: list[dict], size: str) -> str:
    cfg = SIZES[size]
    lines = ["# Weak scaling on simulated CPU devices", ""]
    lines += machine_lines(packages=("jax", "jaxlib", "numpy"))
    lines += [
        "",
        f"- per device: k-means {cfg['km_n']:,} points, d = {cfg['km_d']}, k = {cfg['km_k']} "
        f"(uniform data, Lloyd after k-means++); Sinkhorn {cfg['sk_n']:,} points vs "
        f"m = {cfg['sk_m']} replicated, d = {cfg['sk_d']}, epsilon = 1, online "
        f"(chunk_size 1024), check_every {CHECK_EVERY}",
        f"- time per iteration = (median time of {KM_T[1]} - of {KM_T[0]} Lloyd iterations) / "
        f"10 and (median of {SK_T[1]} - of {SK_T[0]} Sinkhorn iterations) / 50, "
        f"{cfg['rounds']} interleaved rounds after warm-up; compilation excluded",
        "- bytes per iteration: collectives inside the iteration loop of the compiled HLO "
        "(result buffer per device; a ring all-reduce sends about twice that over the wire). "
        "At P = 1 the compiled program keeps its all-reduces, but over one device they move "
        "nothing",
        "- the k-means rows include a per-iteration all-gather of `(1, P, k)`: each device's "
        "k farthest-point candidates for the empty-cluster repair (values and indices), not "
        "the points",
        "- **The P simulated devices share this machine's cores: the total work grows with P "
        "and runs on the same cores, so the time per iteration here grows about linearly with "
        "P. This is expected and says nothing about real multi-device speed; what carries "
        "over is the communication volume, which stays constant in n.**",
        "",
    ]
    for alg, title in (("kmeans", "Sharded k-means (Lloyd iteration)"),
                       ("sinkhorn", "Sharded online Sinkhorn (one g- and f-update)")):
        rows = []
        for r in results:
            if alg not in r:
                continue
            a = r[alg]
            c = a["comm"]
            shapes = ", ".join("(" + ",".join(map(str, s)) + ")" for s in c["shapes"]) or "-"
            rows.append([r["devices"], f"{a['n']:,}", f"{a['iters'][0]} / {a['iters'][1]}",
                         f"{fmt_s(a['t'][0])} / {fmt_s(a['t'][1])}", fmt_s(a["per_iter"]),
                         f"{a['per_iter'] / results[0][alg]['per_iter']:.2f}"
                         if alg in results[0] else "-",
                         _fmt_bytes(c["bytes"]), f"{c['ops']:g}",
                         ", ".join(c["kinds"]) or "none", shapes])
        if not rows:
            lines += [f"## {title}", "", "(not run: the sharded k-means is not in this "
                      "checkout)", ""]
            continue
        lines += [f"## {title}", "", md_table(
            ["devices P", "global n", "iterations (runs 1 / 2)", "median time (runs 1 / 2)",
             "time / iteration", "vs P = 1", "bytes / iteration",
             "collectives / iteration", "kinds", "buffer shapes"], rows), ""]
    # projection
    lines += ["## Projection for real GPUs (computed, NOT measured)", "",
              f"Assumptions: {GPU['name']}-class devices, {GPU['flops'] / 1e12:.0f} TFLOP/s "
              f"sustained float32, {GPU['hbm'] / 1e12:.1f} TB/s HBM, NVLink all-reduce "
              f"bandwidth {GPU['link'] / 1e9:.0f} GB/s per device and {GPU['latency'] * 1e6:.0f}"
              " µs latency per collective. Per iteration: compute = max(FLOPs / peak, bytes "
              "read / HBM bandwidth) of one device's share (weak scaling: constant in P); "
              "communication = collectives x latency + 2 (P - 1)/P x measured bytes / link "
              "bandwidth (ring all-reduce). The bytes and collective counts are the measured "
              "ones above (they do not depend on n). Two sizes: the benchmark's, and 1000x "
              "the points per device (where GPUs are worth using).", ""]
    rows = []
    last = results[-1]
    for alg in ("kmeans", "sinkhorn"):
        if alg not in last:
            continue
        for scale in (1.0, 1000.0):
            for r in results:
                p = r["devices"]
                pr = project(alg, dict(r[alg]), p, scale)
                rows.append([alg, p, f"{pr['n_loc']:,.0f}", fmt_s(pr["compute"]),
                             fmt_s(pr["comm"]), fmt_s(pr["total"]),
                             f"{pr['compute'] / pr['total']:.0%}"])
    lines += [md_table(["algorithm", "GPUs P", "points / GPU", "compute", "communication",
                        "total / iteration", "parallel efficiency"], rows), ""]
    lines += ["Reading: measured here, only the communication columns carry over (constant "
              "in n, a few KiB per iteration); the times are those of P simulated devices "
              "time-sharing 2 cores with other jobs, and their ratios are noise-dominated. "
              "Projected: with a few thousand points per device an iteration is so short that "
              "the all-reduce latency dominates (sharding does not pay); with millions of "
              "points per device the compute dominates and the weak-scaling efficiency "
              "approaches 100%, because the communicated bytes do not grow with n.", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "scale.md"))
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--size", default="full", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.size)))
        return
    size = "quick" if args.quick else "full"
    results = []
    for p in args.devices:
        t, r = timed(lambda p=p: run_child(p, size))
        print(f"P = {p}: {t:.0f} s; " + "; ".join(
            f"{a} {fmt_s(r[a]['per_iter'])}/it, {r[a]['comm']['bytes']:.0f} B/it"
            for a in ("kmeans", "sinkhorn") if a in r), flush=True)
        results.append(r)
    text = report(results, size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
