"""Batched solves (issue 15, section 1): ``jax.vmap`` of a solver returns, lane by lane, what
the unbatched solver returns, including each lane's own ``n_iters`` and ``converged``.

The timing side lives in ``benchmarks/bench_batched.py``; here: equality on tiny problems
whose lanes need different iteration counts (so a batched loop that ran every lane to the
slowest one, or reported a shared count, would fail)."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxclust.ot as jot
from jaxclust._core.fixed_point import (
    cond_lazy,
    implicit_root,
    iterate_blocks,
    sequential_vmap,
)

B, N, M, D = 3, 10, 12, 2


def _problems():
    kx, ky = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, (B, N, D))
    # lanes of increasing spread: different iteration counts
    y = jax.random.normal(ky, (B, M, D)) * jnp.array([0.5, 1.5, 3.0])[:, None, None] + 1.0
    return x, y


def _loop(fn, *args):
    outs = [fn(*(a[i] for a in args)) for i in range(args[0].shape[0])]
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(v) for v in xs]), *outs)


def _assert_lanes_equal(loop_out, vmap_out, rtol=1e-5):
    for a, b in zip(jax.tree_util.tree_leaves(loop_out), jax.tree_util.tree_leaves(vmap_out),
                    strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(mode="log"), dict(tau_a=0.8, tau_b=0.9), dict(mass=0.6), dict(chunk_size=4)],
    ids=["balanced", "log", "unbalanced", "partial", "online"],
)
def test_sinkhorn_vmap_equals_loop(kw):
    x, y = _problems()

    def solve(x, y):
        r = jot.sinkhorn(x, y, epsilon=0.1, tol=1e-4, check_every=5, **kw)
        return r.f, r.g, r.n_iters, r.converged, r.errors

    single = jax.jit(solve)
    loop_out = _loop(single, x, y)
    vmap_out = jax.jit(jax.vmap(solve))(x, y)
    _assert_lanes_equal(loop_out, vmap_out)
    n_iters = np.asarray(vmap_out[2])
    assert len(set(n_iters.tolist())) > 1, n_iters  # the lanes really differ
    assert np.all(np.asarray(vmap_out[3]))


def test_divergence_grad_vmap_equals_loop():
    x, y = _problems()

    def grad(x, y):
        return jax.grad(lambda xx: jot.sinkhorn_divergence(xx, y, epsilon=0.1).divergence)(x)

    loop_out = _loop(jax.jit(grad), x, y)
    vmap_out = jax.jit(jax.vmap(grad))(x, y)
    _assert_lanes_equal(loop_out, vmap_out, rtol=1e-4)
    assert np.all(np.isfinite(vmap_out))


def test_sequential_vmap_nested_and_unbatched_args():
    """Per-lane while loops (own counts), an unbatched argument, vmap of vmap."""

    def count(t, scale):  # halvings of t * scale down to 1
        return jax.lax.while_loop(lambda c: c[0] > 1.0, lambda c: (c[0] / 2, c[1] + 1),
                                  (t * scale, 0))[1]

    f = sequential_vmap(count)
    t = jnp.array([[1.5, 5.0, 40.0], [3.0, 100.0, 0.5]])
    want = np.ceil(np.log2(np.maximum(np.asarray(t) * 2.0, 1.0))).astype(int)
    got = jax.jit(jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(0, None)))(t, 2.0)
    np.testing.assert_array_equal(got, want)


def test_cond_lazy():
    f = jax.vmap(lambda p, x: cond_lazy(p, lambda: x * 10.0, x))
    out = f(jnp.array([True, False, True]), jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out, [10.0, 2.0, 30.0])
    assert float(cond_lazy(False, lambda: jnp.float32(1.0), jnp.float32(2.0))) == 2.0


def _computations(hlo: str) -> dict[str, str]:
    """Named computations of an HLO module text -> their bodies."""
    comps, name, lines = {}, None, []
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%(\S+) ", line)
        if m and line.rstrip().endswith("{"):
            name, lines = m.group(1), []
        elif line.startswith("}") and name is not None:
            comps[name], name = "\n".join(lines), None
        elif name is not None:
            lines.append(line)
    return comps


def test_cond_lazy_branch_stays_in_the_loop():
    """Under vmap the branch must run only inside the loop: XLA's loop-invariant code motion
    hoisted it out before (its inputs come from outside the loop), so a batched fallback ran
    in every call even when no lane needed it (the Sinkhorn kernel path's log-domain block:
    ~9x slower per block). Checked on the compiled program: every computation holding the
    branch's ``sine`` is reached from the while body."""
    f = jax.jit(jax.vmap(lambda p, x: cond_lazy(p, lambda: jnp.sin(x) * 3.0, x)))
    compiled = f.lower(jnp.zeros(4, bool), jnp.ones((4, 3))).compile()
    comps = _computations(compiled.as_text())
    bodies = {m for c in comps.values() for m in re.findall(r"body=%([\w.\-]+)", c)}
    assert bodies, "no while loop in the compiled program"
    seen, todo = set(), list(bodies)
    while todo:
        c = todo.pop()
        if c in seen or c not in comps:
            continue
        seen.add(c)
        todo += re.findall(r"(?:calls|to_apply|body|condition)=%([\w.\-]+)", comps[c])
    with_sine = {c for c, body in comps.items() if "sine(" in body}
    assert with_sine and with_sine <= seen, (with_sine, seen)
    out = f(jnp.array([True, False, False, True]), jnp.ones((4, 3)))
    np.testing.assert_allclose(out[:, 0], [3 * np.sin(1.0), 1.0, 1.0, 3 * np.sin(1.0)],
                               rtol=1e-6)


