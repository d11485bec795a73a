"""Laplacian k-means (SLK) vs k-means on digits: clustering and a few-shot split, 5 seeds.

    python benchmarks/bench_laplacian.py                # writes benchmarks/results/laplacian.md
    python benchmarks/bench_laplacian.py --seeds 2 --out /tmp/lap.md

The paper's claim ("Transductive few-shot learning: clustering is all you need?", Ziko et
al. 2021, and Scalable Laplacian K-modes, NeurIPS 2018) is that the Laplacian term improves
on the prototype (k-means) term alone. Data: scikit-learn's digits (1,797 images of 8 x 8
pixels, 10 classes), pixels divided by 16.

* **Clustering.** ``jaxclust.cluster.kmeans(x, 10, key, n_init=10)`` against
  ``laplacian_kmeans(x, 10, key=key)`` with its documented defaults (the reference's
  settings: CL2N features, directed binary 5-NN graph without self-loops, lam = 1,
  temperature 1, hard prototypes, initialisation from k-means on the CL2N features). Also
  shown: the same update with the optional automatic shift (``shift=None``), and k-means on
  the CL2N features (the Laplacian method's own starting point). ACC: best one-to-one
  matching (Hungarian); NMI (arithmetic).
* **Few-shot.** Per seed, 5 labelled images per class (the support set, 50 in all), the
  other 1,747 are queries. The prototype classifier (nearest support mean on CL2N
  features, the LaplacianShot paper's baseline) against ``laplacian_kmeans(..., labels=y)``
  (support labels fixed, prototypes started at the support means). ACC on the queries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_lines, md_table  # noqa: E402

import jaxclust.cluster as jcl  # noqa: E402
from jaxclust.metrics import clustering_accuracy, nmi  # noqa: E402


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return jnp.asarray(d.data / 16.0, jnp.float32), np.asarray(d.target)


def cl2n(x):
    x = x - x.mean(0)
    return x / jnp.linalg.norm(x, axis=1, keepdims=True)


def clustering_rows(x, y, seeds):
    k = 10
    methods = {
        "k-means (n_init=10)": jax.jit(lambda x, key: jcl.kmeans(x, k, key=key,
                                                                 n_init=10).labels),
        "k-means on CL2N features": jax.jit(lambda x, key: jcl.kmeans(cl2n(x), k,
                                                                      key=key,
                                                                      n_init=10).labels),
        "Laplacian k-means (defaults)": jax.jit(lambda x, key: jcl.laplacian_kmeans(
            x, k, key=key).labels),
        "Laplacian k-means, shift=None": jax.jit(lambda x, key: jcl.laplacian_kmeans(
            x, k, key=key, shift=None).labels),
    }
    yj = jnp.asarray(y)
    rows, accs = [], {}
    for name, fn in methods.items():
        acc, nm = [], []
        for s in seeds:
            lab = np.asarray(fn(x, jax.random.key(s)))
            acc.append(clustering_accuracy(y, lab))
            nm.append(float(nmi(yj, jnp.asarray(lab), n_true=k, n_pred=k)))
        accs[name] = acc
        rows.append([name, " ".join(f"{a:.3f}" for a in acc), f"{np.mean(acc):.3f}",
                     f"{np.mean(nm):.3f}"])
        print(rows[-1], flush=True)
    return rows, accs


def fewshot_rows(x, y, seeds, shots=5):
    k = 10
    xn = cl2n(x)

    @jax.jit
    def lap(x, lab):
        return jcl.laplacian_kmeans(x, k, key=jax.random.key(0), labels=lab).labels

    proto, slk = [], []
    for s in seeds:
        rng = np.random.default_rng(s)
        support = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False)
                                  for c in range(k)])
        lab = np.full(len(y), -1)
        lab[support] = y[support]
        query = lab < 0
        means = jnp.stack([xn[support[y[support] == c]].mean(0) for c in range(k)])
        pred = np.asarray(jnp.argmin(((xn[:, None] - means[None]) ** 2).sum(-1), axis=1))
        proto.append(float(np.mean(pred[query] == y[query])))
        out = np.asarray(lap(x, jnp.asarray(lab)))
        slk.append(float(np.mean(out[query] == y[query])))
    rows = [["prototype classifier (support means)", " ".join(f"{a:.3f}" for a in proto),
             f"{np.mean(proto):.3f}"],
            ["Laplacian k-means with support labels", " ".join(f"{a:.3f}" for a in slk),
             f"{np.mean(slk):.3f}"]]
    for r in rows:
        print(r, flush=True)
    return rows, proto, slk


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default=str(HERE / "results" / "laplacian.md"))
    args = p.parse_args(argv)
    seeds = list(range(args.seeds))
    x, y = digits()
    crows, accs = clustering_rows(x, y, seeds)
    frows, proto, slk = fewshot_rows(x, y, seeds)
    km = np.mean(accs["k-means (n_init=10)"])
    lk = np.mean(accs["Laplacian k-means (defaults)"])
    lines = ["# Laplacian k-means (SLK) vs k-means on digits", "",
             "Produced by `python benchmarks/bench_laplacian.py` (see its docstring for the "
             "protocol).", "", *machine_lines(), "",
             f"## Clustering (ACC per seed {seeds}, mean ACC, mean NMI)", "",
             md_table(["method", "ACC per seed", "mean ACC", "mean NMI"], crows), "",
             f"Laplacian k-means with its defaults: mean ACC {lk:.3f} against k-means "
             f"{km:.3f} ({'better' if lk > km else 'NOT better'}; better on "
             f"{sum(a > b for a, b in zip(accs['Laplacian k-means (defaults)'], accs['k-means (n_init=10)']))}"
             f" of {len(seeds)} seeds).", "",
             "## Few-shot split (5 labelled images per class, ACC on the other 1,747)", "",
             md_table(["method", "ACC per seed", "mean ACC"], frows), ""]
    Path(args.out).write_text("\n".join(lines))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
