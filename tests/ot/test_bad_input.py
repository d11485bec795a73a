"""Bad input: one test per rule, eagerly (``ValueError``) and under ``jax.jit``.

Under ``jit``, shape and option errors are still ``ValueError`` at trace time; value errors
(NaN, negative weights, traced ``epsilon`` ...) are raised at run time by ``equinox.error_if``
as a JAX runtime error whose text carries the same message. Every rule is checked against its
own message, so a rule that fires for the wrong reason fails.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import (
    default_epsilon,
    sinkhorn,
    sinkhorn_divergence,
    sinkhorn_from_cost,
    swav_codes,
)

f32 = jnp.float32
X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)), f32)
Y = jnp.asarray(np.random.default_rng(1).normal(size=(3, 2)), f32)
A = jnp.full((4,), 0.25, f32)
B = jnp.full((3,), 1 / 3, f32)
C = jnp.asarray(np.random.default_rng(2).uniform(size=(4, 3)), f32)
S = jnp.asarray(np.random.default_rng(3).normal(size=(5, 3)), f32)
NAN, INF = float("nan"), float("inf")


def _first_leaf(out):
    return jax.tree_util.tree_leaves(out)[0]


def _raises_both(fn, args, message, kwargs=None):
    """``fn(*args, **kwargs)`` raises ValueError eagerly and an error with the same message
    under ``jax.jit`` (arrays in ``args`` traced, ``kwargs`` static)."""
    kwargs = kwargs or {}
    with pytest.raises(ValueError, match=message):
        fn(*args, **kwargs)
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(jax.jit(lambda *a: _first_leaf(fn(*a, **kwargs)))(*args))


# ------------------------------------------------------------------------------------------
# shapes and static options (trace-time errors)

SHAPE_RULES = [
    ("feature-mismatch", sinkhorn, (X, Y[:, :1]), {}, "same number of features"),
    ("a-length", sinkhorn, (X, Y, A[:3], B), {}, re.escape("`a` must have shape (4,)")),
    ("b-length", sinkhorn, (X, Y, A, A), {}, re.escape("`b` must have shape (3,)")),
    ("a-2d", sinkhorn, (X, Y, A[:, None], B), {}, re.escape("`a` must have shape (4,)")),
    ("x-1d", sinkhorn, (X[:, 0], Y), {}, "`x` must be 2-D"),
    ("x-3d", sinkhorn, (X[None], Y), {}, "`x` must be 2-D.*vmap"),
    ("y-1d", sinkhorn, (X, Y[:, 0]), {}, "`y` must be 2-D"),
    ("x-empty", sinkhorn, (X[:0], Y), {}, "at least one point"),
    ("C-1d", sinkhorn_from_cost, (C[0],), {}, "`C` must be 2-D"),
    ("C-a-length", sinkhorn_from_cost, (C, B), {}, re.escape("`a` must have shape (4,)")),
    ("cost-name", sinkhorn, (X, Y), dict(cost="l1"), "`cost` must be one of"),
    ("chunk-zero", sinkhorn, (X, Y), dict(chunk_size=0), "`chunk_size` must be"),
    ("chunk-float", sinkhorn, (X, Y), dict(chunk_size=2.5), "`chunk_size` must be"),
    ("mode", sinkhorn, (X, Y), dict(mode="kernel"), "`mode` must be"),
    ("check-every", sinkhorn, (X, Y), dict(check_every=0), "`check_every` must be"),
    ("max-iter-zero", sinkhorn, (X, Y), dict(max_iter=0), "`max_iter` must be"),
    ("max-iter-float", sinkhorn, (X, Y), dict(max_iter=100.0), "`max_iter` must be"),
    ("tol-zero", sinkhorn, (X, Y), dict(tol=0.0), "`tol` must be"),
    ("tol-negative", sinkhorn, (X, Y), dict(tol=-1e-3), "`tol` must be"),
    ("epsilon-init", sinkhorn, (X, Y), dict(epsilon_init=-1.0), "`epsilon_init` must be"),
    ("epsilon-decay", sinkhorn, (X, Y), dict(epsilon_decay=1.0), "`epsilon_decay` must be"),
    ("init-not-pair", sinkhorn, (X, Y), dict(init=jnp.zeros(4)), "`init` must be a pair"),
    ("mass-and-tau", sinkhorn, (X, Y), dict(mass=0.5, tau_a=0.5), "cannot be combined"),
    ("divergence-mass", sinkhorn_divergence, (X, Y), dict(mass=0.5), "`mass` is not supported"),
    ("default-eps-features", default_epsilon, (X, Y[:, :1]), {}, "same number of features"),
    ("swav-1d", swav_codes, (S[0],), {}, "`scores` must be 2-D"),
    ("x-none", sinkhorn, (None, Y), {}, "`x` is None"),
    ("y-none", sinkhorn, (X, None), {}, "`y` is None"),
    ("C-none", sinkhorn_from_cost, (None,), {}, "`C` is None"),
    ("divergence-y-none", sinkhorn_divergence, (X, None), {}, "`y` is None"),
    ("default-eps-none", default_epsilon, (None,), {}, "`C` is None"),
    ("default-eps-y-none", default_epsilon, (None, Y), {}, "`x` is None"),
    ("swav-none", swav_codes, (None,), {}, "`scores` is None"),
    ("swav-n-iter-zero", swav_codes, (S,), dict(n_iter=0), "`n_iter` must be a Python int >= 1"),
    ("swav-n-iter-float", swav_codes, (S,), dict(n_iter=2.0), "`n_iter` must be a Python int >= 1"),
]


@pytest.mark.parametrize("fn,args,kwargs,message",
                         [pytest.param(*r[1:], id=r[0]) for r in SHAPE_RULES])
def test_static_rule(fn, args, kwargs, message):
    kwargs = dict(kwargs)
    if fn in (sinkhorn, sinkhorn_from_cost, sinkhorn_divergence):
        kwargs.setdefault("epsilon", 0.5)
    _raises_both(fn, args, message, kwargs)


def test_init_shapes():
    msg = re.escape("`init` potentials must have shapes (4,) and (3,)")
    for init in [(jnp.zeros(3), jnp.zeros(3)), (jnp.zeros(4), jnp.zeros(4)),
                 (jnp.zeros((4, 1)), jnp.zeros(3))]:
        _raises_both(lambda x, y, f0, g0: sinkhorn(x, y, epsilon=0.5, init=(f0, g0)),
                     (X, Y, *init), msg)


@pytest.mark.parametrize("value", [0.0, -0.5, NAN, INF])
def test_python_epsilon(value):
    # a Python number is checked at trace time, so jit raises ValueError too
    _raises_both(sinkhorn, (X, Y), "`epsilon` must be a finite number > 0",
                 dict(epsilon=value))


@pytest.mark.parametrize("name", ["tau_a", "tau_b"])
@pytest.mark.parametrize("value", [0.0, 1.5, -0.2])
def test_python_tau(name, value):
    _raises_both(sinkhorn, (X, Y), f"`{name}` must be in \\(0, 1\\]",
                 {"epsilon": 0.5, name: value})


def test_epsilon_not_scalar():
    _raises_both(lambda x, y, e: sinkhorn(x, y, epsilon=e), (X, Y, jnp.ones(2)),
                 "`epsilon` must be a scalar")


def test_tau_not_scalar():
    _raises_both(lambda x, y, t: sinkhorn(x, y, epsilon=0.5, tau_a=t), (X, Y, jnp.ones(2)),
                 "`tau_a` must be a scalar")


def test_non_numeric_weights():
    with pytest.raises(ValueError, match="`a` must be an array of numbers"):
        sinkhorn(X, Y, "uniform", epsilon=0.5)


# ------------------------------------------------------------------------------------------
# values (eager ValueError; run-time error under jit). One compiled function per entry point
# serves every rule: the bad value is just another input of the same shape.


def _sk(x, y, a, b, eps, tau_a, tau_b):
    return sinkhorn(x, y, a, b, epsilon=eps, tau_a=tau_a, tau_b=tau_b, max_iter=20).f


def _sk_mass(x, y, a, b, eps, mass):
    return sinkhorn(x, y, a, b, epsilon=eps, mass=mass, max_iter=20).f


def _skc(C, a, b, eps):
    return sinkhorn_from_cost(C, a, b, epsilon=eps, max_iter=20).f


def _swav(scores, eps):
    return swav_codes(scores, epsilon=eps)


def _deps(x, y):
    return default_epsilon(x, y)


_JIT = {fn: jax.jit(fn) for fn in (_sk, _sk_mass, _skc, _swav, _deps)}

_SK = dict(x=X, y=Y, a=A, b=B, eps=f32(0.5), tau_a=f32(1.0), tau_b=f32(1.0))
_SKM = dict(x=X, y=Y, a=A, b=B, eps=f32(0.5), mass=f32(0.5))
_SKC = dict(C=C, a=A, b=B, eps=f32(0.5))
_SW = dict(scores=S, eps=f32(0.05))

VALUE_RULES = [
    ("x-nan", _sk, _SK, dict(x=X.at[1, 0].set(NAN)), "`x` contains NaN or Inf"),
    ("x-inf", _sk, _SK, dict(x=X.at[1, 0].set(INF)), "`x` contains NaN or Inf"),
    ("y-nan", _sk, _SK, dict(y=Y.at[0, 1].set(NAN)), "`y` contains NaN or Inf"),
    ("y-inf", _sk, _SK, dict(y=Y.at[0, 1].set(-INF)), "`y` contains NaN or Inf"),
    ("a-nan", _sk, _SK, dict(a=A.at[0].set(NAN)), "`a` contains NaN or Inf"),
    ("a-inf", _sk, _SK, dict(a=A.at[0].set(INF)), "`a` contains NaN or Inf"),
    ("b-nan", _sk, _SK, dict(b=B.at[2].set(NAN)), "`b` contains NaN or Inf"),
    ("b-inf", _sk, _SK, dict(b=B.at[2].set(INF)), "`b` contains NaN or Inf"),
    ("a-negative", _sk, _SK, dict(a=jnp.asarray([0.5, 0.5, 0.2, -0.2], f32)),
     "`a` has negative entries"),
    ("b-negative", _sk, _SK, dict(b=jnp.asarray([0.6, 0.6, -0.2], f32)),
     "`b` has negative entries"),
    ("a-zero-sum", _sk, _SK, dict(a=jnp.zeros(4, f32), tau_a=f32(0.5), tau_b=f32(0.5)),
     "`a` sums to 0"),
    ("unbalanced-masses", _sk, _SK, dict(b=2 * B), "must sum to the same mass"),
    ("epsilon-zero", _sk, _SK, dict(eps=f32(0.0)), "`epsilon` must be a finite number > 0"),
    ("epsilon-negative", _sk, _SK, dict(eps=f32(-0.1)),
     "`epsilon` must be a finite number > 0"),
    ("epsilon-nan", _sk, _SK, dict(eps=f32(NAN)), "`epsilon` must be a finite number > 0"),
    ("tau_a-zero", _sk, _SK, dict(tau_a=f32(0.0)), re.escape("`tau_a` must be in (0, 1]")),
    ("tau_a-large", _sk, _SK, dict(tau_a=f32(1.5)), re.escape("`tau_a` must be in (0, 1]")),
    ("tau_b-zero", _sk, _SK, dict(tau_b=f32(0.0)), re.escape("`tau_b` must be in (0, 1]")),
    ("tau_b-large", _sk, _SK, dict(tau_b=f32(1.5)), re.escape("`tau_b` must be in (0, 1]")),
    ("mass-too-large", _sk_mass, _SKM, dict(mass=f32(1.01)), "`mass` exceeds the available"),
    ("mass-above-smaller-side", _sk_mass, _SKM, dict(b=0.5 * B, mass=f32(0.6)),
     "`mass` exceeds the available"),
    ("mass-zero", _sk_mass, _SKM, dict(mass=f32(0.0)), "`mass` must be a finite number > 0"),
    ("C-nan", _skc, _SKC, dict(C=C.at[1, 1].set(NAN)), "`C` contains NaN or Inf"),
    ("C-inf", _skc, _SKC, dict(C=C.at[1, 1].set(INF)), "`C` contains NaN or Inf"),
    ("C-negative-b", _skc, _SKC, dict(b=jnp.asarray([0.6, 0.6, -0.2], f32)),
     "`b` has negative entries"),
    ("C-epsilon", _skc, _SKC, dict(eps=f32(0.0)), "`epsilon` must be a finite number > 0"),
    # float32 overflow of the cost (issue 14, 1.6): an error naming the larger cloud, not a
    # NaN epsilon or NaN potentials
    ("x-overflow", _sk, _SK, dict(x=X * 1e20), "`x` is too large for float32"),
    ("y-overflow", _sk, _SK, dict(y=Y * 1e20), "`y` is too large for float32"),
    ("default-eps-overflow", _deps, dict(x=X, y=Y), dict(x=X * 1e20, y=Y * 1e19),
     "`x` is too large for float32"),
    ("swav-nan", _swav, _SW, dict(scores=S.at[0, 0].set(NAN)), "`scores` contains NaN or Inf"),
    ("swav-epsilon-zero", _swav, _SW, dict(eps=f32(0.0)), "`epsilon` must be a finite number"),
    ("swav-epsilon-negative", _swav, _SW, dict(eps=f32(-1.0)),
     "`epsilon` must be a finite number"),
]


@pytest.mark.parametrize("fn,base,bad,message",
                         [pytest.param(*r[1:], id=r[0]) for r in VALUE_RULES])
def test_value_rule(fn, base, bad, message):
    args = {**base, **bad}
    with pytest.raises(ValueError, match=message):
        fn(**args)  # eager, traced-free: a ValueError before any iteration
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(_JIT[fn](**args))


@pytest.mark.parametrize("fn,base", [(_sk, _SK), (_sk_mass, _SKM), (_skc, _SKC), (_swav, _SW)])
def test_good_values_pass_the_shared_compiled_functions(fn, base):
    # the control for test_value_rule: the base inputs raise nothing, eagerly or under jit
    assert np.all(np.isfinite(np.asarray(fn(**base))))
    assert np.all(np.isfinite(np.asarray(_JIT[fn](**base))))


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_python_epsilon_swav(value):
    _raises_both(swav_codes, (S,), "`epsilon` must be a finite number > 0", dict(epsilon=value))


def test_python_mass_too_large():
    _raises_both(sinkhorn, (X, Y), "`mass` exceeds the available", dict(epsilon=0.5, mass=1.5))


def test_bad_item_in_a_vmapped_batch_raises():
    xs = jnp.stack([X, X.at[0, 0].set(NAN), X])
    with pytest.raises(Exception, match="`x` contains NaN or Inf"):
        jax.block_until_ready(jax.vmap(lambda x: _sk(x, Y, A, B, f32(0.5), f32(1.0),
                                                     f32(1.0)))(xs))


def test_mass_with_jnp_tau_one_is_accepted():
    # tau = 1 given as an array is the exact marginal, not a relaxation; only tau < 1 conflicts
    # with `mass`
    res = sinkhorn(X, Y, epsilon=0.5, mass=0.5, tau_a=jnp.asarray(1.0))
    assert bool(res.converged)


def test_default_epsilon_is_finite_for_large_finite_costs():
    """std(C) of a cost matrix of size ~1e30 (finite, but C**2 overflows float32) and of
    clouds of size 1e15 (|x - y|^2 ~ 1e30): the moments are rescaled (they used to be NaN)."""
    ref = float(default_epsilon(C))
    np.testing.assert_allclose(float(default_epsilon(C * 1e30)) / 1e30, ref, rtol=1e-5)
    ref_xy = float(default_epsilon(X, Y))
    np.testing.assert_allclose(float(default_epsilon(X * 1e15, Y * 1e15)) / 1e30, ref_xy,
                               rtol=1e-5)


def test_swav_codes_at_tiny_epsilon_are_finite_hard_codes():
    """s / eps overflows float32 at eps = 1e-38 (NaN codes before); the limit is the hard
    balanced assignment, which the codes approach."""
    for eps in (1e-30, 1e-38, 1e-45):
        q = np.asarray(swav_codes(S, epsilon=eps))
        assert np.all(np.isfinite(q)), eps
        np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
