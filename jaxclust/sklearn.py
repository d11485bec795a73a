"""scikit-learn estimators over jaxclust's pure functions.

Each class wraps one function of `jaxclust.cluster` or `jaxclust.sdp` behind the
scikit-learn estimator API, so that it drops into a `Pipeline`, `GridSearchCV` or `clone`:

| estimator | function | `predict` | `transform` | `score` |
|---|---|---|---|---|
| `KMeans` | `cluster.kmeans` | nearest centre | distances to the centres | $-$inertia |
| `MiniBatchKMeans` | `cluster.minibatch_kmeans` | nearest centre | distances | $-$inertia |
| `GaussianMixture` | `cluster.gmm` | most probable component | | mean log-likelihood |
| `KMedoids` | `cluster.kmedoids` | nearest medoid | dissimilarities to the medoids | |
| `SinkhornKMeans` | `cluster.sinkhorn_kmeans` | nearest centre | distances | |
| `SpectralClustering` | `cluster.spectral` | (transductive) | | |
| `KMeansSDP` | `sdp.kmeans_sdp` | (transductive) | | |
| `LASDP` | `sdp.la_sdp` | (transductive) | | |

A fit calls the function once, on the validated input, and copies its result into NumPy
attributes with a trailing underscore; the fitted estimator gives the same numbers as the
function on the same input and key (tested).

**Randomness.** ``random_state`` follows scikit-learn: an ``int`` seed ``s`` (in
``[0, 2**32)``) gives ``key = jax.random.key(s)``, so ``KMeans(3, random_state=s)`` and
``kmeans(x, 3, key=jax.random.key(s))`` agree; ``None`` (the default) draws the seed from
NumPy's global random state (``np.random``), a ``numpy.random.RandomState`` from that state,
so repeated fits differ unless a seed is given, exactly as in scikit-learn.

**Precision.** Inputs are validated by scikit-learn (``validate_data``: 2-D, finite, dense,
numeric; lists and DataFrames accepted) and computed in JAX's working precision: float32
by default — a float64 input is computed *and returned* in float32, and the estimators'
``preserves_dtype`` tag says so — and float64 when ``jax.config.update("jax_enable_x64",
True)`` is on, in which case float32 stays float32 and float64 stays float64.

**Convergence.** A fit that stops at its iteration budget sets ``converged_ = False`` and
issues ``sklearn.exceptions.ConvergenceWarning``.

scikit-learn is an optional dependency (``pip install 'jaxclust[data]'``): ``import
jaxclust`` never imports it; ``import jaxclust.sklearn`` does.
"""

from __future__ import annotations

import math
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

try:
    from sklearn.base import (
        BaseEstimator,
        ClassNamePrefixFeaturesOutMixin,
        ClusterMixin,
        DensityMixin,
        TransformerMixin,
    )
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "jaxclust.sklearn needs scikit-learn, an optional dependency of jaxclust; install it "
        "with `pip install 'jaxclust[data]'` (or `pip install scikit-learn>=1.4`).") from err

from ._core import checks
from .cluster import (
    MiniBatchKMeansState,
    gmm,
    gmm_log_prob,
    kmeans,
    kmeans_plusplus,
    kmedoids,
    minibatch_kmeans,
    minibatch_kmeans_init,
    minibatch_kmeans_update,
    sinkhorn_kmeans,
    spectral,
)
from .sdp import ADMM, BurerMonteiro, kmeans_sdp, la_sdp

__all__ = [
    "GaussianMixture",
    "KMeans",
    "KMeansSDP",
    "KMedoids",
    "LASDP",
    "MiniBatchKMeans",
    "SinkhornKMeans",
    "SpectralClustering",
]

_HI = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------- helpers


def _x64() -> bool:
    return bool(jax.config.jax_enable_x64)


def _dtypes():
    """dtypes ``validate_data`` keeps (others are converted to the first)."""
    return [np.float64, np.float32] if _x64() else np.float32


def _preserved() -> list[str]:
    return ["float64", "float32"] if _x64() else ["float32"]


def _key(random_state) -> jax.Array:
    """``random_state`` -> a JAX key: an int seed is used as is, ``None`` or a
    ``RandomState`` draws one (scikit-learn's meaning of ``None``: the global NumPy RNG)."""
    rng = check_random_state(random_state)  # validates the int range as scikit-learn does
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return jax.random.key(int(random_state))
    return jax.random.key(int(rng.randint(np.iinfo(np.int32).max)))


def _np(a, dtype=None) -> np.ndarray:
    """A writeable NumPy copy of a JAX array."""
    return np.array(a, dtype=dtype, copy=True)


def _check_k(k, n: int, name: str = "n_clusters", *, sdp: bool = False) -> int:
    k = checks.check_int(k, name)
    if n < k or (sdp and 1 < k == n):
        rel = ">" if sdp and k > 1 else ">="
        raise ValueError(f"n_samples={n} should be {rel} {name}={k}; give more samples or "
                         f"fewer {name}.")
    return k


def _warn_not_converged(est, what: str) -> None:
    warnings.warn(f"{type(est).__name__} did not converge: {what}. Increase the iteration "
                  "budget or the tolerance; the fitted attributes are those of the last "
                  "iterate.", ConvergenceWarning, stacklevel=3)


@jax.jit
def _sq_distances(x, c):
    """``|x_i - c_j|^2`` by one matrix product (as ``cluster.kmeans``), clipped at 0."""
    d = (jnp.sum(x * x, axis=1)[:, None] - 2.0 * jnp.matmul(x, c.T, precision=_HI)
         + jnp.sum(c * c, axis=1)[None, :])
    return jnp.maximum(d, 0.0)


@jax.jit
def _nearest(x, c):
    d = _sq_distances(x, c)
    return jnp.argmin(d, axis=1).astype(jnp.int32), jnp.min(d, axis=1)