def test_kmeans_vmap_equals_loop_with_empty_cluster_in_one_lane():
    """k-means' empty-cluster relocation (a cond_lazy) acts on its own lane only; n_init
    restarts (a vmap inside) too."""
    import jaxclust.cluster as jc

    x, _ = _problems()
    c0 = x[:, :3] + 0.01
    c0 = c0.at[0, 2].set(100.0)  # lane 0: a centre far from every point, empty at step 1

    def run(x, c0, key):
        a = jc.kmeans(x, 3, key=key, init=c0)
        b = jc.kmeans(x, 3, key=key, n_init=2)
        return a.centroids, a.labels, a.n_iters, a.converged, b.labels, b.inertia

    keys = jax.random.split(jax.random.key(0), B)
    loop_out = _loop(jax.jit(run), x, c0, keys)
    vmap_out = jax.jit(jax.vmap(run))(x, c0, keys)
    _assert_lanes_equal(loop_out, vmap_out)
    assert np.all(np.abs(np.asarray(vmap_out[0])[0]) < 50.0)  # the empty centre moved


def test_kmedoids_vmap_equals_loop():
    """k-medoids under vmap (the swap search maps the problems one after another): every
    lane equals the single solve. Lanes of different spread make different numbers of swaps
    and passes; ``n = 37`` is no multiple of the candidate block (the last block is clamped
    to the end)."""
    import jaxclust.cluster as jc

    n = 37
    kc, kx = jax.random.split(jax.random.key(5))
    centres = 4.0 * jax.random.normal(kc, (B, 4, D))
    lab = jnp.arange(n) % 4
    spread = jnp.array([0.3, 1.0, 3.0])[:, None, None]
    x = centres[:, lab] + spread * jax.random.normal(kx, (B, n, D))

    def run(x):
        return jc.kmedoids(x, 3, init=jnp.arange(3))  # a poor start: several swaps

    loop_out = _loop(jax.jit(run), x)
    vmap_out = jax.jit(jax.vmap(run))(x)
    # float32: each loss sums n distances in the same order, batched or not
    _assert_lanes_equal(loop_out, vmap_out, rtol=1e-6)
    swaps = np.asarray(vmap_out.n_swaps)
    assert swaps.min() >= 1 and len(set(swaps.tolist())) > 1, swaps  # lanes differ


