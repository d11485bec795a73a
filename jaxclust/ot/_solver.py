"""The Sinkhorn iterations behind :func:`jaxclust.ot.sinkhorn` (private).

State and conventions. The plan is always ``P = exp((f_i + g_j - C_ij) / eps)``: the
potentials absorb ``eps log a`` and ``eps log b``. One *round* is a ``g``-step then an
``f``-step. At the end of every block (``check_every`` rounds) the error of the state the block
returns is measured on its plan (:func:`state_error`): ``||P 1 - a||_1 + ||P^T 1 - b||_1``
for balanced OT, the same against the KL-relaxed targets for unbalanced OT (zero exactly at
the fixed point), the KKT violation for partial OT. The row marginal comes free from the last
``f``-step, the column one costs one more log-sum-exp per block (two matrix-vector products
in the kernel path). ``converged`` is ``error < tol`` on the returned state, finite
potentials and a finished annealing schedule.

* balanced / unbalanced (``tau`` in (0, 1], KL(P | a x b) reference):
  ``f <- eps log a - tau_a eps LSE_j((g_j - C_ij) / eps)`` and symmetrically for ``g``;
* partial (total mass ``m``, entropy reference 1, as in Benamou et al. 2015): dual block
  coordinate ascent on ``(f <= 0, g <= 0, lam)`` with ``P = exp((f + g + lam - C) / eps)``;
  ``f <- min(0, eps log a - eps LSE_j(...))``, same for ``g``, then ``lam`` rescales the
  plan to mass ``m``. The returned ``f`` includes ``lam``. Its error adds the column change
  of the ``g``-step and the mass change of the ``lam``-step to the row change.

Two executions of a block of ``check_every`` rounds:

* *log*: every half-step is a log-sum-exp over the cost (online when the geometry is);
* *kernel* (dense, not partial): form the absorbed kernel ``K = exp((f + g - C)/eps)``
  once per block, iterate scalings ``u, v`` with matrix-vector products, then absorb
  ``f += eps log u``, ``g += eps log v``. If a scaling leaves the safe range
  (``|log u| > T``, ``T`` about a third of the dtype's log-range) or is not finite, the block
  is redone in the log domain, so the fast path never costs accuracy or stability.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from .._core.costs import CostMatrix, Geometry
from .._core.fixed_point import cond_lazy, implicit_root, iterate_blocks, sequential_vmap


class Config(NamedTuple):
    """Static solver options (hashable)."""

    tol: float
    max_iter: int
    check_every: int
    mode: str  # "auto" | "log"
    partial: bool
    eps_init: float | None
    eps_decay: float
    implicit: bool
    # a symmetric problem (C = C^T, a = b; the debiasing terms of the Sinkhorn divergence):
    # the averaged update f <- (f + T(f)) / 2 of Feydy et al. 2019 on g = f
    symmetric: bool = False
    # progress: callback(iteration, error) after every block (None: the program is unchanged)
    callback: Any = None


class Params(NamedTuple):
    """Everything the solution depends on (differentiable leaves)."""

    geom: Geometry
    a: jax.Array
    b: jax.Array
    eps: jax.Array
    tau_a: jax.Array
    tau_b: jax.Array
    mass: jax.Array


def safe_log(w):
    tiny = jnp.finfo(w.dtype).tiny
    return jnp.log(jnp.where(w > 0, w, tiny))


def _eps_at(cfg: Config, eps, k):
    if cfg.eps_init is None:
        return eps
    return jnp.maximum(eps, cfg.eps_init * cfg.eps_decay ** k.astype(eps.dtype))


def _annealed(cfg: Config, eps, k):
    if cfg.eps_init is None:
        return jnp.asarray(True)
    return cfg.eps_init * cfg.eps_decay ** k.astype(eps.dtype) <= eps


# --------------------------------------------------------------------------------------
# the error of a state (what `errors` records and `converged` tests)


def _target(w, pot, tau, eps):
    """The marginal the fixed point asks for: ``w`` when balanced (``tau == 1``), the
    KL-relaxed ``w exp((1 - tau)/tau (log w - pot/eps))`` otherwise (guarded: the unused
    branch never turns a gradient into NaN)."""
    rel = tau < 1.0
    pot_r = jnp.where(rel, pot, 0.0)
    return jnp.where(rel, _relaxed_target(w, pot_r, jnp.where(rel, tau, 0.5), eps), w)


def state_error(geom: Geometry, p: Params, eps, z, row, col):
    """L1 violation of the optimality conditions by the plan of the state ``z``.

    ``row``/``col`` are the marginals ``P 1``, ``P^T 1`` of the plan the user receives,
    ``P = exp((f + g - C) / eps)`` (``f + lam`` for partial OT). Balanced:
    ``||P 1 - a||_1 + ||P^T 1 - b||_1``; unbalanced: the same against the KL-relaxed targets
    (zero exactly at the fixed point); partial: equality where a potential is negative
    (saturated point), ``P 1 <= a`` where it is zero, plus ``|<P, 1> - m|``. NaN or inf when
    the plan is not finite, so ``err < tol`` is False then.
    """
    if len(z) == 3:
        f, g, _ = z
        e_row = jnp.where(f < 0, jnp.abs(row - p.a), jnp.maximum(row - p.a, 0.0))
        e_col = jnp.where(g < 0, jnp.abs(col - p.b), jnp.maximum(col - p.b, 0.0))
        return geom.row_sum(e_row) + jnp.sum(e_col) + jnp.abs(geom.row_sum(row) - p.mass)
    f, g = z
    return (geom.row_sum(jnp.abs(row - _target(p.a, f, p.tau_a, eps)))
            + jnp.sum(jnp.abs(col - _target(p.b, g, p.tau_b, eps))))


# --------------------------------------------------------------------------------------
# log-domain rounds


def _log_round(geom, p: Params, eps, z):
    """One g-step then one f-step; returns the new state and the f-step's log-sum-exp
    (so that ``P 1 = exp(f / eps + lse)`` for the new state, with no further pass)."""
    log_a, log_b = safe_log(p.a), safe_log(p.b)
    if len(z) == 3:  # partial
        f, g, lam = z
        lse_g = geom.lse(f, eps, 0) + lam / eps
        g_new = jnp.minimum(0.0, eps * log_b - eps * lse_g)
        log_total = logsumexp(g_new / eps + lse_g)  # in the log domain: no 0 / inf at small eps
        lam = lam + eps * (jnp.log(p.mass) - log_total)
        lse_f = geom.lse(g_new, eps, 1) + lam / eps
        f_new = jnp.minimum(0.0, eps * log_a - eps * lse_f)
        return (f_new, g_new, lam), lse_f
    f, g = z
    g = eps * log_b - p.tau_b * eps * geom.lse(f, eps, 0)
    lse_f = geom.lse(g, eps, 1)
    f_new = eps * log_a - p.tau_a * eps * lse_f
    return (f_new, g), lse_f


def _keep_active(i, n_active, new, old):
    """Rounds past the iteration budget (in the last block) leave the carry unchanged."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(i < n_active, a, b), new, old)


