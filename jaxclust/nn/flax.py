"""Flax NNX layers: clustering heads (SwAV, P²OT/SP²OT, DEC/DEPICT, TELL, soft k-means), OOD
heads, score networks (the optional extra ``jaxclust[flax]``).

The same layers as [`jaxclust.nn.equinox`][jaxclust.nn.equinox], as ``flax.nnx.Module``
subclasses whose learnable arrays are ``nnx.Param`` variables and whose constructors take
``rngs: nnx.Rngs`` (NNX convention, keyword ``rngs=``). Each is a thin wrapper over the same
pure functions as its Equinox twin, whose docstring gives the math (one source for both
frameworks); the arguments are the same, with ``rngs`` in place of ``key``.
"""

from __future__ import annotations

try:
    from flax import nnx
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("jaxclust.nn.flax needs Flax: pip install 'jaxclust[flax]' (or use "
                      "jaxclust.nn.equinox, which needs no extra).") from err

import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..cluster.lloyd import kmeans
from ..ot.progressive import PartialCodes
from . import _heads as H
from ._common import partial_ot_config, prototype_scale, semantic_weight
from ._mlc_flax import MLCHead as MLCHead
from ._ood_flax import PrototypeHead as PrototypeHead, TemperatureHead as TemperatureHead
from ._score_flax import ScoreMLP as ScoreMLP, ScoreUNet as ScoreUNet

__all__ = ["DECHead", "KMeansLayer", "MLCHead", "PartialOTClusteringHead", "PrototypeHead",
           "ScoreMLP", "ScoreUNet", "SinkhornClusteringHead", "TELLLayer", "TemperatureHead"]


def _rngs_key(rngs):
    """What draws the ``params`` stream's next key (only if the parameters are drawn), or
    ``None`` without ``rngs``."""
    return None if rngs is None else rngs.params


