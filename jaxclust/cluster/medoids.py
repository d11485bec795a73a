"""k-medoids: PAM BUILD seeding, eager FasterPAM swaps and classic PAM swaps."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.costs import pairwise_cost, safe_sqrt
from .._core.fixed_point import sequential_vmap
from .._core.programs import EagerProgram
from .._core.results import with_summary_repr

__all__ = ["KMedoidsResult", "kmedoids", "kmedoids_predict", "pam_build"]

METRICS = ("euclidean", "sqeuclidean", "manhattan", "cosine", "precomputed")
METHODS = ("fasterpam", "pam")
# candidates evaluated together per loop step. FasterPAM restarts after every swap (the
# candidates after the swapped one in a block are evaluated again), so large blocks waste
# work there, while small ones pay the loop's per-step overhead: measured on CPU (64
# problems, k = 4, one after another), blocks of 8 run the search 1.5-2x faster than
# blocks of 2 for n = 64 ... 1024 (e.g. n = 256: 13.8 vs 28.6 ms) and alike at n = 5000,
# k = 50 (111 vs 109 ms; n = 500, k = 50: 2.1 vs 3.3 ms); 16 is within 5% of 8 at n = 64
# and 17% slower at n = 256. The swaps made do not depend on it (test_kmedoids_blocks.py).
# PAM scans all candidates before it swaps, so larger blocks amortise the loop overhead.
_EAGER_BLOCK = 8
_PAM_BLOCK = 32


@with_summary_repr
class KMedoidsResult(NamedTuple):
    """Result of [`kmedoids`][jaxclust.cluster.kmedoids] (a pytree).

    Attributes:
      medoids: indices of the ``k`` medoids into the ``n`` points, shape ``(k,)``, int32.
      labels: for every point the position (``0..k-1``) in ``medoids`` of its nearest medoid,
        shape ``(n,)``, int32 (exact ties go to the lower position).
      objective: $\\sum_i w_i\\, d(x_{m(i)}, x_i)$, the (weighted) sum of dissimilarities to
        the nearest medoid (minimised). Differentiable with respect to ``x`` and ``weights``
        at fixed medoids. Also readable as ``loss``.
      n_iters: ``"fasterpam"``: passes over the candidates (as the reference implementation
        counts them); ``"pam"``: iterations, i.e. swaps + 1 unless ``max_iter`` was hit.
      n_swaps: swaps performed.
      converged: the last pass (or iteration) found no improving swap before ``max_iter``,
        and ``loss`` is finite.
    """

    medoids: Int[Array, " k"]
    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    n_iters: Int[Array, ""]
    n_swaps: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def loss(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


# ----------------------------------------------------------------------------- helpers
def _manhattan(x):
    """``sum_d |x_id - x_jd|``, accumulated one coordinate at a time (``O(n^2)`` memory)."""
    n = x.shape[0]

    def add(t, acc):
        col = jax.lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False)
        return acc + jnp.abs(col[:, None] - col[None, :])

    return jax.lax.fori_loop(0, x.shape[1], add, jnp.zeros((n, n), x.dtype))


def _dissimilarity(x, metric):
    if metric == "precomputed":
        d = x
    elif metric == "manhattan":
        d = _manhattan(x)
    else:
        if metric in ("euclidean", "sqeuclidean"):  # centred: accurate expansion in float32
            x = x - jnp.mean(x, axis=0, keepdims=True)
        d = jnp.maximum(pairwise_cost(x, x, metric), 0.0)
    # the diagonal is never read: a point's dissimilarity to itself is taken as 0 wherever
    # it matters (no O(n^2) copy to zero it)
    return d


def _wsum(w, v, axis=None):
    """``sum(w * v)`` along ``axis`` (``w`` broadcast over the last axis); ``w=None``: 1."""
    if w is not None:
        v = v * w.reshape((1,) * (v.ndim - 1) + w.shape)
    return jnp.sum(v, axis=axis)


def _row(d, j):
    """Row ``j`` of ``d`` with its diagonal entry set to 0, shape ``(1, n)``."""
    row = jax.lax.dynamic_slice(d, (j, jnp.int32(0)), (1, d.shape[1]))
    return jax.lax.dynamic_update_slice(row, jnp.zeros((1, 1), d.dtype), (jnp.int32(0), j))


def _assignment(dm, slot):
    """Nearest and second-nearest medoid of every point from ``dm = D[medoids, :]``.

    One streaming pass over the ``k`` rows (a loop, partly unrolled so the rows fuse; a
    reduction over the leading axis is much slower on CPU). ``slot[i]`` is the position of
    point ``i`` in ``medoids`` (-1 for non-medoids): a medoid is always assigned to itself
    (even when another medoid duplicates it); other exact ties go to the lower position.
    With ``k = 1`` the second distance is ``+inf``.
    """
    k, n = dm.shape

    def row(i, c):
        m1, m2, near = c
        r = jax.lax.dynamic_index_in_dim(dm, i, axis=0, keepdims=False)
        closer = r < m1
        return (jnp.minimum(m1, r), jnp.where(closer, m1, jnp.minimum(m2, r)),
                jnp.where(closer, i, near))

    init = (dm[0], jnp.full((n,), jnp.inf, dm.dtype), jnp.zeros((n,), jnp.int32))
    dn, ds, near = jax.lax.fori_loop(1, k, row, init, unroll=min(4, max(k - 1, 1)))
    is_med = slot >= 0
    return (jnp.where(is_med, slot, near), jnp.where(is_med, jnp.zeros((), dm.dtype), dn), ds)


class _State(NamedTuple):
    medoids: Array  # (k,) int32
    slot: Array  # (n,) int32: position in `medoids`, -1 for non-medoids
    dm: Array  # (k, n) = D[medoids, :]
    near: Array  # (n,) int32
    dn: Array  # (n,) distance to the nearest medoid
    ds: Array  # (n,) distance to the second nearest medoid
    loss: Array


def _state(d, w, medoids):
    medoids = medoids.astype(jnp.int32)
    n, k = d.shape[0], medoids.shape[0]
    slot = jnp.full((n,), -1, jnp.int32).at[medoids].set(jnp.arange(k, dtype=jnp.int32))
    dm = d[medoids, :].at[jnp.arange(k), medoids].set(0.0)
    near, dn, ds = _assignment(dm, slot)
    return _State(medoids, slot, dm, near, dn, ds, _wsum(w, dn))


def _swap(d, w, s: _State, j, b):
    """Make point ``j`` the medoid at position ``b`` and refresh the assignment."""
    j, b = j.astype(jnp.int32), b.astype(jnp.int32)
    medoids = s.medoids.at[b].set(j)
    slot = s.slot.at[s.medoids[b]].set(-1).at[j].set(b)
    dm = jax.lax.dynamic_update_slice(s.dm, _row(d, j), (b, jnp.int32(0)))
    near, dn, ds = _assignment(dm, slot)
    return _State(medoids, slot, dm, near, dn, ds, _wsum(w, dn))


def _swap_gains(d, w, s: _State, start, size):
    """Loss change ``delta[c, m]`` of swapping medoid ``m`` for candidate ``j = start + c``.

    With ``t_o = d_jo - dn_o`` and ``g_o = ds_o - dn_o``:
    ``delta(j, m) = sum_o w_o min(t_o, 0)                         (shared part)
                  + sum_{o: near(o) = m} w_o min(max(t_o, 0), g_o)``   (removal of ``m``)

    Rows ``start .. start + size`` of ``d`` are read (contiguous memory); the removal parts
    of all medoids are one segment sum over the nearest-medoid labels. Requires
    ``start + size <= n`` (the callers clamp ``start``): the diagonal mask assumes the
    slice was not shifted by ``dynamic_slice``'s own clamping.
    """
    n, k = d.shape[0], s.dm.shape[0]
    start = start.astype(jnp.int32)
    zero = jnp.int32(0)
    blk = jax.lax.dynamic_slice(d, (start, zero), (size, n))
    # the diagonal entries d_jj read as 0, by a mask fused into the subtraction (one op per
    # step instead of slicing and updating the diagonal block: measured 25% faster search
    # at n = 64, 11% at n = 1000, k = 50, same swaps)
    diag = (jnp.arange(n, dtype=jnp.int32)[None, :]
            == start + jnp.arange(size, dtype=jnp.int32)[:, None])
    t = jnp.where(diag, jnp.zeros((), d.dtype), blk) - s.dn[None, :]
    shared = _wsum(w, jnp.minimum(t, 0.0), axis=1)  # (size,)
    part = jnp.minimum(jnp.maximum(t, 0.0), (s.ds - s.dn)[None, :])  # (size, n)
    if w is not None:
        part = part * w[None, :]
    removal = jax.ops.segment_sum(part.T, s.near, num_segments=k)  # (n, k)
    return removal.T + shared[:, None]


# ----------------------------------------------------------------------------- FasterPAM
class _Eager(NamedTuple):
    s: _State
    pos: Array  # next candidate
    lastswap: Array  # candidate of the last swap (n: none yet)
    swapped: Array  # a swap happened in the current pass
    lastloss: Array  # loss at the start of the current pass
    it: Array  # passes started
    n_swaps: Array
    done: Array
    converged: Array


def _fasterpam(d, w, medoids, max_iter):
    n = d.shape[0]
    size = min(_EAGER_BLOCK, n)

    def body(c: _Eager):
        s = c.s
        # a pass ends at n, or (no swap yet in this pass) where the last swap happened:
        # every candidate since then has been checked against the current medoids
        end = jnp.where(c.swapped, n, c.lastswap)
        start = jnp.minimum(c.pos, n - size)
        cand = start + jnp.arange(size, dtype=jnp.int32)
        delta = _swap_gains(d, w, s, start, size)
        best_m = jnp.argmin(delta, axis=1).astype(jnp.int32)
        best = jnp.min(delta, axis=1)
        ok = (cand >= c.pos) & (cand < end) & (s.slot[cand] < 0) & (best < 0)
        found = jnp.any(ok)
        first = jnp.argmax(ok)
        j, b = cand[first], best_m[first]
        s = jax.lax.cond(found, lambda: _swap(d, w, s, j, b), lambda: s)
        pos = jnp.where(found, j + 1, start + size)
        lastswap = jnp.where(found, j, c.lastswap)
        swapped = c.swapped | found
        n_swaps = c.n_swaps + found.astype(c.n_swaps.dtype)
        # end of the pass?
        pass_end = pos >= jnp.where(swapped, n, lastswap)
        conv = pass_end & (~swapped | (s.loss >= c.lastloss))
        done = conv | (pass_end & (c.it >= max_iter))
        again = pass_end & ~done
        return _Eager(
            s,
            jnp.where(again, 0, pos),
            lastswap,
            swapped & ~again,
            jnp.where(again, s.loss, c.lastloss),
            c.it + again.astype(c.it.dtype),
            n_swaps,
            done,
            conv,
        )

    s = _state(d, w, medoids)
    i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
    c = _Eager(s, i32(0), i32(n), jnp.asarray(False), s.loss, i32(1), i32(0),
               jnp.asarray(False), jnp.asarray(False))
    c = jax.lax.while_loop(lambda c: ~c.done, body, c)
    return c.s, c.it, c.n_swaps, c.converged


# ----------------------------------------------------------------------------- PAM
def _best_swap(d, w, s: _State):
    """Best (lowest delta) swap over all candidates; ties go to the lowest candidate, then
    the lowest medoid position."""
    n = d.shape[0]
    size = min(_PAM_BLOCK, n)
    nb = -(-n // size)

    def block(i, best):
        start = jnp.minimum(i * size, n - size)
        cand = start + jnp.arange(size, dtype=jnp.int32)
        delta = _swap_gains(d, w, s, start, size)
        delta = jnp.where(((cand >= i * size) & (s.slot[cand] < 0))[:, None], delta, jnp.inf)
        m = jnp.argmin(delta, axis=1).astype(jnp.int32)
        v = jnp.min(delta, axis=1)
        c = jnp.argmin(v)
        better = v[c] < best[0]
        return (jnp.where(better, v[c], best[0]), jnp.where(better, cand[c], best[1]),
                jnp.where(better, m[c], best[2]))

    init = (jnp.asarray(0.0, d.dtype), jnp.asarray(-1, jnp.int32), jnp.asarray(-1, jnp.int32))
    return jax.lax.fori_loop(0, nb, block, init)


def _pam(d, w, medoids, max_iter):
    def cond(c):
        return ~c[3] & (c[1] < max_iter)

    def body(c):
        s, it, n_swaps, _, _ = c
        v, j, b = _best_swap(d, w, s)
        found = v < 0
        new = jax.lax.cond(found, lambda: _swap(d, w, s, j, b), lambda: s)
        worse = found & (new.loss >= s.loss)  # numerically stuck: keep the old medoids
        s = jax.tree_util.tree_map(lambda a, o: jnp.where(found & ~worse, a, o), new, s)
        return s, it + 1, n_swaps + (found & ~worse).astype(jnp.int32), ~found | worse, ~found

    s = _state(d, w, medoids)
    i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
    s, it, n_swaps, _, conv = jax.lax.while_loop(
        cond, body, (s, i32(0), i32(0), jnp.asarray(False), jnp.asarray(False)))
    return s, it, n_swaps, conv


# ----------------------------------------------------------------------------- BUILD
def _build(d, w, k):
    n = d.shape[0]
    eye = jnp.arange(n)[:, None] == jnp.arange(n)[None, :]  # fused, never stored
    d0 = lambda: jnp.where(eye, jnp.zeros((), d.dtype), d)  # noqa: E731
    total = _wsum(w, d0(), axis=1)  # cost of every point as the only medoid
    first = jnp.argmin(total).astype(jnp.int32)
    medoids = jnp.zeros((k,), jnp.int32).at[0].set(first)
    dn = _row(d, first)[0]
    chosen = jnp.zeros((n,), bool).at[first].set(True)

    def step(l, carry):
        medoids, dn, chosen = carry
        # loss change of adding i (its own term -w_i dn_i included, as in `kmedoids`)
        gain = _wsum(w, jnp.minimum(d0() - dn[None, :], 0.0), axis=1)
        i = jnp.argmin(jnp.where(chosen, jnp.inf, gain)).astype(jnp.int32)
        return medoids.at[l].set(i), jnp.minimum(dn, _row(d, i)[0]), chosen.at[i].set(True)

    medoids, _, _ = jax.lax.fori_loop(1, k, step, (medoids, dn, chosen))
    return medoids


# ----------------------------------------------------------------------------- public
_FINITE = ("`x` contains NaN or Inf; clean or mask the input (give masked points zero "
           "weight) before calling.")


def _validate(x, k, metric, weights):
    """Checked ``(x, weights or None, token)``.

    A precomputed matrix is checked through its minimum and maximum (NaN propagates through
    both): two float reductions instead of boolean ones over ``n^2`` entries, and the error
    rides on an int32 zero ``token`` (added to the initial medoids) rather than on the
    ``n x n`` matrix, which would cost a copy under ``jit``.
    """
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r}.")
    x = checks.as_float_array(x, "x")
    if metric == "precomputed":
        if x.ndim != 2 or x.shape[0] != x.shape[1]:
            raise ValueError(
                "`x` must be a square (n, n) dissimilarity matrix when metric='precomputed', "
                f"got shape {tuple(x.shape)}. Pass the points with a metric such as "
                "'euclidean' instead, or compute all n x n dissimilarities.")
    else:
        checks.check_points(x, "x")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    n = x.shape[0]
    checks.check_num_clusters(k, n)
    token = jnp.zeros((), jnp.int32)
    if metric == "precomputed":
        lo, hi = jnp.min(x), jnp.max(x)
        token = checks.ensure(token, ~(jnp.isfinite(lo) & jnp.isfinite(hi)), _FINITE)
        token = checks.ensure(token, lo < 0, "`x` (a precomputed dissimilarity matrix) has "
                                             "negative entries; dissimilarities must be >= 0.")
    else:
        x = checks.check_finite(x, "x")
        if metric != "manhattan":  # squared norms are formed (a manhattan sum is linear)
            x = checks.check_sq_norms(x, "x")
    if weights is None:
        return x, None, token
    return x, checks.row_weights(weights, n, "x", dtype=x.dtype, positive_sum=True), token


def _check_init(init, n, k, key):
    """``(kind, medoids or None)``; ``kind`` in {"build", "random", "given"}."""
    if isinstance(init, str):
        if init == "build":
            return "build", None
        if init == "random":
            if key is None:
                raise ValueError("`key` is required with init='random' (it draws the k "
                                 "initial medoids); pass key=jax.random.key(seed).")
            checks.check_key(key)
            return "random", None
        raise ValueError(f"`init` must be 'build', 'random' or an array of {k} point "
                         f"indices, got {init!r}.")
    try:
        m = jnp.asarray(init)
    except TypeError as err:
        raise ValueError(f"`init` must be 'build', 'random' or an array of {k} point "
                         f"indices, got {type(init).__name__}.") from err
    if m.shape != (k,) or not jnp.issubdtype(m.dtype, jnp.integer):
        raise ValueError(f"`init` medoid indices must be an integer array of shape ({k},), "
                         f"got {m.dtype} of shape {tuple(m.shape)}.")
    m = m.astype(jnp.int32)
    m = checks.ensure(m, (m < 0) | (m >= n), f"`init` has indices outside [0, {n}); give "
                                             "indices of points.")
    srt = jnp.sort(m)
    return "given", checks.ensure(m, srt[1:] == srt[:-1], "`init` has repeated indices; the k "
                                                          "initial medoids must be distinct "
                                                          "points.")


# Two jitted stages (BUILD alone for `pam_build`; the swap search, with BUILD inside it for
# init="build"), EagerPrograms: quick to compile for small problems on CPU (work = n^2 k, up
# to 2^18), inlined under jit / vmap. Each takes the points (or the precomputed matrix) and
# forms its problem's n x n dissimilarities inside the per-problem body: under vmap the
# problems run one after another (sequential_vmap), and a batched dissimilarity computed
# outside the map was a (B, n, n) temporary (B = 64, n = 256: 16 MiB, three such buffers),
# fresh pages at every call that made jit(vmap(kmedoids)) slower than a loop (59 vs 43 ms on
# the 2-core EPYC, 2026-12-04).
def _build_fn(x, w, k, metric):
    # under vmap one problem after another too: each BUILD step streams its problem's n x n
    # matrix (cache-sized) instead of the whole batch's; indices only, so forward-only
    return sequential_vmap(lambda x, w: _build(_dissimilarity(x, metric), w, k))(x, w)


_build_program = EagerProgram(_build_fn, ("k", "metric"))


def _own_dissimilarity(x, med, metric):
    """``d(x[med[i]], x[i])`` for every point ``i`` (the loss terms), by the formula of
    :func:`_dissimilarity` (the same centring) on those ``n`` pairs only: differentiable in
    ``x``, with no ``n x n`` matrix."""
    n = x.shape[0]
    if metric == "precomputed":
        return x[med, jnp.arange(n)]
    if metric == "manhattan":
        return jnp.sum(jnp.abs(x[med] - x), axis=-1)
    if metric in ("euclidean", "sqeuclidean"):
        x = x - jnp.mean(x, axis=0, keepdims=True)
    pair = jax.vmap(lambda a, b: pairwise_cost(a[None], b[None], metric)[0, 0])
    return jnp.maximum(pair(x[med], x), 0.0)


def _search_fn(x, w, m0, max_iter, *, method, metric, k, build):
    """The swap search from medoids ``m0`` (``build``: from BUILD's medoids plus ``m0``, a
    zero token); ``loss`` is recomputed from ``x`` (not its ``stop_gradient``), so its
    gradient at fixed medoids flows to ``x`` and ``weights``."""
    xs = jax.lax.stop_gradient(x)
    ws = None if w is None else jax.lax.stop_gradient(w)
    search = _fasterpam if method == "fasterpam" else _pam

    def one(xs, ws, m0, max_iter):
        d = _dissimilarity(xs, metric)
        if build:
            m0 = _build(d, ws, k) + m0
        return search(d, ws, m0, max_iter)

    # under vmap, problems one after another (each its own number of swaps), not one
    # batched loop that runs every lane to the slowest one with every swap selected.
    # Measured (FasterPAM, k = 4, 8 candidates per step, whole kmedoids call, medians of 11-15
    # interleaved rounds, load ~4): against the batched loop it is 1.3-2x faster at B = 8
    # (n = 32: 0.52 vs 0.76 ms; n = 64: 1.25 vs 2.56 ms) and within noise at B = 64
    # (n = 32: 2.51 vs 2.36 ms; n = 64: 6.85 vs 6.55 ms); from n = 128 on much faster.
    s, it, n_swaps, conv = sequential_vmap(one)(xs, ws, m0, max_iter)
    own = _own_dissimilarity(x, s.medoids[s.near], metric)
    loss = _wsum(w, jnp.where(s.slot >= 0, jnp.zeros((), own.dtype), own))
    # a sum of huge dissimilarities can overflow: never report such a loss as converged
    return KMedoidsResult(s.medoids, s.near, loss, it, n_swaps, conv & jnp.isfinite(loss))


_search = EagerProgram(_search_fn, ("method", "metric", "k", "build"))


def pam_build(
    x: Float[Array, "n d"] | Float[Array, "n n"],
    k: int,
    *,
    metric: str = "euclidean",
    weights: Float[Array, " n"] | None = None,
) -> Int[Array, " k"]:
    r"""Greedy PAM BUILD: ``k`` initial medoid indices.

    The first medoid minimises $\sum_j w_j d(x_i, x_j)$; each next one is the point $i$ with
    the largest decrease of the loss, $\sum_j w_j \max(D_j - d(x_i, x_j), 0)$, $D_j$ the
    dissimilarity of $x_j$ to its nearest chosen medoid. The candidate's own term $w_i D_i$ is
    counted (as in the ``kmedoids`` package; Kaufman & Rousseeuw's sum runs over $j \ne i$).
    Ties go to the lowest index; a chosen point is never chosen again. ``O(k n^2)``.

    Args:
      x: points ``(n, d)``, or a square dissimilarity matrix with ``metric="precomputed"``
        (read as in [`kmedoids`][jaxclust.cluster.kmedoids]).
      k: number of medoids (static).
      metric: ``"euclidean"``, ``"sqeuclidean"``, ``"manhattan"``, ``"cosine"`` or
        ``"precomputed"``.
      weights: non-negative point weights ``(n,)``.

    Returns:
      Medoid indices, shape ``(k,)``, int32, in the order they were chosen.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import pam_build
      >>> x = jnp.asarray([[0.0], [1.0], [2.0], [10.0], [11.0]])
      >>> pam_build(x, 2).tolist()
      [2, 3]

    References:
      Kaufman & Rousseeuw, "Clustering by means of medoids", 1987; "Finding Groups in Data:
      An Introduction to Cluster Analysis", Wiley 1990.
    """
    x, w, token = _validate(x, k, metric, weights)
    x, w = jax.lax.stop_gradient((x, w))
    return _build_program(x.shape[0] ** 2 * k, x, w, k, metric) + token


def kmedoids(
    x: Float[Array, "n d"] | Float[Array, "n n"],
    k: int,
    *,
    key: PRNGKeyArray | None = None,
    method: str = "fasterpam",
    init: str | Int[Array, " k"] = "build",
    max_iter: int = 100,
    metric: str = "euclidean",
    weights: Float[Array, " n"] | None = None,
) -> KMedoidsResult:
    r"""k-medoids clustering by FasterPAM (eager swaps) or PAM (best swap).

    Chooses ``k`` of the ``n`` points as medoids $M$ to minimise
    $L(M) = \sum_i w_i \min_{m \in M} d_{mi}$, with $d$ any non-negative dissimilarity.
    Every point $o$ keeps the distances $dn_o$, $ds_o$ to its nearest and second-nearest
    medoid. Swapping medoid $m$ for a non-medoid $j$ changes the loss by

    $$\Delta(j, m) = \underbrace{\sum_o w_o \min(d_{jo} - dn_o, 0)}_{\text{shared}}
      + \underbrace{\sum_{o:\, \mathrm{near}(o) = m} w_o
        \min\big(\max(d_{jo} - dn_o, 0),\, ds_o - dn_o\big)}_{\text{removal of } m}$$

    (points that move to $j$, plus the points of $m$ that move to their second medoid or to
    $j$: Schubert & Rousseeuw's shared accumulator and removal loss, rearranged so that a
    swap that changes nothing sums exact zeros). One candidate costs ``O(n + k)``: a row of
    $d$, elementwise work and one segment sum over the labels. Only a swap refreshes the
    nearest / second-nearest medoids (``O(nk)``).

    * ``method="fasterpam"`` visits the candidates $j = 0, 1, \dots, n-1$ cyclically and
      performs the best swap of a candidate *eagerly* as soon as $\Delta < 0$ (ties: lowest
      medoid position). It stops when every candidate since the last swap was checked
      without success or a pass did not lower the loss, or after ``max_iter`` passes. This
      is the order and the pass counting of the ``kmedoids`` package (Rust), so from the same
      initial medoids both make the same swaps; they can differ only where a swap's
      $\Delta$ is zero in exact arithmetic (e.g. the two points of a two-point cluster),
      which rounding may turn into a tiny "improvement" there and which is exactly 0 here.
    * ``method="pam"`` performs, per iteration, the swap with the most negative $\Delta$
      over all pairs (the original PAM SWAP, ``O(n^2)`` per iteration; ties: lowest
      candidate, then lowest medoid position).

    The search runs on ``stop_gradient`` dissimilarities; the returned ``loss`` is recomputed
    from the chosen medoids, so it is differentiable with respect to ``x`` and ``weights``
    at fixed medoids (medoids and labels are indices and carry no gradient). Under ``vmap``
    the swap searches of the problems run one after another inside one compiled program
    (each with its own swaps; BUILD too, the dissimilarities are batched), which saves the
    per-call overhead of a Python loop and returns, lane by lane, the unbatched results.

    Args:
      x: points ``(n, d)``, or with ``metric="precomputed"`` a square ``(n, n)``
        dissimilarity matrix (non-negative; the diagonal is ignored and taken as 0). It is
        read row-wise: ``x[m, i]`` is the dissimilarity of point ``i`` to medoid ``m``
        (this matters only for an asymmetric matrix, where it is the transpose of the
        ``kmedoids`` package's convention).
      k: number of medoids (static).
      key: PRNG key, only needed for ``init="random"``.
      method: ``"fasterpam"`` or ``"pam"``.
      init: ``"build"`` (greedy PAM BUILD, [`pam_build`][jaxclust.cluster.pam_build]),
        ``"random"`` (``k`` distinct points drawn with ``key``) or ``k`` distinct point
        indices (int array).
      max_iter: maximum passes (FasterPAM) or swaps (PAM).
      metric: ``"euclidean"``, ``"sqeuclidean"``, ``"manhattan"``, ``"cosine"`` (computed
        densely, ``O(n^2)`` memory) or ``"precomputed"``.
      weights: non-negative point weights ``(n,)`` (default: all ones).

    Returns:
      A [`KMedoidsResult`][jaxclust.cluster.KMedoidsResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import kmedoids
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (20, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (20, 2)) - 5.0])
      >>> res = kmedoids(x, 2)
      >>> sorted(jnp.bincount(res.labels).tolist()), bool(res.converged)
      ([20, 20], True)
      >>> bool(jnp.all((res.medoids < 20) != (res.medoids[::-1] < 20)))  # one per blob
      True

    References:
      Schubert & Rousseeuw, "Fast and eager k-medoids clustering: O(k) runtime improvement
      of the PAM, CLARA, and CLARANS algorithms", Information Systems 101, 2021.
      Kaufman & Rousseeuw, "Finding Groups in Data: An Introduction to Cluster Analysis",
      Wiley 1990.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    checks.check_int(max_iter, "max_iter")
    x, w, token = _validate(x, k, metric, weights)
    n = x.shape[0]
    kind, m0 = _check_init(init, n, k, key)
    if kind == "build":
        m0 = jnp.zeros((k,), jnp.int32)
    elif kind == "random":
        m0 = jax.random.choice(key, n, (k,), replace=False).astype(jnp.int32)
    return _search(n * n * k, x, w, m0 + token, jnp.asarray(max_iter, jnp.int32),
                   method=method, metric=metric, k=k, build=kind == "build")


# ----------------------------------------------------------------------------- prediction
def kmedoids_predict(
    x: Float[Array, "m d"] | Float[Array, "m k"],
    medoids: Float[Array, "k d"] | None = None,
    *,
    metric: str = "euclidean",
) -> tuple[Int[Array, " m"], Float[Array, " m"]]:
    r"""Assign new points to the nearest fitted medoid.

    $l_i = \arg\min_j d(x_i, m_j)$ (the first index on ties) under the ``metric`` the
    medoids were fitted with: the assignment of [`kmedoids`][jaxclust.cluster.kmedoids],
    whose ``labels`` it reproduces on the training points. Like
    [`kmeans_predict`][jaxclust.cluster.kmeans_predict], a function of the fitted
    parameters: pass the medoid points ``x_train[res.medoids]``. With
    ``metric="precomputed"``, ``x`` is the ``(m, k)`` matrix of dissimilarities from the new
    points to the medoids and ``medoids`` is ``None``.

    Args:
      x: new points ``(m, d)``, or dissimilarities ``(m, k)`` with ``"precomputed"``.
      medoids: medoid points ``(k, d)`` (``None`` with ``"precomputed"``).
      metric: ``"euclidean"``, ``"sqeuclidean"``, ``"manhattan"``, ``"cosine"`` or
        ``"precomputed"`` (static).

    Returns:
      ``(labels, dissimilarities)``: the nearest medoid of every point ``(m,)`` and the
      dissimilarity to it ``(m,)`` (their sum is the k-medoids loss of ``x``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import kmedoids, kmedoids_predict
      >>> x = jnp.asarray([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
      >>> res = kmedoids(x, 2)
      >>> labels, _ = kmedoids_predict(jnp.asarray([[4.9, 5.0], [0.2, 0.1]]), x[res.medoids])
      >>> bool(labels[0] == res.labels[2]), bool(labels[1] == res.labels[0])
      (True, True)
    """
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r}.")
    xs = checks.as_float_array(x, "x")
    checks.check_points(xs, "x")
    xs = xs.astype(jnp.promote_types(xs.dtype, jnp.float32))
    if metric == "precomputed":
        if medoids is not None:
            raise ValueError("`medoids` must be None when metric='precomputed' (`x` holds the "
                             "(m, k) dissimilarities to the medoids).")
        d = checks.check_finite(xs, "x")
    else:
        if medoids is None:
            raise ValueError("`medoids` (the (k, d) medoid points, e.g. x_train[res.medoids]) "
                             f"is required with metric={metric!r}.")
        m = checks.as_float_array(medoids, "medoids", dtype=xs.dtype)
        checks.check_points(m, "medoids")
        if m.shape[1] != xs.shape[1]:
            raise ValueError(f"`x` must have {m.shape[1]} features like `medoids`, got "
                             f"{xs.shape[1]}.")
        xs = checks.check_finite(xs, "x")
        m = checks.check_finite(m, "medoids")
        d = _predict_dissimilarity(xs, m, metric)
    labels = jnp.argmin(d, axis=1).astype(jnp.int32)
    return labels, jnp.take_along_axis(d, labels[:, None], axis=1)[:, 0]


def _predict_dissimilarity(x, m, metric):
    if metric == "manhattan":
        return jnp.sum(jnp.abs(x[:, None, :] - m[None, :, :]), axis=-1)
    if metric in ("euclidean", "sqeuclidean"):
        # differences, not the expansion: exact 0 at a medoid, no cancellation
        sq = jnp.sum(jnp.square(x[:, None, :] - m[None, :, :]), axis=-1)
        return sq if metric == "sqeuclidean" else safe_sqrt(sq)
    return jnp.maximum(pairwise_cost(x, m, metric), 0.0)
