r"""A short training loop: optax, jitted steps, EMA of the parameters, explicit keys, a
progress bar and metrics per epoch. A utility, not a framework: one function, ``fit``, over
any pytree of parameters and any scalar loss.

The steps run in jitted ``lax.scan`` chunks of ``log_every`` steps; a chunk is one *epoch*
of the log: after it the progress bar shows the mean loss of the chunk and, when given,
``eval_fn(params)`` (on the EMA by default) adds its metrics; ``FitResult.history`` keeps
them, one entry per epoch.

**Equinox**: pass the module itself as ``params`` (its floating-point arrays are trained, the
rest is carried along unchanged) and read the trained module from ``result.ema`` (or
``result.params``).

**Flax NNX**: split the module into a graph definition and a state, train the state, merge::

    graphdef, state = nnx.split(model)
    res = fit(lambda s, batch, key: loss(nnx.merge(graphdef, s), batch, key),
              state, x, key=key, steps=2000, batch_size=256)
    model = nnx.merge(graphdef, res.ema)

(NNX batch statistics or other mutable variables are part of ``state`` but are not written
back by the loss: use modules without them, or keep them out of the trained state.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._core import checks
from ._core.results import with_summary_repr

__all__ = ["FitResult", "fit"]


@with_summary_repr
class FitResult(NamedTuple):
    """Result of [`fit`][jaxclust.train.fit].

    Attributes:
      params: the parameters after the last step (same structure as the input).
      ema: their exponential moving average (same structure); usually the one to use.
      losses: the loss of every step, shape ``(steps,)``.
      seconds: wall time of the whole run, compilation and evaluations included.
      history: one NumPy array per name, one entry per epoch (chunk of ``log_every``
        steps): ``"step"`` (steps done), ``"loss"`` (mean loss of the epoch) and every
        metric returned by ``eval_fn``.
    """

    params: PyTree
    ema: PyTree
    losses: Float[Array, " steps"]
    seconds: float
    history: dict[str, np.ndarray]


def _check_int(value, name: str) -> int:
    return checks.check_int(value, name, why="it fixes a static loop length")


def _is_trainable(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.inexact)


def _partition(tree):
    """The floating-point array leaves of ``tree`` (a list) and what rebuilds the tree."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    mask = [_is_trainable(leaf) for leaf in leaves]
    arrays = [jnp.asarray(leaf) for leaf, m in zip(leaves, mask) if m]
    return arrays, (treedef, mask, leaves)


def _combine(arrays, aux):
    treedef, mask, leaves = aux
    it = iter(arrays)
    return jax.tree_util.tree_unflatten(
        treedef, [next(it) if m else leaf for leaf, m in zip(leaves, mask)])


def check_key(key, name: str = "key"):
    """A JAX PRNG key (``jax.random.key(seed)``, or the legacy ``uint32[2]`` of
    ``jax.random.PRNGKey``); raises ``ValueError`` naming ``name`` otherwise."""
    if isinstance(key, jax.Array) or isinstance(key, jax.core.Tracer):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0:
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return key
    raise ValueError(f"`{name}` must be a JAX PRNG key such as jax.random.key(0), got "
                     f"{type(key).__name__} {getattr(key, 'shape', '')}".rstrip() + ".")


def _check_data(data) -> int:
    """The common leading size of the arrays of ``data``."""
    if data is None:
        raise ValueError("`data` must be an array or a pytree of arrays, got None.")
    leaves = [jnp.asarray(a) for a in jax.tree_util.tree_leaves(data)]
    if not leaves:
        raise ValueError("`data` must be an array or a pytree of arrays, got no arrays.")
    n = leaves[0].shape[0] if leaves[0].ndim else 0
    if any(a.ndim == 0 or a.shape[0] != n for a in leaves):
        raise ValueError("the arrays of `data` must share a leading axis (one row per "
                         f"example), got shapes {[tuple(a.shape) for a in leaves]}.")
    if n == 0:
        raise ValueError("`data` is empty (0 rows); give at least one example.")
    for a in leaves:
        if jnp.issubdtype(a.dtype, jnp.inexact):
            checks.check_finite(a, "data")
    return n


