"""Entropic OT benchmark: jaxclust vs ott-jax (default Sinkhorn) vs POT on the same problems.

    python benchmarks/bench_ot.py            # full: n in {512, 2048, 4096, 16384} + gradient
    python benchmarks/bench_ot.py --quick    # n in {512, 2048}, short time budgets
    python benchmarks/bench_ot.py --sizes 512 --scales 0.05 --no-grad --out /tmp/ot.md

Problem: x, y ~ N(0, I_32) (y shifted by +0.5), float32, uniform weights, squared Euclidean
cost, epsilon = scale * std(C) (scale 0.05 is ott-jax's default rule) passed as the same
absolute value to everyone, tolerance 1e-3 on the L1 marginal error checked every 10
iterations. Every returned solution is re-evaluated in float64 by `evaluate` (plan rebuilt
from the returned potentials, cost recomputed in float64, in row chunks).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import ot as pot  # noqa: E402
from _common import Protocol, fmt_s, jax_prepare, machine_lines, md_table, median, timed  # noqa: E402
from ott.geometry.pointcloud import PointCloud  # noqa: E402
from ott.solvers import linear  # noqa: E402

from jaxclust.ot import sinkhorn  # noqa: E402

D, SHIFT, TOL = 32, 0.5, 1e-3
REF = "ott-jax"  # reference for the cost differences
GRAD_REF = "ott-jax implicit (default)"  # ... and the gradient differences


# ------------------------------------------------------------------------------------------
# data and float64 evaluation


def make_data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)).astype(np.float32)
    y = (rng.standard_normal((n, D)) + SHIFT).astype(np.float32)
    return x, y


def cost_rows(x, y, lo, hi):
    """Rows ``lo:hi`` of the squared Euclidean cost, in float64."""
    xd, yd = x[lo:hi].astype(np.float64), y.astype(np.float64)
    c = (xd * xd).sum(1)[:, None] + (yd * yd).sum(1)[None, :] - 2.0 * xd @ yd.T
    return np.maximum(c, 0.0)


def cost_std(x, y, chunk=1024) -> float:
    s = s2 = 0.0
    for lo in range(0, len(x), chunk):
        c = cost_rows(x, y, lo, lo + chunk)
        s, s2 = s + c.sum(), s2 + (c * c).sum()
    k = len(x) * len(y)
    return math.sqrt(max(s2 / k - (s / k) ** 2, 0.0))


def evaluate(f, g, eps, x, y, chunk=1024) -> dict:
    """Float64 errors, cost and objective of ``P = exp((f_i + g_j - C_ij) / eps)``."""
    f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
    n, m = len(x), len(y)
    la, lb = -math.log(n), -math.log(m)  # uniform weights
    row, col, cost, ent = np.empty(n), np.zeros(m), 0.0, 0.0
    for lo in range(0, n, chunk):
        c = cost_rows(x, y, lo, lo + chunk)
        logp = (f[lo:lo + chunk, None] + g[None, :] - c) / eps
        p = np.exp(logp)
        row[lo:lo + chunk] = p.sum(1)
        col += p.sum(0)
        cost += (p * c).sum()
        ent += np.where(p > 0, p * (logp - la - lb), 0.0).sum()
    err_row, err_col = np.abs(row - 1.0 / n).sum(), np.abs(col - 1.0 / m).sum()
    kl = ent - row.sum() + 1.0  # KL(P | a x b), sum(a x b) = 1
    return dict(err=err_row + err_col, err_row=err_row, err_col=err_col, cost=cost,
                obj=cost + eps * kl)


# ------------------------------------------------------------------------------------------
# libraries: each returns a fresh solve(...) -> (f, g, n_iters, converged) as numpy


def jaxclust_solve(max_iter):
    def solve(x, y, eps):
        r = sinkhorn(x, y, epsilon=eps, tol=TOL, max_iter=max_iter)
        return r.f, r.g, r.n_iters, r.converged

    return solve


def ott_solve(max_iter):
    def solve(x, y, eps):
        out = linear.solve(PointCloud(x, y, epsilon=eps), threshold=TOL,
                           max_iterations=max_iter)
        return out.f, out.g, out.n_iters, out.converged

    return solve


def pot_solver(method, n_iter):
    """POT on the float64 cost, run for exactly ``n_iter`` iterations (see the notes)."""
    fn = pot.bregman.sinkhorn_log if method == "log" else pot.bregman.sinkhorn_knopp

    def solve(C, eps):
        w = np.full(len(C), 1.0 / len(C))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, log = fn(w, w, C, reg=eps, stopThr=0.0, numItermax=n_iter, log=True, warn=False)
        if any("numerical errors" in str(c.message) for c in caught):
            raise FloatingPointError("POT stopped on numerical errors (kernel under/overflow)")
        if method == "log":
            f, g = eps * log["log_u"], eps * log["log_v"]
        else:
            with np.errstate(divide="ignore"):
                f, g = eps * np.log(log["u"]), eps * np.log(log["v"])
        return f, g, log["niter"] + 1, None  # converged: decided by the float64 check

    return solve


# ------------------------------------------------------------------------------------------
# forward benchmark


def bench_forward(n, scale, args, history, notes):
    x, y = make_data(n, args.seed)
    eps = args.scale_std[n] * scale
    xj, yj, epsj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(eps, jnp.float32)
    bench, res, skipped = Protocol(args.budget, args.repeats), {}, {}

    def start(name, prepare, est, how):
        """Skip if estimated too slow, else compile and warm up."""
        if est is not None and est > args.max_run:
            skipped[name] = f"estimated {fmt_s(est)} per run > --max-run ({how})"
            return
        try:
            out = bench.add(name, prepare)
        except FloatingPointError as e:
            skipped[name] = str(e)
            return
        res[name] = dict(iters=int(out[2]), converged=out[3])
        print(f"  {name:<11s} warm-up {fmt_s(bench.info[name]['first'])}, "
              f"{res[name]['iters']} iters", flush=True)

    def extrapolated(name):
        prev = history.get((name, scale))
        return None if prev is None else prev[1] * (n / prev[0]) ** 2

    for name, solve in (("jaxclust", jaxclust_solve), ("ott-jax", ott_solve)):
        start(name, jax_prepare(solve(args.max_iter), xj, yj, epsj), extrapolated(name),
              "scaled from the previous n")
    pot_methods = [] if args.no_pot else ["log"] + (
        ["kernel"] if scale >= args.pot_kernel_min_scale else [])
    if pot_methods:
        C = np.concatenate([cost_rows(x, y, lo, lo + 1024) for lo in range(0, n, 1024)])
        ref = res.get("ott-jax") or res.get("jaxclust")
    for method in pot_methods:
        name = f"POT {method}"
        if ref is None:
            skipped[name] = "no jax solver ran, so the iteration count is unknown"
            continue
        est = extrapolated(name)
        if est is None or est <= args.max_run:
            try:  # 10-iteration probe, scaled to the iterations POT will run
                t10, _ = timed(lambda m=method: pot_solver(m, 10)(C, eps))
                est = t10 / 10 * ref["iters"]
            except FloatingPointError as e:
                skipped[name] = str(e)
                continue
        solve = pot_solver(method, ref["iters"])
        start(name, lambda s=solve: (lambda: s(C, eps)), est, "10-iteration probe")
    for name, v in bench.run().items():
        r, out = res[name], v["out"]
        r.update(evaluate(out[0], out[1], eps, x, y), time=median(v["times"]),
                 reps=len(v["times"]), compile=None if name.startswith("POT") else v["compile"],
                 first=v["first"])
        if r["converged"] is None:
            r["converged"] = r["err"] < TOL
        history[(name, scale)] = (n, r["time"])
    for name, why in skipped.items():
        notes.append(f"n={n}, scale {scale}: {name} skipped: {why}.")
    return eps, res, skipped


def forward_rows(n, scale, eps, res, skipped):
    t0 = res.get("jaxclust", {}).get("time")
    c_ref = res.get(REF, {}).get("cost")
    rows = []
    for name, r in res.items():
        rel = "-" if c_ref is None or name == REF else f"{abs(r['cost'] - c_ref) / c_ref:.1e}"
        rows.append([
            n, f"{scale} ({eps:.4g})", name, fmt_s(r["time"]), r["reps"], fmt_s(r["compile"]),
            r["iters"], "yes" if r["converged"] else "**no**", f"{r['err']:.2e}",
            f"{r['err_row']:.1e} / {r['err_col']:.1e}", f"{r['cost']:.6f}", f"{r['obj']:.6f}",
            rel, "-" if t0 is None else f"{r['time'] / t0:.2f}",
        ])
    rows += [[n, f"{scale} ({eps:.4g})", name, "skipped"] + ["-"] * 10 for name in skipped]
    return rows


FWD_HEAD = ["n", "scale (eps)", "library", "median time", "runs", "compile", "iters",
            "converged", "L1 err (f64)", "row / col err", "cost <P,C>", "objective",
            f"rel. cost diff vs {REF}", "time / jaxclust"]


# ------------------------------------------------------------------------------------------
# gradient benchmark: d/dx <P(x), W>


def grad_fns(max_iter):
    def jc(implicit):
        def loss(x, y, w, eps):
            r = sinkhorn(x, y, epsilon=eps, tol=TOL, max_iter=max_iter, implicit=implicit)
            return jnp.sum(r.plan * w)
        return jax.grad(loss)

    def ott(implicit):
        kw = {} if implicit else {"implicit_diff": None}

        def loss(x, y, w, eps):
            out = linear.solve(PointCloud(x, y, epsilon=eps), threshold=TOL,
                               max_iterations=max_iter, **kw)
            return jnp.sum(out.matrix * w)
        return jax.grad(loss)

    return {"jaxclust implicit": jc(True), "jaxclust unrolled": jc(False),
            GRAD_REF: ott(True), "ott-jax unrolled": ott(False)}


def bench_grad(n, scale, args):
    x, y = make_data(n, args.seed)
    w = np.random.default_rng(args.seed + 1).random((n, n)).astype(np.float32)
    eps = cost_std(x, y) * scale
    a = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(w), jnp.asarray(eps, jnp.float32))
    bench, failed = Protocol(args.budget, args.repeats), {}
    for name, fn in grad_fns(args.grad_max_iter).items():
        try:
            bench.add(name, jax_prepare(fn, *a))
        except Exception as e:  # e.g. a linear solver giving up: report, don't abort
            failed[name] = _first_line(e) or type(e).__name__
            print(f"  {name:<27s} FAILED {failed[name]}", flush=True)
            continue
        print(f"  {name:<27s} compile {fmt_s(bench.info[name]['compile'])}, warm-up "
              f"{fmt_s(bench.info[name]['first'])}", flush=True)
    info = bench.run()
    ref_name = GRAD_REF if GRAD_REF in info else "jaxclust implicit"
    ref = info[ref_name]["out"].astype(np.float64)
    t0 = median(info["jaxclust implicit"]["times"]) if "jaxclust implicit" in info else None
    rows = []
    for name, v in info.items():
        t = median(v["times"])
        rel = np.linalg.norm(v["out"] - ref) / np.linalg.norm(ref)
        rows.append([n, f"{scale} ({eps:.4g})", name, fmt_s(t), len(v["times"]),
                     fmt_s(v["compile"]), f"{rel:.1e}", "-" if t0 is None else f"{t / t0:.2f}"])
    rows += [[n, f"{scale} ({eps:.4g})", name, f"failed: {why}", "-", "-", "-", "-"]
             for name, why in failed.items()]
    fwd = jax.jit(jaxclust_solve(args.grad_max_iter))(a[0], a[1], a[3])
    jc, ott = info.get("jaxclust implicit"), info.get(GRAD_REF)
    target = None if jc is None or ott is None else (
        median(ott["times"]) / median(jc["times"]),
        np.linalg.norm(jc["out"] - ott["out"]) / np.linalg.norm(ott["out"]))
    return rows, (int(fwd[2]), bool(fwd[3]), ref_name, target)


def _first_line(e: BaseException, limit: int = 160) -> str:
    """The innermost ``SomeError: message`` line of a (possibly wrapped) exception."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception): ", ln)]
    text = errs[-1] if errs else lines[0] if lines else ""
    return text.split(". ")[0][:limit]


