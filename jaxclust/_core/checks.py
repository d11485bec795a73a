"""Input validation in two tiers.

* Shapes, ranks and static options are checked at trace time and raise ``ValueError``.
* Values (NaN, negative weights, mass balance ...) are checked eagerly when the array is
  concrete, raising ``ValueError``; when traced (under ``jit``/``vmap``/``grad``) the same
  message is attached through :func:`equinox.error_if`, which raises at run time (the JAX
  runtime error then carries the message).

Every message names the argument, says what was wrong and how to fix it.

:func:`ensure_value` evaluates a value check with NumPy when the array is concrete and on
the host, so that an eager call compiles no XLA program for its checks (a ``jnp`` predicate
is one compilation per new shape); the metrics, the weight and finiteness checks use it.

Caveat: equinox reads the environment variable ``EQX_ON_ERROR`` once, when it is imported
(this module imports it at the first traced check; other modules of jaxclust at import).
With ``EQX_ON_ERROR=nan`` every traced check of this module (under ``jit``, ``vmap`` or
``grad``) stops raising and fills its output with NaN instead; with ``EQX_ON_ERROR=breakpoint``
it opens a debugger. Eager checks (concrete arrays) always raise. Leave it unset (the default,
``raise``) for the behaviour documented here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_int",
    "check_key",
    "check_ndim",
    "check_num_clusters",
    "check_points",
    "check_positive_scalar",
    "check_sq_norms",
    "ensure",
    "ensure_value",
    "host_view",
    "is_int",
    "is_traced",
    "overflow_message",
    "row_weights",
    "sq_norm_overflow",
]


def is_traced(*xs) -> bool:
    """True when any leaf of ``xs`` is a JAX tracer (inside jit, vmap, grad ...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def ensure(x, bad, message: str):
    """Return ``x``, raising ``ValueError(message)`` when ``bad`` holds.

    ``bad`` is a boolean array (any True element fails). Eagerly this raises a plain
    ``ValueError``; under tracing the check travels with ``x`` via :func:`equinox.error_if`,
    so the caller must use the returned value.
    """
    if not is_traced(x, bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(message)
        return x
    import equinox as eqx  # here: a program without traced checks never loads equinox

    return eqx.error_if(x, jnp.any(bad), "ValueError: " + message)


#: dtypes whose value checks NumPy evaluates exactly as jax.numpy does (bfloat16 and the
#: other ml_dtypes go through jax.numpy)
_HOST_DTYPES = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.int8, np.int16,
                                                np.int32, np.int64, np.uint8, np.uint16,
                                                np.uint32, np.uint64, np.bool_))


def host_view(x) -> np.ndarray | None:
    """A NumPy view of ``x`` when its value is at hand on the host without a transfer: a
    NumPy array, or a concrete ``jax.Array`` on CPU of a plain numeric dtype; ``None``
    otherwise (a tracer, an array on an accelerator, a committed sharded array on several
    devices, bfloat16)."""
    if isinstance(x, np.ndarray):
        return x if x.dtype in _HOST_DTYPES else None
    if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):
        return None
    try:
        devices = x.devices()
    except Exception:  # a deleted or otherwise unreadable array: let jax.numpy say so
        return None
    if len(devices) != 1 or next(iter(devices)).platform != "cpu":
        return None
    if x.dtype not in _HOST_DTYPES:
        return None
    return np.asarray(x)


#: largest array (elements) checked on the host: up to here NumPy's single-threaded pass is
#: as fast as a compiled one (2-core CPU, isfinite + any: 2^22 floats 1.9 ms vs 3.4 ms
#: jitted), beyond it the compiled check wins (2^25: 108 vs 25 ms) and its one-time
#: compilation is amortised
_HOST_MAX_SIZE = 1 << 22


def ensure_value(x, bad, message: str):
    """:func:`ensure` with the predicate as a function ``bad(v, xp)`` of the array and of the
    array module (``numpy`` or ``jax.numpy``; any True element fails).

    On a concrete array held on the host (:func:`host_view`) of at most 2^22 elements NumPy
    evaluates it, so an eager call compiles no XLA program for its checks (each new shape of
    a ``jnp`` predicate is a compilation, ~20-40 ms on CPU); otherwise jax.numpy does, as in
    :func:`ensure` (traced: via :func:`equinox.error_if`; on an accelerator: on the device,
    no copy to the host).
    Raises the same ``ValueError`` eagerly either way."""
    if not is_traced(x) and np.size(x) <= _HOST_MAX_SIZE:
        host = host_view(x)
        if host is not None:
            with np.errstate(all="ignore"):  # overflow in a predicate is its answer
                failed = bool(np.any(bad(host, np)))
            if failed:
                raise ValueError(message)
            return x
    return ensure(x, bad(x, jnp), message)


