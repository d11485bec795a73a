r"""Nonnegative low-rank Burer–Monteiro (BM) solver of the Peng–Wei k-means SDP.

The Peng–Wei relaxation of k-means is

$$\min_Z \langle D, Z\rangle \quad\text{s.t.}\quad Z \succeq 0,\; Z \ge 0,\; Z\mathbf 1 =
\mathbf 1,\; \operatorname{tr} Z = k,$$

$D_{ij} = \lVert x_i - x_j\rVert^2$. Following Zhuang, Chen, Yang & Zhang (ICLR 2024) it is
restricted to $Z = U U^\top$ with a nonnegative factor $U \in \mathbb R^{n\times r}_{\ge 0}$
(rank $r \approx 2k$), which makes $Z \succeq 0$ and $Z \ge 0$ automatic:

$$\min_{U \in \Omega} \langle D, UU^\top\rangle \quad\text{s.t.}\quad UU^\top\mathbf 1 =
\mathbf 1, \qquad \Omega = \{U \ge 0,\ \lVert U\rVert_F^2 = k\}.$$

**Never an n x n matrix.** With $s_i = \lVert x_i\rVert^2$, $c = U^\top\mathbf 1$ and
$D = s\mathbf 1^\top + \mathbf 1 s^\top - 2XX^\top$,

$$\langle D, UU^\top\rangle = 2\, s^\top U c - 2\lVert X^\top U\rVert_F^2$$

exactly (for any $U$), and $UU^\top\mathbf 1 = Uc$: every quantity costs $O(ndr)$. $D$ is
translation invariant, so the data are centred ($\bar x = 0$) first. On the constraint set
($Uc = \mathbf 1$) the first term is the constant $2\sum_i s_i$, hence

$$\langle D, Z\rangle = 2\sum_i \lVert x_i - \bar x\rVert^2 - 2\langle A, Z\rangle,\qquad
A = X_c X_c^\top,$$

and the iterations minimise $-2\langle A, UU^\top\rangle$ (a smaller, better-conditioned
gradient; it differs from $\langle D, UU^\top\rangle$ by $2 s^\top(Uc - \mathbf 1)$, a term
linear in the constraint that the multiplier absorbs: the KKT points are the same). The
reported ``objective`` is always the exact $\langle D, UU^\top\rangle$ in the data's units.

**Augmented Lagrangian.** With multiplier $y \in \mathbb R^n$ and penalty $\beta > 0$,

$$\mathcal L_\beta(U, y) = -2\langle A, UU^\top\rangle + \langle y, Uc - \mathbf 1\rangle +
\tfrac\beta2 \lVert Uc - \mathbf 1\rVert^2,$$

$$\nabla_U \mathcal L_\beta = -4 X_c(X_c^\top U) + w c^\top + \mathbf 1 (U^\top w)^\top,
\qquad w = y + \beta(Uc - \mathbf 1),$$

and each iteration is one projected gradient step on $U$ followed by a dual ascent step:

$$U \leftarrow \Pi_\Omega\bigl(U - \alpha \nabla_U\mathcal L_\beta(U, y)\bigr),\qquad
y \leftarrow y + \beta\,(UU^\top\mathbf 1 - \mathbf 1),$$

$\Pi_\Omega(V) = \sqrt k\, V_+ / \lVert V_+\rVert_F$ (clip at zero, then rescale: the exact
Euclidean projection onto $\Omega$ whenever $V_+ \ne 0$). The data are scaled to unit mean
squared norm, $\beta = $ ``beta`` in those units, and the step is $\alpha = $ ``step`` $/ L$
with $L = 4\lambda_{\max}(X_c^\top X_c) + 3\beta n + 2\lVert y\rVert\sqrt n$, a bound on the
curvature of $\mathcal L_\beta$ near feasibility (recomputed each step as $y$ moves). The
iterations stop when the primal residual $\lVert UU^\top\mathbf 1 - \mathbf 1\rVert/\sqrt n$
and the relative change of the objective over the last ``check_every`` steps are both at
most ``tol``.

**Initialisation** (``init``): ``"random"`` (default) draws $U$ uniformly on $[0, 1)$ from
``key`` and projects onto $\Omega$. ``"kmeans"`` takes a k-means solution's membership
factor, $U_{ia} = 1/\sqrt{|G_a|}$ for $i \in G_a$ (which satisfies all constraints), pads
it to rank $r$ with zero columns, adds uniform noise of size ``1e-2 / sqrt(n)`` drawn from
``key`` and projects onto $\Omega$. The problem is nonconvex in $U$: on a 3-cluster mixture
just below the exact-recovery threshold (n = 200, 6 sigma, where the SDP solution is not a
membership matrix) the k-means start stalls at a stationary point 2e-5 (relative) above the
SDP optimum that cvxpy finds, while random starts reach it; in the exact-recovery regime
both starts give the membership matrix. Hence the random default.

References:
  Zhuang, Chen, Yang & Zhang, "Statistically Optimal K-means Clustering via Nonnegative
  Low-rank Semidefinite Programming", ICLR 2024 (arXiv:2305.18436). Peng & Wei,
  "Approximating K-means-type clustering via semidefinite programming", SIAM J. Optim. 2007.
  Burer & Monteiro, "A nonlinear programming algorithm for solving semidefinite programs via
  low-rank factorization", Math. Program. 2003.
"""