GRAD_HEAD = ["n", "scale (eps)", "gradient", "median time", "runs", "compile",
             "rel. diff vs reference (see below)", "time / jaxclust implicit"]


# ------------------------------------------------------------------------------------------
# report


NOTES = [
    "**Timing.** One process. Per configuration each jax function is compiled ahead of time "
    "(`jax.jit(f).lower(*args).compile()`: tracing + lowering + XLA compilation, timed as "
    "*compile*, so the noise of a loaded machine does not leak into it as it would with "
    "first call - steady state; on an idle machine the two agree), with epsilon an "
    "argument; each library then runs once as warm-up, then all run in interleaved rounds "
    "(each once per round) while their samples fit in the time budget (at most the max "
    "runs); *median time* is the median of those samples (*runs*). A library whose warm-up "
    "run alone exceeds the budget is not run again: that run is its one sample. jax calls "
    "end by converting the outputs to numpy (blocking). POT compiles nothing; a "
    "10-iteration probe precedes it. POT times exclude building the float64 cost matrix it "
    "is given (jaxclust and ott-jax build theirs from the points inside the timed call).",
    "**Errors.** *L1 err (f64)* = ||P1 - a||_1 + ||P^T1 - b||_1 of the returned solution, "
    "with P rebuilt in float64 as exp((f_i + g_j - C_ij)/eps) from the returned potentials "
    "(POT: f = eps log u, g = eps log v) and C recomputed in float64 from the float32 points; "
    "*cost* = <P, C> and *objective* = <P, C> + eps KL(P | a x b) on the same P. Each solver "
    "stops on its own check of the *column* marginal of the state after a row (f) update, "
    "whose row marginal is exact up to rounding, so the row part of the f64 error is the "
    "float32 rounding of the potentials (f/eps is in the hundreds at small eps), which is "
    "why the f64 L1 error of the float32 solvers can slightly exceed 1e-3.",
    "**Stopping rules.** jaxclust: ||P1 - a||_1 < 1e-3 before the final f-update, checked "
    "every 10 iterations (equivalent to ott's check). ott-jax 0.6.0 default Sinkhorn "
    "(lse_mode, no momentum/Anderson, zero init): `threshold=1e-3` on ||P^T1 - b||_1 "
    "(norm_error=1) every `inner_iterations=10`. POT: `stopThr` is compared with the "
    "**L2** norm ||P^T1 - b||_2 every 10 iterations, which cannot express the L1 rule "
    "(1e-3/sqrt(n), the L2 value that implies L1 < 1e-3, doubled POT's iterations at "
    "n = 512). All three run the same alternating updates (g then f) from zero potentials, "
    "so the iterates agree; POT is therefore run (`stopThr=0`) for exactly the iteration "
    "count at which ott-jax (jaxclust where ott-jax was skipped) met the L1 rule, and its "
    "*converged* is the float64 L1 error < 1e-3. This gives POT the stopping point for free "
    "(but it still pays its own every-10-iterations L2 check).",
    "**POT** runs on numpy float64 (`sinkhorn_log`: log-domain; `sinkhorn_knopp`, 'POT "
    "kernel': kernel-space scalings, only at scale >= --pot-kernel-min-scale since the kernel "
    "exp(-C/eps) under/overflows at small eps). A library whose single run is estimated "
    "above --max-run seconds (POT: a 10-iteration probe times ott's iteration count; jax: "
    "the time at the previous n times (n/n_prev)^2) is skipped.",
    "**Gradient.** loss(x) = <P(x), W> for a fixed W ~ U[0,1]^{n x n}; `jax.jit(jax.grad)`. "
    "jaxclust implicit: implicit function theorem, CG on the plan (default); jaxclust "
    "unrolled: `implicit=False` (reverse pass through a scan over all max_iter/10 blocks, "
    "so its cost grows with max_iter, not with the iterations needed). "
    "ott-jax implicit: default `ImplicitDiff()` of `linear.solve` (lineax solver); ott-jax "
    "unrolled: `implicit_diff=None`. Relative difference = ||g - g_ott||_2 / ||g_ott||_2.",
]


