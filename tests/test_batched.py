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
from jaxclust._core.fixed_point import cond_lazy, sequential_vmap

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
