"""Equinox layers: clustering heads (SwAV, P²OT/SP²OT, DEC/DEPICT, TELL, soft k-means), OOD
heads, score networks.

The same layers as [`jaxclust.nn.flax`][jaxclust.nn.flax], as ``equinox.Module`` subclasses
(pytrees whose array fields are the learnable parameters) whose constructors take a PRNG
``key``.
Each is a thin wrapper over the pure functions of
[`jaxclust.cluster` losses](cluster.md#clustering-losses) and [`jaxclust.ot`][jaxclust.ot].
Train them with ``eqx.filter_jit`` / ``eqx.filter_value_and_grad`` and optax.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..cluster.lloyd import kmeans
from ..ot.progressive import PartialCodes
from . import _heads as H
from ._common import PartialOTConfig, partial_ot_config, prototype_scale, semantic_weight
from ._mlc_equinox import MLCHead as MLCHead
from ._ood_equinox import PrototypeHead as PrototypeHead, TemperatureHead as TemperatureHead
from ._score_equinox import ScoreMLP as ScoreMLP, ScoreUNet as ScoreUNet

__all__ = ["DECHead", "KMeansLayer", "MLCHead", "PartialOTClusteringHead", "PrototypeHead",
           "ScoreMLP", "ScoreUNet", "SinkhornClusteringHead", "TELLLayer", "TemperatureHead"]


class KMeansLayer(eqx.Module):
    r"""A k-means layer: learnable centroids, soft assignments and the soft k-means loss.

    For a set of points $x \in \mathbb{R}^{n\times d}$ and centroids
    $c \in \mathbb{R}^{k\times d}$ (the field ``centroids``), the call returns

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
    ``jax.vmap`` for a batch of sets.

    Args:
      d: feature size.
      k: number of clusters (the order ``(d, k)`` of every head; it was ``(k, d)`` before).
      temperature: $T > 0$ (static field), in units of squared distances.
      kind: ``"softmax"`` or ``"student_t"`` (static field).
      alpha: Student-t degrees of freedom $\alpha > 0$ (static; ``"student_t"`` only).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``key``.
      key: PRNG key, required without ``centroids``.

    Example:
      >>> import jax
      >>> from jaxclust.nn.equinox import KMeansLayer
      >>> layer = KMeansLayer(2, 3, temperature=0.5, key=jax.random.key(0))
      >>> x = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q, loss = layer(x)
      >>> q.shape, q.sum(1).round(5)[:2].tolist(), loss.shape
      ((10, 3), [1.0, 1.0], ())

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016. Rose, Gurewitz, Fox, "Statistical mechanics and phase transitions in
      clustering", Phys. Rev. Lett. 1990.
    """

    centroids: Float[Array, "k d"]
    temperature: float = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    alpha: float = eqx.field(static=True)

    def __init__(self, d: int, k: int, *, temperature: float = 1.0, kind: str = "softmax",
                 alpha: float = 1.0, centroids: Float[ArrayLike, "k d"] | None = None,
                 key: PRNGKeyArray | None = None):
        d, k = H.check_sizes(d, k)
        self.temperature, self.kind, self.alpha = H.kmeans_spec(temperature, kind, alpha)
        self.centroids = H.init_params(centroids, k, d, "centroids", "key", key, 0.1)

    @classmethod
    def from_data(cls, x: Float[ArrayLike, "n d"], k: int, *, key: PRNGKeyArray,
                  n_init: int = 3, **kwargs) -> KMeansLayer:
        """A layer whose centroids start at the k-means solution of ``x``
        ([`kmeans`][jaxclust.cluster.kmeans], ``n_init`` k-means++ restarts from ``key``);
        ``kwargs`` go to the constructor (``temperature``, ``kind``, ``alpha``)."""
        res = kmeans(x, k, key=key, n_init=n_init)
        c = jax.lax.stop_gradient(res.centroids)
        return cls(c.shape[1], k, centroids=c, **kwargs)

    def __call__(self, x: Float[ArrayLike, "n d"]
                 ) -> tuple[Float[Array, "n k"], Float[Array, ""]]:
        spec = H.KMeansSpec(self.temperature, self.kind, self.alpha)
        return H.kmeans_layer(self.centroids, x, spec)


class SinkhornClusteringHead(eqx.Module):
    r"""A SwAV clustering head: prototypes on the sphere, balanced codes, swapped prediction.

    Features $z \in \mathbb{R}^{B\times d}$ and prototypes $C \in \mathbb{R}^{k\times d}$
    (the field ``prototypes``) are both L2-normalised in the forward pass, and the scores
    are the cosine similarities $S = \bar z\,\bar C^\top$ (``__call__``). ``codes(z)`` are
    SwAV's balanced soft assignments of the batch ([`swav_codes`][jaxclust.ot.swav_codes]:
    ``n_iter`` Sinkhorn-Knopp rounds at $\varepsilon$, constants for the gradient), and
    ``loss(z_a, z_b)`` the swapped-prediction loss
    ([`swav_loss`][jaxclust.cluster.swav_loss]) between two views,
    $-\frac{1}{2B}\sum_i [Q^b_i \cdot \log\operatorname{softmax}(S^a_i/T)
    + Q^a_i \cdot \log\operatorname{softmax}(S^b_i/T)]$.

    There is no projection: put your own projection head before it. The codes need the
    whole batch, so the layer takes ``(batch, d)`` features (``jax.vmap`` over batches).

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
        ``key``.
      key: PRNG key, required without ``prototypes``.

    Example:
      >>> import jax
      >>> from jaxclust.nn.equinox import SinkhornClusteringHead
      >>> head = SinkhornClusteringHead(8, 4, key=jax.random.key(0))
      >>> z = jax.random.normal(jax.random.key(1), (16, 8))
      >>> head(z).shape, head.codes(z).shape, head.loss(z, z + 0.1).shape
      ((16, 4), (16, 4), ())

    References:
      Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual
      Features by Contrasting Cluster Assignments" (SwAV), NeurIPS 2020.
    """

    prototypes: Float[Array, "k d"]
    temperature: float = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    n_iter: int = eqx.field(static=True)
    targets: str = eqx.field(static=True)

    def __init__(self, d: int, k: int, *, temperature: float = 0.1, epsilon: float = 0.05,
                 n_iter: int = 3, targets: str = "soft",
                 prototypes: Float[ArrayLike, "k d"] | None = None,
                 key: PRNGKeyArray | None = None):
        d, k = H.check_sizes(d, k)
        (self.temperature, self.epsilon, self.n_iter,
         self.targets) = H.swav_spec(temperature, epsilon, n_iter, targets)
        self.prototypes = H.init_params(prototypes, k, d, "prototypes", "key", key,
                                        prototype_scale(d))

    @property
    def spec(self) -> H.SwAVSpec:
        return H.SwAVSpec(self.temperature, self.epsilon, self.n_iter, self.targets)

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return H.swav_scores(self.prototypes, z)

    def codes(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        """The targets of the batch: SwAV codes (rows sum to one), one-hot with
        ``targets="hard"``; no gradient."""
        return H.swav_targets(self.prototypes, z, self.spec)

    def loss(self, z_a: Float[ArrayLike, "batch d"], z_b: Float[ArrayLike, "batch d"]
             ) -> Float[Array, ""]:
        """Swapped-prediction loss between two views of one batch."""
        return H.swav_head_loss(self.prototypes, z_a, z_b, self.spec)


class PartialOTClusteringHead(eqx.Module):
    r"""A P²OT / SP²OT clustering head for imbalanced clusters: a prototype classifier
    trained on progressive partial OT pseudo-labels.

    The logits of features $z \in \mathbb{R}^{B\times d}$ are $\ell = \bar z\,\bar W^\top/T$
    (cosine classifier over the prototypes $W$, the field ``prototypes``; with
    ``normalize=False`` a linear classifier $zW^\top/T$). ``codes(z, mass)`` are the
    pseudo-labels of the batch ([`p2ot_codes`][jaxclust.ot.p2ot_codes] on
    $\log\operatorname{softmax}(\ell)$: only a fraction ``mass`` $=\rho$ of the batch is
    transported, the cluster sizes are KL-tied to the prior; or, with ``gamma > 0``,
    [`sp2ot_codes`][jaxclust.ot.sp2ot_codes] with the cosine similarity of the features).
    ``loss(z_a, z_b, mass)`` is the swapped pseudo-label loss between two views, summed
    over the two directions as the reference code does,

    $$
        \mathrm{CE}_w(\ell^a, Q^b) + \mathrm{CE}_w(\ell^b, Q^a),
        \qquad \mathrm{CE}_w(\ell, Q) = -\tfrac1B\sum_i w_i\, c_i\cdot
            \log\operatorname{softmax}(\ell_i),
    $$

    with the codes $c$ and transported fractions $w$ of
    [`pseudo_label_loss`][jaxclust.cluster.pseudo_label_loss]. The codes are constants
    (``stop_gradient``): the gradient flows through the logits only. Ramp ``mass`` over
    training with [`mass_schedule`][jaxclust.ot.mass_schedule] (traced values are fine
    inside a jitted step).

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
        ``key``.
      key: PRNG key, required without ``prototypes``.

    Example:
      >>> import jax
      >>> from jaxclust.nn.equinox import PartialOTClusteringHead
      >>> head = PartialOTClusteringHead(8, 4, key=jax.random.key(0))
      >>> z = jax.random.normal(jax.random.key(1), (32, 8))
      >>> res = head.codes(z, 0.5)
      >>> head(z).shape, res.codes.shape, round(float(res.weights.sum()), 2)
      ((32, 4), (32, 4), 16.0)
      >>> head.loss(z, z + 0.1, 0.5).shape
      ()

    References:
      Zhang, Ren, He, "P²OT: Progressive Partial Optimal Transport for Deep Imbalanced
      Clustering", ICLR 2024. Zhang, Ren, He, "SP²OT: Semantic-Regularized Progressive
      Partial Optimal Transport for Imbalanced Clustering", arXiv:2404.03446 (2024).
    """

    prototypes: Float[Array, "k d"]
    normalize: bool = eqx.field(static=True)
    config: PartialOTConfig = eqx.field(static=True)

    def __init__(self, d: int, k: int, *, temperature: float = 0.1, normalize: bool = True,
                 epsilon: float = 0.1, reg: float = 1.0,
                 prior: tuple[float, ...] | None = None, gamma: float = 0.0,
                 n_neighbors: int | None = None, n_mm: int = 5, tol: float = 1e-5,
                 max_iter: int = 1000, gamma_decay: bool = True,
                 prior_order: str | None = "size",
                 prototypes: Float[ArrayLike, "k d"] | None = None,
                 key: PRNGKeyArray | None = None):
        d, k = H.check_sizes(d, k)
        self.normalize = bool(normalize)
        self.config = partial_ot_config(k, temperature, epsilon, reg, prior, gamma,
                                        n_neighbors, n_mm, tol, max_iter, gamma_decay,
                                        prior_order)
        self.prototypes = H.init_params(prototypes, k, d, "prototypes", "key", key,
                                        prototype_scale(d))

    def __call__(self, z: Float[ArrayLike, "batch d"]) -> Float[Array, "batch k"]:
        return H.partial_ot_logits(self.prototypes, z, self.normalize, self.config)

    def codes(self, z: Float[ArrayLike, "batch d"], mass: float | Float[ArrayLike, ""],
              features: Float[ArrayLike, "batch f"] | None = None) -> PartialCodes:
        """Partial-OT pseudo-labels of the batch (no gradient); SP²OT (``gamma > 0``) uses
        the cosine similarity of ``features`` (default: ``z``)."""
        return H.partial_ot_codes(self.prototypes, z, mass, features, self.normalize,
                                  self.config)

    def semantic_weight(self, mass: float | Float[ArrayLike, ""]) -> Float[Array, ""]:
        r"""The SP²OT semantic weight used at transported mass ``mass``: $(1-\rho)\gamma_0$
        with ``gamma_decay`` (default), else $\gamma_0$ (traced ``mass`` allowed)."""
        return semantic_weight(mass, self.config)

    def loss(self, z_a: Float[ArrayLike, "batch d"], z_b: Float[ArrayLike, "batch d"],
             mass: float | Float[ArrayLike, ""]) -> Float[Array, ""]:
        """Swapped pseudo-label loss between two views, weighted by the transported mass:
        the sum of the two directions, as the reference."""
        return H.partial_ot_loss(self.prototypes, z_a, z_b, mass, self.normalize, self.config)


class DECHead(eqx.Module):
    r"""A DEC / DEPICT clustering head: centroids, soft assignments, sharpened target, KL.

    For features $z \in \mathbb{R}^{B\times d}$ and centroids $\mu$ (the field
    ``centroids``), the call returns the soft assignments
    ([`soft_assignment`][jaxclust.cluster.soft_assignment]): DEC's Student-t kernel
    $q_{ij} \propto (1 + \lVert z_i - \mu_j\rVert^2/(\alpha T))^{-(\alpha+1)/2}$ by default,
    or a softmax of $-\lVert z_i-\mu_j\rVert^2/T$. ``target(q)`` is the sharpened target
    with the cluster-frequency prior ([`dec_target`][jaxclust.cluster.dec_target]: DEC
    $p_{ij} \propto q_{ij}^2/f_j$ or DEPICT $p_{ij}\propto q_{ij}/f_j^{1/2}$), a constant,
    and ``loss(z)`` is $\frac1B\sum_i \mathrm{KL}(p_i\|q_i)$
    ([`dec_loss`][jaxclust.cluster.dec_loss]), differentiated through $q$ only (into the
    centroids and the features). DEC recomputes the target every few steps (on the whole
    data set): pass it as ``loss(z, p)``.

    Args:
      d: feature size.
      k: number of clusters.
      kind: ``"student_t"`` (DEC) or ``"softmax"`` (static).
      alpha: Student-t degrees of freedom (static; DEC: 1).
      temperature: scale of the squared distances (static).
      target: ``"dec"``, ``"depict"`` (DEPICT's released code: $q^2/f$) or
        ``"depict_paper"`` (DEPICT's paper: $q/\sqrt f$), static.
      power: sharpening exponent of the DEC target (static; DEC: 2).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``key``
        (DEC starts from k-means: use ``from_data``).
      key: PRNG key, required without ``centroids``.

    Example:
      >>> import jax
      >>> from jaxclust.nn.equinox import DECHead
      >>> head = DECHead(2, 3, key=jax.random.key(0))
      >>> z = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q = head(z)
      >>> q.shape, head.target(q).shape, head.loss(z).shape
      ((10, 3), (10, 3), ())

    References:
      Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis" (DEC),
      ICML 2016. Ghasedi Dizaji et al., "Deep Clustering via Joint Convolutional Autoencoder
      Embedding and Relative Entropy Minimization" (DEPICT), ICCV 2017.
    """

    centroids: Float[Array, "k d"]
    kind: str = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    temperature: float = eqx.field(static=True)
    target_kind: str = eqx.field(static=True)
    power: float = eqx.field(static=True)

    def __init__(self, d: int, k: int, *, kind: str = "student_t", alpha: float = 1.0,
                 temperature: float = 1.0, target: str = "dec", power: float = 2.0,
                 centroids: Float[ArrayLike, "k d"] | None = None,
                 key: PRNGKeyArray | None = None):
        d, k = H.check_sizes(d, k)
        (self.kind, self.alpha, self.temperature, self.target_kind,
         self.power) = H.dec_spec(kind, alpha, temperature, target, power)
        self.centroids = H.init_params(centroids, k, d, "centroids", "key", key, 0.1)

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
        return H.dec_assign(self.centroids, z, self.spec)

    def target(self, q: Float[ArrayLike, "batch k"]) -> Float[Array, "batch k"]:
        """The sharpened target of the assignments ``q`` (no gradient)."""
        return H.dec_head_target(q, self.spec)

    def loss(self, z: Float[ArrayLike, "batch d"],
             p: Float[ArrayLike, "batch k"] | None = None) -> Float[Array, ""]:
        """Mean KL(p || q) of the batch; ``p`` defaults to ``target(q)`` of this batch."""
        return H.dec_head_loss(self.centroids, z, p, self.spec)


class TELLLayer(eqx.Module):
    r"""TELL's interpretable k-means layer: a linear layer whose weights are the centroids.

    With centroids $\Omega$ (the field ``centroids``), the layer has weights $W = 2\Omega$
    and bias $b = -\lVert\Omega\rVert^2$ (properties ``weight`` and ``bias``), and the call
    returns

    * ``assignments`` $I(x) = \operatorname{softmax}((xW^\top + b)/T)$
      ([`tell_assignment`][jaxclust.cluster.tell_assignment]), equal to the softmax of
      $-\lVert x - \Omega_j\rVert^2/T$, the k-means rule as $T\to 0$;
    * ``loss`` $= \frac1n\sum_i\sum_j I_j(x_i)\lVert x_i - \Omega_j\rVert^2$, TELL's
      differentiable k-means objective ([`tell_loss`][jaxclust.cluster.tell_loss]),
      differentiated through the distances and the assignments.

    Args:
      d: feature size.
      k: number of clusters.
      temperature: $T > 0$ (static).
      normalize: work on the unit sphere (features and centroids L2-normalised, as TELL's
        reference code; static).
      centroids: initial centroids ``(k, d)``; by default ``0.1 * normal`` from ``key``.
      key: PRNG key, required without ``centroids``.

    Example:
      >>> import jax
      >>> from jaxclust.nn.equinox import TELLLayer
      >>> layer = TELLLayer(2, 3, temperature=0.5, key=jax.random.key(0))
      >>> x = jax.random.normal(jax.random.key(1), (10, 2))
      >>> q, loss = layer(x)
      >>> q.shape, loss.shape, layer.weight.shape, layer.bias.shape
      ((10, 3), (), (3, 2), (3,))

    References:
      Peng, Li, Tsang, Zhu, Lv, Zhou, "XAI Beyond Classification: Interpretable Neural
      Clustering" (TELL), JMLR 23, 2022.
    """

    centroids: Float[Array, "k d"]
    temperature: float = eqx.field(static=True)
    normalize: bool = eqx.field(static=True)

    def __init__(self, d: int, k: int, *, temperature: float = 1.0, normalize: bool = False,
                 centroids: Float[ArrayLike, "k d"] | None = None,
                 key: PRNGKeyArray | None = None):
        d, k = H.check_sizes(d, k)
        self.temperature, self.normalize = H.tell_spec(temperature, normalize)
        self.centroids = H.init_params(centroids, k, d, "centroids", "key", key, 0.1)

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
        return H.tell_weight_bias(self.centroids, self.normalize)[0]

    @property
    def bias(self) -> Float[Array, " k"]:
        r"""The layer's bias $b = -\lVert\Omega\rVert^2$."""
        return H.tell_weight_bias(self.centroids, self.normalize)[1]

    def __call__(self, x: Float[ArrayLike, "n d"]
                 ) -> tuple[Float[Array, "n k"], Float[Array, ""]]:
        return H.tell_layer(self.centroids, x, self.temperature, self.normalize)
