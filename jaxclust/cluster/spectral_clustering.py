r"""Spectral clustering: affinity graphs, the normalised Laplacian embedding, k-means on it.

Everything here is **dense**: the affinity is an ``n x n`` matrix and the embedding comes
from a full symmetric eigendecomposition (``O(n^3)`` time, ``O(n^2)`` memory), which suits
moderate ``n`` (a few thousand points). For larger problems use a sparse graph and an
iterative eigensolver outside this module.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.costs import pairwise_cost
from .._core.results import with_summary_repr
from .lloyd import kmeans

__all__ = ["AFFINITIES", "ROW_NORMS", "SpectralResult", "affinity_matrix", "spectral"]

AFFINITIES = ("rbf", "knn")
ROW_NORMS = ("degree", "row", "none")


# ------------------------------------------------------------------------------------------
# validation (shared with laplacian.py)


def _points(x, k=None, name: str = "x") -> jax.Array:
    """A finite 2-D float array (at least float32), with ``1 <= k <= n`` when ``k`` is given."""
    x = checks.as_float_array(x, name)
    checks.check_points(x, name)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if k is not None:
        checks.check_num_clusters(k, x.shape[0], rows_of=name)
    return checks.check_sq_norms(checks.check_finite(x, name), name)


def _check_affinity(w, name: str = "affinity", dtype=None) -> jax.Array:
    """A finite, square, symmetric, non-negative ``(n, n)`` matrix (symmetrised exactly)."""
    w = checks.as_float_array(w, name, dtype=dtype)
    checks.check_ndim(w, name, 2, "(n, n)")
    if w.shape[0] != w.shape[1]:
        raise ValueError(f"`{name}` must be a square (n, n) matrix of pairwise similarities, "
                         f"got shape {tuple(w.shape)}.")
    if w.shape[0] < 1:
        raise ValueError(f"`{name}` must describe at least one point, got shape (0, 0).")
    w = w.astype(jnp.promote_types(w.dtype, jnp.float32))
    w = checks.check_finite(w, name)
    w = checks.ensure(w, w < 0, f"`{name}` has negative entries; affinities (edge weights) "
                                "must be >= 0 (e.g. exp(-gamma * squared distance)).")
    # rounding in a user's computation may leave ~1 ulp of asymmetry: tolerate that, then
    # symmetrise exactly so that eigh sees a symmetric matrix
    tol = 1e-5 * jnp.max(jnp.abs(w)) + jnp.finfo(w.dtype).tiny
    w = checks.ensure(w, jnp.abs(w - w.T) > tol,
                      f"`{name}` is not symmetric; pass 0.5 * (W + W.T) for a directed graph.")
    return 0.5 * (w + w.T)


def _check_n_neighbors(n_neighbors, n: int) -> None:
    checks.check_int(n_neighbors, "n_neighbors", low=None, why="it fixes shapes")
    if not 1 <= n_neighbors < n:
        raise ValueError(f"`n_neighbors` must be in [1, n - 1] = [1, {n - 1}] (the point itself "
                         f"counts as one of its neighbours), got {n_neighbors}.")


# ------------------------------------------------------------------------------------------
# affinities


def _sq_dists(x: jax.Array) -> jax.Array:
    """``|x_i - x_j|^2`` with an exactly zero diagonal; centred first (less cancellation)."""
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    d = pairwise_cost(xc, xc, "sqeuclidean")
    n = x.shape[0]
    return jnp.where(jnp.eye(n, dtype=bool), 0.0, 0.5 * (d + d.T))


def _default_gamma(x: jax.Array) -> jax.Array:
    # scikit-learn's gamma="scale" (SVC): 1 / (d * var(x)); 1.0 when all points coincide
    var = jnp.var(x)
    return jnp.where(var > 0, 1.0 / (x.shape[1] * jnp.where(var > 0, var, 1.0)), 1.0)


def _affinity(x, kind, gamma, n_neighbors):
    d2 = _sq_dists(x)
    if kind == "rbf":
        g = _default_gamma(x) if gamma is None else checks.check_positive_scalar(gamma, "gamma")
        return jnp.exp(-jnp.asarray(g, x.dtype) * d2)
    n = x.shape[0]
    # the point itself first (include_self=True), then the nearest others
    score = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, d2)
    _, idx = jax.lax.top_k(-score, n_neighbors)
    conn = jnp.zeros((n, n), x.dtype).at[jnp.arange(n)[:, None], idx].set(1.0)
    return jax.lax.stop_gradient(0.5 * (conn + conn.T))


def affinity_matrix(
    x: Float[Array, "n d"],
    *,
    kind: str = "rbf",
    gamma: float | Float[Array, ""] | None = None,
    n_neighbors: int = 10,
) -> Float[Array, "n n"]:
    r"""Dense affinity (similarity) graph of a point cloud.

    * ``kind="rbf"``: $W_{ij} = \exp(-\gamma \lVert x_i - x_j\rVert^2)$ (diagonal 1). With
      ``gamma=None`` the bandwidth is scikit-learn's ``"scale"`` rule
      $\gamma = 1 / (d \cdot \operatorname{var}(x))$ (the variance of all entries of ``x``),
      which makes the default invariant to the scale of the data; pass ``gamma=1.0`` for
      scikit-learn ``SpectralClustering``'s default. Differentiable in ``x`` and ``gamma``.
    * ``kind="knn"``: the symmetric connectivity graph $W = \tfrac12 (A + A^\top)$ with
      $A_{ij} = 1$ when $x_j$ is one of the ``n_neighbors`` nearest points of $x_i$, the point
      itself included (scikit-learn's ``kneighbors_graph(x, n_neighbors,
      include_self=True)``, as used by ``SpectralClustering(affinity="nearest_neighbors")``).
      Entries are 0, 1/2 or 1; piecewise constant in ``x``, so its gradient is zero.

    The matrix is dense ``(n, n)``: meant for moderate ``n``.

    Args:
      x: points, shape ``(n, d)``.
      kind: ``"rbf"`` or ``"knn"`` (static).
      gamma: RBF inverse bandwidth > 0 (``None``: $1 / (d \operatorname{var} x)$).
      n_neighbors: neighbours per point for ``"knn"``, itself included, in ``[1, n - 1]``.

    Returns:
      The symmetric affinity matrix, shape ``(n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster.spectral_clustering import affinity_matrix
      >>> x = jnp.asarray([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
      >>> affinity_matrix(x, kind="knn", n_neighbors=2).tolist()
      [[1.0, 1.0, 0.0], [1.0, 1.0, 0.5], [0.0, 0.5, 1.0]]
      >>> affinity_matrix(x, gamma=1.0)[0, 1].round(4).item()
      0.3679

    References:
      von Luxburg, "A tutorial on spectral clustering", Statistics and Computing 2007.
    """
    if kind not in AFFINITIES:
        raise ValueError(f"`kind` must be one of {AFFINITIES}, got {kind!r}.")
    x = _points(x)
    if kind == "knn":
        _check_n_neighbors(n_neighbors, x.shape[0])
    return _affinity(x, kind, gamma, n_neighbors)


# ------------------------------------------------------------------------------------------
# spectral embedding and clustering


@with_summary_repr
class SpectralResult(NamedTuple):
    """Result of [`spectral`][jaxclust.cluster.spectral] (a pytree).

    Attributes:
      labels: cluster of every point (k-means on the embedding), shape ``(n,)``.
      embedding: the spectral embedding the labels come from, shape ``(n, n_components)``
        (eigenvectors after the ``row_norm`` scaling and a deterministic sign convention).
      eigenvalues: the ``n_components`` smallest eigenvalues of the normalised Laplacian
        $L = I - D^{-1/2} W D^{-1/2}$, ascending, in ``[0, 2]``.
      objective: the k-means inertia of the embedding at ``labels`` (minimised), the centres
        being the means of the clusters (differentiable in the embedding for fixed
        labels); also readable as ``inertia``.
      centroids: those centres in the embedding space, shape ``(k, n_components)``.
      n_iters: Lloyd iterations of the best k-means restart.
      converged: that k-means run converged and the embedding, eigenvalues and inertia are
        finite.
    """

    labels: Int[Array, " n"]
    embedding: Float[Array, "n m"]
    eigenvalues: Float[Array, " m"]
    objective: Float[Array, ""]
    centroids: Float[Array, "k m"]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def inertia(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


def _normalised_affinity(w):
    """``S = D^{-1/2} W_0 D^{-1/2}`` (``W_0``: ``W`` without self-loops) and ``sqrt(D)``.

    ``L = I - S`` is the normalised Laplacian. An isolated node (degree 0) gets ``S_ii = 1``
    (``L_ii = 0``: it is its own connected component, eigenvalue 0) and ``sqrt(d_i) = 1``,
    scipy's convention; nothing is divided by zero.
    """
    n = w.shape[0]
    eye = jnp.eye(n, dtype=bool)
    w0 = jnp.where(eye, 0.0, w)
    deg = jnp.sum(w0, axis=1)
    isolated = deg <= 0
    sq = jnp.sqrt(jnp.where(isolated, 1.0, deg))
    s = w0 / sq[:, None] / sq[None, :]
    s = jnp.where(eye, isolated.astype(w.dtype)[:, None], s)
    return s, sq


def _sign_flip(e):
    """Each column's entry of largest magnitude made positive (scikit-learn's convention)."""
    idx = jnp.argmax(jnp.abs(e), axis=0)
    top = jnp.take_along_axis(e, idx[None, :], axis=0)[0]
    return e * jnp.where(top < 0, -1.0, 1.0).astype(e.dtype)[None, :]


def _embed(w, m, row_norm):
    s, sq = _normalised_affinity(w)
    vals, vecs = jnp.linalg.eigh(s)  # ascending: the largest of S are the smallest of L
    vals = vals[::-1][:m]
    vecs = vecs[:, ::-1][:, :m]
    if row_norm == "degree":
        e = vecs / sq[:, None]
    elif row_norm == "row":
        nrm2 = jnp.sum(vecs * vecs, axis=1, keepdims=True)
        pos = nrm2 > 0
        e = vecs * jnp.where(pos, jax.lax.rsqrt(jnp.where(pos, nrm2, 1.0)), 0.0)
    else:
        e = vecs
    return _sign_flip(e), jnp.clip(1.0 - vals, 0.0, 2.0)


def spectral(
    x: Float[Array, "n d"] | Float[Array, "n n"],
    k: int,
    *,
    key: PRNGKeyArray,
    affinity: str = "rbf",
    gamma: float | Float[Array, ""] | None = None,
    n_neighbors: int = 10,
    n_components: int | None = None,
    row_norm: str = "degree",
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> SpectralResult:
    r"""Spectral clustering with the symmetric normalised Laplacian.

    1. Affinity $W$ (see [`affinity_matrix`][jaxclust.cluster.affinity_matrix]),
       or ``x`` itself when ``affinity="precomputed"``. Self-loops (the diagonal of $W$) are
       ignored, as in ``scipy.sparse.csgraph.laplacian``: degrees are
       $d_i = \sum_{j \ne i} W_{ij}$.
    2. $L = I - D^{-1/2} W D^{-1/2}$; the eigenvectors $V$ of its ``n_components``
       (default ``k``) smallest eigenvalues are the top eigenvectors of
       $S = D^{-1/2} W D^{-1/2}$, from ``jnp.linalg.eigh`` (dense, $O(n^3)$). A node of
       degree 0 is its own component: $L_{ii} = 0$, no NaN.
    3. Rows of the embedding: ``row_norm="degree"`` (default) divides row $i$ by
       $\sqrt{d_i}$ — the random-walk eigenvectors $D^{-1/2} V$, exactly what scikit-learn's
       ``spectral_embedding`` / ``SpectralClustering`` use; ``"row"`` scales each row to unit
       length (Ng–Jordan–Weiss); ``"none"`` keeps $V$. Each column's largest-magnitude entry
       is then made positive (a deterministic sign).
    4. [`kmeans`][jaxclust.cluster.kmeans] on the embedding, ``n_init`` restarts.

    Differentiability: ``eigenvalues`` and ``embedding`` are differentiable in ``x`` (RBF or
    a differentiable precomputed affinity) where the eigenvalues involved are simple and
    separated from the next one (the JVP of ``eigh`` divides by eigenvalue gaps); the kNN
    graph and the labels are piecewise constant.

    Args:
      x: points ``(n, d)``, or the affinity ``(n, n)`` when ``affinity="precomputed"``.
      k: number of clusters (static), in ``[1, n]``.
      key: PRNG key of the k-means restarts.
      affinity: ``"rbf"``, ``"knn"`` or ``"precomputed"`` (static).
      gamma: RBF inverse bandwidth (``None``: $1 / (d \operatorname{var} x)$; scikit-learn
        ``SpectralClustering`` uses 1.0).
      n_neighbors: neighbours per point (itself included) for ``"knn"``.
      n_components: embedding dimension (static, default ``k``), in ``[1, n]``.
      row_norm: ``"degree"``, ``"row"`` or ``"none"`` (static; see step 3).
      n_init: k-means restarts.
      max_iter: Lloyd iteration budget per restart.
      tol: k-means relative tolerance on the centre shift.

    Returns:
      A [`SpectralResult`][jaxclust.cluster.SpectralResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster.spectral_clustering import spectral
      >>> t = jnp.linspace(0.0, 2 * jnp.pi, 40, endpoint=False)
      >>> ring = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
      >>> x = jnp.concatenate([ring, 4.0 * ring])  # two concentric circles
      >>> res = spectral(x, 2, key=jax.random.key(0), affinity="knn", n_neighbors=5)
      >>> bool(jnp.all(res.labels[:40] == res.labels[0])), bool(res.labels[0] != res.labels[40])
      (True, True)
      >>> res.eigenvalues.round(4).tolist()  # two components: two zero eigenvalues
      [0.0, 0.0]

    References:
      Ng, Jordan & Weiss, "On Spectral Clustering: Analysis and an algorithm", NeurIPS 2001.
      Shi & Malik, "Normalized cuts and image segmentation", IEEE TPAMI 2000. von Luxburg,
      "A tutorial on spectral clustering", Statistics and Computing 2007.
    """
    if affinity not in AFFINITIES + ("precomputed",):
        raise ValueError(f"`affinity` must be one of {AFFINITIES + ('precomputed',)}, got "
                         f"{affinity!r}.")
    if row_norm not in ROW_NORMS:
        raise ValueError(f"`row_norm` must be one of {ROW_NORMS}, got {row_norm!r}.")
    if affinity == "precomputed":
        w = _check_affinity(x, "x")
        n = w.shape[0]
        checks.check_num_clusters(k, n)
        checks.check_key(key)
    else:
        pts = _points(x, k)
        n = pts.shape[0]
        if affinity == "knn":
            _check_n_neighbors(n_neighbors, n)
        checks.check_key(key)
        w = _affinity(pts, affinity, gamma, n_neighbors)
    m = k if n_components is None else n_components
    checks.check_int(n_components, "n_components", high=n, bounds=f"in [1, n] = [1, {n}]",
                     none_ok=True)
    checks.check_int(n_init, "n_init")

    emb, vals = _embed(w, m, row_norm)
    # labels are piecewise constant: run Lloyd (a while loop) on a constant copy, then
    # recompute the centres as cluster means so that the inertia stays differentiable
    km = kmeans(jax.lax.stop_gradient(emb), k, key=key, n_init=n_init, max_iter=max_iter,
                tol=tol)
    onehot = jax.nn.one_hot(km.labels, k, dtype=emb.dtype)
    mass = jnp.sum(onehot, axis=0)
    cent = (onehot.T @ emb) / jnp.where(mass > 0, mass, 1.0)[:, None]
    inertia = jnp.sum((emb - onehot @ cent) ** 2)
    finite = (jnp.all(jnp.isfinite(emb)) & jnp.all(jnp.isfinite(vals)) & jnp.isfinite(inertia))
    return SpectralResult(km.labels, emb, vals, inertia, cent, km.n_iters,
                          km.converged & finite)