def as_float_array(x, name: str, *, dtype=None) -> jax.Array:
    """Convert to a floating JAX array; integer and bool inputs become the default float.

    ``None``, strings, ragged lists and other non-numeric inputs raise a ``ValueError`` that
    names the argument."""
    if x is None:
        raise ValueError(f"`{name}` is None; pass an array of numbers.")
    if isinstance(x, (str, bytes)):
        raise ValueError(f"`{name}` must be an array of numbers, got {type(x).__name__}.")
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:  # e.g. objects, ragged nested lists
        raise ValueError(f"`{name}` must be an array of numbers, got {type(x).__name__} "
                         f"({err}).") from err
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise ValueError(f"`{name}` must be an array of numbers, got dtype {arr.dtype}.")
    if dtype is not None:
        return arr.astype(dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def check_key(key, name: str = "key"):
    """Trace-time check of a PRNG key: a new-style typed key (``jax.random.key(0)``, shape
    ``()``) or a legacy raw key (``jax.random.PRNGKey(0)``, ``uint32[2]``). Returns it."""
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", (None,)))
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
        return key
    if dtype is not None and dtype == jnp.uint32 and shape == (2,):
        return key
    if key is None:
        got = "None"
    elif dtype is None:
        got = f"{type(key).__name__} {key!r}"[:80]
    else:
        got = f"an array of dtype {dtype} and shape {shape}"
    raise ValueError(f"`{name}` must be a JAX PRNG key such as jax.random.key(0) (or a legacy "
                     f"jax.random.PRNGKey(0)), got {got}. Split one key per call: "
                     f"key, sub = jax.random.split(key).")


def check_ndim(x, name: str, ndim: int, shape_hint: str) -> None:
    """Trace-time rank check."""
    if not hasattr(x, "ndim"):
        raise ValueError(f"`{name}` must be a {ndim}-D array with shape {shape_hint}, got "
                         f"{type(x).__name__}.")
    if x.ndim != ndim:
        raise ValueError(
            f"`{name}` must be {ndim}-D with shape {shape_hint}, got shape {tuple(x.shape)}."
            + (" For a batch of problems, use jax.vmap over the leading axis." if x.ndim > ndim
               else "")
        )


def check_points(x, name: str = "x") -> None:
    """Trace-time check of a point array ``(n, d)``: 2-D with at least one row and one
    feature."""
    check_ndim(x, name, 2, "(n, d)")
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` has no rows (shape {tuple(x.shape)}); pass at least one "
                         "point.")
    if x.shape[1] == 0:
        raise ValueError(f"`{name}` has no features (shape {tuple(x.shape)}); every point needs "
                         "at least one coordinate.")


def not_all_finite(v, xp=jnp):
    """True when ``v`` holds a NaN or an Inf (the predicate of :func:`check_finite`)."""
    # one reduction: inf * 0 and NaN * 0 are NaN, every finite entry gives 0 (no overflow);
    # ``~isfinite(v)`` reduced by ``any`` made XLA:CPU write an n x d boolean array first
    return ~xp.isfinite(xp.sum(v * 0))


def finite_message(name: str) -> str:
    """:func:`check_finite`'s message."""
    return (f"`{name}` contains NaN or Inf; clean or mask the input (give masked points zero "
            "weight) before calling.")


def check_finite(x: jax.Array, name: str) -> jax.Array:
    """Value check: no NaN or Inf."""
    return ensure_value(x, not_all_finite, finite_message(name))


def sq_norm_overflow(x: jax.Array, xp=jnp) -> jax.Array:
    """True when some row's squared norm is not below ``finfo.max / 4`` (computed without
    overflow): then the squared distances between points and centres in their convex hull,
    ``|x|^2 - 2 <x, c> + |c|^2``, can overflow the dtype. False for non-finite ``x`` (that is
    :func:`check_finite`'s message)."""
    big = jnp.finfo(x.dtype).max
    s = xp.sum(xp.square(x * 0.25), axis=-1)  # |x|^2 / 16, finite while |x|^2 < 16 max
    return xp.all(xp.isfinite(x)) & ~(xp.max(s, initial=0.0) < big / 64)


def overflow_message(name: str, dtype) -> str:
    return (f"`{name}` has values too large for {jnp.dtype(dtype).name}: squared distances "
            f"between its points overflow (|x|^2 must stay below {jnp.finfo(dtype).max / 4:.2g})."
            f" Rescale or standardise it first, e.g. (x - x.mean(0)) / x.std(0).")


def check_sq_norms(x: jax.Array, name: str) -> jax.Array:
    """Value check: squared norms (hence squared distances) representable in ``x.dtype``
    (see :func:`sq_norm_overflow`). Call after :func:`check_finite`."""
    return ensure_value(x, sq_norm_overflow, overflow_message(name, x.dtype))


def row_weights(weights, n: int, rows_of: str, *, name: str = "weights", dtype=None,
                positive_sum: bool = False) -> jax.Array:
    """Sample weights ``(n,)``, one per row of ``rows_of``: shape (trace time), finite and
    ``>= 0`` (value checks), with ``positive_sum`` a positive total too. ``name`` is the
    argument's name in the messages, ``dtype`` the floating dtype to convert to.

    The one home of the sample-weight checks (k-means, GMM, k-medoids, Sinkhorn marginals,
    losses, metrics)."""
    w = as_float_array(weights, name, dtype=dtype)
    if w.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},) (one per row of `{rows_of}`), got "
                         f"{tuple(w.shape)}.")
    w = check_finite(w, name)
    w = ensure_value(w, lambda v, xp: v < 0,
                     f"`{name}` has negative entries; weights must be >= 0.")
    if positive_sum:
        w = ensure_value(w, lambda v, xp: xp.sum(v) <= 0,
                         f"`{name}` sums to 0; give some point a positive weight.")
    return w


def is_int(value) -> bool:
    """True for a Python or NumPy integer that is not a ``bool`` (a static integer option)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, *, low: int | None = 1, high: int | None = None,
              bounds: str | None = None, why: str = "", none_ok: bool = False):
    """Trace-time check of a static integer option (a loop length, a shape): a Python or
    NumPy integer, never a ``bool``, with ``low <= value <= high`` (``None``: no bound).
    Returns it as a Python ``int`` (``None`` passes through when ``none_ok``).

    The message reads "`name` must be [None or ]a Python int <bounds> (<why>), got <value>.";
    ``bounds`` replaces the default text (">= low", "in [low, high]") where the caller can say
    more, e.g. ``"in [1, n] = [1, 12]"``. The one home of the "int, not bool" checks."""
    if value is None and none_ok:
        return None
    ok = is_int(value)
    if ok:
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if bounds is None:
            if low is not None and high is not None:
                bounds = f"in [{low}, {high}]"
            elif low is not None:
                bounds = f">= {low}"
            elif high is not None:
                bounds = f"<= {high}"
            else:
                bounds = ""
        text = " ".join(t for t in ("a Python int", bounds, f"({why})" if why else "") if t)
        raise ValueError(f"`{name}` must be {'None or ' if none_ok else ''}{text}, got "
                         f"{value!r}.")
    return int(value)


def check_positive_scalar(value, name: str, hint: str = ""):
    """``value > 0`` for a Python number (trace time) or an array (value check)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"`{name}` must be a finite number > 0, got {value}. {hint}".strip())
        return value
    arr = jnp.asarray(value)
    if arr.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(arr.shape)}.")
    return ensure_value(arr, lambda v, xp: ~(xp.isfinite(v) & (v > 0)),
                        f"`{name}` must be a finite number > 0. {hint}".strip())


def check_num_clusters(k, n: int, *, sdp: bool = False, rows_of: str = "x") -> None:
    """Trace-time check of a number of clusters: a Python int in ``[1, n]``, or with ``sdp``
    in ``[2, n)`` (the SDP relaxations are trivial for ``k = 1`` and ``k = n``). ``n = 0``
    blames ``rows_of`` (the points), not ``k``."""
    check_int(k, "k", low=None, why="it fixes the output shape")
    if n == 0:
        raise ValueError(f"`{rows_of}` has no rows (n = 0); pass at least one point.")
    if sdp and not 2 <= k < n:
        raise ValueError(f"`k` must satisfy 2 <= k < n = {n}, got {k}; the SDP is trivial for "
                         "k = 1 or k = n.")
    if not 1 <= k <= n:
        raise ValueError(f"`k` must be in [1, n] = [1, {n}], got {k}.")
