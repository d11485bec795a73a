"""The optional progress callback of the iterative solvers (``_core.fixed_point``).

Off by default, it must leave the compiled program free of host callbacks; on, it reports
``(iteration, error)`` after every check, and the last report agrees with the result.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust._core.fixed_point import iterate_blocks
from jaxclust.cluster import gmm, kmeans, sinkhorn_kmeans, soft_kmeans
from jaxclust.ot import sinkhorn, sinkhorn_from_cost


def _host_callbacks(lowered_text: str) -> int:
    """Side-effecting host callbacks in a lowered program: ``jax.debug.callback`` becomes a
    custom call to a Python callback marked ``has_side_effect`` (the value checks of
    ``checks.ensure`` are pure callbacks, without the mark, and are not counted)."""
    return sum("python" in line and "callback" in line and "has_side_effect = true" in line
               for line in lowered_text.splitlines())


def _babylon(unrolled, callback, target):
    """sqrt(target) by Heron's iteration, one step per block; error |z^2 - target|."""

    def block(z, k):
        return 0.5 * (z + target / z)

    return iterate_blocks(block, jnp.asarray(target), max_blocks=20,
                          done=lambda z, k: jnp.abs(z * z - target) < 1e-5,
                          unrolled=unrolled, callback=callback,
                          progress=lambda z, k: (k + 1, jnp.abs(z * z - target)))


@pytest.mark.parametrize("unrolled", [False, True])
def test_iterate_blocks_reports_every_block_then_stops(unrolled):
    calls = []
    z, n = jax.jit(lambda t: _babylon(unrolled, lambda i, e: calls.append((i, e)), t))(9.0)
    n = int(n)
    # an independent replay of the same iteration in NumPy
    zs, ref = 9.0, []
    for i in range(1, 21):
        zs = 0.5 * (zs + 9.0 / zs)
        ref.append((i, abs(zs * zs - 9.0)))
        if ref[-1][1] < 1e-5:
            break
    assert n == len(ref) and [i for i, _ in calls] == [i for i, _ in ref]
    # the unrolled scan runs 20 steps: the finished ones are not reported
    assert all(isinstance(i, int) and isinstance(e, float) for i, e in calls)
    np.testing.assert_allclose([e for _, e in calls], [e for _, e in ref], rtol=1e-4,
                               atol=1e-5)
    # vmap: one report per problem and block, with scalars
    calls.clear()
    _, ns = jax.vmap(lambda t: _babylon(unrolled, lambda i, e: calls.append((i, e)), t))(
        jnp.array([4.0, 100.0]))
    assert len(calls) == int(ns.sum()) and all(isinstance(e, float) for _, e in calls)


def _lowered(solve, x, callback):
    return jax.jit(lambda x: solve(x, callback)).lower(x)


def _check_solver(name, solve, x, log, run=True):
    """``solve(x, callback)``: off, the lowered program holds no host callback; on, it does,
    and (``run``) the reports run 1, 2, ... up to the result's ``n_iters`` with finite errors
    (the first change of the GMM log-likelihood is inf: there is no previous value)."""
    cb = lambda i, e: log.append((i, e))
    on = _lowered(solve, x, cb)
    assert _host_callbacks(_lowered(solve, x, None).as_text()) == 0, name
    assert _host_callbacks(on.as_text()) > 0, name
    if not run:
        return None
    log.clear()
    res = on.compile()(x)
    its, errs = [i for i, _ in log], [e for _, e in log]
    assert np.all(np.isfinite(errs[1:])) and errs[-1] >= 0, name
    return res, its, errs


def _data():
    return jnp.concatenate([jnp.zeros((6, 2)), jnp.ones((6, 2)) * 3.0]) + \
        jax.random.normal(jax.random.key(0), (12, 2)) * 0.3


_LOOPS = {  # one solver per loop implementation: iterate_blocks, soft's, Lloyd's
    "gmm": lambda x, cb: gmm(x, 2, key=jax.random.key(1), covariance_type="spherical",
                             callback=cb),
    "soft_kmeans": lambda x, cb: soft_kmeans(x, x[4:6] + x[6:8], temperature=0.5,
                                             callback=cb),
    "sinkhorn_kmeans": lambda x, cb: sinkhorn_kmeans(x, x[5:7], epsilon=0.5, callback=cb),
    "sinkhorn_kmeans unrolled": lambda x, cb: sinkhorn_kmeans(
        x, x[5:7], epsilon=0.5, implicit=False, max_iter=30, callback=cb),
    "soft_kmeans unrolled": lambda x, cb: soft_kmeans(x, x[5:7], temperature=0.5,
                                                      implicit=False, callback=cb),
    "gmm unrolled": lambda x, cb: gmm(x, 2, key=jax.random.key(1), implicit=False,
                                      covariance_type="diag", callback=cb),
}


def test_callback_off_leaves_no_host_call_and_on_reports_each_iteration():
    x, log = _data(), []
    res, its, errs = _check_solver(
        "sinkhorn", lambda x, cb: sinkhorn(x, x[::-1] + 0.5, epsilon=0.5, mode="log", callback=cb),
        x, log)  # log mode: the same loop (iterate_blocks), a smaller program to compile
    assert its == [10 * (b + 1) for b in range(len(its))] and its[-1] == int(res.n_iters)
    np.testing.assert_allclose(errs, np.asarray(res.errors)[:len(its)], rtol=1e-6)
    assert errs[-1] < 1e-3 and bool(res.converged)

    res, its, _ = _check_solver(
        "kmeans", lambda x, cb: kmeans(x, 2, key=jax.random.key(1), init=x[4:6] + x[6:8],
                                       callback=cb), x, log)
    assert its == list(range(1, int(res.n_iters) + 1))
    # the other loops: lowering only here (their reports are checked in the slow test)
    for name in ("gmm", "soft_kmeans"):
        _check_solver(name, _LOOPS[name], x, log, run=False)
    # the default and an explicit None are the same static option: one program
    assert jax.jit(lambda x: sinkhorn(x, x, epsilon=0.1).f).lower(x).as_text() == \
        jax.jit(lambda x: sinkhorn(x, x, epsilon=0.1, callback=None).f).lower(x).as_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_LOOPS))
def test_callback_reports_of_every_loop(name):
    log = []
    res, its, _ = _check_solver(name, _LOOPS[name], _data(), log)
    assert its == list(range(1, int(res.n_iters) + 1)), name


def test_callback_must_be_callable():
    x = jnp.ones((4, 2))
    for fn in (lambda: sinkhorn(x, x, epsilon=0.1, callback=3),
               lambda: sinkhorn_from_cost(jnp.eye(3), epsilon=0.1, callback="print"),
               lambda: kmeans(x, 2, key=jax.random.key(0), callback=1),
               lambda: gmm(x, 2, key=jax.random.key(0), callback=1),
               lambda: soft_kmeans(x, x[:2], temperature=1.0, callback=1)):
        with pytest.raises(ValueError, match="`callback` must be None or a function"):
            fn()


    class Unhashable:
        __hash__ = None

        def __call__(self, i, e):
            pass

    with pytest.raises(ValueError, match="`callback` must be hashable"):
        sinkhorn(x, x, epsilon=0.1, callback=Unhashable())
