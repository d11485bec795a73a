r"""Choosing the number of clusters: k-means for a range of k in one batched program, or a
Gaussian mixture per k, scored by the inertia / log-likelihood, BIC and AIC (mixtures), the
silhouette, Calinski-Harabasz and Davies-Bouldin."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.precision import HIGHEST
from .._core.programs import EagerProgram
from .._core.restarts import best_restart
from .._core.results import with_summary_repr
from ..metrics.clustering import label_scores_unvalidated
from .lloyd import _validate, kmeans_plusplus
from .mixture import gmm, gmm_n_parameters

__all__ = ["SelectKResult", "select_k"]

CRITERIA = ("silhouette", "calinski_harabasz", "davies_bouldin", "bic", "aic")
MODELS = ("kmeans", "gmm")
_LOWER_IS_BETTER = ("davies_bouldin", "bic", "aic")


@with_summary_repr
class SelectKResult(NamedTuple):
    r"""Result of [`select_k`][jaxclust.cluster.select_k] (a pytree); one row per candidate k.

    Attributes:
      k_values: the candidate numbers of clusters, shape ``(K,)``.
      objective: for k-means the inertia of the best restart for every k (minimised); for a
        mixture its negative log-likelihood $-\sum_i \log p(x_i)$ (minimised by EM);
        shape ``(K,)``; also readable as ``inertia``.
      silhouette: mean silhouette (higher is better), shape ``(K,)``.
      calinski_harabasz: Calinski-Harabasz score (higher is better), shape ``(K,)``.
      davies_bouldin: Davies-Bouldin index (lower is better), shape ``(K,)``.
      labels: the clustering for every k, shape ``(K, n)``, labels in ``[0, k)`` (for a
        mixture the most responsible component).
      centroids: centres (mixture: component means) padded to ``k_max`` rows (rows
        ``>= k`` are zero), ``(K, k_max, d)``.
      converged: Lloyd's iterations (EM for a mixture) met ``tol`` before ``max_iter``
        (best restart), ``(K,)``.
      bic: the mixture's BIC ([`gmm_bic`][jaxclust.cluster.gmm_bic]; lower is better),
        ``(K,)``; NaN for k-means.
      aic: the mixture's AIC ([`gmm_aic`][jaxclust.cluster.gmm_aic]), ``(K,)``; NaN for
        k-means.

    The three label-based scores are NaN for a k whose clustering has fewer than 2 or more
    than ``n - 1`` non-empty clusters (where they are undefined).
    """

    k_values: Int[Array, " K"]
    objective: Float[Array, " K"]
    silhouette: Float[Array, " K"]
    calinski_harabasz: Float[Array, " K"]
    davies_bouldin: Float[Array, " K"]
    labels: Int[Array, "K n"]
    centroids: Float[Array, "K k_max d"]
    converged: Bool[Array, " K"]
    bic: Float[Array, " K"]
    aic: Float[Array, " K"]

    @property
    def inertia(self) -> Float[Array, " K"]:
        """Read-only alias of ``objective`` (the k-means inertia of every k)."""
        return self.objective

    def best(self, criterion: str = "silhouette") -> Int[Array, ""]:
        """The k chosen by ``criterion``: the largest silhouette or Calinski-Harabasz
        score, or the smallest Davies-Bouldin index, BIC or AIC (NaN entries never win;
        BIC / AIC exist for ``model="gmm"`` only)."""
        if criterion not in CRITERIA:
            raise ValueError(f"`criterion` must be one of {CRITERIA}, got {criterion!r}.")
        v = getattr(self, criterion)
        if criterion in ("bic", "aic"):
            v = checks.ensure(v, jnp.all(jnp.isnan(v)), f"`criterion={criterion!r}` needs a "
                              "mixture: this result has no BIC / AIC (all NaN: it comes from "
                              "model=\"kmeans\"); call select_k(..., model=\"gmm\").")
        v = -v if criterion in _LOWER_IS_BETTER else v
        return self.k_values[jnp.argmax(jnp.where(jnp.isnan(v), -jnp.inf, v))]


def _masked_lloyd(x, c0, active, max_iter, tol_abs):
    """Lloyd's iterations with the centres of ``~active`` switched off (never assigned);
    an empty active cluster keeps its centre. Stops when the squared centre shift is at
    most ``tol_abs`` (scikit-learn's rule)."""
    k_max = c0.shape[0]

    def assign(c):
        d = jnp.sum(jnp.square(x[:, None, :] - c[None, :, :]), axis=-1)
        d = jnp.where(active[None, :], d, jnp.inf)
        return jnp.argmin(d, axis=1), jnp.min(d, axis=1)

    def update(c):
        lab, _ = assign(c)
        onehot = jax.nn.one_hot(lab, k_max, dtype=x.dtype)
        cnt = jnp.sum(onehot, axis=0)
        new = jnp.matmul(onehot.T, x, precision=HIGHEST) / jnp.maximum(cnt, 1.0)[:, None]
        return jnp.where(((cnt > 0) & active)[:, None], new, c)

    def cond(s):
        _, shift, it = s
        return (it < max_iter) & (shift > tol_abs)

    def body(s):
        c, _, it = s
        new = update(c)
        return new, jnp.sum(jnp.square(new - c)), it + 1

    c, shift, it = jax.lax.while_loop(cond, body, (c0, jnp.asarray(jnp.inf, x.dtype),
                                                   jnp.int32(0)))
    lab, d2 = assign(c)
    converged = (shift <= tol_abs) & jnp.all(jnp.isfinite(c))
    return jnp.where(active[:, None], c, 0.0), lab.astype(jnp.int32), jnp.sum(d2), converged


def _select_fn(x, key, tol, *, k_values, n_init, max_iter):
    n = x.shape[0]
    k_max = max(k_values)
    ks = jnp.asarray(k_values, jnp.int32)
    trials = 2 + int(math.log(k_max))
    keys = jax.random.split(key, n_init)
    # one greedy k-means++ seeding of k_max centres per restart: its first k centres are the
    # same procedure's seeding for k (sequential draws, same number of local trials)
    seeds = jax.vmap(lambda kk: kmeans_plusplus(x, k_max, key=kk, n_local_trials=trials))(keys)
    active = jnp.arange(k_max)[None, :] < ks[:, None]  # (K, k_max)
    tol_abs = tol * jnp.mean(jnp.var(x, axis=0))
    run = jax.vmap(jax.vmap(_masked_lloyd, in_axes=(None, None, 0, None, None)),
                   in_axes=(None, 0, None, None, None))  # (n_init, K)
    c, lab, inertia, conv = run(x, seeds, active, max_iter, tol_abs)
    best = best_restart(inertia, axis=0)  # (K,)
    pick = jax.tree_util.tree_map(
        lambda a: jnp.take_along_axis(
            a, best.reshape((1, -1) + (1,) * (a.ndim - 2)), axis=0)[0], (c, lab, inertia, conv))
    c, lab, inertia, conv = pick
    sil, ch, db, n_clusters = jax.vmap(
        lambda lb: label_scores_unvalidated(x, lb, k_max))(lab)
    ok = (n_clusters >= 2) & (n_clusters <= n - 1)
    nan = jnp.asarray(jnp.nan, x.dtype)
    no_ic = jnp.full(ks.shape, jnp.nan, x.dtype)
    return SelectKResult(ks, inertia, jnp.where(ok, sil, nan), jnp.where(ok, ch, nan),
                         jnp.where(ok, db, nan), lab, c, conv, no_ic, no_ic)


def _gmm_row_fn(x, r, *, covariance_type, k_max):
    """One fitted k's row: negative log-likelihood, BIC, AIC, labels, padded means (one
    compiled program per k instead of eager op-by-op dispatch).

    The fit's ``objective`` is already the mean log-likelihood of ``x`` under the returned
    parameters (unweighted here), so BIC and AIC are :func:`gmm_bic` / :func:`gmm_aic`
    without their second pass over the data (and without tracing their input checks: the
    parameters are the fit's own): equal to them up to float32 rounding of the sum, and to
    scikit-learn's ``bic`` / ``aic`` on the same parameters to 1e-5 (tests/cluster/
    test_select.py)."""
    n, d = x.shape
    k = r.means.shape[0]
    nll = -n * r.objective
    p = gmm_n_parameters(k, d, covariance_type)
    return (nll, 2.0 * nll + float(p * np.log(n)), 2.0 * nll + 2.0 * p,
            jnp.argmax(r.responsibilities, axis=1).astype(jnp.int32),
            jnp.zeros((k_max, d), x.dtype).at[:k].set(r.means), r.converged)


def _label_scores_fn(x, labels, *, k_max):
    n = x.shape[0]
    sil, ch, db, n_clusters = jax.vmap(lambda lb: label_scores_unvalidated(x, lb, k_max))(labels)
    ok = (n_clusters >= 2) & (n_clusters <= n - 1)
    nan = jnp.asarray(jnp.nan, x.dtype)
    return jnp.where(ok, sil, nan), jnp.where(ok, ch, nan), jnp.where(ok, db, nan)


# one program each per eager call, compiled with the quick XLA options for small problems on
# CPU (_core.programs; work = the entries of the problem's largest arrays); under jit the
# caller's program. The doctest of select_k (60 points, 4 + 4 candidates) took 7-9 s of a
# test run before, most of it compiling these with the default options.
_select = EagerProgram(_select_fn, ("k_values", "n_init", "max_iter"))
_gmm_row = EagerProgram(_gmm_row_fn, ("covariance_type", "k_max"))
_label_scores = EagerProgram(_label_scores_fn, "k_max")


def _select_gmm(x, key, *, k_values, covariance_type, n_init, max_iter, tol, reg_covar):
    """One EM fit per k (the number of components fixes the parameter shapes), each with the
    same ``key``: ``gmm(x, k, key=key, ...)`` with these options refits any of them."""
    k_max = max(k_values)
    rows = [_gmm_row(x.size * k, x, gmm(x, k, key=key, covariance_type=covariance_type,
                                         n_init=n_init, max_iter=max_iter, tol=tol,
                                         reg_covar=reg_covar),
                     covariance_type=covariance_type, k_max=k_max) for k in k_values]
    nll, bic, aic, lab, means, conv = (jnp.stack(t) for t in zip(*rows))
    sil, ch, db = _label_scores(x.shape[0] * k_max * len(k_values), x, lab, k_max=k_max)
    return SelectKResult(jnp.asarray(k_values, jnp.int32), nll, sil, ch, db, lab, means, conv,
                         bic, aic)


def _k_values(k_values) -> tuple[int, ...]:
    """``k_values`` as a tuple of Python ints: a non-empty sequence of Python / NumPy ints
    or a concrete 1-D integer array (static: it fixes the shapes of the fits)."""
    what = ("`k_values` must be a non-empty sequence of ints (Python / NumPy ints or a 1-D "
            "integer array), e.g. (2, 3, 4, 5)")
    if isinstance(k_values, (str, bytes)):
        raise ValueError(f"{what}; got the string {k_values!r}.")
    if hasattr(k_values, "dtype") and hasattr(k_values, "ndim"):
        if checks.is_traced(k_values):
            raise ValueError(f"{what}; got a traced array: the candidates fix the shapes of "
                             "the fits, pass them as static values.")
        arr = np.asarray(k_values)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what}; got an array of shape {arr.shape} and dtype "
                             f"{arr.dtype}.")
        return tuple(int(k) for k in arr.tolist())
    try:
        items = list(k_values)
    except TypeError:
        raise ValueError(f"{what}; got {type(k_values).__name__}.") from None
    if not items or not all(checks.is_int(k) for k in items):
        raise ValueError(f"{what}; got {k_values!r}.")
    return tuple(int(k) for k in items)