from __future__ import annotations

import functools
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.collectives import psum
from .._core.fixed_point import iterate_blocks, sequential_vmap
from .._core.precision import highest_matmul_precision
from .._core.results import with_summary_repr
from ..cluster import kmeans
from ._solver import BurerMonteiro, _as_value

__all__ = ["BMState", "bm_solve"]


@with_summary_repr
class BMState(NamedTuple):
    """Result of [`bm_solve`][jaxclust.sdp.burer_monteiro.bm_solve] (a pytree).

    Attributes:
      U: the nonnegative factor, shape ``(n, rank)``; the SDP solution is ``Z = U @ U.T``
        (never formed by the solver).
      n_iters: iterations run.
      converged: primal residual and relative objective change both at most ``tol`` before
        ``max_iter``, with a finite factor and objective.
      objective: $\\langle D, UU^\\top\\rangle$, exact, in the units of ``x``.
      primal_residual: $\\lVert UU^\\top\\mathbf 1 - \\mathbf 1\\rVert / \\sqrt n$.
      multiplier: the Lagrange multiplier $y$ of $UU^\\top\\mathbf 1 = \\mathbf 1$ for the
        centred objective $-2\\langle A, Z\\rangle$, in the scaled units (see the module
        docstring), shape ``(n,)``.
    """

    U: Float[Array, "n r"]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]
    objective: Float[Array, ""]
    primal_residual: Float[Array, ""]
    multiplier: Float[Array, " n"]


INIT_NOISE = 1e-2


def project_factor(v, k, axis_name=None):
    """Euclidean projection onto ``{U >= 0, ||U||_F^2 = k}``: clip, then rescale."""
    p = jnp.maximum(v, 0.0)
    nrm = jnp.sqrt(psum(jnp.sum(p * p), axis_name))
    return p * (math.sqrt(k) / jnp.where(nrm > 0, nrm, 1.0))


def _objective_d(xc, s, u, axis_name=None):
    """Exact ``<D, U U^T>`` = ``2 s^T U (U^T 1) - 2 ||X^T U||_F^2`` in O(ndr)."""
    c = psum(jnp.sum(u, axis=0), axis_name)
    xu = psum(xc.T @ u, axis_name)
    return 2.0 * psum(jnp.dot(s, u @ c), axis_name) - 2.0 * jnp.sum(xu * xu)


def _lambda_max(xs, key, n_power=30, axis_name=None):
    """Largest eigenvalue of ``xs^T xs`` by power iteration (``O(nd)`` per step; never d x d
    when d is large)."""
    d = xs.shape[1]
    v = jax.random.normal(key, (d,), xs.dtype) + 1.0

    def body(_, v):
        w = psum(xs.T @ (xs @ v), axis_name)
        return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(xs.dtype).tiny)

    v = jax.lax.fori_loop(0, n_power, body, v / jnp.linalg.norm(v))
    return psum(jnp.sum((xs @ v) ** 2), axis_name)


