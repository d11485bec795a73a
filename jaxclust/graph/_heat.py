r"""Heat kernel $e^{-tL}$ of a graph Laplacian: Chebyshev polynomials, or exact ``expm``.

The Chebyshev route never diagonalises $L$: with $\phi = \lambda_{\max}/2$ and
$\tilde L = L/\phi - I$ (spectrum in $[-1, 1]$),

$$ e^{-tL} = e^{-t\phi} e^{-t\phi \tilde L}
   \approx \tfrac{c_0}{2} T_0(\tilde L) + \sum_{k=1}^{K} c_k T_k(\tilde L),
   \qquad c_k = 2 e^{-t\phi} I_k(-t\phi), $$

$T_k$ the Chebyshev polynomials (three-term recurrence, one product by $L$ each) and $I_k$
the modified Bessel functions (Marcos et al. 2021, "Fast multiscale diffusion on graphs";
the heat filter of the HeatGeo reference code). The coefficients are computed here by
Chebyshev–Gauss quadrature of $e^{-t\phi(x+1)}$, which equals the Bessel closed form up to
rounding, is differentiable in $t$ and needs no special function.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._core.checks import as_float_array, check_finite, check_int, ensure_value

__all__ = ["chebyshev_coefficients", "heat_diffusion", "heat_kernel", "heat_kernel_expm"]


def _check_lap(lap, name: str = "laplacian") -> jax.Array:
    lap = as_float_array(lap, name)
    if lap.ndim != 2 or lap.shape[0] != lap.shape[1] or lap.shape[0] < 1:
        raise ValueError(f"`{name}` must be a square (n, n) matrix (see jaxclust.graph.laplacian)"
                         f", got shape {tuple(lap.shape)}. For a batch, use jax.vmap.")
    return check_finite(lap, name)


def _scalar(v, dtype) -> jax.Array:
    """``jnp.asarray(v, dtype)``; a Python number is placed with NumPy (no compilation)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        with np.errstate(over="ignore"):  # out of range: inf, which the callers' checks reject
            return jax.device_put(np.asarray(v, dtype=np.dtype(dtype)))
    return jnp.asarray(v, dtype)


def _check_t(t, dtype) -> jax.Array:
    t = _scalar(t, dtype)
    if t.ndim != 0:
        raise ValueError(f"`t` must be a scalar diffusion time, got shape {tuple(t.shape)}; "
                         f"for several times use jax.vmap over t.")
    # on the host when concrete (no program compiled for the check)
    return ensure_value(t, lambda v, xp: ~(xp.isfinite(v) & (v >= 0)),
                        "`t` must be a finite diffusion time >= 0.")


def _lmax(lap, lmax):
    """``lmax`` if given, else the Gershgorin bound ``max_i sum_j |L_ij|`` (bounds the spectrum)."""
    if lmax is None:
        return jnp.max(jnp.sum(jnp.abs(lap), axis=1))
    return _check_lmax(lmax, lap.dtype)


def _check_lmax(lmax, dtype):
    """The given ``lmax`` (not None) as a checked scalar of ``dtype``."""
    lm = _scalar(lmax, dtype)
    if lm.ndim != 0:
        raise ValueError(f"`lmax` must be a scalar, got shape {tuple(lm.shape)}.")
    return ensure_value(lm, lambda v, xp: ~(xp.isfinite(v) & (v > 0)),
                        "`lmax` must be a finite number > 0, an upper bound of the largest "
                        "eigenvalue of the Laplacian (2 for the normalised ones); None bounds "
                        "it.")


