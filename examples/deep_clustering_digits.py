"""Deep clustering of scikit-learn's digits with each differentiable clustering head.

An MLP encoder (64 -> 512 -> 512 -> 128, features on the unit sphere) learns from two
augmented views of every image (Gaussian pixel noise, random shifts of the 8x8 image by up to
one pixel) with an instance-contrastive loss (NT-Xent). Then, for each head, the head is
initialised by k-means on the features and the encoder and the head train end to end on
``contrastive + head loss``:

* ``swav``   ``SinkhornClusteringHead``: SwAV codes (balanced Sinkhorn), swapped prediction;
* ``p2ot``   ``PartialOTClusteringHead``: P²OT pseudo-labels (progressive partial OT,
  KL-relaxed cluster sizes, transported mass ramped up by ``mass_schedule``);
* ``dec``    ``DECHead``: Student-t assignments, sharpened target, KL;
* ``tell``   ``TELLLayer``: TELL's k-means layer (centroids as weights, differentiable
  k-means objective);
* ``kmeans`` ``KMeansLayer``: the soft k-means layer; with its free energy alone its
  clusters degraded during training, so the mutual information between samples and
  clusters, H(mean q) - mean H(q), is added (IMSAT).

All heads come from ``jaxclust.nn.equinox`` (the same heads exist in ``jaxclust.nn.flax``).
No label is used for training; the labels only score the clusters (ACC with Hungarian
matching, NMI, ARI from ``jaxclust.metrics``), printed per head beside k-means on the raw
pixels. Saves ``curves.png`` (loss and ACC per epoch) and ``embedding.png`` (PCA of the
learned features, coloured by cluster) under ``--out``.

Run from the repository root (one seed, all heads: 1 min 48 s on this project's 2-core CPU)::

    python examples/deep_clustering_digits.py --out out/deep_clustering
    python examples/deep_clustering_digits.py --seeds 0 1 2 3 4   # the benchmark protocol
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxclust.cluster import kmeans
from jaxclust.cluster.contrastive import nt_xent_loss
from jaxclust.metrics import ari, clustering_accuracy, nmi
from jaxclust.nn.equinox import (
    DECHead,
    KMeansLayer,
    PartialOTClusteringHead,
    SinkhornClusteringHead,
    TELLLayer,
)
from jaxclust.ot import mass_schedule
from jaxclust.train import FitResult, fit

HEADS = ("swav", "p2ot", "dec", "tell", "kmeans")


@dataclass(frozen=True)
class Config:
    """The training recipe, fixed for every head and seed."""

    k: int = 10                 # clusters
    width: int = 512            # hidden width of the encoder
    feat: int = 128             # feature size (on the unit sphere)
    proj: int = 64              # projection size of the contrastive loss
    noise: float = 0.3          # std of the pixel noise (pixels in [0, 1])
    shift: int = 1              # largest shift of the image, pixels
    batch: int = 256
    lr: float = 1e-3
    ema: float = 0.99
    tau: float = 0.5            # NT-Xent temperature
    pretrain_steps: int = 3000  # contrastive only
    head_steps: int = 1000      # contrastive + head loss
    log_every: int = 250
    head_weight: float = 1.0
    entropy_weight: float = 1.0  # k-means layer: weight of H(mean q) - mean H(q)
    temperature: float = 0.1    # of the heads' softmaxes (cosine / squared-distance units)


QUICK = Config(width=64, feat=32, proj=16, pretrain_steps=40, head_steps=20, log_every=20)


def load_digits_data(ratio: float | None = None, seed: int = 0):
    """Digits as ``(x in [0, 1] of shape (n, 64), y)``; with ``ratio`` a long-tailed subset:
    class sizes decaying exponentially from the largest (the full class of the most frequent
    label, drawn in a random class order) to ``1/ratio`` of it."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    if ratio is not None:
        rng = np.random.default_rng(seed)
        order = rng.permutation(10)
        n_max = min(np.bincount(y))
        keep = []
        for rank, c in enumerate(order):
            size = int(round(n_max * ratio ** (-rank / 9)))
            keep.append(rng.choice(np.flatnonzero(y == c), size, replace=False))
        keep = np.sort(np.concatenate(keep))
        x, y = x[keep], y[keep]
    return jnp.asarray(x), np.asarray(y)


