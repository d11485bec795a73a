"""Differentiable clustering layers for neural networks, in Flax (NNX) and Equinox.

The same layers exist in both frameworks, each a thin wrapper over the pure functions of
[`jaxclust.cluster` losses](cluster.md#clustering-losses) and [`jaxclust.ot`][jaxclust.ot]:

* ``KMeansLayer``: learnable centroids; returns soft assignments and the soft k-means loss.
* ``SinkhornClusteringHead``: learnable prototypes on the sphere; returns cosine scores,
  SwAV's balanced codes and swapped-prediction loss.
* ``PartialOTClusteringHead``: a prototype classifier trained on progressive partial OT
  pseudo-labels (P²OT / SP²OT, [`p2ot_codes`][jaxclust.ot.p2ot_codes]) for imbalanced
  clusters; swapped pseudo-label loss weighted by the transported mass.
* ``DECHead``: learnable centroids; Student-t (or softmax) soft assignments, DEC/DEPICT's
  sharpened target and the KL loss ([`dec_loss`][jaxclust.cluster.dec_loss]).
* ``TELLLayer``: TELL's interpretable k-means layer (a linear layer whose weights are the
  centroids) and its differentiable k-means loss
  ([`tell_loss`][jaxclust.cluster.tell_loss]).
* ``TemperatureHead`` and ``PrototypeHead``: OOD heads over [`jaxclust.ood`][jaxclust.ood]
  (learned temperature with the ablated-energy score; several prototypes per class).
* ``ScoreMLP`` and ``ScoreUNet``: time- (and class-) conditioned score networks for
  [`jaxclust.diffusion`][jaxclust.diffusion].

Import the framework you use explicitly; importing ``jaxclust.nn`` imports neither::

    from jaxclust.nn.equinox import KMeansLayer, SinkhornClusteringHead  # equinox (core)
    from jaxclust.nn.flax import KMeansLayer, SinkhornClusteringHead     # jaxclust[flax]

The guide "Differentiable clustering layers" gives the math and the gradient path of every
head.

``jaxclust.nn.equinox`` and ``jaxclust.nn.flax`` are also reachable as attributes of
``jaxclust.nn`` (imported on first access). This module is only the import face: the heads'
math is written once, as pure functions of their parameters (private ``_heads.py``, with the
shared checks in ``_common.py``), and the two framework modules hold the parameters.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import equinox as equinox, flax as flax

__all__ = ["equinox", "flax"]

_FRAMEWORKS = ("equinox", "flax")


def __getattr__(name: str):
    if name in _FRAMEWORKS:  # lazy: only the framework asked for is imported
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