def _log_block(geom, p, eps, z, n_rounds, n_active):
    """``n_active >= 1`` rounds (of ``n_rounds``), then the error of the final state: its row
    marginal from the last f-step, its column marginal from one more log-sum-exp."""

    def body(i, carry):
        return _keep_active(i, n_active, _log_round(geom, p, eps, carry[0]), carry)

    lse0 = jnp.zeros(geom.shape[0], p.a.dtype)
    z, lse_f = jax.lax.fori_loop(0, n_rounds, body, (z, lse0))
    f, g = z[0], z[1]
    shift = z[2] / eps if len(z) == 3 else 0.0
    row = jnp.exp(f / eps + lse_f)
    col = jnp.exp(g / eps + geom.lse(f, eps, 0) + shift)
    return z, state_error(geom, p, eps, z, row, col)


def _sym_block(geom, p, eps, z, n_rounds, n_active):
    """Symmetric problems: ``f <- (f + eps log a - tau eps LSE_j((f_j - C_ij)/eps)) / 2``
    (one log-sum-exp per round, no oscillation), with ``g = f``; then the error of
    ``(f, f)`` (both marginals are equal by symmetry)."""
    log_a = safe_log(p.a)

    def body(i, f):
        t = eps * log_a - p.tau_a * eps * geom.lse(f, eps, 1)
        return jnp.where(i < n_active, 0.5 * (f + t), f)

    f = jax.lax.fori_loop(0, n_rounds, body, 0.5 * (z[0] + z[1]))
    row = jnp.exp(f / eps + geom.lse(f, eps, 1))
    return (f, f), state_error(geom, p, eps, (f, f), row, row)


