"""Demo section: out-of-distribution detection on handwritten digits.

Data that ships with scikit-learn (no download):

- **in-distribution (ID)**: the 8x8 digits 0-4 (pixels in ``[0, 1]``), split in half into
  training and test images;
- **near-OOD**: the digits 5-9;
- **far-OOD**: 8x8 patches of scikit-learn's two sample images (``china.jpg`` and
  ``flower.jpg``), grey-scale, sub-sampled by 4 and contrast-stretched to ``[0, 1]``;
- **noise**: uniform noise in ``[0, 1]^64``.

A small MLP (64-256-128-5, ReLU) is trained with optax on the ID training images; every
post-hoc score of [`jaxclust.ood`][jaxclust.ood] is fitted on the ID training features /
logits and evaluated by AUROC and FPR@95 (ID positive, the classic convention) against each
OOD set. The figure shows the score histograms and ROC curves of a few scores.

All scores follow the convention higher = more in-distribution. The functions are public
so that ``examples/ood_digits.py`` and ``benchmarks/bench_ood.py`` can reuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust import ood
from jaxclust._core.results import with_summary_repr
from jaxclust.demo import _pyplot
from jaxclust.metrics.detection import aupr_in, auroc, fpr_at_tpr

if TYPE_CHECKING:
    from rich.console import Console

    from jaxclust.demo import DemoContext

__all__ = [
    "MLP",
    "OODData",
    "ScoreRun",
    "evaluate",
    "finetune_energy",
    "image_patches",
    "load_data",
    "plot_scores",
    "post_hoc_scores",
    "print_table",
    "run",
    "train_classifier",
]

ID_CLASSES = 5


@with_summary_repr
class OODData(NamedTuple):
    """ID train/test images and labels and the OOD test sets (name -> ``(n, 64)`` float32)."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    ood: dict[str, jax.Array]


@with_summary_repr
class MLP(NamedTuple):
    """Parameters of the classifier: a list of ``(weight (in, out), bias (out,))`` layers."""

    layers: tuple[tuple[jax.Array, jax.Array], ...]


@with_summary_repr
class ScoreRun(NamedTuple):
    """One score on one OOD set: AUROC, FPR@95 in both conventions and AUPR-In."""

    score: str
    ood_set: str
    auroc: float
    fpr95: float
    fpr95_ood: float
    aupr_in: float


def image_patches(index: int, n: int, *, seed: int = 0, stride: int = 4) -> np.ndarray:
    """``n`` random 8x8 patches (flattened, ``(n, 64)``) of scikit-learn's sample image
    ``index`` (0: china, 1: flower): grey-scale, sub-sampled by ``stride`` so that a patch
    covers 32x32 pixels, each patch stretched to ``[0, 1]`` (min-max, like the ink range of
    the digits)."""
    from sklearn.datasets import load_sample_images

    img = np.asarray(load_sample_images().images[index], np.float64).mean(axis=2)
    img = img[::stride, ::stride]
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, img.shape[0] - 8, n)
    cols = rng.integers(0, img.shape[1] - 8, n)
    patches = np.stack([img[r:r + 8, c:c + 8].reshape(-1) for r, c in zip(rows, cols)])
    lo, hi = patches.min(1, keepdims=True), patches.max(1, keepdims=True)
    return (patches - lo) / np.maximum(hi - lo, 1e-6)


