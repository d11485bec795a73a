"""Entropic Gromov-Wasserstein (jaxclust vs POT vs ott-jax) and sliced Wasserstein (jaxclust vs
POT), on the same data, interleaved (benchmarks/_common.py protocol).

GW: n = m (default 1000) points, x ~ N(0, I_2), y = a random rotation of x in 3-D plus noise;
C = squared distances / their max; uniform weights; the same epsilon for all three libraries
and a fixed number of outer iterations (POT tol=0, ott min = max iterations, jaxclust a tol
no step reaches) so that every library does the same number of linearised steps. ott-jax
linearises with half of POT's gradient, so it gets ``epsilon / 2`` for the same problem (checked:
its plan then equals ours to 3e-7 in float64, tests/peers/test_pot_gromov.py). The inner solves:
POT float64 Sinkhorn to 1e-9 (its default), jaxclust and ott float32 to 1e-5 (ott's threshold
set to jaxclust's float32 default). Quality: the GW loss of each returned plan, recomputed in
float64 with one formula.

Sliced: n = m points in d = 10, L = 50 projections shared with POT (its
``get_random_projections``), uniform weights (the default: jaxclust's integer-key sort path)
and random weights (argsort + merge path), float32 jaxclust (jitted) vs float64 POT.

Usage: python benchmarks/bench_gw.py [--n 1000] [--iters 10] [--rounds 3] [--part all|gw|sliced]
       [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402

from benchmarks._common import fmt_s, machine_lines, md_table, median, timed  # noqa: E402
from jaxclust.ot import gromov_wasserstein, sliced_wasserstein  # noqa: E402


def gw_loss64(C1, C2, T):
    C1, C2, T = (np.asarray(t, np.float64) for t in (C1, C2, T))
    p, q = T.sum(1), T.sum(0)
    const = (C1**2 @ p)[:, None] + (C2**2 @ q)[None, :]
    return float(np.sum((const - 2.0 * C1 @ T @ C2.T) * T))


def bench_gw(args, rng, x, y):
    n = args.n
    C1, C2 = ot.dist(x, x), ot.dist(y, y)
    C1, C2 = C1 / C1.max(), C2 / C2.max()
    C1j, C2j = jnp.asarray(C1, jnp.float32), jnp.asarray(C2, jnp.float32)

    def ours():
        r = gromov_wasserstein(C1j, C2j, epsilon=args.eps, tol=1e-30, max_iter=args.iters)
        return jax.block_until_ready(r.plan)

    def pot():
        return ot.gromov.entropic_gromov_wasserstein(C1, C2, epsilon=args.eps, tol=0.0,
                                                      max_iter=args.iters)

    from ott.geometry import geometry
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein as ott_gw

    solver = ott_gw.GromovWasserstein(ott_sinkhorn.Sinkhorn(threshold=1e-5),
                                      epsilon=args.eps / 2,
                                      min_iterations=args.iters, max_iterations=args.iters)
    ott_run = jax.jit(lambda a, b: solver(quadratic_problem.QuadraticProblem(
        geometry.Geometry(cost_matrix=a), geometry.Geometry(cost_matrix=b))).matrix)

    def ott_fn():
        with jax.numpy_rank_promotion("allow"):
            return jax.block_until_ready(ott_run(C1j, C2j))

    runners = {"jaxclust": ours, "POT": pot, "ott-jax": ott_fn}
    first, plans, times = {}, {}, {k: [] for k in runners}
    for k, fn in runners.items():
        first[k], plans[k] = timed(fn)
    for _ in range(args.rounds):
        for k, fn in runners.items():
            t, _ = timed(fn)
            times[k].append(t)
    base = median(times["jaxclust"])
    rows = [[k, fmt_s(median(times[k])), fmt_s(first[k]), len(times[k]),
             f"{gw_loss64(C1, C2, plans[k]):.6f}",
             f"{np.abs(np.asarray(plans[k], np.float64).sum(1) - 1 / n).sum():.1e}",
             f"{median(times[k]) / base:.2f}"] for k in runners]
    return ["", f"## Entropic GW, n = m = {n}, epsilon = {args.eps}, {args.iters} outer "
            "iterations", "",
            md_table(["library", "median time", "first call", "runs", "GW loss (f64)",
                      "row-marginal L1 err", "time / jaxclust"], rows), ""]



def bench_sliced(args, rng):
    n = args.n
    # sliced Wasserstein, same projections; uniform (default) and random weights
    d, L = 10, 50
    xs, xt = rng.normal(size=(n, d)), rng.normal(0.5, 1.2, size=(n, d))
    wa, wb = rng.uniform(0.2, 1.0, n), rng.uniform(0.2, 1.0, n)
    wa, wb = wa / wa.sum(), wb / wb.sum()
    proj = ot.sliced.get_random_projections(d, L, seed=0)
    xsj, xtj, pj, waj, wbj = (jnp.asarray(t, jnp.float32) for t in (xs, xt, proj, wa, wb))
    sw = jax.jit(lambda a, b, p: sliced_wasserstein(a, b, projections=p))
    sw_w = jax.jit(lambda a, b, u, v, p: sliced_wasserstein(a, b, u, v, projections=p))
    runners = {
        "jaxclust": lambda: float(sw(xsj, xtj, pj)),
        "POT": lambda: float(ot.sliced_wasserstein_distance(xs, xt, projections=proj)),
        "jaxclust, weights": lambda: float(sw_w(xsj, xtj, waj, wbj, pj)),
        "POT, weights": lambda: float(ot.sliced_wasserstein_distance(xs, xt, wa, wb,
                                                                     projections=proj)),
    }
    load = os.getloadavg()
    first, vals, times = {}, {}, {k: [] for k in runners}
    for k, fn in runners.items():
        first[k], vals[k] = timed(fn)
    for _ in range(args.sliced_rounds):
        for k, fn in runners.items():
            t, _ = timed(fn)
            times[k].append(t)
    rows = []
    for k in runners:
        base = median(times["jaxclust, weights" if "weights" in k else "jaxclust"])
        rows.append([k, fmt_s(median(times[k])), fmt_s(first[k]), len(times[k]),
                     f"{vals[k]:.7f}", f"{median(times[k]) / base:.2f}"])
    return ["", f"## Sliced W_2, n = m = {n}, d = {d}, {L} shared projections", "",
            f"1-min load average when the timed rounds started: {load[0]:.1f} (2 cores).", "",
            md_table(["library", "median time", "first call", "runs", "SW_2",
                      "time / jaxclust (same weights)"], rows), ""]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--part", choices=("all", "gw", "sliced"), default="all")
    ap.add_argument("--sliced-rounds", type=int, default=15)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.n
    x = rng.normal(size=(n, 2))
    q_rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    y = np.c_[x, np.zeros(n)] @ q_rot + 0.05 * rng.normal(size=(n, 3))
    y = y[rng.permutation(n)]
    title = {"all": "Gromov-Wasserstein and sliced Wasserstein: jaxclust vs POT vs ott-jax",
             "gw": "Gromov-Wasserstein: jaxclust vs POT vs ott-jax",
             "sliced": "Sliced Wasserstein: jaxclust vs POT"}[args.part]
    out = [f"# {title}", "",
           "Generated by `python benchmarks/bench_gw.py " + " ".join(sys.argv[1:]) + "`.", "",
           "## Machine", ""] + list(machine_lines())
    if args.part in ("all", "gw"):
        out += bench_gw(args, rng, x, y)
    if args.part in ("all", "sliced"):
        out += bench_sliced(args, rng)
    text = "\n".join(out)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
