"""Semi-supervised Gaussian mixture with split and merge (GPC, generalized category discovery).

The labelled points are clamped to their classes (components ``0 .. n_known - 1``); the
unlabelled points are explained by the known components and by free components whose number
is estimated by the split / merge moves of GPC (Zhao, Wen and Han, ICCV 2023), under a static
maximum number of components (an ``active`` mask).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp, multigammaln
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.results import with_summary_repr
from .mixture import _log_gaussian, _m_step

__all__ = ["SSGMMResult", "semi_supervised_gmm", "semi_supervised_gmm_predict"]

COVARIANCE_TYPES = ("full", "diag")
_MIN_SPLIT = 5  # the reference's guard: clusters / sub-clusters of <= 5 points never split
_SUB_ITERS = 20  # Lloyd steps of the 2-means that proposes a split
_SUB_INIT = 3  # k-means++ restarts of that 2-means (best inertia kept)
_INIT_ITERS = 20  # semi-supervised k-means steps of the initialisation


@with_summary_repr
class SSGMMResult(NamedTuple):
    """Result of [`semi_supervised_gmm`][jaxclust.cluster.semi_supervised_gmm] (a pytree).

    Components ``0 .. n_known - 1`` are the known classes; the others are free components,
    of which those with ``active`` True are in the model (the rest have zero weight and
    carry stale parameters).

    Attributes:
      means: component means, shape ``(max_components, d)``.
      covariances: ``(max_components, d, d)`` (``"full"``) or ``(max_components, d)``
        (``"diag"``), ``reg_covar`` included.
      weights: mixture weights ``(max_components,)``, zero on inactive components, summing
        to one.
      active: which components are in the model, ``(max_components,)``.
      responsibilities: ``p(z_i = j | x_i)`` under the returned parameters, one-hot on the
        labelled points, shape ``(n, max_components)``.
      labels: the class of every point: the given label for labelled points, the most
        probable active component for the others, shape ``(n,)``.
      n_components: number of active components (the estimated number of classes).
      objective: mean over the points of ``log p(x_i)`` (unlabelled) and
        ``log pi_y N(x_i | mu_y, Sigma_y)`` (labelled) under the returned parameters (the
        log-likelihood EM maximises); also readable as ``log_likelihood``.
      n_splits: splits performed over all rounds.
      n_merges: merges performed over all rounds.
      n_iters: EM iterations, all rounds together.
      converged: the final EM run (after the last split / merge round) stopped because
        the change of ``objective`` fell below ``tol``, also over its last M-step
        (from the previous parameters to the returned ones), and every returned array is
        finite.
    """

    means: Float[Array, "k d"]
    covariances: Float[Array, "..."]
    weights: Float[Array, " k"]
    active: Bool[Array, " k"]
    responsibilities: Float[Array, "n k"]
    labels: Int[Array, " n"]
    n_components: Int[Array, ""]
    objective: Float[Array, ""]
    n_splits: Int[Array, ""]
    n_merges: Int[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def log_likelihood(self) -> Float[Array, ""]:
        """Read-only alias of ``objective``."""
        return self.objective


class _Params(NamedTuple):
    means: Array
    cov: Array
    weights: Array
    active: Array


class _Prior(NamedTuple):
    """Normal-inverse-Wishart prior of the split / merge test (reference: ``NIW_prior``)."""

    m: Array  # prior mean (the data mean)
    psi: Array  # prior scale matrix (prior_scale * I)
    kappa: Array
    nu: Array


# --------------------------------------------------------------------------------------
# EM with clamped labels


def _log_joint(x, p: _Params, cov_type):
    """``log pi_j + log N(x_i | mu_j, Sigma_j)``, ``-inf`` on inactive components."""
    w = jnp.where(p.active, p.weights, 1.0)
    log_w = jnp.where(p.active & (p.weights > 0), jnp.log(w), -jnp.inf)
    return _log_gaussian(x, p.means, p.cov, cov_type) + log_w[None, :]


def _e_step(x, y, p: _Params, cov_type):
    """Mean log-likelihood and responsibilities with the labelled rows clamped one-hot."""
    k = p.means.shape[0]
    lj = _log_joint(x, p, cov_type)
    log_norm = logsumexp(lj, axis=1)
    lab = y >= 0
    onehot = jax.nn.one_hot(jnp.where(lab, y, 0), k, dtype=x.dtype)
    own = jnp.sum(jnp.where(onehot > 0, lj, 0.0), axis=1)
    ll = jnp.mean(jnp.where(lab, own, log_norm))
    resp = jnp.where(lab[:, None], onehot, jnp.exp(lj - log_norm[:, None]))
    return ll, resp


def _m_from_resp(x, resp, p: _Params, reg, cov_type):
    """Maximum-likelihood parameters of the active components; inactive ones keep theirs."""
    resp = resp * p.active[None, :]
    means, cov, _ = _m_step(x, jnp.ones(x.shape[0], x.dtype), resp, reg, cov_type)
    nk = jnp.sum(resp, axis=0)
    w = nk / jnp.sum(nk)
    act = p.active
    shape = (-1,) + (1,) * (cov.ndim - 1)
    return _Params(jnp.where(act[:, None], means, p.means),
                   jnp.where(act.reshape(shape), cov, p.cov), jnp.where(act, w, 0.0), act)


def _em(x, y, p: _Params, reg, tol, max_iter, cov_type):
    """EM to a change of the mean log-likelihood below ``tol`` (or ``max_iter`` steps).

    Returns the parameters, their log-likelihood, responsibilities, steps and whether the
    stop was by ``tol`` measured on the returned parameters."""

    def cond(c):
        _, ll, ll_prev, it = c
        return (it < max_iter) & ~(jnp.abs(ll - ll_prev) < tol)

    def body(c):
        p, ll, _, it = c
        ll_new, resp = _e_step(x, y, p, cov_type)
        return _m_from_resp(x, resp, p, reg, cov_type), ll_new, ll, it + 1

    inf = jnp.asarray(jnp.inf, x.dtype)
    p, ll_last, _, it = jax.lax.while_loop(cond, body, (p, inf, -inf, jnp.int32(0)))
    ll, resp = _e_step(x, y, p, cov_type)
    stopped = jnp.abs(ll - ll_last) < tol
    return p, ll, resp, it, stopped


# --------------------------------------------------------------------------------------
# split / merge test (reference: project_utils/split_and_merge_ops.py and cluster_utils.py)


def _niw_log_marginal(x, mask, mu, prior: _Prior):
    r"""The reference's NIW log marginal likelihood of the points ``mask`` around ``mu``.

    $$\kappa^* = \kappa + N,\ \nu^* = \nu + N,\ \Psi^* = \Psi + \sum_i (x_i-\mu)(x_i-\mu)^T
    + \tfrac{\kappa N}{\kappa^*} (\mu - m)(\mu - m)^T,$$
    $$\log p = -\tfrac{ND}{2}\log\pi + \log\Gamma_D(\nu^*/2) - \log\Gamma_D(\nu/2)
    + \tfrac{\nu}{2}\log|\Psi| - \tfrac{\nu^*}{2}\log|\Psi^*|
    + \tfrac{D}{2}(\log\kappa - \log\kappa^*).$$

    Batched: ``mask`` ``(b, n)`` and ``mu`` ``(b, d)`` give ``(b,)`` (one program for all
    the clusters of a round).
    """
    d = x.shape[1]
    n = jnp.sum(mask, axis=1)  # (b,)
    diff = x[None, :, :] - mu[:, None, :]  # (b, n, d)
    s = jnp.einsum("bn,bnd,bne->bde", mask, diff, diff, precision=jax.lax.Precision.HIGHEST)
    kappa_s = prior.kappa + n
    nu_s = prior.nu + n
    dm = mu - prior.m[None, :]
    psi_s = (prior.psi[None] + s
             + (prior.kappa * n / kappa_s)[:, None, None] * dm[:, :, None] * dm[:, None, :])
    chol = jnp.linalg.cholesky(psi_s)
    logdet_s = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
    logdet0 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(prior.psi))))
    return (-(n * d / 2.0) * math.log(math.pi) + multigammaln(nu_s / 2.0, d)
            - multigammaln(prior.nu / 2.0, d) + (prior.nu / 2.0) * logdet0
            - (nu_s / 2.0) * logdet_s + (d / 2.0) * (jnp.log(prior.kappa) - jnp.log(kappa_s)))


def _log_hastings_split(alpha, n1, n2, ll1, ll2, ll):
    """``log alpha + lgamma(N1) + L1 + lgamma(N2) + L2 - lgamma(N) - L`` (0 when a part is
    empty, as in the reference)."""
    h = (jnp.log(alpha) + gammaln(n1) + ll1 + gammaln(n2) + ll2) - (gammaln(n1 + n2) + ll)
    return jnp.where((n1 > 0) & (n2 > 0), h, 0.0)


def _log_hastings_merge(alpha, n1, n2, ll1, ll2, ll):
    """``lgamma(N) - log alpha - lgamma(N1) - lgamma(N2) + L - L1 - L2`` with
    ``lgamma(0) := 0`` (1 when both parts are empty, as in the reference)."""
    g1 = jnp.where(n1 > 0, gammaln(jnp.maximum(n1, 1.0)), 0.0)
    g2 = jnp.where(n2 > 0, gammaln(jnp.maximum(n2, 1.0)), 0.0)
    n = n1 + n2
    h = (gammaln(jnp.maximum(n, 1.0)) - (jnp.log(alpha) + g1 + g2)) + (ll - (ll1 + ll2))
    return jnp.where(n > 0, h, 1.0)


def _accept(h, prob, u):
    """The reference's rule: accept when ``H > 0``, else with probability ``prob`` (or
    ``exp(H)`` when ``prob`` is 0, its ``prob or exp(H)``)."""
    p = jnp.where(prob > 0, prob, jnp.exp(jnp.minimum(h, 0.0)))
    return (h > 0) | (u < p)


def _sample(weights, u):
    """Index drawn with probability proportional to ``weights`` (>= 0) by the uniform ``u``
    (inverse CDF; one draw of ``jax.random`` for all the samples of a round)."""
    c = jnp.cumsum(weights)
    return jnp.minimum(jnp.searchsorted(c, u * c[-1], side="right"), weights.shape[0] - 1)


def _two_means(x, mask, u):
    """2-means (k-means++ seeding, ``_SUB_INIT`` restarts, best inertia kept) of the points
    ``mask``, seeded by the uniforms ``u`` ``(_SUB_INIT, 2)``; returns the sub-assignment
    (0/1, meaningful on ``mask``)."""

    def one(uu):
        i1 = _sample(mask, uu[0])
        d2 = jnp.sum((x - x[i1][None, :]) ** 2, axis=1) * mask
        i2 = jnp.where(jnp.any(d2 > 0), _sample(d2, uu[1]), i1)
        c0 = jnp.stack([x[i1], x[i2]])

        def step(c, _):
            dist = jnp.sum((x[:, None, :] - c[None]) ** 2, axis=2)
            a = jax.nn.one_hot(jnp.argmin(dist, axis=1), 2, dtype=x.dtype) * mask[:, None]
            cnt = jnp.sum(a, axis=0)
            new = (a.T @ x) / jnp.maximum(cnt, 1.0)[:, None]
            return jnp.where(cnt[:, None] > 0, new, c), None

        c, _ = jax.lax.scan(step, c0, None, length=_SUB_ITERS)
        dist = jnp.sum((x[:, None, :] - c[None]) ** 2, axis=2)
        return jnp.argmin(dist, axis=1), jnp.sum(jnp.min(dist, axis=1) * mask)

    subs, inertia = jax.vmap(one)(u)
    return subs[jnp.argmin(inertia)]


def _split_merge(x, z, active, n_known, prior, alpha, split_prob, merge_prob, u, enabled):
    """One GPC split / merge round on the hard assignment ``z`` (labelled rows already at
    their class); ``u`` ``(k, 2 * _SUB_INIT + 2)`` uniforms. Returns the new assignment,
    the new active mask and the numbers of splits and merges (none when not ``enabled``)."""
    k = active.shape[0]
    dt = x.dtype
    idx = jnp.arange(k)
    free = (idx >= n_known) & active & enabled
    masks = (z[None, :] == idx[:, None]).astype(dt)  # (k, n)
    counts = jnp.sum(masks, axis=1)
    centroids = (masks @ x) / jnp.maximum(counts, 1.0)[:, None]

    def post(c, nn):  # the reference's compute_post_mus
        return (nn[:, None] * c + prior.kappa * prior.m[None, :]) / (nn[:, None] + prior.kappa)

    # ---- split: 2-means inside every free cluster, NIW marginal likelihoods
    subs = jax.vmap(_two_means, in_axes=(None, 0, 0))(
        x, masks, u[:, :2 * _SUB_INIT].reshape(k, _SUB_INIT, 2))
    m1 = masks * (subs == 0)
    m2 = masks * (subs == 1)
    n1, n2 = jnp.sum(m1, axis=1), jnp.sum(m2, axis=1)
    c1 = (m1 @ x) / jnp.maximum(n1, 1.0)[:, None]
    c2 = (m2 @ x) / jnp.maximum(n2, 1.0)[:, None]
    lml = _niw_log_marginal(x, jnp.concatenate([masks, m1, m2]),
                            jnp.concatenate([post(centroids, counts), post(c1, n1),
                                             post(c2, n2)]), prior).reshape(3, k)
    h_split = _log_hastings_split(alpha, n1, n2, lml[1], lml[2], lml[0])
    big = (counts > _MIN_SPLIT) & (n1 > _MIN_SPLIT) & (n2 > _MIN_SPLIT)
    want_split = free & big & _accept(h_split, split_prob, u[:, -2])

    def do_split(i, c):
        z, act, n_split = c
        slot = jnp.argmin(act)  # first inactive component
        ok = want_split[i] & ~act[slot]
        moved = (z == i) & (subs[i] == 1) & ok
        return jnp.where(moved, slot, z), act.at[slot].set(act[slot] | ok), n_split + ok

    z_new, act, n_split = jax.lax.fori_loop(0, k, do_split, (z, active, jnp.int32(0)))

    # ---- merge: every remaining free cluster with its nearest remaining neighbour
    cand = free & ~want_split & (counts > 0)
    d2 = jnp.sum((centroids[:, None, :] - centroids[None, :, :]) ** 2, axis=2)
    d2 = jnp.where(cand[None, :] & ~jnp.eye(k, dtype=bool), d2, jnp.inf)
    nn = jnp.argmin(d2, axis=1)
    has_nn = cand & jnp.isfinite(jnp.min(d2, axis=1))
    nb = counts[nn]
    ntot = counts + nb
    mu_pair = jnp.where((ntot > 0)[:, None],
                        (counts[:, None] * centroids + nb[:, None] * centroids[nn])
                        / jnp.maximum(ntot, 1.0)[:, None], 0.5 * (centroids + centroids[nn]))
    # raw centroids here, as the reference's merge_rule (posterior means only in the split)
    lml_m = _niw_log_marginal(x, jnp.concatenate([masks, masks + masks[nn]]),
                              jnp.concatenate([centroids, mu_pair]), prior).reshape(2, k)
    h_merge = _log_hastings_merge(alpha, counts, nb, lml_m[0], lml_m[0][nn], lml_m[1])
    want_merge = has_nn & _accept(h_merge, merge_prob, u[:, -1])

    def do_merge(i, c):
        z, act, used, n_merge = c
        j = nn[i]
        ok = want_merge[i] & ~used[i] & ~used[j]
        keep, drop = jnp.minimum(i, j), jnp.maximum(i, j)
        z = jnp.where(ok & (z == drop), keep, z)
        act = act.at[drop].set(act[drop] & ~ok)
        used = used.at[i].set(used[i] | ok).at[j].set(used[j] | ok)
        return z, act, used, n_merge + ok

    z_new, act, _, n_merge = jax.lax.fori_loop(
        0, k, do_merge, (z_new, act, jnp.zeros(k, bool), jnp.int32(0)))
    # a free component left without points leaves the model
    count = jnp.sum(z_new[None, :] == idx[:, None], axis=1)
    act = act & ((idx < n_known) | (count > 0))
    return z_new, act, n_split, n_merge


# --------------------------------------------------------------------------------------
# the solver


def _params_from_labels(x, y, z, active, reg, cov_type, template: _Params):
    k = active.shape[0]
    resp = jax.nn.one_hot(jnp.where(y >= 0, y, z), k, dtype=x.dtype)
    return _m_from_resp(x, resp, template._replace(active=active), reg, cov_type)


@functools.partial(jax.jit, static_argnames=("n_known", "max_components", "n_components",
                                             "n_rounds", "max_iter", "cov_type"))
def _fit(x, y, key, reg, tol, alpha, split_prob, merge_prob, kappa, nu, prior_scale, *,
         n_known, max_components, n_components, n_rounds, max_iter, cov_type):
    n, d = x.shape
    k = max_components
    dt = x.dtype
    lab = y >= 0
    # ridge floor relative to the data scale (as gmm): covariances stay positive definite
    centre = jnp.mean(x, axis=0)
    scale = jnp.mean(jnp.sum((x - centre[None, :]) ** 2, axis=1)) / d
    reg = jnp.maximum(reg, jnp.finfo(dt).eps * jnp.where(scale > 0, scale, 1.0))
    prior = _Prior(centre, prior_scale * jnp.eye(d, dtype=dt), kappa, nu)

    # init (reference: K_Means.fit_mix): known centres = labelled class means, the others by
    # k-means++ on the unlabelled points given them, then semi-supervised k-means
    onehot_lab = jax.nn.one_hot(jnp.where(lab, y, -1), k, dtype=dt)
    cnt = jnp.sum(onehot_lab, axis=0)
    centres = (onehot_lab.T @ x) / jnp.maximum(cnt, 1.0)[:, None]
    key, kinit = jax.random.split(key)
    u_init = jax.random.uniform(kinit, (k,), dt)

    def seed(i, centres):
        dist = jnp.min(jnp.where(jnp.arange(k)[None, :] < i,
                                 jnp.sum((x[:, None, :] - centres[None]) ** 2, axis=2),
                                 jnp.inf), axis=1)
        w = jnp.where(lab, 0.0, dist)
        w = jnp.where(jnp.any(w > 0), w, (~lab).astype(dt))
        return centres.at[i].set(x[_sample(w, u_init[i])])

    centres = jax.lax.fori_loop(n_known, n_components, seed, centres)
    active0 = jnp.arange(k) < n_components

    def lloyd(c, _):
        dist = jnp.sum((x[:, None, :] - c[None]) ** 2, axis=2)
        dist = jnp.where(active0[None, :], dist, jnp.inf)
        z = jnp.where(lab, y, jnp.argmin(dist, axis=1))
        a = jax.nn.one_hot(z, k, dtype=dt)
        m = jnp.sum(a, axis=0)
        return jnp.where(m[:, None] > 0, (a.T @ x) / jnp.maximum(m, 1.0)[:, None], c), None

    centres, _ = jax.lax.scan(lloyd, centres, None, length=_INIT_ITERS)
    dist = jnp.where(active0[None, :], jnp.sum((x[:, None, :] - centres[None]) ** 2, axis=2),
                     jnp.inf)
    z0 = jnp.argmin(dist, axis=1)
    cov0 = (jnp.broadcast_to(jnp.eye(d, dtype=dt), (k, d, d)) if cov_type == "full"
            else jnp.ones((k, d), dt))
    template = _Params(centres, cov0, jnp.zeros(k, dt), active0)
    count0 = jnp.sum(jnp.where(lab, y, z0)[None, :] == jnp.arange(k)[:, None], axis=1)
    active0 = active0 & ((jnp.arange(k) < n_known) | (count0 > 0))
    p = _params_from_labels(x, y, z0, active0, reg, cov_type, template)

    # rounds r = 0 .. n_rounds: split / merge on the previous EM fit (not at r = 0), then
    # EM; one EM and one split / merge program, the last EM fit is the one returned
    u = jax.random.uniform(key, (n_rounds + 1, k, 2 * _SUB_INIT + 2), dt)

    def round_(c, xs):
        p, resp, n_it, n_sp, n_me, _, _ = c
        r, ur = xs
        z = jnp.where(lab, y, jnp.argmax(jnp.where(p.active[None, :], resp, -1.0), axis=1))
        z2, act, s, m = _split_merge(x, z, p.active, n_known, prior, alpha, split_prob,
                                     merge_prob, ur, r > 0)
        changed = jnp.any(act != p.active) | jnp.any(z2 != z)
        p = jax.tree_util.tree_map(
            lambda a, b: jnp.where(changed, a, b),
            _params_from_labels(x, y, z2, act, reg, cov_type, p), p)
        p, ll, resp, it, stopped = _em(x, y, p, reg, tol, max_iter, cov_type)
        return (p, resp, n_it + it, n_sp + s, n_me + m, ll, stopped), None

    resp0 = jax.nn.one_hot(jnp.where(lab, y, z0), k, dtype=dt)
    init = (p, resp0, jnp.int32(0), jnp.int32(0), jnp.int32(0), jnp.asarray(0.0, dt),
            jnp.asarray(False))
    (p, resp, n_it, n_sp, n_me, ll, stopped), _ = jax.lax.scan(
        round_, init, (jnp.arange(n_rounds + 1), u))
    # a free component whose weight EM drove to zero is out of the model
    p = p._replace(active=p.active & ((jnp.arange(k) < n_known) | (p.weights > 0)))
    labels = jnp.where(lab, y, jnp.argmax(jnp.where(p.active[None, :], resp, -1.0), axis=1))
    finite = (jnp.all(jnp.isfinite(p.means)) & jnp.all(jnp.isfinite(p.cov))
              & jnp.all(jnp.isfinite(p.weights)) & jnp.all(jnp.isfinite(resp))
              & jnp.isfinite(ll))
    return SSGMMResult(p.means, p.cov, p.weights, p.active, resp, labels,
                       jnp.sum(p.active).astype(jnp.int32), ll, n_sp, n_me, n_it,
                       stopped & finite)


# --------------------------------------------------------------------------------------
# validation and public functions


def _check_x(x, name="x"):
    x = checks.as_float_array(x, name)
    checks.check_points(x, name)
    # half precision is computed in float32 (Cholesky factors, log-determinants), as gmm
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_cov_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"`covariance_type` must be one of {COVARIANCE_TYPES}, got "
                         f"{covariance_type!r}.")


def _scalar(value, name, dtype, *, low=None, low_open=True, high=None, hint=""):
    v = jnp.asarray(value, dtype)
    if v.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(v.shape)}.")
    bad = ~jnp.isfinite(v)
    if low is not None:
        bad = bad | ((v <= low) if low_open else (v < low))
    if high is not None:
        bad = bad | (v > high)
    rng = ("" if low is None else (f" > {low}" if low_open else f" >= {low}")) + (
        "" if high is None else f" and <= {high}")
    return checks.ensure(v, bad, f"`{name}` must be finite{rng}{hint}, got {value!r}.")


def semi_supervised_gmm(
    x: Float[Array, "n d"],
    labels: Int[Array, " n"],
    n_known: int,
    *,
    max_components: int,
    n_components: int,
    key: PRNGKeyArray,
    covariance_type: str = "full",
    n_rounds: int = 10,
    max_iter: int = 100,
    tol: float = 1e-4,
    reg_covar: float = 1e-6,
    alpha: float = 1.0,
    split_prob: float = 0.1,
    merge_prob: float = 0.1,
    prior_kappa: float = 1e-4,
    prior_nu: float | None = None,
    prior_scale: float = 0.005,
) -> SSGMMResult:
    r"""Semi-supervised Gaussian mixture with split / merge of the novel classes (GPC).

    Generalized category discovery: ``x`` holds labelled points of ``n_known`` known classes
    (``labels[i]`` in ``0 .. n_known - 1``) and unlabelled points (``labels[i] == -1``) of the
    known classes and of an unknown number of new ones. The model is a Gaussian mixture whose
    components ``0 .. n_known - 1`` are the known classes and whose other components are free.

    **EM with clamped labels.** The responsibilities of a labelled point are one-hot on its
    class, those of an unlabelled point are the posterior over the active components:

    $$r_{ij} = [j = y_i] \text{ (labelled)}, \qquad
    r_{ij} = \frac{\pi_j \mathcal N(x_i\mid\mu_j,\Sigma_j)}
    {\sum_{l\,\mathrm{active}} \pi_l \mathcal N(x_i\mid\mu_l,\Sigma_l)} \text{ (unlabelled)},$$

    and the M-step is the usual weighted maximum likelihood over all points, which
    maximises $\sum_{\mathrm{lab}} \log \pi_{y_i}\mathcal N(x_i\mid\mu_{y_i},\Sigma_{y_i})
    + \sum_{\mathrm{unlab}} \log \sum_j \pi_j \mathcal N(x_i\mid\mu_j,\Sigma_j)$.

    **Split / merge** (``n_rounds`` rounds, each after an EM run; the reference's rule).
    With the hard assignment, every free cluster $k$ of $N_k$ points is cut in two by
    2-means; with the normal-inverse-Wishart prior $(m, \kappa, \nu, \Psi)$ ($m$ the data
    mean, $\Psi$ = ``prior_scale`` $I$) and its log marginal likelihood $L(\cdot)$ around
    the posterior means, the split's log Hastings ratio is

    $$H_s = \log\alpha + \log\Gamma(N_1) + L_1 + \log\Gamma(N_2) + L_2 - \log\Gamma(N_k) - L_k.$$

    A free cluster that is not split is tested for a merge with its nearest (by centroid)
    non-split free cluster,
    $H_m = \log\Gamma(N_1 + N_2) - \log\alpha - \log\Gamma(N_1) - \log\Gamma(N_2)
    + L_{12} - L_1 - L_2$.
    A move is taken when $H > 0$, and otherwise with probability ``split_prob`` /
    ``merge_prob`` (``0``: with probability $e^H$, a Metropolis-Hastings step). Clusters
    or halves of at most 5 points never split. Known classes never split or merge. The
    number of active components is the estimate of the number of classes.

    Static shapes: all ``max_components`` components are carried; a split takes the first
    inactive slot (no split when none is left), a merge frees one; within a round each
    cluster merges at most once (pairs taken in index order).

    Differences from the reference code (DTennant/GPC, where the clustering between
    representation-learning epochs is semi-supervised k-means and split / merge is applied
    once per epoch from a fixed class number): here the clustering is the EM of a
    semi-supervised GMM as in the paper, the split / merge rounds alternate with EM and the
    number of components carries over between rounds; after a merge the merged cluster is
    re-estimated from its points (the reference appends the average of the two centres and
    keeps both, see its ``split_and_merge_op``).

    Not differentiable: the output is a piecewise-constant function of the data (hard
    assignments, random accept / reject); jit and vmap (over problems or keys) hold.
    [`semi_supervised_gmm_predict`][jaxclust.cluster.semi_supervised_gmm_predict] is
    differentiable.

    Args:
      x: points ``(n, d)`` (float16 / bfloat16 are computed in float32).
      labels: ``(n,)`` integers, the class ``0 .. n_known - 1`` of the labelled points and
        ``-1`` for the unlabelled ones; every known class needs a labelled point.
      n_known: number of known classes (static).
      max_components: static upper bound on the number of components, ``> n_known``.
      n_components: initial guess of the number of classes (known + new), static,
        ``n_known < n_components <= max_components``.
      key: PRNG key (initialisation, 2-means proposals, random acceptance).
      covariance_type: ``"full"`` or ``"diag"`` (of the EM; the split / merge test uses the
        full NIW marginal likelihood, as the reference).
      n_rounds: split / merge rounds (static); 0 gives the semi-supervised GMM alone.
      max_iter: EM iterations per run (static), ``n_rounds + 1`` runs.
      tol: stop EM when the mean log-likelihood changes by less.
      reg_covar: added to the covariance diagonals.
      alpha: concentration $\alpha$ of the Hastings ratios (reference: 1).
      split_prob: probability of a split with $H_s \le 0$ (reference: 0.1).
      merge_prob: probability of a merge with $H_m \le 0$ (reference: 0.1).
      prior_kappa: NIW $\kappa$ (reference: 1e-4).
      prior_nu: NIW $\nu > d - 1$ (``None``: $d + 1$, the reference's "at least
        feat_dim + 1").
      prior_scale: $\Psi$ is ``prior_scale`` times the identity (reference: 0.005, for
        L2-normalised features; scale it with the per-dimension variance of your data).

    Returns:
      An [`SSGMMResult`][jaxclust.cluster.SSGMMResult].

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from jaxclust.cluster import semi_supervised_gmm
      >>> rng = np.random.default_rng(0)
      >>> centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])
      >>> x = np.concatenate([c + rng.normal(size=(40, 2)) for c in centres])
      >>> y = np.repeat(np.arange(4), 40)
      >>> labels = np.where((y < 2) & (np.arange(160) % 2 == 0), y, -1)  # classes 0, 1 known
      >>> res = semi_supervised_gmm(jnp.asarray(x), jnp.asarray(labels), 2, max_components=6,
      ...                           n_components=6, key=jax.random.key(0), prior_scale=1.0,
      ...                           split_prob=0.0, merge_prob=0.0)  # guess: 6 classes
      >>> int(res.n_components), int(res.n_merges)
      (4, 2)

    References:
      Zhao, Wen and Han, "Learning Semi-supervised Gaussian Mixture Models for Generalized
      Category Discovery", ICCV 2023; reference code https://github.com/DTennant/GPC.
    """
    x = _check_x(x)
    n, d = x.shape
    _check_cov_type(covariance_type)
    checks.check_int(n_known, "n_known", low=1)
    checks.check_int(max_components, "max_components", low=n_known + 1)
    checks.check_int(n_components, "n_components", low=n_known + 1, high=max_components)
    checks.check_int(n_rounds, "n_rounds", low=0)
    checks.check_int(max_iter, "max_iter", low=1)
    if max_components > n:
        raise ValueError(f"`max_components` ({max_components}) must not exceed the number of "
                         f"points ({n}).")
    key = checks.check_key(key)
    if labels is None:
        raise ValueError("`labels` is None; pass an integer array with the class of each "
                         "labelled row of `x` and -1 for the unlabelled ones.")
    y = jnp.asarray(labels)
    if y.shape != (n,) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"`labels` must be an integer array of shape ({n},) (class or -1 per "
                         f"row of `x`), got {y.dtype} {tuple(y.shape)}.")
    y = y.astype(jnp.int32)
    y = checks.ensure(y, (y < -1) | (y >= n_known),
                      f"`labels` must hold -1 (unlabelled) or a known class in 0..{n_known - 1}"
                      f"; relabel the known classes 0..n_known-1.")
    present = jnp.any(y[None, :] == jnp.arange(n_known)[:, None], axis=1)
    y = checks.ensure(y, ~present, "`labels`: every known class 0..n_known-1 needs at least "
                      "one labelled point; lower `n_known` or relabel the classes.")
    y = checks.ensure(y, jnp.sum(y < 0) < 1, "`labels` has no unlabelled point (-1); nothing "
                      "to cluster.")
    x = checks.ensure(x, ~jnp.all(jnp.isfinite(x)), "`x` contains NaN or Inf; drop or impute "
                      "those rows.")
    dt = x.dtype
    nu = float(d + 1) if prior_nu is None else prior_nu
    args = (
        _scalar(reg_covar, "reg_covar", dt, low=0.0, low_open=False),
        _scalar(tol, "tol", dt, low=0.0),
        _scalar(alpha, "alpha", dt, low=0.0),
        _scalar(split_prob, "split_prob", dt, low=0.0, low_open=False, high=1.0),
        _scalar(merge_prob, "merge_prob", dt, low=0.0, low_open=False, high=1.0),
        _scalar(prior_kappa, "prior_kappa", dt, low=0.0),
        _scalar(nu, "prior_nu", dt, low=d - 1.0),
        _scalar(prior_scale, "prior_scale", dt, low=0.0),
    )
    return _fit(x, y, key, *args, n_known=n_known, max_components=max_components,
                n_components=n_components, n_rounds=n_rounds, max_iter=max_iter,
                cov_type=covariance_type)


def semi_supervised_gmm_predict(
    x: Float[Array, "m d"],
    means: Float[Array, "k d"],
    covariances: Float[Array, "..."],
    weights: Float[Array, " k"],
    *,
    covariance_type: str = "full",
) -> tuple[Int[Array, " m"], Float[Array, "m k"]]:
    r"""Classes of new points under a fitted semi-supervised mixture.

    $l_i = \arg\max_j \pi_j \mathcal N(x_i\mid\mu_j,\Sigma_j)$ over the components with
    positive weight (the inactive components of
    [`SSGMMResult`][jaxclust.cluster.SSGMMResult] have weight zero), and the log
    responsibilities $\log r_{ij}$ ($-\infty$ on zero-weight components). Differentiable in
    ``x`` and the parameters.

    Args:
      x: new points ``(m, d)``.
      means: ``SSGMMResult.means`` ``(k, d)``.
      covariances: ``SSGMMResult.covariances``, ``(k, d, d)`` or ``(k, d)``.
      weights: ``SSGMMResult.weights`` ``(k,)``, non-negative, not all zero.
      covariance_type: the value used for the fit.

    Returns:
      ``(labels, log_resp)`` of shapes ``(m,)`` and ``(m, k)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxclust.cluster import semi_supervised_gmm_predict
      >>> lab, _ = semi_supervised_gmm_predict(
      ...     jnp.asarray([[0.1, 0.0], [2.9, 0.0]]), jnp.asarray([[0.0, 0.0], [3.0, 0.0],
      ...     [9.0, 9.0]]), jnp.ones((3, 2)), jnp.asarray([0.5, 0.5, 0.0]),
      ...     covariance_type="diag")
      >>> lab.tolist()
      [0, 1]
    """
    x = _check_x(x)
    _check_cov_type(covariance_type)
    m, d = x.shape
    means = checks.as_float_array(means, "means", dtype=x.dtype)
    if means.ndim != 2 or means.shape[1] != d:
        raise ValueError(f"`means` must have shape (k, {d}) to match `x`, got "
                         f"{tuple(means.shape)}.")
    k = means.shape[0]
    cov = checks.as_float_array(covariances, "covariances", dtype=x.dtype)
    want = (k, d, d) if covariance_type == "full" else (k, d)
    if cov.shape != want:
        raise ValueError(f"`covariances` must have shape {want} for covariance_type="
                         f"{covariance_type!r}, got {tuple(cov.shape)}.")
    w = checks.as_float_array(weights, "weights", dtype=x.dtype)
    if w.shape != (k,):
        raise ValueError(f"`weights` must have shape ({k},), got {tuple(w.shape)}.")
    w = checks.ensure(w, (w < 0) | ~jnp.isfinite(w) | (jnp.sum(w) <= 0),
                      "`weights` must be finite, non-negative and not all zero.")
    x = checks.ensure(x, ~jnp.all(jnp.isfinite(x)), "`x` contains NaN or Inf.")
    return _predict(x, means, cov, w, cov_type=covariance_type)


@functools.partial(jax.jit, static_argnames="cov_type")
def _predict(x, means, cov, w, *, cov_type):
    p = _Params(means, cov, w, w > 0)
    lj = _log_joint(x, p, cov_type)
    log_resp = lj - logsumexp(lj, axis=1, keepdims=True)
    return jnp.argmax(lj, axis=1), log_resp

