"""MLC (coding-rate clustering) vs k-means and k-subspaces, on unions of subspaces and digits.

    python benchmarks/bench_mlc.py                  # writes benchmarks/results/mlc.md
    python benchmarks/bench_mlc.py --seeds 2 --out /tmp/mlc.md

Claim (issue 19, from "Unsupervised Manifold Linearizing and Clustering", Ding et al. 2023):
on a union of low-dimensional subspaces, and on digits features, MLC clusters better than
k-means and ``diffusion.k_subspaces``. Methods, same data, one process:

* ``cluster.kmeans(x, k, key, n_init=10)``;
* ``diffusion.k_subspaces(x, k, d_sub, key, n_init=10)`` (the true subspace dimension);
* ``cluster.mlc(x, k, key=key)`` with its defaults (the reference's eps 0.1, eta 0.175, 5
  Sinkhorn half-steps, reg 0.05, SGD momentum 0.9, lr 3e-3 / 2e-3, weight decay 1e-4 /
  5e-3; 100 full-batch steps of a *linear* representation), and with ``steps=0`` (spectral
  clustering of the membership at the PCA initialisation: what the training adds).

Data: (a) 5 random 3-dim subspaces of R^20, 50 points each, Gaussian coefficients, isotropic
noise sigma in {0.05, 0.3}; (b) digits (scikit-learn, 8x8, 10 classes): 40 images per class
per seed (400), pixels / 16, PCA to 30 dims; k_subspaces with d_sub = 5, MLC with d = 16.

(c) The paper's protocol on digits (representation *learned* by a network, all 1797
images): the architecture of the reference's training code (LeslieTrue/CPP ``CPPNet``:
``Linear-ReLU-Linear-ReLU`` trunk, then two linear heads, subspace and cluster, both
unit-normalised; here hidden 128 and d = 16, no BatchNorm) =
a small Equinox MLP + ``nn.equinox.MLCHead`` (both heads equal at the start: the one-shot
initialisation), trained on ``MLCHead.loss`` (the MLC loss with the reference's eps, eta,
Sinkhorn steps, reg) with the reference's optimiser (SGD momentum 0.9, lr 3e-3 and weight
decay 1e-4 for trunk and subspace head, lr 2e-3 and weight decay 5e-3 for the cluster
head), mini-batches of 256 (shuffled each epoch), then spectral clustering of the
membership of all 1797 images. Inputs: pixels / 16, centred. No self-supervised
pre-training and no augmentations (the paper initialises the features with TCR on
augmented images; the reference's own script starts from given features, as here). Rows:
the MLP at its random initialisation (0 steps) and after ``--mlp-steps`` steps; k-means
and k-subspaces (d_sub 5) on the same pixels.
ACC (Hungarian) and NMI, mean +- std over seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _common, and jaxclust from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_lines, md_table  # noqa: E402

from jaxclust.cluster import kmeans, mlc, spectral  # noqa: E402
from jaxclust.diffusion import k_subspaces  # noqa: E402
from jaxclust.metrics.clustering import clustering_accuracy, nmi  # noqa: E402


def union(seed, noise, k=5, dim=20, d=3, m=50):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for j in range(k):
        u = np.linalg.qr(rng.normal(size=(dim, d)))[0]
        xs.append(rng.normal(size=(m, d)) @ u.T)
        ys += [j] * m
    x = np.concatenate(xs)
    x += noise * rng.normal(size=x.shape)
    return np.asarray(x, np.float32), np.asarray(ys)


def digits(seed, per_class=40, dim=30):
    from sklearn.datasets import load_digits

    dd = load_digits()
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.nonzero(dd.target == c)[0], per_class, replace=False)
                          for c in range(10)])
    x = dd.data[idx] / 16.0
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return np.asarray(x @ vt[:dim].T, np.float32), dd.target[idx]


def all_digits():
    from sklearn.datasets import load_digits

    dd = load_digits()
    x = dd.data / 16.0
    return np.asarray(x - x.mean(0), np.float32), dd.target


def mlp_mlc(x, k, seed, steps, *, hidden=128, d=16, batch=256):
    """The paper's protocol (module docstring, (c)): an MLP trunk + ``MLCHead`` trained on the
    MLC loss with the reference's optimiser; labels by spectral clustering of Gamma."""
    import equinox as eqx
    import optax

    from jaxclust.nn.equinox import MLCHead

    class Net(eqx.Module):
        l1: eqx.nn.Linear
        l2: eqx.nn.Linear
        head: MLCHead

        def __init__(self, key):
            k1, k2, k3 = jax.random.split(key, 3)
            self.l1 = eqx.nn.Linear(x.shape[1], hidden, key=k1)
            self.l2 = eqx.nn.Linear(hidden, hidden, key=k2)
            self.head = MLCHead(hidden, d, key=k3)

        def trunk(self, xb):
            return jax.nn.relu(jax.vmap(self.l2)(jax.nn.relu(jax.vmap(self.l1)(xb))))

    kn, kb, ks = jax.random.split(jax.random.key(seed), 3)
    net = Net(kn)
    groups = jax.tree_util.tree_map(lambda _: "f", net)
    groups = eqx.tree_at(lambda m: (m.head.cluster_weight, m.head.cluster_bias), groups,
                         ("c", "c"))
    opt = optax.multi_transform(
        {"f": optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(3e-3, momentum=0.9)),
         "c": optax.chain(optax.add_decayed_weights(5e-3), optax.sgd(2e-3, momentum=0.9))},
        groups)
    params, static = eqx.partition(net, eqx.is_array)
    n = x.shape[0]
    per_epoch = n // batch
    epochs = max(1, -(-steps // per_epoch))
    idx = jnp.concatenate([jax.random.permutation(kk, n)[:per_epoch * batch]
                           .reshape(per_epoch, batch)
                           for kk in jax.random.split(kb, epochs)])[:steps]

    def loss(p, xb):
        m = eqx.combine(p, static)
        return m.head.loss(m.trunk(xb))

    @jax.jit
    def train(params, x):
        def step(carry, ib):
            p, st = carry
            val, g = jax.value_and_grad(loss)(p, x[ib])
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), val

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), idx)
        m = eqx.combine(params, static)
        _, gam = m.head(m.trunk(x))
        lab = spectral(0.5 * (gam + gam.T), k, key=ks, affinity="precomputed").labels
        return lab, losses

    return train(params, jnp.asarray(x))