def target_lines(results, grad_info):
    """The acceptance targets, checked on the numbers above."""
    out = []
    for (n, scale), res in results.items():
        jc, ott = res.get("jaxclust"), res.get("ott-jax")
        if n != 4096 or jc is None or ott is None:
            continue
        ratio, rel = ott["time"] / jc["time"], abs(jc["cost"] - ott["cost"]) / ott["cost"]
        ok = ratio >= 3 and rel <= 1e-4 and jc["converged"] and ott["converged"]
        out.append(f"- forward, n = 4096, scale {scale}: ott-jax / jaxclust time = "
                   f"{ratio:.2f} (target >= 3), relative cost difference {rel:.1e} (target "
                   f"<= 1e-4): **{'met' if ok else 'NOT met'}**")
    for scale, (*_, target) in grad_info.items():
        if target is not None:
            ok = target[0] >= 5 and target[1] <= 1e-2
            out.append(f"- gradient, scale {scale}: ott-jax implicit / jaxclust implicit time "
                       f"= {target[0]:.1f} (target >= 5), relative difference {target[1]:.1e} "
                       f"(target <= 1e-2): **{'met' if ok else 'NOT met'}**")
        else:
            out.append(f"- gradient, scale {scale}: no comparison (a gradient failed, above)")
    return out or ["- (n = 4096 and the gradient were not run)"]