def _solve(x, key, tol, beta, step, *, k, rank, max_iter, check_every, init):
    """The solve on validated points, one compiled program per static configuration; under
    ``vmap`` the problems run one after another (``sequential_vmap``: each keeps its own
    iteration count, a batched loop would run every lane to the slowest one's)."""
    return _solve_batched(k, rank, max_iter, check_every, init)(x, key, tol, beta, step)


@functools.cache
def _solve_batched(k, rank, max_iter, check_every, init):
    # the outer jit caches the trace of the custom_vmap for eager calls
    return jax.jit(sequential_vmap(partial(_solve_one, k=k, rank=rank, max_iter=max_iter,
                                           check_every=check_every, init=init)))


@highest_matmul_precision  # relative tolerance 1e-5: no TF32 / bf16 products
def _solve_one(x, key, tol, beta, step, *, k, rank, max_iter, check_every, init):
    n = x.shape[0]
    dt = x.dtype
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    sq = jnp.sum(xc * xc, axis=1)
    scale = jnp.mean(sq)
    scale = jnp.where(scale > 0, scale, 1.0)
    xs = xc / jnp.sqrt(scale)
    k_init, k_noise, k_pow = jax.random.split(key, 3)

    if init == "kmeans":
        lab = kmeans(x, k, key=k_init).labels
        u0 = membership_start(lab, jax.random.uniform(k_noise, (n, rank), dt), k, rank, n)
    else:  # "random"
        u0 = project_factor(jax.random.uniform(k_noise, (n, rank), dt), k)
    return bm_iterate(xc, sq, xs, u0, k_pow, tol, beta, step, n=n, k=k, max_iter=max_iter,
                    check_every=check_every)


def membership_start(lab, noise, k: int, rank: int, n: int, axis_name=None, row_mask=None):
    """The ``init="kmeans"`` start: the membership factor of the labels ``lab`` (column
    ``j`` is ``1/sqrt(|C_j|)`` on cluster ``j``, columns ``k:`` zero) plus
    ``noise * INIT_NOISE / sqrt(n)`` (``noise`` uniform on [0, 1), ``(n, rank)``), projected.
    With ``axis_name`` the rows are this device's block (cluster sizes summed over the
    devices) and rows outside ``row_mask`` (padding) are zero."""
    dt = noise.dtype
    memb = jax.nn.one_hot(lab, rank, dtype=dt)
    if row_mask is not None:
        memb = memb * row_mask.astype(dt)[:, None]
    size = psum(jnp.sum(memb[:, :k], axis=0), axis_name)
    inv = jnp.pad(1.0 / jnp.sqrt(jnp.maximum(size, 1.0)), (0, rank - k))
    return project_factor(memb * inv[None, :] + noise * (INIT_NOISE / math.sqrt(n)), k,
                          axis_name)


class _Carry(NamedTuple):
    """State of the augmented-Lagrangian loop between two convergence checks."""

    u: Float[Array, "n r"]
    y: Float[Array, " n"]
    done: Bool[Array, ""]
    objective: Float[Array, ""]  # -2 <A, U U^T> (scaled units) at the last check
    residual: Float[Array, ""]


