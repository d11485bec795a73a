"""Entropic optimal transport by Sinkhorn iterations: balanced, unbalanced and partial."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._core import checks
from .._core.costs import (
    CostMatrix,
    Geometry,
    PCost,
    PointCloud,
    pairwise_cost,
    resolve_cost,
)
from .._core.fixed_point import bounded_vmap, bounded_vmap_scalar, check_callback
from .._core.programs import eager_program
from .._core.results import with_summary_repr
from . import _solver

__all__ = ["SinkhornResult", "default_epsilon", "sinkhorn", "sinkhorn_from_cost"]


def _jitted(method):
    """Run a derived value of a result as one jitted program. Eagerly, the chunked
    ``lax.map`` of an online geometry closes over fresh functions (it would compile on every
    call), and a dense one would run (and compile, on first use) op by op: ~30 small
    programs for ``reg_cost``, several seconds of a first call on a loaded 2-core CPU."""
    static = ("axis",) if method.__name__ == "apply" else ()
    jitted = jax.jit(method, static_argnames=static)

    def call(self, *args, **kwargs):
        return jitted(self, *args, **kwargs)

    call.__doc__, call.__name__ = method.__doc__, method.__name__
    return call


@with_summary_repr
class SinkhornResult(NamedTuple):
    r"""Solution of an entropic OT problem (a pytree; derived values are properties).

    The plan is ``P_ij = exp((f_i + g_j - C_ij) / epsilon)``.

    Attributes:
      f: row potential, shape ``(n,)``.
      g: column potential, shape ``(m,)``.
      n_iters: Sinkhorn iterations run (a multiple of ``check_every``).
      converged: the last marginal error is below ``tol`` (and everything is finite).
      errors: L1 marginal error after each block of ``check_every`` iterations; ``-1`` for
        blocks that did not run.
      geom: the geometry (cost matrix or point clouds) the problem was solved on.
      a: the source weights.
      b: the target weights.
      epsilon: the regularisation.
      tau_a: the source marginal relaxation.
      tau_b: the target marginal relaxation.
      mass: the transported mass for partial OT, else ``None``.
      implicit: whether the potentials carry implicit-function-theorem gradients (then
        ``reg_cost`` is differentiated by the envelope theorem, see there); ``None`` counts
        as ``True``.
    """

    f: Float[Array, " n"]
    g: Float[Array, " m"]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]
    errors: Float[Array, " blocks"]
    geom: Geometry
    a: Float[Array, " n"]
    b: Float[Array, " m"]
    epsilon: Float[Array, ""]
    tau_a: Float[Array, ""]
    tau_b: Float[Array, ""]
    mass: Float[Array, ""] | None = None
    implicit: Bool[Array, ""] | None = None

    @property
    def plan(self) -> Float[Array, "n m"]:
        """The dense transport plan (materialises ``n x m``)."""
        return self.geom.plan(self.f, self.g, self.epsilon)

    @property
    @_jitted
    def marginals(self) -> tuple[Float[Array, " n"], Float[Array, " m"]]:
        """``(P 1, P^T 1)``, computed without materialising ``P`` in online mode."""
        return _solver._marginals(self.geom, self.f, self.g, self.epsilon)

    @_jitted
    def apply(self, w: Float[Array, " k"], axis: int = 1) -> Float[Array, " k2"]:
        """``P @ w`` (``axis=1``) or ``P.T @ w`` (``axis=0``) without forming ``P`` online."""
        return self.geom.plan_apply(self.f, self.g, self.epsilon, w, axis)

    @property
    @_jitted
    def linear_cost(self) -> Float[Array, ""]:
        r"""The transport cost $\langle P, C\rangle$."""
        return self.geom.plan_cost_sums(self.f, self.g, self.epsilon)[1]

    @property
    @_jitted
    def reg_cost(self) -> Float[Array, ""]:
        r"""The entropic OT objective, evaluated by its dual at the returned potentials.

        Balanced and unbalanced problems use the relative entropy to $a \otimes b$: the
        primal value is

        $$
            \mathrm{OT}_\varepsilon = \min_{P \ge 0}\ \langle P, C\rangle
            + \varepsilon\,\mathrm{KL}(P \,|\, a\otimes b)
            + \rho_a \mathrm{KL}(P1 \,|\, a) + \rho_b \mathrm{KL}(P^\top 1 \,|\, b),
            \quad \rho = \varepsilon\tau/(1-\tau),
        $$

        with $\mathrm{KL}(p\,|\,q) = \sum p\log(p/q) - p + q$ (the marginal terms are
        constraints when $\tau = 1$). ``reg_cost`` is its dual objective at
        $\tilde f = f - \varepsilon\log a$, $\tilde g = g - \varepsilon\log b$,

        $$
            D(\tilde f, \tilde g) = \Phi_a(\tilde f) + \Phi_b(\tilde g)
            - \varepsilon\Big(\sum_{ij} P_{ij} - \textstyle\sum_i a_i \sum_j b_j\Big),
            \qquad P_{ij} = e^{(f_i + g_j - C_{ij})/\varepsilon},
        $$

        where $\Phi_a(\tilde f) = \langle a, \tilde f\rangle$ for $\tau_a = 1$ and
        $\Phi_a(\tilde f) = -\rho_a\langle a, e^{-\tilde f/\rho_a} - 1\rangle$ for
        $\tau_a < 1$ (likewise for $b$); this is ott-jax's ``reg_ot_cost`` and POT's
        unbalanced dual. Partial OT uses the plain entropy,
        $\min \langle P, C\rangle + \varepsilon \sum_{ij} P_{ij}(\log P_{ij} - 1)$ under
        $P1 \le a$, $P^\top 1 \le b$, $\langle P, 1\rangle = m$, with the dual
        $\langle f - \lambda, a\rangle + \langle g, b\rangle + \lambda m
        - \varepsilon \sum_{ij} P_{ij}$ ($f - \lambda, g \le 0$; $\lambda = \max_i f_i$
        over the points with $a_i > 0$, exact whenever a source point is unsaturated).

        At the optimum primal and dual values are equal. The dual is stationary there, so
        at a solution with marginal error $\delta$ it is off by $O(\delta^2)$, where the
        primal objective at the (slightly infeasible) plan would be off by $O(\delta)$: at
        the default ``tol`` it matches a converged solve to about 1e-6 relative. Computed
        from the potentials and the marginals: no cost matrix is formed.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from jaxclust.ot import sinkhorn
          >>> x = jax.random.normal(jax.random.key(0), (20, 2))
          >>> y = jax.random.normal(jax.random.key(1), (15, 2)) + 1.0
          >>> loose = sinkhorn(x, y, epsilon=0.1).reg_cost        # tol = 1e-3
          >>> tight = sinkhorn(x, y, epsilon=0.1, tol=1e-6).reg_cost
          >>> bool(abs(loose - tight) < 1e-5 * abs(tight))
          True
        """
        eps = self.epsilon
        f, g = self.f, self.g
        if self.implicit is None or self.implicit is True:
            f, g = jax.lax.stop_gradient(f), jax.lax.stop_gradient(g)
        elif self.implicit is not False:  # an array flag (one value, or one per batch item)
            flag = jnp.all(self.implicit)
            f = jnp.where(flag, jax.lax.stop_gradient(f), f)
            g = jnp.where(flag, jax.lax.stop_gradient(g), g)
        total = _plan_total(self.geom, f, g, eps)
        if self.mass is not None:
            lam = jnp.max(jnp.where(self.a > 0, f, -jnp.inf))
            lam = jnp.where(jnp.isfinite(lam), lam, 0.0)
            fa = jnp.sum(jnp.where(self.a > 0, self.a * (f - lam), 0.0))
            gb = jnp.sum(jnp.where(self.b > 0, self.b * g, 0.0))
            return fa + gb + lam * self.mass - eps * total

        def side(tau, w, pot):
            pos = w > 0
            pt = jnp.where(pos, pot - eps * _solver.safe_log(w), 0.0)  # relative potential
            linear = jnp.sum(w * pt)
            rel = tau < 1.0
            rho = eps * tau / jnp.where(rel, 1.0 - tau, 1.0)
            pt_r = jnp.where(rel, pt, 0.0)  # the unused branch stays finite (NaN-free grads)
            relaxed = -rho * jnp.sum(jnp.where(pos, w * jnp.expm1(-pt_r / rho), 0.0))
            return jnp.where(rel, relaxed, linear)

        return (side(self.tau_a, self.a, f) + side(self.tau_b, self.b, g)
                + eps * (jnp.sum(self.a) * jnp.sum(self.b) - total))

    def potentials(self, z: Float[Array, "k d"], *, forward: bool = True) -> Float[Array, " k"]:
        r"""The dual potential extended to new points by the soft $c$-transform.

        With the plan $P_{ij} = e^{(f_i + g_j - C_{ij})/\varepsilon}$ (so ``g`` carries
        $\varepsilon \log b$), the source potential at a new point $z$ is

        $$
            f(z) = -\varepsilon \log \sum_j e^{(g_j - c(z, y_j))/\varepsilon} ,
        $$

        and with ``forward=False`` the target potential
        $g(z) = -\varepsilon \log \sum_i e^{(f_i - c(x_i, z))/\varepsilon}$: the
        potentials relative to the weights, so at a solved point $f(x_i) = f_i -
        \varepsilon \log a_i$ (resp. $g(y_j) = g_j - \varepsilon \log b_j$) up to the
        marginal error, and the balanced dual value is
        $\langle a, f(x)\rangle + \langle b, g(y)\rangle$. ``forward=False`` equals
        ott-jax's ``to_dual_potentials().g``; ott's ``.f`` weights the sum by $b_j$ although
        its ``g`` vector already carries $\varepsilon \log b_j$, so it is this value minus
        $\varepsilon \log m$ for uniform $b$ (and not a constant shift otherwise). For point
        clouds solved by :func:`sinkhorn` (dense or online: ``chunk_size`` is kept, no
        ``k x m`` matrix is formed online).

        Gradients: in ``z`` always. In the problem (``x``, ``y``, weights, ``epsilon``) only
        up to a constant for balanced OT: there $(f + c, g - c)$ solve the same problem for
        any $c$, so the potentials are defined up to that shift and their derivative along
        it is a convention of the solver (the implicit gradient and finite differences of
        the iterations pick different ones). Differences $f(z_k) - f(z_l)$, the map
        :meth:`transport` and the costs are shift-free and differentiate consistently
        (FD-checked); with ``tau < 1`` the potentials themselves are unique.

        Args:
          z: new points, shape ``(k, d)``.
          forward: ``True``: source-side points (uses ``g`` and ``y``); ``False``:
            target-side points (uses ``f`` and ``x``).

        Returns:
          The potential at each row of ``z``, shape ``(k,)``.

        Raises:
          ValueError: the result comes from :func:`sinkhorn_from_cost` (no points), ``z`` is
            not 2-D, has another number of features, or is not finite.
        """
        return _entropic_map(self, _check_new_points(self, z), forward, False)

    def transport(self, z: Float[Array, "k d"], *, forward: bool = True) -> Float[Array, "k d"]:
        r"""The barycentric entropic map of new points (Pooladian & Niles-Weed, 2021).

        $$
            T_\varepsilon(z) = \sum_j w_j(z)\, y_j, \qquad
            w_j(z) = \frac{e^{(g_j - c(z, y_j))/\varepsilon}}
                          {\sum_l e^{(g_l - c(z, y_l))/\varepsilon}} ,
        $$

        the mean of the plan's conditional law extended to $z$ (at a solved source point it
        is the barycentric projection $\sum_j P_{ij} y_j / \sum_j P_{ij}$). For the squared
        Euclidean cost it is ott-jax's ``to_dual_potentials().transport`` ($z - \tfrac12
        \nabla f(z)$) backwards always and forwards for uniform target weights (ott's
        forward map weights $y_j$ by $b_j$ a second time, see :meth:`potentials`, so it
        is not the plan's barycentric projection when $b$ is not uniform); for other costs
        it is still the barycentric map (ott applies the cost's twist operator instead).
        ``forward=False`` maps target-side points to the source with ``f`` and ``x``.
        Differentiable in ``z`` and in the problem.

        Args:
          z: points to transport, shape ``(k, d)``.
          forward: source to target (``True``) or back.

        Returns:
          The transported points, shape ``(k, d)``.

        Raises:
          ValueError: as :meth:`potentials`.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from jaxclust.ot import sinkhorn
          >>> x = jax.random.normal(jax.random.key(0), (30, 2))
          >>> res = sinkhorn(x, x + 3.0, epsilon=0.05, tol=1e-5)
          >>> z = jnp.array([[0.0, 0.0], [0.5, -0.5]])
          >>> bool(jnp.allclose(res.transport(z), z + 3.0, atol=0.3))
          True
        """
        return _entropic_map(self, _check_new_points(self, z), forward, True)


def _check_new_points(res: SinkhornResult, z):
    geom = res.geom
    if not isinstance(geom, PointCloud):
        raise ValueError("`z`: potentials/transport need the point clouds of the problem; this "
                         "result has a cost matrix only (sinkhorn_from_cost). Solve with "
                         "sinkhorn(x, y, ...) to extend the solution to new points.")
    z = checks.as_float_array(z, "z", dtype=geom.y.dtype)
    checks.check_points(z, "z")
    if z.shape[1] != geom.y.shape[1]:
        raise ValueError(f"`z` must have the problem's {geom.y.shape[1]} features, got shape "
                         f"{tuple(z.shape)}.")
    return checks.check_finite(z, "z")


@functools.partial(jax.jit, static_argnums=(2, 3))
def _entropic_map(res: SinkhornResult, z, forward: bool, transport: bool):
    geom, eps = res.geom, res.epsilon
    if forward:  # new source points against the target cloud
        new = PointCloud(z, geom.y, cost_fn=geom.cost_fn, chunk_size=geom.chunk_size)
        pot = -eps * new.lse(res.g, eps, axis=1)
        if not transport:
            return pot
        return new.plan_apply(pot, res.g, eps, geom.y, axis=1)
    # new target points against the (possibly row-sharded) source cloud
    new = eqx.tree_at(lambda t: t.y, geom, z)
    pot = -eps * new.lse(res.f, eps, axis=0)
    if not transport:
        return pot
    return new.plan_apply(res.f, pot, eps, geom.x, axis=0)


# ------------------------------------------------------------------------------------------
# eager calls: value checks on the host, then one compiled program
#
# An eager call with concrete inputs is checked with NumPy on the host (no XLA program for a
# check) and then runs as ONE jitted program (validation arithmetic, solve and result), with
# the value checks left out of that program (they were done). Any doubt (a traced or odd
# input, something to report) takes the general path, whose checks give the messages.

_trusting = [False]  # True while tracing the program of a host-checked eager call


@contextlib.contextmanager
def _trusted():
    prev = _trusting[0]
    _trusting[0] = True
    try:
        yield
    finally:
        _trusting[0] = prev


def _host_float_dtype(*arrays):
    """The dtype :func:`_float_dtype` gives after :func:`checks.as_float_array`."""
    dts = []
    for v in arrays:
        dt = jnp.result_type(v)  # canonical (float64 -> float32 without x64)
        dts.append(dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float))
    return np.dtype(jnp.promote_types(jnp.result_type(*dts), jnp.float32))


def _host_array(v, dtype=None):
    """A concrete numeric input as a NumPy array (``dtype``: converted), else ``None``."""
    if v is None or isinstance(v, (str, bytes)) or checks.is_traced(v):
        return None
    try:
        arr = np.asarray(v)
    except Exception:  # ragged lists ...: the general path names the argument
        return None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_ or
            arr.dtype.name == "bfloat16"):
        return None
    with np.errstate(all="ignore"):
        return arr if dtype is None else arr.astype(dtype)


def _host_scalar(v):
    if isinstance(v, bool) or checks.is_traced(v):
        return None
    arr = _host_array(v)
    if arr is None or arr.ndim != 0:
        return None
    return float(arr)


def _host_points_ok(x, y, cost):
    """Concrete point clouds that pass every check of :func:`_point_cloud`."""
    xn, yn = _host_array(x), _host_array(y)
    if xn is None or yn is None or xn.ndim != 2 or yn.ndim != 2:
        return None
    if xn.shape[1] != yn.shape[1] or xn.shape[0] == 0 or yn.shape[0] == 0:
        return None
    try:
        cost = resolve_cost(cost)  # "manhattan" (e.g. from sinkhorn_divergence) -> Minkowski(1)
    except ValueError:
        return None
    dtype = _host_float_dtype(xn, yn)
    xn, yn = xn.astype(dtype), yn.astype(dtype)
    if not (np.all(np.isfinite(xn)) and np.all(np.isfinite(yn))):
        return None
    if isinstance(cost, PCost):  # the cost's bound must be finite, with a margin of 2
        with np.errstate(all="ignore"):
            big = np.asarray(cost.bound(*(np.max(np.sum(np.abs(t) ** cost.p, 1)) ** (1 / cost.p)
                                          for t in (xn, yn))), dtype)
        return dtype if np.isfinite(big) and big < np.finfo(dtype).max / 2 else None
    if not callable(cost):
        with np.errstate(all="ignore"):
            if cost in ("sqeuclidean", "euclidean"):
                total = dtype.type(xn.shape[0] + yn.shape[0])
                centre = np.sum(xn / total, 0) + np.sum(yn / total, 0)
                xn, yn = xn - centre, yn - centre
            for arr in (xn, yn):  # checks.sq_norm_overflow, with a margin of 2
                s = np.sum(np.square(arr * dtype.type(0.25)), axis=-1)
                if not (np.all(np.isfinite(arr)) and np.max(s) < np.finfo(dtype).max / 128):
                    return None
    return dtype


def _host_problem_ok(dtype, n, m, a, b, epsilon, tau_a, tau_b, mass, init) -> bool:
    """Concrete weights, epsilon, taus, mass and warm start that pass every check of
    :func:`_solve` (with margins: a borderline case takes the general path)."""
    sums = []
    for w, size in ((a, n), (b, m)):
        if w is None:
            sums.append(float(np.sum(np.full((size,), 1.0 / size, dtype))))
            continue
        wn = _host_array(w, dtype)
        if (wn is None or wn.shape != (size,) or not np.all(np.isfinite(wn))
                or not np.all(wn >= 0) or not np.sum(wn) > 0):
            return False
        sums.append(float(np.sum(wn)))
    eps = _host_scalar(epsilon)
    ta, tb = _host_scalar(tau_a), _host_scalar(tau_b)
    if eps is None or not (np.isfinite(eps) and eps > 0):
        return False
    if ta is None or tb is None or not (0 < ta <= 1 and 0 < tb <= 1):
        return False
    sa, sb = sums
    if mass is not None:
        mv = _host_scalar(mass)
        if (mv is None or ta != 1.0 or tb != 1.0 or not (np.isfinite(mv) and mv > 0)
                or mv > min(sa, sb) * (1 + 5e-7)):
            return False
    elif ta == 1.0 and tb == 1.0:
        rtol = float(np.finfo(dtype).eps) ** 0.5 / 3
        if abs(sa - sb) > 0.5 * rtol * max(sa, sb):
            return False
    if init is not None:
        if not (isinstance(init, (tuple, list)) and len(init) == 2):
            return False
        f0, g0 = _host_array(init[0]), _host_array(init[1])
        if f0 is None or g0 is None or f0.shape != (n,) or g0.shape != (m,):
            return False
    return True


def _static_options(**opts):
    """Hashable static options of a compiled eager program."""
    if opts.get("epsilon_init") is not None:
        opts["epsilon_init"] = float(opts["epsilon_init"])
    return tuple(sorted(opts.items()))


# the eager programs: quick to compile for small problems on CPU (n * m, summed over the
# solves, up to programs.QUICK_WORK; Sinkhorn 300 x 300: 1.4 -> 0.4 s of compile CPU time,
# each solve ~3x slower to run); traced calls are inlined in the caller's program
@eager_program(("cost", "chunk_size", "opts"))
def _points_program(x, y, a, b, epsilon, tau_a, tau_b, mass, init, cost, chunk_size, opts):
    with _trusted():
        return sinkhorn(x, y, a, b, epsilon=epsilon, tau_a=tau_a, tau_b=tau_b, mass=mass,
                        init=init, cost=cost, chunk_size=chunk_size, **dict(opts))


@eager_program(("opts",))
def _cost_program(C, a, b, epsilon, tau_a, tau_b, mass, init, opts):
    with _trusted():
        return sinkhorn_from_cost(C, a, b, epsilon=epsilon, tau_a=tau_a, tau_b=tau_b,
                                  mass=mass, init=init, **dict(opts))


def _plan_total_of(geom: Geometry, f, g, eps):
    ones = jnp.ones(geom.shape[1], f.dtype)
    return jnp.sum(geom.plan_apply(f, g, eps, ones, 1))


def _plan_entries(geom: Geometry, f, g, eps) -> int:
    n, m = geom.shape
    return m * min(n, geom.chunk_size) if geom.is_online else n * m


_bounded_plan_total = bounded_vmap_scalar(_plan_total_of, _plan_entries)


def _plan_total(geom: Geometry, f, g, eps):
    """``sum_ij P_ij``, differentiable; under ``vmap`` a few problems' plans at a time, in
    the value and in its gradient (``bounded_vmap_scalar``): ``reg_cost`` of a batch (three
    per ``sinkhorn_divergence``) formed every problem's ``n x m`` plan at once."""
    if geom.is_sharded:  # collectives inside: plain batching
        return _plan_total_of(geom, f, g, eps)
    return _bounded_plan_total(geom, f, g, jnp.asarray(eps, f.dtype))


# ------------------------------------------------------------------------------------------
# validation


class _Checks:
    """The value checks of one traced call gathered into ONE ``equinox`` error.

    ``add(bad, message)`` raises ``ValueError(message)`` at once when ``bad`` is concrete (so
    eager calls raise in the order of the checks, as :func:`checks.ensure` does) and keeps it
    otherwise; ``attach(x)`` returns ``x`` carrying a single ``equinox.branched_error_if``
    whose message is the first failing check's ("ValueError: <message>", as
    :func:`checks.ensure`). One host callback and one combined predicate instead of one
    callback per check: each check was a separate reduction kernel and callback in the
    compiled program of a jitted Sinkhorn (issue 15, section 3: compile time).
    """

    def __init__(self):
        self.items: list = []

    def add(self, bad, message: str) -> None:
        if not checks.is_traced(bad):
            if bool(np.any(np.asarray(bad))):
                raise ValueError(message)
            return
        self.items.append((jnp.any(bad), message))

    def attach(self, x):
        if not self.items:
            return x
        bads = jnp.stack([b for b, _ in self.items])
        return eqx.branched_error_if(x, jnp.any(bads), jnp.argmax(bads),
                                     ["ValueError: " + m for _, m in self.items])


def _finite_message(name: str) -> str:
    """:func:`checks.check_finite`'s message."""
    return (f"`{name}` contains NaN or Inf; clean or mask the input (give masked points zero "
            f"weight) before calling.")


def _weights(w, size: int, name: str, dtype, point_name: str, gather: _Checks | None = None):
    if w is None:
        return jnp.full((size,), 1.0 / size, dtype)
    if _trusting[0]:  # checked on the host
        return checks.as_float_array(w, name, dtype=dtype)
    if gather is None:
        return checks.row_weights(w, size, point_name, name=name, dtype=dtype,
                                  positive_sum=True)
    # checks.row_weights' checks and messages, gathered
    w = checks.as_float_array(w, name, dtype=dtype)
    if w.shape != (size,):
        raise ValueError(f"`{name}` must have shape ({size},) (one per row of `{point_name}`), "
                         f"got {tuple(w.shape)}.")
    gather.add(~jnp.isfinite(jnp.sum(w * 0.0)), _finite_message(name))  # NaN or Inf somewhere
    gather.add(~(jnp.min(w, initial=0.0) >= 0), f"`{name}` has negative entries; weights "
               "must be >= 0.")
    gather.add(jnp.sum(w) <= 0, f"`{name}` sums to 0; give some point a positive weight.")
    return w


def check_tau(tau, name: str, dtype, gather: _Checks | None = None):
    if isinstance(tau, (int, float)) and not isinstance(tau, bool):
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"`{name}` must be in (0, 1] (1 = exact marginal, smaller = "
                             f"looser KL relaxation), got {tau}.")
        return jnp.asarray(tau, dtype)
    t = jnp.asarray(tau, dtype)
    if _trusting[0]:  # checked on the host
        return t
    if t.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(t.shape)}.")
    bad, msg = ~((t > 0) & (t <= 1)), f"`{name}` must be in (0, 1]."
    if gather is None:
        return checks.ensure(t, bad, msg)
    gather.add(bad, msg)
    return t


