"""k-means: greedy k-means++ seeding and Lloyd's algorithm, restarts by ``vmap``."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.collectives import cumsum, global_top, pmax, psum, row_offset, take_rows
from .._core.fixed_point import check_callback, cond_lazy, report_progress, sequential_vmap
from .._core.precision import HIGHEST  # distances by |x|^2 - 2 x.c + |c|^2: no TF32
from .._core.programs import EagerProgram
from .._core.restarts import best_restart
from .._core.results import with_summary_repr

__all__ = ["KMeansResult", "kmeans", "kmeans_plusplus", "kmeans_predict"]


@with_summary_repr
class KMeansResult(NamedTuple):
    """Result of [`kmeans`][jaxclust.cluster.kmeans] (a pytree).

    Attributes:
      centroids: cluster centres, shape ``(k, d)``.
      labels: index of the nearest centre for every point, shape ``(n,)``.
      objective: the inertia, weighted sum of squared distances of the points to their
        centre (minimised); also readable as ``inertia``.
      n_iters: Lloyd iterations run (of the best restart).
      converged: the centre shift fell below the tolerance (or the labels stopped changing)
        before ``max_iter``, and the centroids and inertia are finite.
    """

    centroids: Float[Array, "k d"]
    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def inertia(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


_SEED_BLOCK = 1 << 18  # entries of x moved at once by k-means++ (1 MiB in float32)


def _nearer_around(x, cm, x_sq, m, before):
    """``min(before_i, |x_i - c_j|^2)`` for the rows of ``cm = c - m``, with ``x_sq = |x -
    m|^2``: ``x_sq + |cm|^2 - 2 <x - m, cm>`` (clipped at 0), ``x`` moved by ``m`` one block
    of rows at a time (about ``2**18`` entries; no moved copy of the whole ``x``). The blocks
    cover the rows without padding: the last one starts at ``n - rows`` and recomputes a few
    rows of the one before, to the same values. Moved, the product rounds by ``eps |x - m|
    |cm|``; unmoved (``<x, cm> - <m, cm>``) by ``eps |x| |cm|``: 0.05 in squared distance
    at coordinates near 1e4, which changed k-means++'s draws."""
    n, d = x.shape
    rows = max(64, _SEED_BLOCK // max(d, 1))
    b = jnp.sum(cm * cm, axis=1)

    def block(xb, xqb, bb):
        dc = xqb[:, None] + b[None, :] - 2.0 * jnp.matmul(xb - m, cm.T, precision=HIGHEST)
        return jnp.minimum(bb[:, None], jnp.maximum(dc, 0.0))

    if n <= rows:
        return block(x, x_sq, before)
    sl = jax.lax.dynamic_slice_in_dim

    def body(i, out):
        start = jnp.minimum(i * rows, n - rows)
        new = block(sl(x, start, rows), sl(x_sq, start, rows), sl(before, start, rows))
        return jax.lax.dynamic_update_slice_in_dim(out, new, start, 0)

    out = jnp.zeros((n, cm.shape[0]), x.dtype)
    return jax.lax.fori_loop(0, -(-n // rows), body, out)


def _sq_dists(x, c, x_sq=None):
    """Squared distances ``|x_i - c_j|^2`` as one matrix multiply, clipped at 0. Without
    ``x_sq`` both sets are shifted by the mean of ``c`` first (see :func:`origin`); a caller
    that passes ``x_sq = |x|^2`` has shifted them already."""
    if x_sq is None:
        mu = origin(c)
        x, c = x - mu, c - mu
        x_sq = jnp.sum(x * x, axis=1)
    xc = jnp.matmul(x, c.T, precision=HIGHEST)
    d = x_sq[:, None] - 2.0 * xc + jnp.sum(c * c, axis=1)[None, :]
    return jnp.maximum(d, 0.0)


_WHOLE = 1 << 24  # the whole n x k matrix (64 MiB in float32) is used up to this many entries


def _auto_chunk(n: int, k: int, chunk_size: int | None, d: int = 0) -> int | None:
    """``chunk_size`` or, when ``None``, whole (``n * k <= 2**24``: no loop over row blocks)
    or equal blocks of about ``max(512, 2**16 // k)`` rows, at most ``2**21`` entries (8 MiB
    in float32; at least 64 rows). Measured on the 2-core Xeon, idle machine (Lloyd, 20
    iterations of n = 100,000, d = 64, k = 100, jitted, best of 5): whole matrix 0.229 s,
    2 blocks 0.269 s, 16384-row blocks 0.307 s, the ~655-row blocks 0.327 s (XLA's dot uses
    both cores on a large product; a loop of small blocks runs on one); under load the small
    blocks had measured best in CPU time (0.40-0.42 s vs 0.51 s for ~10,000 rows). k = 1000,
    n = 200,000 (blocked): 512 rows 1.82 s vs 1.92 s for ~1048 rows under load; idle, 2048-8192
    rows 1.01-1.03 s vs 1.10 s for the automatic blocks, 32768 rows 1.33 s."""
    # d > 0: the whole x is moved once (`lloyd_iterations`' `around`), a copy no larger
    # than the distance matrix; past that, blocks (moved one at a time)
    if chunk_size is not None or n * max(k, d) <= _WHOLE:
        return chunk_size
    rows = min(max(512, (1 << 16) // k), max(64, (1 << 21) // k))
    n_blocks = -(-n // rows)
    # equal blocks; when up to a quarter more blocks divide n exactly, no padding at all: the
    # padded copy of x is as large as x (n = 200,000, d = 64, k = 1000: 500-row blocks
    # instead of 391 padded 512-row ones, 51 MB fewer temporaries)
    for nb in range(n_blocks, n_blocks + n_blocks // 4 + 1):
        if n % nb == 0:
            return n // nb
    return -(-n // n_blocks)  # little padding


def _blocks(x, chunk_size):
    """``x`` padded with zero rows and reshaped to ``(n_blocks, chunk_size, ...)`` (no copy
    when ``chunk_size`` divides the rows)."""
    n = x.shape[0]
    nb = -(-n // chunk_size)
    if nb * chunk_size == n:
        return x.reshape((nb, chunk_size) + x.shape[1:])
    pad = [(0, nb * chunk_size - n)] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad).reshape((nb, chunk_size) + x.shape[1:])


_LANES = 16  # one AVX-512 float32 vector


def _nearest_block(xb, c, c_sq):
    """Nearest centre of each row (the first index on exact ties) and its score
    ``|c|^2 - 2 <x, c>`` (``|x|^2`` omitted: it does not change the argmin; scikit-learn's
    Lloyd omits it too)."""
    lab, best, _ = _nearest(xb, c, c_sq, second=False)
    return lab, best


def nearest_two(xb, c, c_sq):
    """Nearest centre of each row (first index on exact ties), its score and the second
    smallest score (``inf`` when ``k == 1``); scores are ``|c|^2 - 2 <x, c>``."""
    return _nearest(xb, c, c_sq, second=True)


def _nearest(xb, c, c_sq, second):
    """XLA's CPU code for ``argmin`` over a short row (a variadic value/index reduction) is
    several times slower than elementwise work, so for ``k > 16`` the scores are padded to
    a multiple of 16 columns and reduced by a running elementwise minimum over 16-column
    slices (vectorised along the lanes; a strict ``<`` keeps the earliest column of each
    lane), then over the 16 lanes; ``k <= 16``: :func:`_first_min`. ``second``: also the second
    smallest score, as the plain row minimum of the scores with the winner's column masked
    (measured 1.1-1.3x the cost of the argmin alone at k = 100 and 1000; tracking a second
    minimum per lane in the running loop cost 2.3x)."""
    k = c.shape[0]
    lanes = _LANES
    if k <= lanes:
        s = c_sq[None, :] - 2.0 * jnp.matmul(xb, c.T, precision=HIGHEST)
        best, lab = _first_min(s)
    else:
        kp = -(-k // lanes) * lanes
        cp = jnp.pad(c, ((0, kp - k), (0, 0)))
        cq = jnp.pad(c_sq, (0, kp - k), constant_values=jnp.inf)
        # |c|^2 folded into the product ([x, 1] . [-2 c, |c|^2]): the scores come out of
        # the matrix product, with no pass of their own over the block (k = 1000, n = 2e5,
        # d = 64, 5 Lloyd iterations, A/B in fresh processes: 1.79-1.85 -> 1.54-1.56 s;
        # k = 100: -3%). Accurate since the rows are taken around the points' mean
        # (`origin`): the same labels as the unfolded form against float64 there
        ones = jnp.ones(xb.shape[:1] + (1,), xb.dtype)
        s = jnp.matmul(jnp.concatenate([xb, ones], 1),
                       jnp.concatenate([-2.0 * cp, cq[:, None]], 1).T, precision=HIGHEST)
        lane = jnp.arange(lanes, dtype=s.dtype)[None, :]
        m, idx = s[:, :lanes], jnp.broadcast_to(lane, (s.shape[0], lanes))
        for t in range(1, kp // lanes):
            b = s[:, t * lanes:(t + 1) * lanes]
            take = b < m
            m, idx = jnp.where(take, b, m), jnp.where(take, lane + t * lanes, idx)
        # two reductions (the row minimum, then the first index equal to it): 15-20% faster
        # than _first_min at k = 1000 in Lloyd's loop (n = 2e5, d = 64), and its rows never
        # lacked an index equal to the minimum in either compile flavour (k = 17 .. 100,
        # d = 1 .. 8: tests/cluster/test_kmeans.py)
        best = jnp.min(m, axis=1)
        lab = jnp.min(jnp.where(m == best[:, None], idx, jnp.inf), axis=1)
    sec = None
    if second:
        col = jax.lax.broadcasted_iota(s.dtype, s.shape, 1)
        sec = jnp.min(jnp.where(col == lab[:, None], jnp.inf, s), axis=1)
    return lab.astype(jnp.int32), best, sec


def _lexicographic_min(a, b):
    (am, ai), (bm, bi) = a, b
    take = (bm < am) | ((bm == am) & (bi < ai))
    return jnp.where(take, bm, am), jnp.where(take, bi, ai)


@jax.custom_jvp
def _first_min(s):
    """Row minimum of ``s`` and the first column attaining it (float; ``inf`` for a row of
    NaN), in one reduction of the (value, column) pairs. Not ``min(s)`` followed by
    ``min(where(s == best, column, inf))``: XLA makes those two fusions that each recompute
    ``s`` from the product, and may round the two recomputations differently (a multiply-add
    contracted in one only: seen with d = 1 under the quick compile options on an AMD
    EPYC), leaving a row with no column equal to its minimum (label ``2**31 - 1``). Faster
    than those two at k <= 16."""
    inf = jnp.asarray(jnp.inf, s.dtype)
    col = jax.lax.broadcasted_iota(s.dtype, s.shape, 1)
    return jax.lax.reduce((s, col), (inf, inf), _lexicographic_min, (1,))


@_first_min.defjvp
def _first_min_jvp(primals, tangents):
    best, lab = _first_min(*primals)
    col = jnp.where(jnp.isfinite(lab), lab, 0.0).astype(jnp.int32)
    dbest = jnp.take_along_axis(tangents[0], col[:, None], axis=1)[:, 0]
    return (best, lab), (dbest, jnp.zeros_like(lab))


def _assign(x, c, x_sq, chunk_size, spherical=False, shift=None):
    """Nearest centre and its squared distance, in row blocks when ``chunk_size`` is set.
    ``spherical``: the centre of largest inner product ``<x, c>`` (faiss's spherical
    assignment), and the squared distance to it. ``shift`` (``(1, d)``, Euclidean only):
    the point the distances are taken around (:func:`origin`), subtracted from each block
    of rows as it is used (from the whole ``x`` when there are no blocks); ``c`` is then
    given around it already (``c - shift``) and ``x_sq`` is ``|x - shift|^2``."""
    c_sq = jnp.sum(c * c, axis=1)
    score_sq = jnp.zeros_like(c_sq) if spherical else c_sq
    n = x.shape[0]
    if chunk_size is None or chunk_size >= n:
        lab, s = _nearest_block(_moved(x, shift), c, score_sq)
    else:
        lab, s = jax.lax.map(lambda xb: _nearest_block(_moved(xb, shift), c, score_sq),
                             _blocks(x, chunk_size))
        lab, s = lab.reshape(-1)[:n], s.reshape(-1)[:n]
    if spherical:
        s = s + c_sq[lab]
    return lab, jnp.maximum(x_sq + s, 0.0)


def _moved(x, shift):
    """``x - shift`` (``x`` itself when ``shift`` is None)."""
    return x if shift is None else x - shift


def _normalize_rows(c):
    """Rows scaled to unit L2 norm; a zero row stays zero (faiss's ``fvec_renorm_L2``)."""
    nrm = jnp.sqrt(jnp.sum(c * c, axis=1, keepdims=True))
    return jnp.where(nrm > 0, c / jnp.where(nrm > 0, nrm, 1.0), c)


def _lloyd_sums(xb, wb, c, weighted, spherical=False, shift=None):
    """One assignment pass: labels, best scores, per-centre weighted sums and masses.

    ``xb``, ``wb`` are the points and weights, either whole (``(n, d)``, ``(n,)``) or in row
    blocks (``(n_blocks, rows, d)``, from :func:`_blocks`, padded once outside the Lloyd
    loop). Blocks accumulate the sums in the same pass, each block of the distance matrix
    used while it is in cache and never the whole ``n x k`` matrix; the blocks of one scan
    step are independent, so XLA may run them concurrently. ``shift``: subtracted from each
    block as it is used (``c`` is already in the shifted coordinates; see :func:`origin`)."""
    k = c.shape[0]
    c_sq = jnp.zeros((k,), c.dtype) if spherical else jnp.sum(c * c, axis=1)

    def block(xb, wb):
        xb = _moved(xb, shift)
        lab, s = _nearest_block(xb, c, c_sq)
        # moved, the zero padding rows are no longer zero: their weight (0) drops them
        xw = wb[:, None] * xb if weighted or shift is not None else xb
        return (lab, s, jax.ops.segment_sum(xw, lab, num_segments=k),
                jax.ops.segment_sum(wb, lab, num_segments=k))

    if xb.ndim == 2:
        return block(xb, wb)

    def step(carry, blk):
        lab, s, sums, mass = block(*blk)
        return (carry[0] + sums, carry[1] + mass), (lab, s)

    init = (jnp.zeros_like(c), jnp.zeros((k,), xb.dtype))
    (sums, mass), (lab, s) = jax.lax.scan(step, init, (xb, wb))
    return lab.reshape(-1), s.reshape(-1), sums, mass


def kmeans_plusplus(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    weights: Float[Array, " n"] | None = None,
    n_local_trials: int | None = None,
) -> Float[Array, "k d"]:
    r"""Greedy k-means++ seeding.

    The first centre is drawn with probability proportional to the weights; each next centre
    draws ``n_local_trials`` candidates (default $2 + \lfloor\ln k\rfloor$) with probability
    $\propto w_i D(x_i)^2$, $D$ the distance to the nearest chosen centre, and keeps the
    candidate that lowers the potential $\sum_i w_i D(x_i)^2$ most.

    Each draw is an inverse-CDF draw: for a uniform $u \in [0, 1)$ the first point $i$ with
    $\sum_{l \le i} p_l > u \sum_l p_l$. All the uniforms come from one call,
    ``jax.random.uniform(key, (k, n_local_trials))`` (row 0, first entry: the first centre;
    row $j$: the candidates of centre $j$), so the seeding compiles one random-number
    kernel, outside its loop over the centres.

    Example:
      >>> import jax
      >>> from jaxclust.cluster import kmeans_plusplus
      >>> x = jax.random.normal(jax.random.key(0), (100, 2))
      >>> kmeans_plusplus(x, 3, key=jax.random.key(1)).shape
      (3, 2)

    References:
      Arthur & Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007.
    """
    x, w = _validate(x, k, weights)
    checks.check_key(key)
    return greedy_plusplus(x, k, key, w, n_local_trials)


def _draw(p, u, last, axis_name):
    """Indices drawn with probability ``~ p`` (``p >= 0``, positive sum) by inverse-CDF
    sampling: for each uniform ``u`` in [0, 1), the first point whose cumulative weight
    exceeds ``u * sum(p)``, at most ``last`` (the last point of positive weight: sharded,
    the total and the devices' offsets are rounded apart, and ``u * sum(p)`` may pass the
    last CDF entry; padding rows are never drawn).

    The count of CDF entries ``<= t`` is a comparison of every entry with every target
    (``O(n * len(u))``, the order of the distances to the candidates computed next), not a
    binary search: XLA:CPU compiles a search into one more loop. Sharded, the devices'
    counts add up (one ``psum`` of ``len(u)`` integers)."""
    cdf, total = cumsum(p, axis_name)
    below = cdf[None, :] <= (u * total)[:, None]
    return jnp.minimum(psum(jnp.sum(below, axis=1, dtype=jnp.int32), axis_name), last)


@partial(jax.jit, static_argnums=(1, 4, 5))
def greedy_plusplus(x, k, key, w, n_local_trials, axis_name=None, around=None):
    """Greedy k-means++ on one device, or with the rows sharded over ``axis_name`` (padding
    rows of zero weight are never drawn).

    Every random number is drawn at once, before the loop over the ``k`` centres:
    ``u = jax.random.uniform(key, (k, trials))``; the first centre is the inverse-CDF draw of
    ``u[0, 0]`` under the weights, centre ``j >= 1`` draws its candidates from ``u[j]`` (one
    loop over ``j = 0 .. k - 1``). Draws never depend on the number of devices (the CDF is
    global), and the compiled program holds one random-number kernel rather than one per
    draw (first-call compile time). The loop carries the chosen row indices; the centres
    are gathered once at the end.

    The distances are taken around ``around`` (``(1, d)``; default: the points' mean, the
    same on every device), ``x`` moved one block of rows at a time
    (:func:`_nearer_around`; see :func:`origin`)."""
    trials = n_local_trials or 2 + int(math.log(k))
    if around is None:
        rows = psum(jnp.asarray(x.shape[0], x.dtype), axis_name)
        around = psum(jnp.sum(x, axis=0, keepdims=True), axis_name) / rows
    x_sq = jnp.sum((x - around) ** 2, axis=1)
    u = jax.random.uniform(key, (k, trials), x.dtype)
    dyn = jax.lax.dynamic_index_in_dim  # indices known to be in range: no wrap-around ops
    inf, zero = jnp.asarray(jnp.inf, x.dtype), jnp.asarray(0.0, x.dtype)
    rows = jnp.arange(x.shape[0], dtype=jnp.int32) + row_offset(x.shape[0], axis_name)
    last = pmax(jnp.max(jnp.where(w > 0, rows, 0)), axis_name)

    def step(j, carry):
        idx, dist = carry
        # `trials` candidates with probability ~ w D^2 (O(n) work per candidate, no
        # per-point random numbers); ~ w if all D^2 vanish. Step 0 (dist = 1: p = w) keeps
        # its first candidate as the first centre, whose distances become D^2 (dist + inf)
        p = w * dist
        p = jnp.where(psum(jnp.sum(p), axis_name) > 0, p, w)
        cand = _draw(p, dyn(u, j, keepdims=False), last, axis_name)
        cm = take_rows(x, cand, axis_name) - around
        before = dist + jax.lax.select(j == 0, inf, zero)
        new = _nearer_around(x, cm, x_sq, around, before)  # (n, trials)
        potential = psum(jnp.sum(w[:, None] * new, axis=0), axis_name)
        best = jnp.argmin(potential).astype(jnp.int32) * (j > 0)
        idx = jax.lax.dynamic_update_index_in_dim(idx, dyn(cand, best), j, 0)
        return idx, dyn(new, best, axis=1, keepdims=False)

    init = (jnp.zeros((k,), jnp.int32), jnp.ones(x.shape[:1], x.dtype))
    idx, _ = jax.lax.fori_loop(0, k, step, init)
    return take_rows(x, idx, axis_name)


#: from this many points on, batched k-means (``vmap``, ``n_init`` restarts) runs the problems
#: one after another inside the program (measured on CPU, 2 cores: at n = 2000 a vectorised
#: Lloyd loop was 2-7x slower than a Python loop, at n = 64 2-10x faster)
_SEQUENTIAL_MIN_N = 512


def _batching(n: int, fn):
    """``fn`` batched sequentially (:func:`sequential_vmap`) for large problems, vectorised
    (plain ``vmap``) for small ones; ``fn`` must receive every array as an argument."""
    return sequential_vmap(fn) if n >= _SEQUENTIAL_MIN_N else fn


def relocate_farthest(x, dist, empty, new, around=None):
    """``new`` with its empty clusters (``empty[j]``) moved, deterministically, to the
    points of largest ``dist`` (the first empty cluster to the farthest point, the second
    to the next, ...); one device. Used by Lloyd's and Hamerly's iterations. ``around``:
    ``new`` is given around that point (the points' rows are moved alike)."""
    slot = jnp.clip(jnp.cumsum(empty) - 1, 0, x.shape[0] - 1)
    order = jnp.argsort(-dist)
    return jnp.where(empty[:, None], _moved(x[order[slot]], around), new)


@partial(jax.jit, static_argnums=(3, 5, 6, 7, 8, 9))
def lloyd_iterations(x, w, centers, max_iter, tol_abs, chunk_size, weighted=True, axis_name=None,
                     callback=None, spherical=False, around=None, tol_rel=None):
    """Lloyd's iterations on one device, or with the rows sharded over ``axis_name`` (the
    centre sums and masses, the label-change test, the inertia and the empty-cluster
    relocation combine the devices' partial results). ``spherical``: centres on the unit
    sphere (normalised at the start and after every update), assignment by the largest
    inner product (faiss ``spherical=True``). ``around`` (``(1, d)``, Euclidean): the
    iterations run in coordinates around that point (:func:`origin`; the same on every
    device), each block of rows moved as it is used, without a moved copy of a blocked
    ``x``; the centres are given and returned in the points' own coordinates. ``tol_rel``:
    instead of ``tol_abs``, scikit-learn's ``tol * mean(var(x, axis=0))``, read from the
    moved squared norms (``around`` the points' mean; a separate variance pass over ``x``
    next to them made XLA keep a moved copy of ``x``, 51 MB at n = 200,000, d = 64)."""
    n = x.shape[0]
    if spherical:
        centers = _normalize_rows(centers)
    chunk_size = _auto_chunk(n, centers.shape[0], chunk_size,
                             0 if around is None else x.shape[1])
    if around is not None:
        centers = centers - around
    x_sq = jnp.sum(_moved(x, around) ** 2, axis=1)
    if tol_rel is not None:
        # the norms computed once, then read: reduced a second time in one fusion with the
        # moving of x, XLA kept a moved copy of x (51 MB at n = 200,000, d = 64)
        x_sq = jax.lax.optimization_barrier(x_sq)
        rows = psum(jnp.asarray(n, x.dtype), axis_name)
        tol_abs = tol_rel * psum(jnp.sum(x_sq), axis_name) / (rows * x.shape[1])

    blocked = chunk_size is not None and chunk_size < n
    if blocked:  # pad once, outside the loop (zero-weight rows); each block moved when used
        xb, wb, block_shift = _blocks(x, chunk_size), _blocks(w, chunk_size), around
    else:  # the whole x at once (moved once)
        xb, wb, block_shift = _moved(x, around), w, None

    def update(c):
        lab, s, sums, mass = _lloyd_sums(xb, wb, c, weighted, spherical, block_shift)
        lab, s = lab[:n], s[:n]
        if spherical:  # s omitted |c|^2 (the assignment score is -2 <x, c>)
            s = s + jnp.sum(c * c, axis=1)[lab]
        sums, mass = psum((sums, mass), axis_name)
        new = sums / jnp.where(mass > 0, mass, 1.0)[:, None]
        empty = mass <= 0

        def relocate(new):
            # empty clusters move, deterministically, to the points farthest from their centre
            dist = w * jnp.maximum(x_sq + s, 0.0)
            if axis_name is None:
                return relocate_farthest(x, dist, empty, new, around)
            slot = jnp.clip(jnp.cumsum(empty) - 1, 0, n - 1)
            order = global_top(dist, centers.shape[0], axis_name)  # the first k suffice
            rows = _moved(take_rows(x, order[slot], axis_name), around)
            return jnp.where(empty[:, None], rows, new)

        # the sort runs only in the (rare) iterations that have an empty cluster; cond_lazy,
        # not lax.cond: under vmap (n_init restarts, batched problems) a batched cond would
        # sort in every iteration, cond_lazy only when some lane has an empty cluster
        # sharded: a lax.cond (its collectives stay out of the per-iteration loop body)
        if axis_name is not None:
            new = jax.lax.cond(jnp.any(empty), relocate, lambda new: new, new)
        else:
            new = cond_lazy(jnp.any(empty), lambda: relocate(new), new)
        return (_normalize_rows(new) if spherical else new), lab

    def cond(s):
        _, _, shift, it, same = s
        return (it < max_iter) & (shift > tol_abs) & ~same

    def body(s):
        c, lab_old, _, it, _ = s
        new, lab = update(c)
        shift = jnp.sum((new - c) ** 2)
        changed = psum(jnp.sum(lab != lab_old), axis_name)
        report_progress(callback, it + 1, shift, cond(s))  # cond: False on finished lanes
        return new, lab, shift, it + 1, (changed == 0) & (it > 0)

    init = (centers, jnp.full((n,), -1, jnp.int32), jnp.asarray(jnp.inf, x.dtype),
            jnp.asarray(0), jnp.asarray(False))
    c, lab, shift, it, same = jax.lax.while_loop(cond, body, init)
    if blocked:
        lab, dist = _assign(x, c, x_sq, chunk_size, spherical, block_shift)
    else:
        lab, dist = _assign(xb, c, x_sq, None, spherical)
    inertia = psum(jnp.sum(w * dist), axis_name)
    c = c if around is None else c + around
    # converged only with finite centres and inertia (the latter may overflow for huge data)
    return KMeansResult(c, lab, inertia, it,
                        ((shift <= tol_abs) | same) & all_finite(c, inertia))


def check_kmeans_options(max_iter, n_init, tol, chunk_size):
    """The static options of ``kmeans`` (shared with ``jaxclust.distributed.kmeans``)."""
    checks.check_int(max_iter, "max_iter")
    checks.check_int(n_init, "n_init")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"`tol` must be a number >= 0, got {tol!r}.")
    checks.check_int(chunk_size, "chunk_size", none_ok=True)


def _finite_and_representable(x, name):
    """``x`` checked for NaN/Inf and for squared norms that overflow its dtype.

    Concrete arrays are checked on the host with NumPy (no XLA program is compiled for the
    check: a first eager call of ``kmeans`` then compiles only its solver); on failure, and
    under tracing, the shared checks of :mod:`jaxclust._core.checks` give their message."""
    if not checks.is_traced(x):
        xn = np.asarray(x)
        if xn.size == 0:
            return x
        # two reductions, no temporaries (a NaN propagates, so it and an Inf fail the test):
        # sum_j x_ij^2 <= d max|x|^2, which passes for any data whose squared norms are far
        # from overflow; only data near the limit get the exact row-wise test below
        big = max(float(np.max(xn)), -float(np.min(xn)))
        if big * big * xn.shape[-1] < float(np.finfo(xn.dtype).max) / 64:
            return x
        if np.all(np.isfinite(xn)):
            with np.errstate(over="ignore"):  # inf: the overflow this detects
                s = np.sum(np.square(xn * xn.dtype.type(0.25)), axis=-1)
            if np.max(s) < np.finfo(xn.dtype).max / 64:
                return x
    return checks.check_sq_norms(checks.check_finite(x, name), name)


def _checks_token(x, name) -> jax.Array | None:
    """``None`` when concrete ``x`` passes :func:`_finite_and_representable`'s host checks;
    otherwise (traced) a scalar zero of ``x``'s dtype that carries those checks, for the
    caller to add to a small input of its program (k-means: ``tol``) instead of attaching
    them to ``x``: ``equinox.error_if`` returns its operand through a ``cond``, and XLA copies
    a parameter that leaves a conditional (``jit(kmeans)`` at n = 200,000, d = 64: 51 MB
    more temporaries and the page faults to fill them, at every call)."""
    if not checks.is_traced(x):
        _finite_and_representable(x, name)  # raises on failure
        return None
    token = jnp.zeros((), x.dtype)
    token = checks.ensure(token, checks.not_all_finite(x, jnp), checks.finite_message(name))
    token = checks.ensure(token, checks.sq_norm_overflow(x), checks.overflow_message(name,
                                                                                  x.dtype))
    return jax.lax.stop_gradient(token)  # a constant zero: adding it changes no derivative


def _validate(x, k, weights, name="x") -> tuple[jax.Array, jax.Array]:
    """Points ``name`` (2-D, non-empty, finite, squared distances representable) and sample
    weights (finite, >= 0, positive sum; ones when not given); ``1 <= k <= n``."""
    x, w = _validate_optional(x, k, weights, name)
    return x, _unit_weights(x, w)


def _validate_optional(x, k, weights, name="x") -> tuple[jax.Array, jax.Array | None]:
    """:func:`_validate`, with ``None`` weights kept ``None`` (the solver makes the unit
    weights inside its compiled program), and concrete arrays checked on the host."""
    return _validate_token(x, k, weights, name, on_token=False)[:2]


def _validate_token(x, k, weights, name="x", on_token=True
                    ) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """:func:`_validate_optional` with, ``on_token``, ``x``'s value checks on a token
    (:func:`_checks_token`) instead of on ``x``: ``(x, weights or None, token or None)``."""
    x = checks.as_float_array(x, name)
    checks.check_points(x, name)
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    x = x if x.dtype == dtype else x.astype(dtype)
    n = x.shape[0]
    checks.check_num_clusters(k, n, rows_of=name)
    if on_token:
        token = _checks_token(x, name)
    else:
        x, token = _finite_and_representable(x, name), None
    if weights is None:
        return x, None, token
    if not checks.is_traced(weights):
        try:
            wn = np.asarray(weights)
        except Exception:  # ragged lists ...: row_weights names the argument
            wn = np.zeros((0,))
        if (wn.shape == (n,) and np.issubdtype(wn.dtype, np.number)
                and np.all(np.isfinite(wn)) and np.all(wn >= 0) and np.sum(wn) > 0):
            return x, checks.as_float_array(weights, "weights", dtype=x.dtype), token
    # otherwise (traced, or something to report): the shared checks and their messages
    return x, checks.row_weights(weights, n, name, dtype=x.dtype, positive_sum=True), token


def _unit_weights(x, w):
    if w is not None:
        return w
    if checks.is_traced(x):
        return jnp.ones(x.shape[:1], x.dtype)
    return jax.device_put(np.ones(x.shape[:1], x.dtype))  # eager: no XLA program


def all_finite(*arrays):
    """True when every entry of every array is finite (a ``converged`` flag never covers a
    non-finite output)."""
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in arrays]))


def kmeans(
    x: Float[ArrayLike, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    init: str | Float[Array, "k d"] = "k-means++",
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    weights: Float[Array, " n"] | None = None,
    chunk_size: int | None = None,
    callback: Callable[[int, float], None] | None = None,
    spherical: bool = False,
    algorithm: str = "auto",
) -> KMeansResult:
    r"""k-means by Lloyd's algorithm with (greedy) k-means++ seeding.

    Minimises the weighted inertia $\sum_i w_i \min_j \lVert x_i - c_j\rVert^2$ by alternating
    assignment to the nearest centre and centre update to the weighted mean of its points.
    Distances are one matrix multiply, $\lVert x\rVert^2 - 2 x c^\top + \lVert c\rVert^2$,
    taken around the points' mean: as scikit-learn's ``KMeans``, the iterations run on
    ``x - mean(x, axis=0)`` (each block of rows moved as it is used; the whole ``x`` once
    when the distance matrix is formed whole) and the centres are moved back, so that
    points far from 0 do not lose their distances to float32 cancellation (not with
    ``spherical``, which is not translation-invariant);
    with ``chunk_size`` the assignment runs over blocks of rows, so the ``n x k`` matrix is
    never formed whole. A cluster that loses all its points is moved to the point farthest
    from its centre (deterministic; never NaN). Stops when the squared centre shift is at most
    ``tol * mean(var(x, axis=0))`` (scikit-learn's rule) or the labels stop changing.

    ``n_init`` restarts run in parallel (``vmap`` over split keys); the lowest inertia wins,
    and of restarts within a relative 1e-5 of it (the same partition, up to rounding) the
    first, so that a batched solve, a single one and every backend report the same labels.

    **Spherical (cosine) k-means** (``spherical=True``, faiss's ``spherical=True``): the
    centres live on the unit sphere — normalised at the start (also given ``init`` centres)
    and after every update, $c_j = S_j / \lVert S_j\rVert$ with
    $S_j = \sum_{l_i = j} w_i x_i$ — and each point goes to the centre of largest inner
    product $\langle x_i, c_j\rangle$. This maximises $\sum_i w_i \langle x_i, c_{l_i}\rangle$;
    for rows of unit norm that is the cosine similarity, so normalise ``x`` first for cosine
    k-means (faiss does not normalise the points either). ``inertia`` stays
    $\sum_i w_i \lVert x_i - c_{l_i}\rVert^2$ ($= \sum_i w_i (2 - 2\cos)$ for unit rows).
    New points: [`kmeans_predict`][jaxclust.cluster.kmeans_predict].

    **Bound-pruned iterations** (``algorithm="hamerly"``): the same Lloyd iterates, with
    fewer distances. Each point carries an upper bound $u_i \ge \lVert x_i - c_{l_i}\rVert$
    and a lower bound $\ell_i \le \min_{j \ne l_i} \lVert x_i - c_j\rVert$; when
    $u_i \le \max(\ell_i, s_{l_i})$, with $s_j = \tfrac12 \min_{j' \ne j} \lVert c_j -
    c_{j'}\rVert$, the triangle inequality proves the label unchanged and no distance is
    computed. The other points get their two nearest centres from a matrix product over
    compacted blocks of rows. After a centre update with displacements $\delta_j$,
    $u_i \mathrel{+}= \delta_{l_i}$ and $\ell_i \mathrel{-}= \max_{j \ne l_i} \delta_j$
    (Hamerly 2010). The bounds are widened by a bound on the float rounding of
    $\lVert x\rVert^2 - 2 x c^\top + \lVert c\rVert^2$, so labels equal Lloyd's (up to
    exact ties of rounded distances, where Lloyd's own choice depends on the rounding).
    It pays once the labels settle (most points pruned after a few iterations; see
    benchmarks/results/cluster.md). ``"auto"`` (default) uses it for ``n k >= 2**22``,
    ``k d >= 2048`` and ``max_iter >= 10`` without ``spherical`` (in the first few
    iterations the centres move far and nearly every point is recomputed; with small
    ``k d`` a distance costs little next to the bounds' bookkeeping); under ``vmap`` every
    lane waits for the lane with the most recomputed rows.

    **Gradient mode (envelope).** Labels are piecewise constant in ``x``, so almost
    everywhere the exact derivatives hold the labels fixed: ``centroids`` differentiate as
    the weighted means of their points, and ``inertia`` by the envelope (Danskin) theorem as
    $\partial_{x_i} = 2 w_i (x_i - c_{l_i})$, $\partial_{w_i} = \lVert x_i - c_{l_i}\rVert^2$
    (the centres minimise the inertia, so their own change contributes nothing). This makes
    the k-means inertia usable as a loss, e.g. on learned features. The forward values are
    those of Lloyd's iterations; the derivatives are exact once Lloyd has converged.

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters (static).
      key: PRNG key (seeding); the same key gives the same result.
      init: ``"k-means++"``, ``"random"`` (k distinct points) or initial centres ``(k, d)``.
      n_init: number of restarts (ignored for given centres).
      max_iter: Lloyd iteration budget.
      tol: relative tolerance on the centre shift.
      weights: non-negative sample weights ``(n,)``.
      chunk_size: rows per block in the assignment step; ``None`` (default) chooses: the
        whole ``n x k`` matrix when it has at most ``2**24`` entries (64 MiB in float32),
        otherwise blocks of about ``max(512, 2**16 / k)`` rows (cache-sized; at most
        ``2**21`` entries).
      callback: optional progress report ``callback(iteration, error)`` called on the host
        after every Lloyd iteration (``error``: the squared centre shift; once per restart),
        through ``jax.debug.callback``; static. ``None`` (default) leaves the compiled
        program unchanged.
      spherical: centres on the unit sphere, assignment by inner product (see above).
      algorithm: ``"lloyd"`` (every distance, every iteration), ``"hamerly"`` (the same
        iterates with distance bounds; not with ``spherical``; ``chunk_size`` is then the
        rows per block of recomputed points) or ``"auto"`` (default: ``"hamerly"`` for
        ``n * k >= 2**22``, ``k * d >= 2048`` and ``max_iter >= 10`` without ``spherical``,
        else ``"lloyd"``); static.

    Returns:
      A [`KMeansResult`][jaxclust.cluster.KMeansResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import kmeans
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (50, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (50, 2)) - 5.0])
      >>> res = kmeans(x, 2, key=jax.random.key(2), n_init=3)
      >>> sorted(jnp.bincount(res.labels).tolist()), bool(res.converged)
      ([50, 50], True)

    References:
      Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 1982. Arthur &
      Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007. Hamerly,
      "Making k-means even faster", SDM 2010.
    """
    check_callback(callback)  # first: a static option, no computation
    x_in, w_in, token = _validate_token(x, k, weights)
    # the iterations see constants; `with_envelope_gradients` attaches the derivatives
    x = jax.lax.stop_gradient(x_in)
    w = None if w_in is None else jax.lax.stop_gradient(w_in)
    d = x.shape[1]
    check_kmeans_options(max_iter, n_init, tol, chunk_size)
    # traced: `x`'s value checks ride on `tol` (+ 0), not on `x`
    tol_in = tol if token is None else tol + token
    check_spherical(spherical)
    algorithm = resolve_algorithm(algorithm, x.shape[0], k, d, spherical, max_iter)
    if not isinstance(init, str):
        c0 = checks.as_float_array(init, "init", dtype=x.dtype)
        if c0.shape != (k, d):
            raise ValueError(f"`init` centres must have shape ({k}, {d}) (`k` = {k} rows), got "
                             f"{tuple(c0.shape)}.")
        c0 = jax.lax.stop_gradient(_finite_and_representable(c0, "init"))
        res = _kmeans_given(x.size * k, x, w, c0, tol_in, max_iter=max_iter,
                            chunk_size=chunk_size, callback=callback, spherical=spherical,
                            algorithm=algorithm)
        return _with_token(with_envelope_gradients(x_in, w_in, res, spherical), token)
    if init not in ("k-means++", "random"):
        raise ValueError(f"`init` must be 'k-means++', 'random' or an array of centres, got "
                         f"{init!r}.")
    checks.check_key(key)
    res = _kmeans_seeded(x.size * k * n_init, x, w, key, tol_in, k=k, init=init, n_init=n_init,
                         max_iter=max_iter, chunk_size=chunk_size, callback=callback,
                         spherical=spherical, algorithm=algorithm)
    return _with_token(with_envelope_gradients(x_in, w_in, res, spherical), token)


def _with_token(res, token):
    """``res`` (a k-means, soft or Sinkhorn k-means result) with the checks token (zero)
    added to its centroids and objective: under ``EQX_ON_ERROR=nan`` a failed check's token
    is NaN and the outputs are NaN, as when the
    checks rode on ``x`` (the token on ``tol`` alone would stop the iterations at once and
    return finite, unconverged values)."""
    if token is None:
        return res
    return res._replace(centroids=res.centroids + token, objective=res.objective + token)


def kmeans_unvalidated(x, k, *, key, n_init=1, init="k-means++", max_iter=300, tol=1e-4,
                       chunk_size=None, spherical=False, weights=None):
    """Package-internal: :func:`kmeans` with k-means++ or random seeding for callers whose
    points (and sample ``weights``) are valid by construction or already checked (e.g.
    ``sdp`` rounding an embedding, the GMM's k-means start): no value checks and no envelope
    gradients (the points and weights are treated as constants), so the compiled program
    carries neither; the same iterates as :func:`kmeans`. Options are not checked either;
    pass what ``kmeans`` accepts."""
    x = jax.lax.stop_gradient(x)
    w = None if weights is None else jax.lax.stop_gradient(weights)
    return _kmeans_seeded(x.size * k * n_init, x, w, key, tol, k=k, init=init,
                          n_init=n_init, max_iter=max_iter, chunk_size=chunk_size,
                          callback=None, spherical=spherical,
                          algorithm=resolve_algorithm("auto", x.shape[0], k, x.shape[1],
                                                      spherical, max_iter))


#: ``n * k`` from which ``algorithm="auto"`` prunes distances with Hamerly's bounds
_HAMERLY_MIN_WORK = 1 << 22


#: ``max_iter`` from which ``algorithm="auto"`` prunes: in the first iterations the centres
#: move far and the bounds prune little (k = 1000, n = 200,000: 200,000, 199,902, 181,633,
#: 155,759 and 139,233 points recomputed in iterations 1-5, 41,685 in the 7th), so a budget
#: of a few iterations costs more with the bounds' bookkeeping than without
_HAMERLY_MIN_ITER = 10


#: ``k * d`` from which ``algorithm="auto"`` prunes: below it a full distance pass is cheap
#: next to the bounds' bookkeeping (measured on the 2-core CPU, idle, default tol, wall time
#: Lloyd / Hamerly: d = 2, k = 32: 0.42; d = 16, k = 64: 0.84; d = 32, k = 64: 1.12;
#: d = 64, k = 100: 2.42; d = 64, k = 1000: 2.17; labels equal in every case)
_HAMERLY_MIN_KD = 1 << 11


def check_algorithm(algorithm, spherical: bool) -> None:
    """ValueError unless ``algorithm`` is a valid ``algorithm`` option for ``spherical``."""
    if not isinstance(algorithm, str) or algorithm not in ("auto", "lloyd", "hamerly"):
        raise ValueError(f"`algorithm` must be 'auto', 'lloyd' or 'hamerly', got {algorithm!r}.")
    if algorithm == "hamerly" and spherical:
        raise ValueError("`algorithm`='hamerly' prunes Euclidean distances; it does not apply "
                         "to spherical=True: use algorithm='lloyd' (or 'auto').")


def resolve_algorithm(algorithm, n: int, k: int, d: int, spherical: bool,
                      max_iter: int) -> str:
    """``"lloyd"`` or ``"hamerly"`` for the ``algorithm`` option (ValueError if invalid):
    ``"auto"`` prunes when ``n * k``, ``k * d`` and ``max_iter`` reach the measured
    thresholds (``_HAMERLY_MIN_*``) and the assignment is Euclidean."""
    check_algorithm(algorithm, spherical)
    if algorithm == "auto":
        big = (n * k >= _HAMERLY_MIN_WORK and k * d >= _HAMERLY_MIN_KD
               and max_iter >= _HAMERLY_MIN_ITER)
        return "hamerly" if (big and not spherical) else "lloyd"
    return algorithm


def _iterations(x, w, c0, max_iter, tol, chunk_size, weighted, callback, spherical,
                algorithm):
    """Lloyd's or Hamerly's iterations; Euclidean ones around the points' mean
    (:func:`origin`), with the tolerance read from the moved squared norms."""
    if spherical:
        return lloyd_iterations(x, w, c0, max_iter, _tol_abs(x, tol), chunk_size, weighted,
                                None, callback, True)
    around = origin(x)
    if algorithm == "hamerly":
        from .hamerly import hamerly_iterations, hamerly_rows
        rows = hamerly_rows(c0.shape[0]) if chunk_size is None else chunk_size
        return hamerly_iterations(x, w, c0, max_iter, None, min(rows, x.shape[0]),
                                  weighted, callback, around, tol)
    return lloyd_iterations(x, w, c0, max_iter, None, chunk_size, weighted, None, callback,
                            False, around, tol)


def check_spherical(spherical):
    if not isinstance(spherical, bool):
        raise ValueError(f"`spherical` must be True or False, got {spherical!r}.")


def kmeans_predict(
    x: Float[ArrayLike, "m d"],
    centroids: Float[ArrayLike, "k d"],
    *,
    spherical: bool = False,
    chunk_size: int | None = None,
) -> tuple[Int[Array, " m"], Float[Array, " m"]]:
    r"""Assign new points to fitted k-means centres (scikit-learn's ``predict``).

    $l_i = \arg\min_j \lVert x_i - c_j\rVert^2$ (the first index on exact ties), or with
    ``spherical`` $\arg\max_j \langle x_i, c_j\rangle$: the assignment step of
    [`kmeans`][jaxclust.cluster.kmeans] with the same options. It serves the centres of
    [`minibatch_kmeans`][jaxclust.cluster.minibatch_kmeans] and of
    ``jaxclust.distributed.kmeans`` alike. A function of the centres rather than a method of
    the result, like [`gmm_log_prob`][jaxclust.cluster.gmm_log_prob] for the mixture: the
    fitted parameters are plain arrays that can be saved, sharded or learned, and the
    assignment rule (``spherical``) is an explicit option, not state of the result.

    Args:
      x: new points ``(m, d)``.
      centroids: centres ``(k, d)``, e.g. ``kmeans(...).centroids``.
      spherical: assign by largest inner product (use the value the centres were fitted with).
      chunk_size: rows per block (``None``: automatic, as in ``kmeans``).

    Returns:
      ``(labels, sq_dists)``: the centre of every point ``(m,)`` and its squared distance to
      it ``(m,)`` (their sum is the inertia of ``x`` under the centres).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import kmeans, kmeans_predict
      >>> x = jnp.concatenate([jax.random.normal(jax.random.key(0), (50, 2)) + 5.0,
      ...                      jax.random.normal(jax.random.key(1), (50, 2)) - 5.0])
      >>> res = kmeans(x, 2, key=jax.random.key(2))
      >>> labels, _ = kmeans_predict(jnp.asarray([[4.0, 5.0], [-5.0, -6.0]]), res.centroids)
      >>> bool(labels[0] == res.labels[0]), bool(labels[1] == res.labels[50])
      (True, True)
    """
    c = checks.as_float_array(centroids, "centroids")
    checks.check_points(c, "centroids")
    xs = checks.as_float_array(x, "x", dtype=jnp.promote_types(c.dtype, jnp.float32))
    checks.check_points(xs, "x")
    if xs.shape[1] != c.shape[1]:
        raise ValueError(f"`x` must have {c.shape[1]} features like `centroids`, got "
                         f"{xs.shape[1]}.")
    check_spherical(spherical)
    checks.check_int(chunk_size, "chunk_size", none_ok=True)
    token = _checks_token(xs, "x")
    c = _finite_and_representable(c.astype(xs.dtype), "centroids")
    if token is None:
        return _predict(xs.size * c.shape[0], xs, c, spherical=spherical,
                        chunk_size=chunk_size)
    # traced: `x`'s value checks ride on the centres (+ 0), not on `x`; on the distances too,
    # so that under EQX_ON_ERROR=nan a failed check gives NaN distances (as on `x` before)
    labels, sq = _predict(xs.size * c.shape[0], xs, c + token, spherical=spherical,
                          chunk_size=chunk_size)
    return labels, sq + token


def _predict_fn(x, c, *, spherical, chunk_size):
    return assign_near_centres(x, c, _auto_chunk(x.shape[0], c.shape[0], chunk_size,
                                                 0 if spherical else x.shape[1]),
                               spherical)


def assign_near_centres(x, c, chunk_size=None, spherical=False):
    """:func:`_assign` of ``x`` to ``c`` with both shifted by the centres' mean (Euclidean;
    see :func:`origin`): for callers that hold centres but not the whole data (prediction,
    mini-batch steps). Labels and squared distances."""
    if spherical:
        return _assign(x, c, jnp.sum(x * x, axis=1), chunk_size, spherical)
    mu = origin(c)
    return _assign(x, c - mu, jnp.sum((x - mu) ** 2, axis=1), chunk_size, False, mu)


def origin(x):
    """The point Euclidean k-means works around: the column mean of ``x``, shape ``(1, d)``.

    Distances are computed as ``|x|^2 - 2 <x, c> + |c|^2`` (one matrix product), which in
    float32 cancels catastrophically when the points sit far from 0: with coordinates near
    1e4 (d = 8) the terms are ~1e9 and their rounding (~1e2) exceeds the distances between
    nearby clusters, so labels, iterates and the reported inertia go wrong. The iterations
    therefore run on ``x - origin(x)`` (and centres shifted alike), and the centres are
    shifted back at the end, as scikit-learn's ``KMeans`` does; k-means is
    translation-equivariant, so only the rounding changes. Spherical k-means (inner products
    with unit centres) is not translation-invariant and is never shifted."""
    return jnp.mean(x, axis=0, keepdims=True)


def _tol_abs(x, tol):
    """scikit-learn's absolute tolerance on the squared centre shift."""
    return tol * jnp.mean(jnp.var(x, axis=0))


# The whole solve of an eager call is one compiled program (seeding, restarts, Lloyd, the
# choice of the best restart): a first call compiles once instead of dispatching (and
# compiling) a dozen small eager operations around separately compiled pieces.
def _kmeans_given_fn(x, w, c0, tol, *, max_iter, chunk_size, callback, spherical, algorithm):
    weighted = w is not None
    w = _unit_weights(x, w)
    lloyd = _batching(x.shape[0], lambda x, w, c0, t: _iterations(
        x, w, c0, max_iter, t, chunk_size, weighted, callback, spherical, algorithm))
    return lloyd(x, w, c0, jnp.asarray(tol, x.dtype))


def _kmeans_seeded_fn(x, w, key, tol, *, k, init, n_init, max_iter, chunk_size, callback,
                      spherical, algorithm):
    n = x.shape[0]
    weighted = w is not None
    w = _unit_weights(x, w)

    @partial(_batching, n)
    def one(x, w, kk, tol):
        if init == "k-means++":  # distances around the points' mean (`origin`)
            c0 = greedy_plusplus(x, k, kk, w, None, None, origin(x))
        else:
            idx = jax.random.choice(kk, n, (k,), replace=False, p=w / jnp.sum(w))
            c0 = x[idx]
        return _iterations(x, w, c0, max_iter, tol, chunk_size, weighted, callback,
                           spherical, algorithm)

    keys = jax.random.split(key, n_init)
    tol = jnp.asarray(tol, x.dtype)
    if n_init == 1:  # no batch of one restart (a batched loop carries selects)
        return one(x, w, keys[0], tol)
    runs = jax.vmap(one, in_axes=(None, None, 0, None))(x, w, keys, tol)
    best = best_restart(runs.inertia)
    return jax.tree_util.tree_map(lambda t: t[best], runs)


# one program per eager call, quick to compile for small problems on CPU (work = n d k
# restarts; 300 x 8, k = 3: 1.3 -> 0.3 s of compile CPU time, each run 0.2 -> 0.5 ms); large
# problems keep the default options (fusion emitters: -30% per Lloyd pass at n = 200,000,
# k = 1000)
_kmeans_given = EagerProgram(_kmeans_given_fn, ("max_iter", "chunk_size", "callback",
                                                "spherical", "algorithm"))
_kmeans_seeded = EagerProgram(_kmeans_seeded_fn, ("k", "init", "n_init", "max_iter",
                                                  "chunk_size", "callback", "spherical",
                                                  "algorithm"))
_predict = EagerProgram(_predict_fn, ("spherical", "chunk_size"))


def with_envelope_gradients(x, w, res, spherical=False):
    """Attach the a.e. exact derivatives of hard k-means; the forward values (and cost) are
    those of ``res`` unchanged. ``w`` may be ``None`` (unit weights).

    With the labels locally constant, the centroids are the weighted means of their points,
    ``c_j = sum_{l_i = j} w_i x_i / W_j`` (spherical: ``c_j = S_j / |S_j|`` with
    ``S_j = sum_{l_i = j} w_i x_i``), and the inertia's gradient is its partial derivative at
    fixed centroids (envelope theorem: the centroids minimise it, on the unit sphere when
    spherical)."""
    centroids, inertia = _envelope(x, w, res.labels, res.centroids, res.inertia, spherical)
    return res._replace(centroids=centroids, objective=inertia)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _envelope(x, w, labels, c, inertia, spherical):
    return c, inertia


def _envelope_fwd(x, w, labels, c, inertia, spherical):
    return (c, inertia), (x, w, labels, c)


def _envelope_bwd(spherical, resid, cts):
    x, w_opt, labels, c = resid
    w = jnp.ones(x.shape[:1], x.dtype) if w_opt is None else w_opt
    c_bar, i_bar = cts
    k = c.shape[0]
    if spherical:  # d (S / |S|) / dS = (I - c c^T) / |S|, and d S_l / d (w_i x_i) = I
        s_norm = jnp.linalg.norm(jax.ops.segment_sum(w[:, None] * x, labels, num_segments=k),
                                 axis=1)
        inv = jnp.where(s_norm > 0, 1.0 / jnp.where(s_norm > 0, s_norm, 1.0), 0.0)
        c_bar = c_bar - c * jnp.sum(c * c_bar, axis=1, keepdims=True)
    else:  # d c_l / d (w_i x_i) = 1 / W_l
        mass = jax.ops.segment_sum(w, labels, num_segments=k)
        inv = jnp.where(mass > 0, 1.0 / jnp.where(mass > 0, mass, 1.0), 0.0)
    g = (c_bar * inv[:, None])[labels]
    diff = x - c[labels]
    x_bar = w[:, None] * g + 2.0 * i_bar * w[:, None] * diff
    # d c_l / d w_i: (x_i - c_l) / W_l for the mean, x_i / |S_l| (projected) when spherical
    w_bar = jnp.sum((x if spherical else diff) * g, axis=1) + i_bar * jnp.sum(diff * diff,
                                                                                axis=1)
    return (x_bar, None if w_opt is None else w_bar, None, jnp.zeros_like(c),
            jnp.zeros_like(i_bar))


_envelope.defvjp(_envelope_fwd, _envelope_bwd)
