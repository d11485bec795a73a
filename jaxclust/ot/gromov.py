"""Entropic Gromov-Wasserstein and fused Gromov-Wasserstein (square loss).

Projected (mirror) gradient iterations of Peyré, Cuturi & Solomon (2016): each step solves an
entropic linear OT problem whose cost is the gradient of the quadratic GW loss at the current
plan, with the conventions of POT's ``ot.gromov.entropic_gromov_wasserstein`` and
``entropic_fused_gromov_wasserstein`` (solver ``"PGD"``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._core import checks
from .._core.precision import HIGHEST
from .._core.results import with_summary_repr
from .entropic import sinkhorn_from_cost

__all__ = ["GromovResult", "gromov_wasserstein"]


@with_summary_repr
class GromovResult(NamedTuple):
    r"""Solution of an entropic (fused) Gromov-Wasserstein problem (a pytree).

    Attributes:
      plan: the coupling ``T`` ``(n, m)``.
      cost: the (fused) GW loss at ``T``: $\alpha\,\mathcal{L}(T) + (1 - \alpha)\langle M,
        T\rangle$ with $\mathcal{L}(T) = \sum_{ijkl} (C^1_{ik} - C^2_{jl})^2 T_{ij} T_{kl}$
        (POT's ``log["gw_dist"]`` / ``log["fgw_dist"]``; $\alpha = 1$ without ``M``).
      reg_cost: ``cost`` $+\ \varepsilon\,\mathrm{KL}(T \,|\, a \otimes b)$, the objective
        the iterations decrease; its gradients w.r.t. ``C1``, ``C2``, ``M`` follow the
        envelope theorem (the plan is a stationary point), exact at convergence.
      n_iters: outer (linearised) iterations run.
      error: the last change of the plan, $\|T_{t} - T_{t-1}\|_F$.
      converged: ``error < tol``, the last inner Sinkhorn solve converged, and all finite.
    """

    plan: Float[Array, "n m"]
    cost: Float[Array, ""]
    reg_cost: Float[Array, ""]
    n_iters: Int[Array, ""]
    error: Float[Array, ""]
    converged: Bool[Array, ""]


def _gw_parts(C1, C2, a, b):
    """POT's ``init_matrix`` for the square loss: ``constC`` and the linear factors."""
    mm = functools.partial(jnp.matmul, precision=HIGHEST)
    const = mm(C1 * C1, a)[:, None] + mm(C2 * C2, b)[None, :]
    return const, C1, 2.0 * C2


def _tensor(parts, T):
    const, h1, h2 = parts
    return const - jnp.matmul(jnp.matmul(h1, T, precision=HIGHEST), h2.T, precision=HIGHEST)


def _linearised_cost(parts, parts_t, M, alpha, T):
    # gradient of the GW loss at T: 2 tens(T), averaged with the transposed problem (equal
    # for symmetric C1, C2; POT does the same when they are not symmetric)
    grad = _tensor(parts, T) + _tensor(parts_t, T)
    return alpha * grad + (1.0 - alpha) * M


def _loss(parts, M, alpha, T):
    return alpha * jnp.sum(_tensor(parts, T) * T) + (1.0 - alpha) * jnp.sum(M * T)


@functools.partial(jax.jit, static_argnames=("max_iter", "inner_max_iter", "tol", "inner_tol"))
def _solve(C1, C2, M, a, b, epsilon, alpha, *, max_iter, tol, inner_max_iter, inner_tol):
    sg = jax.lax.stop_gradient
    c1, c2, m_, a_, b_, eps, al = (sg(t) for t in (C1, C2, M, a, b, epsilon, alpha))
    parts, parts_t = _gw_parts(c1, c2, a_, b_), _gw_parts(c1.T, c2.T, a_, b_)
    n, m = c1.shape[0], c2.shape[0]
    dtype = c1.dtype

    def step(state):
        T, f, g, it, _, _ = state
        cost = _linearised_cost(parts, parts_t, m_, al, T)
        res = sinkhorn_from_cost(cost, a_, b_, epsilon=eps, tol=inner_tol,
                                 max_iter=inner_max_iter, init=(f, g), implicit=False)
        new = res.plan
        err = jnp.sqrt(jnp.sum(jnp.square(new - T)))
        return new, res.f, res.g, it + 1, err, res.converged

    def cond(state):
        _, _, _, it, err, _ = state
        return (it < max_iter) & ~(err < tol)

    T0 = a_[:, None] * b_[None, :]
    init = (T0, jnp.zeros((n,), dtype), jnp.zeros((m,), dtype), jnp.asarray(0),
            jnp.asarray(jnp.inf, dtype), jnp.asarray(False))
    T, _, _, it, err, inner_ok = jax.lax.while_loop(cond, step, init)
    T = sg(T)
    # values with gradients in C1, C2, M, alpha at the fixed plan (envelope theorem)
    parts_d = _gw_parts(C1, C2, a_, b_)
    cost = _loss(parts_d, M, alpha, T)
    pos = T > 0
    ratio = jnp.where(pos, T / (a_[:, None] * b_[None, :]), 1.0)
    kl = jnp.sum(jnp.where(pos, T * jnp.log(ratio), 0.0)) - jnp.sum(T) + 1.0
    reg = cost + epsilon * kl
    ok = (err < tol) & inner_ok & jnp.all(jnp.isfinite(T)) & jnp.isfinite(reg)
    return GromovResult(T, cost, reg, it, err, ok)


def _square(C, name: str):
    C = checks.as_float_array(C, name)
    checks.check_ndim(C, name, 2, "(n, n)")
    if C.shape[0] != C.shape[1] or C.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty square matrix of intra-domain costs, "
                         f"got shape {tuple(C.shape)}.")
    return checks.check_finite(C, name)