def _is_one(tau) -> bool:
    """``tau`` is concretely 1 (a Python number or a concrete JAX scalar)."""
    try:
        return float(tau) == 1.0
    except (TypeError, jax.errors.ConcretizationTypeError):
        return False


def check_static_options(tol, max_iter, check_every, mode, epsilon_init, epsilon_decay):
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"`tol` must be a Python number > 0, got {tol!r}.")
    checks.check_int(max_iter, "max_iter")
    checks.check_int(check_every, "check_every")
    if mode not in ("auto", "log"):
        raise ValueError(f"`mode` must be 'auto' (fast kernel path where safe) or 'log', "
                         f"got {mode!r}.")
    if epsilon_init is not None:
        try:
            epsilon_init = float(epsilon_init)  # concrete numbers and JAX scalars
        except (TypeError, jax.errors.ConcretizationTypeError) as err:
            raise ValueError("`epsilon_init` must be a concrete number (it sets the static "
                             "annealing schedule), not a traced value.") from err
        if not epsilon_init > 0:
            raise ValueError(f"`epsilon_init` must be > 0, got {epsilon_init!r}.")
    if not (isinstance(epsilon_decay, (int, float)) and 0 < epsilon_decay < 1):
        raise ValueError(f"`epsilon_decay` must be in (0, 1), got {epsilon_decay!r}.")


