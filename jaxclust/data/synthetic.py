"""Synthetic data: pure, jittable generators driven by an explicit PRNG key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._core import checks

__all__ = ["gaussian_mixture"]


def gaussian_mixture(
    key: PRNGKeyArray,
    n: int,
    centers: Float[ArrayLike, "k d"],
    *,
    std: float | Float[ArrayLike, " k"] = 1.0,
    weights: Float[ArrayLike, " k"] | None = None,
) -> tuple[Float[Array, "n d"], Int[Array, " n"]]:
    r"""Sample ``n`` points from an isotropic Gaussian mixture.

    Each point draws a component $z_i \sim \mathrm{Categorical}(w)$ and then
    $x_i = \mu_{z_i} + \sigma_{z_i} \varepsilon_i$ with $\varepsilon_i \sim \mathcal N(0, I_d)$.

    Args:
        key: PRNG key; the same key gives the same sample.
        n: number of points (static: it fixes the output shape).
        centers: component means $\mu_k$, shape ``(k, d)``.
        std: per-coordinate standard deviation $\sigma$, a scalar shared by all
            components or one value per component, shape ``(k,)``.
        weights: mixture weights, shape ``(k,)``; need not be normalised (they are divided
            by their sum). ``None`` means equal weights.

    Returns:
        ``(x, labels)``: the points, ``float32`` of shape ``(n, d)``, and the component of
        each point, ``int32`` of shape ``(n,)``.

    Raises:
        ValueError: if ``centers`` is not two-dimensional, ``n`` is not positive, or
            ``std`` / ``weights`` do not have one entry per component.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxclust.data import gaussian_mixture
        >>> centers = jnp.array([[0.0, 0.0], [5.0, 5.0]])
        >>> x, labels = gaussian_mixture(jax.random.key(0), 100, centers, std=0.5)
        >>> x.shape, x.dtype, labels.shape
        ((100, 2), dtype('float32'), (100,))
        >>> bool(jnp.all((labels == 0) | (labels == 1)))
        True
    """
    from ..train import check_key

    key = check_key(key)
    if centers is None:
        raise ValueError("`centers` must be an array of shape (k, d), got None.")
    centers = jnp.asarray(centers, dtype=jnp.float32)
    if centers.ndim != 2 or centers.shape[0] == 0:
        raise ValueError(
            f"`centers` must have shape (k, d) with k >= 1, got shape {centers.shape}; "
            "pass one row per mixture component."
        )
    centers = checks.check_finite(centers, "centers")
    if int(n) <= 0:
        raise ValueError(f"`n` must be a positive number of points, got {n}.")
    k, d = centers.shape
    std = jnp.asarray(std, dtype=jnp.float32)
    if std.ndim > 1 or (std.ndim == 1 and std.shape[0] != k):
        raise ValueError(
            f"`std` must be a scalar or have shape ({k},) (one per component), "
            f"got shape {std.shape}."
        )
    std = checks.ensure(std, ~jnp.isfinite(std) | (std < 0),
                        "`std` must be finite and >= 0.")
    if weights is None:
        logits = jnp.zeros((k,), jnp.float32)
    else:
        weights = jnp.asarray(weights, dtype=jnp.float32)
        if weights.shape != (k,):
            raise ValueError(
                f"`weights` must have shape ({k},) (one per component), got {weights.shape}."
            )
        weights = checks.ensure(
            weights, ~jnp.isfinite(weights) | (weights < 0) | (jnp.sum(weights) <= 0),
            "`weights` must be finite and >= 0 with a positive sum.")
        logits = jnp.log(weights)
    key_z, key_x = jax.random.split(key)
    labels = jax.random.categorical(key_z, logits, shape=(int(n),)).astype(jnp.int32)
    noise = jax.random.normal(key_x, (int(n), d), dtype=jnp.float32)
    sigma = jnp.broadcast_to(std, (k,))[labels][:, None]
    return centers[labels] + sigma * noise, labels
