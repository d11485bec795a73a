r"""Dense graphs with static shapes: kNN, epsilon and alpha-decay graphs, graph Laplacians.

Every graph is a dense symmetric ``(n, n)`` weight matrix $W$ with a zero diagonal (no
self-loops), so its shape never depends on the data and every function here runs under
``jit`` and ``vmap``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._core.checks import (
    as_float_array,
    check_finite,
    check_int,
    check_points,
    check_sq_norms,
    ensure_value,
)

__all__ = ["alpha_decay_graph", "epsilon_graph", "knn_graph", "laplacian", "pairwise_sq_dists"]

_SYMMETRIZE = ("mean", "max")
_LAPLACIANS = ("combinatorial", "symmetric", "random_walk")


def _points(x, name: str = "x") -> jax.Array:
    x = as_float_array(x, name)
    check_points(x, name)
    # squared distances must be representable (x * 1e20 gave Inf / NaN graphs in float32)
    return check_sq_norms(check_finite(x, name), name)


def pairwise_sq_dists(x: Float[Array, "n d"]) -> Float[Array, "n n"]:
    r"""Squared Euclidean distances $\|x_i - x_j\|^2$, clamped at 0, with an exact zero diagonal.

    Args:
      x: points, shape ``(n, d)``.

    Returns:
      The ``(n, n)`` matrix of squared distances.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import pairwise_sq_dists
      >>> pairwise_sq_dists(jnp.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
      [[0.0, 25.0], [25.0, 0.0]]
    """
    return _sq_dists_jit(_points(x))


# The graphs' arithmetic runs as module-level jitted programs after the host checks (one
# program per first eager call instead of 3-10 small ones); inlined under an outer jit.
def _sq_dists(x):
    # centred first: |x|^2 + |y|^2 - 2<x, y> cancels less when the cloud sits far from 0
    x = x - jnp.mean(x, axis=0, keepdims=True)
    sq = jnp.sum(x * x, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    d2 = 0.5 * (d2 + d2.T)  # exactly symmetric
    n = x.shape[0]
    return jnp.where(jnp.eye(n, dtype=bool), 0.0, jnp.maximum(d2, 0.0))


def _symmetrize(w, how: str):
    if how not in _SYMMETRIZE:
        raise ValueError(f"`symmetrize` must be one of {_SYMMETRIZE}, got {how!r}.")
    return 0.5 * (w + w.T) if how == "mean" else jnp.maximum(w, w.T)


def _check_k(k, n: int) -> int:
    return check_int(k, "k", low=1, high=n - 1, bounds=f"in [1, n - 1] = [1, {n - 1}]",
                     why="neighbours per point, the point itself excluded")


def _knn_mask(d2, k: int):
    """``mask[i, j]`` when ``j`` is one of the ``k`` nearest points of ``i`` (``j != i``)."""
    n = d2.shape[0]
    far = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, d2)
    _, idx = jax.lax.top_k(-far, k)
    return jnp.zeros((n, n), bool).at[jnp.arange(n)[:, None], idx].set(True), far, idx


def _in_default_float(v: float) -> float:
    """A Python number as the program will see it, in JAX's default float dtype (float32
    unless x64 is on): 1e39 is inf there, and must fail a finiteness check."""
    with np.errstate(over="ignore"):
        return float(np.asarray(v, dtype=jnp.result_type(float)))


def _check_sigma(sigma, name: str = "sigma"):
    if sigma is None:
        return None
    message = (f"`{name}` must be a finite number > 0 (the Gaussian bandwidth); pass None for "
               "0/1 weights.")
    if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
        # a Python number stays one (weakly typed in the program; jnp.asarray would compile
        # a small program of its own)
        if not (np.isfinite(_in_default_float(sigma)) and sigma > 0):
            raise ValueError(message)
        return float(sigma)
    sigma = jnp.asarray(sigma)
    if sigma.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(sigma.shape)}.")
    return ensure_value(sigma, lambda v, xp: ~(xp.isfinite(v) & (v > 0)), message)


def knn_graph(
    x: Float[Array, "n d"],
    *,
    k: int,
    sigma: float | None = None,
    symmetrize: str = "mean",
) -> Float[Array, "n n"]:
    r"""k-nearest-neighbour graph of a point cloud, dense and symmetric.

    Each point $i$ links to its $k$ nearest other points $N_k(i)$ with weight
    $a_{ij} = 1$ (``sigma=None``) or $a_{ij} = \exp(-\|x_i - x_j\|^2 / 2\sigma^2)$; the
    directed graph is made symmetric by $W = (A + A^\top)/2$ (``"mean"``, the convention of
    PyGSP's ``NNGraph``) or $W = \max(A, A^\top)$ (``"max"``, the union). No self-loops.
    Ties between equidistant neighbours are broken by index (``lax.top_k``).

    Args:
      x: points, shape ``(n, d)``.
      k: neighbours per point (static), ``1 <= k <= n - 1``.
      sigma: Gaussian bandwidth, or ``None`` for 0/1 weights.
      symmetrize: ``"mean"`` or ``"max"`` (static).

    Returns:
      $W$, shape ``(n, n)``, symmetric, zero diagonal.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import knn_graph
      >>> x = jnp.array([[0.0], [1.0], [3.0]])
      >>> knn_graph(x, k=1).tolist()
      [[0.0, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.5, 0.0]]
    """
    x = _points(x)
    k = _check_k(k, x.shape[0])
    sigma = _check_sigma(sigma)
    if symmetrize not in _SYMMETRIZE:
        raise ValueError(f"`symmetrize` must be one of {_SYMMETRIZE}, got {symmetrize!r}.")
    return _knn_graph(x, k, sigma, symmetrize)


@partial(jax.jit, static_argnums=(1, 3))
def _knn_graph(x, k: int, sigma, symmetrize: str):
    d2 = _sq_dists(x)
    mask, _, _ = _knn_mask(d2, k)
    vals = jnp.ones_like(d2) if sigma is None else jnp.exp(-d2 / (2.0 * sigma**2))
    return _symmetrize(jnp.where(mask, vals, 0.0), symmetrize)


def epsilon_graph(
    x: Float[Array, "n d"],
    *,
    epsilon: float,
    sigma: float | None = None,
) -> Float[Array, "n n"]:
    r"""Epsilon-ball graph: $w_{ij} > 0$ exactly when $\|x_i - x_j\| \le \varepsilon$, $i \ne j$.

    Weights are 1 (``sigma=None``) or $\exp(-\|x_i - x_j\|^2 / 2\sigma^2)$. Symmetric by
    construction, no self-loops.

    Args:
      x: points, shape ``(n, d)``.
      epsilon: radius, a finite number > 0 (traced).
      sigma: Gaussian bandwidth, or ``None`` for 0/1 weights.

    Returns:
      $W$, shape ``(n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import epsilon_graph
      >>> epsilon_graph(jnp.array([[0.0], [1.0], [3.0]]), epsilon=1.5).tolist()
      [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    x = _points(x)
    epsilon = _check_sigma(epsilon, "epsilon")
    sigma = _check_sigma(sigma)
    return _epsilon_graph(x, epsilon, sigma)


@jax.jit
def _epsilon_graph(x, epsilon, sigma):
    d2 = _sq_dists(x)
    n = x.shape[0]
    mask = (d2 <= epsilon**2) & ~jnp.eye(n, dtype=bool)
    vals = jnp.ones_like(d2) if sigma is None else jnp.exp(-d2 / (2.0 * sigma**2))
    return jnp.where(mask, vals, 0.0)


def alpha_decay_graph(
    x: Float[Array, "n d"],
    *,
    k: int = 5,
    decay: float = 40.0,
    threshold: float = 1e-4,
) -> Float[Array, "n n"]:
    r"""The alpha-decay kernel of PHATE / graphtools, used by heat-geodesic embeddings.

    With $\varepsilon_i$ the distance from $x_i$ to its $k$-th nearest other point,

    $$ a_{ij} = \exp\!\big(-(\|x_i - x_j\| / \varepsilon_i)^{\alpha}\big), \qquad
       W = (A + A^\top) / 2, $$

    entries below ``threshold`` set to 0 and the diagonal to 0. The decay $\alpha$ makes the
    kernel nearly a hard $k$-NN indicator with a soft edge (Moon et al., 2019, PHATE).

    Args:
      x: points, shape ``(n, d)``.
      k: the neighbour whose distance sets each point's bandwidth (static), ``1..n-1``.
      decay: the exponent $\alpha > 0$.
      threshold: weights below it become exactly 0 (sparsity), ``>= 0``.

    Returns:
      $W$, shape ``(n, n)``, symmetric, zero diagonal.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import alpha_decay_graph
      >>> import jax
      >>> graph = jax.jit(lambda x: alpha_decay_graph(x, k=1, decay=2.0))
      >>> w = graph(jnp.array([[0.0], [1.0], [3.0]]))
      >>> bool(jnp.allclose(w, w.T)), float(w[0, 1].round(4))
      (True, 0.3679)
    """
    x = _points(x)
    k = _check_k(k, x.shape[0])
    decay = _check_sigma(decay, "decay")
    message = "`threshold` must be a finite number >= 0."
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        # a Python number stays one (jnp.asarray would compile a small program of its own)
        if not (np.isfinite(_in_default_float(threshold)) and threshold >= 0):
            raise ValueError(message)
        thr = float(threshold)
    else:
        thr = ensure_value(jnp.asarray(threshold),
                           lambda v, xp: ~(xp.isfinite(v) & (v >= 0)), message)
    return _alpha_decay_graph(x, k, decay, thr)


@partial(jax.jit, static_argnums=(1,))
def _alpha_decay_graph(x, k: int, decay, thr):
    d2 = _sq_dists(x)
    _, far, _ = _knn_mask(d2, k)
    eps = jnp.sqrt(-jax.lax.top_k(-far, k)[0][:, -1])  # k-th nearest other point
    eps = jnp.where(eps > 0, eps, 1.0)  # duplicated points: any bandwidth gives exp(0) = 1
    n = x.shape[0]
    # sqrt is not differentiable at 0 (the diagonal): mask before taking it
    dist = jnp.sqrt(jnp.where(d2 > 0, d2, 1.0)) * (d2 > 0)
    a = jnp.exp(-((dist / eps[:, None]) ** decay))
    w = 0.5 * (a + a.T)
    return jnp.where((w < thr) | jnp.eye(n, dtype=bool), 0.0, w)


def _check_adjacency(w, name: str = "adjacency") -> jax.Array:
    w = as_float_array(w, name)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 1:
        raise ValueError(f"`{name}` must be a square (n, n) weight matrix, got shape "
                         f"{tuple(w.shape)}. For a batch of graphs, use jax.vmap.")
    w = check_finite(w, name)
    return ensure_value(w, lambda v, xp: v < 0,
                        f"`{name}` has negative weights; graph weights must be >= 0.")


def laplacian(
    adjacency: Float[Array, "n n"],
    *,
    kind: str = "symmetric",
) -> Float[Array, "n n"]:
    r"""Graph Laplacian of a weighted adjacency matrix $W$ with degrees $d_i = \sum_j w_{ij}$.

    * ``"combinatorial"``: $L = D - W$;
    * ``"symmetric"``: $L = I - D^{-1/2} W D^{-1/2}$ (eigenvalues in $[0, 2]$);
    * ``"random_walk"``: $L = I - D^{-1} W$ (same eigenvalues, not symmetric).

    Isolated nodes ($d_i = 0$) get a zero row and column in the normalised forms (PyGSP's
    convention), so a graph with isolated nodes never produces NaN. The diagonal of $W$
    (self-loops) counts in the degrees.

    Args:
      adjacency: $W$, shape ``(n, n)``, nonnegative; the symmetric forms assume $W = W^\top$.
      kind: ``"combinatorial"``, ``"symmetric"`` or ``"random_walk"`` (static).

    Returns:
      $L$, shape ``(n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import laplacian
      >>> w = jnp.array([[0.0, 1.0], [1.0, 0.0]])
      >>> laplacian(w, kind="combinatorial").tolist()
      [[1.0, -1.0], [-1.0, 1.0]]
    """
    if kind not in _LAPLACIANS:
        raise ValueError(f"`kind` must be one of {_LAPLACIANS}, got {kind!r}.")
    w = _check_adjacency(adjacency)
    return _laplacian_jit(w, kind)


def _laplacian(w, kind: str):
    deg = jnp.sum(w, axis=1)
    if kind == "combinatorial":
        return jnp.diag(deg) - w
    pos = deg > 0
    safe = jnp.where(pos, deg, 1.0)
    eye = jnp.diag(pos.astype(w.dtype))  # isolated nodes: zero row and column
    if kind == "symmetric":
        s = jnp.where(pos, jax.lax.rsqrt(safe), 0.0)
        return eye - s[:, None] * w * s[None, :]
    return eye - jnp.where(pos, 1.0 / safe, 0.0)[:, None] * w


_sq_dists_jit = jax.jit(_sq_dists)
_laplacian_jit = jax.jit(_laplacian, static_argnums=(1,))