def fit(loss_fn: Callable[..., Float[Array, ""]], params: PyTree, data: PyTree, *,
        key: PRNGKeyArray, steps: int, batch_size: int,
        optimizer: optax.GradientTransformation | None = None, ema_decay: float = 0.999,
        log_every: int = 100, eval_fn: Callable[[PyTree], dict[str, Any]] | None = None,
        eval_on: str = "ema", pass_step: bool = False, progress: bool = True,
        description: str = "training") -> FitResult:
    r"""Minimise ``loss_fn(params, batch, key)`` with ``optimizer`` on random mini-batches of
    ``data``, keeping an exponential moving average of the parameters.

    Step $k = 1, \dots, K$ draws ``batch_size`` rows of ``data`` uniformly with replacement
    and a loss key, both from ``fold_in(key, k - 1)`` (so the run does not depend on
    ``log_every``), applies one optax update $\theta_k = \theta_{k-1} + u_k$ and the EMA

    $$ \bar\theta_0 = \theta_0, \qquad \bar\theta_k = \delta\,\bar\theta_{k-1}
       + (1 - \delta)\,\theta_k \quad (\delta = \texttt{ema\_decay}). $$

    The steps run in jitted ``lax.scan`` chunks of ``log_every`` (a last shorter chunk
    compiles once more). After each chunk (an epoch of the log) ``eval_fn`` runs on the EMA
    (``eval_on="ema"``) or the current parameters (``"params"``), outside jit, and the
    progress bar (``rich``) shows the mean loss of the chunk and the metrics. The run stops
    with ``FloatingPointError`` at the first chunk whose loss is NaN or infinite. Gradient
    clipping, schedules and weight decay belong to the optax chain ``optimizer``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> scalar``, jittable; ``batch`` has the
        structure of ``data`` with leading axis ``batch_size``. With ``pass_step=True`` it
        is called as ``loss_fn(params, batch, key, step)``, ``step`` the 0-based step index
        (a traced int32 scalar), e.g. for a ramp over training.
      params: any pytree; its floating-point array leaves are trained, other leaves (an
        Equinox module's activation functions, integers ...) are passed through unchanged.
      data: an array or a pytree of arrays with a common leading axis ``n`` (e.g. ``x`` or
        ``(x, y)``).
      key: PRNG key of the whole run.
      steps: number of optimiser steps $K$.
      batch_size: rows per step.
      optimizer: an optax transformation; ``optax.adam(1e-3)`` by default.
      ema_decay: $\delta \in [0, 1)$ (0: the EMA is the last iterate).
      log_every: steps per jitted chunk, per progress update and per ``eval_fn`` call.
      eval_fn: ``eval_fn(params) -> {name: number}``, any host code (it may use the labels
        of a validation set, Hungarian matching ...).
      eval_on: ``"ema"`` or ``"params"``: which parameters ``eval_fn`` sees.
      pass_step: pass the step index to ``loss_fn`` as a fourth argument.
      progress: show the progress bar.
      description: label of the progress bar.

    Returns:
      A [`FitResult`][jaxclust.train.FitResult].

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxclust.train import fit
      >>> x = jnp.arange(8.0)  # the mean 3.5 by least squares on batches of 8 (noisy)
      >>> loss = lambda p, batch, key: jnp.mean((batch - p["m"]) ** 2)
      >>> res = fit(loss, {"m": jnp.array(0.0)}, x, key=jax.random.key(0), steps=200,
      ...           batch_size=8, optimizer=optax.sgd(0.1), ema_decay=0.9, log_every=100,
      ...           eval_fn=lambda p: {"m": float(p["m"])}, progress=False)
      >>> m = res.history["m"]  # the EMA after 100 and 200 steps, near 3.5
      >>> res.losses.shape, res.history["step"].tolist(), bool(abs(m[-1] - 3.5) < 0.5)
      ((200,), [100, 200], True)

    References:
      Polyak, Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J.
      Control Optim. 1992 (iterate averaging); Song, Ermon, "Improved Techniques for
      Training Score-Based Generative Models", NeurIPS 2020 (EMA of the weights).
    """
    steps = _check_int(steps, "steps")
    batch_size = _check_int(batch_size, "batch_size")
    log_every = _check_int(log_every, "log_every")
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not (
            0.0 <= ema_decay < 1.0):
        raise ValueError(f"`ema_decay` must be a Python number in [0, 1) (e.g. 0.999), got "
                         f"{ema_decay!r}.")
    if eval_on not in ("ema", "params"):
        raise ValueError(f"`eval_on` must be 'ema' or 'params', got {eval_on!r}.")
    if eval_fn is not None and not callable(eval_fn):
        raise ValueError(f"`eval_fn` must be a callable params -> dict, got {eval_fn!r}.")
    if not callable(loss_fn):
        raise ValueError(f"`loss_fn` must be a callable (params, batch, key) -> scalar, got "
                         f"{type(loss_fn).__name__}.")
    key = check_key(key)
    n = _check_data(data)
    arrays, aux = _partition(params)
    if not arrays:
        raise ValueError("`params` has no floating-point arrays to train.")
    for a in jax.tree_util.tree_leaves(arrays):
        checks.check_finite(a, "params")
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    decay = float(ema_decay)

    def step(carry, k):
        p, ema, opt_state = carry
        kb, kl = jax.random.split(jax.random.fold_in(key, k))
        idx = jax.random.randint(kb, (batch_size,), 0, n)
        batch = jax.tree_util.tree_map(lambda a: a[idx], data)
        extra = (k,) if pass_step else ()
        loss, grads = jax.value_and_grad(
            lambda a: loss_fn(_combine(a, aux), batch, kl, *extra))(p)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        ema = jax.tree_util.tree_map(lambda e, q: decay * e + (1.0 - decay) * q, ema, p)
        return (p, ema, opt_state), loss

    @jax.jit
    def chunk(carry, ks):
        return jax.lax.scan(step, carry, ks)

    carry = (arrays, arrays, optimizer.init(arrays))
    losses_all: list[np.ndarray] = []
    history: dict[str, list[float]] = {}
    start = time.perf_counter()
    with _progress_bar(progress, description, steps) as update:
        for first in range(0, steps, log_every):
            ks = jnp.arange(first, min(first + log_every, steps), dtype=jnp.int32)
            if first == 0:
                carry, losses = _first_chunk(chunk, carry, ks, data)
            else:
                carry, losses = chunk(carry, ks)
            losses = np.asarray(losses)
            if not np.all(np.isfinite(losses)):
                bad = first + int(np.argmin(np.isfinite(losses)))
                raise FloatingPointError(
                    f"the loss returned by `loss_fn` is NaN or infinite at step {bad}; lower "
                    "the learning rate, clip the gradients (optax.clip_by_global_norm), or "
                    "check `params` and `data` for values that overflow.")
            losses_all.append(losses)
            row = {"step": first + len(ks), "loss": float(losses.mean())}
            if eval_fn is not None:
                p, ema, _ = carry
                metrics = eval_fn(_combine(ema if eval_on == "ema" else p, aux))
                row.update({name: float(v) for name, v in dict(metrics).items()})
            for name, v in row.items():
                history.setdefault(name, []).append(v)
            update(len(ks), row)
    p, ema, _ = carry
    return FitResult(_combine(p, aux), _combine(ema, aux),
                     jnp.asarray(np.concatenate(losses_all)), time.perf_counter() - start,
                     {name: np.asarray(v) for name, v in history.items()})


def _first_chunk(chunk, carry, ks, data):
    """The first jitted chunk; a trace-time failure of ``loss_fn`` (a shape or type error
    on the batch) is reported as a ``ValueError`` naming ``loss_fn`` and ``data``."""
    try:
        return chunk(carry, ks)
    except (TypeError, ValueError, IndexError) as err:
        shapes = [tuple(np.shape(a)) for a in jax.tree_util.tree_leaves(data)]
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"`loss_fn` failed on a batch of `data` (data shapes {shapes}, batches take "
            f"`batch_size` rows of the leading axis): {type(err).__name__}: {first}") from err


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int):
    """Yield ``update(n_steps, row)``: a rich progress bar showing the metrics of the last
    epoch, or a no-op when disabled."""
    if not enabled:
        yield lambda n, row: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task(description, total=total, info="")

        def update(n, row):
            info = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "step")
            bar.update(task, advance=n, info=info)

        yield update
