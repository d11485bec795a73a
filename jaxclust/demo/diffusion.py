"""Demo section: diffusion score models on a 2-D mixture and on scikit-learn's digits.

* **2-D mixture**: eight Gaussians on a circle; a time-conditioned MLP
  ([`ScoreMLP`][jaxclust.nn.equinox.ScoreMLP]) is trained with denoising score
  matching ([`fit`][jaxclust.train.fit]) under the VP SDE, then sampled with
  DDIM; the table gives the energy distance of the samples to fresh data next to the
  data-vs-data floor, the figure shows both clouds.
* **Digits**: the 8x8 digits (17 grey levels, scaled to ``[-1, 1]``, uniformly dequantised
  during training) with a class-conditional MLP trained with label dropout (one network for
  the conditional and the unconditional model). It is used as a *diffusion classifier*
  ([`diffusion_classify`][jaxclust.diffusion.diffusion_classify]: the class whose
  conditional noise prediction has the smallest error, with noises shared across classes)
  on held-out digits, and sampled class by class (figure: a grid of samples, one row per
  class).

The functions are public so that ``examples/diffusion_digits.py`` and
``benchmarks/bench_diffusion.py`` reuse them with larger settings
([`EXAMPLE`][jaxclust.demo.diffusion.EXAMPLE] instead of
[`DEMO`][jaxclust.demo.diffusion.DEMO]).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from jaxclust.demo import _pyplot
from jaxclust.diffusion import (
    VPSDE,
    AbstractSDE,
    as_score_fn,
    bits_per_dim,
    classifier_free_guidance,
    ddim,
    dequantize,
    diffusion_classify,
    euler_maruyama,
    ode_likelihood,
)
from jaxclust.diffusion.train import FitResult, dsm_objective, fit
from jaxclust.metrics.distribution import energy_distance

if TYPE_CHECKING:
    from rich.console import Console

    from jaxclust.demo import DemoContext

__all__ = [
    "DEMO",
    "EXAMPLE",
    "N_LEVELS",
    "Config",
    "DigitsData",
    "Row",
    "classify",
    "digits_bits_per_dim",
    "levels_to_pixels",
    "load_digits_split",
    "memorisation",
    "nearest_distances",
    "plot_grid",
    "plot_mixture",
    "print_table",
    "ring_mixture",
    "run",
    "run_digits",
    "run_mixture",
    "sample",
    "train_digits",
    "train_mixture",
]

N_LEVELS = 17
"""Grey levels of scikit-learn's digits (0 .. 16)."""


class Config(NamedTuple):
    """Sizes of one run (the demo uses [`DEMO`][jaxclust.demo.diffusion.DEMO], the example
    and the benchmark [`EXAMPLE`][jaxclust.demo.diffusion.EXAMPLE]). The mixture model is
    trained on batches of ``2 * batch_size``."""

    mixture_steps: int
    digits_steps: int
    width: int
    batch_size: int
    learning_rate: float
    n_classify: int | None
    """Held-out digits classified (``None``: all of them)."""
    n_timesteps: int
    """Timesteps per class of the diffusion classifier."""
    sample_steps: int
    """DDIM steps of the digit samples (the mixture uses 100)."""


DEMO = Config(mixture_steps=500, digits_steps=1000, width=128, batch_size=128,
              learning_rate=3e-3, n_classify=100, n_timesteps=16, sample_steps=50)
"""Settings of ``jaxclust demo`` (tens of seconds on a CPU)."""

EXAMPLE = Config(mixture_steps=3000, digits_steps=4000, width=256, batch_size=256,
                 learning_rate=2e-3, n_classify=None, n_timesteps=32, sample_steps=200)
"""Settings of ``examples/diffusion_digits.py`` and ``benchmarks/bench_diffusion.py``."""


# ------------------------------------------------------------------------------------------
# data