class KMeansLayer(nnx.Module):
    r"""A k-means layer: learnable centroids, soft assignments and the soft k-means loss.

    The Flax NNX twin of [`jaxclust.nn.equinox.KMeansLayer`][jaxclust.nn.equinox.KMeansLayer]
    (see there for the math and the arguments): the same function of the centroids, here an
    ``nnx.Param`` ``(k, d)``; ``rngs`` (its ``params`` stream) replaces ``key``. The call
    returns the soft assignments ``(n, k)`` and the soft k-means free energy; use
    ``nnx.vmap`` for a batch of point sets.

    Args:
      d: feature size.
      k: number of clusters (the order ``(d, k)`` of every head; it was ``(k, d)`` before).
      temperature: $T > 0$ (static), in units of squared distances.
      kind: ``"softmax"`` or ``"student_t"`` (static).
      alpha: Student-t degrees of freedom $\alpha > 0$ (static; ``"student_t"`` only).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``rngs``.
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``centroids``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import KMeansLayer
      >>> layer = KMeansLayer(2, 3, temperature=0.5, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q, loss = layer(x)
      >>> q.shape, q.sum(1).round(5)[:2].tolist(), loss.shape
      ((10, 3), [1.0, 1.0], ())
    """

    def __init__(self, d: int, k: int, *, temperature: float = 1.0, kind: str = "softmax",
                 alpha: float = 1.0, centroids: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = H.check_sizes(d, k)
        self.temperature, self.kind, self.alpha = H.kmeans_spec(temperature, kind, alpha)
        self.centroids = nnx.Param(H.init_params(centroids, k, d, "centroids", "rngs",
                                                 _rngs_key(rngs), 0.1))

    @classmethod
    def from_data(cls, x: Float[ArrayLike, "n d"], k: int, *, key: PRNGKeyArray,
                  n_init: int = 3, **kwargs) -> KMeansLayer:
        """A layer whose centroids start at the k-means solution of ``x``
        ([`kmeans`][jaxclust.cluster.kmeans], ``n_init`` k-means++ restarts from ``key``);
        ``kwargs`` go to the constructor (``temperature``, ``kind``, ``alpha``)."""
        c = jax.lax.stop_gradient(kmeans(x, k, key=key, n_init=n_init).centroids)
        return cls(c.shape[1], k, centroids=c, **kwargs)

    def __call__(self, x: Float[ArrayLike, "n d"]
                 ) -> tuple[Float[Array, "n k"], Float[Array, ""]]:
        spec = H.KMeansSpec(self.temperature, self.kind, self.alpha)
        return H.kmeans_layer(self.centroids[...], x, spec)


class SinkhornClusteringHead(nnx.Module):
    r"""A SwAV clustering head: prototypes on the sphere, balanced codes, swapped prediction.

    The Flax NNX twin of
    [`jaxclust.nn.equinox.SinkhornClusteringHead`][jaxclust.nn.equinox.SinkhornClusteringHead]
    (see there for the math and the arguments), with the prototypes an ``nnx.Param``
    ``(k, d)``: cosine scores (``__call__``), SwAV's balanced codes ``codes(z)`` (constants)
    and the swapped-prediction loss ``loss(z_a, z_b)``.

    Args:
      d: feature size.
      k: number of prototypes.
      temperature: $T > 0$ of the predictions (static; SwAV: 0.1).
      epsilon: $\varepsilon > 0$ of the codes (static; SwAV: 0.05).
      n_iter: Sinkhorn-Knopp rounds (static; SwAV: 3, SIGMA: 10).
      targets: ``"soft"`` (SwAV) or ``"hard"`` (SIGMA), static.
      prototypes: initial prototypes ``(k, d)``; by default ``normal / sqrt(d)`` from
        ``rngs``.
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``prototypes``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import SinkhornClusteringHead
      >>> head = SinkhornClusteringHead(8, 4, rngs=nnx.Rngs(0))
      >>> z = jax.random.normal(jax.random.key(1), (16, 8))
      >>> head(z).shape, head.codes(z).shape, head.loss(z, z + 0.1).shape
      ((16, 4), (16, 4), ())
    """

    def __init__(self, d: int, k: int, *, temperature: float = 0.1, epsilon: float = 0.05,
                 n_iter: int = 3, targets: str = "soft",
                 prototypes: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = H.check_sizes(d, k)
        (self.temperature, self.epsilon, self.n_iter,
         self.targets) = H.swav_spec(temperature, epsilon, n_iter, targets)
        self.prototypes = nnx.Param(H.init_params(prototypes, k, d, "prototypes", "rngs",
                                                  _rngs_key(rngs), prototype_scale(d)))

    @property
    def spec(self) -> H.SwAVSpec:
        return H.SwAVSpec(self.temperature, self.epsilon, self.n_iter, self.targets)

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return H.swav_scores(self.prototypes[...], z)

    def codes(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        """The targets of the batch: SwAV codes (rows sum to one), one-hot with
        ``targets="hard"``; no gradient."""
        return H.swav_targets(self.prototypes[...], z, self.spec)

    def loss(self, z_a: Float[ArrayLike, "batch d"], z_b: Float[ArrayLike, "batch d"]
             ) -> Float[Array, ""]:
        """Swapped-prediction loss between two views of one batch."""
        return H.swav_head_loss(self.prototypes[...], z_a, z_b, self.spec)


class PartialOTClusteringHead(nnx.Module):
    r"""A P²OT / SP²OT clustering head for imbalanced clusters: a prototype classifier
    trained on progressive partial OT pseudo-labels.

    The Flax NNX twin of
    [`jaxclust.nn.equinox.PartialOTClusteringHead`][jaxclust.nn.equinox.PartialOTClusteringHead]
    (see there for the math and every argument), with the prototypes an ``nnx.Param``:
    logits (``__call__``), pseudo-labels ``codes(z, mass)`` (constants) and the swapped
    pseudo-label loss ``loss(z_a, z_b, mass)`` weighted by the transported mass.

    Args:
      d: feature size.
      k: number of clusters.
      temperature: $T > 0$ of the logits (static).
      normalize: cosine classifier (``True``) or linear (static).
      epsilon: entropic regularisation of the codes (static; P²OT: 0.1).
      reg: KL weight of the cluster sizes (static; ``inf`` for exact).
      prior: ``k`` cluster proportions (static tuple); uniform by default.
      gamma: SP²OT semantic weight $\gamma_0 \ge 0$ (static; 0 gives P²OT).
      n_neighbors: kNN graph for SP²OT, ``None`` for the dense cosine similarity (static).
      n_mm: MM rounds of SP²OT (static).
      tol: stopping tolerance of the scaling iterations (static).
      max_iter: iteration budget of the scaling iterations (static).
      gamma_decay: the weight $(1 - \rho)\,\gamma_0$ (default) or $\gamma_0$ (static).
      prior_order: ``"size"``, ``"reference"`` or ``None`` (static).
      prototypes: initial prototypes ``(k, d)``; by default ``normal / sqrt(d)`` from
        ``rngs``.
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``prototypes``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import PartialOTClusteringHead
      >>> head = PartialOTClusteringHead(8, 4, rngs=nnx.Rngs(0))
      >>> z = jax.random.normal(jax.random.key(1), (32, 8))
      >>> res = head.codes(z, 0.5)
      >>> head(z).shape, res.codes.shape, round(float(res.weights.sum()), 2)
      ((32, 4), (32, 4), 16.0)
    """

    def __init__(self, d: int, k: int, *, temperature: float = 0.1, normalize: bool = True,
                 epsilon: float = 0.1, reg: float = 1.0,
                 prior: tuple[float, ...] | None = None, gamma: float = 0.0,
                 n_neighbors: int | None = None, n_mm: int = 5, tol: float = 1e-5,
                 max_iter: int = 1000, gamma_decay: bool = True,
                 prior_order: str | None = "size",
                 prototypes: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = H.check_sizes(d, k)
        self.normalize = bool(normalize)
        self.config = partial_ot_config(k, temperature, epsilon, reg, prior, gamma,
                                        n_neighbors, n_mm, tol, max_iter, gamma_decay,
                                        prior_order)
        self.prototypes = nnx.Param(H.init_params(prototypes, k, d, "prototypes", "rngs",
                                                  _rngs_key(rngs), prototype_scale(d)))

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return H.partial_ot_logits(self.prototypes[...], z, self.normalize, self.config)

    def codes(self, z: Float[ArrayLike, "batch d"], mass: float | Float[ArrayLike, ""],
              features: Float[ArrayLike, "batch f"] | None = None) -> PartialCodes:
        """Partial-OT pseudo-labels of the batch (no gradient); SP²OT (``gamma > 0``) uses
        the cosine similarity of ``features`` (default: ``z``)."""
        return H.partial_ot_codes(self.prototypes[...], z, mass, features, self.normalize,
                                  self.config)

    def semantic_weight(self, mass: float | Float[ArrayLike, ""]) -> Float[Array, ""]:
        r"""The SP²OT semantic weight used at transported mass ``mass``: $(1-\rho)\gamma_0$
        with ``gamma_decay`` (default), else $\gamma_0$ (traced ``mass`` allowed)."""
        return semantic_weight(mass, self.config)

    def loss(self, z_a: Float[ArrayLike, "batch d"], z_b: Float[ArrayLike, "batch d"],
             mass: float | Float[ArrayLike, ""]) -> Float[Array, ""]:
        """Swapped pseudo-label loss between two views, weighted by the transported mass:
        the sum of the two directions, as the reference."""
        return H.partial_ot_loss(self.prototypes[...], z_a, z_b, mass, self.normalize,
                                 self.config)


class DECHead(nnx.Module):
    r"""A DEC / DEPICT clustering head: centroids, soft assignments, sharpened target, KL.

    The Flax NNX twin of [`jaxclust.nn.equinox.DECHead`][jaxclust.nn.equinox.DECHead] (see
    there for the math and the arguments), with the centroids an ``nnx.Param``:
    ``__call__(z)`` gives the soft assignments $q$ (Student-t by default), ``target(q)`` the
    sharpened DEC/DEPICT target (a constant), ``loss(z, p=None)`` the mean
    $\mathrm{KL}(p\|q)$.

    Args:
      d: feature size.
      k: number of clusters.
      kind: ``"student_t"`` (DEC) or ``"softmax"`` (static).
      alpha: Student-t degrees of freedom (static; DEC: 1).
      temperature: scale of the squared distances (static).
      target: ``"dec"``, ``"depict"`` or ``"depict_paper"`` (static).
      power: sharpening exponent of the DEC target (static; DEC: 2).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``rngs``
        (DEC starts from k-means: use ``from_data``).
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``centroids``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import DECHead
      >>> head = DECHead(2, 3, rngs=nnx.Rngs(0))
      >>> z = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q = head(z)
      >>> q.shape, head.target(q).shape, head.loss(z).shape
      ((10, 3), (10, 3), ())
    """

    def __init__(self, d: int, k: int, *, kind: str = "student_t", alpha: float = 1.0,
                 temperature: float = 1.0, target: str = "dec", power: float = 2.0,
                 centroids: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = H.check_sizes(d, k)
        (self.kind, self.alpha, self.temperature, self.target_kind,
         self.power) = H.dec_spec(kind, alpha, temperature, target, power)
        self.centroids = nnx.Param(H.init_params(centroids, k, d, "centroids", "rngs",
                                                 _rngs_key(rngs), 0.1))

    @property
    def spec(self) -> H.DECSpec:
        return H.DECSpec(self.kind, self.alpha, self.temperature, self.target_kind,
                         self.power)

    @classmethod
    def from_data(cls, x: Float[ArrayLike, "n d"], k: int, *, key: PRNGKeyArray,
                  n_init: int = 3, **kwargs) -> DECHead:
        """A head whose centroids start at the k-means solution of ``x`` (DEC's
        initialisation; ``n_init`` k-means++ restarts from ``key``); ``kwargs`` go to the
        constructor."""
        c = jax.lax.stop_gradient(kmeans(x, k, key=key, n_init=n_init).centroids)
        return cls(c.shape[1], k, centroids=c, **kwargs)

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return H.dec_assign(self.centroids[...], z, self.spec)

    def target(self, q: Float[ArrayLike, "batch k"]) -> Float[Array, "batch k"]:
        """The sharpened target of the assignments ``q`` (no gradient)."""
        return H.dec_head_target(q, self.spec)

    def loss(self, z: Float[ArrayLike, "batch d"],
             p: Float[ArrayLike, "batch k"] | None = None) -> Float[Array, ""]:
        """Mean KL(p || q) of the batch; ``p`` defaults to ``target(q)`` of this batch."""
        return H.dec_head_loss(self.centroids[...], z, p, self.spec)


class TELLLayer(nnx.Module):
    r"""TELL's interpretable k-means layer: a linear layer whose weights are the centroids.

    The Flax NNX twin of [`jaxclust.nn.equinox.TELLLayer`][jaxclust.nn.equinox.TELLLayer]
    (see there for the math and the arguments), with the centroids $\Omega$ an
    ``nnx.Param``: weights $W = 2\Omega$, bias $b = -\lVert\Omega\rVert^2$; the call returns
    the assignments $\operatorname{softmax}((xW^\top + b)/T)$ and TELL's differentiable
    k-means loss.

    Args:
      d: feature size.
      k: number of clusters.
      temperature: $T > 0$ (static).
      normalize: work on the unit sphere (static).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``rngs``.
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``centroids``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import TELLLayer
      >>> layer = TELLLayer(2, 3, temperature=0.5, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q, loss = layer(x)
      >>> q.shape, loss.shape, layer.weight.shape, layer.bias.shape
      ((10, 3), (), (3, 2), (3,))
    """

    def __init__(self, d: int, k: int, *, temperature: float = 1.0, normalize: bool = False,
                 centroids: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = H.check_sizes(d, k)
        self.temperature, self.normalize = H.tell_spec(temperature, normalize)
        self.centroids = nnx.Param(H.init_params(centroids, k, d, "centroids", "rngs",
                                                 _rngs_key(rngs), 0.1))

    @classmethod
    def from_data(cls, x: Float[ArrayLike, "n d"], k: int, *, key: PRNGKeyArray,
                  n_init: int = 3, **kwargs) -> TELLLayer:
        """A layer whose centroids start at the k-means solution of ``x`` (``n_init``
        k-means++ restarts from ``key``); ``kwargs`` go to the constructor."""
        c = jax.lax.stop_gradient(kmeans(x, k, key=key, n_init=n_init).centroids)
        return cls(c.shape[1], k, centroids=c, **kwargs)

    @property
    def weight(self) -> Float[Array, "k d"]:
        r"""The layer's weights $W = 2\Omega$ (unit-norm centroids with ``normalize``)."""
        return H.tell_weight_bias(self.centroids[...], self.normalize)[0]

    @property
    def bias(self) -> Float[Array, " k"]:
        r"""The layer's bias $b = -\lVert\Omega\rVert^2$."""
        return H.tell_weight_bias(self.centroids[...], self.normalize)[1]

    def __call__(self, x: Float[ArrayLike, "n d"]
                 ) -> tuple[Float[Array, "n k"], Float[Array, ""]]:
        return H.tell_layer(self.centroids[...], x, self.temperature, self.normalize)
