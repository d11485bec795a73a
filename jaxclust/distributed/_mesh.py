r"""Mesh, sharding and gathering helpers.

Everything here is plain JAX SPMD: a one-axis `jax.sharding.Mesh` named
`AXIS` over the devices, point arrays placed with
``NamedSharding(mesh, PartitionSpec(AXIS))`` (rows split evenly over the devices), and the
padding needed to make the row count divisible by the number of devices carried as
zero-weight rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float

from .._core import checks
from .._core.collectives import psum

__all__ = [
    "AXIS",
    "ShardedPoints",
    "gather",
    "make_mesh",
    "shard",
]

AXIS = "points"
"""The name of the mesh axis along which points are sharded."""


def make_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    r"""A one-dimensional device mesh whose single axis, `AXIS` (``"points"``),
    carries the point axis of sharded data.

    Args:
      devices: the devices to use, in order; default ``jax.devices()`` (all devices of all
        processes, which is what a multi-host run wants after
        ``jax.distributed.initialize()``).

    Returns:
      ``jax.sharding.Mesh`` of shape ``(len(devices),)`` with axis name ``"points"``.

    Raises:
      ValueError: ``devices`` is not a sequence of JAX devices (e.g. a platform name such as
        ``"cpu"``: pass ``jax.devices("cpu")``), is empty or repeats a device.

    Example:
      >>> from jaxclust import distributed as jd
      >>> mesh = jd.make_mesh()
      >>> mesh.axis_names
      ('points',)
    """
    if devices is not None and (isinstance(devices, (str, bytes))
                                or not isinstance(devices, Sequence | np.ndarray)):
        raise ValueError("`devices` must be a sequence of JAX devices, e.g. jax.devices() or "
                         f"jax.devices('cpu'), got {type(devices).__name__} {devices!r}.")
    devs = list(jax.devices() if devices is None else np.ravel(np.asarray(devices,
                                                                           dtype=object)))
    bad = [d for d in devs if not isinstance(d, jax.Device)]
    if bad:
        raise ValueError("`devices` must contain JAX devices (from jax.devices() or "
                         f"jax.devices('cpu')), got {type(bad[0]).__name__} {bad[0]!r}.")
    if not devs:
        raise ValueError("`devices` is empty; pass at least one device (default: jax.devices()).")
    if len({id(d) for d in devs}) != len(devs):
        raise ValueError("`devices` repeats a device; each device may appear once in the mesh.")
    return Mesh(np.asarray(devs, dtype=object), (AXIS,))


@jax.tree_util.register_pytree_node_class
class ShardedPoints:
    r"""Points sharded along their first axis over a 1-D mesh, padded with zero weights.

    Build it with [`shard`][jaxclust.distributed.shard]. It is a pytree: ``x`` and
    ``weights`` are leaves, the real number of points ``n`` and the ``mesh`` are static
    (they cross ``jax.jit`` boundaries as part of the tree structure).

    Attributes:
      x: ``(n_pad, d)`` points, rows ``n:`` are zeros; sharded as ``P("points")``.
      weights: ``(n_pad,)`` point weights, ``0`` on the padding rows; same sharding.
      n: the number of real points (a Python int).
      mesh: the mesh the arrays are laid out on.
    """

    __slots__ = ("mesh", "n", "weights", "x")

    def __init__(self, x, weights, n: int, mesh: Mesh):
        self.x = x
        self.weights = weights
        self.n = n
        self.mesh = mesh

    def tree_flatten(self):
        return (self.x, self.weights), (self.n, self.mesh)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], children[1], *aux)

    @property
    def n_pad(self) -> int:
        """Padded number of rows (a multiple of the number of devices)."""
        return int(self.x.shape[0])

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    def __repr__(self) -> str:
        return (f"ShardedPoints(n={self.n}, n_pad={self.n_pad}, d={self.x.shape[1:]}, "
                f"devices={self.num_devices}, dtype={self.x.dtype})")


_BAD_X = ("`x` contains NaN or Inf; clean or mask the input (give masked points zero weight) "
          "before calling.")
_BAD_W = "`weights` must be finite and >= 0; give points to ignore weight 0."


def _sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(AXIS))


def shard(x: Float[ArrayLike, "n d"], mesh: Mesh | None = None, weights: Float[ArrayLike, " n"]
          | None = None) -> ShardedPoints:
    r"""Shard a point array along its first axis over ``mesh``, padding with zero weights.

    With $P$ devices the rows are padded to $n_{pad} = P \lceil n / P \rceil$ (zeros, weight
    $0$), so each device holds $n_{pad} / P$ consecutive rows: device $p$ owns global rows
    $[p\, n_{pad}/P, (p+1)\, n_{pad}/P)$. The padding rows never influence the algorithms of
    `jaxclust.distributed` (they carry no mass and are never sampled).

    For data that does not fit on one host, build the global arrays from each process's
    local rows with ``jax.make_array_from_process_local_data`` instead, with the sharding
    ``NamedSharding(mesh, PartitionSpec("points"))`` and zero-weight padding rows, and wrap
    them as ``ShardedPoints(x, weights, n, mesh)``.

    Args:
      x: ``(n, d)`` points (a host or device array).
      mesh: a 1-D mesh from [`make_mesh`][jaxclust.distributed.make_mesh]; default ``make_mesh()``.
      weights: ``(n,)`` non-negative point weights; default all ones.

    Returns:
      [`ShardedPoints`][jaxclust.distributed.ShardedPoints] with ``x`` ``(n_pad, d)`` and
      ``weights`` ``(n_pad,)`` sharded as ``P("points")``.

    Raises:
      ValueError: ``x`` is not 2-D or is empty, ``weights`` has the wrong shape, is negative
        or not finite, or ``mesh`` is not a 1-D mesh with axis ``"points"``. The value
        checks (NaN, negative weights) also run under ``jax.jit`` (then the runtime error
        carries the message).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> pts = jd.shard(jnp.ones((5, 2)))
      >>> pts.n, pts.x.shape[1], float(pts.weights.sum())
      (5, 2, 5.0)
    """
    mesh = make_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh) or tuple(mesh.axis_names) != (AXIS,):
        raise ValueError(f"`mesh` must be a 1-D jax.sharding.Mesh with axis name {AXIS!r}; build "
                         "it with jaxclust.distributed.make_mesh().")
    # host (numpy) input stays on the host until each device receives its own rows
    xp = np if isinstance(x, np.ndarray) and not isinstance(weights, jax.Array) else jnp
    if xp is np:
        x = x.astype(jax.dtypes.canonicalize_dtype(
            x.dtype if np.issubdtype(x.dtype, np.floating) else float), copy=False)
    else:
        x = checks.as_float_array(x, "x")
    checks.check_ndim(x, "x", 2, "(n, d)")
    n = int(x.shape[0])
    if n == 0:
        raise ValueError("`x` has no rows; pass at least one point.")
    if weights is None:
        w = xp.ones((n,), x.dtype)
    else:
        w = (np.asarray(weights, x.dtype) if xp is np
             else checks.as_float_array(weights, "weights", dtype=x.dtype))
        if w.shape != (n,):
            raise ValueError(f"`weights` must have shape (n,) = ({n},), got {tuple(w.shape)}.")
    # value checks: eagerly on the host; under jit inside shard_map after the arrays are
    # sharded (`_checked_blocks`), so that every device reaches the same verdict and raises
    # together (a check outside shard_map runs on one device while the others wait at the
    # next collective, forever)
    traced = checks.is_traced(x, w)
    if not traced:
        if not bool(xp.all(xp.isfinite(x))):
            raise ValueError(_BAD_X)
        if not bool(xp.all(xp.isfinite(w) & (w >= 0))):
            raise ValueError(_BAD_W)
    p = int(mesh.devices.size)
    n_pad = -(-n // p) * p
    if n_pad != n:
        x = xp.concatenate([x, xp.zeros((n_pad - n, x.shape[1]), x.dtype)])
        w = xp.concatenate([w, xp.zeros((n_pad - n,), w.dtype)])
    sharding = _sharding(mesh)
    x, w = jax.device_put(x, sharding), jax.device_put(w, sharding)
    if traced:
        x, w = _checked_blocks(x, w, mesh)
    return ShardedPoints(x, w, n, mesh)


def _checked_blocks(x, w, mesh):
    """The value checks of :func:`shard` on traced arrays: per-device counts, ``psum``'d to
    one global verdict inside ``shard_map``."""

    def body(xb, wb):
        bad_x = psum(jnp.sum(~jnp.isfinite(xb)), AXIS) > 0
        bad_w = psum(jnp.sum(~(jnp.isfinite(wb) & (wb >= 0))), AXIS) > 0
        return checks.ensure(xb, bad_x, _BAD_X), checks.ensure(wb, bad_w & ~bad_x, _BAD_W)

    rows = PartitionSpec(AXIS)
    return jax.shard_map(body, mesh=mesh, in_specs=(rows, rows), out_specs=(rows, rows),
                         check_vma=False)(x, w)


@jax.jit
def _value_flags(x, w):
    return (~jnp.all(jnp.isfinite(x)), checks.sq_norm_overflow(x),
            ~jnp.all(jnp.isfinite(w) & (w >= 0)), jnp.sum(w) <= 0)


def check_values_now(points: ShardedPoints, name: str = "points", *, overflow: bool = True,
                     weights: bool = True, bad_w: str | None = None) -> None:
    """Value checks of concrete sharded points as a plain ``ValueError``, now.

    The reductions run where the rows live (one small SPMD program, all devices taking
    part); four booleans come to the host. Nothing happens when the arrays are traced (or
    when called under an outer ``jit``): the sharded programs then check inside
    ``shard_map``, where a failed check raises on every device together."""
    if checks.is_traced(points.x, points.weights):
        return
    flags = _value_flags(points.x, points.weights.astype(points.x.dtype))
    if checks.is_traced(*flags):
        return
    nonfinite, huge, bad, no_mass = (bool(f) for f in flags)
    if nonfinite:
        raise ValueError(f"`{name}.x` contains NaN or Inf; clean or mask the input (give "
                         "masked points zero weight) before calling.")
    if overflow and huge:
        raise ValueError(checks.overflow_message(f"{name}.x", points.x.dtype))
    if weights and bad:
        raise ValueError(bad_w or f"`{name}.weights` has NaN, Inf or negative entries; "
                                  "sample weights must be >= 0.")
    if weights and no_mass:
        raise ValueError(f"`{name}.weights` sums to 0; give some point a positive weight.")


def check_points(points, name: str = "points") -> None:
    if not isinstance(points, ShardedPoints):
        raise ValueError(f"`{name}` must be a ShardedPoints; build it with "
                         f"jaxclust.distributed.shard(x, mesh), got {type(points).__name__}.")
    checks.check_ndim(points.x, f"{name}.x", 2, "(n_pad, d)")
    p = points.num_devices
    if points.x.shape[0] % p or not 0 < points.n <= points.x.shape[0]:
        raise ValueError(f"`{name}` has {points.x.shape[0]} rows for n = {points.n} real points "
                         f"on {p} devices; the rows must be a multiple of the number of devices "
                         "and at least n. Build it with jaxclust.distributed.shard.")
    if points.weights.shape != points.x.shape[:1]:
        raise ValueError(f"`{name}.weights` must have shape ({points.x.shape[0]},), got "
                         f"{tuple(points.weights.shape)}.")


def replicated(a, mesh):
    """``a`` replicated on every device of ``mesh`` (an array placed on one device, e.g. a
    result of a single-device call, may then enter the sharded program)."""
    return jax.device_put(a, NamedSharding(mesh, PartitionSpec()))


def not_applicable(name: str, value, default, fix: str) -> None:
    """The sharded functions take the options of their single-device counterparts (same
    names, order and defaults); one that cannot apply to sharded data raises, never
    vanishes."""
    same = value is default or (isinstance(default, (bool, int, float, str)) and
                                type(value) is type(default) and value == default)
    if not same:
        raise ValueError(f"`{name}` does not apply to the sharded function: {fix}")


def gather(a: Array, n: int | None = None) -> np.ndarray:
    r"""Bring a (possibly sharded) per-point array back to the host, dropping padding rows.

    Works for arrays sharded over several processes too (each process receives the full
    array through ``jax.experimental.multihost_utils.process_allgather``).

    Args:
      a: an array whose first axis is the (padded) point axis, e.g. ``result.labels``.
      n: the real number of points (``points.n``); rows ``n:`` are dropped. ``None`` keeps
        all rows.

    Returns:
      ``numpy.ndarray`` of shape ``(n, ...)``.

    Raises:
      ValueError: ``n`` is negative or larger than ``a.shape[0]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust import distributed as jd
      >>> pts = jd.shard(jnp.arange(6.0).reshape(3, 2))
      >>> jd.gather(pts.x, pts.n).shape
      (3, 2)
    """
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        from jax.experimental import multihost_utils

        out = np.asarray(multihost_utils.process_allgather(a, tiled=True))
    else:
        out = np.asarray(jax.device_get(a))
    if n is None:
        return out
    n = checks.check_int(n, "n", low=None, why="the number of real points")
    if out.ndim == 0 or not 0 <= n <= out.shape[0]:
        raise ValueError(f"`n` must be in [0, a.shape[0]] = [0, {out.shape[0] if out.ndim else 0}]"
                         f", got {n}; pass points.n.")
    return out[:n]