def run_mlp(x, y, k, seed, steps_list):
    x = jnp.asarray(x)
    key = jax.random.key(seed)
    methods = {
        "k-means": lambda: kmeans(x, k, key=key, n_init=10).labels,
        "k-subspaces (d_sub 5)": lambda: k_subspaces(x, k, 5, key=key, n_init=10).labels,
        "MLC-MLP, random init (0 steps)": lambda: mlp_mlc(x, k, seed, 0)[0],
    }
    for steps in steps_list:
        methods[f"MLC-MLP ({steps} steps)"] = lambda steps=steps: mlp_mlc(x, k, seed, steps)[0]
    out = {}
    for name, fn in methods.items():
        t0 = time.perf_counter()
        lab = np.asarray(fn())
        out[name] = (clustering_accuracy(y, lab), float(nmi(y, lab)), time.perf_counter() - t0)
        print(f"  seed {seed} {name}: ACC {out[name][0]:.3f}", flush=True)
    return out


def run(x, y, k, d_sub, d_mlc, seed):
    x = jnp.asarray(x)
    key = jax.random.key(seed)
    methods = {
        "k-means": lambda: kmeans(x, k, key=key, n_init=10).labels,
        "k-subspaces": lambda: k_subspaces(x, k, d_sub, key=key, n_init=10).labels,
        "MLC (PCA init, 0 steps)": lambda: mlc(x, k, key=key, d=d_mlc, steps=0).labels,
        "MLC (100 steps)": lambda: mlc(x, k, key=key, d=d_mlc).labels,
    }
    out = {}
    for name, fn in methods.items():
        t0 = time.perf_counter()
        lab = np.asarray(fn())
        out[name] = (clustering_accuracy(y, lab), float(nmi(y, lab)), time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "mlc.md"))
    ap.add_argument("--mlp-steps", default="300,1000",
                    help="comma-separated numbers of training steps of the MLP protocol")
    ap.add_argument("--only-mlp", action="store_true")
    args = ap.parse_args()
    lines = ["# MLC vs k-means and k-subspaces", "", *machine_lines(("jax", "numpy")), "",
             "Script: `benchmarks/bench_mlc.py` (its docstring states the protocol). ACC / NMI "
             f"in %, mean ± std over {args.seeds} seeds; time: one call incl. compilation.",
             ""]
    settings = [("union of 5 3-dim subspaces in R^20, noise 0.05", lambda s: union(s, 0.05), 5,
                 3, 20),
                ("union of 5 3-dim subspaces in R^20, noise 0.3", lambda s: union(s, 0.3), 5,
                 3, 20),
                ("digits, 400 images, PCA 30", digits, 10, 5, 16)]
    if args.only_mlp:
        settings = []
    for title, make, k, d_sub, d_mlc in settings:
        res = {}
        for s in range(args.seeds):
            x, y = make(s)
            for name, v in run(x, y, k, d_sub, d_mlc, s).items():
                res.setdefault(name, []).append(v)
        rows = []
        for name, vals in res.items():
            a = np.array(vals)
            rows.append([name, f"{100 * a[:, 0].mean():.1f} ± {100 * a[:, 0].std():.1f}",
                         f"{100 * a[:, 1].mean():.1f} ± {100 * a[:, 1].std():.1f}",
                         f"{np.median(a[:, 2]):.2f} s"])
        lines += [f"## {title}", "", md_table(["method", "ACC", "NMI", "time"], rows), ""]
        print("\n".join(lines[-4:]), flush=True)
    x, y = all_digits()
    res = {}
    for s in range(args.seeds):
        steps = [int(t) for t in args.mlp_steps.split(",")]
        for name, v in run_mlp(x, y, 10, s, steps).items():
            res.setdefault(name, []).append(v)
    rows = []
    for name, vals in res.items():
        a = np.array(vals)
        rows.append([name, f"{100 * a[:, 0].mean():.1f} ± {100 * a[:, 0].std():.1f}",
                     f"{100 * a[:, 1].mean():.1f} ± {100 * a[:, 1].std():.1f}",
                     f"{np.median(a[:, 2]):.2f} s"])
    lines += ["## digits, all 1797 images, pixels: MLC with a learned MLP representation", "",
              md_table(["method", "ACC", "NMI", "time"], rows), ""]
    print("\n".join(lines[-4:]), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
