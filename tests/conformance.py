"""The conformance check every public function of jaxclust must pass.

:func:`check_conformance` runs three checks on ``fn(*args)`` (``fn`` returns a pytree of
arrays):

(a) **jit**: ``jax.jit(fn)(*args)`` equals ``fn(*args)``;
(b) **vmap**: ``jax.vmap(fn)`` over ``batch`` stacked, slightly perturbed copies of the
    arguments equals the per-item results (each item solved on its own);
(c) **grad** (for each argnum in ``diff_argnums``), in float64: the reverse-mode gradient of
    a random linear functional ``L = sum_k <w_k, out_k>`` of the floating outputs, paired
    with a random direction ``v``, equals the central finite difference
    ``(L(arg + h v) - L(arg - h v)) / 2h``.

Checks (a) and (b) run in the dtype of ``args`` (float32 by default), (c) in float64.
Perturbations and directions are multiplicative (``arg * (1 + s u)``), so signs, zeros and
positivity of weights are preserved; a function whose inputs must satisfy a constraint
(e.g. weights summing to one) should enforce it inside ``fn`` (``a / a.sum()``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .utils import enable_x64

__all__ = ["Case", "check_conformance", "check_grad_fd", "check_jit", "check_vmap",
           "pillar_cases"]


class Case(NamedTuple):
    """One conformance case: ``fn(*args)`` under jit, vmap and (``diff_argnums``) grad."""

    name: str
    public: str  # the public function exercised
    fn: Any
    args: tuple
    diff_argnums: tuple = ()
    slow: bool = False  # the whole case is slow
    slow_grad: bool = False  # only its finite-difference check is slow
    rtol: float = 1e-5  # jit / vmap agreement (float32)


def pillar_cases() -> tuple[list[Case], list, set[str]]:
    """Cases registered by pillars in ``tests/<pillar>/conformance_cases.py``.

    Such a module defines ``cases() -> list[Case]``, ``MODULES`` (the public modules whose
    every function must have a case) and optionally ``HOST_ONLY`` (names exempt from the
    coverage check because they run on the host). Returns the cases, the modules and the
    exempt names of all pillars, in a stable (sorted path) order.
    """
    out: list[Case] = []
    modules: list = []
    host_only: set[str] = set()
    root = Path(__file__).resolve().parent
    for path in sorted(root.glob("*/conformance_cases.py")):
        mod = importlib.import_module(f"tests.{path.parent.name}.conformance_cases")
        out += list(mod.cases())
        modules += list(mod.MODULES)
        host_only |= set(getattr(mod, "HOST_ONLY", ()))
    return out, modules, host_only


def _is_float(t) -> bool:
    return hasattr(t, "dtype") and jnp.issubdtype(t.dtype, jnp.floating)


def _assert_tree_close(actual, expected, *, rtol, atol, what: str):
    la, ta = jax.tree_util.tree_flatten(actual)
    le, te = jax.tree_util.tree_flatten(expected)
    assert ta == te, f"{what}: output structures differ: {ta} vs {te}"
    for i, (u, v) in enumerate(zip(la, le)):
        u, v = np.asarray(u), np.asarray(v)
        assert u.shape == v.shape, f"{what}: leaf {i} shapes differ {u.shape} vs {v.shape}"
        assert u.dtype == v.dtype, f"{what}: leaf {i} dtypes differ {u.dtype} vs {v.dtype}"
        if np.issubdtype(u.dtype, np.floating):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=atol,
                                       err_msg=f"{what}: leaf {i}")
        else:
            np.testing.assert_array_equal(u, v, err_msg=f"{what}: leaf {i}")


def _perturb(rng: np.random.Generator, arg, scale: float):
    """``arg * (1 + scale * u)``, ``u ~ U(-1, 1)`` for floating arrays; others unchanged."""
    if not _is_float(arg):
        return arg
    # NumPy and one transfer: a jnp expression here compiled a few small programs per new
    # shape, hundreds over the conformance cases
    arr = np.asarray(arg)
    u = rng.uniform(-1.0, 1.0, size=arr.shape)
    return jax.device_put((arr * (1.0 + scale * u.astype(arr.dtype))).astype(arr.dtype))


def _stack(values):
    """``jnp.stack(values)`` without compiling: NumPy for plain arrays (PRNG keys: jnp)."""
    first = jnp.asarray(values[0])
    if jax.dtypes.issubdtype(first.dtype, jax.dtypes.prng_key):
        return jnp.stack([jnp.asarray(v) for v in values])
    return jax.device_put(np.stack([np.asarray(v) for v in values]))


def check_jit(fn: Callable, *args, rtol: float = 1e-5, atol: float = 1e-6, jitted_fn=None):
    """(a) ``jax.jit(fn)(*args) == fn(*args)``."""
    eager = fn(*args)
    jitted = (jitted_fn or jax.jit(fn))(*args)
    _assert_tree_close(jitted, eager, rtol=rtol, atol=atol, what="jit vs eager")
    return eager


def check_vmap(fn: Callable, *args, batch: int = 3, rtol: float = 1e-5, atol: float = 1e-6,
               perturb: float = 0.05, seed: int = 0, jitted_fn=None):
    """(b) ``jax.vmap(fn)`` over ``batch`` perturbed copies equals the per-item results."""
    rng = np.random.default_rng(seed)
    items = [args] + [tuple(_perturb(rng, t, perturb) for t in args) for _ in range(batch - 1)]
    stacked = [_stack([it[i] for it in items]) for i in range(len(args))]
    batched = jax.jit(jax.vmap(fn))(*stacked)
    single = jitted_fn or jax.jit(fn)
    for k, it in enumerate(items):
        expected = single(*it)
        got = jax.tree_util.tree_map(lambda t, k=k: t[k], batched)
        _assert_tree_close(got, expected, rtol=rtol, atol=atol, what=f"vmap item {k}")
    return batched


def check_grad_fd(fn: Callable, *args, argnums: Sequence[int], rtol: float = 1e-4,
                  atol: float = 1e-7, step: float = 1e-4, seed: int = 0):
    """(c) float64: gradient of a random linear functional vs central finite differences.

    The directional derivative ``<grad_i L, v_i>`` along a random multiplicative direction
    ``v_i = arg_i * u_i`` (``u ~ N(0, 1)``) is compared with
    ``(L(arg_i + h v_i) - L(arg_i - h v_i)) / 2h``; truncation error is ``O(h^2)``, so with
    ``h = 1e-4`` the check is limited by the solver tolerance of ``fn`` (use ~1e-10).
    """
    with enable_x64():
        rng = np.random.default_rng(seed)
        args64 = tuple(
            jnp.asarray(np.asarray(t), jnp.float64) if _is_float(t) else t for t in args
        )
        out = jax.eval_shape(fn, *args64)
        leaves = [t for t in jax.tree_util.tree_leaves(out) if _is_float(t)]
        assert leaves, "fn has no floating outputs to differentiate"
        ws = [jnp.asarray(rng.normal(size=np.shape(t))) for t in leaves]

        def functional(*a):
            outs = [t for t in jax.tree_util.tree_leaves(fn(*a)) if _is_float(t)]
            return sum(jnp.sum(w * o) for w, o in zip(ws, outs))

        # one compilation serves the gradient and the finite differences
        value_and_grad = jax.jit(jax.value_and_grad(functional, argnums=tuple(argnums)))
        value = lambda *a: value_and_grad(*a)[0]  # noqa: E731
        _, grads = value_and_grad(*args64)
        for i, g in zip(argnums, grads):
            arg = args64[i]
            v = arg * jnp.asarray(rng.normal(size=arg.shape))
            plus = list(args64)
            minus = list(args64)
            plus[i] = arg + step * v
            minus[i] = arg - step * v
            fd = (value(*plus) - value(*minus)) / (2 * step)
            ad = jnp.sum(g * v)
            assert np.isfinite(float(ad)), f"argnum {i}: gradient is not finite"
            np.testing.assert_allclose(
                float(ad), float(fd), rtol=rtol, atol=atol,
                err_msg=f"argnum {i}: autodiff directional derivative vs central FD",
            )
            # guard against a vacuous check (a zero gradient matching a flat function)
            assert abs(float(fd)) > 10 * atol, f"argnum {i}: FD is ~0, pick another problem"


def check_conformance(fn: Callable, *args, diff_argnums: Sequence[int] = (), batch: int = 3,
                      rtol: float = 1e-5, atol: float = 1e-6, grad_rtol: float = 1e-4,
                      grad_atol: float = 1e-7):
    """Run the jit (a), vmap (b) and, for ``diff_argnums``, float64 gradient (c) checks."""
    jitted = jax.jit(fn)
    check_jit(fn, *args, rtol=rtol, atol=atol, jitted_fn=jitted)
    check_vmap(fn, *args, batch=batch, rtol=rtol, atol=atol, jitted_fn=jitted)
    if diff_argnums:
        check_grad_fd(fn, *args, argnums=diff_argnums, rtol=grad_rtol, atol=grad_atol)
