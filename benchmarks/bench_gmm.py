"""Gaussian mixtures by EM: jaxclust `gmm` vs scikit-learn `GaussianMixture`, one process,
interleaved, same initial parameters and the same number of EM iterations.

    python benchmarks/bench_gmm.py                 # the four problems below
    python benchmarks/bench_gmm.py --quick         # the two smaller ones
    python benchmarks/bench_gmm.py --out /tmp/gmm.md

Problems: blobs (k centres at scale 3, unit noise), float32 for both libraries (scikit-learn
keeps float32 input in float32). Both start from the same parameters (means: k data points
drawn by NumPy, covariances: the data variance times the identity, equal weights; given to
scikit-learn as ``means_init`` / ``precisions_init`` / ``weights_init``) and run exactly
``--iters`` EM iterations (``tol = 0`` on both sides: neither stops early). Times: medians
of interleaved calls after compilation and a warm-up call (benchmarks/_common.Protocol);
*ratio* = scikit-learn time / jaxclust time (> 1: jaxclust faster). Agreement: the final
mean log-likelihood (scikit-learn's ``score``; jaxclust's ``objective``, both at the
returned parameters) and the largest difference of the means. *temporaries*: XLA's buffer
assignment of the jitted fit (``memory_analysis``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import Protocol, fmt_s, machine_lines, md_table, median  # noqa: E402

from jaxclust.cluster import gmm  # noqa: E402

PROBLEMS = [  # (n, d, k, covariance type)
    (5_000, 8, 4, "full"),
    (20_000, 64, 8, "full"),
    (40_000, 32, 32, "full"),
    (100_000, 16, 20, "diag"),
]


def _problem(n, d, k, ctype, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(k, d))
    x = (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    means = x[rng.choice(n, k, replace=False)]
    var = float(x.var())
    cov = {"full": np.broadcast_to(var * np.eye(d), (k, d, d)),
           "diag": np.full((k, d), var)}[ctype].astype(np.float32)
    weights = np.full(k, 1.0 / k, np.float32)
    return x, (means, cov, weights)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--budget", type=float, default=15.0, help="seconds of calls per entry")
    p.add_argument("--quick", action="store_true", help="the two smaller problems only")
    p.add_argument("--out", default=str(HERE / "results" / "gmm.md"))
    args = p.parse_args()

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    lines = ["# Gaussian mixtures: jaxclust vs scikit-learn", "", *machine_lines(
        ("jax", "jaxlib", "scikit-learn", "numpy")), "",
        f"Same initial parameters, {args.iters} EM iterations on both sides (tol = 0), "
        "float32, reg_covar 1e-6. Ratio = scikit-learn / jaxclust (> 1: jaxclust faster).",
        ""]
    rows = []
    for n, d, k, ctype in PROBLEMS[:2] if args.quick else PROBLEMS:
        x, (means, cov, w) = _problem(n, d, k, ctype)
        xj = jnp.asarray(x)
        init = tuple(jnp.asarray(a) for a in (means, cov, w))

        def fit(x, init, ctype=ctype, k=k):
            r = gmm(x, k, key=jax.random.key(0), init=init, covariance_type=ctype,
                    max_iter=args.iters, tol=0.0)
            return r.objective, r.means, r.n_iters

        compiled = {}

        def ours(fit=fit, xj=xj, init=init, compiled=compiled):
            compiled["c"] = jax.jit(fit).lower(xj, init).compile()
            return lambda: jax.tree_util.tree_map(np.asarray, compiled["c"](xj, init))

        prec = np.linalg.inv(cov) if ctype == "full" else 1.0 / cov

        def sk(ctype=ctype, k=k, prec=prec, means=means, w=w, x=x):
            est = GaussianMixture(k, covariance_type=ctype, max_iter=args.iters, tol=0.0,
                                  reg_covar=1e-6, means_init=means, precisions_init=prec,
                                  weights_init=w, n_init=1)

            def call():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est.fit(x)
                return est.score(x), est.means_, est.n_iter_
            return call

        proto = Protocol(args.budget, 5)
        proto.add("jaxclust", ours)
        proto.add("scikit-learn", sk)
        info = proto.run()
        t_j, t_s = median(info["jaxclust"]["times"]), median(info["scikit-learn"]["times"])
        (ll_j, m_j, it_j), (ll_s, m_s, it_s) = info["jaxclust"]["out"], info["scikit-learn"][
            "out"]
        temps = compiled["c"].memory_analysis().temp_size_in_bytes
        rows.append([f"n = {n:,}, d = {d}, k = {k}, {ctype}", fmt_s(t_j), fmt_s(t_s),
                     f"{t_s / t_j:.2f}", f"{int(it_j)} / {int(it_s)}",
                     f"{float(ll_j):.6f} / {float(ll_s):.6f}",
                     f"{float(np.max(np.abs(np.asarray(m_j) - m_s))):.1e}",
                     f"{temps / 2**20:.1f} MiB", fmt_s(info["jaxclust"]["compile"])])
        print(rows[-1], flush=True)
    lines += [md_table(["problem", "jaxclust", "scikit-learn", "ratio", "iterations",
                        "log-likelihood (jaxclust / sklearn)", "max abs. diff. of means",
                        "jaxclust temporaries", "jaxclust compile"], rows), ""]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
