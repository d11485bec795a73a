"""Private helpers of ``jaxclust.diffusion``: broadcasting, validation, fixed-step ODE steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._core import checks


def bcast(c, x):
    """Reshape a per-sample coefficient ``c`` (scalar or ``(n,)``) to broadcast against ``x``
    of shape ``(n, *data_shape)`` without implicit rank promotion."""
    c = jnp.asarray(c)
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


def check_sde(sde, name: str = "sde"):
    """``sde`` is an SDE object (``VPSDE()``, ``VESDE()``, ...), else a ``ValueError``."""
    from .sde import AbstractSDE

    if not isinstance(sde, AbstractSDE):
        raise ValueError(f"`{name}` must be an SDE such as VPSDE(), SubVPSDE(), VESDE() or "
                         f"CosineVPSDE(), got {type(sde).__name__}.")
    return sde


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """A Python int ``>= minimum`` (it fixes a loop length or a shape)."""
    return checks.check_int(value, name, low=minimum, why="it fixes a static loop length")


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
    return value


def check_batched(x, name: str):
    """``x`` is a floating array with a leading batch axis ``(n, *data_shape)``."""
    x = checks.as_float_array(x, name)
    if x.ndim < 1:
        raise ValueError(f"`{name}` must have a leading batch axis, shape (n, *data_shape); got "
                         f"a scalar. Use x[None] for a single sample.")
    if x.size == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(x.shape)}); pass at least one "
                         "sample with at least one feature.")
    return checks.check_finite(x, name)


def check_output(out, x, what: str):
    """A model/score output must have the shape of its input."""
    if jnp.shape(out) != jnp.shape(x):
        raise ValueError(f"{what} returned shape {tuple(jnp.shape(out))}, expected the shape of "
                         f"its input x, {tuple(jnp.shape(x))}. Callables take a batch "
                         "x of shape (n, *data_shape) and t of shape (n,) and return (n, "
                         "*data_shape); for an unbatched equinox module pass jax.vmap(model).")
    return out


def call_user(fn, name: str, x, *args, data: str = "x"):
    """``fn(x, *args)``, a user callable, checked to return the shape of ``x``; an exception
    raised while tracing it (typically a shape it does not expect) is re-raised as a
    ``ValueError`` that names it, the shapes it was given and the argument ``data`` those
    shapes come from."""
    try:
        out = fn(x, *args)
    except (TypeError, ValueError) as err:
        shapes = ", ".join(str(tuple(jnp.shape(a))) for a in (x, *args) if a is not None)
        raise ValueError(f"`{name}` failed when called with arrays of shapes {shapes}; check "
                         f"that {data} has the shape it expects. {type(err).__name__}: "
                         f"{err}") from err
    return check_output(out, x, name)


def tree_axpy(a, x, y):
    """``a * x + y`` leafwise."""
    return jax.tree_util.tree_map(lambda u, v: a * u + v, x, y)


def ode_step(fun, y, t, dt, method: str):
    """One fixed step of ``dy/dt = fun(y, t)`` (``y`` a pytree) from ``t`` to ``t + dt``."""
    if method == "euler":
        return tree_axpy(dt, fun(y, t), y)
    if method == "heun":
        k1 = fun(y, t)
        k2 = fun(tree_axpy(dt, k1, y), t + dt)
        return jax.tree_util.tree_map(lambda a, b, c: c + 0.5 * dt * (a + b), k1, k2, y)
    # classical fourth-order Runge-Kutta
    k1 = fun(y, t)
    k2 = fun(tree_axpy(0.5 * dt, k1, y), t + 0.5 * dt)
    k3 = fun(tree_axpy(0.5 * dt, k2, y), t + 0.5 * dt)
    k4 = fun(tree_axpy(dt, k3, y), t + dt)
    return jax.tree_util.tree_map(
        lambda a, b, c, d, e: e + dt / 6.0 * (a + 2.0 * b + 2.0 * c + d), k1, k2, k3, k4, y)


def odeint(fun, y0, ts, method: str):
    """Integrate ``dy/dt = fun(y, t)`` over the grid ``ts`` (increasing or decreasing) with a
    fixed-step method under ``lax.scan``; returns the final state."""

    def body(y, tt):
        t0, t1 = tt
        return ode_step(fun, y, t0, t1 - t0, method), None

    y, _ = jax.lax.scan(body, y0, (ts[:-1], ts[1:]))
    return y


ODE_METHODS = ("euler", "heun", "rk4")


def check_like(v, name: str, ref: jax.Array, ref_name: str) -> jax.Array:
    """A finite float array of the shape of ``ref`` (shape at trace time, values checked)."""
    v = checks.as_float_array(v, name)
    if v.shape != ref.shape:
        raise ValueError(f"`{name}` must have the shape of `{ref_name}`, {tuple(ref.shape)}; "
                         f"got {tuple(v.shape)}.")
    return checks.check_finite(v, name)


def check_coef(c, name: str, ref: jax.Array, ref_name: str, *, positive: bool) -> jax.Array:
    """A per-sample schedule coefficient (``alpha`` / ``sigma``): a scalar or shape ``(n,)``
    with ``n = ref.shape[0]`` (trace time), finite and ``> 0`` (``positive``) or ``>= 0``."""
    c = checks.as_float_array(c, name)
    n = ref.shape[0] if ref.ndim else None
    if c.ndim > 1 or (c.ndim == 1 and c.shape[0] != n):
        raise ValueError(f"`{name}` must be a scalar or have shape (n,) = ({n},) (one value "
                         f"per sample of `{ref_name}`), got shape {tuple(c.shape)}.")
    bad = ~(jnp.isfinite(c) & ((c > 0) if positive else (c >= 0)))
    rel = "> 0" if positive else ">= 0"
    return checks.ensure(c, bad, f"`{name}` must be finite and {rel} (it is divided by or "
                                 "scales the prediction); got NaN, Inf or a value out of range.")


def check_result(out, message: str):
    """``out`` (a pytree) unchanged, with a ``ValueError(message)`` if any leaf holds NaN/Inf
    (eagerly; under jit the runtime error carries the message)."""
    leaves = [jnp.any(~jnp.isfinite(v)) for v in jax.tree_util.tree_leaves(out)
              if jnp.issubdtype(jnp.asarray(v).dtype, jnp.inexact)]
    if not leaves:
        return out
    bad = jnp.any(jnp.stack(leaves))
    if not checks.is_traced(out, bad):
        if bool(bad):
            raise ValueError(message)
        return out
    flat, tree = jax.tree_util.tree_flatten(out)
    flat = [checks.ensure(v, bad, message) for v in flat]
    return jax.tree_util.tree_unflatten(tree, flat)


def callable_nan_message(fn_name: str, what: str, hint: str = "") -> str:
    return (f"`{fn_name}` returned NaN or Inf: {what} is not finite. Check the function "
            "(a network with NaN/Inf parameters after a diverged training, a division by "
            "sigma_t at t = 0, log of a non-positive number)" + (f"; {hint}" if hint else "")
            + ".")


def pow2_scale(m: jax.Array) -> jax.Array:
    """A power of two in ``(m / 2, m]`` for a finite ``m > 0`` (1 for ``m = 0``), without
    gradient: dividing by it is exact and brings magnitudes to ``[-2, 2]``."""
    _, e = jnp.frexp(m)
    s = jnp.ldexp(jnp.ones_like(m), e - 1)
    return jax.lax.stop_gradient(jnp.where(m > 0, s, jnp.ones_like(m)))
