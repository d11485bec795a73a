"""Solvers of the Peng–Wei k-means SDP as option objects (the optimistix pattern).

``kmeans_sdp(x, k, solver=ADMM(...))`` or ``solver=BurerMonteiro(...)``: each object holds
exactly the options of its method, so an option of the other method cannot be written (it
raises a ``ValueError`` naming it, instead of being silently ignored). The objects are
frozen dataclasses: immutable, hashable (usable as a static argument of ``jax.jit``) and
pytrees whose numeric options (``rho``, ``tol``, ``beta``, ``step``) are leaves, so they
may also be traced; the options that fix the program (``adaptive_rho``, ``max_iter``,
``rank``, ``check_every``, ``init``) are static.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax

from .._core import checks

__all__ = ["ADMM", "BurerMonteiro"]

#: every option of every solver, and the solver it belongs to (for the error message)
_OWNER = {"rho": "ADMM", "adaptive_rho": "ADMM", "rank": "BurerMonteiro",
          "beta": "BurerMonteiro", "step": "BurerMonteiro", "check_every": "BurerMonteiro",
          "init": "BurerMonteiro"}


def _strict(cls):
    """Make ``cls(**options)`` raise a ``ValueError`` naming an option it does not take
    (the dataclass ``__init__`` would raise a ``TypeError``), then register it as a pytree
    (numeric options are leaves, the others static)."""
    names = [f.name for f in dataclasses.fields(cls)]
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **options):  # noqa: N807 - wraps the dataclass __init__
        if args:
            raise ValueError(f"{cls.__name__} takes keyword options only "
                             f"({', '.join(names)}), got {len(args)} positional.")
        for name in options:
            if name not in names:
                owner = _OWNER.get(name)
                where = (f" (it is an option of {owner})" if owner else "")
                raise ValueError(f"`{name}` does not apply to {cls.__name__}{where}; "
                                 f"{cls.__name__} takes {', '.join(names)}.")
        init(self, **options)

    cls.__init__ = __init__
    data = [n for n in names if n in cls._traced]
    return jax.tree_util.register_dataclass(
        cls, data_fields=data, meta_fields=[n for n in names if n not in data])


def _concrete(value) -> bool:
    """A Python number (checked at construction); arrays and tracers are checked by
    ``kmeans_sdp`` (pytree unflattening also passes placeholders, which are skipped)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(value, name: str, hint: str = "") -> None:
    if isinstance(value, bool) or isinstance(value, str) or (
            _concrete(value) and not (math.isfinite(value) and value > 0)):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}. {hint}".strip())


@_strict
@dataclasses.dataclass(frozen=True, kw_only=True)
class ADMM:
    r"""The two-block ADMM of [`kmeans_sdp`][jaxclust.sdp.kmeans_sdp]: dense ``n x n``
    iterates, one (partial) eigendecomposition per iteration, ``n <= ADMM_MAX_N``.

    Attributes:
      rho: penalty in the units of the squared distances $D$; ``None`` (default) picks
        $5n/k$ in the units where $D$ has unit mean.
      adaptive_rho: residual balancing of $\rho$ every 10 iterations (static).
      tol: tolerance on both relative residuals.
      max_iter: iteration budget (static).

    Example:
      >>> from jaxclust.sdp import ADMM
      >>> ADMM(tol=1e-6)
      ADMM(rho=None, adaptive_rho=True, tol=1e-06, max_iter=10000)
    """

    _traced = ("rho", "tol")

    rho: float | None = None
    adaptive_rho: bool = True
    tol: float = 1e-5
    max_iter: int = 10_000

    def __post_init__(self):
        if self.rho is not None:
            _check_number(self.rho, "rho")
        if not isinstance(self.adaptive_rho, bool):
            raise ValueError(f"`adaptive_rho` must be True or False, got {self.adaptive_rho!r}.")
        _check_number(self.tol, "tol")
        checks.check_int(self.max_iter, "max_iter")


@_strict
@dataclasses.dataclass(frozen=True, kw_only=True)
class BurerMonteiro:
    r"""The nonnegative low-rank Burer–Monteiro solver of
    [`kmeans_sdp`][jaxclust.sdp.kmeans_sdp]: $Z = UU^\top$, $U \ge 0$ of shape
    ``(n, rank)``, $O(ndr)$ per iteration and no ``n x n`` matrix.

    Attributes:
      rank: columns of $U$ (static), ``k <= rank <= n``; ``None`` (default) takes
        ``min(2k, n)``.
      tol: tolerance on the primal residual $\lVert UU^\top\mathbf 1 - \mathbf 1\rVert /
        \sqrt n$ and on the relative objective change over ``check_every`` iterations. Below
        the exact-recovery threshold the iterates can cross plateaus that 1e-5 takes for
        convergence; 1e-7 (near float32 resolution) is safer there, and slower.
      max_iter: iteration budget (static; rounded up to a multiple of ``check_every``).
      beta: augmented Lagrangian penalty, in units where the centred data have unit mean
        squared norm.
      step: step size as a fraction of the curvature bound $1/L$.
      check_every: iterations between convergence checks (static).
      init: ``"random"`` (uniform, projected; default) or ``"kmeans"`` (a k-means
        membership factor plus noise) (static).

    Example:
      >>> from jaxclust.sdp import BurerMonteiro
      >>> BurerMonteiro(rank=8).rank
      8
    """

    _traced = ("tol", "beta", "step")

    rank: int | None = None
    tol: float = 1e-5
    max_iter: int = 50_000
    beta: float = 1.0
    step: float = 1.0
    check_every: int = 10
    init: str = "random"

    def __post_init__(self):
        if self.rank is not None:
            checks.check_int(self.rank, "rank")
        _check_number(self.tol, "tol")
        checks.check_int(self.max_iter, "max_iter")
        _check_number(self.beta, "beta", "The penalty is in scaled units; try 1.")
        _check_number(self.step, "step", "A fraction of 1/L; try 1.")
        checks.check_int(self.check_every, "check_every")
        if self.init not in ("kmeans", "random"):
            raise ValueError(f"`init` must be 'kmeans' or 'random', got {self.init!r}.")


def _as_value(value, name: str, dtype):
    """A positive numeric option as a scalar array of ``dtype``: Python numbers were checked
    at construction, arrays (traced or not) are checked here (``checks.ensure``)."""
    if not _concrete(value):
        value = checks.check_positive_scalar(value, name)
    return jax.numpy.asarray(value, dtype)