def _safe_log_pos(t):
    # log for a quantity that may underflow to 0; 0 maps to 0 (flagged separately), so that
    # nothing non-finite enters a branch that a `cond` discards (NaN-free unrolled gradients)
    return jnp.log(jnp.where(t > 0, t, 1.0))


def _kernel_block(geom: CostMatrix, p: Params, eps, z, n_rounds, n_active, fallback, lazy):
    """``n_active`` kernel rounds of ``n_rounds`` (``n_active`` may be 0: the error of ``z`` is
    still measured), then the error of the absorbed state from the same kernel; ``fallback()``
    redoes the block in the log domain when a scaling leaves the safe range. ``lazy``: the
    fallback is a :func:`cond_lazy` (under ``vmap`` it runs only in the blocks where some
    lane needs it; not reverse-differentiable), else a ``lax.cond``."""
    f0, g0 = z
    dtype = f0.dtype
    safe = 0.35 * jnp.log(jnp.finfo(dtype).max)
    log_a, log_b = safe_log(p.a), safe_log(p.b)
    expo = (f0[:, None] + g0[None, :] - geom.cost) / eps
    K = jnp.exp(jnp.minimum(expo, safe))
    shift_a = (1.0 - p.tau_a) * f0 / eps
    shift_b = (1.0 - p.tau_b) * g0 / eps
    # full float32: a relative error of K v is a marginal error no iteration removes (TF32
    # on GPUs would floor it near 1e-3); matrix-vector products are memory bound anyway
    hi = jax.lax.Precision.HIGHEST

    # a round uses ``u K`` from the round before (``K^T 1`` for the first) and ends with the
    # next one, so the marginals of the state a block returns come from its last round:
    # ``P 1 = u * K v``, ``P^T 1 = v * K^T u``; two matrix-vector products per round, none
    # after the loop. A row/column with positive weight whose kernel sum underflowed cannot
    # be scaled: the smallest sum each row/column met is carried elementwise and tested once
    # after the loop (no reduction in the loop: each is a kernel of the compiled program)
    def body(i, carry):
        lu, lv, ktu, kv, lo_row, lo_col = carry
        lv_new = jnp.clip(log_b - p.tau_b * _safe_log_pos(ktu) - shift_b, -2 * safe, 2 * safe)
        kv_new = jnp.matmul(K, jnp.exp(lv_new), precision=hi)
        lu_new = jnp.clip(log_a - p.tau_a * _safe_log_pos(kv_new) - shift_a, -2 * safe,
                          2 * safe)
        ktu_new = jnp.matmul(jnp.exp(lu_new), K, precision=hi)
        new = (lu_new, lv_new, ktu_new, kv_new, jnp.minimum(lo_row, kv_new),
               jnp.minimum(lo_col, ktu))
        return _keep_active(i, n_active, new, carry)

    kv0 = jnp.sum(K, 1)
    inf_n, inf_m = jnp.full_like(f0, jnp.inf), jnp.full_like(g0, jnp.inf)
    init = (jnp.zeros_like(f0), jnp.zeros_like(g0), jnp.sum(K, 0), kv0, inf_n, inf_m)
    lu, lv, ktu, kv, lo_row, lo_col = jax.lax.fori_loop(0, n_rounds, body, init)
    # the marginals of the absorbed plan exp((f0 + eps lu + g0 + eps lv - C) / eps)
    row = jnp.exp(lu) * kv
    col = jnp.exp(lv) * ktu
    z_new = (f0 + eps * lu, g0 + eps * lv)
    # the fallback conditions, per row / column, set that entry's marginal to inf, so that
    # the error measured anyway is inf (one reduction each side, no extra ones):
    # - a kernel sum of a weighted row/column underflowed to 0 in some round;
    # - a scaling of a weighted row/column left the safe range (zero-weight padding rows and
    #   columns carry no mass: their scalings may leave it without harm);
    # - ``K`` was capped at ``exp(safe)`` somewhere (a row sum reaches the cap only then, or
    #   when the kernel is within a factor 2 of it: a conservative test)
    cap = 0.5 * jnp.exp(jnp.asarray(safe, dtype))
    bad_row = ((p.a > 0) & ((lo_row <= 0) | ~(jnp.abs(lu) < safe))) | (kv0 >= cap)
    bad_col = (p.b > 0) & ((lo_col <= 0) | ~(jnp.abs(lv) < safe))
    err = state_error(geom, p, eps, z_new, jnp.where(bad_row, jnp.inf, row),
                      jnp.where(bad_col, jnp.inf, col))
    ok = jnp.isfinite(err)
    if lazy:
        return cond_lazy(~ok, fallback, (z_new, err))
    return jax.lax.cond(ok, lambda: (z_new, err), fallback)