def chebyshev_coefficients(a, order: int) -> Float[Array, " order_plus_1"]:
    r"""Chebyshev coefficients $c_0..c_K$ of $x \mapsto e^{-a(x+1)}$ on $[-1, 1]$.

    $c_k = 2 e^{-a} I_k(-a)$ in closed form; computed by Chebyshev–Gauss quadrature on
    $M = \max(2(K+1), 64)$ nodes, $c_k = \frac{2}{M}\sum_j f(\cos\theta_j)\cos(k\theta_j)$,
    $\theta_j = \pi(j + \frac12)/M$, exact up to aliasing of $c_{2M-k}$ (negligible once the
    series has converged, i.e. $K \gtrsim a$).

    Args:
      a: $t\phi \ge 0$, a scalar (traced).
      order: $K$ (static), ``>= 1``.

    Returns:
      ``(K + 1,)`` coefficients, first one not halved.

    Example:
      >>> from jaxclust.graph import chebyshev_coefficients
      >>> c = chebyshev_coefficients(0.0, 3)  # f = 1: c_0 = 2, the rest 0
      >>> [round(float(v), 6) for v in c]
      [2.0, 0.0, 0.0, 0.0]
    """
    order = check_int(order, "order", low=1, why="the Chebyshev order K")
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        a = _scalar(a, jnp.result_type(float))  # placed with NumPy: no compilation
    a = as_float_array(a, "a")
    if a.ndim != 0:
        raise ValueError(f"`a` must be a scalar (t * lmax / 2), got shape {tuple(a.shape)}; "
                         f"for several values use jax.vmap over a.")
    a = ensure_value(a, lambda v, xp: ~(xp.isfinite(v) & (v >= 0)),
                     "`a` must be a finite number >= 0 (t * lmax / 2); got NaN, Inf or a "
                     "negative value.")
    return _coeffs_jit(a, order)


def _coeffs(a, order: int):
    m = max(2 * (order + 1), 64)
    theta = jnp.pi * (jnp.arange(m, dtype=a.dtype) + 0.5) / m
    fx = jnp.exp(-a * (jnp.cos(theta) + 1.0))
    k = jnp.arange(order + 1, dtype=a.dtype)
    return (2.0 / m) * (jnp.cos(k[:, None] * theta[None, :]) @ fx)


def heat_diffusion(
    laplacian: Float[Array, "n n"],
    signals: Float[Array, "n m"],
    t,
    *,
    order: int = 32,
    lmax: float | None = None,
) -> Float[Array, "n m"]:
    r"""Diffuse signals by the heat kernel, $e^{-tL} X$, with a Chebyshev polynomial of order $K$.

    $K$ products by $L$, no eigendecomposition (see the module docstring for the formula).
    Accurate once $K$ exceeds about $t\lambda_{\max}/2 + 10$: the error of the truncated
    series decays like $(e t\phi / 2K)^K$. ``lmax`` must bound the largest eigenvalue from
    above; the default is the Gershgorin bound $\max_i \sum_j |L_{ij}|$, which is safe but
    can be up to twice the true value (then $K$ must grow with it); pass ``lmax=2.0`` for
    the normalised Laplacians.

    Args:
      laplacian: $L$, shape ``(n, n)`` (any form of [`laplacian`][jaxclust.graph.laplacian];
        the random-walk one is not symmetric but has a real spectrum in $[0, 2]$).
      signals: $X$, shape ``(n,)`` or ``(n, m)``.
      t: diffusion time $t \ge 0$ (traced scalar).
      order: $K$ (static), ``>= 1``.
      lmax: upper bound of the spectrum, or ``None``.

    Returns:
      $e^{-tL} X$, the shape of ``signals``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import heat_diffusion, laplacian
      >>> lap = laplacian(jnp.array([[0.0, 1.0], [1.0, 0.0]]), kind="combinatorial")
      >>> y = heat_diffusion(lap, jnp.array([1.0, 0.0]), 1.0, order=20)
      >>> [round(float(v), 4) for v in y]  # (1 + e^-2)/2, (1 - e^-2)/2
      [0.5677, 0.4323]
    """
    lap = _check_lap(laplacian)
    x = as_float_array(signals, "signals", dtype=lap.dtype)
    n = lap.shape[0]
    if x.ndim not in (1, 2) or x.shape[0] != n:
        raise ValueError(f"`signals` must have shape (n,) or (n, m) with n = {n} rows (one per "
                         f"node), got shape {tuple(x.shape)}.")
    x = check_finite(x, "signals")
    order = check_int(order, "order", low=1, why="the Chebyshev order K")
    t = _check_t(t, lap.dtype)
    lm = None if lmax is None else _check_lmax(lmax, lap.dtype)
    out = _heat_diffusion(lap, x, t, lm, order)
    # inputs are finite, so a non-finite filter output means the expansion diverged
    return ensure_value(out, lambda v, xp: ~xp.all(xp.isfinite(v)),
                        "`laplacian`: the Chebyshev heat filter diverged (non-finite result): "
                        "`lmax` must bound the spectrum of `laplacian` from above (lmax=None "
                        "uses the Gershgorin bound) and t * lmax must stay moderate; rescale "
                        "`laplacian` or t.")