@pytest.mark.parametrize("n", [64, 24])
def test_p2ot_codes_vmap_in_groups_equals_loop(n):
    """P²OT under vmap: groups of up to ``_VECTORISED_ENTRIES`` cost entries (n = 64, k = 4:
    8 problems per group, 19 = 2 groups + 3; n = 24: the whole batch in one group) run one
    vectorised loop each; every lane equals the single solve (its flag exactly, its values
    to float32 rounding; its iteration count up to one check)."""
    from jaxclust.ot import progressive

    k = 4
    assert progressive._VECTORISED_ENTRIES // (n * k) in (8, 21)
    scores = jax.random.normal(jax.random.key(13), (19, n, k))
    scores = scores * jnp.linspace(0.5, 4.0, 19)[:, None, None]  # lanes of other iterations
    lp = jax.nn.log_softmax(scores, -1)

    def run(lp):
        return jot.p2ot_codes(lp, mass=0.5)

    loop_out = _loop(jax.jit(run), lp)
    vmap_out = jax.jit(jax.vmap(run))(lp)
    # float32: a vectorised log-sum-exp may round otherwise than the single one (it does
    # under the suite's quick compile flags), so a lane whose error sits at `tol` may stop
    # one check (10 iterations) apart; the values agree to that accuracy
    for name in ("plan", "codes", "weights", "f", "g", "error"):
        np.testing.assert_allclose(getattr(vmap_out, name), getattr(loop_out, name),
                                   rtol=1e-4, atol=5e-5, err_msg=name)
    np.testing.assert_array_equal(vmap_out.converged, loop_out.converged)
    assert np.max(np.abs(np.asarray(vmap_out.n_iters) - loop_out.n_iters)) <= 10
    assert len(set(np.asarray(vmap_out.n_iters).tolist())) > 1  # lanes differ


def _temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_batched_temporaries_do_not_grow_with_the_batch():
    """``jit(vmap)`` of k-medoids and of ``default_epsilon`` does not materialise the batch's
    ``(B, n, n)`` / ``(B, n, m)`` matrices: going from 8 to 32 (16 to 64) problems adds less
    than one problem's matrix to the program's temporaries (before: each added problem added its
    matrix, three times for k-medoids; on a 2-core EPYC those fresh pages made the batched
    call slower than a loop). Measured from XLA's buffer assignment, not from timings."""
    import jaxclust.cluster as jc

    n, m = 256, 300
    med = jax.vmap(lambda x: jc.kmedoids(x, 4))
    eps = jax.vmap(jot.default_epsilon)
    t_med = [_temp_bytes(med, jnp.zeros((b, n, 3))) for b in (8, 32)]
    # default_epsilon vectorises up to BOUNDED_VMAP_ENTRIES // (n m) = 13 problems at once
    t_eps = [_temp_bytes(eps, jnp.zeros((b, n, 3)), jnp.zeros((b, m, 3))) for b in (16, 64)]
    assert t_med[1] - t_med[0] < n * n * 4, t_med
    assert t_eps[1] - t_eps[0] < n * m * 4, t_eps


def test_divergence_gradient_temporaries_do_not_grow_with_the_batch():
    """``vmap(grad(sinkhorn_divergence))``: the plan totals of the three ``reg_cost`` (value
    and gradient) are formed a few problems at a time (before: 15.6 MB of temporaries at
    B = 16, 58.6 MB at B = 64 for n = 256, m = 300)."""
    n, m = 256, 300
    gr = jax.vmap(jax.grad(lambda x, y: jot.sinkhorn_divergence(x, y, epsilon=1.0).divergence))
    t = [_temp_bytes(gr, jnp.zeros((b, n, 2)), jnp.zeros((b, m, 2))) for b in (16, 64)]
    assert t[1] - t[0] < n * m * 4, t


