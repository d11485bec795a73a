r"""FastCLARA: k-medoids for n where the n x n dissimilarity matrix does not fit, by
FasterPAM on random subsamples (Kaufman and Rousseeuw's CLARA with FasterPAM inside,
Schubert and Rousseeuw 2021)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._core import checks
from .medoids import (
    METRICS,
    KMedoidsResult,
    _build,
    _dissimilarity,
    _fasterpam,
    _predict_dissimilarity,
)

__all__ = ["fastclara"]


def _sample(key, n, s, k, best):
    """``s`` distinct indices: the ``k`` current best medoids first, then ``s - k`` other
    points uniformly at random (Gumbel top-k over the points that are not medoids)."""
    score = jax.random.gumbel(key, (n,))
    score = score.at[best].set(-jnp.inf)
    _, others = jax.lax.top_k(score, s - k)
    return jnp.concatenate([best, others.astype(jnp.int32)])


@partial(jax.jit, static_argnames=("k", "n_samples", "sample_size", "max_iter", "metric"))
def _fastclara(x, key, *, k, n_samples, sample_size, max_iter, metric):
    n = x.shape[0]
    k0, key = jax.random.split(key)
    first = jax.random.permutation(k0, n)[:k].astype(jnp.int32)

    def full_loss(medoids):
        d = _predict_dissimilarity(x, x[medoids], metric)  # (n, k): O(n k) memory
        return jnp.argmin(d, axis=1).astype(jnp.int32), jnp.sum(jnp.min(d, axis=1))

    def step(carry, kr):
        best, best_loss, it, swaps, conv = carry
        idx = _sample(kr, n, sample_size, k, best)
        # the search picks indices (no gradient); the loss below is differentiable in x
        d = jax.lax.stop_gradient(_dissimilarity(x[idx], metric))
        s, its, n_swaps, ok = _fasterpam(d, None, _build(d, None, k), max_iter)
        cand = idx[s.medoids]
        _, loss = full_loss(cand)
        better = loss < best_loss
        return (jnp.where(better, cand, best), jnp.where(better, loss, best_loss),
                it + its, swaps + n_swaps, conv & ok), loss

    init = (first, jnp.asarray(jnp.inf, x.dtype), jnp.int32(0), jnp.int32(0),
            jnp.asarray(True))
    (best, _, it, swaps, conv), _ = jax.lax.scan(step, init,
                                                 jax.random.split(key, n_samples))
    labels, loss = full_loss(best)
    # a medoid is its own nearest medoid (ties with a duplicate point aside)
    labels = labels.at[best].set(jnp.arange(k, dtype=jnp.int32))
    return KMedoidsResult(best, labels, loss, it, swaps, conv & jnp.isfinite(loss))


def fastclara(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    n_samples: int = 5,
    sample_size: int | None = None,
    max_iter: int = 100,
    metric: str = "euclidean",
) -> KMedoidsResult:
    r"""k-medoids on large data by FastCLARA (FasterPAM on random subsamples).

    Repeats ``n_samples`` times: draw ``sample_size`` points made of the current best
    medoids and distinct random others, run BUILD + FasterPAM
    ([`kmedoids`][jaxclust.cluster.kmedoids]) on their ``s x s`` dissimilarities, and keep
    the medoids if their loss $\sum_i \min_{m} d(x_i, x_m)$ **on all points** (computed in
    ``O(n k)`` memory) is the lowest so far. No ``n x n`` matrix is formed: memory is
    ``O(s^2 + n k)``, so ``n`` can be far beyond what `kmedoids` holds. The result is
    random (through ``key``); its loss is at least that of a full FasterPAM run.

    Args:
      x: points ``(n, d)``.
      k: number of medoids (static).
      key: PRNG key of the subsamples.
      n_samples: number of subsamples (static).
      sample_size: points per subsample (static), default ``min(n, 80 + 4 k)``
        (the FastCLARA setting of Schubert and Rousseeuw); at least ``k + 1``.
      max_iter: FasterPAM passes per subsample (static).
      metric: ``"euclidean"``, ``"sqeuclidean"``, ``"manhattan"`` or ``"cosine"`` (static).

    Returns:
      A [`KMedoidsResult`][jaxclust.cluster.KMedoidsResult]: ``medoids`` index ``x``,
      ``labels`` and ``objective`` are over all points; ``n_iters`` / ``n_swaps`` sum over
      the subsamples; ``converged``: every subsample's FasterPAM converged and the loss is
      finite.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import fastclara
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (500, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (500, 2)) - 5.0])
      >>> res = fastclara(x, 2, key=jax.random.key(2))
      >>> sorted(jnp.bincount(res.labels).tolist()), bool(res.converged)
      ([500, 500], True)

    References:
      Kaufman and Rousseeuw, *Clustering large data sets*, 1986 (CLARA); Schubert and
      Rousseeuw, *Fast and eager k-medoids clustering: O(k) runtime improvement of the
      PAM, CLARA, and CLARANS algorithms*, Information Systems 101 (2021).
    """
    if metric not in METRICS or metric == "precomputed":
        raise ValueError(f"`metric` must be one of {METRICS[:-1]} (fastclara never forms "
                         f"the full matrix, so not 'precomputed'), got {metric!r}.")
    xs = checks.as_float_array(x, "x")
    checks.check_points(xs, "x")
    xs = checks.check_finite(xs.astype(jnp.promote_types(xs.dtype, jnp.float32)), "x")
    n = xs.shape[0]
    checks.check_num_clusters(k, n, rows_of="x")
    checks.check_int(n_samples, "n_samples")
    checks.check_int(max_iter, "max_iter")
    if sample_size is None:
        sample_size = min(n, 80 + 4 * k)
    checks.check_int(sample_size, "sample_size", low=k + 1, high=n,
                     bounds=f"in [k + 1, n] = [{k + 1}, {n}]")
    checks.check_key(key)
    return _fastclara(xs, key, k=k, n_samples=n_samples, sample_size=sample_size,
                      max_iter=max_iter, metric=metric)