# jitted at module level: an eager `lax.scan` over a fresh closure would compile anew at
# every call (tests/test_compile.py)
@partial(jax.jit, static_argnums=(4,))
def _chebyshev(lap, x, t, phi, order: int):
    c = _coeffs(t * phi, order)

    def op(v):
        return (lap @ v) / phi - v

    t0 = x
    t1 = op(x)
    y = 0.5 * c[0] * t0 + c[1] * t1
    if order == 1:
        return y

    def step(carry, ck):
        tm1, tk, acc = carry
        tp1 = 2.0 * op(tk) - tm1
        return (tk, tp1, acc + ck * tp1), None

    (_, _, y), _ = jax.lax.scan(step, (t0, t1, y), c[2:])
    return y


def heat_kernel(
    laplacian: Float[Array, "n n"],
    t,
    *,
    order: int = 32,
    lmax: float | None = None,
) -> Float[Array, "n n"]:
    r"""The heat kernel $H_t = e^{-tL}$ by Chebyshev polynomials.

    [`heat_diffusion`][jaxclust.graph.heat_diffusion] of the identity matrix.

    Args:
      laplacian: $L$, shape ``(n, n)``.
      t: diffusion time $t \ge 0$ (traced scalar).
      order: Chebyshev order $K$ (static).
      lmax: upper bound of the spectrum, or ``None`` (Gershgorin).

    Returns:
      $H_t$, shape ``(n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import heat_kernel
      >>> lap = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # one edge; eigenvalues 0 and 2
      >>> h = heat_kernel(lap, 1.0, order=16, lmax=2.0)
      >>> [round(float(v), 4) for v in h[0]]  # (1 + e^-2)/2, (1 - e^-2)/2
      [0.5677, 0.4323]
    """
    lap = _check_lap(laplacian)
    eye = jax.device_put(np.eye(lap.shape[0], dtype=np.dtype(lap.dtype)))  # no compilation
    return heat_diffusion(lap, eye, t, order=order,
                          lmax=lmax)


def heat_kernel_expm(laplacian: Float[Array, "n n"], t) -> Float[Array, "n n"]:
    r"""The exact heat kernel $e^{-tL}$ by ``jax.scipy.linalg.expm`` (Padé, scaling and squaring).

    $O(n^3)$ and dense: for small graphs and for checking
    [`heat_kernel`][jaxclust.graph.heat_kernel].

    Args:
      laplacian: $L$, shape ``(n, n)``.
      t: diffusion time $t \ge 0$ (traced scalar).

    Returns:
      $e^{-tL}$, shape ``(n, n)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.graph import heat_kernel_expm
      >>> heat_kernel_expm(jnp.zeros((2, 2)), 1.0).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """
    lap = _check_lap(laplacian)
    t = _check_t(t, lap.dtype)
    out = _expm(lap, t)
    return ensure_value(out, lambda v, xp: ~xp.all(xp.isfinite(v)),
                        "`laplacian`: expm(-t L) overflowed in the Pade scaling and squaring "
                        "(non-finite result) for this magnitude of t * laplacian; rescale "
                        "`laplacian` or t, or use heat_kernel (Chebyshev).")


# the filters' arithmetic as module-level jitted programs after the host checks: one program
# per first eager call instead of several small ones; inlined under an outer jit
@partial(jax.jit, static_argnums=(4,))
def _heat_diffusion(lap, x, t, lm, order: int):
    phi = 0.5 * (_lmax(lap, None) if lm is None else lm)  # lm checked on the host
    return _chebyshev(lap, x, t, phi, order)


_coeffs_jit = jax.jit(_coeffs, static_argnums=(1,))
_expm = jax.jit(lambda lap, t: jax.scipy.linalg.expm(-t * lap))
