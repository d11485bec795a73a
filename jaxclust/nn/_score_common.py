"""Pure helpers shared by the Flax and Equinox score networks (private).

The two frameworks build the same networks from their own layers (``nnx.Linear`` /
``eqx.nn.Linear`` ...); what does not depend on the framework lives here: the sinusoidal
time embedding, the handling of the inputs ``(x, t, y)`` and the checks of the
hyper-parameters.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._core import checks
from ._common import check_number, check_size

GROUPS = 8
"""GroupNorm uses ``gcd(channels, GROUPS)`` groups (8 for the usual multiples of 8)."""

NORM_EPS = 1e-5
"""GroupNorm's epsilon, the same in both frameworks."""


def sinusoidal_embedding(t: Float[ArrayLike, "*batch"], dim: int, *,
                         scale: float = 1000.0, max_period: float = 10_000.0
                         ) -> Float[Array, "*batch dim"]:
    r"""Sinusoidal (deterministic Fourier) features of the diffusion time.

    With $h = \mathrm{dim}/2$ frequencies $\omega_k = P^{-k/h}$, $k = 0, \dots, h-1$
    (geometric from $1$ down to almost $1/P$, $P$ = ``max_period``) and $s$ = ``scale``,

    $$ e(t) = \big(\sin(s t\,\omega_0), \dots, \sin(s t\,\omega_{h-1}),
              \cos(s t\,\omega_0), \dots, \cos(s t\,\omega_{h-1})\big). $$

    The scale maps the SDE's time $t \in [0, T]$ (with $T = 1$ typically) onto the range
    of positions the transformer embedding was designed for (DDPM uses the step index,
    $s = 1000$).

    Example:
      >>> import jax.numpy as jnp
      >>> e = sinusoidal_embedding(jnp.array([0.0, 0.5]), 8)
      >>> e.shape, e[0].tolist()
      ((2, 8), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])

    References:
      Vaswani et al., "Attention Is All You Need", NeurIPS 2017. Ho, Jain, Abbeel,
      "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    """
    half = dim // 2
    t = jnp.asarray(t)
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=t.dtype) / half)
    args = (scale * t)[..., None] * freqs.reshape((1,) * t.ndim + (half,))
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


# ------------------------------------------------------------------------------------------
# hyper-parameters (constructor time)


def check_embed_dim(embed_dim) -> int:
    embed_dim = check_size(embed_dim, "embed_dim")
    if embed_dim % 2:
        raise ValueError(f"`embed_dim` must be even (sine and cosine of embed_dim/2 "
                         f"frequencies), got {embed_dim}.")
    return embed_dim


def check_num_classes(num_classes) -> int | None:
    """``None`` (unconditional) or an int >= 1; the embedding gets one more row, the null
    class used for classifier-free guidance."""
    return None if num_classes is None else check_size(num_classes, "num_classes")


def check_time_scale(time_scale) -> float:
    return check_number(time_scale, "time_scale",
                         "It multiplies t in the sinusoidal embedding (1000 for t in [0, 1]).")


def check_unet(image_shape, channels, channel_mults, num_res_blocks
               ) -> tuple[tuple[int, int], int, tuple[int, ...], int]:
    """Checked U-Net sizes; the image sides must halve exactly at every level."""
    if not (isinstance(image_shape, (tuple, list)) and len(image_shape) == 2):
        raise ValueError(f"`image_shape` must be a pair (height, width) of a single-channel "
                         f"image, got {image_shape!r}.")
    h, w = (check_size(s, "image_shape") for s in image_shape)
    channels = check_size(channels, "channels")
    if not (isinstance(channel_mults, (tuple, list)) and len(channel_mults) >= 1):
        raise ValueError(f"`channel_mults` must be a non-empty tuple of ints (one per "
                         f"resolution level), got {channel_mults!r}.")
    mults = tuple(check_size(m, "channel_mults") for m in channel_mults)
    factor = 2 ** (len(mults) - 1)
    if h % factor or w % factor:
        raise ValueError(f"`image_shape` {(h, w)} must be divisible by 2**(levels - 1) = "
                         f"{factor} for {len(mults)} levels (`channel_mults` = {mults}); use "
                         "fewer levels or pad the images.")
    return (h, w), channels, mults, check_size(num_res_blocks, "num_res_blocks")


def groups(channels: int) -> int:
    return math.gcd(channels, GROUPS)


# ------------------------------------------------------------------------------------------
# inputs (call time)


def batch_inputs(x, t, y, *, event_ndim: int, event_shape: tuple[int, ...],
                 num_classes: int | None
                 ) -> tuple[jax.Array, jax.Array, jax.Array | None, bool]:
    """``x`` with a leading batch axis, ``t`` as ``(n,)`` and the class indices ``(n,)``
    (``None`` without classes; the null class ``num_classes`` where ``y`` is ``None``); the
    last value says whether the input was a single example (to squeeze the output)."""
    x = checks.as_float_array(x, "x")
    single = x.ndim == event_ndim
    if single:
        x = x[None]
    if x.ndim != event_ndim + 1 or tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(f"`x` must have shape {tuple(event_shape)} (one example) or "
                         f"(batch, {', '.join(map(str, event_shape))}), got "
                         f"{tuple(x.shape) if not single else tuple(x.shape[1:])}.")
    n = x.shape[0]
    t = checks.as_float_array(t, "t", dtype=x.dtype)
    if t.ndim == 0:
        t = jnp.broadcast_to(t, (n,))
    elif t.shape != (n,):
        raise ValueError(f"`t` must be a scalar or have shape (batch,) = ({n},), got "
                         f"{tuple(t.shape)}.")
    t = checks.check_finite(t, "t")
    x = checks.check_finite(x, "x")
    return x, t, class_indices(y, n, num_classes), single


def finite_output(out: jax.Array, network: str) -> jax.Array:
    """The network's output, with a ``ValueError`` if it is NaN/Inf although ``x`` and
    ``t`` were checked finite (eagerly; under jit the runtime error carries the message)."""
    return checks.ensure(out, ~jnp.isfinite(out),
                         f"the {network} output is NaN or Inf for finite `x` and `t`: its "
                         "parameters hold NaN/Inf (a diverged training step?) or `x` is too "
                         "large for the dtype (rescale the data, e.g. to [-1, 1]).")


def class_indices(y, n: int, num_classes: int | None) -> Int[Array, " n"] | None:
    if num_classes is None:
        if y is not None:
            raise ValueError("`y` was given but the network has no class embedding; build it "
                             "with num_classes=... for a class-conditional model.")
        return None
    if y is None:
        return jnp.full((n,), num_classes, jnp.int32)
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"`y` must hold integer class labels, got dtype {y.dtype}.")
    if y.ndim == 0:
        y = jnp.broadcast_to(y, (n,))
    elif y.shape != (n,):
        raise ValueError(f"`y` must be a scalar or have shape (batch,) = ({n},), got "
                         f"{tuple(y.shape)}.")
    return checks.ensure(y, (y < 0) | (y > num_classes),
                         f"`y` must be class labels in [0, {num_classes}) or the null class "
                         f"{num_classes} (unconditional, for classifier-free guidance).")
