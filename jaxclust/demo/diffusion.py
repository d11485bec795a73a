"""Demo section: diffusion score models on a 2-D mixture and on scikit-learn's digits.

* **2-D mixture**: eight Gaussians on a circle; a time-conditioned MLP
  ([`ScoreMLP`][jaxclust.nn.equinox.ScoreMLP]) is trained with denoising score
  matching ([`fit`][jaxclust.train.fit]) under the VP SDE
  ([`MIXTURE_SDE`][jaxclust.demo.diffusion.MIXTURE_SDE]), then sampled with DDIM; so is
  the exact score of the mixture ([`mixture_score_fn`][jaxclust.diffusion.mixture_score_fn]),
  a reference for what the sampler can do. The table gives, for the model, the exact score
  and fresh data, the energy distance to fresh data and a measure that sees modes
  ([`mode_coverage`][jaxclust.demo.diffusion.mode_coverage]: the share of samples within
  3 standard deviations of a mode, the share of each mode, the number of modes covered);
  the figure shows the three clouds with the same numbers in their titles. (The energy
  distance alone is blind to modes: a ring through the eight centres that misses every
  one of them scores ~0.004, barely above the data-vs-data noise.)
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
from jaxtyping import Array, Bool, Float, Int

from jaxclust._core import checks
from jaxclust._core.results import with_summary_repr
from jaxclust.demo import _pyplot
from jaxclust.diffusion import (
    VPSDE,
    AbstractSDE,
    GaussianMixture,
    as_score_fn,
    bits_per_dim,
    classifier_free_guidance,
    ddim,
    dequantize,
    diffusion_classify,
    euler_maruyama,
    mixture_score_fn,
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
    "MIXTURE_SDE",
    "N_LEVELS",
    "Config",
    "DigitsData",
    "ModeCoverage",
    "Row",
    "classify",
    "digits_bits_per_dim",
    "levels_to_pixels",
    "load_digits_split",
    "memorisation",
    "mode_coverage",
    "nearest_distances",
    "plot_grid",
    "plot_mixture",
    "print_table",
    "ring_mixture",
    "ring_modes",
    "run",
    "run_digits",
    "run_mixture",
    "sample",
    "sample_outliers",
    "sample_recognition",
    "train_digits",
    "train_mixture",
]

N_LEVELS = 17
"""Grey levels of scikit-learn's digits (0 .. 16)."""


@with_summary_repr
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
    mixture_width: int = 128
    """Hidden width of the mixture's network (``width`` is the digits')."""
    mixture_learning_rate: float = 1e-2
    """Peak learning rate of the mixture's network (``learning_rate`` is the digits')."""


DEMO = Config(mixture_steps=2000, digits_steps=1000, width=128, batch_size=128,
              learning_rate=3e-3, n_classify=100, n_timesteps=16, sample_steps=50)
"""Settings of ``jaxclust demo`` (tens of seconds on a CPU)."""

EXAMPLE = Config(mixture_steps=4000, digits_steps=4000, width=256, batch_size=256,
                 learning_rate=2e-3, n_classify=None, n_timesteps=32, sample_steps=200)
"""Settings of ``examples/diffusion_digits.py`` and ``benchmarks/bench_diffusion.py``."""


# ------------------------------------------------------------------------------------------
# data


@with_summary_repr
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


MIXTURE_STD = 0.2
"""Standard deviation of each component of the 2-D mixture."""


def ring_modes(k: int = 8, radius: float = 2.0) -> Float[Array, "k 2"]:
    """The ``k`` centres of the 2-D mixture, equally spaced on a circle, the first at
    angle 0."""
    angles = 2 * np.pi * np.arange(k) / k
    return jnp.asarray(radius * np.stack([np.cos(angles), np.sin(angles)], axis=1),
                       jnp.float32)


