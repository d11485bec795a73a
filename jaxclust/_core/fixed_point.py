"""Fixed-point loops and implicit differentiation, written once for every solver.

:func:`iterate_blocks` runs a *block* (``check_every`` solver iterations followed by one
convergence check) until convergence or a budget of blocks. Two executions:

* ``unrolled=False``: a ``lax.while_loop`` (stops early; not reverse-differentiable, pair it
  with :func:`implicit_root`);
* ``unrolled=True``: a ``lax.scan`` over the whole budget whose steps become no-ops once
  converged, each block under ``jax.checkpoint`` so the reverse pass stores one state per
  block rather than every intermediate; blocks after convergence are skipped by a ``cond``
  (under ``vmap`` both branches run, as always for batched ``cond``).

:func:`implicit_root` attaches the implicit-function-theorem gradient to any solver: if
``z*(theta)`` solves ``r(z*, theta) = 0`` then for a cotangent ``z_bar``

.. math:: \\bar\\theta = -\\left(\\partial_\\theta r\\right)^\\top w, \\qquad
          \\left(\\partial_z r\\right)^\\top w = \\bar z,

so the reverse pass costs one linear solve, and memory does not depend on the number of
forward iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import gmres

__all__ = ["cond_lazy", "implicit_root", "iterate_blocks", "gmres_adjoint_solve",
           "report_progress", "sequential_vmap", "bounded_vmap", "bounded_vmap_scalar",
           "check_callback", "compacting_while"]

PyTree = Any

#: A progress callback: ``callback(iteration, error)`` with Python ``int`` and ``float``.
ProgressCallback = Callable[[int, float], None]


def check_callback(callback) -> None:
    """``callback`` must be ``None`` or a callable (it is a static option: hashable)."""
    if callback is not None and not callable(callback):
        raise ValueError(f"`callback` must be None or a function callback(iteration, error), "
                         f"got {type(callback).__name__}.")
    try:
        hash(callback)
    except TypeError:
        raise ValueError(f"`callback` must be hashable (it is a static option of the compiled "
                         f"program): pass a function or a functools.partial, not a "
                         f"{type(callback).__name__} instance without __hash__.") from None


def report_progress(callback: ProgressCallback | None, iteration, error, active=True) -> None:
    """Call ``callback(iteration, error)`` on the host from inside compiled code.

    With ``callback=None`` nothing is emitted: the traced program is exactly the one without
    progress reporting. Otherwise one ``jax.debug.callback`` (unordered, so it does not
    serialise the computation) receives the values as Python ``int`` and ``float``; when
    ``active`` is False at run time (a finished lane of an unrolled scan) the call is
    skipped on the host (pass the loop condition: a batched loop runs its body for finished
    lanes too). Under ``vmap`` it is called once per problem of the batch.
    """
    if callback is None:
        return

    def host(it, err, act):
        if bool(act):
            callback(int(it), float(err))

    jax.debug.callback(host, iteration, error, jnp.asarray(active))


def iterate_blocks(
    block: Callable[[PyTree, Any], tuple[PyTree, Any]],
    state: PyTree,
    *,
    max_blocks: int,
    done: Callable[[PyTree, Any], Any],
    unrolled: bool,
    callback: ProgressCallback | None = None,
    progress: Callable[[PyTree, Any], tuple[Any, Any]] | None = None,
    compact: bool = False,
) -> tuple[PyTree, Any]:
    """Run ``state = block(state, k)`` for ``k = 0, 1, ...`` until ``done(state, k)``.

    Args:
      block: one block of iterations; receives the state and the block index.
      state: initial state (a pytree of arrays).
      max_blocks: budget (static).
      done: ``done(state, k) -> bool`` evaluated after block ``k``.
      unrolled: scan the whole budget (reverse-mode differentiable) instead of a while loop.
      callback: optional ``callback(iteration, error)`` called on the host after every block
        (:func:`report_progress`); static. ``None`` (default) leaves the program unchanged.
      progress: ``progress(state, k) -> (iteration, error)``, what the callback receives
        after block ``k`` (default: ``(k + 1, nan)``).
      compact: (``unrolled=False`` only) under ``vmap``, run the loop with
        :func:`compacting_while` (the batch shrinks as lanes stop) instead of one batched
        ``while_loop`` that runs every lane to the slowest one's count. Unbatched, the
        program is the plain loop. ``block`` and ``done`` must not use collectives. Each
        stage compiles one more copy of ``block``; see :func:`compacting_while` for when
        it pays.

    Returns:
      ``(final_state, n_blocks_run)``.
    """
    def report(st, k, active=True):
        if callback is not None:
            it, err = (k + 1, jnp.nan) if progress is None else progress(st, k)
            report_progress(callback, it, err, active)

    if unrolled:
        ckpt_block = jax.checkpoint(block)

        def step(carry, k):
            st, stopped, count = carry
            # skip finished blocks (a cond, so the budget is not paid after convergence)
            new = jax.lax.cond(stopped, lambda s, _: s, ckpt_block, st, k)
            report(new, k, ~stopped)
            count = count + jnp.where(stopped, 0, 1)
            stopped = stopped | done(new, k)
            return (new, stopped, count), None

        init = (state, jnp.asarray(False), jnp.asarray(0))
        (state, _, count), _ = jax.lax.scan(step, init, jnp.arange(max_blocks))
        return state, count

    if compact:
        def compact_step(st, k, active):
            new = block(st, k)
            report(new, k, active)
            return new, done(new, k)

        return compacting_while(compact_step, state, max_blocks=max_blocks)

    def cond(carry):
        st, k, stopped = carry
        return (k < max_blocks) & ~stopped

    def body(carry):
        st, k, _ = carry
        active = cond(carry)  # False only for finished lanes of a batched loop
        st = block(st, k)
        report(st, k, active)
        return st, k + 1, done(st, k)

    state, count, _ = jax.lax.while_loop(cond, body, (state, jnp.asarray(0), jnp.asarray(False)))
    return state, count


def _stage_widths(batch: int, min_width: int) -> list[int]:
    """``batch, ceil(batch / 2), ...`` down to ``min_width`` (or ``batch`` if smaller)."""
    widths = [batch]
    while widths[-1] > max(min_width, 1):
        widths.append(max(-(-widths[-1] // 2), min_width))
    return widths


def compacting_while(step: Callable, state: PyTree, *, max_blocks: int,
                     min_width: int = 1) -> tuple[PyTree, Any]:
    """``while k < max_blocks and not stopped: state, stopped = step(state, k, True)``, whose
    ``vmap`` compacts the batch as its lanes stop.

    ``step(state, k, active) -> (state, stop)`` is one block of a solver (``active`` is for
    progress reporting: False for a lane that only rides along). Returns ``(state,
    n_blocks)`` like :func:`iterate_blocks`.

    Under ``vmap`` (``B`` lanes) a plain batched ``while_loop`` runs every lane until the
    slowest lane stops (``B x max`` lane-blocks; measured, 64 Sinkhorn problems of 64 points:
    27,520 lane-iterations for 5,670 needed). Here the loop runs in stages of static widths
    ``B, ceil(B / 2), ...`` down to ``min_width``: a stage iterates its lanes together (the
    block index ``k`` is shared: every lane starts at 0 and the active ones advance together)
    until at most the next width are still active, then the active lanes' states are
    gathered (stable order, padded with finished lanes, which stay frozen) into the next
    stage's buffer; the last stage runs until every lane has stopped, and every lane's state
    is scattered back to its place. The work is at most about twice the sum of the lanes'
    own counts, each lane runs the unbatched block's arithmetic with its own count and stop
    flag, and each stage is one more copy of the block in the compiled program.

    ``step`` may close over traced values (problem data); they are passed to the batching
    rule explicitly (as in :func:`cond_lazy`). A nested ``vmap`` batches the outer axis
    plainly (lockstep) around the inner compaction.

    When it pays: only where a batched block costs a lane much less than a single block.
    On the 2-core CPU of benchmarks/results/batched.md it does not at n = 64 (a block of ten
    64 x 64 matrix-vector products: 1.9 us per lane batched over 64 lanes, 1.9 us single),
    so :func:`sequential_vmap` (no wasted lane-blocks, one copy of the block) was as fast or
    faster, and each stage adds a copy of the block to compile (64 Sinkhorn problems of 64
    points: 12.5 ms compacted vs 11.5 ms mapped, compile 31 s vs 6.5 s). No solver uses it
    by default; it is the scheduler for backends where batched kernels are cheap per lane.
    """
    k_dtype = jnp.asarray(0).dtype
    closed = jax.make_jaxpr(step)(state, jnp.zeros((), k_dtype), jnp.asarray(True))
    consts = list(closed.consts)
    state_leaves, state_tree = jax.tree_util.tree_flatten(state)
    n_state = len(state_leaves)

    def call(cs, st_leaves, k, active):
        out = jax.core.eval_jaxpr(closed.jaxpr, cs, *st_leaves, k, active)
        return out[:n_state], out[n_state]

    def plain(cs, st_leaves):
        def cond(carry):
            _, k, stopped = carry
            return (k < max_blocks) & ~stopped

        def body(carry):
            st, k, _ = carry
            st, stop = call(cs, st, k, jnp.asarray(True))
            return st, k + 1, stop

        st, count, _ = jax.lax.while_loop(
            cond, body, (st_leaves, jnp.zeros((), k_dtype), jnp.asarray(False)))
        return st, count

    run = jax.custom_batching.custom_vmap(plain)

    @run.def_vmap
    def rule(axis_size, in_batched, cs, st_leaves):
        cs_flags, st_flags = in_batched
        bcast = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))
        st_full = [bcast(x, b) for x, b in zip(st_leaves, st_flags, strict=True)]
        # only the batched problem data is gathered per stage; the rest stays shared
        cs_b = [c for c, b in zip(cs, cs_flags, strict=True) if b]

        def lane(cs_batched, st, k, active):
            it = iter(cs_batched)
            full = [next(it) if b else c for c, b in zip(cs, cs_flags, strict=True)]
            return call(full, st, k, active)

        vstep = jax.vmap(lane, in_axes=(0, 0, None, 0))
        widths = _stage_widths(axis_size, min_width)
        stopped = jnp.zeros((axis_size,), bool)
        # (values made here, not in the enclosing trace: the rule runs when vmap batches it)
        count = jnp.zeros((axis_size,), k_dtype)
        k = jnp.zeros((), k_dtype)
        for s, w in enumerate(widths):
            last = s == len(widths) - 1
            target = 0 if last else widths[s + 1]
            # the (at most w) active lanes first, in their order; then finished lanes
            idx = jnp.argsort(stopped, stable=True)[:w]
            buf = [x[idx] for x in st_full]
            cbuf = [c[idx] for c in cs_b]
            stop_b, count_b = stopped[idx], count[idx]

            def cond(carry, target=target):
                _, k, stop_b, _ = carry
                return (k < max_blocks) & (jnp.sum(~stop_b) > target)

            def body(carry, cbuf=cbuf):
                st, k, stop_b, count_b = carry
                active = ~stop_b
                new, stop_new = vstep(cbuf, st, k, active)
                keep = lambda a, b: jnp.where(
                    active.reshape(active.shape + (1,) * (a.ndim - 1)), a, b)
                st = [keep(a, b) for a, b in zip(new, st, strict=True)]
                count_b = jnp.where(active, k + 1, count_b)
                return st, k + 1, stop_b | (active & stop_new), count_b

            buf, k, stop_b, count_b = jax.lax.while_loop(cond, body, (buf, k, stop_b, count_b))
            st_full = [x.at[idx].set(b, unique_indices=True) for x, b in
                       zip(st_full, buf, strict=True)]
            stopped = stopped.at[idx].set(stop_b, unique_indices=True)
            count = count.at[idx].set(count_b, unique_indices=True)
        return (st_full, count), ([True] * n_state, True)

    st, count = run(consts, state_leaves)
    return jax.tree_util.tree_unflatten(state_tree, st), count


def cond_lazy(pred, true_fn: Callable[[], PyTree], false_value: PyTree) -> PyTree:
    """``true_fn()`` if ``pred`` else ``false_value``, cheap under ``vmap``.

    A ``lax.cond`` whose predicate is batched becomes a ``select``: both branches run for every
    lane, always. Here the branch is a ``while_loop`` of at most one iteration; a batched
    ``while_loop`` runs while *some* lane's predicate holds, so ``true_fn`` runs (for all lanes,
    the others keep ``false_value``) only when at least one lane needs it. Unbatched it costs
    what a ``cond`` costs. Like every ``while_loop``, not reverse-differentiable (use it in
    forward solves that :func:`implicit_root` differentiates). ``true_fn()`` must return the
    structure, shapes and dtypes of ``false_value``.

    ``true_fn`` usually reads only values from outside that loop; XLA's loop-invariant code
    motion then hoists the whole branch out of the batched loop and runs it always (measured
    on CPU: a vmapped ``cond_lazy`` with every predicate False cost as much as one whose
    predicates are all True). So the branch reads its inputs through an
    ``optimization_barrier`` together with the loop-carried predicate, which XLA cannot move
    out of the loop.
    """
    closed = jax.make_jaxpr(true_fn)()
    out_tree = jax.tree_util.tree_structure(false_value)

    def body(carry):
        p, _ = carry
        p, consts = jax.lax.optimization_barrier((p, list(closed.consts)))
        out = jax.core.eval_jaxpr(closed.jaxpr, consts)
        return jnp.zeros_like(p), jax.tree_util.tree_unflatten(out_tree, out)

    _, out = jax.lax.while_loop(lambda c: c[0], body, (jnp.asarray(pred, bool), false_value))
    return out


def sequential_vmap(fn: Callable, batch_size: int | None = None) -> Callable:
    """``fn`` whose ``vmap`` runs the problems one after another (``lax.map``), inside one
    compiled program.

    A batched ``while_loop`` runs until the slowest lane has converged (every lane pays the
    largest iteration count), selects every carry at every step, and turns data-dependent
    ``cond`` into ``select``; on CPU, batched matrix-vector products and log-sum-exps are also
    several times slower per problem than single ones. Mapping the single solve keeps each
    problem's own iteration count and kernels, so ``jit(vmap(solve))`` costs a loop of jitted
    solves without the per-call dispatch, and every lane equals the unbatched solve.
    ``batch_size`` (optional) vectorises that many problems per step of the map.

    Forward only (a ``custom_vmap``): wrap it in :func:`implicit_root`, whose ``custom_vjp``
    differentiates it; nested ``vmap`` maps again. The result is jitted: an eager call (or an
    eager ``vmap``) traces ``fn`` once per shapes, not at every call (a bare ``custom_vmap``
    retraces its body every time it is called outside ``jit``).
    """
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, *args):
        # mapped one by one, a nested vmap maps again; chunks of batch_size are vectorised
        # by lax.map itself, so they run the plain batching of fn
        batched, call, _ = _split_batched(wrapped if batch_size is None else fn, args,
                                          in_batched)
        out = jax.lax.map(call, batched, batch_size=batch_size)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return jax.jit(wrapped)


def _split_batched(fn: Callable, args, in_batched):
    """For a ``custom_vmap`` rule: ``(batched leaves, call, one problem)``; ``call(xs)``
    applies ``fn`` to the arguments with the batched leaves replaced by ``xs``, and ``one
    problem`` is the arguments with ``jax.ShapeDtypeStruct`` leaves of one problem where
    batched."""
    flat, tree = jax.tree_util.tree_flatten(args)
    flags = jax.tree_util.tree_leaves(in_batched)
    batched = [x for x, b in zip(flat, flags, strict=True) if b]

    def call(xs):
        it = iter(xs)
        return fn(*jax.tree_util.tree_unflatten(
            tree, [next(it) if b else x for x, b in zip(flat, flags, strict=True)]))

    one = jax.tree_util.tree_unflatten(tree, [
        jax.ShapeDtypeStruct(x.shape[1:], x.dtype) if b else x
        for x, b in zip(flat, flags, strict=True)])
    return batched, call, one


#: entries of the temporaries of one step of :func:`bounded_vmap` (4 MiB in float32): a
#: batched program whose temporaries pass glibc's largest mmap threshold (32 MiB) gets them
#: as fresh pages at every call, and on the 2-core EPYC VM of 2026-12-04 each 4 KiB page
#: cost ~3 us to fault in (a [64, 512, 512] float32 cost matrix: 17,000 faults, ~50 ms)
BOUNDED_VMAP_ENTRIES = 1 << 20


def bounded_vmap(fn: Callable, entries: Callable[..., int],
                 budget: int = BOUNDED_VMAP_ENTRIES) -> Callable:
    """``fn`` (pytrees of arrays in and out) whose ``vmap`` never vectorises more than
    ``budget // entries(*args)`` problems at once (at least one; ``budget`` defaults to
    ``BOUNDED_VMAP_ENTRIES``): above that it runs ``lax.map`` over groups of problems of
    that size (one problem after another when that is one), so that the temporaries of a
    batched call stay those of a few problems instead of growing with the batch.

    For work whose temporaries are large per problem (a dense ``n x m`` cost matrix
    reduced to a few numbers): ``jit(vmap)`` of the plain function materialises the whole
    ``(B, n, m)`` batch, so it is slower than a loop over the problems (memory traffic and,
    past a few tens of MiB, fresh pages at every call) and its memory grows with ``B``.
    ``entries(*args)`` is the size of one problem's temporaries (called with the shapes of
    one problem: ``jax.ShapeDtypeStruct`` leaves where batched). Derivatives of any order
    are those of ``fn`` (a ``custom_jvp`` whose rule is ``jax.jvp(fn)``; differentiated
    batched calls vectorise the whole batch, as plain ``fn``). The result is jitted (eager
    calls trace once per shapes).
    """
    mapped = jax.custom_batching.custom_vmap(fn)

    @mapped.def_vmap
    def rule(axis_size, in_batched, *args):
        batched, call, one_problem = _split_batched(fn, args, in_batched)
        size = max(1, budget // max(1, entries(*one_problem)))
        if size >= axis_size:
            out = jax.vmap(call)(batched)
        else:
            out = jax.lax.map(call, batched, batch_size=size if size > 1 else None)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    @jax.custom_jvp
    def wrapped(*args):
        return mapped(*args)

    @wrapped.defjvp
    def _jvp(primals, tangents):
        return jax.jvp(fn, primals, tangents)

    return jax.jit(wrapped)


def bounded_vmap_scalar(fn: Callable, entries: Callable[..., int]) -> Callable:
    """:func:`bounded_vmap` for a scalar ``fn`` of float arrays, whose batched *gradients*
    are bounded too: the derivative rule evaluates ``fn`` and its gradient together, as one
    :func:`bounded_vmap` function, and the tangent is their inner product with the input
    tangents (linear in them, so reverse mode transposes it without entering the map).
    Second derivatives differentiate that gradient function (plain batching)."""
    plain = bounded_vmap(fn, entries)

    @jax.custom_jvp
    def wrapped(*args):
        return plain(*args)

    @wrapped.defjvp
    def _jvp(primals, tangents):
        both = jax.value_and_grad(fn, argnums=tuple(range(len(primals))))
        value, grads = bounded_vmap(both, entries)(*primals)
        dot = sum(jnp.vdot(g, t) for g, t in zip(jax.tree_util.tree_leaves(grads),
                                                   jax.tree_util.tree_leaves(tangents),
                                                   strict=True))
        return value, dot

    return jax.jit(wrapped)


def gmres_solve(matvec: Callable, b: jax.Array, *, tol: float, restart: int = 30,
                max_restarts: int = 20) -> jax.Array:
    """Restarted GMRES for ``matvec(x) = b`` (arrays of any shape), written with plain loops.

    Unlike ``jax.scipy.sparse.linalg.gmres`` it does not go through
    ``lax.custom_linear_solve``, so ``matvec`` may itself contain custom-VJP functions (e.g.
    the VJP of a map that calls another implicitly differentiated solver). Stops when
    ``|b - A x| <= tol |b|`` or after ``max_restarts`` cycles of ``restart`` Arnoldi steps
    (classical Gram-Schmidt, applied twice).
    """
    shape, bv = b.shape, b.reshape(-1)
    n = bv.shape[0]
    m = max(1, min(restart, n))
    mv = lambda v: matvec(v.reshape(shape)).reshape(-1)
    bnorm = jnp.linalg.norm(bv)
    safe = lambda t: jnp.where(t > 0, t, 1.0)

    def cycle(x):
        r = bv - mv(x)
        beta = jnp.linalg.norm(r)
        V = jnp.zeros((m + 1, n), bv.dtype).at[0].set(r / safe(beta))
        H = jnp.zeros((m + 1, m), bv.dtype)

        def arnoldi(j, VH):
            V, H = VH
            w = mv(V[j])
            mask = (jnp.arange(m + 1) <= j).astype(bv.dtype)
            h = (V @ w) * mask
            w = w - h @ V
            h2 = (V @ w) * mask
            w = w - h2 @ V
            hn = jnp.linalg.norm(w)
            H = H.at[:, j].set((h + h2).at[j + 1].set(hn))
            return V.at[j + 1].set(w / safe(hn)), H

        V, H = jax.lax.fori_loop(0, m, arnoldi, (V, H))
        y = jnp.linalg.lstsq(H, jnp.zeros((m + 1,), bv.dtype).at[0].set(beta))[0]
        return x + y @ V[:m]

    def cond(s):
        x, it, res = s
        return (it < max_restarts) & (res > tol * bnorm)

    def body(s):
        x, it, _ = s
        x = cycle(x)
        return x, it + 1, jnp.linalg.norm(bv - mv(x))

    x0 = jnp.zeros_like(bv)
    x, _, _ = jax.lax.while_loop(cond, body, (x0, jnp.asarray(0), bnorm))
    return x.reshape(shape)


def gmres_adjoint_solve(residual, z, params, z_bar, *, tol=1e-6, maxiter=200):
    """Generic adjoint solve ``(d r / d z)^T w = z_bar`` with restarted GMRES on VJPs."""
    _, vjp = jax.vjp(lambda zz: residual(zz, params), z)
    w, _ = gmres(lambda v: vjp(v)[0], z_bar, tol=tol, atol=0.0, maxiter=maxiter,
                 restart=min(50, maxiter))
    return w


def implicit_root(solve: Callable, residual: Callable, adjoint_solve: Callable | None = None,
                  *, sequential: bool | Callable | tuple = True, pullback: Callable | None = None):
    """Wrap ``solve(params, init) -> (z, aux)`` with implicit differentiation.

    Args:
      solve: the forward solver; ``aux`` (iteration counts, flags ...) gets no gradient and
        ``init`` (a warm start) gets a zero gradient.
      residual: ``residual(z, params)``, zero at the solution, same structure as ``z``.
      adjoint_solve: ``adjoint_solve(z, params, z_bar) -> w`` solving
        ``(d residual / d z)^T w = z_bar``; defaults to :func:`gmres_adjoint_solve`.
      sequential: under ``vmap``, run the forward solves and the adjoint solves one problem
        after another (:func:`sequential_vmap`: each keeps its own iteration count) instead
        of one batched loop that iterates every problem to the slowest one's count. Pass
        False when ``solve`` uses collectives (sharded data); a callable ``wrap(fn) -> fn``
        is used instead of :func:`sequential_vmap` (e.g. to skip it for sharded inputs); a
        pair ``(wrap_solve, wrap_pullback)`` wraps the two differently (``None``: leave it
        as it is, e.g. a solve whose loop compacts itself, :func:`compacting_while`).
      pullback: ``pullback(z, params, z_bar) -> params_bar``, the whole backward pass
        (adjoint solve and residual VJP) when the solver has its own (e.g. one that also
        serves row-sharded problems); replaces ``adjoint_solve`` and the default VJP.

    Returns:
      A function ``(params, init) -> (z, aux)`` with the same forward values. ``solve``,
      ``residual`` and ``adjoint_solve`` must not close over traced arrays: pass every
      array through ``params``.
    """
    if adjoint_solve is None:
        def adjoint_solve(z, params, z_bar):
            return gmres_adjoint_solve(residual, z, params, z_bar)

    if pullback is None:
        def pullback(z, params, z_bar):
            w = adjoint_solve(z, params, z_bar)
            _, vjp = jax.vjp(lambda p: residual(z, p), params)
            return vjp(jax.tree_util.tree_map(jnp.negative, w))[0]

    if isinstance(sequential, tuple):
        wrap_solve, wrap_pullback = sequential
        solve = solve if wrap_solve is None else wrap_solve(solve)
        pullback = pullback if wrap_pullback is None else wrap_pullback(pullback)
    elif sequential:
        # the whole backward pass (adjoint solve and residual VJP) per problem, too
        wrap = sequential if callable(sequential) else sequential_vmap
        solve, pullback = wrap(solve), wrap(pullback)

    @jax.custom_vjp
    def run(params, init):
        return solve(params, init)

    def fwd(params, init):
        z, aux = solve(params, init)
        return (z, aux), (z, params, init)

    def bwd(res, cts):
        z, params, init = res
        p_bar = pullback(z, params, cts[0])
        return p_bar, jax.tree_util.tree_map(jnp.zeros_like, init)

    run.defvjp(fwd, bwd)
    return run