# --------------------------------------------------------------------------------------
# forward solve


def _dense_for_solve(geom: Geometry) -> Geometry:
    return geom if geom.is_online else CostMatrix(geom.cost_matrix())


def make_solve(cfg: Config):
    max_blocks = -(-cfg.max_iter // cfg.check_every)

    def solve(p: Params, init):
        geom = _dense_for_solve(p.geom)
        use_kernel = (cfg.mode == "auto" and not geom.is_online and not cfg.partial
                      and not cfg.symmetric)
        dtype = p.a.dtype

        def block(state, k):
            z, _, errors = state
            eps_k = _eps_at(cfg, p.eps, k)
            n_active = jnp.minimum(cfg.check_every, cfg.max_iter - k * cfg.check_every)

            def log_block(rounds=n_active):
                if cfg.symmetric:
                    return _sym_block(geom, p, eps_k, z, cfg.check_every, rounds)
                return _log_block(geom, p, eps_k, z, cfg.check_every, rounds)

            if use_kernel:
                # block 0's opening log round was done before the loop (see below); its
                # log-domain redo runs the block's remaining rounds too (at least one: the
                # redo measures the error of its last round), so `n_iters` counts them all
                n_kernel = n_active - (k == 0).astype(n_active.dtype)
                z_new, err = _kernel_block(geom, p, eps_k, z, cfg.check_every, n_kernel,
                                           lambda: log_block(jnp.maximum(n_kernel, 1)),
                                           lazy=cfg.implicit)
            else:
                z_new, err = log_block()
            return z_new, err, errors.at[k].set(err)

        def done(state, k):
            _, err, _ = state
            return (err < cfg.tol) & _annealed(cfg, p.eps, k)

        if use_kernel:
            # the first block opens with one log-domain round: from a cold start the scalings
            # of the first kernel rounds would leave the safe range (~exp(50) at
            # eps = 0.05 std(C)) and the whole block would fall back to the log domain. Done
            # here rather than by a `cond` on the block index inside the loop, which under
            # `vmap` (batched index) would run in every block.
            init = _log_round(geom, p, _eps_at(cfg, p.eps, jnp.asarray(0)), init)[0]
        errors = jnp.full((max_blocks,), -1.0, dtype)
        state0 = (init, jnp.asarray(jnp.inf, dtype), errors)
        (z, err, errors), n_blocks = iterate_blocks(
            block, state0, max_blocks=max_blocks, done=done, unrolled=not cfg.implicit,
            callback=cfg.callback,
            progress=lambda st, k: (jnp.minimum((k + 1) * cfg.check_every, cfg.max_iter), st[1]),
        )
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(t)) for t in z]))
        if geom.is_sharded:  # finite on every device
            finite = geom.allreduce_sum((~finite).astype(jnp.int32)) == 0
        # converged: the returned state's plan is finite, within `tol` of optimality, and was
        # computed at the final epsilon (not in the middle of an annealing schedule)
        converged = (err < cfg.tol) & jnp.isfinite(err) & finite & _annealed(
            cfg, p.eps, jnp.maximum(n_blocks - 1, 0))
        n_iters = jnp.minimum(n_blocks * cfg.check_every, cfg.max_iter)
        return z, (n_iters, errors, converged)

    return solve


# --------------------------------------------------------------------------------------
# implicit differentiation