class DigitsData(NamedTuple):
    """scikit-learn's digits split into training and held-out images (stratified).

    Attributes:
      train_levels, test_levels: grey levels ``0 .. 16``, int32, shape ``(n, 64)``.
      train_labels, test_labels: classes ``0 .. 9``, int32.
    """

    train_levels: Int[Array, "n 64"]
    train_labels: Int[Array, " n"]
    test_levels: Int[Array, "m 64"]
    test_labels: Int[Array, " m"]


def load_digits_split(*, test_size: float = 0.25, seed: int = 0) -> DigitsData:
    """The 1,797 digits, a stratified ``test_size`` fraction held out (scikit-learn's
    ``train_test_split`` with ``random_state=seed``)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    parts = train_test_split(d.data.astype(np.int32), d.target.astype(np.int32),
                             test_size=test_size, stratify=d.target, random_state=seed)
    xtr, xte, ytr, yte = (jnp.asarray(p) for p in parts)
    return DigitsData(xtr, ytr, xte, yte)


def levels_to_pixels(levels: Int[Array, "..."]) -> Float[Array, "..."]:
    """Grey levels ``k`` to the centres of their bins in ``[-1, 1]``:
    ``-1 + 2 (k + 1/2) / 17`` (the mean of [`dequantize`][jaxclust.diffusion.dequantize])."""
    return -1.0 + 2.0 * (jnp.asarray(levels, jnp.float32) + 0.5) / N_LEVELS


def ring_mixture(n: int, *, seed: int = 0, k: int = 8, radius: float = 2.0,
                 std: float = 0.2) -> Float[Array, "n 2"]:
    """``n`` points of ``k`` equal isotropic Gaussians (std ``std``) centred on a circle."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * rng.integers(0, k, n) / k
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return jnp.asarray(centres + std * rng.normal(size=(n, 2)), jnp.float32)


# ------------------------------------------------------------------------------------------
# training


def _ema_decay(steps: int) -> float:
    """EMA decay for a run of ``steps``: the initial weights keep a weight
    ``decay**steps`` < 1e-4 (1 - 10 / steps), at most 0.999."""
    return min(0.999, 1.0 - 10.0 / steps)


