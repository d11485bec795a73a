"""Score networks in Equinox: a time-conditioned MLP and a small U-Net (private module,
re-exported by ``jaxclust.nn.equinox``).

The same networks, with the same parameters in the same roles, are in
``jaxclust.nn._score_flax``; only the layouts differ (``eqx.nn.Linear`` weights are
``(out, in)``, ``eqx.nn.Conv2d`` weights ``(out, in, kh, kw)`` on CHW images). Equinox layers
are unbatched: the networks run one example and ``jax.vmap`` over the batch inside
``__call__``, so they take a single example or a batch, like the Flax ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from . import _score_common as sc

__all__ = ["ScoreMLP", "ScoreUNet"]


class _Conditioning(eqx.Module):
    """``c = W_2 silu(W_1 e(t)) + E[y]`` for one example."""

    lin1: eqx.nn.Linear
    lin2: eqx.nn.Linear
    class_embed: eqx.nn.Embedding | None
    embed_dim: int = eqx.field(static=True)
    time_scale: float = eqx.field(static=True)

    def __init__(self, embed_dim: int, dim: int, num_classes: int | None, time_scale: float,
                 *, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.embed_dim, self.time_scale = embed_dim, time_scale
        self.lin1 = eqx.nn.Linear(embed_dim, dim, key=k1)
        self.lin2 = eqx.nn.Linear(dim, dim, key=k2)
        self.class_embed = (None if num_classes is None
                            else eqx.nn.Embedding(num_classes + 1, dim, key=k3))

    def __call__(self, t: jax.Array, y: jax.Array | None) -> jax.Array:
        e = sc.sinusoidal_embedding(t, self.embed_dim, scale=self.time_scale)
        c = self.lin2(jax.nn.silu(self.lin1(e)))
        if self.class_embed is not None:
            c = c + self.class_embed(cast(jax.Array, y))  # labels given iff conditional
        return c


class _MLPBlock(eqx.Module):
    lin1: eqx.nn.Linear
    cond: eqx.nn.Linear
    lin2: eqx.nn.Linear

    def __init__(self, width: int, *, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.lin1 = eqx.nn.Linear(width, width, key=k1)
        self.cond = eqx.nn.Linear(width, width, key=k2)
        self.lin2 = eqx.nn.Linear(width, width, key=k3)

    def __call__(self, h: jax.Array, c: jax.Array) -> jax.Array:
        u = self.lin1(jax.nn.silu(h)) + self.cond(jax.nn.silu(c))
        return h + self.lin2(jax.nn.silu(u))


class ScoreMLP(eqx.Module):
    r"""A residual MLP for vectors, conditioned on the diffusion time (and a class).

    With the ``embed_dim`` sinusoidal time features $e(t) = (\sin(s t\omega_k),
    \cos(s t\omega_k))_{k < \text{embed\_dim}/2}$, $\omega_k = 10^{-4k/(\text{embed\_dim}/2)}$,
    $s$ = ``time_scale`` (the transformer / DDPM embedding), the conditioning vector is
    $c = W_2\,\sigma(W_1 e(t)) + E_y$ with $\sigma$ = SiLU and $E$ a learned class embedding
    whose extra row $E_{K}$ is the *null class* ($K$ = ``num_classes``; used when ``y`` is
    ``None``, the unconditional model of classifier-free guidance). Then

    $$ h_0 = A x, \quad h_{l+1} = h_l + W^{(l)}_2\,\sigma\big(W^{(l)}_1 \sigma(h_l)
       + W^{(l)}_c \sigma(c)\big), \quad f(x, t, y) = B\,\sigma(h_L), $$

    every matrix with a bias. The output has the shape of ``x``; what it means (noise
    $\varepsilon$, score, $x_0$ ...) is the loss's parametrisation, noise prediction for the
    DSM loss of ``jaxclust.diffusion``.

    The same network is [`jaxclust.nn.flax.ScoreMLP`][jaxclust.nn.flax.ScoreMLP].

    Args:
      d: data dimension.
      width: hidden width.
      depth: number of residual blocks $L$.
      embed_dim: number of sinusoidal time features (even).
      num_classes: number of classes for a class-conditional model, or ``None``.
      time_scale: $s$ in $e(s t)$; 1000 suits $t \in [0, 1]$.
      key: PRNG key of the initial parameters.

    Call:
      ``model(x, t, y=None)`` with ``x`` of shape ``(d,)`` or ``(batch, d)``, ``t`` a scalar
      or ``(batch,)``, ``y`` integer labels (scalar or ``(batch,)``) in
      ``[0, num_classes]`` (``num_classes`` is the null class) or ``None``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.nn.equinox import ScoreMLP
      >>> net = ScoreMLP(2, width=32, depth=2, num_classes=3, key=jax.random.key(0))
      >>> x = jax.random.normal(jax.random.key(1), (5, 2))
      >>> net(x, 0.5, jnp.array([0, 1, 2, 3, 0])).shape, net(x[0], 0.5).shape
      ((5, 2), (2,))

    References:
      Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020. Ho,
      Salimans, "Classifier-Free Diffusion Guidance", 2022.
    """

    cond: _Conditioning
    inp: eqx.nn.Linear
    blocks: list[_MLPBlock]
    out: eqx.nn.Linear
    d: int = eqx.field(static=True)
    num_classes: int | None = eqx.field(static=True)

    def __init__(self, d: int, *, width: int = 128, depth: int = 3, embed_dim: int = 64,
                 num_classes: int | None = None, time_scale: float = 1000.0,
                 key: PRNGKeyArray):
        self.d = sc.check_size(d, "d")
        width = sc.check_size(width, "width")
        depth = sc.check_size(depth, "depth")
        self.num_classes = sc.check_num_classes(num_classes)
        kc, ki, ko, *kb = jax.random.split(key, 3 + depth)
        self.cond = _Conditioning(sc.check_embed_dim(embed_dim), width, self.num_classes,
                                  sc.check_time_scale(time_scale), key=kc)
        self.inp = eqx.nn.Linear(d, width, key=ki)
        self.blocks = [_MLPBlock(width, key=k) for k in kb]
        self.out = eqx.nn.Linear(width, d, key=ko)

    def _one(self, x: jax.Array, t: jax.Array, y: jax.Array | None) -> jax.Array:
        c = self.cond(t, y)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(jax.nn.silu(h))

    def __call__(self, x: Float[ArrayLike, "*batch d"], t: Float[ArrayLike, "*batch"],
                 y: Int[ArrayLike, "*batch"] | None = None) -> Float[Array, "*batch d"]:
        x, t, y, single = sc.batch_inputs(x, t, y, event_ndim=1, event_shape=(self.d,),
                                          num_classes=self.num_classes)
        out = sc.finite_output(jax.vmap(self._one)(x, t, y), "ScoreMLP")
        return out[0] if single else out


# ------------------------------------------------------------------------------------------
# U-Net


def _conv(cin: int, cout: int, kernel: int, *, stride: int = 1, key: PRNGKeyArray
          ) -> eqx.nn.Conv2d:
    return eqx.nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, key=key)


def _norm(channels: int) -> eqx.nn.GroupNorm:
    return eqx.nn.GroupNorm(sc.groups(channels), channels, eps=sc.NORM_EPS)


class _ResBlock(eqx.Module):
    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    cond: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None

    def __init__(self, cin: int, cout: int, cond_dim: int, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.norm1 = _norm(cin)
        self.conv1 = _conv(cin, cout, 3, key=k1)
        self.cond = eqx.nn.Linear(cond_dim, cout, key=k2)
        self.norm2 = _norm(cout)
        self.conv2 = _conv(cout, cout, 3, key=k3)
        self.skip = None if cin == cout else _conv(cin, cout, 1, key=k4)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.cond(jax.nn.silu(c))[:, None, None]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class _Level(eqx.Module):
    """The residual blocks of one resolution and the resampling after them."""

    blocks: list[_ResBlock]
    resample: eqx.nn.Conv2d | None
    up: bool = eqx.field(static=True)

    def __init__(self, cins: list[int], cout: int, cond_dim: int, resample: str | None, *,
                 key: PRNGKeyArray):
        kr, *kb = jax.random.split(key, 1 + len(cins))
        self.blocks = [_ResBlock(cin, cout, cond_dim, key=k) for cin, k in zip(cins, kb)]
        self.resample = None if resample is None else _conv(
            cout, cout, 3, stride=2 if resample == "down" else 1, key=kr)
        self.up = resample == "up"

    def __call__(self, h: jax.Array, c: jax.Array) -> jax.Array:
        for block in self.blocks:
            h = block(h, c)
        return h

    def resampled(self, h: jax.Array) -> jax.Array:
        if self.up:  # nearest-neighbour x2, then a 3x3 convolution
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        return cast(Callable, self.resample)(h)  # only blocks that resample call this


class ScoreUNet(eqx.Module):
    r"""A small U-Net for single-channel images, conditioned on the time (and a class).

    The conditioning vector $c$ is built as in
    [`ScoreMLP`][jaxclust.nn.equinox.ScoreMLP] (sinusoidal features, two linear
    layers, plus a class embedding with a null row), with ``4 * channels`` entries. The
    image goes through a 3x3 convolution to ``channels``, then one level per entry of
    ``channel_mults`` (level $i$ has ``channels * channel_mults[i]`` channels):
    ``num_res_blocks`` residual blocks, each

    $$ h = \mathrm{conv}_2\,\sigma\big(\mathrm{GN}_2(\mathrm{conv}_1\,\sigma(\mathrm{GN}_1 x)
       + W\sigma(c))\big) + \mathrm{skip}(x), $$

    ($\sigma$ = SiLU, GN = GroupNorm with ``gcd(C, 8)`` groups, skip = identity or a 1x1
    convolution), and a stride-2 3x3 convolution between levels. A middle residual block,
    then the levels in reverse order, each starting from the concatenation with the skip
    connection of its resolution and ending with nearest-neighbour up-sampling and a 3x3
    convolution; GroupNorm, SiLU and a 3x3 convolution to one channel give the output.
    The image sides must be divisible by $2^{\text{levels}-1}$: two levels for 8x8
    (8, 4) and 28x28 (28, 14), three for 28x28 down to 7x7.

    The same network is [`jaxclust.nn.flax.ScoreUNet`][jaxclust.nn.flax.ScoreUNet].

    Args:
      image_shape: ``(height, width)``.
      channels: channels of the first level.
      channel_mults: channel multiplier per level (their number is the number of levels).
      num_res_blocks: residual blocks per level on the way down (one more on the way up).
      embed_dim: number of sinusoidal time features (even).
      num_classes: number of classes for a class-conditional model, or ``None``.
      time_scale: $s$ in $e(s t)$; 1000 suits $t \in [0, 1]$.
      key: PRNG key of the initial parameters.

    Call:
      ``model(x, t, y=None)`` with ``x`` of shape ``(height, width)`` or
      ``(batch, height, width)``, ``t`` and ``y`` as for ``ScoreMLP``; returns the shape of
      ``x``.

    Example:
      >>> import equinox as eqx, jax
      >>> from jaxclust.nn.equinox import ScoreUNet
      >>> net = ScoreUNet((8, 8), channels=8, num_classes=10, key=jax.random.key(0))
      >>> x = jax.random.normal(jax.random.key(1), (3, 8, 8))
      >>> eqx.filter_jit(net)(x, 0.1, 7).shape  # one compilation, not one per operation
      (3, 8, 8)

    References:
      Ronneberger, Fischer, Brox, "U-Net", MICCAI 2015. Ho, Jain, Abbeel, "Denoising
      Diffusion Probabilistic Models", NeurIPS 2020. Wu, He, "Group Normalization", ECCV
      2018.
    """

    cond: _Conditioning
    inp: eqx.nn.Conv2d
    down: list[_Level]
    mid: _ResBlock
    up: list[_Level]
    out_norm: eqx.nn.GroupNorm
    out: eqx.nn.Conv2d
    image_shape: tuple[int, int] = eqx.field(static=True)
    num_classes: int | None = eqx.field(static=True)

    def __init__(self, image_shape: tuple[int, int], *, channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2), num_res_blocks: int = 1,
                 embed_dim: int = 64, num_classes: int | None = None,
                 time_scale: float = 1000.0, key: PRNGKeyArray):
        self.image_shape, channels, mults, n_res = sc.check_unet(
            image_shape, channels, channel_mults, num_res_blocks)
        self.num_classes = sc.check_num_classes(num_classes)
        cond_dim = 4 * channels
        widths = [channels * m for m in mults]
        last = len(widths) - 1
        kc, ki, km, ko, *kl = jax.random.split(key, 4 + 2 * len(widths))
        self.cond = _Conditioning(sc.check_embed_dim(embed_dim), cond_dim, self.num_classes,
                                  sc.check_time_scale(time_scale), key=kc)
        self.inp = _conv(1, channels, 3, key=ki)
        self.down, cin = [], channels
        for i, w in enumerate(widths):
            self.down.append(_Level([cin] + [w] * (n_res - 1), w, cond_dim,
                                    "down" if i < last else None, key=kl[i]))
            cin = w
        self.mid = _ResBlock(cin, cin, cond_dim, key=km)
        self.up = []
        for j, i in enumerate(reversed(range(len(widths)))):
            w = widths[i]
            self.up.append(_Level([cin + w] + [w] * n_res, w, cond_dim,
                                  "up" if i > 0 else None, key=kl[len(widths) + j]))
            cin = w
        self.out_norm = _norm(cin)
        self.out = _conv(cin, 1, 3, key=ko)

    def _one(self, x: jax.Array, t: jax.Array, y: jax.Array | None) -> jax.Array:
        c = self.cond(t, y)
        h = self.inp(x[None])  # CHW
        skips = []
        for level in self.down:
            h = level(h, c)
            skips.append(h)
            if level.resample is not None:
                h = level.resampled(h)
        h = self.mid(h, c)
        for level in self.up:
            h = level(jnp.concatenate([h, skips.pop()], axis=0), c)
            if level.resample is not None:
                h = level.resampled(h)
        return self.out(jax.nn.silu(self.out_norm(h)))[0]

    def __call__(self, x: Float[ArrayLike, "*batch h w"], t: Float[ArrayLike, "*batch"],
                 y: Int[ArrayLike, "*batch"] | None = None) -> Float[Array, "*batch h w"]:
        x, t, y, single = sc.batch_inputs(x, t, y, event_ndim=2, event_shape=self.image_shape,
                                          num_classes=self.num_classes)
        out = sc.finite_output(jax.vmap(self._one)(x, t, y), "ScoreUNet")
        return out[0] if single else out
