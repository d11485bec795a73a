"""Flax NNX layers: clustering heads (SwAV, P²OT/SP²OT, DEC/DEPICT, TELL, soft k-means), OOD
heads, score networks (the optional extra ``jaxclust[flax]``).

The same layers as [`jaxclust.nn.equinox`][jaxclust.nn.equinox], as ``flax.nnx.Module``
subclasses whose learnable arrays are ``nnx.Param`` variables and whose constructors take
``rngs: nnx.Rngs`` (NNX convention). Each is a thin wrapper over the pure functions of
[`jaxclust.cluster` losses](cluster.md#clustering-losses) and [`jaxclust.ot`][jaxclust.ot].
"""

from __future__ import annotations

try:
    from flax import nnx
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("jaxclust.nn.flax needs Flax: pip install 'jaxclust[flax]' (or use "
                      "jaxclust.nn.equinox, which needs no extra).") from err

import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..cluster.deep import dec_target, tell_assignment, tell_loss
from ..cluster.lloyd import kmeans
from ..cluster.losses import kmeans_loss, soft_assignment, swav_loss
from ..ot.progressive import PartialCodes
from . import (
    _check_kind,
    _check_number,
    _check_size,
    _check_swav_targets,
    _check_target,
    _dec_head_loss,
    _features,
    _head_logits,
    _initial,
    _normal,
    _partial_codes,
    _partial_ot_config,
    _prototype_scale,
    _prototype_scores,
    _semantic_weight,
    _swapped_pseudo_label_loss,
    _swav_head_targets,
    _tell_weight_bias,
    _two_views,
)
from ._ood_flax import PrototypeHead as PrototypeHead, TemperatureHead as TemperatureHead
from ._score_flax import ScoreMLP as ScoreMLP, ScoreUNet as ScoreUNet

__all__ = ["DECHead", "KMeansLayer", "PartialOTClusteringHead", "PrototypeHead", "ScoreMLP",
           "ScoreUNet", "SinkhornClusteringHead", "TELLLayer", "TemperatureHead"]