def _marginals(geom: Geometry, f, g, eps):
    ones_m = jnp.ones(geom.shape[1], f.dtype)
    ones_n = jnp.ones(geom.shape[0], f.dtype)
    return geom.plan_apply(f, g, eps, ones_m, 1), geom.plan_apply(f, g, eps, ones_n, 0)


def _relaxed_target(w, pot, tau, eps):
    # w * exp((1 - tau) / tau * (log w - pot / eps)); equals w when tau == 1.
    return w * jnp.exp((1.0 - tau) / tau * (safe_log(w) - pot / eps))


def residual(z, p: Params):
    """Optimality conditions, zero at the solution (marginal units)."""
    if len(z) == 3:
        f, g, lam = z
        row, col = _marginals(p.geom, f + lam, g, p.eps)
        r_f = jnp.where(f < 0, row - p.a, f * p.a / p.eps)
        r_g = jnp.where(g < 0, col - p.b, g * p.b / p.eps)
        return r_f, r_g, jnp.sum(row) - p.mass
    f, g = z
    row, col = _marginals(p.geom, f, g, p.eps)
    return (
        row - _relaxed_target(p.a, f, p.tau_a, p.eps),
        col - _relaxed_target(p.b, g, p.tau_b, p.eps),
    )


def conjugate_gradient(matvec, rhs, precond, dot, *, tol, maxiter):
    """Preconditioned conjugate gradients for a symmetric PSD ``matvec`` on a pytree, with the
    inner product ``dot`` supplied by the caller (a geometry's: ``psum``'d over the devices for
    row-sharded vectors). Stops when ``|r| <= tol |rhs|`` (the rule of
    ``jax.scipy.sparse.linalg.cg``, whose iterations these are)."""
    tmap = jax.tree_util.tree_map
    atol2 = tol ** 2 * dot(rhs, rhs)
    z0 = precond(rhs)

    def cond(st):
        _, r, _, _, k = st
        return (dot(r, r) > atol2) & (k < maxiter)

    def body(st):
        x, r, p, rz, k = st
        ap = matvec(p)
        alpha = rz / dot(p, ap)
        x = tmap(lambda u, v: u + alpha * v, x, p)
        r = tmap(lambda u, v: u - alpha * v, r, ap)
        z = precond(r)
        rz_new = dot(r, z)
        p = tmap(lambda u, v: u + (rz_new / rz) * v, z, p)
        return x, r, p, rz_new, k + 1

    x0 = tmap(jnp.zeros_like, rhs)
    return jax.lax.while_loop(cond, body, (x0, rhs, z0, dot(rhs, z0), 0))[0]


def _cg_adjoint(z, p: Params, z_bar):
    """Solve the symmetric adjoint system of the (un)balanced optimality conditions.

    With ``D_a = diag(P 1) / tau_a``, ``D_b = diag(P^T 1) / tau_b`` the Jacobian of
    :func:`residual` is ``(1/eps) [[D_a, P], [P^T, D_b]]`` at the solution: symmetric, positive
    semi-definite, with null vector ``(1, -1)`` in the balanced case (the right-hand side is
    projected off it). Jacobi-preconditioned conjugate gradients on plan products.

    The geometry supplies every reduction over the rows: for a row-sharded geometry (inside
    ``shard_map``) ``P^T w`` and the inner products are ``psum``'d (``m + 2`` numbers per CG
    step) and the padding rows are held at zero, so one code serves one device and many.
    """
    f, g = z
    eps = p.eps
    geom = p.geom
    if not geom.is_online and not geom.is_sharded:
        P = geom.plan(f, g, eps)
        pw = lambda w: P @ w  # noqa: E731
        ptw = lambda w: w @ P  # noqa: E731
        row, col = jnp.sum(P, 1), jnp.sum(P, 0)
    else:
        pw = lambda w: geom.plan_apply(f, g, eps, w, 1)  # noqa: E731
        ptw = lambda w: geom.plan_apply(f, g, eps, w, 0)  # noqa: E731
        row, col = _marginals(geom, f, g, eps)
    da, db = row / p.tau_a, col / p.tau_b

    def matvec(w):
        wf, wg = w
        return geom.mask_rows(da * wf + pw(wg)), ptw(wf) + db * wg

    def precond(w):
        wf, wg = w
        return wf / jnp.where(da > 0, da, 1.0), wg / jnp.where(db > 0, db, 1.0)

    def dot(u, v):
        return geom.row_sum(u[0] * v[0]) + jnp.sum(u[1] * v[1])

    bf, bg = z_bar
    balanced = (p.tau_a == 1.0) & (p.tau_b == 1.0)
    m = g.shape[0]
    c = jnp.where(balanced, (geom.row_sum(bf) - jnp.sum(bg)) / (geom.n_rows + m), 0.0)
    rhs = (eps * geom.mask_rows(bf - c), eps * (bg + c))
    tol = 1e-6 if f.dtype == jnp.float32 else 1e-11
    return conjugate_gradient(matvec, rhs, precond, dot, tol=tol, maxiter=1000)


