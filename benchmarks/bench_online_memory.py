"""Peak memory of the online (chunked) Sinkhorn mode on a problem whose dense plan cannot fit.

n = m = 40,000 points in d = 64: the dense float32 cost or plan alone is 40,000^2 x 4 B =
6.4 GB. The online mode (``chunk_size``) recomputes the cost in blocks of rows, so its
working set is O(chunk_size x m). Each configuration runs in a fresh subprocess and reports
that process's peak resident set size (``ru_maxrss``, which includes the Python interpreter
and the JAX runtime, ~0.3 GB) next to the dense-plan size it avoided.

    python benchmarks/bench_online_memory.py [--n 40000] [--d 64] [--chunk 1024] [--iters 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import machine_lines

CHILD = r"""
import json, resource, sys, time
import jax, jax.numpy as jnp
from jaxclust.ot import default_epsilon, sinkhorn
n, d, chunk, iters = (int(v) for v in sys.argv[1:5])
kx, ky = jax.random.split(jax.random.key(0))
x = jax.random.normal(kx, (n, d))
y = jax.random.normal(ky, (n, d)) + 0.2
eps = default_epsilon(x, y, chunk_size=chunk)
solve = jax.jit(lambda x, y, e: sinkhorn(x, y, epsilon=e, chunk_size=chunk, max_iter=iters,
                                         check_every=min(10, iters)))
t0 = time.perf_counter()
res = jax.block_until_ready(solve(x, y, eps))
wall = time.perf_counter() - t0
cost = float(res.linear_cost)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(eps=float(eps), wall=wall, iters=int(res.n_iters), cost=cost,
                      error=float(res.errors[res.n_iters // min(10, iters) - 1]),
                      peak_gib=peak_kib / 2**20)))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ot_online.md"))
    args = ap.parse_args()

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(args.n), str(args.d), str(args.chunk), str(args.iters)],
        capture_output=True, text=True, check=True, cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    dense_gb = args.n * args.n * 4 / 1e9
    lines = [
        "# Online Sinkhorn: peak memory",
        "",
        *machine_lines(),
        "",
        f"- problem: n = m = {args.n}, d = {args.d}, float32, squared Euclidean, "
        f"epsilon = 0.05 std(C) = {r['eps']:.4f}, chunk_size = {args.chunk}, "
        f"{r['iters']} iterations (compile included in the wall time)",
        f"- dense cost / plan would take {dense_gb:.1f} GB each",
        "",
        "| peak RSS (whole process) | wall time | iterations | last error | <P, C> |",
        "|---:|---:|---:|---:|---:|",
        f"| {r['peak_gib']:.2f} GiB | {r['wall']:.1f} s | {r['iters']} | {r['error']:.2e} "
        f"| {r['cost']:.4f} |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
