"""Diffusion score models: linear SDEs, denoising score matching, samplers, likelihood,
closed-form mixture oracles (GMM, mixtures of low-rank Gaussians), K-subspaces and the
diffusion classifier.

Conventions shared by the whole subpackage:

* data are batches ``x`` of shape ``(n, *data_shape)`` (vectors or images); times are scalars
  or shape ``(n,)`` and must lie in ``[0, T]``;
* a network is a batched callable ``model_fn(x_t, t)`` (or ``model_fn(x_t, t, y)`` with
  labels) returning ``(n, *data_shape)`` in one of the parametrisations ``"eps"``,
  ``"score"``, ``"x0"``, ``"v"``; parameters travel by closure (see
  ``jaxclust.diffusion.losses``); samplers take a ``score_fn(x, t)``, built from a network
  by `as_score_fn`.

The training loop ``fit`` / ``FitResult`` has one home, [`jaxclust.train.fit`][jaxclust.train.fit];
``jaxclust.diffusion.fit`` is the same object, loaded on first use.
"""

from typing import TYPE_CHECKING, Any

from .analytic import (
    GaussianMixture as GaussianMixture,
    MoLRG as MoLRG,
    mixture_denoiser as mixture_denoiser,
    mixture_logp as mixture_logp,
    mixture_posterior as mixture_posterior,
    mixture_sample as mixture_sample,
    mixture_score as mixture_score,
    mixture_score_fn as mixture_score_fn,
)
from .classifier import (
    ClassifyResult as ClassifyResult,
    diffusion_classify as diffusion_classify,
)
from .likelihood import (
    LikelihoodResult as LikelihoodResult,
    bits_per_dim as bits_per_dim,
    dequantize as dequantize,
    divergence as divergence,
    ode_likelihood as ode_likelihood,
)
from .losses import (
    TIME_SAMPLINGS as TIME_SAMPLINGS,
    WEIGHTINGS as WEIGHTINGS,
    dsm_loss as dsm_loss,
    loss_weight as loss_weight,
    sample_times as sample_times,
)
from .samplers import (
    as_score_fn as as_score_fn,
    classifier_free_guidance as classifier_free_guidance,
    classifier_guidance as classifier_guidance,
    ddim as ddim,
    euler_maruyama as euler_maruyama,
    predictor_corrector as predictor_corrector,
    probability_flow as probability_flow,
)
from .sde import (
    PARAMETRISATIONS as PARAMETRISATIONS,
    VESDE as VESDE,
    VPSDE as VPSDE,
    AbstractSDE as AbstractSDE,
    CosineVPSDE as CosineVPSDE,
    SubVPSDE as SubVPSDE,
    eps_to_score as eps_to_score,
    eps_to_v as eps_to_v,
    eps_to_x0 as eps_to_x0,
    from_eps as from_eps,
    score_to_eps as score_to_eps,
    to_eps as to_eps,
    v_to_eps as v_to_eps,
    x0_to_eps as x0_to_eps,
)
from .subspace import (
    KSubspacesResult as KSubspacesResult,
    k_subspaces as k_subspaces,
)
from .train import dsm_objective as dsm_objective

if TYPE_CHECKING:
    from ..train import FitResult as FitResult, fit as fit


def __getattr__(name: str) -> Any:
    """``fit`` and ``FitResult`` are ``jaxclust.train``'s (the same objects),
    imported on first use so that ``import jaxclust.diffusion`` does not load optax/rich."""
    if name in ("fit", "FitResult"):
        from .. import train

        return getattr(train, name)
    raise AttributeError(f"module 'jaxclust.diffusion' has no attribute {name!r}")


__all__ = [
    "PARAMETRISATIONS",
    "TIME_SAMPLINGS",
    "VESDE",
    "VPSDE",
    "WEIGHTINGS",
    "AbstractSDE",
    "ClassifyResult",
    "CosineVPSDE",
    "FitResult",
    "GaussianMixture",
    "KSubspacesResult",
    "LikelihoodResult",
    "MoLRG",
    "SubVPSDE",
    "as_score_fn",
    "bits_per_dim",
    "classifier_free_guidance",
    "classifier_guidance",
    "ddim",
    "dequantize",
    "diffusion_classify",
    "divergence",
    "dsm_loss",
    "dsm_objective",
    "eps_to_score",
    "eps_to_v",
    "eps_to_x0",
    "euler_maruyama",
    "fit",
    "from_eps",
    "k_subspaces",
    "loss_weight",
    "mixture_denoiser",
    "mixture_logp",
    "mixture_posterior",
    "mixture_sample",
    "mixture_score",
    "mixture_score_fn",
    "ode_likelihood",
    "predictor_corrector",
    "probability_flow",
    "sample_times",
    "score_to_eps",
    "to_eps",
    "v_to_eps",
    "x0_to_eps",
]