def select_k(
    x: Float[Array, "n d"],
    k_values,
    *,
    key: PRNGKeyArray,
    model: str = "kmeans",
    covariance_type: str | None = None,
    n_init: int = 4,
    max_iter: int = 300,
    tol: float | None = None,
    reg_covar: float | None = None,
) -> SelectKResult:
    r"""Fit k-means or a Gaussian mixture for every candidate k and report model-selection
    criteria.

    **k-means** (``model="kmeans"``): all candidates run in **one** batched program: the
    centres are padded to $k_{\max} = \max(\text{k\_values})$ rows and a mask switches off
    the rows $\ge k$, so ``vmap`` runs every k (and every restart) side by side. Each restart
    seeds $k_{\max}$ centres by greedy k-means++ (with $2 + \lfloor\ln k_{\max}\rfloor$
    local trials); the first $k$ of them are k-means++ for $k$ (the draws are sequential).
    Lloyd's iterations then run to scikit-learn's tolerance (squared centre shift $\le$
    ``tol`` times the mean feature variance); an emptied cluster keeps its centre
    (scikit-learn would relocate it). For every k the restart of least inertia is kept.

    **Gaussian mixture** (``model="gmm"``): one [`gmm`][jaxclust.cluster.gmm] fit per k, each
    with ``n_init`` k-means-initialised restarts (vmapped inside the fit) and the same
    ``key``, so ``gmm(x, k, key=key, covariance_type=..., n_init=..., max_iter=...,
    tol=..., reg_covar=...)`` refits the chosen k exactly (its covariances are not
    returned). The k loop is not a ``vmap``: the number of components fixes the shapes of
    the parameters, and a padded mixture with switched-off components is not the same EM
    (the $10\varepsilon$ floor on the component mass keeps "empty" components alive); one
    program per k is compiled. Scored by
    $\mathrm{BIC} = -2\sum_i \log p(x_i) + p \log n$ and $\mathrm{AIC} = -2\sum_i \log
    p(x_i) + 2p$ ([`gmm_bic`][jaxclust.cluster.gmm_bic], [`gmm_aic`][jaxclust.cluster.gmm_aic]:
    scikit-learn's ``GaussianMixture.bic`` / ``aic`` on the same parameters) and by the
    label scores of the most responsible component.

    Both models report [`silhouette`][jaxclust.metrics.silhouette] ($O(n^2 d)$),
    [`calinski_harabasz`][jaxclust.metrics.calinski_harabasz] and
    [`davies_bouldin`][jaxclust.metrics.davies_bouldin] of each k's labels;
    ``result.best(criterion)`` picks a k.

    Args:
      x: points ``(n, d)``.
      k_values: candidate numbers of clusters (static: a sequence of ints; k-means: in
        ``[2, n - 1]``, where the label-based scores are defined; mixture: in ``[1, n]``,
        the label scores being NaN for k = 1 and k = n).
      key: PRNG key of the seeding.
      model: ``"kmeans"`` or ``"gmm"`` (static).
      covariance_type: the mixture's ``"full"`` (default), ``"tied"``, ``"diag"`` or
        ``"spherical"`` (static; ``model="gmm"`` only).
      n_init: restarts per k (static).
      max_iter: Lloyd / EM iteration budget (static).
      tol: k-means: relative tolerance (scikit-learn's ``tol``, default ``1e-4``); mixture:
        the change of the mean log-likelihood (default ``1e-3``, scikit-learn's).
      reg_covar: the mixture's covariance ridge (default ``1e-6``; ``model="gmm"`` only).

    Returns:
      A [`SelectKResult`][jaxclust.cluster.SelectKResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import select_k
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(i), (20, 2)) + 6.0 * i
      ...                      for i in range(3)])
      >>> res = select_k(x, (2, 3, 4, 5), key=jax.random.key(0))
      >>> [int(res.best(c)) for c in ("silhouette", "calinski_harabasz", "davies_bouldin")]
      [3, 3, 3]
      >>> g = select_k(x, (1, 2, 3, 4), key=jax.random.key(0), model="gmm",
      ...              covariance_type="spherical")
      >>> int(g.best("bic")), int(g.best("aic"))
      (3, 3)

    References:
      Rousseeuw (1987); Calinski and Harabasz (1974); Davies and Bouldin (1979): see the
      metrics. Arthur and Vassilvitskii, *k-means++*, SODA 2007. Schwarz (1978) and Akaike
      (1974): see [`gmm_bic`][jaxclust.cluster.gmm_bic] and
      [`gmm_aic`][jaxclust.cluster.gmm_aic].
    """
    if model not in MODELS:
        raise ValueError(f"`model` must be one of {MODELS}, got {model!r}.")
    if model == "kmeans":
        for name, value in (("covariance_type", covariance_type), ("reg_covar", reg_covar)):
            if value is not None:
                raise ValueError(f"`{name}` applies to model=\"gmm\" only; k-means has no "
                                 "covariances (drop it, or pass model=\"gmm\").")
    ks = _k_values(k_values)
    x, _ = _validate(x, 1, None)
    n = x.shape[0]
    lo, hi, why = ((2, n - 1, "the silhouette and the other scores are undefined outside")
                   if model == "kmeans" else (1, n, "a mixture needs 1 <= k <= n"))
    if min(ks) < lo or max(ks) > hi:
        raise ValueError(f"`k_values` must lie in [{lo}, {'n - 1' if hi == n - 1 else 'n'}] "
                         f"= [{lo}, {hi}] ({why}), got {ks}.")
    checks.check_int(n_init, "n_init")
    checks.check_int(max_iter, "max_iter")
    checks.check_key(key)
    if tol is None:
        tol = 1e-4 if model == "kmeans" else 1e-3
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol >= 0):
        raise ValueError(f"`tol` must be a number >= 0, got {tol!r}.")
    if model == "gmm":
        return _select_gmm(x, key, k_values=ks, covariance_type=covariance_type or "full",
                           n_init=n_init, max_iter=max_iter, tol=tol,
                           reg_covar=1e-6 if reg_covar is None else reg_covar)
    return _select(x.size * max(ks) * len(ks) * n_init, x, key, jnp.asarray(tol, x.dtype),
                   k_values=ks, n_init=n_init, max_iter=max_iter)