def augment(key, x, *, noise: float, shift: int):
    """Gaussian pixel noise and a random shift of each 8x8 image (zero padding)."""
    b = x.shape[0]
    k_shift, k_noise = jax.random.split(key)
    img = jnp.pad(x.reshape(b, 8, 8), ((0, 0), (shift, shift), (shift, shift)))
    offset = jax.random.randint(k_shift, (b, 2), 0, 2 * shift + 1)
    img = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1]), (8, 8)))(img, offset)
    return img.reshape(b, 64) + noise * jax.random.normal(k_noise, (b, 64))


class Encoder(eqx.Module):
    mlp: eqx.nn.MLP
    proj: eqx.nn.MLP

    def __init__(self, cfg: Config, key):
        k1, k2 = jax.random.split(key)
        self.mlp = eqx.nn.MLP(64, cfg.feat, cfg.width, 2, activation=jax.nn.relu, key=k1)
        self.proj = eqx.nn.MLP(cfg.feat, cfg.proj, cfg.feat, 1, activation=jax.nn.relu, key=k2)

    def features(self, x):
        """Batched features on the unit sphere."""
        h = jax.vmap(self.mlp)(x)
        return h / jnp.linalg.norm(h, axis=1, keepdims=True)

    def contrastive(self, h_a, h_b, cfg: Config):
        return nt_xent_loss(jax.vmap(self.proj)(h_a), jax.vmap(self.proj)(h_b),
                            temperature=cfg.tau)


# --- heads: (init from k-means centroids, loss on two views, labels) --------------------------


def make_head(name: str, centroids, cfg: Config, *, prior=None):
    """The head ``name`` of ``jaxclust.nn.equinox`` with its clusters at ``centroids``."""
    d, k, t = cfg.feat, cfg.k, cfg.temperature
    if name == "swav":
        return SinkhornClusteringHead(d, k, temperature=t, prototypes=centroids)
    if name == "p2ot":
        return PartialOTClusteringHead(d, k, temperature=t, prior=prior, max_iter=200,
                                       prototypes=centroids)
    if name == "dec":
        return DECHead(d, k, temperature=t, centroids=centroids)
    if name == "tell":
        return TELLLayer(d, k, temperature=t, centroids=centroids)
    if name == "kmeans":
        return KMeansLayer(d, k, temperature=t, centroids=centroids)
    raise ValueError(f"unknown head {name!r}; choose from {HEADS}")


def head_loss(name: str, head, h_a, h_b, step, cfg: Config):
    """The head's clustering loss on the features of two views of a batch."""
    if name == "swav":  # swapped prediction of balanced codes
        return head.loss(h_a, h_b)
    if name == "p2ot":  # swapped, mass-weighted pseudo-labels; the mass ramps up
        return head.loss(h_a, h_b, mass_schedule(step, cfg.head_steps, start=0.1))
    if name == "dec":  # KL to the sharpened target of each view
        return 0.5 * (head.loss(h_a) + head.loss(h_b))
    if name == "tell":  # differentiable k-means objective
        return 0.5 * (head(h_a)[1] + head(h_b)[1])
    # soft k-means free energy - mutual information between samples and clusters (IMSAT)
    loss = 0.0
    for h in (h_a, h_b):
        q, energy = head(h)
        m = jnp.mean(q, axis=0)
        mi = jnp.mean(jnp.sum(q * jnp.log(q + 1e-12), axis=1)) - jnp.sum(m * jnp.log(m + 1e-12))
        loss = loss + 0.5 * (energy - cfg.entropy_weight * mi)
    return loss


def head_labels(name: str, head, h):
    """Hard clusters: the argmax of the head's scores or assignments."""
    out = head(h)
    return jnp.argmax(out[0] if isinstance(out, tuple) else out, axis=1)


# --- training ---------------------------------------------------------------------------------


def scores(y, labels) -> dict[str, float]:
    labels = np.asarray(labels)
    return {"acc": float(clustering_accuracy(y, labels)), "nmi": float(nmi(y, labels)),
            "ari": float(ari(y, labels))}