def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    warmup = min(200, steps // 10)
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, steps,
                                                  learning_rate * 1e-2)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def train_mixture(x: Float[Array, "n 2"], *, key: jax.Array, steps: int, width: int = 128,
                  batch_size: int = 256, learning_rate: float = 3e-3,
                  sde: AbstractSDE | None = None, progress: bool = True) -> FitResult:
    """An unconditional ``ScoreMLP`` (noise prediction) trained on ``x``; the trained network
    is ``result.ema``."""
    from jaxclust.nn._score_equinox import ScoreMLP

    sde = VPSDE() if sde is None else sde
    k_init, k_train = jax.random.split(key)
    net = ScoreMLP(2, width=width, depth=3, embed_dim=32, key=k_init)
    return fit(dsm_objective(sde, time_sampling="stratified"), net, x, key=k_train,
               steps=steps, batch_size=batch_size,
               optimizer=_optimizer(learning_rate, steps), ema_decay=_ema_decay(steps),
               log_every=max(1, steps // 10), progress=progress, description="2-D mixture")


def train_digits(data: DigitsData, *, key: jax.Array, steps: int, width: int = 256,
                 batch_size: int = 256, learning_rate: float = 2e-3,
                 label_dropout: float = 0.1, sde: AbstractSDE | None = None,
                 progress: bool = True) -> FitResult:
    """A class-conditional ``ScoreMLP`` on the flattened digits (64 pixels), trained on
    freshly dequantised images at every step (so that its probability-flow likelihood is a
    density of dequantised digits) with labels dropped to the null class 10 with
    probability ``label_dropout``; the trained network is ``result.ema``."""
    from jaxclust.nn._score_equinox import ScoreMLP

    sde = VPSDE() if sde is None else sde
    k_init, k_train = jax.random.split(key)
    net = ScoreMLP(64, width=width, depth=3, embed_dim=64, num_classes=10, key=k_init)
    base = dsm_objective(sde, label_dropout=label_dropout, null_label=10,
                         time_sampling="stratified")

    def objective(model, batch, key):
        levels, labels = batch
        k_deq, k_loss = jax.random.split(key)
        x = dequantize(k_deq, levels, n_bins=N_LEVELS, low=-1.0, high=1.0)
        return base(model, (x, labels), k_loss)

    return fit(objective, net, (data.train_levels, data.train_labels), key=k_train,
               steps=steps, batch_size=batch_size,
               optimizer=_optimizer(learning_rate, steps), ema_decay=_ema_decay(steps),
               log_every=max(1, steps // 20), progress=progress, description="digits")


# ------------------------------------------------------------------------------------------
# sampling, classification, likelihood


@partial(jax.jit, static_argnames=("shape", "guidance", "n_steps", "sde", "sampler"))
def sample(model, key: jax.Array, *, shape: tuple[int, ...], labels: Array | None = None,
           guidance: float = 1.0, n_steps: int = 100, sde: AbstractSDE = VPSDE(),
           sampler: str = "ddim") -> Float[Array, "n ..."]:
    """Samples of the noise-prediction network ``model(x, t, y=None)``: deterministic DDIM
    (``sampler="ddim"``) or Euler-Maruyama (``"em"``) from $T$ to $10^{-3}$, then one
    Tweedie denoising step. With ``labels``, the noise prediction is classifier-free
    guided, $\\hat\\varepsilon_\\varnothing + w(\\hat\\varepsilon_y -
    \\hat\\varepsilon_\\varnothing)$ with $w$ = ``guidance`` ($w = 1$: the conditional
    model)."""
    if labels is None:
        eps_fn = model
    else:
        def eps_fn(x, t):
            if guidance == 1.0:
                return model(x, t, labels)
            return classifier_free_guidance(model(x, t, labels), model(x, t), scale=guidance)
    score_fn = as_score_fn(eps_fn, sde)
    if sampler == "ddim":
        return ddim(score_fn, key, sde, shape, n_steps=n_steps)
    return euler_maruyama(score_fn, key, sde, shape, n_steps=n_steps)


@partial(jax.jit, static_argnames=("n_timesteps", "sde", "chunk"))
def classify(model, x: Float[Array, "m d"], key: jax.Array, *, n_timesteps: int = 32,
             sde: AbstractSDE = VPSDE(), chunk: int = 16) -> Int[Array, " m"]:
    """Diffusion-classifier labels of the rows of ``x`` (10 classes, ``n_timesteps``
    stratified times per class, noises shared across classes), ``chunk`` images at a time
    (``lax.map``)."""
    keys = jax.random.split(key, x.shape[0])

    def one(args):
        xi, ki = args
        return diffusion_classify(model, xi, ki, sde, num_classes=10,
                                  n_timesteps=n_timesteps).label

    return jax.lax.map(one, (x, keys), batch_size=chunk)


@partial(jax.jit, static_argnames=("n_steps", "sde", "divergence_method", "n_probes", "t0"))
def digits_bits_per_dim(model, levels: Int[Array, "m 64"], key: jax.Array, *,
                        n_steps: int = 100, t0: float = 1e-3, sde: AbstractSDE = VPSDE(),
                        divergence_method: str = "hutchinson", n_probes: int = 1
                        ) -> Float[Array, " m"]:
    r"""Bits per dimension of held-out digits under the unconditional model (null class):
    dequantise ([`dequantize`][jaxclust.diffusion.dequantize], 17 levels on ``[-1, 1)``),
    integrate the probability-flow ODE from ``t0`` to $T$
    ([`ode_likelihood`][jaxclust.diffusion.ode_likelihood], RK4, ``n_steps`` equal steps)
    and convert ([`bits_per_dim`][jaxclust.diffusion.bits_per_dim]).

    The result is the dequantisation bound for the density $p_{t_0}$. ``t0 = 1e-3``
    ($\sigma_{t_0} \approx 0.01$, a tenth of the dequantisation noise) by default: at
    ``t0 = 1e-5`` the equal-step RK4 grid is too coarse near $t_0$ (the result still moves
    between 100 and 400 steps), at ``1e-3`` it does not."""
    k_deq, k_div = jax.random.split(key)
    y = dequantize(k_deq, levels, n_bins=N_LEVELS, low=-1.0, high=1.0)
    res = ode_likelihood(as_score_fn(model, sde), y, sde, k_div, n_steps=n_steps, t0=t0,
                         divergence_method=divergence_method, n_probes=n_probes)
    return bits_per_dim(res.logp, levels.shape[1], n_bins=N_LEVELS, low=-1.0, high=1.0)


# ------------------------------------------------------------------------------------------
# sample quality


def nearest_distances(x: Float[Array, "n d"], ref: Float[Array, "m d"]
                      ) -> Float[Array, "n 2"]:
    """Euclidean distances of each row of ``x`` to its nearest and second-nearest rows of
    ``ref``."""
    d2 = (jnp.sum(x * x, 1)[:, None] - 2.0 * x @ ref.T + jnp.sum(ref * ref, 1)[None, :])
    neg, _ = jax.lax.top_k(-d2, 2)
    return jnp.sqrt(jnp.maximum(-neg, 0.0))


def memorisation(samples: Float[Array, "n d"], train_x: Float[Array, "m d"],
                 test_x: Float[Array, "k d"]) -> dict[str, float]:
    """Nearest-training-neighbour check. A model that copies its training set produces
    samples much closer to a training image than held-out images are. Returns the median
    distance to the nearest training image of the samples and of the held-out images, the
    fraction of samples closer to a training image than the 1st percentile of the held-out
    images' distances (about 0.01 without copying), and the median ratio nearest /
    second-nearest distance (copies have ratios near 0)."""
    s = np.asarray(nearest_distances(samples, train_x))
    t = np.asarray(nearest_distances(test_x, train_x))
    return {"sample_nn_median": float(np.median(s[:, 0])),
            "test_nn_median": float(np.median(t[:, 0])),
            "frac_below_test_p1": float(np.mean(s[:, 0] < np.percentile(t[:, 0], 1))),
            "sample_ratio_median": float(np.median(s[:, 0] / s[:, 1])),
            "test_ratio_median": float(np.median(t[:, 0] / t[:, 1]))}


# ------------------------------------------------------------------------------------------
# figures



def plot_mixture(data: Float[Array, "n 2"], samples: Float[Array, "m 2"],
                 path: str | Path) -> Path:
    """Training data and model samples side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, pts, title in ((axes[0], data, "data"), (axes[1], samples, "samples (DDIM)")):
        pts = np.asarray(pts)
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, linewidths=0)
        ax.set_title(title)
        ax.set_aspect("equal")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_grid(images: Float[Array, "n 64"], path: str | Path, *, cols: int,
              title: str = "") -> Path:
    """A grid of 8x8 images in ``[-1, 1]``, ``cols`` per row (row-major)."""
    plt = _pyplot()
    imgs = np.clip(np.asarray(images).reshape(-1, 8, 8), -1, 1)
    rows = -(-len(imgs) // cols)
    canvas = np.ones((rows * 9 + 1, cols * 9 + 1))
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        canvas[1 + 9 * r:9 * r + 9, 1 + 9 * c:9 * c + 9] = img
    fig, ax = plt.subplots(figsize=(cols * 0.45 + 0.4, rows * 0.45 + 0.6))
    ax.imshow(canvas, cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# the section


class Row(NamedTuple):
    """One line of the section's table."""

    task: str
    measure: str
    value: str


def run_mixture(config: Config, *, seed: int = 0, progress: bool = False,
                out: Path | None = None) -> tuple[list[Row], FitResult]:
    """The 2-D mixture: train, sample with DDIM, energy distances; figure under ``out``."""
    key = jax.random.key(seed)
    x = ring_mixture(2000, seed=seed)
    res = train_mixture(x, key=jax.random.fold_in(key, 0), steps=config.mixture_steps,
                        width=config.width, batch_size=2 * config.batch_size,
                        learning_rate=config.learning_rate, progress=progress)
    samples = sample(res.ema, jax.random.fold_in(key, 1), shape=(1000, 2), n_steps=100)
    fresh, fresh2 = ring_mixture(1000, seed=seed + 1), ring_mixture(1000, seed=seed + 2)
    ed = float(energy_distance(samples, fresh))
    floor = float(energy_distance(fresh2, fresh))
    rows = [Row("2-D mixture", "training", f"{config.mixture_steps} steps, "
                 f"{res.seconds:.1f} s, final loss {float(res.losses[-50:].mean()):.3f}"),
            Row("2-D mixture", "energy distance to fresh data",
                 f"{ed:.4f} (data vs data: {floor:.4f})")]
    if out is not None:
        plot_mixture(x[:1000], samples, out / "diffusion_mixture.png")
    return rows, res


def run_digits(config: Config, *, seed: int = 0, progress: bool = False,
               out: Path | None = None) -> tuple[list[Row], DigitsData, FitResult]:
    """The digits: train the class-conditional model, classify held-out digits; grid of
    class-conditional samples under ``out``."""
    key = jax.random.key(seed + 1)
    data = load_digits_split(seed=seed)
    res = train_digits(data, key=jax.random.fold_in(key, 0), steps=config.digits_steps,
                       width=config.width, batch_size=config.batch_size,
                       learning_rate=config.learning_rate, progress=progress)
    m = data.test_levels.shape[0] if config.n_classify is None else config.n_classify
    start = time.perf_counter()
    pred = classify(res.ema, levels_to_pixels(data.test_levels[:m]), jax.random.fold_in(key, 1),
                    n_timesteps=config.n_timesteps)
    acc = float(jnp.mean(pred == data.test_labels[:m]))
    seconds = time.perf_counter() - start
    rows = [Row("digits", "training", f"{config.digits_steps} steps, {res.seconds:.1f} s, "
                 f"final loss {float(res.losses[-50:].mean()):.3f}"),
            Row("digits", "diffusion classifier accuracy",
                 f"{100 * acc:.1f}% on {m} held-out digits ({config.n_timesteps} timesteps x "
                 f"10 classes, {seconds:.1f} s)")]
    if out is not None:
        labels = jnp.repeat(jnp.arange(10), 10)
        imgs = sample(res.ema, jax.random.fold_in(key, 2), shape=(100, 64), labels=labels,
                      n_steps=config.sample_steps)
        plot_grid(imgs, out / "diffusion_digits_samples.png", cols=10,
                  title="class-conditional samples (one row per class)")
    return rows, data, res


def print_table(console: Console, rows: list[Row]) -> None:
    """The rows as a rich table."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for col in ("task", "measure", "value"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def run(ctx: DemoContext, config: Config = DEMO) -> None:
    """The demo section: the 2-D mixture and the digits classifier (``DEMO`` settings)."""
    progress = ctx.console.is_terminal
    rows, _ = run_mixture(config, seed=ctx.seed, progress=progress, out=ctx.out)
    rows += run_digits(config, seed=ctx.seed, progress=progress, out=ctx.out)[0]
    print_table(ctx.console, rows)
    ctx.console.print("[dim]VP SDE (beta 0.1 -> 20); noise-prediction MLPs, EMA weights; "
                      "energy distance: squared, unbiased.")
    if ctx.out is not None:
        ctx.console.print(f"saved {ctx.out / 'diffusion_mixture.png'} and "
                          f"{ctx.out / 'diffusion_digits_samples.png'}")
