r"""Coding-rate clustering: the Manifold Linearizing and Clustering (MLC) objective.

The coding rate of features $Z \in \mathbb{R}^{n\times d}$ (rows $z_i$) at precision
$\epsilon$ and its membership-weighted version are

$$
    R(Z) = \tfrac12\log\det\big(I + \tfrac{d}{n\epsilon} Z^\top Z\big),\qquad
    R_c(Z, \Gamma) = \sum_{j} \frac{\langle\Gamma_j, 1\rangle}{2n}
      \log\det\Big(I + \frac{d}{\langle\Gamma_j, 1\rangle\epsilon}
      Z^\top \operatorname{Diag}(\Gamma_j) Z\Big),
$$

with $\Gamma_j$ the rows of a membership matrix. MLC (Ding et al., ICCV 2023) maximises the
rate reduction $R - R_c$ over the features *and* a doubly stochastic $n\times n$ membership
$\Gamma = n\,\mathrm{Sinkhorn}_\eta(|CC^\top|)$ built from the unit rows of a cluster head
$C$; the loss is

$$
    \mathcal L = -R(Z) + \gamma R_c(Z, \Gamma) + \tfrac{\lambda}{2}\lVert\Gamma\rVert_F^2 .
$$

The soft clusters of the loss are the *columns* of the membership (the reference passes
$\Gamma^\top$ to its rate-reduction loss; after the odd number of half-steps the rows sum
to one exactly, the columns approximately): MLC's loss is
``mlc_loss(z, mlc_membership(c).T)``. The clusters are read from $\Gamma$ by spectral
clustering. [`mlc`][jaxclust.cluster.mlc] clusters given features: a linear representation
$Z = \mathrm{normalize}(XA)$ and head $C = \mathrm{normalize}(XB)$ (both initialised from
the top principal directions, the paper's one-shot initialisation of the membership from
the representation) trained by the reference's optimiser (SGD with momentum 0.9 and weight
decay, learning rates 0.003 for the representation and 0.002 for the head) on
$\mathcal L$, then spectral clustering of $\Gamma$.

The formulas and defaults follow the public code of the paper's successor (Chu et al.,
"Image Clustering via the Principle of Rate Reduction in the Age of Pretrained Models",
ICLR 2024, github.com/LeslieTrue/CPP: ``loss/loss_fn.py``, ``model/sink_distance.py``,
``main.py``): $\epsilon = 0.1$, $\gamma = 1$, $\eta = 0.175$, 5 Sinkhorn half-steps
(rows, columns, rows, columns, rows), $\lambda = 0.05$; SGD, momentum 0.9, learning rate
0.003 / weight decay 1e-4 for the representation, 0.002 / 5e-3 for the cluster head.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.precision import HIGHEST
from .._core.results import with_summary_repr
from .spectral_clustering import spectral

__all__ = ["MLCResult", "coding_rate", "mlc", "mlc_loss", "mlc_membership"]


def _features(z, name):
    z = checks.as_float_array(z, name)
    checks.check_points(z, name)
    z = z.astype(jnp.promote_types(z.dtype, jnp.float32))
    return checks.check_finite(z, name)


def _unit(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _logdet_psd(m):
    # I + PSD: Cholesky is exact and differentiable; log det = 2 sum log diag(L)
    chol = jnp.linalg.cholesky(m)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def _rate(z, eps):
    n, d = z.shape
    gram = jnp.matmul(z.T, z, precision=HIGHEST)
    return 0.5 * _logdet_psd(jnp.eye(d, dtype=z.dtype) + (d / (n * eps)) * gram)


def _rate_c(z, g, eps):
    n, d = z.shape
    tr = jnp.sum(g, axis=1) + 1e-8                                       # (m,)
    cov = jnp.einsum("ni,jn,nk->jik", z, g, z, precision=HIGHEST)        # (m, d, d)
    scale = (d / (tr * eps))[:, None, None]
    logdet = _logdet_psd(jnp.eye(d, dtype=z.dtype)[None] + scale * cov)
    return jnp.sum(tr * logdet) / (2.0 * n)


def coding_rate(z: Float[Array, "n d"], *, eps: float = 0.1) -> Float[Array, ""]:
    r"""The coding rate $R(Z) = \frac12\log\det(I + \frac{d}{n\epsilon}Z^\top Z)$ of the
    rows of ``z`` (the expansion term of MCR² / MLC; module docstring).

    Args:
      z: ``(n, d)`` features (MLC uses unit rows).
      eps: the precision $\epsilon > 0$.

    Returns:
      The scalar rate.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import coding_rate
      >>> round(float(coding_rate(jnp.eye(4), eps=1.0)), 4)   # 0.5 * 4 log 2
      1.3863

    References:
      Yu, Chan, You, Song, Ma, "Learning Diverse and Discriminative Representations via
      the Principle of Maximal Coding Rate Reduction", NeurIPS 2020.
    """
    z = _features(z, "z")
    eps = checks.check_positive_scalar(eps, "eps")
    return _finite(_rate(z, eps), "z")


@partial(jax.jit, static_argnums=(2,))  # an eager fori_loop would recompile at every call
def _sinkhorn_half_steps(scores, eta, n_iter: int):
    n = scores.shape[0]
    logp = scores / eta

    def body(i, lp):
        rows = lp - logsumexp(lp, axis=1, keepdims=True)
        cols = lp - logsumexp(lp, axis=0, keepdims=True)
        return jnp.where(i % 2 == 0, rows, cols) - jnp.log(n)

    logp = jax.lax.fori_loop(0, n_iter, body, logp)
    return n * jnp.exp(logp)


def mlc_membership(
    c: Float[Array, "n d"], *, eta: float = 0.175, n_iter: int = 5
) -> Float[Array, "n n"]:
    r"""MLC's doubly stochastic membership $\Gamma = n\,P$, with $P$ the entropic transport
    plan between uniform marginals for the scores $S = |\bar C\bar C^\top|$ ($\bar C$: the
    unit rows of ``c``) after ``n_iter`` Sinkhorn half-steps in the log domain, starting
    with the rows (rows, columns, rows, ...): $P \propto \exp(S/\eta)$ with rows and columns
    summing to $1/n$ at convergence. Differentiable in ``c`` (unrolled steps, as in the
    reference, where the cluster head learns through $\Gamma$).

    Args:
      c: ``(n, d)`` cluster-head features.
      eta: the entropic temperature $\eta > 0$ (0.175 in the reference).
      n_iter: number of half-steps (static, >= 1; 5 in the reference; odd: rows exact).

    Returns:
      ``(n, n)`` membership, nonnegative, symmetric scores; rows sum to 1 after an odd
      number of half-steps.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import mlc_membership
      >>> g = mlc_membership(jax.random.normal(jax.random.key(0), (6, 3)), n_iter=51)
      >>> bool(jnp.allclose(g.sum(0), 1.0, atol=1e-4) and jnp.allclose(g.sum(1), 1.0))
      True

    References:
      Ding, Tong, Chan, Dai, Ma, Haeffele, "Unsupervised Manifold Linearizing and
      Clustering", ICCV 2023.
    """
    c = _features(c, "c")
    checks.check_int(n_iter, "n_iter")
    eta = checks.check_positive_scalar(eta, "eta")
    cu = _unit(c)
    scores = jnp.abs(jnp.matmul(cu, cu.T, precision=HIGHEST))
    return _sinkhorn_half_steps(scores, eta, n_iter)


def mlc_loss(
    z: Float[Array, "n d"],
    membership: Float[Array, "m n"],
    *,
    eps: float = 0.1,
    gamma: float = 1.0,
    reg: float = 0.05,
) -> Float[Array, ""]:
    r"""The MLC loss $-R(Z) + \gamma R_c(Z, \Gamma) + \frac{\lambda}{2}\lVert\Gamma\rVert_F^2$
    (module docstring), to minimise over the features and the membership.

    Args:
      z: ``(n, d)`` features (unit rows in MLC).
      membership: ``(m, n)`` nonnegative weights, row $j$ the soft cluster $\Gamma_j$: the
        ``(n, n)`` doubly stochastic [`mlc_membership`][jaxclust.cluster.mlc_membership],
        or a ``(k, n)`` one-hot / soft assignment (supervised MCR²).
      eps: the precision $\epsilon > 0$ (0.1 in the reference).
      gamma: weight $\gamma$ of the compression term (1).
      reg: $\lambda \ge 0$ of the Frobenius penalty on $\Gamma$ (0.05).

    Returns:
      The scalar loss.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import mlc_loss
      >>> z = jnp.eye(4)                      # 4 orthogonal features, each its own cluster
      >>> round(float(mlc_loss(z, jnp.eye(4), eps=1.0, reg=0.0)), 4)   # -2 log 2 + log(5) / 2
      -0.5816

    References:
      Ding et al., "Unsupervised Manifold Linearizing and Clustering", ICCV 2023.
    """
    z = _features(z, "z")
    g = checks.as_float_array(membership, "membership")
    checks.check_ndim(g, "membership", 2, "(m, n)")
    if g.shape[1] != z.shape[0]:
        raise ValueError(f"`membership` must have one column per row of `z` ({z.shape[0]}), "
                         f"got shape {tuple(g.shape)}.")
    g = checks.ensure(g, ~(jnp.isfinite(g) & (g >= 0)),
                      "`membership` must be finite and nonnegative.")
    eps = checks.check_positive_scalar(eps, "eps")
    for val, name in ((gamma, "gamma"), (reg, "reg")):
        if isinstance(val, (int, float)) and not isinstance(val, bool) and val < 0:
            raise ValueError(f"`{name}` must be >= 0, got {val}.")
    g = g.astype(z.dtype)
    out = -_rate(z, eps) + gamma * _rate_c(z, g, eps) + 0.5 * reg * jnp.sum(g * g)
    return _finite(out, "z")


def _finite(out, culprit):
    """NaN never leaks: valid inputs whose Gram matrix overflows raise, naming the input."""
    return checks.ensure(out, ~jnp.isfinite(out),
                         f"The coding rate is not finite in {out.dtype}: `{culprit}` is too "
                         f"large (its Gram matrix overflowed); rescale `{culprit}` (MLC uses "
                         "unit rows) or compute in float64.")


@with_summary_repr
class MLCResult(NamedTuple):
    """Result of [`mlc`][jaxclust.cluster.mlc].

    Attributes:
      labels: ``(n,)`` cluster of each point (spectral clustering of ``membership``).
      membership: ``(n, n)`` the learned doubly stochastic membership $\\Gamma$.
      features: ``(n, d)`` the learned unit representation $Z$.
      objective: the final MLC loss.
      losses: ``(steps,)`` the loss at every step (its decrease is the training trace).
    """

    labels: Int[Array, " n"]
    membership: Float[Array, "n n"]
    features: Float[Array, "n d"]
    objective: Float[Array, ""]
    losses: Float[Array, " steps"]


def _pca_basis(x, d):
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    _, _, vt = jnp.linalg.svd(xc, full_matrices=False)
    return vt[:d].T


# jitted at module level (static loop lengths): an eager `lax.scan` over a fresh closure
# would compile anew at every call (tests/test_compile.py)
@partial(jax.jit, static_argnums=(3, 4))
def _mlc_train(xc, a0, hyper, n_iter: int, steps: int):
    """The reference's SGD with momentum on ``(A, B)`` from ``(a0, a0)``: the objective,
    features, membership and the loss at every step."""
    (eps, eta, gamma, reg, learning_rate, learning_rate_head, weight_decay,
     weight_decay_head, momentum) = hyper

    def loss_fn(params):
        a, b = params
        z = _unit(jnp.matmul(xc, a, precision=HIGHEST))
        cu = _unit(jnp.matmul(xc, b, precision=HIGHEST))
        g = _sinkhorn_half_steps(jnp.abs(jnp.matmul(cu, cu.T, precision=HIGHEST)), eta, n_iter)
        # the reference's clusters are the columns of Gamma (it passes Gamma^T to the loss)
        out = -_rate(z, eps) + gamma * _rate_c(z, g.T, eps) + 0.5 * reg * jnp.sum(g * g)
        return out, (z, g)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    rates = (learning_rate, learning_rate_head)
    decays = (weight_decay, weight_decay_head)

    def step(carry, _):
        params, vel = carry
        (loss, _), grads = grad_fn(params)
        grads = tuple(gi + w * p for gi, w, p in zip(grads, decays, params))
        vel = tuple(momentum * v + gi for v, gi in zip(vel, grads))
        params = tuple(p - lr * v for p, lr, v in zip(params, rates, vel))
        return (params, vel), loss

    params0 = (a0, a0)
    vel0 = (jnp.zeros_like(a0), jnp.zeros_like(a0))
    (params, _), losses = jax.lax.scan(step, (params0, vel0), None, length=steps)
    objective, (z, g) = loss_fn(params)
    return objective, z, g, losses


def mlc(
    x: Float[Array, "n D"],
    k: int,
    *,
    key: PRNGKeyArray,
    d: int | None = None,
    eps: float = 0.1,
    gamma: float = 1.0,
    eta: float = 0.175,
    n_iter: int = 5,
    reg: float = 0.05,
    steps: int = 100,
    learning_rate: float = 0.003,
    learning_rate_head: float = 0.002,
    weight_decay: float = 1e-4,
    weight_decay_head: float = 5e-3,
    momentum: float = 0.9,
) -> MLCResult:
    r"""Cluster given features with MLC (module docstring): learn $Z = \mathrm{normalize}(XA)$
    and $C = \mathrm{normalize}(XB)$, $A = B$ = the top-$d$ principal directions at start,
    by ``steps`` of the reference's SGD (PyTorch ``optim.SGD`` semantics: $g \leftarrow
    \nabla + w\,\theta$, $v \leftarrow \mu v + g$, $\theta \leftarrow \theta - \alpha v$,
    one $(\alpha, w)$ pair per head) on [`mlc_loss`][jaxclust.cluster.mlc_loss]$(Z,
    \Gamma^\top)$ with $\Gamma$ = [`mlc_membership`][jaxclust.cluster.mlc_membership]$(C)$,
    then spectral clustering of $\Gamma$ into ``k`` clusters.

    Args:
      x: ``(n, D)`` features (centred inside).
      k: number of clusters (static).
      key: PRNG key of the spectral clustering's k-means.
      d: representation dimension (static; default ``min(D, n)``).
      eps: the precision $\epsilon$ of ``mlc_loss``.
      gamma: the weight $\gamma$ of the compression term of ``mlc_loss``.
      eta: the temperature $\eta$ of ``mlc_membership``.
      n_iter: the Sinkhorn half-steps of ``mlc_membership`` (static).
      reg: the Frobenius penalty $\lambda$ of ``mlc_loss``.
      steps: gradient steps (static; 0 clusters the PCA initialisation).
      learning_rate: SGD step $\alpha$ of the representation $A$ (0.003 in the reference).
      learning_rate_head: SGD step of the cluster head $B$ (0.002).
      weight_decay: weight decay $w \ge 0$ of $A$ (1e-4).
      weight_decay_head: weight decay of $B$ (5e-3).
      momentum: momentum $\mu$ in [0, 1) (0.9).

    Returns:
      An [`MLCResult`][jaxclust.cluster.MLCResult].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.cluster import mlc
      >>> k1, k2 = jax.random.split(jax.random.key(0))
      >>> t = jax.random.normal(k1, (40, 1))
      >>> e = jnp.eye(3)
      >>> x = jnp.concatenate([t[:20] * e[:1], t[20:] * e[1:2]])
      >>> res = mlc(x + 0.01 * jax.random.normal(k2, (40, 3)), 2, key=jax.random.key(1), steps=20)
      >>> int(jnp.sum(res.labels[:20] == res.labels[0]) + jnp.sum(res.labels[20:] != res.labels[0]))
      40

    References:
      Ding et al., "Unsupervised Manifold Linearizing and Clustering", ICCV 2023.
    """
    x = _features(x, "x")
    n, dim = x.shape
    checks.check_num_clusters(k, n)
    d = min(dim, n) if d is None else checks.check_int(d, "d", high=dim)
    checks.check_int(steps, "steps", low=0)
    checks.check_int(n_iter, "n_iter")
    key = checks.check_key(key)
    for val, name in ((eps, "eps"), (eta, "eta"), (learning_rate, "learning_rate"),
                      (learning_rate_head, "learning_rate_head")):
        checks.check_positive_scalar(val, name)
    for val, name in ((weight_decay, "weight_decay"), (weight_decay_head, "weight_decay_head")):
        if isinstance(val, (int, float)) and not isinstance(val, bool) and not val >= 0:
            raise ValueError(f"`{name}` must be >= 0, got {val}.")
    if isinstance(momentum, (int, float)) and not 0 <= momentum < 1:
        raise ValueError(f"`momentum` must lie in [0, 1), got {momentum}.")
    xc = x - jnp.mean(x, axis=0, keepdims=True)
    a0 = _pca_basis(x, d)
    hyper = tuple(jnp.asarray(v, x.dtype) for v in (
        eps, eta, gamma, reg, learning_rate, learning_rate_head, weight_decay,
        weight_decay_head, momentum))
    objective, z, g, losses = _mlc_train(xc, a0, hyper, n_iter, steps)
    sym = 0.5 * (g + g.T)
    labels = spectral(jax.lax.stop_gradient(sym), k, key=key, affinity="precomputed").labels
    return MLCResult(labels, g, z, objective, losses)