def _dissimilarities(x, c, metric):
    """Dissimilarities of rows of ``x`` to rows of ``c`` under a ``kmedoids`` metric."""
    diff = x[:, None, :] - c[None, :, :]
    if metric == "manhattan":
        return jnp.sum(jnp.abs(diff), axis=2)
    if metric == "cosine":
        nx = jnp.linalg.norm(x, axis=1)[:, None]
        nc = jnp.linalg.norm(c, axis=1)[None, :]
        dot = jnp.matmul(x, c.T, precision=_HI)
        return jnp.clip(1.0 - dot / jnp.maximum(nx * nc, jnp.finfo(x.dtype).tiny), 0.0, 2.0)
    sq = jnp.sum(diff * diff, axis=2)
    return sq if metric == "sqeuclidean" else jnp.sqrt(sq)


_dissimilarities_jit = jax.jit(_dissimilarities, static_argnames="metric")


class _Base(BaseEstimator):
    """Validation shared by the estimators."""

    def _validate_x(self, X, *, reset: bool):
        return validate_data(self, X, reset=reset, dtype=_dtypes())

    def _validate_weights(self, sample_weight, X):
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)


class _Centroids(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, _Base):
    """``predict`` / ``transform`` / ``score`` from ``cluster_centers_`` (squared Euclidean)."""

    def predict(self, X):
        """Index of the nearest cluster centre of every row of ``X``, shape ``(n,)``."""
        check_is_fitted(self)
        X = self._validate_x(X, reset=False)
        return _np(_nearest(jnp.asarray(X), jnp.asarray(self.cluster_centers_))[0])

    def transform(self, X):
        """Euclidean distances of every row of ``X`` to every centre, shape ``(n, k)``."""
        check_is_fitted(self)
        X = self._validate_x(X, reset=False)
        return _np(jnp.sqrt(_sq_distances(jnp.asarray(X), jnp.asarray(self.cluster_centers_))))

    def fit_transform(self, X, y=None, sample_weight=None):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = _preserved()
        return tags


class _KMeansScore:
    def score(self, X, y=None, sample_weight=None):
        """Opposite of the (weighted) k-means inertia of ``X`` at the fitted centres."""
        check_is_fitted(self)
        X = self._validate_x(X, reset=False)
        w = self._validate_weights(sample_weight, X)
        d = _nearest(jnp.asarray(X), jnp.asarray(self.cluster_centers_))[1]
        return -float(jnp.sum(d) if w is None else jnp.sum(jnp.asarray(w) * d))


# ----------------------------------------------------------------------------- k-means