def implicit_pullback(z, p: Params, z_bar) -> Params:
    """The implicit-function-theorem gradient of the (un)balanced potentials: cotangents of
    the parameters ``p`` from those of the solution ``z = (f, g)``.

    ``w`` solves the adjoint system (:func:`_cg_adjoint`); the result is
    ``-(d residual / d p)^T w``, taken as the gradient of ``-<w, residual(z, p)>``. For a
    row-sharded geometry (inside ``shard_map``) each device differentiates its own share of
    that inner product with no collective (its rows of ``w_f . r_f``, the column sums over its
    rows, ``1/P`` of the replicated ``b``-term), and the cotangents of the replicated
    parameters (``y``, ``b``, ``eps``, ``tau``) are ``psum``'d; the row-sharded ones (``x``,
    ``a``) stay with their rows. On one device the share is the whole inner product. The same
    function is the backward pass of ``jaxclust.ot.sinkhorn`` (``implicit=True``) and of the
    sharded ``jaxclust.distributed.sinkhorn``.
    """
    wf, wg = _cg_adjoint(z, p, z_bar)
    f, g = z
    geom = p.geom
    share = 1.0 / geom.allreduce_sum(1)

    real = geom.mask_rows(jnp.ones_like(f))  # 0 on padding rows
    wf = geom.mask_rows(wf)

    def local_part(q: Params):
        loc = q.geom.local()
        row = loc.plan_apply(f, g, q.eps, jnp.ones_like(g), 1)
        col = loc.plan_apply(f, g, q.eps, real, 0)  # column sums over this device's real rows
        r_f = row - _relaxed_target(q.a, f, q.tau_a, q.eps)
        r_g_b = _relaxed_target(q.b, g, q.tau_b, q.eps)
        return jnp.sum(wf * r_f) + jnp.dot(wg, col) - share * jnp.dot(wg, r_g_b)

    _, vjp = jax.vjp(local_part, p)
    ct = vjp(-jnp.ones((), f.dtype))[0]
    tot = geom.allreduce_sum
    return Params(geom.sum_replicated(ct.geom), ct.a, tot(ct.b), tot(ct.eps), tot(ct.tau_a),
                  tot(ct.tau_b), tot(ct.mass))


def make_solver(cfg: Config):
    """``(params, init) -> (z, (n_iters, errors, converged))`` with the chosen gradient."""
    solve = make_solve(cfg)
    if not cfg.implicit:
        return solve
    # under vmap the forward solves and the backward passes (CG adjoint, residual VJP) run
    # one problem after another (see sequential_vmap: a batched while loop or `cg` would run
    # every lane to the slowest one's count, with batched kernels that are slower per problem
    # on CPU); not for sharded geometries
    return implicit_root(solve, residual, sequential=_sequential,
                         pullback=None if cfg.partial else implicit_pullback)


def _sequential(fn):
    def wrapped(*args):
        if any(isinstance(a, Params) and a.geom.is_sharded for a in args):
            return fn(*args)  # collectives inside: keep the plain batching
        return sequential_vmap(fn)(*args)
    return wrapped


@partial(jax.jit, static_argnums=0)
def run(cfg: Config, params: Params, init):
    """Jitted entry point: eager calls compile once per configuration and shapes (inside a
    user's ``jit`` it is inlined)."""
    return make_solver(cfg)(params, init)