def _check_scale(C1, C2, M, eps):
    """Values the square loss and its Sinkhorn steps can hold in the dtype: ``C1**2``,
    ``C2**2`` and the linearised cost (at most ``2 (|C1| + |C2|)^2 + |M|``) must stay finite,
    and ``epsilon`` must exceed the rounding of that cost (``s * finfo.eps``), else the plans
    ``exp((f + g - cost) / epsilon)`` overflow into NaN."""
    dtype = C1.dtype
    big, ulp = jnp.finfo(dtype).max, jnp.finfo(dtype).eps
    lim = float(big) ** 0.5 / 4
    m1, m2, mm = (jnp.max(jnp.abs(x), initial=0.0) for x in (C1, C2, M))
    for name, x, m in (("C1", C1, m1), ("C2", C2, m2)):
        x = checks.ensure(x, m >= lim, (
            f"`{name}` has values too large for {jnp.dtype(dtype).name}: the square loss uses "
            f"{name}**2, which overflows (max |{name}| must stay below {lim:.2g}). Rescale it, "
            f"e.g. {name} / {name}.max() (scale C1 and C2 by the same factor s, epsilon by s**2)."))
        C1, C2 = (x, C2) if name == "C1" else (C1, x)
    M = checks.ensure(M, mm >= big / 16, (
        f"`M` has values too large for {jnp.dtype(dtype).name} (max |M| must stay below "
        f"{float(big) / 16:.2g}); rescale it, e.g. M / M.max(), and epsilon by the same factor."))
    scale = jnp.square(jnp.minimum(m1, lim) + jnp.minimum(m2, lim)) + jnp.minimum(mm, big / 16)
    eps = checks.ensure(eps, eps < scale * ulp, (
        f"`epsilon` is too small for the scale of the costs: with s = (max|C1| + max|C2|)**2 + "
        f"max|M|, the Sinkhorn plans exp(-cost / epsilon) lose all precision (and turn NaN) "
        f"once epsilon < s * {float(ulp):.2g} ({jnp.dtype(dtype).name}). Increase `epsilon`, "
        f"or rescale `C1`, `C2` (and `M`) so that s is of order 1."))
    return C1, C2, M, eps