def ring_mixture(n: int, *, seed: int = 0, k: int = 8, radius: float = 2.0,
                 std: float = MIXTURE_STD) -> Float[Array, "n 2"]:
    """``n`` points of ``k`` equal isotropic Gaussians (std ``std``) centred on a circle
    ([`ring_modes`][jaxclust.demo.diffusion.ring_modes])."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(ring_modes(k, radius))[rng.integers(0, k, n)]
    return jnp.asarray(centres + std * rng.normal(size=(n, 2)), jnp.float32)


def _ring_gaussian_mixture(k: int = 8, radius: float = 2.0,
                           std: float = MIXTURE_STD) -> GaussianMixture:
    """The law of [`ring_mixture`][jaxclust.demo.diffusion.ring_mixture] for the exact
    score."""
    return GaussianMixture(jnp.full((k,), 1.0 / k), ring_modes(k, radius),
                           jnp.tile(std ** 2 * jnp.eye(2), (k, 1, 1)))


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


MIXTURE_SDE = VPSDE(beta_min=0.1, beta_max=10.0)
r"""The SDE of the 2-D mixture: the VP SDE with $\beta_{\max} = 10$ instead of 20 (still
$\alpha_T = 0.08$, a prior off by $0.08 \times 2 = 0.16$ at the modes). With 20, half of
the times $t$ have $\sigma_t > 0.99$ and teach nothing about where the modes are; measured
at 2,000 steps (lr $10^{-2}$, seed 0): 94.5% of DDIM samples within 3 std of a mode with
$\beta_{\max} = 10$ against 91.6% with 20."""


def train_mixture(x: Float[Array, "n 2"], *, key: jax.Array, steps: int, width: int = 128,
                  batch_size: int = 256, learning_rate: float = 1e-2,
                  sde: AbstractSDE | None = None, progress: bool = True) -> FitResult:
    """An unconditional ``ScoreMLP`` (noise prediction) trained on ``x`` under ``sde``
    ([`MIXTURE_SDE`][jaxclust.demo.diffusion.MIXTURE_SDE] by default); the trained network
    is ``result.ema``.

    The defaults were chosen by the share of samples near a mode
    ([`mode_coverage`][jaxclust.demo.diffusion.mode_coverage]), not by the loss: with the
    former 500 steps at learning rate 3e-3 the samples formed a ring through the eight
    modes (72% near a mode); 2,000 steps at 3e-3 gave 74%, at 1e-2 92% (seed 0). A width
    of 256 did not help (74% at 3e-3)."""
    from jaxclust.nn._score_equinox import ScoreMLP

    sde = MIXTURE_SDE if sde is None else sde
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


@with_summary_repr
class ModeCoverage(NamedTuple):
    r"""Result of [`mode_coverage`][jaxclust.demo.diffusion.mode_coverage].

    Attributes:
      near: share of the samples within ``radius`` of their nearest mode (a scalar).
      per_mode: share of the samples whose nearest mode is mode $j$ and lies within
        ``radius``, shape ``(k,)`` (sums to ``near``).
      expected: the share mode $j$ holds under the true mixture, $\pi_j\,
        P(\lVert z\rVert \le r/s)$ for $z \sim \mathcal N(0, I_d)$, shape ``(k,)``.
      covered: ``per_mode >= min_share * expected``, shape ``(k,)``.
    """

    near: Float[Array, ""]
    per_mode: Float[Array, " k"]
    expected: Float[Array, " k"]
    covered: Bool[Array, " k"]

    @property
    def n_covered(self) -> Int[Array, ""]:
        """Number of modes covered."""
        return jnp.sum(self.covered, axis=-1)


def mode_coverage(samples: Float[Array, "n d"], modes: Float[Array, "k d"], *, std: float,
                  radius: float | None = None, weights: Float[Array, " k"] | None = None,
                  min_share: float = 1.0 / 3.0) -> ModeCoverage:
    r"""How well samples of a model cover the modes of a mixture of isotropic Gaussians
    $\sum_j \pi_j \mathcal N(\mu_j, s^2 I_d)$ with known centres: a measure that sees
    modes, unlike the energy distance or MMD (a ring through eight centres that misses all
    of them can have a small energy distance).

    Each sample goes to its nearest mode $j(x) = \arg\min_j \lVert x - \mu_j\rVert$; it is
    *near* when $\lVert x - \mu_{j(x)}\rVert \le r$ (``radius``, $3s$ by default). Then

    $$ \text{per\_mode}_j = \frac1n\#\{i : j(x_i) = j,\ x_i \text{ near}\},\qquad
       \text{expected}_j = \pi_j\, P\big(\chi^2_d \le r^2/s^2\big), $$

    (0.989 $\pi_j$ at $r = 3s$, $d = 2$: exact when the balls of radius $r$ do not
    overlap), and mode $j$ is *covered* when $\text{per\_mode}_j \ge$ ``min_share``
    $\times\,\text{expected}_j$. The share near a mode and the count of covered modes are the
    "high-quality samples" and "modes" of the 2-D ring benchmark of Srivastava et al.
    (VEEGAN, 2017; $r = 3s$ there).

    Args:
      samples: model samples, shape ``(n, d)``.
      modes: the centres $\mu_j$, shape ``(k, d)``.
      std: the components' standard deviation $s > 0$.
      radius: $r > 0$; ``3 * std`` by default.
      weights: $\pi$, shape ``(k,)``; equal weights by default.
      min_share: fraction of its expected share a mode must hold to count as covered.

    Returns:
      A [`ModeCoverage`][jaxclust.demo.diffusion.ModeCoverage]; ``.n_covered`` counts the
      modes covered.

    Raises:
      ValueError: if ``samples`` or ``modes`` are not 2-D with the same number of columns,
        ``weights`` has not one entry per mode, or ``std``, ``radius``, ``min_share`` are
        not positive.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.demo.diffusion import mode_coverage
      >>> modes = jnp.array([[0.0, 0.0], [4.0, 0.0]])
      >>> x = 0.2 * jax.random.normal(jax.random.key(0), (1000, 2))  # all at mode 0
      >>> cov = mode_coverage(x, modes, std=0.2)
      >>> round(float(cov.near), 2), int(cov.n_covered)
      (0.99, 1)
      >>> [round(float(v), 3) for v in cov.expected]  # 0.5 * (1 - exp(-4.5))
      [0.494, 0.494]

    References:
      Srivastava, Valkov, Russell, Gutmann, Sutton, "VEEGAN: Reducing Mode Collapse in GANs
      using Implicit Variational Learning", NeurIPS 2017.
    """
    x = checks.as_float_array(samples, "samples")
    mu = checks.as_float_array(modes, "modes", dtype=x.dtype)
    checks.check_ndim(x, "samples", 2, "(n, d)")
    checks.check_ndim(mu, "modes", 2, "(k, d)")
    if mu.shape[1] != x.shape[1]:
        raise ValueError(f"`modes` must have the {x.shape[1]} columns of `samples`, got shape "
                         f"{mu.shape}.")
    k, d = mu.shape
    if weights is None:
        w = jnp.full((k,), 1.0 / k, x.dtype)
    else:
        w = checks.as_float_array(weights, "weights", dtype=x.dtype)
        if w.shape != (k,):
            raise ValueError(f"`weights` must have one entry per mode, shape ({k},), got "
                             f"{w.shape}.")
    for value, name in ((std, "std"), (min_share, "min_share"),
                        (3.0 * std if radius is None else radius, "radius")):
        if not checks.is_traced(value) and not float(value) > 0:
            raise ValueError(f"`{name}` must be > 0, got {value}.")
    r = 3.0 * std if radius is None else radius
    d2 = jnp.sum((x[:, None, :] - mu[None, :, :]) ** 2, axis=-1)
    nearest = jnp.argmin(d2, axis=1)
    near = jnp.min(d2, axis=1) <= jnp.asarray(r, x.dtype) ** 2
    per_mode = jnp.mean(jax.nn.one_hot(nearest, k, dtype=x.dtype) * near[:, None], axis=0)
    inside = jax.scipy.special.gammainc(d / 2.0, (jnp.asarray(r, x.dtype) / std) ** 2 / 2.0)
    expected = w * inside
    return ModeCoverage(jnp.mean(near.astype(x.dtype)), per_mode, expected,
                        per_mode >= min_share * expected)


# ------------------------------------------------------------------------------------------
# figures



def plot_mixture(panels: dict[str, Float[Array, "n 2"]], path: str | Path, *,
                 modes: Float[Array, "k 2"] | None = None, radius: float | None = None
                 ) -> Path:
    """Point clouds side by side, one panel per ``{title: points}`` entry, on shared axes;
    with ``modes``, each mode is marked and circled at ``radius`` (the disc
    [`mode_coverage`][jaxclust.demo.diffusion.mode_coverage] counts as near)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4.0), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (title, pts) in zip(axes[0], panels.items(), strict=True):
        pts = np.asarray(pts)
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, linewidths=0)
        if modes is not None:
            for m in np.asarray(modes):
                if radius is not None:
                    ax.add_patch(plt.Circle(m, radius, fill=False, color="tab:red", lw=0.8))
                ax.plot(*m, "+", color="tab:red", ms=6)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("$x_1$")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("$x_2$")
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
        ax.set_title(title, fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# the section


@with_summary_repr
class Row(NamedTuple):
    """One line of the section's table."""

    task: str
    measure: str
    value: str


def _pct(v) -> str:
    return f"{100 * float(v):.1f}%"


MIXTURE_COLUMNS = "model | exact score | fresh data"
"""The order of the three values of the mixture's comparison rows."""


def run_mixture(config: Config, *, seed: int = 0, progress: bool = False,
                out: Path | None = None) -> tuple[list[Row], FitResult]:
    """The 2-D mixture: train, sample with DDIM (100 steps) from the network and from the
    exact score, compare both and fresh data with the truth (energy distance,
    [`mode_coverage`][jaxclust.demo.diffusion.mode_coverage] at 3 std); figure under
    ``out``."""
    key = jax.random.key(seed)
    x = ring_mixture(2000, seed=seed)
    res = train_mixture(x, key=jax.random.fold_in(key, 0), steps=config.mixture_steps,
                        width=config.mixture_width, batch_size=2 * config.batch_size,
                        learning_rate=config.mixture_learning_rate, sde=MIXTURE_SDE,
                        progress=progress)
    k_sample = jax.random.fold_in(key, 1)
    model = sample(res.ema, k_sample, shape=(1000, 2), n_steps=100, sde=MIXTURE_SDE)
    exact = ddim(mixture_score_fn(_ring_gaussian_mixture(), MIXTURE_SDE), k_sample,
                 MIXTURE_SDE, (1000, 2), n_steps=100)
    fresh, fresh2 = ring_mixture(1000, seed=seed + 1), ring_mixture(1000, seed=seed + 2)
    modes, radius = ring_modes(), 3 * MIXTURE_STD
    clouds = {"model": model, "exact score": exact, "data": fresh2}
    ed = {name: float(energy_distance(pts, fresh)) for name, pts in clouds.items()}
    cov = {name: mode_coverage(pts, modes, std=MIXTURE_STD) for name, pts in clouds.items()}
    k = modes.shape[0]

    def each(fmt) -> str:  # MIXTURE_COLUMNS order
        return " | ".join(fmt(name) for name in clouds)

    expected = float(cov["model"].expected[0])
    task = "2-D mixture: " + MIXTURE_COLUMNS
    rows = [Row("2-D mixture", "training", f"{config.mixture_steps} steps, "
                 f"{res.seconds:.1f} s, final loss {float(res.losses[-50:].mean()):.3f}"),
            Row(task, "energy distance to fresh data", each(lambda n: f"{ed[n]:.4f}")),
            Row(task, f"within {radius:.1f} (3 std) of a mode (expect {_pct(k * expected)})",
                each(lambda n: _pct(cov[n].near))),
            Row(task, "modes covered (>= 1/3 of expected share)",
                each(lambda n: f"{int(cov[n].n_covered)}/{k}")),
            Row("2-D mixture", f"model: share of each mode, % (expect {100 * expected:.1f})",
                " ".join(f"{100 * float(v):.1f}" for v in cov["model"].per_mode))]
    if out is not None:
        titles = {"model": "model samples (DDIM)", "exact score": "exact score (DDIM)",
                  "data": "fresh data"}
        panels = {f"{titles[n]}\n{_pct(cov[n].near)} near a mode, "
                  f"{int(cov[n].n_covered)}/{k} modes, ED {ed[n]:.4f}": clouds[n]
                  for n in ("data", "model", "exact score")}
        plot_mixture(panels, out / "diffusion_mixture.png", modes=modes, radius=radius)
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
    labels = jnp.repeat(jnp.arange(10), 10)
    imgs = sample(res.ema, jax.random.fold_in(key, 2), shape=(100, 64), labels=labels,
                  n_steps=config.sample_steps)
    train_px = levels_to_pixels(data.train_levels)
    test_px = levels_to_pixels(data.test_levels)
    far = sample_outliers(imgs, train_px, test_px)
    recognised, ref = sample_recognition(imgs, labels, data)
    rows.append(Row("digits", "class-conditional samples recognised as their class",
                    f"{100 * recognised:.0f}% of 100 (logistic regression on the training "
                    f"digits; held-out digits: {100 * ref:.0f}%)"))
    rows.append(Row("digits", "... atypical: farther from every training digit than 99% "
                    "of held-out digits", f"{100 * far:.0f}% (held-out: 1% by construction)"))
    if out is not None:
        plot_grid(imgs, out / "diffusion_digits_samples.png", cols=10,
                  title=f"class-conditional samples, one row per class "
                        f"({config.sample_steps} DDIM steps):\n{100 * recognised:.0f}% "
                        f"recognised as their class, {100 * far:.0f}% atypical")
    return rows, data, res


def sample_recognition(samples: Float[Array, "n 64"], labels: Int[Array, " n"],
                       data: DigitsData) -> tuple[float, float]:
    """Share of class-conditional ``samples`` that a logistic regression trained on the
    training digits (scikit-learn, pixels in ``[-1, 1]``) assigns to their intended
    ``labels``, and the same share for the held-out digits (the reference)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(
        np.asarray(levels_to_pixels(data.train_levels)), np.asarray(data.train_labels))
    ok = clf.predict(np.asarray(samples, np.float64)) == np.asarray(labels)
    ref = clf.predict(np.asarray(levels_to_pixels(data.test_levels))) == np.asarray(
        data.test_labels)
    return float(np.mean(ok)), float(np.mean(ref))


def sample_outliers(samples: Float[Array, "n d"], train_x: Float[Array, "m d"],
                    test_x: Float[Array, "k d"]) -> float:
    """Share of ``samples`` farther from their nearest training image than 99% of the
    held-out images are (1% of held-out images by construction): *atypical* samples. Failed
    samples (noise, broken strokes) are atypical, but so are clean over-saturated ones
    (classifier-free guidance at scale 3 gives thick black strokes no real digit has): read
    it beside [`sample_recognition`][jaxclust.demo.diffusion.sample_recognition]."""
    s = np.asarray(nearest_distances(samples, train_x))[:, 0]
    t = np.asarray(nearest_distances(test_x, train_x))[:, 0]
    return float(np.mean(s > np.percentile(t, 99)))


def print_table(console: Console, rows: list[Row]) -> None:
    """The rows as rich tables, one per task (the task is the table's title), so that they
    fit 80 columns."""
    from rich import box
    from rich.table import Table

    for task in dict.fromkeys(r.task for r in rows):
        table = Table(title=task, box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("measure")
        table.add_column("value")
        for r in rows:
            if r.task == task:
                table.add_row(r.measure, r.value)
        console.print(table)


def run(ctx: DemoContext, config: Config = DEMO) -> None:
    """The demo section: the 2-D mixture and the digits classifier (``DEMO`` settings)."""
    progress = ctx.console.is_terminal
    rows, _ = run_mixture(config, seed=ctx.seed, progress=progress, out=ctx.out)
    rows += run_digits(config, seed=ctx.seed, progress=progress, out=ctx.out)[0]
    print_table(ctx.console, rows)
    ctx.console.print("[dim]VP SDE (beta 0.1 -> 10 for the mixture, 0.1 -> 20 for the "
                      "digits); noise-prediction MLPs, EMA weights; energy distance: squared, "
                      "unbiased (blind to modes: a ring through the modes scores ~0.004); "
                      "exact score: the mixture's closed-form score, same DDIM sampler.")
    if ctx.out is not None:
        ctx.console.print(f"saved {ctx.out / 'diffusion_mixture.png'} and "
                          f"{ctx.out / 'diffusion_digits_samples.png'}")
