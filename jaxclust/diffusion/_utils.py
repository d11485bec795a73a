"""Private helpers of ``jaxclust.diffusion``: broadcasting, validation, fixed-step ODE steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._core import checks


def bcast(c, x):
    """Reshape a per-sample coefficient ``c`` (scalar or ``(n,)``) to broadcast against ``x``
    of shape ``(n, *data_shape)`` without implicit rank promotion."""
    c = jnp.asarray(c)
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """A Python int ``>= minimum`` (it fixes a loop length or a shape)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(f"`{name}` must be a Python int (it fixes a static loop length), got "
                         f"{value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


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
    return checks.check_finite(x, name)


def check_output(out, x, what: str):
    """A model/score output must have the shape of its input."""
    if jnp.shape(out) != jnp.shape(x):
        raise ValueError(f"{what} returned shape {tuple(jnp.shape(out))}, expected the shape of "
                         f"its input x, {tuple(jnp.shape(x))}. Callables take a batch "
                         "x of shape (n, *data_shape) and t of shape (n,) and return (n, "
                         "*data_shape); for an unbatched equinox module pass jax.vmap(model).")
    return out


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