@highest_matmul_precision  # also traced alone by the sharded solver
def bm_iterate(xc, sq, xs, u0, k_pow, tol, beta, step, *, n, k, max_iter, check_every,
             axis_name=None, row_mask=None):
    """The augmented-Lagrangian iterations from a feasible-norm start ``u0`` (private).

    With ``axis_name`` the rows of ``xc``, ``sq``, ``xs`` and ``u0`` are this device's block
    of row-sharded arrays inside ``shard_map`` (``n`` is the global number of real rows,
    ``row_mask`` marks them; padding rows of ``xc``/``xs``/``u0`` must be zero): every sum
    over the rows (``U^T 1``, ``X^T U``, ``U^T w``, norms, the power iteration) is followed
    by a ``psum``, so only ``O(dr)`` numbers cross devices per iteration, and padding rows of
    ``U`` stay zero.
    """
    dt = xs.dtype
    ax = axis_name
    lam = _lambda_max(xs, k_pow, axis_name=ax)
    sqrt_n = math.sqrt(n)
    ones = jnp.ones((xs.shape[0],), dt) if row_mask is None else row_mask.astype(dt)

    def norm(t):
        return jnp.linalg.norm(t) if ax is None else jnp.sqrt(psum(jnp.sum(t * t), ax))

    def it(u, y):
        c = psum(jnp.sum(u, axis=0), ax)
        w = y + beta * (u @ c - ones)
        g = (-4.0 * (xs @ psum(xs.T @ u, ax)) + w[:, None] * c[None, :]
             + psum(u.T @ w, ax)[None, :])
        if row_mask is not None:
            g = g * ones[:, None]  # padding rows of U stay at zero
        lip = 4.0 * lam + 3.0 * beta * n + 2.0 * norm(y) * sqrt_n
        u = project_factor(u - (step / lip) * g, k, ax)
        v = u @ psum(jnp.sum(u, axis=0), ax) - ones
        return u, y + beta * v, v

    def obj_scaled(u):  # -2 <A, U U^T> in scaled units (the iterations' objective)
        xu = psum(xs.T @ u, ax)
        return -2.0 * jnp.sum(xu * xu)

    def block(st, _):  # check_every iterations, then one convergence check
        def inner(_, uyv):
            return it(uyv[0], uyv[1])

        u, y, v = jax.lax.fori_loop(0, check_every, inner, (st.u, st.y, jnp.zeros_like(ones)))
        f = obj_scaled(u)
        res = norm(v) / sqrt_n
        change = jnp.abs(f - st.objective) / jnp.maximum(jnp.abs(f), 1.0)
        return _Carry(u, y, (res <= tol) & (change <= tol), f, res)

    init = _Carry(u0, jnp.zeros_like(ones), jnp.asarray(False), obj_scaled(u0),
                  jnp.asarray(jnp.inf, dt))
    st, n_blocks = iterate_blocks(block, init, max_blocks=max_iter // check_every,
                                  done=lambda st, _: st.done, unrolled=False)
    u = st.u
    res = norm(u @ psum(jnp.sum(u, axis=0), ax) - ones) / sqrt_n
    obj = _objective_d(xc, sq, u, ax)
    finite = jnp.all(jnp.isfinite(u))
    if ax is not None:
        finite = psum((~finite).astype(jnp.int32), ax) == 0
    return BMState(u, n_blocks * check_every, st.done & finite & jnp.isfinite(obj), obj, res,
                   st.y)


def check_bm_options(k: int, n: int, rank, max_iter, check_every) -> int:
    """The static options of the BM solver (shared with the sharded one); returns the rank."""
    checks.check_num_clusters(k, n, sdp=True)
    if rank is None:
        rank = min(2 * k, n)
    rank = checks.check_int(rank, "rank", low=k, high=n,
                            bounds=f"with k <= rank <= n, i.e. in [{k}, {n}]",
                            why="the factor needs at least k columns; default 2k")
    checks.check_int(max_iter, "max_iter")
    checks.check_int(check_every, "check_every")
    return rank