def gromov_wasserstein(
    C1: Float[Array, "n n"],
    C2: Float[Array, "m m"],
    a: Float[Array, " n"] | None = None,
    b: Float[Array, " m"] | None = None,
    *,
    epsilon: float | Float[Array, ""],
    M: Float[Array, "n m"] | None = None,
    alpha: float | Float[Array, ""] = 0.5,
    tol: float | None = None,
    max_iter: int = 1000,
    inner_tol: float | None = None,
    inner_max_iter: int = 1000,
) -> GromovResult:
    r"""Entropic Gromov-Wasserstein (and fused GW with a feature cost ``M``), square loss.

    $$
    \min_{T \in \Pi(a, b)} \ \alpha \sum_{ijkl} (C^1_{ik} - C^2_{jl})^2 T_{ij} T_{kl}
    + (1 - \alpha) \langle M, T\rangle + \varepsilon\, \mathrm{KL}(T \,|\, a \otimes b)
    $$

    (``alpha = 1`` without ``M``: plain GW), by the projected mirror-gradient iterations
    $T_{t+1} = \mathrm{Sinkhorn}_\varepsilon(a, b, \nabla \mathcal{L}(T_t))$ from
    $T_0 = a b^\top$, where $\nabla\mathcal{L}(T) = \alpha(2\,\mathrm{tens}(T))
    + (1 - \alpha) M$ and $\mathrm{tens}(T) = (C^1)^{\circ 2} a 1^\top + 1 b^\top
    ((C^2)^{\circ 2})^\top - 2 C^1 T (C^2)^\top$ (averaged with the transposed problem when
    ``C1`` or ``C2`` is not symmetric). These are POT's conventions
    (``entropic_gromov_wasserstein`` / ``entropic_fused_gromov_wasserstein``, solver
    ``"PGD"``, ``epsilon`` the same number: POT's entropy term has the same minimiser), and
    the result equals POT's plan and ``gw_dist`` / ``fgw_dist``. ott-jax's
    ``GromovWasserstein`` linearises with half of this gradient: its ``epsilon / 2`` is the
    same problem (same plan, checked in float64). Each step warm-starts the
    Sinkhorn solve from the previous potentials. The problem is non-convex: the result is a
    stationary point reached from $a b^\top$. Cost per step: two ``n x n x m``-type
    matrix products plus a Sinkhorn solve.

    Args:
      C1: intra-domain costs of the source ``(n, n)``.
      C2: intra-domain costs of the target ``(m, m)``.
      a: source weights (default uniform), non-negative, normalised.
      b: target weights (default uniform), likewise.
      epsilon: entropic regularisation (> 0, absolute, in the units of the loss).
      M: feature cost ``(n, m)`` for fused GW, or ``None``.
      alpha: weight of the structure term in fused GW, in ``[0, 1]`` (ignored without ``M``).
      tol: stop when the plan moves less than ``tol`` in Frobenius norm (static; default
        POT's 1e-9 in float64, 1e-5 in float32, which cannot resolve 1e-9).
      max_iter: maximum number of outer iterations (static).
      inner_tol: marginal tolerance of each Sinkhorn solve (static; the same defaults).
      inner_max_iter: iteration cap of each Sinkhorn solve (static).

    Returns:
      :class:`GromovResult`; ``cost`` and ``reg_cost`` are differentiable in ``C1``, ``C2``,
      ``M`` and ``alpha`` (envelope theorem at the returned plan; weights and ``epsilon``
      get no gradient).

    Raises:
      ValueError: non-square or non-finite ``C1``/``C2``, ``M`` of the wrong shape, bad
        weights, ``epsilon <= 0``, ``alpha`` outside ``[0, 1]``, bad static options;
        ``C1``/``C2`` whose squares overflow the dtype (max entry above
        $\sqrt{\text{finfo.max}}/4$), ``M`` above ``finfo.max / 16``, and ``epsilon`` below
        $s \cdot$ ``finfo.eps`` with $s = (\max|C_1| + \max|C_2|)^2 + \max|M|$ (the plans
        lose all precision there): rescale the costs.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.ot import gromov_wasserstein
      >>> x = jax.random.normal(jax.random.key(0), (8, 2))
      >>> rot = jnp.array([[0.0, -1.0], [1.0, 0.0]])
      >>> d = lambda p: jnp.sum((p[:, None] - p[None]) ** 2, -1) / 10.0
      >>> res = gromov_wasserstein(d(x), d(x @ rot), epsilon=0.05)
      >>> other = gromov_wasserstein(d(x), d(2.0 * x), epsilon=0.05)  # not an isometry
      >>> bool(res.converged), bool(res.cost < other.cost)
      (True, True)

    References:
      Mémoli, *Gromov-Wasserstein distances and the metric approach to object matching*,
      FoCM 2011; Peyré, Cuturi & Solomon, *Gromov-Wasserstein averaging of kernel and
      distance matrices*, ICML 2016; Vayer et al., *Optimal transport for structured data
      with application on graphs*, ICML 2019 (fused GW).
    """
    C1 = _square(C1, "C1")
    C2 = _square(C2, "C2")
    n, m = C1.shape[0], C2.shape[0]
    dtype = jnp.result_type(C1.dtype, C2.dtype)
    C1, C2 = C1.astype(dtype), C2.astype(dtype)
    default_tol = 1e-9 if dtype == jnp.float64 else 1e-5
    tol = default_tol if tol is None else tol
    inner_tol = default_tol if inner_tol is None else inner_tol
    for value, name in ((tol, "tol"), (inner_tol, "inner_tol")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"`{name}` must be a Python number > 0, got {value!r}.")
    checks.check_int(max_iter, "max_iter")
    checks.check_int(inner_max_iter, "inner_max_iter")
    wa = (jnp.full((n,), 1.0 / n, dtype) if a is None else
          checks.row_weights(a, n, "C1", name="a", dtype=dtype, positive_sum=True))
    wb = (jnp.full((m,), 1.0 / m, dtype) if b is None else
          checks.row_weights(b, m, "C2", name="b", dtype=dtype, positive_sum=True))
    wa, wb = wa / jnp.sum(wa), wb / jnp.sum(wb)
    eps = jnp.asarray(checks.check_positive_scalar(epsilon, "epsilon"), dtype)
    if M is None:
        Mv = jnp.zeros((n, m), dtype)
        al = jnp.asarray(1.0, dtype)
    else:
        Mv = checks.as_float_array(M, "M", dtype=dtype)
        if Mv.shape != (n, m):
            raise ValueError(f"`M` must have shape (n, m) = ({n}, {m}) (rows of C1, rows of "
                             f"C2), got {tuple(Mv.shape)}.")
        Mv = checks.check_finite(Mv, "M")
        al = jnp.asarray(alpha, dtype)
        if al.ndim != 0:
            raise ValueError(f"`alpha` must be a scalar, got shape {tuple(al.shape)}.")
        al = checks.ensure(al, ~((al >= 0) & (al <= 1)), "`alpha` must be in [0, 1].")
    C1, C2, Mv, eps = _check_scale(C1, C2, Mv, eps)
    return _solve(C1, C2, Mv, wa, wb, eps, al, max_iter=int(max_iter), tol=float(tol),
                  inner_max_iter=int(inner_max_iter), inner_tol=float(inner_tol))