_EPS_HINT = ("It is absolute, in the units of the cost; `default_epsilon` gives a scale-aware "
             "value.")


def _solve(
    geom: Geometry, a, b, *, epsilon, tau_a, tau_b, mass, tol, max_iter, check_every, init,
    epsilon_init, epsilon_decay, implicit, mode, symmetric=False, callback=None,
    gather: _Checks | None = None,
) -> SinkhornResult:
    """``gather``: the value checks of the geometry (from :func:`_point_cloud`), to which the
    checks of the weights and parameters are added; all are attached to ``a`` as one error."""
    check_static_options(tol, max_iter, check_every, mode, epsilon_init, epsilon_decay)
    check_callback(callback)
    n, m = geom.shape
    dtype = geom.dtype
    gather = _Checks() if gather is None else gather
    uniform = a is None and b is None  # balanced by construction (no check)
    a = _weights(a, n, "a", dtype, "x" if isinstance(geom, PointCloud) else "C rows", gather)
    b = _weights(b, m, "b", dtype, "y" if isinstance(geom, PointCloud) else "C columns", gather)
    trusted = _trusting[0]  # the values were checked on the host
    if trusted or (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool)):
        eps = jnp.asarray(epsilon if trusted else checks.check_positive_scalar(
            epsilon, "epsilon", _EPS_HINT), dtype)
    else:
        eps = jnp.asarray(epsilon)
        if eps.ndim != 0:
            raise ValueError(f"`epsilon` must be a scalar, got shape {tuple(eps.shape)}.")
        gather.add(~(jnp.isfinite(eps) & (eps > 0)),
                   f"`epsilon` must be a finite number > 0. {_EPS_HINT}")
        eps = eps.astype(dtype)
    ta = check_tau(tau_a, "tau_a", dtype, gather)
    tb = check_tau(tau_b, "tau_b", dtype, gather)
    partial = mass is not None
    if partial and not trusted and not (_is_one(tau_a) and _is_one(tau_b)):
        raise ValueError("`mass` (partial OT) cannot be combined with `tau_a`/`tau_b` < 1 "
                         "(or with traced taus); use one relaxation at a time.")
    if partial and trusted:
        mass_arr = jnp.asarray(mass, dtype)
    elif partial:
        if isinstance(mass, (int, float)) and not isinstance(mass, bool):
            mass_arr = jnp.asarray(checks.check_positive_scalar(mass, "mass"), dtype)
        else:
            mass_arr = jnp.asarray(mass)
            if mass_arr.ndim != 0:
                raise ValueError(f"`mass` must be a scalar, got shape {tuple(mass_arr.shape)}.")
            gather.add(~(jnp.isfinite(mass_arr) & (mass_arr > 0)),
                       "`mass` must be a finite number > 0.")
            mass_arr = mass_arr.astype(dtype)
        avail = jnp.minimum(jnp.sum(a), jnp.sum(b))
        gather.add(mass_arr > avail * (1 + 1e-6),
                   "`mass` exceeds the available mass min(sum(a), sum(b)); partial OT "
                   "transports at most that much.")
    elif trusted:
        mass_arr = jnp.asarray(0.0, dtype)
    else:
        mass_arr = jnp.asarray(0.0, dtype)
        if not uniform:
            balanced = (ta == 1.0) & (tb == 1.0)
            sa, sb = jnp.sum(a), jnp.sum(b)
            rtol = float(jnp.finfo(dtype).eps) ** 0.5 / 3
            gather.add(
                balanced & (jnp.abs(sa - sb) > rtol * jnp.maximum(sa, sb)),
                "`a` and `b` must sum to the same mass for balanced OT; normalise them, or "
                "relax the marginals with tau_a/tau_b < 1, or pass `mass` for partial OT.")
    a = gather.attach(a)
    if init is None:
        z0 = (jnp.zeros(n, dtype), jnp.zeros(m, dtype))
    else:
        if not (isinstance(init, (tuple, list)) and len(init) == 2):
            raise ValueError("`init` must be a pair (f, g) of potentials, e.g. from a previous "
                             "result: init=(res.f, res.g).")
        f0 = checks.as_float_array(init[0], "init[0]", dtype=dtype)
        g0 = checks.as_float_array(init[1], "init[1]", dtype=dtype)
        if f0.shape != (n,) or g0.shape != (m,):
            raise ValueError(f"`init` potentials must have shapes ({n},) and ({m},), got "
                             f"{tuple(f0.shape)} and {tuple(g0.shape)}.")
        z0 = (f0, g0)
    if partial:
        # partial OT iterates on (f <= 0, g <= 0, lam) and returns f + lam: split a warm start
        # as lam = max(f) (exact at a solution with an unsaturated row), f - lam <= 0
        lam0 = jnp.max(z0[0]) if init is not None else jnp.asarray(0.0, dtype)
        z0 = (jnp.minimum(z0[0] - lam0, 0.0), jnp.minimum(z0[1], 0.0), lam0)

    cfg = _solver.Config(
        tol=float(tol), max_iter=max_iter, check_every=check_every, mode=mode,
        partial=partial, eps_init=None if epsilon_init is None else float(epsilon_init),
        eps_decay=float(epsilon_decay), implicit=bool(implicit), symmetric=symmetric,
        callback=callback,
    )
    params = _solver.Params(geom, a, b, eps, ta, tb, mass_arr)
    z, (n_iters, errors, converged) = _solver.run(cfg, params, z0)
    f, g = (z[0] + z[2], z[1]) if partial else z
    return SinkhornResult(
        f=f, g=g, n_iters=n_iters, converged=converged, errors=errors, geom=geom, a=a, b=b,
        epsilon=eps, tau_a=ta, tau_b=tb, mass=mass_arr if partial else None,
        implicit=jnp.asarray(bool(implicit)),
    )


