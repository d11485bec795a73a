"""Instance-contrastive loss (SimCLR's NT-Xent), the representation loss that deep
clustering heads are usually trained beside."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike, Float

from .._core import checks
from .losses import _positive

__all__ = ["nt_xent_loss"]


def nt_xent_loss(
    z_a: Float[ArrayLike, "batch d"],
    z_b: Float[ArrayLike, "batch d"],
    *,
    temperature: float | Float[ArrayLike, ""] = 0.5,
) -> Float[Array, ""]:
    r"""SimCLR's normalised-temperature cross-entropy (NT-Xent) between two views.

    The $2B$ embeddings $z = [z^a; z^b]$ are L2-normalised, $s_{ij} = \bar z_i^\top \bar z_j$,
    and each one must recognise its partner $p(i)$ (the other view of the same sample)
    among the $2B - 1$ others:

    $$
        L = \frac{1}{2B} \sum_{i=1}^{2B} \Big[ -\frac{s_{i\,p(i)}}{T}
            + \log \sum_{j \ne i} e^{s_{ij}/T} \Big].
    $$

    Jittable, vmappable (over batches of pairs), differentiable in both views and in the
    temperature. The loss is at least $\log(2B - 1) - 2/T$ and is invariant to the scale
    of each embedding.

    Args:
      z_a: ``(batch, d)`` embeddings of the first view (``batch >= 2``).
      z_b: ``(batch, d)`` embeddings of the second view, row $i$ the partner of row $i$.
      temperature: $T > 0$ (SimCLR: 0.5 for small batches, 0.1 for large ones).

    Returns:
      The loss, a scalar in the dtype of the embeddings.

    Raises:
      ValueError: embeddings not 2-D, of different shapes, with fewer than two rows, with
        NaN/Inf, or ``temperature <= 0``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster.contrastive import nt_xent_loss
      >>> z = jax.random.normal(jax.random.key(0), (32, 8))
      >>> noisy = z + 0.1 * jax.random.normal(jax.random.key(1), (32, 8))
      >>> bool(nt_xent_loss(z, noisy) < nt_xent_loss(z, noisy[::-1]))  # partners agree
      True

    References:
      Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
      Visual Representations" (SimCLR), ICML 2020.
    """
    za = checks.as_float_array(z_a, "z_a")
    zb = checks.as_float_array(z_b, "z_b")
    checks.check_ndim(za, "z_a", 2, "(batch, d)")
    checks.check_ndim(zb, "z_b", 2, "(batch, d)")
    if za.shape != zb.shape:
        raise ValueError(f"`z_a` and `z_b` must have the same shape (one row per sample, "
                         f"partners in the same row), got {za.shape} and {zb.shape}.")
    if za.shape[0] < 2:
        raise ValueError(f"`z_a` needs at least 2 rows (the other samples are the negatives), "
                         f"got {za.shape[0]}.")
    za, zb = checks.check_finite(za, "z_a"), checks.check_finite(zb, "z_b")
    dtype = jnp.promote_types(za.dtype, zb.dtype)
    t = _positive(temperature, "temperature", dtype, "SimCLR uses 0.1-0.5.")
    work = jnp.promote_types(dtype, jnp.float32)
    z = jnp.concatenate([za, zb]).astype(work)
    # scaled by each row's largest entry first: huge rows do not overflow the norm
    big = jax.lax.stop_gradient(jnp.max(jnp.abs(z), axis=1, keepdims=True))
    z = z / jnp.where(big > 0, big, 1.0)
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), jnp.finfo(work).tiny)
    b = za.shape[0]
    s = (z @ z.T) / t.astype(work)
    s_off = jnp.where(jnp.eye(2 * b, dtype=bool), -jnp.inf, s)
    partner = jnp.concatenate([jnp.arange(b, 2 * b), jnp.arange(b)])
    positive = jnp.take_along_axis(s, partner[:, None], axis=1)[:, 0]
    return jnp.mean(logsumexp(s_off, axis=1) - positive).astype(dtype)