def bm_solve(
    x: Float[Array, "n d"],
    k: int,
    *,
    key: PRNGKeyArray,
    rank: int | None = None,
    max_iter: int = 50_000,
    tol: float = 1e-7,
    beta: float = 1.0,
    step: float = 1.0,
    check_every: int = 10,
    init: str = "random",
) -> BMState:
    r"""Solve the Peng–Wei k-means SDP by nonnegative low-rank Burer–Monteiro factorisation.

    Minimises $\langle D, UU^\top\rangle$ over $U \in \mathbb R^{n\times r}_{\ge 0}$,
    $\lVert U\rVert_F^2 = k$, subject to $UU^\top\mathbf 1 = \mathbf 1$, by a primal–dual
    augmented Lagrangian method (one projected gradient step on $U$, one multiplier step per
    iteration), at $O(ndr)$ cost per iteration and $O(nr)$ memory: no ``n x n`` matrix is ever
    formed. The formulation, the updates and the scaling are in the module docstring.

    Args:
      x: points, shape ``(n, d)``.
      k: number of clusters (static), ``2 <= k < n``.
      key: PRNG key (initial factor); the same key gives the same result.
      rank: columns of ``U`` (static), ``k <= rank <= n``; default ``min(2k, n)``.
      max_iter: iteration budget (static; rounded up to a multiple of ``check_every``).
      tol: tolerance on the primal residual $\lVert UU^\top\mathbf 1-\mathbf 1\rVert/\sqrt n$
        and on the relative objective change over ``check_every`` iterations. The default
        1e-7 is near float32 resolution on purpose: below the exact-recovery threshold the
        iterates can cross long plateaus (n = 200, 6 sigma: the objective stays 2e-5 above the
        optimum for ~2000 iterations, with ``Z`` 1% away in Frobenius norm) that a looser
        tolerance (1e-5, 1e-6) mistakes for convergence.
      beta: augmented Lagrangian penalty, in units where the centred data have unit mean
        squared norm.
      step: step size as a fraction of the curvature bound $1/L$.
      check_every: iterations between convergence checks (static).
      init: ``"random"`` (uniform, projected) or ``"kmeans"`` (k-means membership factor plus
        noise) (static); see the module docstring.

    Returns:
      A [`BMState`][jaxclust.sdp.burer_monteiro.BMState].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.sdp.burer_monteiro import bm_solve
      >>> c = 6.0 / jnp.sqrt(2.0) * jnp.eye(3, 5)
      >>> lab = jnp.repeat(jnp.arange(3), 20)
      >>> x = c[lab] + jax.random.normal(jax.random.key(0), (60, 5))
      >>> st = bm_solve(x, 3, key=jax.random.key(1))
      >>> bool(st.converged), st.U.shape, bool(st.primal_residual < 1e-4)
      (True, (60, 6), True)

    References:
      Zhuang, Chen, Yang & Zhang, "Statistically Optimal K-means Clustering via Nonnegative
      Low-rank Semidefinite Programming", ICLR 2024. Peng & Wei, SIAM J. Optim. 2007.
    """
    x = checks.as_float_array(x, "x")
    checks.check_points(x, "x")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    n = x.shape[0]
    rank = check_bm_options(k, n, rank, max_iter, check_every)
    checks.check_key(key)
    if init not in ("kmeans", "random"):
        raise ValueError(f"`init` must be 'kmeans' or 'random', got {init!r}.")
    if isinstance(tol, (int, float)) and not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"`tol` must be a finite number >= 0, got {tol}.")
    beta = checks.check_positive_scalar(beta, "beta", "The penalty is in scaled units; try 1.")
    step = checks.check_positive_scalar(step, "step", "A fraction of 1/L; try 1.")
    x = checks.check_sq_norms(checks.check_finite(x, "x"), "x")
    n_checks = -(-max_iter // check_every)
    return _solve(x, key, jnp.asarray(tol, x.dtype), jnp.asarray(beta, x.dtype),
                  jnp.asarray(step, x.dtype), k=k, rank=rank,
                  max_iter=n_checks * check_every, check_every=check_every, init=init)


def _solve_validated(x, k: int, solver: BurerMonteiro, key) -> BMState:
    """``solver`` on points already validated by the public caller (``kmeans_sdp``,
    ``la_sdp``): the static options are checked against ``n`` and the traced ones made
    scalars of ``x.dtype``; ``x`` is not checked again."""
    n, dt = x.shape[0], x.dtype
    rank = check_bm_options(k, n, solver.rank, solver.max_iter, solver.check_every)
    tol, beta, step = (_as_value(getattr(solver, f), f, dt) for f in ("tol", "beta", "step"))
    n_checks = -(-solver.max_iter // solver.check_every)
    return _solve(x, key, tol, beta, step, k=k, rank=rank,
                  max_iter=n_checks * solver.check_every, check_every=solver.check_every,
                  init=solver.init)