def solve_potentials(geom: Geometry, a, b, eps, tau_a, tau_b, *, tol: float, max_iter: int,
                     check_every: int):
    """The log-domain (un)balanced solve behind :func:`sinkhorn`, from a cold start and with
    no checks (package-internal: ``jaxclust.distributed.sinkhorn`` runs it inside
    ``shard_map`` on a row-sharded :class:`PointCloud`, whose reductions over the rows end
    with collectives). Returns ``(f, g, n_iters, errors, converged)``; its gradient is
    :func:`potentials_pullback`."""
    n, m = geom.shape
    cfg = _solver.Config(tol=float(tol), max_iter=max_iter, check_every=check_every,
                         mode="log", partial=False, eps_init=None, eps_decay=0.9,
                         implicit=True)
    params = _solver.Params(geom, a, b, eps, tau_a, tau_b, jnp.asarray(0.0, a.dtype))
    z0 = (jnp.zeros((n,), a.dtype), jnp.zeros((m,), a.dtype))
    (f, g), (n_iters, errors, converged) = _solver.run(cfg, params, z0)
    return f, g, n_iters, errors, converged


def potentials_pullback(geom: Geometry, a, b, eps, tau_a, tau_b, f, g, f_bar, g_bar):
    """Cotangents ``(geom, a, b, eps, tau_a, tau_b)`` of :func:`solve_potentials` from those
    of its potentials ``(f_bar, g_bar)``: the implicit gradient of :func:`sinkhorn`
    (``implicit=True``), the same function on one device and, for a row-sharded geometry,
    inside ``shard_map`` (package-internal)."""
    params = _solver.Params(geom, a, b, eps, tau_a, tau_b, jnp.asarray(0.0, a.dtype))
    ct = _solver.implicit_pullback((f, g), params, (f_bar, g_bar))
    return ct.geom, ct.a, ct.b, ct.eps, ct.tau_a, ct.tau_b