def test_reg_cost_of_a_batch_in_groups_equals_single_solves():
    """Past ``BOUNDED_VMAP_ENTRIES`` per batch (here groups of 4 problems and a remainder of
    1), ``reg_cost`` under ``vmap`` and its gradient (``bounded_vmap_scalar``: value and
    gradient per group) equal the single solves'."""
    kx, ky = jax.random.split(jax.random.key(12))
    x = jax.random.normal(kx, (5, 500, 2)) * jnp.arange(1.0, 6.0)[:, None, None]
    y = jax.random.normal(ky, (5, 450, 2)) + 1.0

    def reg(x, y):
        return jot.sinkhorn(x, y, epsilon=1.0, tol=1e-5).reg_cost

    single = [jax.jit(jax.value_and_grad(reg))(x[i], y[i]) for i in range(5)]
    # reverse mode through the batch (the gradient's tangent is transposed outside the map)
    grads, values = jax.jit(jax.grad(lambda x: ((v := jax.vmap(reg)(x, y)).sum(), v),
                                     has_aux=True))(x)
    np.testing.assert_allclose(values, [s[0] for s in single], rtol=1e-5)
    np.testing.assert_allclose(grads, np.stack([s[1] for s in single]), rtol=1e-4, atol=1e-6)


def test_default_epsilon_vmap_in_groups_equals_loop_and_differentiates():
    """Past ``BOUNDED_VMAP_ENTRIES`` per batch, ``vmap(default_epsilon)`` reduces the
    problems a few at a time (``lax.map``): each lane equals the single call, nested and
    partly unbatched ``vmap`` too, and first and second derivatives are those of the plain
    computation (the ``custom_jvp`` rule)."""
    kx, ky = jax.random.split(jax.random.key(11))
    x = jax.random.normal(kx, (7, 600, 3)) * jnp.arange(1.0, 8.0)[:, None, None]
    y = jax.random.normal(ky, (7, 500, 3)) + 1.0
    single = np.stack([np.asarray(jot.default_epsilon(x[i], y[i])) for i in range(7)])
    np.testing.assert_allclose(jax.jit(jax.vmap(jot.default_epsilon))(x, y), single,
                               rtol=2e-6)
    # the transformations below are jitted (one program each, not op-by-op dispatch: test
    # time); the batching rule is the same under jit and eagerly
    half = jax.jit(jax.vmap(jot.default_epsilon, in_axes=(0, None)))(x, y[0])
    np.testing.assert_allclose(half[0], single[0], rtol=2e-6)
    nested = jax.jit(jax.vmap(jax.vmap(jot.default_epsilon)))(x[:6].reshape(2, 3, 600, 3),
                                                              y[:6].reshape(2, 3, 500, 3))
    np.testing.assert_allclose(nested.reshape(-1), single[:6], rtol=2e-6)
    # derivatives: batched gradient equals the single one; a Hessian-vector product exists
    g_single = jax.jit(jax.grad(jot.default_epsilon))(x[2], y[2])
    g_batch = jax.jit(jax.grad(lambda x: jnp.sum(jax.vmap(jot.default_epsilon)(x, y))))(x)
    np.testing.assert_allclose(g_batch[2], g_single, rtol=1e-4, atol=1e-9)
    # second derivatives: Hessian-vector products, single and batched (vmap of the jvp of
    # the gradient), equal those of an independent formula, 0.05 * std of the broadcast
    # squared distances (no PointCloud, no moments)
    def plain(a, b):
        return 0.05 * jnp.std(jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1))

    def hvp(f, a, b, v):
        return jax.jvp(jax.grad(lambda a: f(a, b)), (a,), (v,))[1]

    a, b = x[:3, :30], y[:3, :40]
    v = jax.random.normal(jax.random.key(5), a.shape)
    want = np.asarray(jax.jit(jax.vmap(lambda a, b, v: hvp(plain, a, b, v)))(a, b, v))
    assert np.abs(want).max() > 1e-3  # a non-trivial curvature
    # float32: measured 1.9e-5 relative at most (2026-12-05)
    one = jax.jit(lambda a, b, v: hvp(jot.default_epsilon, a, b, v))(a[1], b[1], v[1])
    np.testing.assert_allclose(one, want[1],
                               rtol=1e-4, atol=1e-5 * np.abs(want).max())
    batched = jax.jit(jax.vmap(lambda a, b, v: hvp(jot.default_epsilon, a, b, v)))(a, b, v)
    np.testing.assert_allclose(batched, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


# --------------------------------------------------------------------------------------
# fixed_point.sequential_vmap: traced once per shapes; compacting_while: the batch shrinks


def test_sequential_vmap_traces_once_per_shape():
    """An eager call (and an eager vmap) of a sequential_vmap'd function traces its body once,
    not at every call (a bare custom_vmap retraced it every time)."""
    traces = []

    def halvings(t, s):
        traces.append(1)
        return jax.lax.while_loop(lambda c: c[0] > 1.0, lambda c: (c[0] / 2, c[1] + 1),
                                  (t * s, 0))[1]

    f = sequential_vmap(halvings)
    t = jnp.array([1.5, 5.0, 40.0])
    for _ in range(3):
        assert int(f(t[2], 2.0)) == 7
    assert len(traces) == 1
    for _ in range(3):
        np.testing.assert_array_equal(jax.vmap(f, in_axes=(0, None))(t, 2.0), [2, 4, 7])
    assert len(traces) <= 2  # one more trace for the batched body, then cached


_MAX_BLOCKS = 30


def _contract(x0, thr, rate, compact=True, callback=None):
    """A toy solver on iterate_blocks: x <- rate * x + 0.05 sin(x) (elementwise, so a lane
    computes bit for bit what the single solve computes) until max |x| < thr; a history
    of max |x| per block."""

    def block(st, k):
        x, hist = st
        x = rate * x + 0.05 * jnp.sin(x)
        return x, hist.at[k].set(jnp.max(jnp.abs(x)))

    state0 = (x0, jnp.full((_MAX_BLOCKS,), -1.0, x0.dtype))
    (x, hist), n = iterate_blocks(
        block, state0, max_blocks=_MAX_BLOCKS, done=lambda st, k: jnp.max(jnp.abs(st[0])) < thr,
        unrolled=False, compact=compact, callback=callback,
        progress=lambda st, k: (k + 1, st[1][k]))
    return x, hist, n


def _contract_inputs(B):
    rng = np.random.default_rng(B)
    x0 = jnp.asarray(rng.normal(size=(B, 3)) * 10.0 ** rng.integers(-1, 3, (B, 1)), jnp.float32)
    thr = jnp.asarray(10.0 ** -rng.integers(1, 7, B), jnp.float32)
    rate = jnp.asarray(rng.uniform(0.3, 0.9, B), jnp.float32)
    if B > 2:
        thr = thr.at[1].set(0.0)  # never stops: runs the whole budget
    return x0, thr, rate


@pytest.mark.parametrize("B", [1, 2, 7, 13])
def test_compacting_while_equals_single_solves(B):
    """Each lane: the single solve's state, history and block count, bit for bit (B = 1, not
    a power of two, one lane at the budget); and the compacted loop really ran the lanes to
    different counts."""
    x0, thr, rate = _contract_inputs(B)
    single = jax.jit(lambda a, b, c: _contract(a, b, c, compact=False))
    loop_out = _loop(single, x0, thr, rate)
    got = jax.jit(jax.vmap(_contract))(x0, thr, rate)
    for a, b in zip(loop_out, got, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    n = np.asarray(got[2])
    if B > 2:
        assert n[1] == _MAX_BLOCKS and n.min() < _MAX_BLOCKS // 2, n


def test_compacting_while_nested_vmap_and_unbatched_data():
    x0, thr, rate = _contract_inputs(6)
    x0 = x0.reshape(2, 3, 3)
    thr = thr.reshape(2, 3)
    f = jax.jit(jax.vmap(jax.vmap(_contract, in_axes=(0, 0, None)), in_axes=(0, 0, None)))
    got = f(x0, thr, 0.6)
    single = jax.jit(lambda a, b: _contract(a, b, 0.6, compact=False))
    for i in range(2):
        want = _loop(single, x0[i], thr[i])
        for a, b in zip(want, got, strict=True):
            b = np.asarray(b)[i]
            if a.dtype.kind == "f":
                # to the last ulp or two, not bit for bit: XLA does not promise the same
                # rounding for one elementwise formula in programs of different shapes; under
                # the suite's --xla_cpu_parallel_codegen_split_count=1 one entry of the
                # (2, 3, 3) batch differed from its single solve by 1.4 ulp (2026-12-05)
                np.testing.assert_array_max_ulp(a, b, maxulp=2)
            else:
                np.testing.assert_array_equal(a, b)


def test_compacting_while_callback_once_per_lane_block():
    """Progress under vmap: each lane reports each block it runs, once (lanes riding along in
    a stage after they stopped report nothing)."""
    calls = []

    def cb(it, err):
        calls.append((it, round(err, 4)))

    x0, thr, rate = _contract_inputs(5)
    f = jax.jit(jax.vmap(lambda a, b, c: _contract(a, b, c, callback=cb)))
    _, hist, n = jax.block_until_ready(f(x0, thr, rate))
    jax.effects_barrier()
    hist, n = np.asarray(hist), np.asarray(n)
    want = sorted((k + 1, round(float(hist[i, k]), 4)) for i in range(5) for k in range(n[i]))
    assert sorted(calls) == want


def test_compacting_while_under_implicit_gradient():
    """The forward loop compacts under vmap inside implicit_root's custom_vjp: jit(vmap(grad))
    and grad of a vmapped sum equal the loop of single gradients and the closed form of the
    fixed point z = cos(theta z) / 2, dz/dtheta = -z s / (2 + theta s), s = sin(theta z)."""

    def solve(theta, z0):
        def block(z, k):
            return jax.lax.fori_loop(0, 2, lambda _, z: 0.5 * jnp.cos(theta * z), z)

        def done(z, k):
            return jnp.max(jnp.abs(z - 0.5 * jnp.cos(theta * z))) < 1e-6

        z, n = iterate_blocks(block, z0, max_blocks=200, done=done, unrolled=False,
                              compact=True)
        return z, n

    def adjoint(z, th, z_bar):  # the residual's Jacobian in z is diagonal
        return z_bar / (1.0 + 0.5 * th * jnp.sin(th * z))

    run = implicit_root(solve, lambda z, th: z - 0.5 * jnp.cos(th * z), adjoint,
                        sequential=(None, sequential_vmap))

    def loss(theta):
        z, _ = run(theta, jnp.zeros_like(theta))
        return jnp.sum(z)

    theta = jnp.asarray([[0.1, 0.2], [1.0, 1.5], [1.9, 1.95]], jnp.float32)
    z, n = jax.jit(jax.vmap(lambda t: run(t, jnp.zeros_like(t))))(theta)
    assert len(set(np.asarray(n).tolist())) == 3, n  # lanes of different counts
    want = _loop(jax.jit(jax.grad(loss)), theta)
    got = jax.jit(jax.vmap(jax.grad(loss)))(theta)
    got2 = jax.jit(jax.grad(lambda t: jnp.sum(jax.vmap(loss)(t))))(theta)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got2, want, rtol=1e-5, atol=1e-6)
    z = np.asarray(z, np.float64)
    th = np.asarray(theta, np.float64)
    s = np.sin(th * z)
    np.testing.assert_allclose(got, -z * s / (2 + th * s), rtol=1e-4, atol=1e-5)
