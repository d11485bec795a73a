r"""Training score networks: ``fit`` and ``FitResult`` are the generic training utility of
[`jaxclust.train`][jaxclust.train] (optax, EMA of the parameters, explicit keys, a progress
bar; their one home), reachable here as the same objects, loaded on first use so that importing
this module does not load optax; ``dsm_objective`` builds its loss from
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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .losses import dsm_loss
from .sde import AbstractSDE

if TYPE_CHECKING:
    from ..train import FitResult as FitResult, fit as fit

__all__ = ["FitResult", "dsm_objective", "fit"]


def __getattr__(name: str) -> Any:
    if name in ("fit", "FitResult"):
        from .. import train

        return getattr(train, name)
    raise AttributeError(f"module 'jaxclust.diffusion.train' has no attribute {name!r}")


def dsm_objective(sde: AbstractSDE, *, label_dropout: float = 0.0,
                  null_label: int | None = None, **dsm_kwargs: Any
                  ) -> Callable[[Callable, PyTree, PRNGKeyArray], Float[Array, ""]]:
    r"""The loss ``loss(model, batch, key)`` for [`fit`][jaxclust.train.fit]:
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