class KMeansLayer(nnx.Module):
    r"""A k-means layer: learnable centroids, soft assignments and the soft k-means loss.

    For a set of points $x \in \mathbb{R}^{n\times d}$ and centroids
    $c \in \mathbb{R}^{k\times d}$ (an ``nnx.Param``), the call returns

    * ``assignments`` $= q(x, c)$, ``(n, k)``, rows summing to one:
      [`soft_assignment`][jaxclust.cluster.soft_assignment] with ``kind="softmax"``,
      $q_{ij} \propto e^{-\lVert x_i - c_j\rVert^2/T}$, or ``kind="student_t"`` (DEC),
      $q_{ij} \propto (1 + \lVert x_i - c_j\rVert^2/(\alpha T))^{-(\alpha+1)/2}$;
    * ``loss`` $= -\frac{T}{n}\sum_i \log\sum_j e^{-\lVert x_i - c_j\rVert^2/T}$, the soft
      k-means free energy averaged over the points
      ([`kmeans_loss`][jaxclust.cluster.kmeans_loss] with ``temperature=T``, whatever
      the ``kind``). Minimising it in $c$ (and in the features producing $x$) is soft
      k-means; it is within $T\log k$ below the hard mean inertia.

    The layer is unbatched over point sets (``x`` is one set of ``n`` points); use
    ``nnx.vmap`` for a batch of sets.

    Args:
      k: number of clusters.
      d: feature size.
      temperature: $T > 0$ (static), in units of squared distances.
      kind: ``"softmax"`` or ``"student_t"`` (static).
      alpha: Student-t degrees of freedom $\alpha > 0$ (static; ``"student_t"`` only).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``rngs``.
      rngs: ``nnx.Rngs`` (its ``params`` stream), required without ``centroids``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxclust.nn.flax import KMeansLayer
      >>> layer = KMeansLayer(3, 2, temperature=0.5, rngs=nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q, loss = layer(x)
      >>> q.shape, q.sum(1).round(5)[:2].tolist(), loss.shape
      ((10, 3), [1.0, 1.0], ())

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016. Rose, Gurewitz, Fox, "Statistical mechanics and phase transitions in
      clustering", Phys. Rev. Lett. 1990.
    """

    def __init__(self, k: int, d: int, *, temperature: float = 1.0, kind: str = "softmax",
                 alpha: float = 1.0, centroids: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        k, d = _check_size(k, "k"), _check_size(d, "d")
        self.temperature = _check_number(temperature, "temperature")
        self.kind = _check_kind(kind)
        self.alpha = _check_number(alpha, "alpha")
        draw = None if rngs is None else lambda: _normal(rngs.params(), (k, d), 0.1)
        self.centroids = nnx.Param(_initial(centroids, (k, d), "centroids", "rngs", draw))

    @classmethod
    def from_data(cls, x: Float[ArrayLike, "n d"], k: int, *, key: PRNGKeyArray,
                  n_init: int = 3, **kwargs) -> KMeansLayer:
        """A layer whose centroids start at the k-means solution of ``x``
        ([`kmeans`][jaxclust.cluster.kmeans], ``n_init`` k-means++ restarts from ``key``);
        ``kwargs`` go to the constructor (``temperature``, ``kind``, ``alpha``)."""
        res = kmeans(x, k, key=key, n_init=n_init)
        c = jax.lax.stop_gradient(res.centroids)
        return cls(k, c.shape[1], centroids=c, **kwargs)

    def __call__(self, x: Float[ArrayLike, "n d"]
                 ) -> tuple[Float[Array, "n k"], Float[Array, ""]]:
        c = self.centroids[...]
        q = soft_assignment(x, c, temperature=self.temperature, kind=self.kind,
                            alpha=self.alpha)
        return q, kmeans_loss(x, c, temperature=self.temperature)


class SinkhornClusteringHead(nnx.Module):
    r"""A SwAV clustering head: prototypes on the sphere, balanced codes, swapped prediction.

    Features $z \in \mathbb{R}^{B\times d}$ and prototypes $C \in \mathbb{R}^{k\times d}$
    (an ``nnx.Param``) are both L2-normalised in the forward pass, and the scores are the
    cosine similarities $S = \bar z\,\bar C^\top$ (``__call__``). ``codes(z)`` are SwAV's
    balanced soft assignments of the batch ([`swav_codes`][jaxclust.ot.swav_codes]:
    ``n_iter`` Sinkhorn-Knopp rounds at $\varepsilon$, constants for the gradient), and
    ``loss(z_a, z_b)`` the swapped-prediction loss
    ([`swav_loss`][jaxclust.cluster.swav_loss]) between two views,
    $-\frac{1}{2B}\sum_i [Q^b_i \cdot \log\operatorname{softmax}(S^a_i/T)
    + Q^a_i \cdot \log\operatorname{softmax}(S^b_i/T)]$.

    There is no projection: put your own projection head before it.

    Args:
      d: feature size.
      k: number of prototypes.
      temperature: $T > 0$ of the predictions (static; SwAV: 0.1).
      epsilon: $\varepsilon > 0$ of the codes (static; SwAV: 0.05).
      n_iter: Sinkhorn-Knopp rounds (static; SwAV: 3, SIGMA: 10).
      targets: ``"soft"`` (SwAV: the codes) or ``"hard"`` (SIGMA: their one-hot
        ``argmax``), static. SIGMA's settings: ``temperature=0.1, epsilon=0.05,
        n_iter=10, targets="hard"`` (SIGMA sums the two directions: twice ``loss``).
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

    References:
      Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual
      Features by Contrasting Cluster Assignments" (SwAV), NeurIPS 2020.
    """

    def __init__(self, d: int, k: int, *, temperature: float = 0.1, epsilon: float = 0.05,
                 n_iter: int = 3, targets: str = "soft",
                 prototypes: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = _check_size(d, "d"), _check_size(k, "k")
        self.temperature = _check_number(temperature, "temperature", "SwAV uses 0.1.")
        self.epsilon = _check_number(epsilon, "epsilon", "SwAV uses 0.05.")
        self.n_iter = _check_size(n_iter, "n_iter")
        self.targets = _check_swav_targets(targets)
        draw = (None if rngs is None
                else lambda: _normal(rngs.params(), (k, d), _prototype_scale(d)))
        self.prototypes = nnx.Param(_initial(prototypes, (k, d), "prototypes", "rngs", draw))

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return _prototype_scores(z, self.prototypes[...])

    def codes(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        """The targets of the batch: SwAV codes (rows sum to one), one-hot with
        ``targets="hard"``; no gradient."""
        return _swav_head_targets(self(z), self.epsilon, self.n_iter, self.targets)

    def loss(self, z_a: Float[ArrayLike, "batch d"], z_b: Float[ArrayLike, "batch d"]
             ) -> Float[Array, ""]:
        """Swapped-prediction loss between two views of one batch."""
        s_a, s_b = _two_views(z_a, z_b, self.prototypes[...])
        return swav_loss(s_a, s_b, temperature=self.temperature, epsilon=self.epsilon,
                         n_iter=self.n_iter, targets=self.targets)


class PartialOTClusteringHead(nnx.Module):
    r"""A P²OT / SP²OT clustering head for imbalanced clusters: a prototype classifier
    trained on progressive partial OT pseudo-labels.

    The same head as the Equinox
    [`PartialOTClusteringHead`][jaxclust.nn.equinox.PartialOTClusteringHead]
    (see there for the math), with the prototypes an ``nnx.Param``: logits
    $\ell = \bar z\,\bar W^\top/T$ (``__call__``), pseudo-labels ``codes(z, mass)`` from
    [`p2ot_codes`][jaxclust.ot.p2ot_codes] (or [`sp2ot_codes`][jaxclust.ot.sp2ot_codes]
    with ``gamma > 0``), constants for the gradient, and the swapped pseudo-label loss
    ``loss(z_a, z_b, mass)`` weighted by the transported mass
    ([`pseudo_label_loss`][jaxclust.cluster.pseudo_label_loss]).

    Args:
      d: feature size.
      k: number of clusters.
      temperature: $T > 0$ of the logits (static).
      normalize: cosine classifier (``True``) or linear (static).
      epsilon: entropic regularisation of the codes (static; P²OT: 0.1).
      reg: KL weight $\lambda$ of the cluster sizes (static; P²OT: 1; ``inf`` for exact).
      prior: ``k`` cluster proportions (static tuple); uniform by default.
      gamma: SP²OT semantic weight $\gamma_0 \ge 0$ (static; 0 gives P²OT).
      gamma_decay: use the weight $(1 - \rho)\,\gamma_0$ at transported mass $\rho$, the
        reference's schedule (``True``, default; rhfeiyang/SPPOT ``MMOT.set_rho``), or
        $\gamma_0$ at every mass (static). ``semantic_weight(mass)`` returns it.
      prior_order: how ``prior`` is matched to the clusters (static; see
        [`p2ot_codes`][jaxclust.ot.p2ot_codes]): ``"size"`` (largest proportion to the
        cluster predicted largest), ``"reference"`` (the reference code's order) or
        ``None`` (as given).
      n_neighbors: kNN graph for SP²OT, ``None`` for the dense cosine similarity (static).
      n_mm: MM rounds of SP²OT (static).
      tol: stopping tolerance of the scaling iterations (static).
      max_iter: iteration budget of the scaling iterations (static).
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

    References:
      Zhang, Ren, He, "P²OT: Progressive Partial Optimal Transport for Deep Imbalanced
      Clustering", ICLR 2024. Zhang, Ren, He, "SP²OT: Semantic-Regularized Progressive
      Partial Optimal Transport for Imbalanced Clustering", arXiv:2404.03446 (2024).
    """

    def __init__(self, d: int, k: int, *, temperature: float = 0.1, normalize: bool = True,
                 epsilon: float = 0.1, reg: float = 1.0,
                 prior: tuple[float, ...] | None = None, gamma: float = 0.0,
                 n_neighbors: int | None = None, n_mm: int = 5, tol: float = 1e-5,
                 max_iter: int = 1000, gamma_decay: bool = True,
                 prior_order: str | None = "size",
                 prototypes: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = _check_size(d, "d"), _check_size(k, "k")
        self.normalize = bool(normalize)
        self.config = _partial_ot_config(k, temperature, epsilon, reg, prior, gamma,
                                         n_neighbors, n_mm, tol, max_iter, gamma_decay,
                                         prior_order)
        draw = (None if rngs is None
                else lambda: _normal(rngs.params(), (k, d), _prototype_scale(d)))
        self.prototypes = nnx.Param(_initial(prototypes, (k, d), "prototypes", "rngs", draw))

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return _head_logits(z, self.prototypes[...], self.config.temperature, self.normalize)

    def codes(self, z: Float[ArrayLike, "batch d"], mass: float | Float[ArrayLike, ""],
              features: Float[ArrayLike, "batch f"] | None = None) -> PartialCodes:
        """Partial-OT pseudo-labels of the batch (no gradient); SP²OT (``gamma > 0``) uses
        the cosine similarity of ``features`` (default: ``z``)."""
        return _partial_codes(self(z), mass, z if features is None else features,
                              self.config)

    def semantic_weight(self, mass: float | Float[ArrayLike, ""]) -> Float[Array, ""]:
        r"""The SP²OT semantic weight used at transported mass ``mass``: $(1-\rho)\gamma_0$
        with ``gamma_decay`` (default), else $\gamma_0$ (traced ``mass`` allowed)."""
        return _semantic_weight(mass, self.config)

    def loss(self, z_a: Float[ArrayLike, "batch d"], z_b: Float[ArrayLike, "batch d"],
             mass: float | Float[ArrayLike, ""]) -> Float[Array, ""]:
        """Swapped pseudo-label loss between two views, weighted by the transported mass:
        the sum of the two directions, as the reference."""
        t, unit = self.config.temperature, self.normalize  # views named in messages
        s_a = _head_logits(z_a, self.prototypes[...], t, unit, "z_a")
        s_b = _head_logits(z_b, self.prototypes[...], t, unit, "z_b")
        return _swapped_pseudo_label_loss(s_a, s_b, mass, z_a, z_b, self.config)


class DECHead(nnx.Module):
    r"""A DEC / DEPICT clustering head: centroids, soft assignments, sharpened target, KL.

    The same head as [`jaxclust.nn.equinox.DECHead`][jaxclust.nn.equinox.DECHead] (see
    there for the math), with the centroids an ``nnx.Param``: ``__call__(z)`` gives the
    soft assignments $q$ (Student-t by default), ``target(q)`` the sharpened DEC/DEPICT
    target (a constant), ``loss(z, p=None)`` the mean $\mathrm{KL}(p\|q)$.

    Args:
      d: feature size.
      k: number of clusters.
      kind: ``"student_t"`` (DEC) or ``"softmax"`` (static).
      alpha: Student-t degrees of freedom (static; DEC: 1).
      temperature: scale of the squared distances (static).
      target: ``"dec"``, ``"depict"`` (DEPICT's released code: $q^2/f$) or
        ``"depict_paper"`` (DEPICT's paper: $q/\sqrt f$), static.
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

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016. Ghasedi Dizaji et al., "Deep Clustering via Joint Convolutional Autoencoder
      Embedding and Relative Entropy Minimization" (DEPICT), ICCV 2017.
    """

    def __init__(self, d: int, k: int, *, kind: str = "student_t", alpha: float = 1.0,
                 temperature: float = 1.0, target: str = "dec", power: float = 2.0,
                 centroids: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = _check_size(d, "d"), _check_size(k, "k")
        self.kind = _check_kind(kind)
        self.alpha = _check_number(alpha, "alpha")
        self.temperature = _check_number(temperature, "temperature")
        self.target_kind = _check_target(target)
        self.power = _check_number(power, "power", "DEC uses 2.")
        draw = None if rngs is None else lambda: _normal(rngs.params(), (k, d), 0.1)
        self.centroids = nnx.Param(_initial(centroids, (k, d), "centroids", "rngs", draw))

    @classmethod
    def from_data(cls, x: Float[ArrayLike, "n d"], k: int, *, key: PRNGKeyArray,
                  n_init: int = 3, **kwargs) -> DECHead:
        """A head whose centroids start at the k-means solution of ``x`` (DEC's
        initialisation; ``n_init`` k-means++ restarts from ``key``); ``kwargs`` go to the
        constructor."""
        c = jax.lax.stop_gradient(kmeans(x, k, key=key, n_init=n_init).centroids)
        return cls(c.shape[1], k, centroids=c, **kwargs)

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        c = self.centroids[...]
        return soft_assignment(_features(z, c.shape[1]), c, temperature=self.temperature,
                               kind=self.kind, alpha=self.alpha)

    def target(self, q: Float[ArrayLike, "batch k"]) -> Float[Array, "batch k"]:
        """The sharpened target of the assignments ``q`` (no gradient)."""
        return dec_target(q, kind=self.target_kind, power=self.power)

    def loss(self, z: Float[ArrayLike, "batch d"],
             p: Float[ArrayLike, "batch k"] | None = None) -> Float[Array, ""]:
        """Mean KL(p || q) of the batch; ``p`` defaults to ``target(q)`` of this batch."""
        return _dec_head_loss(self(z), p, self.target_kind, self.power)


class TELLLayer(nnx.Module):
    r"""TELL's interpretable k-means layer: a linear layer whose weights are the centroids.

    The same layer as [`jaxclust.nn.equinox.TELLLayer`][jaxclust.nn.equinox.TELLLayer]
    (see there for the math), with the centroids $\Omega$ an ``nnx.Param``: weights
    $W = 2\Omega$, bias $b = -\lVert\Omega\rVert^2$; the call returns the assignments
    $\operatorname{softmax}((xW^\top + b)/T)$ and TELL's differentiable k-means loss.

    Args:
      d: feature size.
      k: number of clusters.
      temperature: $T > 0$ (static).
      normalize: work on the unit sphere (features and centroids L2-normalised, as TELL's
        reference code; static).
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

    References:
      Peng, Li, Tsang, Zhu, Lv, Zhou, "XAI Beyond Classification: Interpretable Neural
      Clustering" (TELL), JMLR 23, 2022.
    """

    def __init__(self, d: int, k: int, *, temperature: float = 1.0, normalize: bool = False,
                 centroids: Float[ArrayLike, "k d"] | None = None,
                 rngs: nnx.Rngs | None = None):
        d, k = _check_size(d, "d"), _check_size(k, "k")
        self.temperature = _check_number(temperature, "temperature")
        self.normalize = bool(normalize)
        draw = None if rngs is None else lambda: _normal(rngs.params(), (k, d), 0.1)
        self.centroids = nnx.Param(_initial(centroids, (k, d), "centroids", "rngs", draw))

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
        return _tell_weight_bias(self.centroids[...], self.normalize)[0]

    @property
    def bias(self) -> Float[Array, " k"]:
        r"""The layer's bias $b = -\lVert\Omega\rVert^2$."""
        return _tell_weight_bias(self.centroids[...], self.normalize)[1]

    def __call__(self, x: Float[ArrayLike, "n d"]
                 ) -> tuple[Float[Array, "n k"], Float[Array, ""]]:
        c, t, unit = self.centroids[...], self.temperature, self.normalize
        return (tell_assignment(x, c, temperature=t, normalize=unit),
                tell_loss(x, c, temperature=t, normalize=unit))
