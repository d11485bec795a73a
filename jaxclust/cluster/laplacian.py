r"""Laplacian-regularised k-means: prototypes, a graph Laplacian and a few labelled points.

The model of LaplacianShot (Ziko et al., ICML 2020) and of its clustering generalisation
(Ziko, Boudiaf, Dolz, Granger & Ben Ayed, 2021): a prototype (k-means) term, a Laplacian
term that rewards neighbours sharing a cluster, supervision from labelled points, and a
bound optimiser whose assignment updates are closed-form and independent across points.
The affinity is a dense ``n x n`` matrix (moderate ``n``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.costs import pairwise_cost
from .._core.fixed_point import iterate_blocks
from .kmeans import kmeans_plusplus
from .spectral import _affinity, _check_affinity, _check_n_neighbors, _points

__all__ = ["LaplacianKMeansResult", "laplacian_kmeans"]

_PREC = jax.lax.Precision.HIGHEST


class LaplacianKMeansResult(NamedTuple):
    """Result of [`laplacian_kmeans`][jaxclust.cluster.laplacian_kmeans] (a pytree).

    Attributes:
      assignments: soft assignments $z_i$ on the simplex, shape ``(n, k)``; labelled points
        are exactly one-hot.
      labels: ``argmax`` of the assignments (the given label for labelled points), ``(n,)``.
      centroids: prototypes $m_c$, shape ``(k, d)``.
      objective: the relaxed energy $F(Z, M)$ after each outer iteration, shape
        ``(max_iter + 1,)``; entry 0 is the energy at the start (after the first assignment),
        entries past ``n_iters`` repeat the final value. Non-increasing (see the function).
      n_iters: outer iterations run.
      converged: the relative change of the energy fell to ``tol`` or below.
    """

    assignments: Float[Array, "n k"]
    labels: Int[Array, " n"]
    centroids: Float[Array, "k d"]
    objective: Float[Array, " iters"]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def final_objective(self) -> Float[Array, ""]:
        """The energy at the returned assignments and prototypes."""
        return self.objective[-1]


def _xlogx(z):
    pos = z > 0
    return jnp.where(pos, z * jnp.log(jnp.where(pos, z, 1.0)), 0.0)


def _energy(z, unary, w, lam, mu, temp):
    """``<Z, A> + T <Z, log Z> - lam/2 <Z, (W + mu I) Z>``."""
    wz = jnp.matmul(w, z, precision=_PREC) + mu * z
    return (jnp.sum(z * unary) + temp * jnp.sum(_xlogx(z))
            - 0.5 * lam * jnp.sum(z * wz))


def _check_labels(labels, n: int, k: int) -> jax.Array:
    try:
        y = jnp.asarray(labels)
    except TypeError as err:
        raise ValueError(f"`labels` must be an integer array, got {type(labels).__name__}.") \
            from err
    if y.shape != (n,):
        raise ValueError(f"`labels` must have shape ({n},) to match `x` (-1 for unlabelled "
                         f"points), got {tuple(y.shape)}.")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"`labels` must hold integers (a class in [0, k) or -1 for unlabelled), "
                         f"got dtype {y.dtype}; cast with .astype(int).")
    y = y.astype(jnp.int32)
    return checks.ensure(y, (y < -1) | (y >= k),
                         f"`labels` must lie in [-1, {k - 1}] (-1 marks an unlabelled point).")


def _nonneg_scalar(value, name: str, hint: str):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (value == value and abs(value) != float("inf")) or value < 0:
            raise ValueError(f"`{name}` must be a finite number >= 0, got {value}. {hint}")
        return value
    arr = checks.as_float_array(value, name)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
    return checks.ensure(arr, ~(jnp.isfinite(arr) & (arr >= 0)),
                         f"`{name}` must be a finite number >= 0. {hint}")


def laplacian_kmeans(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray | None = None,
    init: Float[Array, "k d"] | None = None,
    affinity: Float[Array, "n n"] | None = None,
    n_neighbors: int = 10,
    lam: float | Float[Array, ""] = 1.0,
    labels: Int[Array, " n"] | None = None,
    temperature: float | Float[Array, ""] = 1.0,
    shift: float | Float[Array, ""] | None = None,
    max_iter: int = 50,
    inner_iter: int = 10,
    tol: float = 1e-6,
    update_centroids: bool = True,
    unrolled: bool = True,
) -> LaplacianKMeansResult:
    r"""Laplacian-regularised k-means with a parallel concave-convex bound optimiser.

    **Model.** With soft assignments $z_i \in \Delta_k$ (the simplex), prototypes $m_c$,
    $a_{ic} = \lVert x_i - m_c\rVert^2$ and a symmetric non-negative affinity $W$, minimise

    $$F(Z, M) = \sum_i z_i^\top a_i + T \sum_i z_i^\top \log z_i
      - \frac{\lambda}{2} \sum_{i,j} w_{ij}\, z_i^\top z_j
      - \frac{\lambda \mu}{2} \sum_i \lVert z_i\rVert^2$$

    with $z_i$ fixed to the one-hot vector of its class for labelled points. On one-hot
    $Z$ the entropy vanishes, $\lVert z_i\rVert^2 = 1$, and
    $-\tfrac12 \sum_{ij} w_{ij} z_i^\top z_j = \tfrac14 \sum_{ij} w_{ij} \lVert z_i - z_j\rVert^2
    - \text{const}$, so $F$ is the k-means cost plus $\lambda/4$ times the Laplacian
    $\operatorname{tr}(Z^\top L Z)$, $L = D - W$: the discrete LaplacianShot /
    "Clustering is all you need" objective. The relaxation differs from the discrete one by
    the entropy barrier (temperature $T$) and the shift $\mu$.

    **Concave-convex bound.** With $\mu \ge \max(0, -\lambda_{\min}(W))$ the matrix
    $W + \mu I$ is positive semi-definite, so the quadratic term $Q(Z) =
    -\tfrac{\lambda}{2}\operatorname{tr}(Z^\top (W + \mu I) Z)$ is concave and lies below its
    tangent at the current $Z^t$: $Q(Z) \le Q(Z^t) - \lambda \langle (W + \mu I) Z^t,
    Z - Z^t\rangle$. The resulting upper bound of $F$ is separable over points and convex
    (linear plus entropy); its minimiser over the simplices is, independently for every
    unlabelled point,

    $$z_i^{t+1} = \operatorname{softmax}\Big(\big(-a_i + \lambda \textstyle\sum_j w_{ij}
      z_j^t + \lambda \mu z_i^t\big) / T\Big),$$

    which cannot increase $F$ (bound optimisation). Each outer iteration runs
    ``inner_iter`` such updates with the prototypes fixed, then (``update_centroids``) sets
    $m_c = \sum_i z_{ic} x_i / \sum_i z_{ic}$, the exact minimiser in $M$ (a prototype whose
    mass is below machine epsilon stays where it is). $F$ is therefore non-increasing across
    iterations for **any** symmetric $W$; it is recorded in ``objective``. ``shift=None``
    takes the smallest such $\mu$ from ``eigvalsh(W)`` ($O(n^3)$); ``shift=0`` gives the
    plain LaplacianShot update, monotone when $W$ itself is PSD (e.g. an RBF Gram matrix).
    With ``lam=0`` the method is soft k-means at temperature $T$, and Lloyd's algorithm as
    $T \to 0$.

    **Differentiation.** ``unrolled=True`` (default) runs the outer loop as a ``scan`` whose
    steps become no-ops after convergence, so reverse-mode gradients of the assignments,
    prototypes and energies w.r.t. ``x`` (and a differentiable ``affinity``, ``lam``,
    ``temperature``) flow through the iterations actually run. For gradients checked by
    finite differences use ``tol=0`` (a fixed number of iterations). The kNN graph built
    when ``affinity`` is ``None`` is piecewise constant in ``x``. ``unrolled=False`` uses a
    ``while_loop`` (forward only).

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters (static), in ``[1, n]``.
      key: PRNG key for k-means++ seeding (when ``init`` is not given).
      init: initial prototypes ``(k, d)``. Without it, k-means++ from ``key``; with
        ``labels``, classes that have labelled points start at their labelled mean.
      affinity: symmetric non-negative ``(n, n)`` weights $W$; ``None`` builds the kNN graph
        ``affinity_matrix(x, kind="knn", n_neighbors=n_neighbors)`` (diagonal included).
      n_neighbors: neighbours per point (itself included) for the default graph.
      lam: Laplacian weight $\lambda \ge 0$.
      labels: optional ``(n,)`` integers, the class in ``[0, k)`` of labelled points and -1
        elsewhere; labelled points keep their one-hot assignment.
      temperature: entropy weight $T > 0$, in units of squared distance.
      shift: $\mu \ge 0$, or ``None`` for the smallest one that guarantees monotonicity.
      max_iter: outer iterations (static budget).
      inner_iter: bound updates per outer iteration (static).
      tol: stop when $|F^{t-1} - F^t| \le \mathrm{tol}\,|F^{t-1}|$ (0: run ``max_iter``).
      update_centroids: alternate with prototype updates (``False``: LaplacianShot with
        fixed prototypes, e.g. support-set means).
      unrolled: reverse-mode differentiable loop (see above).

    Returns:
      A [`LaplacianKMeansResult`][jaxclust.cluster.LaplacianKMeansResult].

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster.laplacian import laplacian_kmeans
      >>> x = jnp.asarray([[0.0, 0.0], [0.3, 0.0], [0.6, 0.0], [3.0, 0.0], [3.3, 0.0]])
      >>> y = jnp.asarray([0, -1, -1, 1, -1])  # two labelled points
      >>> res = laplacian_kmeans(x, 2, init=x[jnp.asarray([0, 3])], labels=y,
      ...                        n_neighbors=2, lam=1.0, temperature=0.1)
      >>> res.labels.tolist(), bool(res.converged)
      ([0, 0, 0, 1, 1], True)
      >>> bool(jnp.all(jnp.diff(res.objective) <= 1e-6))
      True

    References:
      Ziko, Dolz, Granger & Ben Ayed, "Laplacian Regularized Few-Shot Learning", ICML 2020.
      Ziko, Boudiaf, Dolz, Granger & Ben Ayed, "Transductive Few-Shot Learning: Clustering
      is All You Need?", arXiv:2106.09516, 2021. Yuille & Rangarajan, "The
      concave-convex procedure", Neural Computation 2003.
    """
    x = _points(x, k)
    n, d = x.shape
    for name, val, lo in (("max_iter", max_iter, 1), ("inner_iter", inner_iter, 1)):
        if not (isinstance(val, int) and not isinstance(val, bool) and val >= lo):
            raise ValueError(f"`{name}` must be an int >= {lo}, got {val!r}.")
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol >= 0):
        raise ValueError(f"`tol` must be a number >= 0, got {tol!r}.")
    lam = _nonneg_scalar(lam, "lam", "It weighs the Laplacian term; 0 gives soft k-means.")
    temp = checks.check_positive_scalar(temperature, "temperature",
                                        "Use a small value (e.g. 1e-3) for hard assignments.")

    if shift is not None:
        shift = _nonneg_scalar(shift, "shift", "Use None for the smallest shift that keeps "
                                               "the energy non-increasing.")
    if init is None and key is None:
        raise ValueError("`key` is required when `init` is not given (k-means++ seeding); "
                         "pass key=jax.random.key(0) or init=<(k, d) prototypes>.")
    if affinity is None:
        _check_n_neighbors(n_neighbors, n)
        w = _affinity(x, "knn", None, n_neighbors)
    else:
        w = _check_affinity(affinity, "affinity", dtype=x.dtype)
        if w.shape != (n, n):
            raise ValueError(f"`affinity` must have shape ({n}, {n}) to match `x`, got "
                             f"{tuple(w.shape)}.")

    if labels is None:
        lab = jnp.full((n,), -1, jnp.int32)
    else:
        lab = _check_labels(labels, n, k)
    known = (lab >= 0)[:, None]
    onehot = jax.nn.one_hot(lab, k, dtype=x.dtype)  # rows of -1 are all zeros

    if init is not None:
        c0 = checks.as_float_array(init, "init", dtype=x.dtype)
        if c0.shape != (k, d):
            raise ValueError(f"`init` prototypes must have shape ({k}, {d}), got "
                             f"{tuple(c0.shape)}.")
        c0 = checks.check_finite(c0, "init")
    else:
        c0 = kmeans_plusplus(x, k, key=key)
        cnt = jnp.sum(onehot, axis=0)
        mean_lab = jnp.matmul(onehot.T, x, precision=_PREC) / jnp.maximum(cnt, 1.0)[:, None]
        c0 = jnp.where((cnt > 0)[:, None], mean_lab, c0)

    mu = jnp.maximum(-jnp.linalg.eigvalsh(w)[0], 0.0) if shift is None else shift
    lam = jnp.asarray(lam, x.dtype)
    temp = jnp.asarray(temp, x.dtype)
    mu = jnp.asarray(mu, x.dtype)

    def assign_step(z, unary):
        logits = (-unary + lam * (jnp.matmul(w, z, precision=_PREC) + mu * z)) / temp
        return jnp.where(known, onehot, jax.nn.softmax(logits, axis=1))

    def centroid_step(z, c):
        mass = jnp.sum(z, axis=0)
        ok = mass > jnp.finfo(x.dtype).eps
        new = jnp.matmul(z.T, x, precision=_PREC) / jnp.where(ok, mass, 1.0)[:, None]
        return jnp.where(ok[:, None], new, c)

    def block(state, t):
        z, c, _, f, hist = state
        unary = pairwise_cost(x, c, "sqeuclidean")
        z = jax.lax.fori_loop(0, inner_iter, lambda _, zz: assign_step(zz, unary), z)
        if update_centroids:
            c = centroid_step(z, c)
        f_new = _energy(z, pairwise_cost(x, c, "sqeuclidean"), w, lam, mu, temp)
        return z, c, f, f_new, hist.at[t + 1].set(f_new)

    def done(state, t):
        _, _, f_old, f, _ = state
        return jnp.abs(f_old - f) <= tol * jnp.abs(f_old)

    unary0 = pairwise_cost(x, c0, "sqeuclidean")
    z0 = jnp.where(known, onehot, jax.nn.softmax(-unary0 / temp, axis=1))
    f0 = _energy(z0, unary0, w, lam, mu, temp)
    hist0 = jnp.zeros((max_iter + 1,), x.dtype).at[0].set(f0)
    state0 = (z0, c0, f0, f0, hist0)
    (z, c, f_old, f, hist), n_iters = iterate_blocks(block, state0, max_blocks=max_iter,
                                                     done=done, unrolled=unrolled)
    hist = jnp.where(jnp.arange(max_iter + 1) <= n_iters, hist, f)
    converged = (n_iters > 0) & (jnp.abs(f_old - f) <= tol * jnp.abs(f_old))
    return LaplacianKMeansResult(z, jnp.argmax(z, axis=1).astype(jnp.int32), c, hist,
                                 n_iters, converged)
