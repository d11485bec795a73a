"""Free-support Wasserstein barycenters (Cuturi & Doucet 2014, Algorithm 2).

The support ``X`` (``k`` points with fixed weights ``b``) is moved to the weighted average of
the barycentric projections of the optimal plans to each measure, until it stops moving:
POT's ``ot.lp.free_support_barycenter`` iteration, with the exact plans computed on the
device by the Hungarian solver (uniform weights, ``k`` equal to each measure's size: then the
optimal plan is a scaled permutation), or with entropic plans (Sinkhorn) for any weights.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._core import checks
from .._core.costs import pairwise_cost
from .._core.fixed_point import gmres_solve, implicit_root
from .._core.results import with_summary_repr
from .entropic import sinkhorn_from_cost
from .lap import _hungarian

__all__ = ["BarycenterResult", "barycenter"]


@with_summary_repr
class BarycenterResult(NamedTuple):
    """A free-support barycenter (a pytree).

    Attributes:
      x: the support ``(k, d)`` (weights ``b``, as given).
      n_iters: support updates run.
      displacement: the last squared move ``sum |X_t - X_{t-1}|^2`` (POT's stopping value).
      converged: ``displacement <= tol``, every inner Sinkhorn solve of the last step
        converged (entropic mode), and ``x`` is finite.
    """

    x: Float[Array, "k d"]
    n_iters: Int[Array, ""]
    displacement: Float[Array, ""]
    converged: Bool[Array, ""]


def _step(x, params, *, exact, inner_tol):
    """One support update ``F(X) = sum_i lam_i diag(1/b) T_i(X) Y_i`` and, per measure,
    whether its plan is trustworthy (its Sinkhorn solve converged; always True when exact)."""
    locs, w, b, lam, eps = params

    def one(loc, wi):
        cost = pairwise_cost(x, loc, "sqeuclidean")
        if exact:  # k == n, uniform weights: the plan is a permutation / k (locally constant)
            perm = _hungarian(jax.lax.stop_gradient(cost))
            return loc[perm], jnp.asarray(True)
        res = sinkhorn_from_cost(cost, b, wi, epsilon=eps, tol=inner_tol, max_iter=5000)
        return res.apply(loc) / b[:, None], res.converged

    proj, ok = jax.vmap(one)(locs, w)
    return jnp.einsum("i,ikd->kd", lam, proj), ok


@functools.partial(jax.jit, static_argnames=("max_iter", "tol", "exact", "inner_tol"))
def _solve(locs, weights, x0, b, lam, eps, *, max_iter, tol, exact, inner_tol):
    step_fn = functools.partial(_step, exact=exact, inner_tol=inner_tol)

    def solve(params, x0):
        def step(state):
            x, it, _, _ = state
            new, ok = step_fn(x, params)
            return new, it + 1, jnp.sum(jnp.square(new - x)), jnp.all(ok)

        def cond(state):
            _, it, disp, _ = state
            return (it < max_iter) & (disp > tol)

        init = (x0, jnp.asarray(0), jnp.asarray(tol + 1.0, x0.dtype), jnp.asarray(False))
        x, it, disp, ok = jax.lax.while_loop(cond, step, init)
        return x, (it, disp, ok)

    def residual(x, params):  # zero at the fixed point X = F(X)
        return step_fn(x, params)[0] - x

    def adjoint_solve(x, params, x_bar):
        # (dF/dX - I)^T w = x_bar; exact plans are locally constant in X (dF/dX = 0)
        if exact:
            return -x_bar
        _, vjp = jax.vjp(lambda z: residual(z, params), x)
        tol_gmres = 1e-11 if x.dtype == jnp.float64 else 1e-5
        return gmres_solve(lambda v: vjp(v)[0], x_bar, tol=tol_gmres)

    run = implicit_root(solve, residual, adjoint_solve)
    x, (it, disp, ok) = run((locs, weights, b, lam, eps), x0)
    conv = (disp <= tol) & ok & jnp.all(jnp.isfinite(x))
    return BarycenterResult(x, it, disp, conv)


def barycenter(
    locations: Float[Array, "N n d"],
    x_init: Float[Array, "k d"],
    weights: Float[Array, "N n"] | None = None,
    b: Float[Array, " k"] | None = None,
    *,
    lambdas: Float[Array, " N"] | None = None,
    epsilon: float | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
    inner_tol: float = 1e-6,
) -> BarycenterResult:
    r"""Free-support Wasserstein-2 barycenter of ``N`` discrete measures.

    Minimises $\sum_i \lambda_i W_2^2(\nu, \mu_i)$ over $\nu = \sum_k b_k \delta_{X_k}$ with
    fixed weights $b$ by the fixed-point iteration (Cuturi & Doucet 2014, Alg. 2)

    $$
    X \leftarrow \sum_i \lambda_i \, \mathrm{diag}(1/b)\, T_i(X)\, Y_i ,
    $$

    where $T_i(X)$ is the optimal plan from $\nu$ to $\mu_i$ (support $Y_i$) for the
    squared Euclidean cost, until the squared move $\sum \|X_{t+1} - X_t\|^2 \le$ ``tol``
    (POT's ``stopThr``). ``epsilon=None``: exact plans, computed on the device by the
    Hungarian method; this needs uniform weights and ``k = n`` (an optimal plan is then a
    permutation scaled by $1/k$) and equals POT's ``free_support_barycenter`` (which
    solves each plan by its network simplex) from the same ``x_init``. ``epsilon > 0``:
    entropic plans (Sinkhorn, ``inner_tol``), any weights and sizes; zero weights pad
    measures of different sizes. The problem is non-convex in $X$: the result depends on
    ``x_init``.

    Differentiation: ``x`` is differentiable in ``locations``, ``weights``, ``b``,
    ``lambdas`` and ``epsilon`` by **implicit differentiation** of the fixed point
    $X^\star = F(X^\star)$, $F(X) = \sum_i \lambda_i \mathrm{diag}(1/b) T_i(X) Y_i$:
    $\bar\theta = -(\partial_\theta F)^\top w$ with
    $(\partial_X F - I)^\top w = \bar X$ (restarted GMRES on VJPs of $F$, whose entropic
    plans are themselves differentiated implicitly). Implicit rather than unrolled because
    the number of updates is data-dependent (a ``while_loop``, which reverse mode cannot
    unroll) and memory stays independent of it. With exact plans $T_i$ is locally constant
    in $X$ and in the supports (a permutation), so $\partial_X F = 0$ and the gradient is
    that of $\sum_i \lambda_i Y_i[\sigma_i]$ at the final assignments $\sigma_i$ (exact
    almost everywhere; at ties of the assignment it is one of the one-sided derivatives).
    The gradient is that of the returned fixed point: exact when ``converged``. ``x_init``
    gets a zero gradient (a start only).

    Args:
      locations: supports of the measures, shape ``(N, n, d)``.
      x_init: initial support of the barycenter ``(k, d)``.
      weights: weights of the measures ``(N, n)``, rows normalised (default uniform).
      b: barycenter weights ``(k,)`` (default uniform).
      lambdas: weights of the measures in the objective ``(N,)`` (default uniform),
        normalised.
      epsilon: ``None`` for exact plans, or the entropic regularisation (> 0, static).
      max_iter: maximum number of support updates (static).
      tol: stop when the squared move is at most ``tol`` (static).
      inner_tol: marginal tolerance of each Sinkhorn solve (entropic mode, static).

    Returns:
      :class:`BarycenterResult`.

    Raises:
      ValueError: shapes that do not agree, exact mode with non-uniform weights or
        ``k != n``, bad weights, non-finite values, bad options.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.ot import barycenter
      >>> y = jax.random.normal(jax.random.key(0), (5, 2))
      >>> res = barycenter(jnp.stack([y - 1.0, y + 1.0]), y[::-1] + 3.0)
      >>> bool(res.converged), bool(jnp.allclose(jnp.sort(res.x[:, 0]), jnp.sort(y[:, 0]),
      ...                                        atol=1e-5))
      (True, True)

    References:
      Cuturi & Doucet, *Fast computation of Wasserstein barycenters*, ICML 2014; Agueh &
      Carlier, *Barycenters in the Wasserstein space*, SIAM J. Math. Anal. 2011.
    """
    locs = checks.as_float_array(locations, "locations")
    checks.check_ndim(locs, "locations", 3, "(N, n, d)")
    x0 = checks.as_float_array(x_init, "x_init")
    checks.check_points(x0, "x_init")
    N, n, d = locs.shape
    if N == 0 or n == 0:
        raise ValueError(f"`locations` must hold at least one measure with one point, got "
                         f"shape {tuple(locs.shape)}.")
    k = x0.shape[0]
    if x0.shape[1] != d:
        raise ValueError(f"`x_init` must have the measures' {d} features, got shape "
                         f"{tuple(x0.shape)}.")
    dtype = jnp.result_type(locs.dtype, x0.dtype)
    locs = checks.check_finite(locs.astype(dtype), "locations")
    x0 = checks.check_finite(x0.astype(dtype), "x_init")
    checks.check_int(max_iter, "max_iter")
    for value, name in ((tol, "tol"), (inner_tol, "inner_tol")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"`{name}` must be a Python number > 0, got {value!r}.")
    exact = epsilon is None
    if exact:
        if weights is not None or b is not None:
            raise ValueError("`weights` / `b`: exact mode (epsilon=None) needs uniform weights "
                             "(the plans are permutations); leave them None or pass epsilon > "
                             "0 for entropic plans.")
        if k != n:
            raise ValueError(f"`x_init` must have as many points as each measure (k = n = "
                             f"{n}) in exact mode (epsilon=None), got k = {k}; pass epsilon "
                             f"> 0 for entropic plans with any k.")
        eps = jnp.asarray(1.0, dtype)
    else:
        eps = jnp.asarray(checks.check_positive_scalar(epsilon, "epsilon"), dtype)
    if weights is None:
        w = jnp.full((N, n), 1.0 / n, dtype)
    else:
        w = checks.as_float_array(weights, "weights", dtype=dtype)
        if w.shape != (N, n):
            raise ValueError(f"`weights` must have shape (N, n) = ({N}, {n}), got "
                             f"{tuple(w.shape)}.")
        w = checks.check_finite(w, "weights")
        w = checks.ensure(w, (w < 0) | (jnp.sum(w, 1, keepdims=True) <= 0),
                          "`weights` has negative entries or a row summing to 0.")
        w = w / jnp.sum(w, 1, keepdims=True)
    bw = (jnp.full((k,), 1.0 / k, dtype) if b is None else
          checks.row_weights(b, k, "x_init", name="b", dtype=dtype, positive_sum=True))
    bw = checks.ensure(bw, bw <= 0, "`b` must be > 0 (every support point carries mass).")
    bw = bw / jnp.sum(bw)
    lam = (jnp.full((N,), 1.0 / N, dtype) if lambdas is None else
           checks.row_weights(lambdas, N, "locations", name="lambdas", dtype=dtype,
                              positive_sum=True))
    lam = lam / jnp.sum(lam)
    res = _solve(locs, w, jax.lax.stop_gradient(x0), bw, lam, eps, max_iter=int(max_iter),
                 tol=float(tol), exact=exact, inner_tol=float(inner_tol))
    return res._replace(n_iters=jax.lax.stop_gradient(res.n_iters),
                        displacement=jax.lax.stop_gradient(res.displacement),
                        converged=jax.lax.stop_gradient(res.converged))
