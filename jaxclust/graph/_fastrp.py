r"""FastRP node embeddings (Chen et al., 2019, "Fast and Accurate Network Embeddings via Very
Sparse Random Projection").

With $M = D^{-1}A$ (or $A$), a random projection $R \in \mathbb{R}^{n \times d}$ and the degree
reweighting $R' = \mathrm{diag}(\deg^{\beta}) R$,

$$ U_1 = M R', \quad U_i = M U_{i-1}, \qquad
   U = \mathrm{standardise}\Big(\sum_{i=1}^{q} w_i\, \mathrm{norm}(U_i)\Big), $$

``norm`` the optional row $\ell_2$ normalisation and ``standardise`` zero mean, unit variance
per column — the computation of the authors' code (GTmac/FastRP, ``fastrp.py``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._core.checks import as_float_array, check_int, check_key, ensure_value
from ._construction import _check_adjacency

__all__ = ["fastrp"]

_PROJECTIONS = ("sparse", "gaussian")
_INPUTS = ("transition", "adjacency")


def _projection(key, n: int, dim: int, kind: str, dtype):
    """scikit-learn's random projections, as the reference uses them: Gaussian ``N(0, 1/dim)``
    or very sparse (Li et al. 2006) with density ``1/sqrt(n)``: ``+-sqrt(s/dim)`` with
    probability ``1/(2s)`` each, 0 otherwise, ``s = sqrt(n)``."""
    if kind == "gaussian":
        return jax.random.normal(key, (n, dim), dtype) / jnp.sqrt(jnp.asarray(dim, dtype))
    s = float(n) ** 0.5
    u = jax.random.uniform(key, (n, dim), dtype)
    val = jnp.asarray((s / dim) ** 0.5, dtype)
    return jnp.where(u < 0.5 / s, val, jnp.where(u < 1.0 / s, -val, jnp.zeros((), dtype)))


@partial(jax.jit, static_argnums=(3,))  # an eager scan would recompile at every call
def _weighted_powers(m, r, w, normalization: bool):
    """``sum_i w_i N(M^i R)``, ``N`` the row normalisation (or the identity)."""

    def power(u, wi):
        u = m @ u
        v = u
        if normalization:
            nrm = jnp.linalg.norm(u, axis=1, keepdims=True)
            v = u / jnp.where(nrm > 0, nrm, 1.0)
        return u, wi * v

    _, parts = jax.lax.scan(power, r, w)
    return jnp.sum(parts, axis=0)


def fastrp(
    adjacency: Float[Array, "n n"],
    key,
    *,
    weights,
    dim: int = 128,
    alpha: float | None = None,
    normalization: bool = False,
    projection: str = "sparse",
    input_matrix: str = "transition",
) -> Float[Array, "n dim"]:
    r"""FastRP node embeddings: a weighted sum of random projections of $M, M^2, \dots, M^q$.

    See the module formula. The authors tune ``weights`` (one per power, $q$ = their
    number), ``alpha`` ($\beta$) and ``normalization`` per data set; there is no universal
    default, so ``weights`` is required. Nodes of degree 0 get zero rows in $M$ (and
    ``deg ** alpha`` is taken as 0 for them) instead of NaN.

    Args:
      adjacency: $A$, shape ``(n, n)``, nonnegative.
      key: PRNG key of the projection.
      weights: the $q$ weights $w_i$ (a sequence of numbers or a ``(q,)`` array; $q$ static).
      dim: embedding dimension $d$ (static).
      alpha: degree exponent $\beta$ (e.g. $-0.5$), or ``None`` for no reweighting.
      normalization: row-normalise each $U_i$ before summing (static).
      projection: ``"sparse"`` (very sparse, the paper's) or ``"gaussian"`` (static).
      input_matrix: ``"transition"`` ($D^{-1}A$) or ``"adjacency"`` ($A$) (static).

    Returns:
      The ``(n, dim)`` embedding, each column standardised.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.graph import fastrp
      >>> a = jnp.kron(jnp.eye(2), jnp.ones((4, 4))) - jnp.eye(8)  # two 4-cliques
      >>> u = jax.jit(lambda a: fastrp(a, jax.random.key(0), weights=(1.0, 1.0), dim=16))(a)
      >>> same = float(jnp.linalg.norm(u[0] - u[1]))
      >>> other = float(jnp.linalg.norm(u[0] - u[4]))
      >>> u.shape, same < other
      ((8, 16), True)
    """
    a = _check_adjacency(adjacency)
    key = check_key(key)
    dim = check_int(dim, "dim", low=1, why="the embedding dimension")
    if projection not in _PROJECTIONS:
        raise ValueError(f"`projection` must be one of {_PROJECTIONS}, got {projection!r}.")
    if input_matrix not in _INPUTS:
        raise ValueError(f"`input_matrix` must be one of {_INPUTS}, got {input_matrix!r}.")
    w = as_float_array(weights, "weights", dtype=a.dtype)
    if w.ndim != 1 or w.shape[0] < 1:
        raise ValueError(f"`weights` must be a 1-D sequence of q >= 1 numbers (one per power "
                         f"of M), got shape {tuple(w.shape)}.")
    w = ensure_value(w, lambda v, xp: ~xp.isfinite(v), "`weights` contains NaN or Inf.")
    beta = None
    if alpha is not None:
        beta = jnp.asarray(alpha, a.dtype)
        if beta.ndim != 0:
            raise ValueError(f"`alpha` must be a scalar, got shape {tuple(beta.shape)}.")
        beta = ensure_value(beta, lambda v, xp: ~xp.isfinite(v), "`alpha` must be finite.")
    return _fastrp(a, key, w, beta, dim, bool(normalization), projection, input_matrix)


# one module-level program after the host checks (a first eager call compiled ~20 small
# programs before); inlined under an outer jit
@partial(jax.jit, static_argnums=(4, 5, 6, 7))
def _fastrp(a, key, w, beta, dim: int, normalization: bool, projection: str,
            input_matrix: str):
    n = a.shape[0]
    deg = jnp.sum(a, axis=1)
    pos = deg > 0
    safe = jnp.where(pos, deg, 1.0)
    m = a if input_matrix == "adjacency" else jnp.where(pos, 1.0 / safe, 0.0)[:, None] * a
    r = _projection(key, n, dim, projection, a.dtype)
    if beta is not None:
        r = jnp.where(pos, safe**beta, 0.0)[:, None] * r
    u = _weighted_powers(m, r, w, normalization)
    mean = jnp.mean(u, axis=0, keepdims=True)
    std = jnp.std(u, axis=0, keepdims=True)
    return (u - mean) / jnp.where(std > 0, std, 1.0)
