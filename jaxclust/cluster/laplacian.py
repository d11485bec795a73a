r"""Laplacian-regularised k-means: prototypes, a graph Laplacian and a few labelled points.

The model of LaplacianShot (Ziko et al., ICML 2020) and of its clustering generalisation
(Ziko, Boudiaf, Dolz, Granger & Ben Ayed, 2021): a prototype (k-means) term, a Laplacian
term that rewards neighbours sharing a cluster, supervision from labelled points, and a
bound optimiser whose assignment updates are closed-form and independent across points.

The defaults follow the authors' public code (imtiazziko/SLK-few-shot, ``SLK.py`` with
``method="kmeans"``, and ``train_SLK.py``): CL2N features, a directed binary kNN graph
without self-loops, temperature 1, prototypes the means of the points assigned to them,
initialisation from k-means. docs/fidelity.md lists what matches and every difference.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.costs import pairwise_cost
from .._core.fixed_point import iterate_blocks
from .._core.programs import EagerProgram
from .._core.results import with_summary_repr
from .lloyd import kmeans, kmeans_plusplus
from .spectral_clustering import _check_affinity, _new_points, _points, _sq_dists

__all__ = ["LaplacianKMeansResult", "laplacian_kmeans", "laplacian_kmeans_predict"]

_PREC = jax.lax.Precision.HIGHEST


@with_summary_repr
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
      converged: the relative change of the energy over the last outer iteration fell to
        ``tol`` or below, and every returned array is finite.
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
    """``<Z, A> + T <Z, log Z> - lam/2 <Z, (W + mu I) Z>`` (``w`` applies ``W``)."""
    wz = w(z) + mu * z
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


_GRAPHS = ("directed", "symmetric")
_PROTOTYPES = ("hard", "soft")
_NORMALIZE = ("cl2n", "l2", None)
_INITS = ("kmeans", "k-means++")


def _normalize_features(x, how):
    """CL2N (centre on the mean, then unit rows), L2N (unit rows) or nothing."""
    if how is None:
        return x
    if how == "cl2n":
        x = x - jnp.mean(x, axis=0, keepdims=True)
    sq = jnp.sum(x * x, axis=1, keepdims=True)
    # rows of zero norm stay zero (the reference's floor 1e-14 on the squared norm)
    return x * jax.lax.rsqrt(jnp.maximum(sq, 1e-14))


def _knn_indices(x, n_neighbors):
    """The ``n_neighbors`` nearest other points of every point (self excluded)."""
    n = x.shape[0]
    score = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, _sq_dists(x))
    _, idx = jax.lax.top_k(-score, n_neighbors)
    return jax.lax.stop_gradient(idx)


def _graph_operator(idx, n, graph):
    """``z -> W z`` for the binary kNN graph ``A`` (rows: a point's neighbours), without
    forming the ``n x n`` matrix: ``A z`` gathers, ``A^T z`` scatters."""

    def a_z(z):
        return jnp.sum(z[idx], axis=1)

    if graph == "directed":
        return a_z

    def sym(z):
        at_z = jax.ops.segment_sum(jnp.repeat(z, idx.shape[1], axis=0), idx.reshape(-1),
                                   num_segments=n)
        return 0.5 * (a_z(z) + at_z)

    return sym


def _dense_graph(idx, n, dtype, graph):
    a = jnp.zeros((n, n), dtype).at[jnp.arange(n)[:, None], idx].set(1.0)
    return a if graph == "directed" else 0.5 * (a + a.T)


def _static_choice(value, name, options):
    if value not in options:
        raise ValueError(f"`{name}` must be one of {options}, got {value!r}.")


def laplacian_kmeans(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray | None = None,
    init: str | Float[Array, "k d"] = "kmeans",
    affinity: Float[Array, "n n"] | None = None,
    n_neighbors: int = 5,
    graph: str = "directed",
    normalize: str | None = "cl2n",
    prototypes: str = "hard",
    lam: float | Float[Array, ""] = 1.0,
    labels: Int[Array, " n"] | None = None,
    temperature: float | Float[Array, ""] = 1.0,
    shift: float | Float[Array, ""] | None = 0.0,
    max_iter: int = 50,
    inner_iter: int = 30,
    tol: float = 1e-6,
    update_centroids: bool = True,
    warm_start: bool = False,
    unrolled: bool = True,
) -> LaplacianKMeansResult:
    r"""Laplacian-regularised k-means (SLK / LaplacianShot) with a parallel bound optimiser.

    **Model.** With soft assignments $z_i \in \Delta_k$ (the simplex), prototypes $m_c$,
    $a_{ic} = \lVert \hat x_i - m_c\rVert^2$ on the features $\hat x$ (CL2N by default:
    centred on their mean, then scaled to unit norm) and a non-negative affinity $W$,
    minimise

    $$F(Z, M) = \sum_i z_i^\top a_i + T \sum_i z_i^\top \log z_i
      - \frac{\lambda}{2} \sum_{i,j} w_{ij}\, z_i^\top z_j
      - \frac{\lambda \mu}{2} \sum_i \lVert z_i\rVert^2$$

    with $z_i$ fixed to the one-hot vector of its class for labelled points. On one-hot
    $Z$ the entropy vanishes, $\lVert z_i\rVert^2 = 1$, and $F$ is the k-means cost plus
    $\lambda/4$ times the Laplacian $\operatorname{tr}(Z^\top L Z)$, $L = D - \bar W$,
    $\bar W = \tfrac12(W + W^\top)$: the discrete LaplacianShot / "Clustering is all you
    need" objective.

    **Updates** (as the reference code). Each outer iteration starts the assignments
    afresh at $\operatorname{softmax}(-a_i/T)$ (``warm_start=True``: from the previous
    ones instead) and runs ``inner_iter`` bound updates, independently for every unlabelled
    point,

    $$z_i \leftarrow \operatorname{softmax}\Big(\big(-a_i + \lambda \textstyle\sum_j w_{ij}
      z_j + \lambda \mu z_i\big) / T\Big),$$

    then (``update_centroids``) the prototype step: ``prototypes="hard"`` (the reference)
    sets $m_c$ to the mean of the points whose largest assignment is $c$ (a prototype that
    loses all its points stays where it is); ``"soft"`` to the weighted mean
    $\sum_i z_{ic}\hat x_i / \sum_i z_{ic}$, the exact minimiser of $F$ in $M$.

    **Graph.** Without ``affinity``, $W$ is built from the ``n_neighbors`` nearest other
    points of each point (self excluded, binary weights). ``graph="directed"`` (the
    reference) uses the directed graph $A$ in the update ($\sum_j a_{ij} z_j$ sums a
    point's own neighbours); ``"symmetric"`` uses $\tfrac12(A + A^\top)$, for which the
    update is the exact minimiser of a concave-convex bound of $F$. With a symmetric $W$,
    soft prototypes, ``warm_start=True`` and $\mu \ge \max(0, -\lambda_{\min}(W))$
    (``shift=None`` computes the smallest such $\mu$ from ``eigvalsh``, $O(n^3)$) $F$ is
    non-increasing across
    iterations (concave-convex procedure). The reference uses no shift (``shift=0``, the
    default) and the directed graph; its iterations are not guaranteed monotone, and the
    recorded ``objective`` may go up slightly. The built-in graph is applied by gathers,
    never as an ``n x n`` matrix (unless ``shift=None``).

    **Initialisation.** ``init="kmeans"`` (the reference's start): the centroids of Lloyd's
    k-means (best of 10 k-means++ starts from ``key``, as scikit-learn's ``KMeans`` of the
    reference) on the normalised features;
    ``"k-means++"``: the seeding alone; or ``(k, d)`` prototypes in the normalised space.
    With ``labels``, classes that have labelled points start at their labelled mean (the
    few-shot reference starts every class at its support mean).

    **Differentiation.** ``unrolled=True`` (default) runs the outer loop as a ``scan``
    whose steps become no-ops after convergence, so reverse-mode gradients flow through
    the iterations actually run (use ``tol=0`` for finite-difference checks). The kNN
    graph and the hard memberships are piecewise constant in ``x``. ``unrolled=False``
    uses a ``while_loop`` (forward only).

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters (static), in ``[1, n]``.
      key: PRNG key for the k-means initialisation (when ``init`` is a string).
      init: ``"kmeans"`` (default), ``"k-means++"``, or ``(k, d)`` initial prototypes (in
        the space of the normalised features).
      affinity: symmetric non-negative ``(n, n)`` weights $W$ instead of the kNN graph.
      n_neighbors: neighbours per point, the point itself excluded (the reference's
        ``--knn m`` keeps ``m - 1`` neighbours), static.
      graph: ``"directed"`` (reference) or ``"symmetric"`` kNN graph (static).
      normalize: ``"cl2n"`` (reference: centre, then unit rows), ``"l2"`` (unit rows) or
        ``None`` (the raw features), static.
      prototypes: ``"hard"`` (reference: means of the points assigned to each cluster) or
        ``"soft"`` (weighted means), static.
      lam: Laplacian weight $\lambda \ge 0$ (0 gives (soft) k-means).
      labels: optional ``(n,)`` integers, the class in ``[0, k)`` of labelled points and -1
        elsewhere; labelled points keep their one-hot assignment.
      temperature: entropy weight $T > 0$, in units of squared distance (reference: 1 on
        unit-norm features).
      shift: $\mu \ge 0$ (reference: 0), or ``None`` for the smallest shift that makes the
        energy non-increasing with a symmetric graph and soft prototypes.
      max_iter: outer iterations (static budget).
      inner_iter: bound updates per outer iteration (static).
      tol: stop when $|F^{t-1} - F^t| \le \mathrm{tol}\,|F^{t-1}|$ (0: run ``max_iter``).
      update_centroids: alternate with prototype updates (``False``: LaplacianShot with
        fixed prototypes, e.g. support-set means).
      warm_start: start each outer iteration's bound updates from the previous assignments
        (``False``, the reference: from $\operatorname{softmax}(-a_i/T)$), static.
      unrolled: reverse-mode differentiable loop (see above).

    Returns:
      A [`LaplacianKMeansResult`][jaxclust.cluster.LaplacianKMeansResult]; its centroids
      live in the space of the normalised features.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster.laplacian import laplacian_kmeans
      >>> x = jnp.asarray([[0.0, 0.0], [0.3, 0.0], [0.6, 0.0], [3.0, 0.0], [3.3, 0.0]])
      >>> y = jnp.asarray([0, -1, -1, 1, -1])  # two labelled points
      >>> res = laplacian_kmeans(x, 2, init=x[jnp.asarray([0, 3])], labels=y, normalize=None,
      ...                        n_neighbors=1, graph="symmetric", prototypes="soft",
      ...                        lam=1.0, temperature=0.1, shift=None, warm_start=True)
      >>> res.labels.tolist(), bool(res.converged)
      ([0, 0, 0, 1, 1], True)
      >>> bool(jnp.all(jnp.diff(res.objective) <= 1e-6))  # monotone in this setting
      True

    References:
      Ziko, Dolz, Granger & Ben Ayed, "Laplacian Regularized Few-Shot Learning", ICML 2020.
      Ziko, Boudiaf, Dolz, Granger & Ben Ayed, "Transductive Few-Shot Learning: Clustering
      is All You Need?", arXiv:2106.09516, 2021 (code: github.com/imtiazziko/SLK-few-shot).
      Yuille & Rangarajan, "The concave-convex procedure", Neural Computation 2003.
    """
    x = _points(x, k)
    n, d = x.shape
    for name, val, lo in (("max_iter", max_iter, 1), ("inner_iter", inner_iter, 1)):
        checks.check_int(val, name, low=lo)
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol >= 0):
        raise ValueError(f"`tol` must be a number >= 0, got {tol!r}.")
    _static_choice(graph, "graph", _GRAPHS)
    _static_choice(normalize, "normalize", _NORMALIZE)
    _static_choice(prototypes, "prototypes", _PROTOTYPES)
    lam = _nonneg_scalar(lam, "lam", "It weighs the Laplacian term; 0 gives soft k-means.")
    temp = checks.check_positive_scalar(temperature, "temperature",
                                        "Use a small value (e.g. 1e-3) for hard assignments.")
    if shift is not None:
        shift = _nonneg_scalar(shift, "shift", "Use None for the smallest shift that keeps "
                                               "the energy non-increasing.")
    if isinstance(init, str):
        _static_choice(init, "init", _INITS)
        if key is None:
            raise ValueError(f"`key` is required with init={init!r} (k-means seeding); pass "
                             "key=jax.random.key(0) or init=<(k, d) prototypes>.")
    if affinity is None:
        checks.check_int(n_neighbors, "n_neighbors", high=n - 1,
                         bounds=f"in [1, n - 1] = [1, {n - 1}]",
                         why="the point itself is not counted")
        w = None
    else:
        w = _check_affinity(affinity, "affinity", dtype=x.dtype)
        if w.shape != (n, n):
            raise ValueError(f"`affinity` must have shape ({n}, {n}) to match `x`, got "
                             f"{tuple(w.shape)}.")

    if labels is None:
        lab = jax.device_put(np.full((n,), -1, np.int32))  # NumPy: no XLA program
    else:
        lab = _check_labels(labels, n, k)

    if not isinstance(init, str):
        c0 = checks.as_float_array(init, "init", dtype=x.dtype)
        if c0.shape != (k, d):
            raise ValueError(f"`init` prototypes must have shape ({k}, {d}), got "
                             f"{tuple(c0.shape)}.")
        c0, key, init = checks.check_finite(c0, "init"), None, None
    else:
        c0 = None
    return _laplacian(n * n, x, lab, c0, key, w, lam, temp, shift, normalize=normalize,
                      n_neighbors=n_neighbors if affinity is None else None, graph=graph,
                      init=init, k=k, prototypes=prototypes, max_iter=max_iter,
                      inner_iter=inner_iter, tol=tol, update_centroids=update_centroids,
                      warm_start=warm_start, unrolled=unrolled)


def _laplacian_fn(x, lab, c0, key, w, lam, temp, shift, *, normalize, n_neighbors, graph, init,
                  k, prototypes, max_iter, inner_iter, tol, update_centroids, warm_start,
                  unrolled):
    """:func:`laplacian_kmeans` after validation: features, graph, seeding, shift and the
    iterations (``w`` None: the kNN graph of the normalised features; ``c0`` None: seeded
    from ``key`` by ``init``)."""
    n = x.shape[0]
    xf = _normalize_features(x, normalize)
    if w is None:
        idx = _knn_indices(xf, n_neighbors)
        w_dense = (lambda: _dense_graph(idx, n, x.dtype, graph))  # noqa: E731
        w_arg, graph_kind = idx, graph
    else:
        w_dense = (lambda: w)  # noqa: E731
        w_arg, graph_kind = w, "dense"

    if c0 is None:
        onehot = jax.nn.one_hot(lab, k, dtype=x.dtype)  # rows of -1 are all zeros
        if init == "kmeans":
            c0 = kmeans(jax.lax.stop_gradient(xf), k, key=key, n_init=10).centroids
        else:
            c0 = kmeans_plusplus(jax.lax.stop_gradient(xf), k, key=key)
        cnt = jnp.sum(onehot, axis=0)
        mean_lab = jnp.matmul(onehot.T, xf, precision=_PREC) / jnp.maximum(cnt, 1.0)[:, None]
        c0 = jnp.where((cnt > 0)[:, None], mean_lab, c0)

    if shift is None:
        wd = w_dense()
        mu = jnp.maximum(-jnp.linalg.eigvalsh(0.5 * (wd + wd.T))[0], 0.0)
    else:
        mu = shift
    lam = jnp.asarray(lam, x.dtype)
    temp = jnp.asarray(temp, x.dtype)
    mu = jnp.asarray(mu, x.dtype)
    return _solve(xf, c0, lab, lam, temp, mu, w_arg, graph_kind, k, prototypes, max_iter,
                  inner_iter, tol, update_centroids, warm_start, unrolled)


# one program per eager call (features, kNN graph, seeding, shift and iterations), quick to
# compile for small problems on CPU (work = n^2); inlined under jit / vmap
_laplacian = EagerProgram(_laplacian_fn, ("normalize", "n_neighbors", "graph", "init", "k",
                                          "prototypes", "max_iter", "inner_iter", "tol",
                                          "update_centroids", "warm_start", "unrolled"))


@partial(jax.jit, static_argnums=(7, 8, 9, 10, 11, 12, 13, 14, 15))
def _solve(xf, c0, lab, lam, temp, mu, w_arg, graph_kind, k, prototypes, max_iter, inner_iter,
           tol, update_centroids, warm_start, unrolled):
    """The bound-optimisation iterations of :func:`laplacian_kmeans`, one jitted program
    (eager calls compile once per shapes and options; their loops close over fresh
    functions). ``w_arg``: the kNN indices (``graph_kind`` directed / symmetric) or the
    dense affinity (``"dense"``)."""
    n = xf.shape[0]
    if graph_kind == "dense":
        w_op = (lambda z: jnp.matmul(w_arg, z, precision=_PREC))  # noqa: E731
    else:
        w_op = _graph_operator(w_arg, n, graph_kind)
    known = (lab >= 0)[:, None]
    onehot = jax.nn.one_hot(lab, k, dtype=xf.dtype)  # rows of -1 are all zeros

    def assign_step(z, unary):
        logits = (-unary + lam * (w_op(z) + mu * z)) / temp
        return jnp.where(known, onehot, jax.nn.softmax(logits, axis=1))

    def centroid_step(z, c):
        if prototypes == "hard":
            # labelled points count for their class; the others for their largest assignment
            z = jnp.where(known, onehot, jax.nn.one_hot(jnp.argmax(z, axis=1), k,
                                                        dtype=xf.dtype))
            ok = jnp.sum(z, axis=0) > 0
        else:
            ok = jnp.sum(z, axis=0) > jnp.finfo(xf.dtype).eps
        mass = jnp.sum(z, axis=0)
        new = jnp.matmul(z.T, xf, precision=_PREC) / jnp.where(ok, mass, 1.0)[:, None]
        return jnp.where(ok[:, None], new, c)

    def block(state, t):
        z, c, _, f, hist = state
        unary = pairwise_cost(xf, c, "sqeuclidean")
        if not warm_start:
            z = jnp.where(known, onehot, jax.nn.softmax(-unary / temp, axis=1))
        z = jax.lax.fori_loop(0, inner_iter, lambda _, zz: assign_step(zz, unary), z)
        if update_centroids:
            c = centroid_step(z, c)
        f_new = _energy(z, pairwise_cost(xf, c, "sqeuclidean"), w_op, lam, mu, temp)
        return z, c, f, f_new, hist.at[t + 1].set(f_new)

    def done(state, t):
        _, _, f_old, f, _ = state
        return jnp.abs(f_old - f) <= tol * jnp.abs(f_old)

    unary0 = pairwise_cost(xf, c0, "sqeuclidean")
    z0 = jnp.where(known, onehot, jax.nn.softmax(-unary0 / temp, axis=1))
    f0 = _energy(z0, unary0, w_op, lam, mu, temp)
    hist0 = jnp.zeros((max_iter + 1,), xf.dtype).at[0].set(f0)
    state0 = (z0, c0, f0, f0, hist0)
    (z, c, f_old, f, hist), n_iters = iterate_blocks(block, state0, max_blocks=max_iter,
                                                     done=done, unrolled=unrolled)
    hist = jnp.where(jnp.arange(max_iter + 1) <= n_iters, hist, f)
    # the whole energy history the user receives (an overflowing init makes its start Inf)
    finite = (jnp.all(jnp.isfinite(z)) & jnp.all(jnp.isfinite(c)) & jnp.isfinite(f)
              & jnp.all(jnp.isfinite(hist)))
    converged = (n_iters > 0) & (jnp.abs(f_old - f) <= tol * jnp.abs(f_old)) & finite
    return LaplacianKMeansResult(z, jnp.argmax(z, axis=1).astype(jnp.int32), c, hist,
                                 n_iters, converged)


def laplacian_kmeans_predict(
    x: Float[Array, "m d"],
    x_train: Float[Array, "n d"],
    result: LaplacianKMeansResult,
    *,
    n_neighbors: int = 5,
    normalize: str | None = "cl2n",
    lam: float | Float[Array, ""] = 1.0,
    temperature: float | Float[Array, ""] = 1.0,
) -> tuple[Int[Array, " m"], Float[Array, "m k"]]:
    r"""Assign new points with a fitted Laplacian k-means model (out-of-sample extension).

    Each new point $p$ joins the directed kNN graph with edges to its ``n_neighbors``
    nearest training points $N(p)$ (on the features normalised as in the fit: CL2N
    centres on the **training** mean), the training assignments $Z$ held fixed. Minimising
    the energy of [`laplacian_kmeans`][jaxclust.cluster.laplacian_kmeans] over $z_p$ alone
    gives, in closed form (one bound update, no iteration: $z_p$ enters only linearly
    besides its entropy),

    $$ z_p = \operatorname{softmax}\Big(\big(-\lVert \hat x_p - m_c\rVert^2
       + \lambda \textstyle\sum_{j \in N(p)} z_{j}\big)/T\Big), $$

    the reference's assignment step for a point with no incoming edges (``shift`` 0).
    With ``lam = 0`` it is the soft assignment to the prototypes. Pass the options used
    for the fit; a fit with a custom ``affinity`` has no rule for new points' edges (use
    ``lam = 0`` or build the kNN option).

    Args:
      x: new points ``(m, d)``.
      x_train: the training points ``(n, d)`` the result was fitted on.
      result: the fit's [`LaplacianKMeansResult`][jaxclust.cluster.LaplacianKMeansResult].
      n_neighbors: neighbours of a new point among the training points (static).
      normalize: ``"cl2n"``, ``"l2"`` or ``None``, as for the fit (static).
      lam: Laplacian weight $\lambda \ge 0$, as for the fit.
      temperature: $T > 0$, as for the fit.

    Returns:
      ``(labels, assignments)`` of shapes ``(m,)`` and ``(m, k)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import laplacian_kmeans, laplacian_kmeans_predict
      >>> x = jnp.asarray([[0.0, 0.0], [0.2, 0.1], [0.1, 0.3], [4.0, 4.0], [4.2, 4.1],
      ...                  [4.1, 4.3]])
      >>> res = laplacian_kmeans(x, 2, init=x[jnp.asarray([0, 3])], n_neighbors=2,
      ...                        normalize=None)
      >>> labels, _ = laplacian_kmeans_predict(jnp.asarray([[3.9, 4.2], [0.1, -0.1]]), x,
      ...                                      res, n_neighbors=2, normalize=None)
      >>> bool(labels[0] == res.labels[3]), bool(labels[1] == res.labels[0])
      (True, True)
    """
    xs, xt = _new_points(x, x_train)
    n, d = xt.shape
    dtype = xs.dtype
    if not isinstance(result, LaplacianKMeansResult):
        raise ValueError("`result` must be the LaplacianKMeansResult returned by "
                         f"`laplacian_kmeans` on `x_train`, got {type(result).__name__}.")
    z = checks.as_float_array(result.assignments, "result.assignments")
    c = checks.as_float_array(result.centroids, "result.centroids")
    checks.check_ndim(z, "result.assignments", 2, "(n, k)")
    checks.check_ndim(c, "result.centroids", 2, "(k, d)")
    if z.shape[0] != n or c.shape[1] != d or z.shape[1] != c.shape[0]:
        raise ValueError(f"`result` does not match `x_train` ({n} points, {d} features): "
                         f"assignments {tuple(z.shape)}, centroids {tuple(c.shape)}; pass the "
                         "result of `laplacian_kmeans` fitted on `x_train`.")
    z = checks.check_finite(z.astype(dtype), "result.assignments")
    c = checks.check_sq_norms(checks.check_finite(c.astype(dtype), "result.centroids"),
                              "result.centroids")
    checks.check_int(n_neighbors, "n_neighbors", high=n, bounds=f"in [1, n] = [1, {n}]")
    _static_choice(normalize, "normalize", _NORMALIZE)
    lam = _nonneg_scalar(lam, "lam", "It weighs the Laplacian term; 0 gives soft k-means.")
    temp = checks.check_positive_scalar(temperature, "temperature")
    if normalize == "cl2n":
        mean = jnp.mean(xt, axis=0, keepdims=True)
        xs, xt = xs - mean, xt - mean
    if normalize is not None:
        xs, xt = _normalize_features(xs, "l2"), _normalize_features(xt, "l2")
    # nearest training points of every new point (from differences: no self to exclude)
    d2 = jnp.sum(jnp.square(xs[:, None, :] - xt[None, :, :]), axis=-1)
    _, idx = jax.lax.top_k(-d2, n_neighbors)
    pull = jnp.sum(z[idx], axis=1)  # (m, k)
    unary = pairwise_cost(xs, c, "sqeuclidean")
    q = jax.nn.softmax((-unary + jnp.asarray(lam, xs.dtype) * pull)
                       / jnp.asarray(temp, xs.dtype), axis=1)
    return jnp.argmax(q, axis=1).astype(jnp.int32), q