class KMeans(_KMeansScore, _Centroids):
    r"""k-means (Lloyd, k-means++ seeding) as a scikit-learn estimator, over
    [`jaxclust.cluster.kmeans`][jaxclust.cluster.kmeans].

    Minimises $\sum_i w_i \min_j \lVert x_i - c_j\rVert^2$; ``n_init`` restarts run in
    parallel (``vmap``) and the lowest inertia wins. Stops when the squared centre shift is
    at most ``tol * mean(var(X, axis=0))`` or the labels stop changing (scikit-learn's rule).

    Args:
      n_clusters: number of clusters.
      init: ``"k-means++"``, ``"random"`` or initial centres ``(n_clusters, n_features)``.
      n_init: restarts; ``"auto"`` is 1 for ``"k-means++"`` and given centres, 10 for
        ``"random"`` (scikit-learn's rule).
      max_iter: Lloyd iteration budget.
      tol: relative tolerance on the centre shift.
      random_state: ``None``, an int seed or a ``numpy.random.RandomState`` (module
        docstring).
      chunk_size: rows per block of the assignment step (``None``: automatic).
      algorithm: ``"lloyd"``, ``"elkan"`` (scikit-learn's names), ``"hamerly"`` or
        ``"auto"`` (default). Every choice computes Lloyd's iterates; ``"elkan"`` runs
        jaxclust's bound-pruned ``"hamerly"`` (one lower bound per point instead of Elkan's
        ``k``: the same labels, less memory), ``"auto"`` prunes on large problems (see
        [`kmeans`][jaxclust.cluster.kmeans]).

    Attributes:
      cluster_centers_: ``(n_clusters, n_features)``.
      labels_: index of the nearest centre of every training point, int32.
      inertia_: weighted sum of squared distances to the nearest centre.
      n_iter_: Lloyd iterations of the best restart.
      converged_: whether that restart met the tolerance before ``max_iter``.
      n_features_in_: number of features seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import KMeans
      >>> X = np.concatenate([np.zeros((20, 2)), np.full((20, 2), 5.0)])
      >>> X += np.random.default_rng(0).normal(scale=0.3, size=X.shape)
      >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
      >>> sorted(np.bincount(km.labels_).tolist()), km.cluster_centers_.shape
      ([20, 20], (2, 2))
      >>> bool(km.predict([[5.0, 5.0]])[0] == km.labels_[-1]), km.transform(X[:1]).shape
      (True, (1, 2))
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, random_state=None, chunk_size=None, algorithm="auto"):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.algorithm = algorithm

    def _n_init(self):
        if self.n_init == "auto":
            return 10 if isinstance(self.init, str) and self.init == "random" else 1
        return self.n_init

    def fit(self, X, y=None, sample_weight=None):
        """Fit on ``X`` ``(n_samples, n_features)`` with optional ``sample_weight``."""
        X = self._validate_x(X, reset=True)
        w = self._validate_weights(sample_weight, X)
        k = _check_k(self.n_clusters, X.shape[0])
        init = self.init if isinstance(self.init, str) else np.asarray(self.init, X.dtype)
        algorithm = self.algorithm
        if not isinstance(algorithm, str) or algorithm not in ("auto", "lloyd", "elkan",
                                                               "hamerly"):
            raise ValueError(f"`algorithm` must be 'lloyd', 'elkan', 'hamerly' or 'auto', got "
                             f"{algorithm!r}.")
        res = kmeans(X, k, key=_key(self.random_state), init=init, n_init=self._n_init(),
                     max_iter=self.max_iter, tol=self.tol, weights=w,
                     chunk_size=self.chunk_size,
                     algorithm="hamerly" if algorithm == "elkan" else algorithm)
        self.cluster_centers_ = _np(res.centroids)
        self.labels_ = _np(res.labels, np.int32)
        self.inertia_ = float(res.inertia)
        self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        self._n_features_out = k
        if not self.converged_:
            _warn_not_converged(self, f"max_iter={self.max_iter} Lloyd iterations reached")
        return self


class MiniBatchKMeans(_KMeansScore, _Centroids):
    r"""Mini-batch k-means (Sculley 2010) as a scikit-learn estimator, over
    [`jaxclust.cluster.minibatch_kmeans`][jaxclust.cluster.minibatch_kmeans].

    k-means++ seeding on ``3 * batch_size`` random points, then ``max_steps`` updates on
    random batches (drawn with replacement); early stopping after ``max_no_improvement``
    steps without improvement of the smoothed batch inertia. Labels and inertia are those
    of the whole training set at the final centres.

    Unlike scikit-learn's ``max_iter`` (passes over the data), the budget here is
    ``max_steps`` mini-batches: ``max_iter`` epochs are about
    ``max_iter * n_samples / batch_size`` steps.

    Args:
      n_clusters: number of clusters.
      init: ``"k-means++"`` or initial centres ``(n_clusters, n_features)``.
      batch_size: points per step.
      max_steps: step budget.
      max_no_improvement: early-stopping patience (``None``: run all ``max_steps``).
      reassignment_ratio: low-count centres are reassigned below this fraction of the
        largest count (see ``minibatch_kmeans_update``).
      random_state: ``None``, an int seed or a ``numpy.random.RandomState``.
      chunk_size: rows per block of the final assignment.

    Attributes:
      cluster_centers_, labels_, inertia_, n_features_in_: as in
        [`KMeans`][jaxclust.sklearn.KMeans].
      n_steps_: mini-batch steps run; ``n_iter_`` is the same number.
      converged_: early stopping triggered (always ``False`` with
        ``max_no_improvement=None``, which then issues no warning).

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import MiniBatchKMeans
      >>> X = np.concatenate([np.zeros((100, 2)), np.full((100, 2), 5.0)])
      >>> X += np.random.default_rng(0).normal(scale=0.3, size=X.shape)
      >>> mb = MiniBatchKMeans(n_clusters=2, batch_size=32, random_state=0).fit(X)
      >>> sorted(np.bincount(mb.labels_).tolist())
      [100, 100]
    """

    def __init__(self, n_clusters=8, *, init="k-means++", batch_size=1024, max_steps=100,
                 max_no_improvement=10, reassignment_ratio=0.01, random_state=None,
                 chunk_size=None):
        self.n_clusters = n_clusters
        self.init = init
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.max_no_improvement = max_no_improvement
        self.reassignment_ratio = reassignment_ratio
        self.random_state = random_state
        self.chunk_size = chunk_size

    def fit(self, X, y=None, sample_weight=None):
        """Fit on ``X`` ``(n_samples, n_features)`` with optional ``sample_weight``."""
        X = self._validate_x(X, reset=True)
        w = self._validate_weights(sample_weight, X)
        k = _check_k(self.n_clusters, X.shape[0])
        init = self.init if isinstance(self.init, str) else np.asarray(self.init, X.dtype)
        key = _key(self.random_state)
        res = minibatch_kmeans(X, k, key=key, batch_size=self.batch_size,
                               max_steps=self.max_steps, init=init, weights=w,
                               reassignment_ratio=self.reassignment_ratio,
                               max_no_improvement=self.max_no_improvement,
                               chunk_size=self.chunk_size)
        self.cluster_centers_ = _np(res.centroids)
        self.labels_ = _np(res.labels, np.int32)
        self.inertia_ = float(res.inertia)
        self.n_steps_ = self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        self._n_features_out = k
        # a later partial_fit continues from here, each centre counting its cluster's weight
        counts = np.bincount(self.labels_, weights=None if w is None else w, minlength=k)
        self._stream = (self.cluster_centers_, counts.astype(X.dtype), 0, self.n_steps_,
                        _np(jax.random.key_data(jax.random.fold_in(key, 1))))
        if not self.converged_ and self.max_no_improvement is not None:
            _warn_not_converged(self, f"max_steps={self.max_steps} mini-batch steps reached "
                                f"before max_no_improvement={self.max_no_improvement}")
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """One mini-batch step on ``X`` (streaming), by
        [`minibatch_kmeans_update`][jaxclust.cluster.minibatch_kmeans_update].

        The first call (without a previous ``fit``) seeds the centres on ``X`` with
        [`kmeans_plusplus`][jaxclust.cluster.kmeans_plusplus] (key: ``split(key)[0]`` of
        ``random_state``'s key) or takes ``init``; every call then applies one update with
        the next key of ``split(key)[1]`` (``key, sub = split(key)``) for the low-count
        reassignment. After ``fit`` the stream continues from the fitted centres, each
        counting the weight of its training cluster. ``labels_`` and ``inertia_`` are those
        of the last batch at the updated centres; ``converged_`` is ``False`` (a stream has
        no stopping rule).
        """
        first = not hasattr(self, "_stream")
        X = self._validate_x(X, reset=first)
        w = self._validate_weights(sample_weight, X)
        if first:
            k = _check_k(self.n_clusters, X.shape[0])
            k_init, k_loop = jax.random.split(_key(self.random_state))
            if isinstance(self.init, str):
                if self.init != "k-means++":
                    raise ValueError(f"`init` must be 'k-means++' or centres of shape "
                                     f"({k}, {X.shape[1]}), got {self.init!r}.")
                c0 = kmeans_plusplus(X, k, key=k_init, weights=w)
            else:
                c0 = np.asarray(self.init, X.dtype)
            state = minibatch_kmeans_init(c0)
        else:
            c, counts, n_since, step, kd = self._stream
            state = MiniBatchKMeansState(jnp.asarray(c), jnp.asarray(counts),
                                         jnp.asarray(n_since, jnp.int32),
                                         jnp.asarray(step, jnp.int32))
            k_loop = jax.random.wrap_key_data(jnp.asarray(kd))
        k_loop, sub = jax.random.split(k_loop)
        state, _ = minibatch_kmeans_update(state, X, weights=w, key=sub,
                                           reassignment_ratio=self.reassignment_ratio)
        # plain NumPy (picklable), the key as its raw data
        self._stream = (_np(state.centroids), _np(state.counts), int(state.n_since_reassign),
                        int(state.step), _np(jax.random.key_data(k_loop)))
        self.cluster_centers_ = _np(state.centroids)
        lab, dist = _nearest(jnp.asarray(X), state.centroids)
        self.labels_ = _np(lab)
        self.inertia_ = float(jnp.sum(dist) if w is None else jnp.sum(jnp.asarray(w) * dist))
        self.n_steps_ = self.n_iter_ = int(state.step)
        self.converged_ = False
        self._n_features_out = state.centroids.shape[0]
        return self


class SinkhornKMeans(_Centroids):
    r"""Size-constrained k-means by entropic optimal transport, over
    [`jaxclust.cluster.sinkhorn_kmeans`][jaxclust.cluster.sinkhorn_kmeans].

    The training points are assigned to the centres by an entropic OT plan whose column
    masses are the prescribed ``sizes`` (uniform by default: equal clusters); the centres
    are the transport-weighted means. ``labels_`` is the argmax of the plan's rows and so
    respects the sizes. ``predict`` and ``transform`` on new data use the plain nearest
    centre (sizes are a property of a whole set, not of a point): ``predict`` on the
    training set may differ from ``labels_`` where the size constraint moved a point.

    Args:
      n_clusters: number of clusters.
      sizes: relative cluster sizes ``(n_clusters,)``, positive (default uniform).
      epsilon: entropic regularisation in units of squared distance (``None``: 5% of the
        standard deviation of the initial cost matrix).
      max_iter: outer (centre) iteration budget.
      tol: centre-shift tolerance, relative to ``sqrt(mean(var(X, axis=0)))``.
      sinkhorn_tol: L1 marginal tolerance of each inner Sinkhorn solve.
      sinkhorn_max_iter: iteration budget of each inner solve.
      random_state: ``None``, an int seed or a ``numpy.random.RandomState`` (k-means++
        seeding).

    Attributes:
      cluster_centers_: ``(n_clusters, n_features)``.
      labels_: size-constrained labels of the training points, int32.
      assignments_: conditional assignment probabilities ``(n_samples, n_clusters)``.
      transport_cost_: $\langle P, C\rangle$, the size-constrained soft inertia.
      n_iter_: outer iterations run.
      converged_: the centre shift met ``tol`` before ``max_iter``.
      n_features_in_: number of features seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import SinkhornKMeans
      >>> X = np.random.default_rng(0).normal(size=(60, 2))
      >>> sk = SinkhornKMeans(n_clusters=3, epsilon=0.1, random_state=0).fit(X)
      >>> np.round(sk.assignments_.sum(0)).tolist()  # equal sizes
      [20.0, 20.0, 20.0]
    """

    def __init__(self, n_clusters=8, *, sizes=None, epsilon=None, max_iter=50, tol=1e-5,
                 sinkhorn_tol=1e-6, sinkhorn_max_iter=2000, random_state=None):
        self.n_clusters = n_clusters
        self.sizes = sizes
        self.epsilon = epsilon
        self.max_iter = max_iter
        self.tol = tol
        self.sinkhorn_tol = sinkhorn_tol
        self.sinkhorn_max_iter = sinkhorn_max_iter
        self.random_state = random_state

    def fit(self, X, y=None, sample_weight=None):
        """Fit on ``X`` ``(n_samples, n_features)``; ``sample_weight`` are the point masses."""
        X = self._validate_x(X, reset=True)
        w = self._validate_weights(sample_weight, X)
        k = _check_k(self.n_clusters, X.shape[0])
        if self.epsilon is None and X.shape[0] == 1:
            raise ValueError("n_samples=1: the default epsilon is 5% of the spread of the "
                             "costs, which is 0 for one sample; pass epsilon (or more "
                             "samples).")
        sizes = None if self.sizes is None else np.asarray(self.sizes, X.dtype)
        res = sinkhorn_kmeans(X, k, key=_key(self.random_state), epsilon=self.epsilon,
                              sizes=sizes, weights=w, max_iter=self.max_iter, tol=self.tol,
                              sinkhorn_tol=self.sinkhorn_tol,
                              sinkhorn_max_iter=self.sinkhorn_max_iter)
        self.cluster_centers_ = _np(res.centroids)
        self.labels_ = _np(res.labels, np.int32)
        self.assignments_ = _np(res.assignments)
        self.transport_cost_ = float(res.loss)
        self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        self._n_features_out = k
        if not self.converged_:
            _warn_not_converged(self, f"max_iter={self.max_iter} outer iterations reached")
        return self


# ----------------------------------------------------------------------------- k-medoids


class KMedoids(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, _Base):
    r"""k-medoids (FasterPAM or PAM) as a scikit-learn estimator, over
    [`jaxclust.cluster.kmedoids`][jaxclust.cluster.kmedoids].

    Chooses ``n_clusters`` training points (medoids) minimising
    $\sum_i w_i \min_m d(x_m, x_i)$. Parameter names follow ``sklearn_extra``'s
    ``KMedoids``.

    With ``metric="precomputed"`` ``fit`` takes a square ``(n, n)`` dissimilarity matrix
    (``X[m, i]``: dissimilarity of point ``i`` to candidate medoid ``m``), and ``predict`` /
    ``transform`` take the ``(n_query, n_train)`` dissimilarities of new points to the
    training points; ``cluster_centers_`` is then ``None``.

    Args:
      n_clusters: number of medoids.
      metric: ``"euclidean"``, ``"sqeuclidean"``, ``"manhattan"``, ``"cosine"`` or
        ``"precomputed"``.
      method: ``"fasterpam"`` (eager swaps) or ``"pam"`` (best swap).
      init: ``"build"`` (greedy PAM BUILD, deterministic) or ``"random"``.
      max_iter: passes (FasterPAM) or swaps (PAM).
      random_state: ``None``, an int seed or a ``numpy.random.RandomState`` (used by
        ``init="random"``).

    Attributes:
      medoid_indices_: indices of the medoids into the training points, int32.
      cluster_centers_: the medoids ``X[medoid_indices_]`` (``None`` when precomputed).
      labels_: position in ``medoid_indices_`` of every point's nearest medoid, int32.
      inertia_: weighted sum of dissimilarities to the nearest medoid.
      n_iter_: passes (FasterPAM) or iterations (PAM) run.
      converged_: the last pass found no improving swap before ``max_iter``.
      n_features_in_: number of features (columns) seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import KMedoids
      >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.2], [5.0, 5.0], [5.1, 5.0]])
      >>> km = KMedoids(n_clusters=2).fit(X)
      >>> km.labels_.tolist(), km.predict([[4.0, 4.0]]).tolist()
      ([0, 0, 0, 1, 1], [1])
    """

    def __init__(self, n_clusters=8, *, metric="euclidean", method="fasterpam", init="build",
                 max_iter=100, random_state=None):
        self.n_clusters = n_clusters
        self.metric = metric
        self.method = method
        self.init = init
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y=None, sample_weight=None):
        """Fit on ``X`` (points, or a square dissimilarity matrix when precomputed)."""
        X = self._validate_x(X, reset=True)
        if self.metric == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(f"X must be a square (n, n) dissimilarity matrix with "
                             f"metric='precomputed', got shape {X.shape}.")
        w = self._validate_weights(sample_weight, X)
        k = _check_k(self.n_clusters, X.shape[0])
        res = kmedoids(X, k, key=_key(self.random_state), method=self.method, init=self.init,
                       max_iter=self.max_iter, metric=self.metric, weights=w)
        self.medoid_indices_ = _np(res.medoids, np.int32)
        self.cluster_centers_ = (None if self.metric == "precomputed"
                                 else np.array(X[self.medoid_indices_], copy=True))
        self.labels_ = _np(res.labels, np.int32)
        self.inertia_ = float(res.loss)
        self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        self._n_features_out = k
        if not self.converged_:
            _warn_not_converged(self, f"max_iter={self.max_iter} passes reached")
        return self

    def transform(self, X):
        """Dissimilarities of every row of ``X`` to every medoid, ``(n, n_clusters)``."""
        check_is_fitted(self)
        X = self._validate_x(X, reset=False)
        if self.metric == "precomputed":
            return np.array(X[:, self.medoid_indices_], copy=True)
        return _np(_dissimilarities_jit(jnp.asarray(X), jnp.asarray(self.cluster_centers_),
                                        metric=self.metric))

    def predict(self, X):
        """Position of the nearest medoid of every row of ``X`` (ties: lowest), ``(n,)``."""
        return np.argmin(self.transform(X), axis=1).astype(np.int32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.metric == "precomputed"
        tags.transformer_tags.preserves_dtype = _preserved()
        return tags


# ----------------------------------------------------------------------------- GMM


class GaussianMixture(DensityMixin, _Base):
    r"""Gaussian mixture fitted by EM, as a scikit-learn estimator, over
    [`jaxclust.cluster.gmm`][jaxclust.cluster.gmm].

    The EM updates, the $10\varepsilon$ floor on the component masses, ``reg_covar`` and the
    stopping rule on the change of the mean log-likelihood are scikit-learn's
    ``GaussianMixture``'s; ``n_init`` restarts run in parallel and the highest final
    log-likelihood wins.

    Args:
      n_components: number of mixture components.
      covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
      tol: threshold on the change of the mean log-likelihood.
      reg_covar: non-negative ridge added to the covariance diagonals.
      max_iter: EM iteration budget.
      n_init: restarts.
      init_params: ``"kmeans"`` or ``"random"`` (responsibilities).
      random_state: ``None``, an int seed or a ``numpy.random.RandomState``.

    Attributes:
      weights_: mixture weights ``(n_components,)``.
      means_: ``(n_components, n_features)``.
      covariances_: shaped as in scikit-learn for ``covariance_type``.
      precisions_cholesky_, precisions_: the Cholesky factors of the precision matrices and
        the precisions, as in scikit-learn (computed in NumPy from ``covariances_``).
      converged_: the tolerance was met before ``max_iter``.
      n_iter_: EM iterations of the best restart.
      lower_bound_: mean log-likelihood of the training data at the fitted parameters.
      n_features_in_: number of features seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import GaussianMixture
      >>> rng = np.random.default_rng(0)
      >>> X = np.concatenate([rng.normal(-4, 1, (60, 2)), rng.normal(4, 0.5, (40, 2))])
      >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
      >>> sorted(np.round(gm.weights_, 2).tolist()), gm.predict_proba(X).shape
      ([0.4, 0.6], (100, 2))
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state

    def fit(self, X, y=None, sample_weight=None):
        """Fit on ``X`` ``(n_samples, n_features)`` with optional ``sample_weight``."""
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then the most probable component of every training point."""
        return np.argmax(self._fit(X, sample_weight).responsibilities, axis=1).astype(np.int32)

    def _fit(self, X, sample_weight):
        X = self._validate_x(X, reset=True)
        w = self._validate_weights(sample_weight, X)
        k = _check_k(self.n_components, X.shape[0], "n_components")
        res = gmm(X, k, key=_key(self.random_state), covariance_type=self.covariance_type,
                  reg_covar=self.reg_covar, max_iter=self.max_iter, tol=self.tol,
                  init=self.init_params, n_init=self.n_init, weights=w)
        self.weights_ = _np(res.weights)
        self.means_ = _np(res.means)
        self.covariances_ = _np(res.covariances)
        self.precisions_cholesky_ = _precision_cholesky(self.covariances_,
                                                        self.covariance_type)
        self.precisions_ = _precisions(self.precisions_cholesky_, self.covariance_type)
        self.lower_bound_ = float(res.log_likelihood)
        self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        if not self.converged_:
            _warn_not_converged(self, f"max_iter={self.max_iter} EM iterations reached")
        return res

    def _log_prob(self, X):
        check_is_fitted(self)
        X = self._validate_x(X, reset=False)
        dt = self.means_.dtype
        return gmm_log_prob(X.astype(dt, copy=False), self.means_, self.covariances_,
                            self.weights_, covariance_type=self.covariance_type)

    def score_samples(self, X):
        """Log-density of every row of ``X`` under the mixture, ``(n,)``."""
        return _np(self._log_prob(X)[0])

    def score(self, X, y=None):
        """Mean log-density of the rows of ``X``."""
        return float(jnp.mean(self._log_prob(X)[0]))

    def predict_proba(self, X):
        """Posterior probability of each component for every row of ``X``, ``(n, k)``."""
        return _np(jnp.exp(self._log_prob(X)[1]))

    def predict(self, X):
        """Most probable component of every row of ``X``, ``(n,)``."""
        return _np(jnp.argmax(self._log_prob(X)[1], axis=1), np.int32)

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        cov = {"full": k * d * (d + 1) / 2, "diag": k * d, "tied": d * (d + 1) / 2,
               "spherical": k}[self.covariance_type]
        return int(cov + k * d + k - 1)

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        n = np.asarray(X).shape[0] if hasattr(X, "shape") else len(X)
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        n = np.asarray(X).shape[0] if hasattr(X, "shape") else len(X)
        return -2 * self.score(X) * n + 2 * self._n_parameters()


def _precision_cholesky(cov: np.ndarray, cov_type: str) -> np.ndarray:
    """Upper factors ``P`` with ``P P^T = Sigma^{-1}`` (scikit-learn's convention)."""
    if cov_type in ("diag", "spherical"):
        return 1.0 / np.sqrt(cov)
    c = cov[None] if cov_type == "tied" else cov
    eye = np.eye(c.shape[-1], dtype=c.dtype)
    out = np.stack([np.linalg.solve(np.linalg.cholesky(ci), eye).T for ci in c])
    return out[0] if cov_type == "tied" else out


def _precisions(pc: np.ndarray, cov_type: str) -> np.ndarray:
    if cov_type in ("diag", "spherical"):
        return pc * pc
    return pc @ np.swapaxes(pc, -1, -2)


# ----------------------------------------------------------------------------- transductive


class SpectralClustering(ClusterMixin, _Base):
    r"""Spectral clustering (normalised Laplacian, k-means on the embedding), over
    [`jaxclust.cluster.spectral`][jaxclust.cluster.spectral].

    Transductive, as scikit-learn's ``SpectralClustering``: ``fit`` / ``fit_predict`` only,
    no ``predict`` for new points.

    Args:
      n_clusters: number of clusters.
      affinity: ``"rbf"``, ``"knn"`` (symmetrised k-nearest-neighbour graph) or
        ``"precomputed"`` (``X`` is the ``(n, n)`` affinity).
      gamma: RBF inverse bandwidth; ``None``: $1 / (d\, \overline{\mathrm{var}}(X))$
        (scikit-learn's default is 1.0).
      n_neighbors: neighbours per point for ``"knn"``.
      n_components: embedding dimension (``None``: ``n_clusters``).
      row_norm: ``"degree"`` (scikit-learn's embedding), ``"row"`` (Ng–Jordan–Weiss) or
        ``"none"``.
      n_init: k-means restarts on the embedding.
      max_iter: Lloyd iteration budget per restart.
      tol: k-means relative tolerance.
      random_state: ``None``, an int seed or a ``numpy.random.RandomState``.

    Attributes:
      labels_: cluster of every training point, int32.
      embedding_: the spectral embedding ``(n_samples, n_components)``.
      eigenvalues_: the smallest eigenvalues of the normalised Laplacian, ascending.
      n_iter_: Lloyd iterations of the best k-means restart.
      converged_: that k-means run converged.
      n_features_in_: number of features seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import SpectralClustering
      >>> t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
      >>> ring = np.stack([np.cos(t), np.sin(t)], axis=1)
      >>> X = np.concatenate([ring, 4 * ring])  # two concentric circles
      >>> sc = SpectralClustering(2, affinity="knn", n_neighbors=5, random_state=0).fit(X)
      >>> len(set(sc.labels_[:40])), bool(sc.labels_[0] != sc.labels_[40])
      (1, True)
    """

    def __init__(self, n_clusters=8, *, affinity="rbf", gamma=None, n_neighbors=10,
                 n_components=None, row_norm="degree", n_init=10, max_iter=300, tol=1e-4,
                 random_state=None):
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.gamma = gamma
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.row_norm = row_norm
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit on ``X`` (points, or the affinity matrix when precomputed)."""
        X = self._validate_x(X, reset=True)
        if self.affinity == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(f"X must be a square (n, n) affinity matrix with "
                             f"affinity='precomputed', got shape {X.shape}.")
        k = _check_k(self.n_clusters, X.shape[0])
        res = spectral(X, k, key=_key(self.random_state), affinity=self.affinity,
                       gamma=self.gamma, n_neighbors=self.n_neighbors,
                       n_components=self.n_components, row_norm=self.row_norm,
                       n_init=self.n_init, max_iter=self.max_iter, tol=self.tol)
        self.labels_ = _np(res.labels, np.int32)
        self.embedding_ = _np(res.embedding)
        self.eigenvalues_ = _np(res.eigenvalues)
        self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        if not self.converged_:
            _warn_not_converged(self, f"k-means on the embedding reached max_iter="
                                f"{self.max_iter}")
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.affinity == "precomputed"
        return tags


class KMeansSDP(ClusterMixin, _Base):
    r"""The Peng–Wei k-means SDP relaxation (ADMM or Burer–Monteiro) with rounded labels,
    over [`jaxclust.sdp.kmeans_sdp`][jaxclust.sdp.kmeans_sdp].

    Transductive (``fit`` / ``fit_predict``): the SDP is posed on the training set.
    ``n_clusters = 1`` returns the relaxation's only feasible point $Z = \mathbf 1\mathbf
    1^\top / n$ without solving (``kmeans_sdp`` itself needs ``2 <= k < n``); otherwise
    ``n_clusters < n_samples``. ADMM forms dense ``n x n`` matrices (``n_samples <= 5000``).

    The flat parameters build the solver object of ``kmeans_sdp``
    ([`ADMM`][jaxclust.sdp.ADMM] or [`BurerMonteiro`][jaxclust.sdp.BurerMonteiro]); a
    parameter of the other method (``rho`` or ``adaptive_rho`` with ``method="bm"``,
    ``bm_options`` with ``method="admm"``) raises a ``ValueError`` at ``fit``.

    Args:
      n_clusters: number of clusters.
      method: ``"admm"`` or ``"bm"`` (Burer–Monteiro, no ``n x n`` matrix).
      rho: ADMM penalty (``None``: from the scale of the distances); ADMM only.
      adaptive_rho: residual balancing of ``rho`` (``None``: on); ADMM only.
      max_iter: iteration budget (``None``: the method's default).
      tol: tolerance of the method's stopping test.
      bm_options: dict of the other options of ``BurerMonteiro`` (``rank``, ``beta``,
        ``step``, ``check_every``, ``init``), or ``None``; BM only.
      random_state: ``None``, an int seed or a ``numpy.random.RandomState`` (rounding, BM
        initialisation).

    Attributes:
      labels_: rounded labels, int32.
      objective_: $\langle D, Z\rangle$.
      primal_residual_: as in ``KMeansSDPResult``.
      n_iter_: iterations run.
      converged_: the method's stopping test passed before ``max_iter``.
      Z_, dual_residual_, gap_: the SDP solution ``(n, n)`` and ``ADMMStats`` (ADMM only).
      factor_: the nonnegative factor ``U`` with ``Z = U U^T`` (BM only).
      n_features_in_: number of features seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import KMeansSDP
      >>> centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
      >>> X = np.repeat(centres, 10, axis=0) + np.random.default_rng(0).normal(size=(30, 2))
      >>> sdp = KMeansSDP(n_clusters=3, random_state=0).fit(X)
      >>> sdp.converged_, sorted(np.bincount(sdp.labels_).tolist())
      (True, [10, 10, 10])
    """

    def __init__(self, n_clusters=8, *, method="admm", rho=None, adaptive_rho=None,
                 max_iter=None, tol=1e-5, bm_options=None, random_state=None):
        self.n_clusters = n_clusters
        self.method = method
        self.rho = rho
        self.adaptive_rho = adaptive_rho
        self.max_iter = max_iter
        self.tol = tol
        self.bm_options = bm_options
        self.random_state = random_state

    def _solver(self):
        """The ``kmeans_sdp`` solver object of these parameters; a parameter that does not
        apply to ``method`` raises (it would otherwise be ignored)."""
        budget = {} if self.max_iter is None else {"max_iter": self.max_iter}
        if self.method == "admm":
            if self.bm_options:
                raise ValueError(f"`bm_options` does not apply to method='admm' (got "
                                 f"{self.bm_options!r}); use method='bm' or drop it.")
            opts = {"rho": self.rho, **budget}
            if self.adaptive_rho is not None:
                opts["adaptive_rho"] = self.adaptive_rho
            return ADMM(tol=self.tol, **opts)
        if self.method == "bm":
            for name in ("rho", "adaptive_rho"):
                if getattr(self, name) is not None:
                    raise ValueError(f"`{name}` does not apply to method='bm' (got "
                                     f"{getattr(self, name)!r}); it is an ADMM option: use "
                                     "method='admm' or leave it None.")
            opts = dict(self.bm_options or {})
            for name in ("tol", "max_iter"):
                if name in opts:
                    raise ValueError(f"`bm_options` must not hold {name!r}: it is the "
                                     f"estimator parameter `{name}`.")
            return BurerMonteiro(tol=self.tol, **budget, **opts)
        raise ValueError(f"`method` must be 'admm' or 'bm', got {self.method!r}.")

    def fit(self, X, y=None):
        """Solve the SDP on ``X`` ``(n_samples, n_features)`` and round it to labels."""
        solver = self._solver()
        X = self._validate_x(X, reset=True)
        k = _check_k(self.n_clusters, X.shape[0], sdp=True)
        if k == 1:
            return self._one_cluster(X)
        res = kmeans_sdp(X, k, solver=solver, key=_key(self.random_state))
        self.labels_ = _np(res.labels, np.int32)
        self.objective_ = float(res.objective)
        self.primal_residual_ = float(res.primal_residual)
        if isinstance(solver, ADMM):
            self.Z_ = _np(res.stats.Z)
            self.dual_residual_ = float(res.stats.dual_residual)
            self.gap_ = float(res.stats.gap)
        else:
            self.factor_ = _np(res.stats.factor)
        self.n_iter_ = int(res.n_iters)
        self.converged_ = bool(res.converged)
        if not self.converged_:
            _warn_not_converged(self, f"residuals above tol={self.tol} after {self.n_iter_} "
                                "iterations")
        return self

    def _one_cluster(self, X):
        """k = 1: ``Z = 1 1^T / n`` is the only feasible point (``Z 1 = 1``, ``tr Z = 1``,
        ``Z`` PSD force it), so nothing is solved."""
        n = X.shape[0]
        self.labels_ = np.zeros(n, np.int32)
        if self.method == "admm":
            self.Z_ = np.full((n, n), 1.0 / n, X.dtype)
            self.dual_residual_ = self.gap_ = 0.0
        else:
            self.factor_ = np.full((n, 1), 1.0 / math.sqrt(n), X.dtype)
        xc = X - X.mean(axis=0, dtype=np.float64)
        self.objective_ = float(2.0 * np.sum(xc * xc))  # <D, 1 1^T / n>
        self.primal_residual_ = 0.0
        self.n_iter_, self.converged_ = 0, True
        return self


class LASDP(ClusterMixin, _Base):
    r"""Iterative likelihood-adjusted SDP (iLA-SDP) for Gaussian clusters of different shapes,
    over [`jaxclust.sdp.la_sdp`][jaxclust.sdp.la_sdp].

    Transductive (``fit`` / ``fit_predict``). The initial partition is the rounded k-means
    SDP (Burer–Monteiro). ``n_clusters = 1`` is solved in closed form (one Gaussian: the
    only feasible $Z = \mathbf 1\mathbf 1^\top / n$, the sample covariance plus
    ``reg_covar``; ``la_sdp`` itself needs ``2 <= k < n``); otherwise
    ``n_clusters < n_samples``.

    Args:
      n_clusters: number of clusters.
      covariance_type: ``"full"``, ``"diag"`` or ``"spherical"``.
      reg_covar: added to the covariances' diagonals.
      estimate_weights: include the cluster proportions in the likelihood.
      rank: columns of each factor.
      max_outer: SDP + covariance rounds.
      max_iter: SDP iterations per round.
      tol: SDP tolerance.
      tol_outer: relative change of the objective between rounds at which to stop.
      beta: augmented Lagrangian penalty.
      step: step as a fraction of the curvature bound.
      check_every: SDP iterations between convergence checks.
      random_state: ``None``, an int seed or a ``numpy.random.RandomState``.

    Attributes:
      labels_: rounded labels, int32.
      memberships_: soft group weights $(Z_k\mathbf 1)_i$, ``(n_samples, n_clusters)``.
      means_, covariances_, proportions_: the fitted Gaussian parameters.
      objective_: the iLA-SDP objective (nats).
      log_likelihood_: classification log-likelihood of ``labels_``.
      n_iter_: outer rounds run; ``n_inner_``: SDP iterations of the last round.
      converged_: labels stable, objective within ``tol_outer`` and the last SDP step
        converged.
      n_features_in_: number of features seen in ``fit``.

    Example:
      >>> import numpy as np
      >>> from jaxclust.sklearn import LASDP
      >>> rng = np.random.default_rng(0)
      >>> X = np.concatenate([3.0 * rng.normal(size=(40, 2)),
      ...                     [6.0, 0.0] + 0.3 * rng.normal(size=(20, 2))])
      >>> la = LASDP(n_clusters=2, random_state=1).fit(X)
      >>> la.labels_.shape, la.memberships_.shape
      ((60,), (60, 2))
    """

    def __init__(self, n_clusters=8, *, covariance_type="full", reg_covar=1e-6,
                 estimate_weights=True, rank=2, max_outer=20, max_iter=20_000, tol=1e-6,
                 tol_outer=1e-4, beta=1.0, step=1.0, check_every=10, random_state=None):
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.estimate_weights = estimate_weights
        self.rank = rank
        self.max_outer = max_outer
        self.max_iter = max_iter
        self.tol = tol
        self.tol_outer = tol_outer
        self.beta = beta
        self.step = step
        self.check_every = check_every
        self.random_state = random_state

    def fit(self, X, y=None):
        """Run iLA-SDP on ``X`` ``(n_samples, n_features)``."""
        X = self._validate_x(X, reset=True)
        k = _check_k(self.n_clusters, X.shape[0], sdp=True)
        if k == 1:
            return self._one_cluster(X)
        res = la_sdp(X, k, key=_key(self.random_state), covariance_type=self.covariance_type,
                     reg_covar=self.reg_covar, estimate_weights=self.estimate_weights,
                     rank=self.rank, max_outer=self.max_outer, max_iter=self.max_iter,
                     tol=self.tol, tol_outer=self.tol_outer, beta=self.beta, step=self.step,
                     check_every=self.check_every)
        self.labels_ = _np(res.labels, np.int32)
        self.memberships_ = _np(res.weights)
        self.means_ = _np(res.means)
        self.covariances_ = _np(res.covariances)
        self.proportions_ = _np(res.proportions)
        self.objective_ = float(res.objective)
        self.log_likelihood_ = float(res.log_likelihood)
        self.n_iter_ = int(res.n_outer)
        self.n_inner_ = int(res.n_inner)
        self.converged_ = bool(res.converged)
        if not self.converged_:
            _warn_not_converged(self, f"not converged after {self.n_iter_} outer rounds "
                                f"(max_outer={self.max_outer})")
        return self

    def _one_cluster(self, X):
        r"""k = 1: ``Z = 1 1^T / n`` is the only feasible point; the covariance step is the
        sample covariance (divided by n) plus ``reg_covar``, and the objective is
        $F = -2\ell - nd\log 2\pi$ at that partition."""
        n, d = X.shape
        x = X.astype(np.float64)
        mean = x.mean(axis=0)
        xc = x - mean
        s = xc.T @ xc / n
        if self.covariance_type == "diag":
            s = np.diag(np.diag(s))
        elif self.covariance_type == "spherical":
            s = np.trace(s) / d * np.eye(d)
        cov = s + self.reg_covar * np.eye(d)
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, xc.T)
        logdet = 2.0 * np.sum(np.log(np.diag(chol)))
        ll = -0.5 * (np.sum(z * z) + n * (logdet + d * math.log(2 * math.pi)))
        self.labels_ = np.zeros(n, np.int32)
        self.memberships_ = np.ones((n, 1), X.dtype)
        self.means_ = mean[None].astype(X.dtype)
        self.covariances_ = cov[None].astype(X.dtype)
        self.proportions_ = np.ones(1, X.dtype)
        self.log_likelihood_ = float(ll)
        self.objective_ = float(-2.0 * ll - n * d * math.log(2 * math.pi))
        self.n_iter_, self.n_inner_, self.converged_ = 0, 0, True
        return self
