"""Score networks in Flax NNX: a time-conditioned MLP and a small U-Net (private module,
re-exported by ``jaxclust.nn.flax``).

The same networks, with the same parameters in the same roles, are in
``jaxclust.nn._score_equinox``; only the layouts differ (``nnx.Linear`` kernels are
``(in, out)``, ``nnx.Conv`` kernels ``(kh, kw, in, out)`` on NHWC images).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike, Float, Int

from . import _score_common as sc

__all__ = ["ScoreMLP", "ScoreUNet"]


class _Conditioning(nnx.Module):
    """``c = W_2 silu(W_1 e(t)) + E[y]``: time features, optionally plus a class embedding
    with a null row (index ``num_classes``)."""

    def __init__(self, embed_dim: int, dim: int, num_classes: int | None, time_scale: float,
                 *, rngs: nnx.Rngs):
        self.embed_dim, self.time_scale = embed_dim, time_scale
        self.lin1 = nnx.Linear(embed_dim, dim, rngs=rngs)
        self.lin2 = nnx.Linear(dim, dim, rngs=rngs)
        self.class_embed = (None if num_classes is None
                            else nnx.Embed(num_classes + 1, dim, rngs=rngs))

    def __call__(self, t: jax.Array, y: jax.Array | None) -> jax.Array:
        e = sc.sinusoidal_embedding(t, self.embed_dim, scale=self.time_scale)
        c = self.lin2(jax.nn.silu(self.lin1(e)))
        if self.class_embed is not None:
            c = c + self.class_embed(cast(jax.Array, y))  # labels given iff conditional
        return c


class _MLPBlock(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.lin1 = nnx.Linear(width, width, rngs=rngs)
        self.cond = nnx.Linear(width, width, rngs=rngs)
        self.lin2 = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, h: jax.Array, c: jax.Array) -> jax.Array:
        u = self.lin1(jax.nn.silu(h)) + self.cond(jax.nn.silu(c))
        return h + self.lin2(jax.nn.silu(u))


class ScoreMLP(nnx.Module):
    r"""A residual MLP for vectors, conditioned on the diffusion time (and a class).

    The Flax NNX twin of [`jaxclust.nn.equinox.ScoreMLP`][jaxclust.nn.equinox.ScoreMLP]
    (see there for the architecture and its math): the same network, layer for layer, from
    Flax's ``nnx.Linear`` / ``nnx.Embed``; ``rngs`` replaces ``key``.

    Args:
      d: data dimension.
      width: hidden width.
      depth: number of residual blocks $L$.
      embed_dim: number of sinusoidal time features (even).
      num_classes: number of classes for a class-conditional model, or ``None``.
      time_scale: $s$ in $e(s t)$; 1000 suits $t \in [0, 1]$.
      rngs: ``nnx.Rngs`` (its ``params`` stream).

    Call:
      ``model(x, t, y=None)`` with ``x`` of shape ``(d,)`` or ``(batch, d)``, ``t`` a scalar
      or ``(batch,)``, ``y`` integer labels (scalar or ``(batch,)``) in
      ``[0, num_classes]`` (``num_classes`` is the null class) or ``None``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import ScoreMLP
      >>> net = ScoreMLP(2, width=32, depth=2, num_classes=3, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (5, 2))
      >>> net(x, 0.5, jnp.array([0, 1, 2, 3, 0])).shape, net(x[0], 0.5).shape
      ((5, 2), (2,))

    """

    def __init__(self, d: int, *, width: int = 128, depth: int = 3, embed_dim: int = 64,
                 num_classes: int | None = None, time_scale: float = 1000.0,
                 rngs: nnx.Rngs):
        self.d = sc.check_size(d, "d")
        width = sc.check_size(width, "width")
        depth = sc.check_size(depth, "depth")
        self.num_classes = sc.check_num_classes(num_classes)
        self.cond = _Conditioning(sc.check_embed_dim(embed_dim), width, self.num_classes,
                                  sc.check_time_scale(time_scale), rngs=rngs)
        self.inp = nnx.Linear(d, width, rngs=rngs)
        self.blocks = nnx.List([_MLPBlock(width, rngs=rngs) for _ in range(depth)])
        self.out = nnx.Linear(width, d, rngs=rngs)

    def __call__(self, x: Float[ArrayLike, "*batch d"], t: Float[ArrayLike, "*batch"],
                 y: Int[ArrayLike, "*batch"] | None = None) -> Float[Array, "*batch d"]:
        x, t, y, single = sc.batch_inputs(x, t, y, event_ndim=1, event_shape=(self.d,),
                                          num_classes=self.num_classes)
        c = self.cond(t, y)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        out = sc.finite_output(self.out(jax.nn.silu(h)), "ScoreMLP")
        return out[0] if single else out


# ------------------------------------------------------------------------------------------
# U-Net


def _conv(cin: int, cout: int, kernel: int, *, stride: int = 1, rngs: nnx.Rngs) -> nnx.Conv:
    pad = kernel // 2
    return nnx.Conv(cin, cout, (kernel, kernel), strides=stride,
                    padding=((pad, pad), (pad, pad)), rngs=rngs)


def _norm(channels: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, num_groups=sc.groups(channels), epsilon=sc.NORM_EPS,
                         use_fast_variance=False, rngs=rngs)


class _ResBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, *, rngs: nnx.Rngs):
        self.norm1 = _norm(cin, rngs)
        self.conv1 = _conv(cin, cout, 3, rngs=rngs)
        self.cond = nnx.Linear(cond_dim, cout, rngs=rngs)
        self.norm2 = _norm(cout, rngs)
        self.conv2 = _conv(cout, cout, 3, rngs=rngs)
        self.skip = None if cin == cout else _conv(cin, cout, 1, rngs=rngs)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.cond(jax.nn.silu(c))[:, None, None, :]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class _Level(nnx.Module):
    """The residual blocks of one resolution and the resampling after them."""

    def __init__(self, cins: list[int], cout: int, cond_dim: int, resample: str | None, *,
                 rngs: nnx.Rngs):
        self.blocks = nnx.List([_ResBlock(cin, cout, cond_dim, rngs=rngs) for cin in cins])
        self.resample = None if resample is None else _conv(
            cout, cout, 3, stride=2 if resample == "down" else 1, rngs=rngs)
        self.up = resample == "up"

    def __call__(self, h: jax.Array, c: jax.Array) -> jax.Array:
        for block in self.blocks:
            h = block(h, c)
        return h

    def resampled(self, h: jax.Array) -> jax.Array:
        if self.up:  # nearest-neighbour x2, then a 3x3 convolution
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        return cast(Callable, self.resample)(h)  # only blocks that resample call this


class ScoreUNet(nnx.Module):
    r"""A small U-Net for single-channel images, conditioned on the time (and a class).

    The Flax NNX twin of [`jaxclust.nn.equinox.ScoreUNet`][jaxclust.nn.equinox.ScoreUNet]
    (see there for the architecture and its math): the same network, layer for layer, from
    Flax's convolutions and ``nnx.GroupNorm``; ``rngs`` replaces ``key``. The image sides
    must be divisible by $2^{\text{levels}-1}$.

    Args:
      image_shape: ``(height, width)``.
      channels: channels of the first level.
      channel_mults: channel multiplier per level (their number is the number of levels).
      num_res_blocks: residual blocks per level on the way down (one more on the way up).
      embed_dim: number of sinusoidal time features (even).
      num_classes: number of classes for a class-conditional model, or ``None``.
      time_scale: $s$ in $e(s t)$; 1000 suits $t \in [0, 1]$.
      rngs: ``nnx.Rngs`` (its ``params`` stream).

    Call:
      ``model(x, t, y=None)`` with ``x`` of shape ``(height, width)`` or
      ``(batch, height, width)``, ``t`` and ``y`` as for ``ScoreMLP``; returns the shape of
      ``x``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import ScoreUNet
      >>> net = ScoreUNet((8, 8), channels=8, num_classes=10, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (3, 8, 8))
      >>> nnx.jit(lambda net, x: net(x, 0.1, 7))(net, x).shape  # one compilation
      (3, 8, 8)

    """

    def __init__(self, image_shape: tuple[int, int], *, channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2), num_res_blocks: int = 1,
                 embed_dim: int = 64, num_classes: int | None = None,
                 time_scale: float = 1000.0, rngs: nnx.Rngs):
        self.image_shape, channels, mults, n_res = sc.check_unet(
            image_shape, channels, channel_mults, num_res_blocks)
        self.num_classes = sc.check_num_classes(num_classes)
        cond_dim = 4 * channels
        self.cond = _Conditioning(sc.check_embed_dim(embed_dim), cond_dim, self.num_classes,
                                  sc.check_time_scale(time_scale), rngs=rngs)
        self.inp = _conv(1, channels, 3, rngs=rngs)
        widths = [channels * m for m in mults]
        last = len(widths) - 1
        down, cin = [], channels
        for i, w in enumerate(widths):
            down.append(_Level([cin] + [w] * (n_res - 1), w, cond_dim,
                               "down" if i < last else None, rngs=rngs))
            cin = w
        self.down = nnx.List(down)
        self.mid = _ResBlock(cin, cin, cond_dim, rngs=rngs)
        up = []
        for i in reversed(range(len(widths))):
            w = widths[i]
            up.append(_Level([cin + w] + [w] * n_res, w, cond_dim, "up" if i > 0 else None,
                             rngs=rngs))
            cin = w
        self.up = nnx.List(up)
        self.out_norm = _norm(cin, rngs)
        self.out = _conv(cin, 1, 3, rngs=rngs)

    def __call__(self, x: Float[ArrayLike, "*batch h w"], t: Float[ArrayLike, "*batch"],
                 y: Int[ArrayLike, "*batch"] | None = None) -> Float[Array, "*batch h w"]:
        x, t, y, single = sc.batch_inputs(x, t, y, event_ndim=2, event_shape=self.image_shape,
                                          num_classes=self.num_classes)
        c = self.cond(t, y)
        h = self.inp(x[..., None])  # NHWC
        skips = []
        for level in self.down:
            h = level(h, c)
            skips.append(h)
            if level.resample is not None:
                h = level.resampled(h)
        h = self.mid(h, c)
        for level in self.up:
            h = level(jnp.concatenate([h, skips.pop()], axis=-1), c)
            if level.resample is not None:
                h = level.resampled(h)
        out = sc.finite_output(self.out(jax.nn.silu(self.out_norm(h)))[..., 0], "ScoreUNet")
        return out[0] if single else out