def _float_dtype(*arrays):
    dt = jnp.result_type(*[t.dtype for t in arrays])
    # bfloat16 / float16 inputs are solved in float32 (reductions need the range)
    return jnp.promote_types(dt, jnp.float32)


def _point_cloud(x, y, cost, chunk_size, gather: _Checks | None = None) -> PointCloud:
    """The point clouds as a geometry, checked. ``gather``: the value checks are added to it
    (the caller attaches them) and the returned geometry holds the unchanged ``x``, ``y``, so
    that the centring and squared norms of the check and of the cost are one computation
    (XLA merges them); without it they are attached to ``x`` here."""
    x = checks.as_float_array(x, "x")
    y = checks.as_float_array(y, "y")
    checks.check_ndim(x, "x", 2, "(n, d)")
    checks.check_ndim(y, "y", 2, "(m, d)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"`x` and `y` must have the same number of features (columns), got "
                         f"{x.shape[1]} and {y.shape[1]}.")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError("`x` and `y` must each hold at least one point.")
    cost = resolve_cost(cost)
    checks.check_int(chunk_size, "chunk_size", none_ok=True, why="None: dense")
    dtype = _float_dtype(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    if _trusting[0]:  # checked on the host
        return PointCloud(x, y, cost, chunk_size)
    own = gather is None
    gather = _Checks() if own else gather
    # max |x| is NaN when x holds a NaN, inf when it holds an inf (max propagates NaN): one
    # reduction per cloud tells finiteness and, below, which cloud is larger
    mx, my = jnp.max(jnp.abs(x), initial=0.0), jnp.max(jnp.abs(y), initial=0.0)
    gather.add(~jnp.isfinite(mx), _finite_message("x"))
    gather.add(~jnp.isfinite(my), _finite_message("y"))
    if isinstance(cost, PCost):
        # a p-norm cost: its bound |x|_p + |y|_p (to the cost's power) must be representable
        over = ~jnp.isfinite(PointCloud(x, y, cost, chunk_size).cost_scale())
        y_larger = my > mx
        for name in ("x", "y"):
            gather.add(
                over & (y_larger if name == "y" else ~y_larger),
                f"`{name}` is too large for {jnp.dtype(dtype).name}: the {cost} cost between "
                f"`x` and `y` may overflow (its bound from the points' {cost.p:g}-norms is not "
                f"finite). Rescale both clouds by a common factor (and `epsilon` like the "
                f"cost).")
    elif callable(cost):
        # a custom cost: its shape is checked on one pair at trace time; its values are the
        # user's (non-finite costs show as converged=False)
        jax.eval_shape(lambda u, v: pairwise_cost(u, v, cost), x[:1], y[:1])
    else:
        # the cost must be representable: squared norms of the (centred, for the Euclidean
        # costs) points below max / 4 bound every |C_ij| below the dtype's max. The norms
        # are the cost's own (pairwise_cost: sum(x * x, -1)); an overflow to inf or a
        # non-finite centre fails ``< bound`` as well
        xc, yc = PointCloud(x, y, cost, chunk_size)._centred()
        bound = float(jnp.finfo(dtype).max) / 4
        over = ~((jnp.max(jnp.sum(xc * xc, axis=-1), initial=0.0) < bound)
                 & (jnp.max(jnp.sum(yc * yc, axis=-1), initial=0.0) < bound))
        # blame the cloud with the larger entries (centring spreads one cloud's size to both)
        y_larger = my > mx
        for name in ("x", "y"):
            gather.add(
                over & (y_larger if name == "y" else ~y_larger),
                f"`{name}` is too large for {jnp.dtype(dtype).name}: the '{cost}' cost between "
                f"`x` and `y` overflows (squared norms of the points"
                f"{' about their joint mean' if cost in ('sqeuclidean', 'euclidean') else ''} "
                f"must stay below {bound:.2g}). Rescale both clouds by a common factor s (and "
                f"`epsilon` by s**2 for 'sqeuclidean', s for 'euclidean' and 'dot').")
    if own:
        x = gather.attach(x)
    return PointCloud(x, y, cost, chunk_size)


def _cost_matrix(C, gather: _Checks | None = None) -> CostMatrix:
    """The cost matrix as a geometry, checked (``gather``: as :func:`_point_cloud`)."""
    C = checks.as_float_array(C, "C")
    checks.check_ndim(C, "C", 2, "(n, m)")
    C = C.astype(_float_dtype(C))
    if _trusting[0]:
        return CostMatrix(C)
    if gather is None:
        return CostMatrix(checks.check_finite(C, "C"))
    gather.add(~jnp.isfinite(jnp.sum(C * 0.0)), _finite_message("C"))
    return CostMatrix(C)


# ------------------------------------------------------------------------------------------
# public API


def sinkhorn(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    a: Float[Array, " n"] | None = None,
    b: Float[Array, " m"] | None = None,
    *,
    epsilon: float | Float[Array, ""],
    cost: str | Callable = "sqeuclidean",
    tau_a: float | Float[Array, ""] = 1.0,
    tau_b: float | Float[Array, ""] = 1.0,
    mass: float | Float[Array, ""] | None = None,
    tol: float = 1e-3,
    max_iter: int = 2000,
    check_every: int = 10,
    init: tuple[Array, Array] | None = None,
    epsilon_init: float | None = None,
    epsilon_decay: float = 0.9,
    implicit: bool = True,
    chunk_size: int | None = None,
    mode: str = "auto",
    callback: Callable[[int, float], None] | None = None,
) -> SinkhornResult:
    r"""Entropic optimal transport between two weighted point clouds.

    Solves, for $C_{ij} = c(x_i, y_j)$,

    $$
        \min_{P \ge 0}\ \langle P, C\rangle + \varepsilon\,\mathrm{KL}(P\,|\,a\otimes b)
        + \rho_a\,\mathrm{KL}(P1\,|\,a) + \rho_b\,\mathrm{KL}(P^\top 1\,|\,b),
        \qquad \rho = \varepsilon\,\frac{\tau}{1-\tau},
    $$

    where $\tau = 1$ (the default) means the marginal is exact (balanced OT), and
    $\tau < 1$ relaxes it (unbalanced OT; POT's ``reg_m`` is $\rho$). With
    ``mass`` set, solves *partial* OT instead: transport exactly ``mass``
    under $P1 \le a,\ P^\top 1 \le b$ with the plain entropy
    $\varepsilon\sum P_{ij}(\log P_{ij} - 1)$ (the formulation of POT's
    ``entropic_partial_wasserstein``).

    The solution is returned through dual potentials, $P_{ij} =
    \exp((f_i + g_j - C_{ij})/\varepsilon)$, computed by Sinkhorn's alternating updates
    $f \leftarrow \varepsilon\log a - \tau_a\varepsilon\,
    \mathrm{LSE}_j((g_j - C_{ij})/\varepsilon)$ (and symmetrically for ``g``).

    * ``epsilon`` is **absolute**, in the units of the cost. A good start is
      [`default_epsilon`][jaxclust.ot.default_epsilon] (``0.05 * std(C)``, the rule ott-jax uses).
    * Stability and speed: the iterations are log-domain stable for any ``epsilon``. With a
      dense cost and ``mode="auto"`` each block of ``check_every`` iterations runs as
      matrix-vector products with the kernel ``exp((f + g - C)/eps)`` into which the
      potentials are absorbed, falling back to the log domain for any block whose scalings
      leave the safe floating-point range.
    * ``chunk_size`` turns on the online mode: the cost is recomputed in blocks of
      ``chunk_size`` rows, so no ``n x m`` array is ever formed, in the forward or the
      backward pass (use ``.apply``/``.marginals``/``.linear_cost``, not ``.plan``).
    * Convergence: after every block of ``check_every`` iterations (the first included) the
      L1 error of the marginals of the plan the block returns,
      $\lVert P1 - a\rVert_1 + \lVert P^\top 1 - b\rVert_1$ (unbalanced: against the
      KL-relaxed targets; partial: the violation of $P1 \le a$, $P^\top 1 \le b$, the
      equalities at saturated points and the mass), is recorded in ``errors``; the loop
      stops when it is below ``tol`` (or after ``max_iter``). ``converged=True`` means: that
      error, measured on the returned ``f``, ``g``, is below ``tol``, the potentials and the
      plan are finite, and an annealing schedule has reached ``epsilon``. Non-convergence is
      reported in ``converged``, not raised. In float32 the plan's marginals cannot be
      exact to much better than ``1e-6`` (rounding of ``exp(f/eps)``): a ``tol`` below
      that may end as ``converged=False``.
    * Differentiation (w.r.t. ``x``, ``y``, ``a``, ``b``, ``epsilon``): ``implicit=True``
      applies the implicit function theorem to the optimality conditions, solved by
      conjugate gradients on plan products (memory independent of the iterations);
      ``implicit=False`` unrolls the iterations (checkpointed per block).
    * Annealing: with ``epsilon_init``, block ``k`` uses
      ``max(epsilon, epsilon_init * epsilon_decay**k)``.

    Args:
      x: source points, shape ``(n, d)``.
      y: target points, shape ``(m, d)``.
      a: source weights ``(n,)`` (default uniform ``1/n``); zero weights act as padding.
      b: target weights ``(m,)`` (default uniform ``1/m``).
      epsilon: entropic regularisation (absolute, > 0).
      cost: ``"sqeuclidean"``, ``"euclidean"``, ``"cosine"``, ``"dot"``, ``"manhattan"``
        ($\sum_k |x_k - y_k|$), a p-norm cost ([`Minkowski`][jaxclust.ot.Minkowski]``(p)``
        $\lVert x - y\rVert_p$, [`PNormP`][jaxclust.ot.PNormP]``(p)``
        $\lVert x - y\rVert_p^p / p$, [`SqPNorm`][jaxclust.ot.SqPNorm]``(p)``
        $\tfrac12\lVert x - y\rVert_p^2$; ott-jax's ``PNormP`` / ``SqPNorm``), or a callable
        ``c(x_i, y_j) -> scalar`` on two points of shape ``(d,)`` (any JAX-traceable
        function, e.g. ``lambda u, v: jnp.sum(jnp.abs(u - v))``; evaluated by ``vmap`` in
        the dense and the online mode alike, differentiable through it; define it once:
        a new function object means a new compilation). Static.
      tau_a: relaxation of the source marginal in (0, 1]; 1 is exact.
      tau_b: relaxation of the target marginal in (0, 1]; 1 is exact.
      mass: total mass to transport (partial OT), at most ``min(sum(a), sum(b))``.
      tol: tolerance on the L1 marginal error.
      max_iter: iteration budget.
      check_every: iterations between convergence checks (and kernel absorptions).
      init: warm start ``(f, g)``, e.g. the potentials of a nearby problem.
      epsilon_init: optional start of an epsilon annealing (a concrete number).
      epsilon_decay: factor per block of the annealing, in (0, 1).
      implicit: implicit (default) or unrolled differentiation.
      chunk_size: rows per block in online mode; ``None`` for dense.
      mode: ``"auto"`` (kernel fast path where safe) or ``"log"`` (log domain throughout).
      callback: optional progress report ``callback(iteration, error)`` (Python ``int`` and
        ``float``: the iterations done and the marginal error) called on the host after every
        ``check_every`` iterations, through ``jax.debug.callback``; static (a new function
        compiles a new program). ``None`` (default) leaves the compiled program unchanged.

    Returns:
      A [`SinkhornResult`][jaxclust.ot.SinkhornResult].

    Raises:
      ValueError: on shape mismatches, negative, NaN/Inf or unbalanced weights, NaN/Inf
        points, ``epsilon <= 0``, ``tau`` outside (0, 1] or ``mass`` above the available mass
        (under ``jit`` the value checks raise through ``equinox.error_if`` with the same text).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.ot import sinkhorn
      >>> x = jax.random.normal(jax.random.key(0), (64, 2))
      >>> y = jax.random.normal(jax.random.key(1), (48, 2)) + 1.0
      >>> res = sinkhorn(x, y, epsilon=0.1)
      >>> bool(res.converged), res.plan.shape
      (True, (64, 48))
      >>> bool(jnp.allclose(res.plan.sum(1), 1 / 64, atol=1e-4))
      True

    References:
      Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
      Schmitzer, "Stabilized Sparse Scaling Algorithms for Entropy Regularized Transport
      Problems", SIAM J. Sci. Comput. 2019 (absorption). Chizat, Peyré, Schmitzer, Vialard,
      "Scaling Algorithms for Unbalanced Optimal Transport Problems", Math. Comp. 2018.
      Benamou, Carlier, Cuturi, Nenna, Peyré, "Iterative Bregman Projections for Regularized
      Transportation Problems", SIAM J. Sci. Comput. 2015 (partial OT).
    """
    check_callback(callback)  # first: a static option, no computation
    cost = resolve_cost(cost)
    if not _trusting[0]:
        check_static_options(tol, max_iter, check_every, mode, epsilon_init, epsilon_decay)
        checks.check_int(chunk_size, "chunk_size", none_ok=True, why="None: dense")
        dtype = _host_points_ok(x, y, cost)
        if dtype is not None and _host_problem_ok(dtype, len(x), len(y), a, b, epsilon, tau_a,
                                                  tau_b, mass, init):
            return _points_program(len(x) * len(y), x, y, a, b, epsilon, tau_a, tau_b, mass,
                                   init, cost, chunk_size, _static_options(
                                       tol=tol, max_iter=max_iter, check_every=check_every,
                                       epsilon_init=epsilon_init, epsilon_decay=epsilon_decay,
                                       implicit=implicit, mode=mode, callback=callback))
    gather = _Checks()
    geom = _point_cloud(x, y, cost, chunk_size, gather)
    return _solve(
        geom, a, b, epsilon=epsilon, tau_a=tau_a, tau_b=tau_b, mass=mass, tol=tol,
        max_iter=max_iter, check_every=check_every, init=init, epsilon_init=epsilon_init,
        epsilon_decay=epsilon_decay, implicit=implicit, mode=mode, callback=callback,
        gather=gather,
    )


def _sinkhorn_symmetric(x, a=None, *, epsilon, cost="sqeuclidean", tau_a=1.0, tau_b=1.0,
                        tol=1e-3, max_iter=2000, check_every=10, init=None,
                        epsilon_init=None, epsilon_decay=0.9, implicit=True, chunk_size=None,
                        mode="auto") -> SinkhornResult:
    """``sinkhorn(x, x, a, a)`` by the symmetric averaged update (private; for the debiasing
    terms of the Sinkhorn divergence). Needs ``tau_a == tau_b`` (the problem is symmetric);
    ``mode`` is accepted for signature compatibility (the update is log-domain)."""
    del mode
    gather = _Checks()
    geom = _point_cloud(x, x, cost, chunk_size, gather)
    return _solve(
        geom, a, a, epsilon=epsilon, tau_a=tau_a, tau_b=tau_b, mass=None, tol=tol,
        max_iter=max_iter, check_every=check_every, init=init, epsilon_init=epsilon_init,
        epsilon_decay=epsilon_decay, implicit=implicit, mode="log", symmetric=True,
        gather=gather,
    )


def sinkhorn_from_cost(
    C: Float[Array, "n m"],
    a: Float[Array, " n"] | None = None,
    b: Float[Array, " m"] | None = None,
    *,
    epsilon: float | Float[Array, ""],
    tau_a: float | Float[Array, ""] = 1.0,
    tau_b: float | Float[Array, ""] = 1.0,
    mass: float | Float[Array, ""] | None = None,
    tol: float = 1e-3,
    max_iter: int = 2000,
    check_every: int = 10,
    init: tuple[Array, Array] | None = None,
    epsilon_init: float | None = None,
    epsilon_decay: float = 0.9,
    implicit: bool = True,
    mode: str = "auto",
    callback: Callable[[int, float], None] | None = None,
) -> SinkhornResult:
    r"""Entropic optimal transport on a given cost matrix ``C`` (``n x m``).

    The same problem, options and result as [`sinkhorn`][jaxclust.ot.sinkhorn] (see there
    for the math); gradients flow to ``C``, ``a``, ``b`` and ``epsilon``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ot import sinkhorn_from_cost
      >>> C = jnp.array([[0.0, 1.0], [1.0, 0.0]])
      >>> res = sinkhorn_from_cost(C, epsilon=0.01)
      >>> res.plan.round(3).tolist()
      [[0.5, 0.0], [0.0, 0.5]]

    References:
      Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
    """
    check_callback(callback)  # first: a static option, no computation
    if not _trusting[0]:
        check_static_options(tol, max_iter, check_every, mode, epsilon_init, epsilon_decay)
        Cn = _host_array(C)
        if Cn is not None and Cn.ndim == 2 and np.all(np.isfinite(
                Cn.astype(dtype := _host_float_dtype(Cn)))) and _host_problem_ok(
                dtype, Cn.shape[0], Cn.shape[1], a, b, epsilon, tau_a, tau_b, mass, init):
            return _cost_program(Cn.size, C, a, b, epsilon, tau_a, tau_b, mass, init,
                                 _static_options(
                                     tol=tol, max_iter=max_iter, check_every=check_every,
                                     epsilon_init=epsilon_init, epsilon_decay=epsilon_decay,
                                     implicit=implicit, mode=mode, callback=callback))
    gather = _Checks()
    return _solve(
        _cost_matrix(C, gather), a, b, epsilon=epsilon, tau_a=tau_a, tau_b=tau_b, mass=mass,
        tol=tol, max_iter=max_iter, check_every=check_every, init=init,
        epsilon_init=epsilon_init, epsilon_decay=epsilon_decay, implicit=implicit, mode=mode,
        callback=callback, gather=gather,
    )


def default_epsilon(
    x: Float[Array, "n d"] | Float[Array, "n m"],
    y: Float[Array, "m d"] | None = None,
    *,
    cost: str = "sqeuclidean",
    scale: float = 0.05,
    chunk_size: int | None = None,
) -> Float[Array, ""]:
    r"""A scale-aware regularisation: ``scale * std(C)`` over all entries of the cost.

    With ``y=None``, ``x`` is taken as the cost matrix itself. ``scale=0.05`` is the rule of
    ott-jax; smaller values give sharper plans and need more iterations. ``chunk_size``
    computes the moments online for large clouds.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.ot import default_epsilon
      >>> C = jnp.array([[0.0, 2.0], [2.0, 0.0]])
      >>> float(default_epsilon(C, scale=1.0))
      1.0
    """
    if y is None:
        return scale * _cost_matrix(x).cost_moments()[1]
    geom = _point_cloud(x, y, cost, chunk_size)
    if geom.is_online:
        return scale * geom.cost_moments()[1]
    return scale * _dense_cloud_std(geom.cost_fn)(geom.x, geom.y)


@functools.cache
def _dense_cloud_std(cost):
    """The standard deviation of the entries of the dense cost between two clouds, as a
    function of the clouds whose ``vmap`` bounds its temporaries (:func:`bounded_vmap`):
    batched calls (as in ``vmap(lambda x, y: sinkhorn(x, y, epsilon=default_epsilon(x,
    y)))``) reduce a few problems' cost matrices at a time instead of materialising the
    batch's (a [64, 512, 512] batch: 64 MiB; measured 34 ms batched vs 18 ms for a loop on
    the 2-core EPYC, 2026-12-04)."""
    return bounded_vmap(lambda x, y: PointCloud(x, y, cost).cost_moments()[1],
                        lambda x, y: x.shape[0] * y.shape[0])
