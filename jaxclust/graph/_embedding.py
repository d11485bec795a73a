r"""Heat-geodesic distances and embeddings (Huguet et al., 2023) and metric MDS.

Varadhan's formula says that on a manifold $-4t\log h_t(x, y) \to d(x, y)^2$ as $t \to 0$.
On a graph, with $H_t = e^{-tL}$ ($L$ the symmetric normalised Laplacian),

$$ d_t(i, j)^2 = -4t \log (H_t)_{ij}
   + \rho\, 4t \log\!\Big(\tfrac{(H_t)_{ii} + (H_t)_{jj}}{2}\Big), $$

the second term being the paper's Harnack correction (weight $\rho \in [0, 1]$; $\rho = 0$
is plain Varadhan, the reference code's default). Metric MDS then embeds the distances.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._core.checks import as_float_array, check_finite, check_int, ensure_value
from .._core.results import with_summary_repr
from ._construction import _check_adjacency, _laplacian, alpha_decay_graph
from ._heat import _chebyshev, _check_lmax, _check_t, _lmax, _scalar

__all__ = ["HeatGeoResult", "heat_geodesic_distances", "heat_geodesic_embedding", "mds"]

_TINY = 1e-16  # the reference code's floor inside the logarithm


def _safe_sqrt(v):
    pos = v > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)


def heat_geodesic_distances(
    adjacency: Float[Array, "n n"],
    t=10.0,
    *,
    order: int = 32,
    lmax: float | None = 2.0,
    harnack: float = 0.0,
) -> Float[Array, "n n"]:
    r"""Heat-geodesic distances of a graph (Huguet et al., 2023).

    $H_t = e^{-tL}$ by [`heat_kernel`][jaxclust.graph.heat_kernel] ($L$ the symmetric
    normalised Laplacian of $W$), negative entries (Chebyshev ringing) clipped to 0, then

    $$ d_{ij} = \sqrt{\max\big(0,\,-4t\log(H_{ij} + 10^{-16})
      + \rho\,4t\log(\tfrac{H_{ii}+H_{jj}}{2} + 10^{-16})\big)}, $$

    as in the reference code (KrishnaswamyLab/HeatGeo, ``heatgeo/embedding.py``), except that
    the diagonal is set to 0 (the reference leaves $\sqrt{4t(\rho-1)\log H_{ii}}$ there, which
    is not a distance; MDS by stress majorisation ignores it).

    Args:
      adjacency: $W$, shape ``(n, n)``, symmetric, nonnegative (e.g.
        [`alpha_decay_graph`][jaxclust.graph.alpha_decay_graph]).
      t: diffusion time $t > 0$ (traced scalar).
      order: Chebyshev order (static); accurate for ``order >= t + 10`` with ``lmax=2``.
      lmax: upper bound of the spectrum (2 for this Laplacian), or ``None`` (Gershgorin).
      harnack: Harnack correction weight $\rho \in [0, 1]$.

    Returns:
      The symmetric ``(n, n)`` distance matrix, zero diagonal.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import heat_geodesic_distances, knn_graph
      >>> x = jnp.linspace(0.0, 1.0, 8)[:, None]
      >>> import jax
      >>> d = jax.jit(lambda x: heat_geodesic_distances(knn_graph(x, k=2), 2.0))(x)
      >>> bool(d[0, 7] > d[0, 4] > d[0, 1] > 0), float(d[3, 3])
      (True, 0.0)
    """
    w = _check_adjacency(adjacency)
    order = check_int(order, "order", low=1, why="the Chebyshev order K")
    t = _check_t(t, w.dtype)
    rho = _scalar(harnack, w.dtype)
    if rho.ndim != 0:
        raise ValueError(f"`harnack` must be a scalar, got shape {tuple(rho.shape)}.")
    rho = ensure_value(rho, lambda v, xp: ~((v >= 0) & (v <= 1)),
                       "`harnack` must be in [0, 1] (0: plain Varadhan formula).")
    lm = None if lmax is None else _check_lmax(lmax, w.dtype)
    return _heat_geodesic_distances(w, t, rho, lm, order)


# The distances and the MDS are module-level jitted programs after the host checks: a first
# eager call compiles one program each instead of one per jax.numpy operation (hgd 10, mds
# 30, the embedding with its graph 49 small programs before); inlined under an outer jit.
@partial(jax.jit, static_argnums=(4,))
def _heat_geodesic_distances(w, t, rho, lm, order: int):
    lap = _laplacian(w, "symmetric")
    phi = 0.5 * (_lmax(lap, None) if lm is None else lm)  # lm checked on the host
    h = _chebyshev(lap, jnp.eye(w.shape[0], dtype=w.dtype), t, phi, order)
    return _distances(h, t, rho)


def _distances(h, t, rho):
    h = jnp.maximum(h, 0.0)
    diag = jnp.diagonal(h)
    s = -4.0 * t * jnp.log(h + _TINY)
    s = s + rho * 4.0 * t * jnp.log(0.5 * (diag[:, None] + diag[None, :]) + _TINY)
    d = _safe_sqrt(jnp.maximum(s, 0.0))
    d = 0.5 * (d + d.T)  # the Chebyshev kernel is symmetric up to rounding
    return jnp.where(jnp.eye(h.shape[0], dtype=bool), 0.0, d)


def _classical(d, dim: int):
    n = d.shape[0]
    d2 = d * d
    j = jnp.eye(n, dtype=d.dtype) - 1.0 / n
    b = -0.5 * j @ d2 @ j
    vals, vecs = jnp.linalg.eigh(0.5 * (b + b.T))
    vals, vecs = vals[::-1][:dim], vecs[:, ::-1][:, :dim]
    # sign convention: the largest-magnitude entry of each axis is positive
    idx = jnp.argmax(jnp.abs(vecs), axis=0)
    sign = jnp.sign(vecs[idx, jnp.arange(dim)])
    scale = jnp.where(sign == 0, 1.0, sign) * jnp.sqrt(jnp.maximum(vals, 0.0))
    return vecs * scale[None, :]


@partial(jax.jit, static_argnums=(2,))  # an eager scan would recompile at every call
def _smacof(d, y0, n_iter: int):
    n = d.shape[0]
    off = ~jnp.eye(n, dtype=bool)

    def step(y, _):
        dy = _safe_sqrt(jnp.sum((y[:, None, :] - y[None, :, :]) ** 2, axis=-1))
        ratio = jnp.where(off & (dy > 0), d / jnp.where(dy > 0, dy, 1.0), 0.0)
        b = jnp.diag(jnp.sum(ratio, axis=1)) - ratio
        return (b @ y) / n, None

    y, _ = jax.lax.scan(step, y0, None, length=n_iter)
    return y


def mds(
    distances: Float[Array, "n n"],
    *,
    dim: int = 2,
    n_iter: int = 100,
) -> Float[Array, "n dim"]:
    r"""Metric MDS: classical MDS, then ``n_iter`` SMACOF steps (stress majorisation).

    Classical MDS takes the top ``dim`` eigenpairs of $B = -\frac12 J D^{\circ 2} J$
    ($J = I - \frac1n 11^\top$); SMACOF then decreases the raw stress
    $\sum_{i<j} (d_{ij} - \|y_i - y_j\|)^2$ by Guttman transforms
    $Y \leftarrow \frac1n B(Y) Y$, $B(Y)_{ij} = -d_{ij}/\|y_i - y_j\|$ ($i \ne j$),
    $B(Y)_{ii} = -\sum_{j \ne i} B(Y)_{ij}$ — the same iteration as
    ``sklearn.manifold.smacof``. The diagonal of ``distances`` is ignored by SMACOF.

    Args:
      distances: symmetric dissimilarities, shape ``(n, n)``, nonnegative.
      dim: embedding dimension (static), ``1 <= dim <= n``.
      n_iter: SMACOF steps (static), ``>= 0`` (0: classical MDS only).

    Returns:
      The embedding, shape ``(n, dim)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import mds, pairwise_sq_dists
      >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
      >>> d = jnp.sqrt(pairwise_sq_dists(x))
      >>> import jax
      >>> y = jax.jit(lambda d: mds(d, dim=2, n_iter=10))(d)
      >>> bool(jnp.allclose(jnp.sqrt(pairwise_sq_dists(y)), d, atol=1e-4))
      True
    """
    d = as_float_array(distances, "distances")
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 2:
        raise ValueError(f"`distances` must be a square (n, n) matrix with n >= 2, got shape "
                         f"{tuple(d.shape)}.")
    n = d.shape[0]
    dim = check_int(dim, "dim", low=1, high=n, bounds=f"in [1, n] = [1, {n}]")
    n_iter = check_int(n_iter, "n_iter", low=0, why="SMACOF steps")
    d = check_finite(d, "distances")
    d = ensure_value(d, lambda v, xp: v < 0,
                     "`distances` has negative entries; pass nonnegative dissimilarities.")
    # classical MDS double-centres the squared distances: n of them are summed per row
    big = float(np.sqrt(np.finfo(np.dtype(d.dtype)).max / (4.0 * n)))
    d = ensure_value(d, lambda v, xp: xp.max(v) >= big,
               f"`distances` has values too large for {np.dtype(d.dtype).name}: the double-"
               f"centred squared distances overflow (the largest must stay below {big:.2g} "
               f"for n = {n}). Rescale them first: MDS is equivariant to a scale factor.")
    return _mds(d, dim, n_iter)


@partial(jax.jit, static_argnums=(1, 2))
def _mds(d, dim: int, n_iter: int):
    return _smacof(d, _classical(d, dim), n_iter)


@with_summary_repr
class HeatGeoResult(NamedTuple):
    """Result of [`heat_geodesic_embedding`][jaxclust.graph.heat_geodesic_embedding].

    Attributes:
      embedding: the points in ``dim`` dimensions, shape ``(n, dim)``.
      distances: the heat-geodesic distances that were embedded, shape ``(n, n)``.
      adjacency: the alpha-decay graph they came from, shape ``(n, n)``.
    """

    embedding: Float[Array, "n dim"]
    distances: Float[Array, "n n"]
    adjacency: Float[Array, "n n"]


def heat_geodesic_embedding(
    x: Float[Array, "n d"],
    *,
    k: int = 5,
    decay: float = 40.0,
    t=10.0,
    order: int = 32,
    harnack: float = 0.0,
    dim: int = 2,
    mds_iters: int = 100,
) -> HeatGeoResult:
    r"""Heat-geodesic embedding (Huguet et al., 2023, "A Heat Diffusion Perspective on Geodesic
    Preserving Dimensionality Reduction").

    1. $W$ = [`alpha_decay_graph`][jaxclust.graph.alpha_decay_graph]``(x, k, decay)``;
    2. $D$ = [`heat_geodesic_distances`][jaxclust.graph.heat_geodesic_distances]``(W, t)``
       (Chebyshev heat kernel of the symmetric normalised Laplacian, Varadhan's formula with
       the Harnack correction ``harnack``);
    3. [`mds`][jaxclust.graph.mds]: classical MDS then SMACOF.

    Defaults follow the reference code's ``HeatGeo`` class (``knn=5``, ``decay=40``,
    ``tau=10``, ``order=32``, ``harnack_regul=0``); its MDS is SGD-based (``s_gd2``), ours is
    SMACOF on the same raw stress.

    Args:
      x: points, shape ``(n, d)``.
      k: neighbour whose distance sets each bandwidth of the graph (static).
      decay: exponent of the alpha-decay kernel.
      t: diffusion time.
      order: Chebyshev order (static).
      harnack: Harnack correction weight in $[0, 1]$.
      dim: embedding dimension (static).
      mds_iters: SMACOF steps (static).

    Returns:
      A [`HeatGeoResult`][jaxclust.graph.HeatGeoResult].

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import heat_geodesic_embedding
      >>> s = jnp.linspace(0.0, 3.0, 30)
      >>> x = jnp.stack([jnp.cos(s), jnp.sin(s), 0.1 * s], axis=1)  # a helix arc
      >>> import jax
      >>> embed = jax.jit(lambda x: heat_geodesic_embedding(x, k=4, t=5.0, dim=1, mds_iters=20))
      >>> res = embed(x)
      >>> res.embedding.shape, bool(jnp.all(jnp.isfinite(res.embedding)))
      ((30, 1), True)
    """
    w = alpha_decay_graph(x, k=k, decay=decay)
    d = heat_geodesic_distances(w, t, order=order, harnack=harnack)
    return HeatGeoResult(mds(d, dim=dim, n_iter=mds_iters), d, w)