def write_report(path, args, fwd_rows, grad_rows, grad_info, notes):
    lines = ["# Entropic OT benchmark: jaxclust vs ott-jax vs POT", "",
             "Generated by `python benchmarks/bench_ot.py " + " ".join(sys.argv[1:]) + "`.", "",
             "## Machine", "", *args.machine,
             f"- load average when this file was written: "
             f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}; benchmark wall time so far "
             f"{(time.perf_counter() - args.t_start) / 60:.1f} min", "", "## Settings", "",
             f"- data: x, y ~ N(0, I_{D}) float32, y shifted by +{SHIFT}; seed {args.seed}; "
             "uniform weights; squared Euclidean cost",
             f"- epsilon = scale x std(C) (std over all n^2 entries, float64); scales "
             f"{args.scales} (0.05 is ott-jax's default rule)",
             f"- tolerance {TOL} (L1 marginal, see notes); max iterations {args.max_iter} "
             f"(gradient: {args.grad_max_iter})",
             f"- sizes n = m in {args.sizes}; gradient at n = {args.grad_n}, scales "
             f"{args.grad_scales}",
             f"- timing: budget {args.budget:.0f} s of timed runs per library and "
             f"configuration, at most {args.repeats} runs; skip a run estimated above "
             f"{args.max_run:.0f} s", "", "## Forward Sinkhorn", "",
             md_table(FWD_HEAD, fwd_rows), ""]
    if grad_rows:
        lines += ["## Gradient of <P, W> w.r.t. x", "", md_table(GRAD_HEAD, grad_rows), "",
                  *[f"- scale {s}: forward (jaxclust) ran {it} iterations, converged: {c}; "
                    f"gradient differences relative to *{ref}*"
                    for s, (it, c, ref, _) in grad_info.items()], ""]
    lines += ["## Targets", "", *target_lines(args.results, grad_info), ""]
    lines += ["## Notes", "", *[f"- {t}" for t in NOTES + notes], ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n in {512, 2048}, 10 s budgets")
    p.add_argument("--full", action="store_true", help="n in {512, 2048, 4096, 16384}")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--scales", type=float, nargs="+", default=[0.05, 0.005])
    p.add_argument("--budget", type=float, help="seconds of timed runs per library/config")
    p.add_argument("--repeats", type=int, default=7, help="max timed runs per library/config")
    p.add_argument("--max-run", type=float, default=900.0, help="skip runs estimated longer")
    p.add_argument("--max-iter", type=int, default=20000)
    p.add_argument("--pot-kernel-min-scale", type=float, default=0.05)
    p.add_argument("--no-pot", action="store_true")
    p.add_argument("--grad-n", type=int, default=1024)
    p.add_argument("--grad-scales", type=float, nargs="+", default=[0.05, 0.005])
    p.add_argument("--grad-max-iter", type=int, default=2000)
    p.add_argument("--no-grad", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "ot.md"))
    args = p.parse_args(argv)
    args.sizes = args.sizes or ([512, 2048] if args.quick else [512, 2048, 4096, 16384])
    args.budget = args.budget or (10.0 if args.quick else 60.0)
    args.scale_std, args.machine, args.t_start = {}, machine_lines(), time.perf_counter()
    args.results = {}
    fwd_rows, grad_rows, grad_info, notes, history = [], [], {}, [], {}
    for n in sorted(args.sizes):
        args.scale_std[n] = cost_std(*make_data(n, args.seed))
        for scale in args.scales:
            print(f"forward n={n} scale={scale}", flush=True)
            eps, res, skipped = bench_forward(n, scale, args, history, notes)
            args.results[(n, scale)] = res
            fwd_rows += forward_rows(n, scale, eps, res, skipped)
            write_report(args.out, args, fwd_rows, grad_rows, grad_info, notes)
    for scale in [] if args.no_grad else args.grad_scales:
        print(f"gradient n={args.grad_n} scale={scale}", flush=True)
        rows, info = bench_grad(args.grad_n, scale, args)
        grad_rows += rows
        grad_info[scale] = info
        write_report(args.out, args, fwd_rows, grad_rows, grad_info, notes)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