def load_data(seed: int = 0, *, n_far: int = 500) -> OODData:
    """Digits 0-4 split in half (train / test, stratified by a seeded permutation), digits
    5-9, patches of both sample images and uniform noise (``n_far`` each)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.asarray(digits.data, np.float32) / 16.0
    y = np.asarray(digits.target)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.flatnonzero(y < ID_CLASSES))
    half = len(idx) // 2
    tr, te = idx[:half], idx[half:]
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    sets = {
        "digits 5-9": f32(x[y >= ID_CLASSES]),
        "china patches": f32(image_patches(0, n_far, seed=seed)),
        "flower patches": f32(image_patches(1, n_far, seed=seed + 1)),
        "uniform noise": f32(rng.uniform(0.0, 1.0, size=(n_far, 64))),
    }
    return OODData(f32(x[tr]), jnp.asarray(y[tr]), f32(x[te]), jnp.asarray(y[te]), sets)


# ------------------------------------------------------------------------------------------
# the classifier


def init_mlp(key: jax.Array, sizes: tuple[int, ...] = (64, 256, 128, ID_CLASSES)) -> MLP:
    """He-initialised layers."""
    layers = []
    for k, (i, o) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        layers.append((jax.random.normal(k, (i, o)) * jnp.sqrt(2.0 / i), jnp.zeros(o)))
    return MLP(tuple(layers))


def features(params: MLP, x: jax.Array) -> jax.Array:
    """Penultimate (post-ReLU) activations."""
    h = x
    for w, b in params.layers[:-1]:
        h = jax.nn.relu(h @ w + b[None, :])
    return h


def logits(params: MLP, x: jax.Array) -> jax.Array:
    w, b = params.layers[-1]
    return features(params, x) @ w + b[None, :]


def _train(params, loss_fn, steps, lr, key, batch, *arrays):
    import optax

    opt = optax.adamw(lr, weight_decay=1e-4)
    state = opt.init(params)
    n = arrays[0].shape[0]

    @jax.jit
    def step(carry, k):
        params, state = carry
        idx = jax.random.randint(k, (batch,), 0, n)  # with replacement: cheap
        loss, g = jax.value_and_grad(loss_fn)(params, *[a[idx] for a in arrays], k)
        upd, state = opt.update(g, state, params)
        return (optax.apply_updates(params, upd), state), loss

    (params, _), losses = jax.lax.scan(step, (params, state), jax.random.split(key, steps))
    return params, losses


def train_classifier(x: jax.Array, y: jax.Array, key: jax.Array, *, steps: int = 1500,
                     lr: float = 1e-3, batch: int = 128, noise: float = 0.1,
                     hidden: tuple[int, ...] = (256, 128)) -> MLP:
    """Cross-entropy training with AdamW on mini-batches, with a light Gaussian input
    noise as augmentation (``noise`` in pixel units); ``hidden`` are the hidden widths."""
    k_init, k_train = jax.random.split(key)

    def loss_fn(params, xb, yb, k):
        xb = xb + noise * jax.random.normal(k, xb.shape)
        return ood.cross_entropy(logits(params, xb), yb)

    sizes = (x.shape[1], *hidden, ID_CLASSES)
    params, _ = _train(init_mlp(k_init, sizes), loss_fn, steps, lr, k_train, batch, x, y)
    return params


def finetune_energy(params: MLP, x: jax.Array, y: jax.Array, outliers: jax.Array,
                    key: jax.Array, *, steps: int = 1000, lr: float = 3e-4, batch: int = 128,
                    weight: float = 0.1, m_in: float | None = None,
                    m_out: float | None = None) -> MLP:
    """Energy-regularised fine-tuning (Liu et al. 2020) with auxiliary ``outliers``.

    The CIFAR margins -25 / -7 assume the energies of a WideResNet; by default the margins
    are set at the scale of this model instead: ``m_in`` is the 75th percentile of the ID
    training energies (the hinge acts on the least confident quarter of the ID samples) and
    ``m_out`` the median outlier energy before fine-tuning plus half the gap between the
    outlier and ID medians."""
    e_in = -np.asarray(ood.energy(logits(params, x)))
    e_out = -np.asarray(ood.energy(logits(params, outliers)))
    if m_in is None:
        m_in = float(np.percentile(e_in, 75))
    if m_out is None:
        m_out = float(np.median(e_out) + 0.5 * (np.median(e_out) - np.median(e_in)))
        m_out = max(m_out, m_in + 1.0)
    n_out = outliers.shape[0]

    def loss_fn(params, xb, yb, k):
        ob = outliers[jax.random.randint(jax.random.fold_in(k, 1), (batch,), 0, n_out)]
        return ood.energy_regularized_loss(logits(params, xb), yb, logits(params, ob),
                                           weight=weight, m_in=m_in, m_out=m_out)

    params, _ = _train(params, loss_fn, steps, lr, key, batch, x, y)
    return params


# ------------------------------------------------------------------------------------------
# scores


def post_hoc_scores(params: MLP, x_train: jax.Array, y_train: jax.Array,
                    only: tuple[str, ...] | None = None
                    ) -> dict[str, Callable[[jax.Array], jax.Array]]:
    """Every post-hoc score (or those named in ``only``), fitted on the ID training set:
    ``name -> fn(x) -> (n,)`` (higher = more in-distribution)."""
    w, b = params.layers[-1]
    f_tr = features(params, x_train)
    logit_fn = lambda x: logits(params, x)  # noqa: E731
    feat = lambda x: features(params, x)  # noqa: E731
    dim = min(32, f_tr.shape[1] - 1)

    # each entry builds its score (fitting statistics if needed) only when asked for
    def maha(relative):
        st = ood.fit_mahalanobis(f_tr, y_train, num_classes=ID_CLASSES, ridge=1e-6)
        fn = ood.relative_mahalanobis if relative else ood.mahalanobis
        return lambda x: fn(feat(x), st)

    def knn():
        bank = ood.fit_knn(f_tr)
        return lambda x: ood.knn(feat(x), bank, k=10)

    def react():
        st = ood.fit_react(f_tr, percentile=90.0)
        return lambda x: ood.react(feat(x), w, b, st)

    def vim():
        st = ood.fit_vim(f_tr, w, b, dim=dim)
        return lambda x: ood.vim(feat(x), w, b, st)

    def sinkhorn():
        st = ood.fit_prototypes(f_tr, y_train, num_classes=ID_CLASSES)
        return lambda x: ood.sinkhorn_score(feat(x), st, epsilon=0.05)

    builders = {
        "MSP": lambda: lambda x: ood.msp(logit_fn(x)),
        "MaxLogit": lambda: lambda x: ood.max_logit(logit_fn(x)),
        "energy": lambda: lambda x: ood.energy(logit_fn(x)),
        "ODIN": lambda: lambda x: ood.odin(logit_fn, x, temperature=1000.0, epsilon=0.002),
        "GEN": lambda: lambda x: ood.gen(logit_fn(x)),
        "Mahalanobis": lambda: maha(False),
        "rel. Mahalanobis": lambda: maha(True),
        "KNN (k=10)": knn,
        "ReAct": react,
        "ASH-S": lambda: lambda x: ood.ash(feat(x), w, b, percentile=65.0),
        "ViM": vim,
        "Sinkhorn": sinkhorn,
    }
    names = builders if only is None else only
    return {name: builders[name]() for name in names}


@jax.jit
def _metrics(s, lab):
    return (auroc(s, lab), fpr_at_tpr(s, lab), fpr_at_tpr(s, lab, positive="ood"),
            aupr_in(s, lab))


def evaluate(scores: dict[str, Callable], x_test: jax.Array, ood_sets: dict[str, jax.Array],
             *, mixed_batches: bool = True) -> tuple[list[ScoreRun], dict]:
    """AUROC / FPR@95 of each score on ID test vs each OOD set; also returns the raw
    ``(score_id, score_ood)`` arrays per ``(score, set)`` for plotting. The Sinkhorn score
    (transductive) is computed on the concatenated ID + OOD batch."""
    runs, raw = [], {}
    for name, fn in scores.items():
        fn = jax.jit(fn)
        s_id_alone = np.asarray(fn(x_test))
        for set_name, xo in ood_sets.items():
            if name == "Sinkhorn" and mixed_batches:
                both = np.asarray(fn(jnp.concatenate([x_test, xo])))
                s_id, s_ood = both[: x_test.shape[0]], both[x_test.shape[0]:]
            else:
                s_id, s_ood = s_id_alone, np.asarray(fn(xo))
            s = jnp.asarray(np.r_[s_id, s_ood])
            lab = jnp.asarray(np.r_[np.ones(len(s_id), int), np.zeros(len(s_ood), int)])
            runs.append(ScoreRun(name, set_name, *map(float, _metrics(s, lab))))
            raw[(name, set_name)] = (s_id, s_ood)
    return runs, raw


def print_table(console: Console, runs: list[ScoreRun], title: str = "OOD detection") -> None:
    """Scores as rows, one column per OOD set holding ``AUROC/FPR@95`` (both in %); the
    best of each column in bold. Fits 80 columns with full score names: the score column
    never wraps or truncates, long set names wrap in the header."""
    from rich import box
    from rich.table import Table

    sets = list(dict.fromkeys(r.ood_set for r in runs))
    names = list(dict.fromkeys(r.score for r in runs))
    by = {(r.score, r.ood_set): r for r in runs}
    table = Table(title=f"{title}: AUROC / FPR@95 (%)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("score", no_wrap=True, min_width=max(len(n) for n in names))
    for s in sets:
        table.add_column(s, justify="right", min_width=11)
    best_auc = {s: max(by[(n, s)].auroc for n in names) for s in sets}
    best_fpr = {s: min(by[(n, s)].fpr95 for n in names) for s in sets}
    for n in names:
        row = [n]
        for s in sets:
            r = by[(n, s)]
            a, f = f"{100 * r.auroc:5.1f}", f"{100 * r.fpr95:5.1f}"
            row.append(f"{f'[bold]{a}[/bold]' if r.auroc == best_auc[s] else a}/"
                       f"{f'[bold]{f}[/bold]' if r.fpr95 == best_fpr[s] else f}")
        table.add_row(*row)
    console.print(table)
    console.print("[dim]Higher score = more in-distribution. AUROC and FPR@95 in %, ID test "
                  "digits (0-4) as positives: FPR@95 is the share of OOD inputs accepted when "
                  "95% of ID inputs are kept.")



def _roc(s_id, s_ood):
    s = np.r_[s_id, s_ood]
    pos = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
    order = np.argsort(-s, kind="stable")
    tpr = np.r_[0, np.cumsum(pos[order]) / pos.sum()]
    fpr = np.r_[0, np.cumsum(1 - pos[order]) / (1 - pos).sum()]
    return fpr, tpr


def plot_scores(raw: dict, path: str | Path,
                names: tuple[str, ...] = ("MSP", "energy", "ViM", "KNN (k=10)"),
                runs: list[ScoreRun] | None = None) -> Path:
    """Histograms of a few scores (ID test vs each OOD set) and their ROC curves; with
    ``runs`` (from [`evaluate`][jaxclust.demo.ood.evaluate]), each ROC curve is labelled
    with the AUROC / FPR@95 the table prints."""
    plt = _pyplot()
    sets = list(dict.fromkeys(s for (_, s) in raw))
    names = tuple(n for n in names if (n, sets[0]) in raw)
    fig, axes = plt.subplots(2, len(names), figsize=(4 * len(names), 7), squeeze=False)
    colours = plt.get_cmap("tab10")
    for j, name in enumerate(names):
        ax = axes[0, j]
        s_id = raw[(name, sets[0])][0]
        # bins over the 1st-100th percentile of all scores (far-OOD tails can be very long)
        every = np.concatenate([s_id] + [raw[(name, s)][1] for s in sets])
        bins = np.linspace(np.percentile(every, 1), every.max(), 40)
        ax.hist(s_id, bins=bins, alpha=0.6, density=True, label="ID digits 0-4", color="k")
        for i, s in enumerate(sets):
            ax.hist(raw[(name, s)][1], bins=bins, alpha=0.45, density=True, label=s,
                    color=colours(i))
        ax.set_title(f"{name} (higher = ID)", fontsize=10)
        ax.set_yticks([])
        ax = axes[1, j]
        table = {} if runs is None else {(r.score, r.ood_set): r for r in runs}
        for i, s in enumerate(sets):
            fpr, tpr = _roc(*raw[(name, s)])
            r = table.get((name, s))
            label = s if r is None else f"{s}: {100 * r.auroc:.1f}/{100 * r.fpr95:.1f}"
            ax.plot(fpr, tpr, color=colours(i), label=label)
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.axhline(0.95, color="grey", lw=0.6, ls="--")
        ax.set_xlabel("FPR (OOD accepted)")
        ax.set_ylabel("TPR (ID kept)")
        if runs is not None or j == 0:
            ax.legend(fontsize=7, loc="lower right",
                      title=None if runs is None else "AUROC/FPR@95 (%)", title_fontsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("OOD scores of an MLP trained on digits 0-4", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run(ctx: DemoContext) -> None:
    """The demo section: train the MLP, score every OOD set, table and figure."""
    data = load_data(ctx.seed)
    key = jax.random.key(ctx.seed)
    params = train_classifier(data.x_train, data.y_train, key)
    acc = float(jnp.mean(jnp.argmax(logits(params, data.x_test), 1) == data.y_test))
    ctx.console.print(f"MLP on digits 0-4: test accuracy {100 * acc:.1f}% "
                      f"({data.x_train.shape[0]} training images)")
    runs, raw = evaluate(post_hoc_scores(params, data.x_train, data.y_train), data.x_test,
                         data.ood)
    print_table(ctx.console, runs)
    if ctx.out is not None:
        path = plot_scores(raw, ctx.out / "ood_digits.png", runs=runs)
        ctx.console.print(f"saved {path}")