class EpochLines:
    """Progress as plain lines (for logs and terminals alike): ``eval_fn`` wrapper for
    ``fit`` that prints ``what: epoch i/n, <metrics>, <elapsed> s`` after each epoch of
    ``log_every`` steps. Disabled, it adds nothing (no ``eval_fn`` for the pre-training)."""

    def __init__(self, what: str, steps: int, log_every: int, enabled: bool):
        self.what, self.enabled = what, enabled
        self.n = -(-steps // log_every)
        self.i, self.start = 0, time.perf_counter()
        if enabled:
            print(f"{what}: {steps} steps ({self.n} epochs of {log_every})", flush=True)

    def __call__(self, metrics: dict[str, float]) -> dict[str, float]:
        self.i += 1
        if self.enabled:
            cells = "".join(f", {k.upper()} {v:.3f}" for k, v in metrics.items())
            print(f"  {self.what}: epoch {self.i}/{self.n}{cells}, "
                  f"{time.perf_counter() - self.start:.0f} s", flush=True)
        return metrics


def pretrain(x, cfg: Config, key, *, progress: bool = False,
             lines: bool = False) -> FitResult:
    """Contrastive pre-training of the encoder (no head); ``lines``: one printed line per
    epoch."""
    def loss(enc, batch, key):
        ka, kb = jax.random.split(key)
        aug = dict(noise=cfg.noise, shift=cfg.shift)
        h_a = enc.features(augment(ka, batch, **aug))
        h_b = enc.features(augment(kb, batch, **aug))
        return enc.contrastive(h_a, h_b, cfg)

    k_init, k_fit = jax.random.split(key)
    tick = EpochLines("contrastive pre-training", cfg.pretrain_steps, cfg.log_every, lines)
    return fit(loss, Encoder(cfg, k_init), x, key=k_fit, steps=cfg.pretrain_steps,
               batch_size=cfg.batch, optimizer=optax.adam(cfg.lr), ema_decay=cfg.ema,
               log_every=cfg.log_every, progress=progress, description="contrastive",
               eval_fn=(lambda _: tick({})) if lines else None)


def train_head(name: str, encoder: Encoder, x, y, cfg: Config, key, *, prior=None,
               progress: bool = False, lines: bool = False) -> FitResult:
    """Initialise the head by k-means on the features, then train encoder and head end to
    end on contrastive + head loss; ACC/NMI of the EMA logged per epoch (and printed, one
    line each, with ``lines``)."""
    k_km, k_fit = jax.random.split(key)
    h = encoder.features(x)
    centroids = kmeans(h, cfg.k, key=k_km, n_init=5).centroids
    model = (encoder, make_head(name, centroids, cfg, prior=prior))

    def loss(model, batch, key, step):
        enc, head = model
        ka, kb = jax.random.split(key)
        aug = dict(noise=cfg.noise, shift=cfg.shift)
        h_a = enc.features(augment(ka, batch, **aug))
        h_b = enc.features(augment(kb, batch, **aug))
        return enc.contrastive(h_a, h_b, cfg) + cfg.head_weight * head_loss(
            name, head, h_a, h_b, step, cfg)

    predict = eqx.filter_jit(lambda m: head_labels(name, m[1], m[0].features(x)))

    tick = EpochLines(f"head {name}", cfg.head_steps, cfg.log_every, lines)

    def evaluate(model):
        s = scores(y, predict(model))
        return tick({"acc": s["acc"], "nmi": s["nmi"]})

    return fit(loss, model, x, key=k_fit, steps=cfg.head_steps, batch_size=cfg.batch,
               optimizer=optax.adam(cfg.lr), ema_decay=cfg.ema, log_every=cfg.log_every,
               eval_fn=evaluate, pass_step=True, progress=progress, description=name)


def predict(name: str, model, x, cfg: Config):
    enc, head = model
    return np.asarray(eqx.filter_jit(lambda m: head_labels(name, m[1], m[0].features(x)))(
        model))


def raw_kmeans(x, y, seed: int) -> dict[str, float]:
    res = kmeans(x, 10, key=jax.random.key(seed), n_init=10)
    return scores(y, res.labels)


def run_seed(seed: int, cfg: Config, heads=HEADS, *, x=None, y=None, prior=None,
             progress: bool = False, lines: bool = False):
    """One seed of the protocol: rows {method: scores + seconds}, histories, models;
    ``lines``: a printed line per phase and per epoch."""
    if x is None:
        x, y = load_digits_data()
    key = jax.random.key(seed)
    rows, hist, models = {}, {}, {}
    t0 = time.perf_counter()
    rows["k-means (raw pixels)"] = {**raw_kmeans(x, y, seed), "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    if lines:
        print(f"[seed {seed}] k-means on raw pixels: ACC "
              f"{rows['k-means (raw pixels)']['acc']:.3f}", flush=True)
    pre = pretrain(x, cfg, jax.random.fold_in(key, 0), progress=progress, lines=lines)
    pre_s = time.perf_counter() - t0
    encoder = pre.ema
    h = encoder.features(x)
    rows["contrastive + k-means"] = {
        **scores(y, kmeans(h, cfg.k, key=jax.random.fold_in(key, 1), n_init=5).labels),
        "seconds": pre_s}
    for i, name in enumerate(heads):
        t0 = time.perf_counter()
        res = train_head(name, encoder, x, y, cfg, jax.random.fold_in(key, 10 + i),
                         prior=prior, progress=progress, lines=lines)
        labels = predict(name, res.ema, x, cfg)
        rows[name] = {**scores(y, labels), "seconds": pre_s + time.perf_counter() - t0}
        hist[name], models[name] = res.history, res.ema
    return rows, hist, models, pre.history


# --- figures ----------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(hist, pre_hist, path: Path) -> Path:
    plt = _pyplot()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.2))
    n_pre = pre_hist["step"][-1]
    ax_l.plot(pre_hist["step"], pre_hist["loss"], color="k", label="contrastive")
    for name, h in hist.items():
        ax_l.plot(n_pre + h["step"], h["loss"], label=name)
        ax_a.plot(h["step"], h["acc"], marker=".", label=name)
    ax_l.set(xlabel="step", ylabel="training loss", title="loss (pre-training, then heads)")
    ax_a.set(xlabel="head step", ylabel="ACC (EMA)", title="clustering accuracy per epoch")
    ax_a.legend(fontsize=7)
    ax_l.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_embedding(models, x, y, cfg: Config, path: Path) -> Path:
    plt = _pyplot()
    names = list(models)
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.7), squeeze=False)
    for ax, name in zip(axes[0], names):
        h = np.asarray(models[name][0].features(x))
        h = h - h.mean(0)
        pc = h @ np.linalg.svd(h, full_matrices=False)[2][:2].T
        labels = predict(name, models[name], x, cfg)
        acc = clustering_accuracy(y, labels)
        ax.scatter(pc[:, 0], pc[:, 1], c=labels, cmap="tab10", s=3, linewidths=0)
        ax.set(title=f"{name} (ACC {acc:.3f})", xticks=[], yticks=[])
    fig.suptitle("PCA of the learned features, coloured by cluster", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def summarise(all_rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    out = {}
    for method in all_rows[0]:
        out[method] = {m: (float(np.mean([r[method][m] for r in all_rows])),
                           float(np.std([r[method][m] for r in all_rows])))
                       for m in ("acc", "nmi", "ari", "seconds")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"head epochs of {Config.log_every} steps (default "
                             f"{Config.head_steps // Config.log_every})")
    parser.add_argument("--out", default="out/deep_clustering")
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--progress", action="store_true",
                        help="rich progress bars instead of one printed line per epoch")
    args = parser.parse_args()
    cfg = QUICK if args.quick else Config()
    if args.epochs is not None:
        cfg = replace(cfg, head_steps=args.epochs * cfg.log_every)
    x, y = load_digits_data()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_rows = []
    for seed in args.seeds:
        rows, hist, models, pre_hist = run_seed(seed, cfg, args.heads, x=x, y=y,
                                                progress=args.progress,
                                                lines=not args.progress)
        all_rows.append(rows)
        print(f"seed {seed}: " + "  ".join(f"{m} ACC {r['acc']:.3f} NMI {r['nmi']:.3f} "
                                           f"ARI {r['ari']:.3f}" for m, r in rows.items()))
        if seed == args.seeds[0]:
            print(f"saved {plot_curves(hist, pre_hist, out / 'curves.png')}")
            print(f"saved {plot_embedding(models, x, y, cfg, out / 'embedding.png')}")
    print(f"\n{'method':24s} {'ACC':>15s} {'NMI':>15s} {'ARI':>15s} {'seconds':>8s}")
    for method, s in summarise(all_rows).items():
        cells = " ".join(f"{s[m][0]:.3f} ± {s[m][1]:.3f}".rjust(15) for m in ("acc", "nmi", "ari"))
        print(f"{method:24s} {cells} {s['seconds'][0]:8.1f}")


if __name__ == "__main__":
    main()
