r"""A short training loop for score networks: optax, EMA of the parameters, explicit keys,
a progress bar. A utility, not a framework: one function, ``fit``, over any pytree of
parameters and any scalar loss; ``dsm_objective`` builds that loss from
[`dsm_loss`][jaxclust.diffusion.dsm_loss] for the usual case.

**Equinox**: pass the module itself as ``params`` (its floating-point arrays are trained, the
rest is carried along unchanged) and read the trained module from ``result.ema`` (or
``result.params``).

**Flax NNX**: split the module into a graph definition and a state, train the state, merge::

    graphdef, state = nnx.split(model)
    loss = dsm_objective(sde)
    res = fit(lambda s, batch, key: loss(nnx.merge(graphdef, s), batch, key),
              state, x, key=key, steps=2000, batch_size=256)
    model = nnx.merge(graphdef, res.ema)
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

from .._core import checks
from ._utils import check_int
from .losses import dsm_loss
from .sde import AbstractSDE

__all__ = ["FitResult", "dsm_objective", "fit"]


class FitResult(NamedTuple):
    """Result of [`fit`][jaxclust.diffusion.fit].

    Attributes:
      params: the parameters after the last step (same structure as the input).
      ema: their exponential moving average (same structure); the one to sample from.
      losses: the loss of every step, shape ``(steps,)``.
      seconds: wall time of the whole run, compilation included.
    """

    params: PyTree
    ema: PyTree
    losses: Float[Array, " steps"]
    seconds: float


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


def _batch(data, key, batch_size: int, n: int):
    idx = jax.random.randint(key, (batch_size,), 0, n)
    return jax.tree_util.tree_map(lambda a: a[idx], data)


def fit(loss_fn: Callable[[PyTree, PyTree, PRNGKeyArray], Float[Array, ""]],
        params: PyTree, data: PyTree, *, key: PRNGKeyArray, steps: int, batch_size: int,
        optimizer: optax.GradientTransformation | None = None, ema_decay: float = 0.999,
        log_every: int = 100, progress: bool = True, description: str = "training"
        ) -> FitResult:
    r"""Minimise ``loss_fn(params, batch, key)`` with ``optimizer`` on random mini-batches of
    ``data``, keeping an exponential moving average of the parameters.

    Step $k = 1, \dots, K$ draws ``batch_size`` rows of ``data`` uniformly with replacement
    and a loss key, both from ``fold_in(key, k - 1)`` (so the run does not depend on
    ``log_every``), applies one optax update $\theta_k = \theta_{k-1} + u_k$ and the EMA

    $$ \bar\theta_0 = \theta_0, \qquad \bar\theta_k = \delta\,\bar\theta_{k-1}
       + (1 - \delta)\,\theta_k \quad (\delta = \texttt{ema\_decay}). $$

    The steps run in jitted ``lax.scan`` chunks of ``log_every`` (a last shorter chunk
    compiles once more); after each chunk the progress bar (``rich``) shows the mean loss of
    the chunk. The run stops with ``FloatingPointError`` at the first chunk whose loss is
    NaN or infinite.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> scalar``, jittable; ``batch`` has the
        structure of ``data`` with leading axis ``batch_size``.
      params: any pytree; its floating-point array leaves are trained, other leaves (an
        Equinox module's activation functions, integers ...) are passed through unchanged.
      data: an array or a pytree of arrays with a common leading axis ``n`` (e.g. ``x`` or
        ``(x, y)``).
      key: PRNG key of the whole run.
      steps: number of optimiser steps $K$.
      batch_size: rows per step.
      optimizer: an optax transformation; ``optax.adam(1e-3)`` by default.
      ema_decay: $\delta \in [0, 1)$ (0: the EMA is the last iterate).
      log_every: steps per jitted chunk and per progress update.
      progress: show the progress bar.
      description: label of the progress bar.

    Returns:
      A [`FitResult`][jaxclust.diffusion.FitResult].

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxclust.diffusion.train import fit
      >>> x = jnp.arange(8.0)  # the mean 3.5 by least squares on batches of 8 (noisy)
      >>> loss = lambda p, batch, key: jnp.mean((batch - p["m"]) ** 2)
      >>> res = fit(loss, {"m": jnp.array(0.0)}, x, key=jax.random.key(0), steps=200,
      ...           batch_size=8, optimizer=optax.sgd(0.1), ema_decay=0.9, progress=False)
      >>> res.losses.shape, bool(abs(float(res.ema["m"]) - 3.5) < 0.5)
      ((200,), True)

    References:
      Polyak, Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J.
      Control Optim. 1992 (iterate averaging); Song, Ermon, "Improved Techniques for
      Training Score-Based Generative Models", NeurIPS 2020 (EMA for score models).
    """
    steps = check_int(steps, "steps")
    batch_size = check_int(batch_size, "batch_size")
    log_every = check_int(log_every, "log_every")
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not (
            0.0 <= ema_decay < 1.0):
        raise ValueError(f"`ema_decay` must be a Python number in [0, 1) (e.g. 0.999), got "
                         f"{ema_decay!r}.")
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("`data` must be an array or a pytree of arrays, got no arrays.")
    leaves = [jnp.asarray(a) for a in leaves]
    n = leaves[0].shape[0] if leaves[0].ndim else 0
    if any(a.ndim == 0 or a.shape[0] != n for a in leaves):
        raise ValueError("the arrays of `data` must share a leading axis (one row per "
                         f"example), got shapes {[tuple(a.shape) for a in leaves]}.")
    for a in leaves:
        if jnp.issubdtype(a.dtype, jnp.inexact):
            checks.check_finite(a, "data")
    arrays, aux = _partition(params)
    if not arrays:
        raise ValueError("`params` has no floating-point arrays to train.")
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    decay = float(ema_decay)

    def step(carry, k):
        p, ema, opt_state = carry
        kb, kl = jax.random.split(jax.random.fold_in(key, k))
        batch = _batch(data, kb, batch_size, n)
        loss, grads = jax.value_and_grad(
            lambda a: loss_fn(_combine(a, aux), batch, kl))(p)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        ema = jax.tree_util.tree_map(lambda e, q: decay * e + (1.0 - decay) * q, ema, p)
        return (p, ema, opt_state), loss

    @jax.jit
    def chunk(carry, ks):
        return jax.lax.scan(step, carry, ks)

    carry = (arrays, arrays, optimizer.init(arrays))
    history = []
    start = time.perf_counter()
    with _progress_bar(progress, description, steps) as update:
        for first in range(0, steps, log_every):
            ks = jnp.arange(first, min(first + log_every, steps))
            carry, losses = chunk(carry, ks)
            losses = np.asarray(losses)
            if not np.all(np.isfinite(losses)):
                bad = first + int(np.argmin(np.isfinite(losses)))
                raise FloatingPointError(
                    f"the loss is NaN or infinite at step {bad}; lower the learning rate, clip "
                    "the gradients (optax.clip_by_global_norm) or check the data.")
            history.append(losses)
            update(len(ks), float(losses.mean()))
    p, ema, _ = carry
    return FitResult(_combine(p, aux), _combine(ema, aux), jnp.asarray(np.concatenate(history)),
                       time.perf_counter() - start)


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int):
    """Yield ``update(n_steps, loss)``: a rich progress bar with the running loss, or a
    no-op when disabled."""
    if not enabled:
        yield lambda n, loss: None
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
               TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task(description, total=total, loss=float("nan"))
        yield lambda n, loss: bar.update(task, advance=n, loss=loss)


def dsm_objective(sde: AbstractSDE, *, label_dropout: float = 0.0,
                  null_label: int | None = None, **dsm_kwargs: Any
                  ) -> Callable[[Callable, PyTree, PRNGKeyArray], Float[Array, ""]]:
    r"""The loss ``loss(model, batch, key)`` for [`fit`][jaxclust.diffusion.fit]:
    [`dsm_loss`][jaxclust.diffusion.dsm_loss] of the batched network ``model(x_t, t)``
    (``batch`` = ``x``) or ``model(x_t, t, y)`` (``batch`` = ``(x, y)``).

    With labels, ``label_dropout`` $p$ replaces each label by ``null_label`` with
    probability $p$, so that one network learns the conditional and the unconditional
    model (classifier-free guidance; Ho & Salimans use $p = 0.1$–$0.2$). The networks of
    ``jaxclust.nn`` use ``null_label = num_classes``.

    Args:
      sde: the forward SDE.
      label_dropout: probability $p \in [0, 1)$ of dropping a label.
      null_label: the label of the unconditional model (required when ``label_dropout > 0``).
      **dsm_kwargs: keyword options of ``dsm_loss`` (``param``, ``weighting``,
        ``time_sampling``, ``eps_t``, ``reduce``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import VPSDE
      >>> from jaxclust.diffusion.train import dsm_objective
      >>> loss = dsm_objective(VPSDE(), time_sampling="stratified")
      >>> x = jax.random.normal(jax.random.key(0), (64, 2))
      >>> float(loss(lambda x, t: jnp.zeros_like(x), x, jax.random.key(1))) > 0.5
      True

    References:
      Ho, Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 Workshop.
    """
    if isinstance(label_dropout, bool) or not isinstance(label_dropout, (int, float)) or not (
            0.0 <= label_dropout < 1.0):
        raise ValueError(f"`label_dropout` must be a Python number in [0, 1), got "
                         f"{label_dropout!r}.")
    if label_dropout > 0 and null_label is None:
        raise ValueError("`null_label` is required with label_dropout > 0 (the networks of "
                         "jaxclust.nn use null_label = num_classes).")

    def loss(model: Callable, batch: PyTree, key: PRNGKeyArray) -> Float[Array, ""]:
        if isinstance(batch, (tuple, list)):
            x, y = batch
            if label_dropout > 0:
                key, kd = jax.random.split(key)
                drop = jax.random.bernoulli(kd, label_dropout, y.shape)
                y = jnp.where(drop, jnp.asarray(null_label, y.dtype), y)
            return dsm_loss(model, x, key, sde, y=y, **dsm_kwargs)
        return dsm_loss(model, batch, key, sde, **dsm_kwargs)

    return loss
