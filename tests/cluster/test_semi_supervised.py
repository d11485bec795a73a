"""Semi-supervised GMM with split / merge (GPC) against independent NumPy oracles.

Reference: github.com/DTennant/GPC @ 4f6b641962dcaf1573284e5b0fe0a59a417d5627 (ICCV 2023,
"Learning Semi-supervised Gaussian Mixture Models for Generalized Category Discovery"):

* ``project_utils/cluster_utils.py`` (``NIW_prior``): ``compute_params_post`` -
  ``kappa* = kappa + N``, ``nu* = nu + N``, ``Psi* = Psi + (X - mu)^T (X - mu)
  + kappa N / kappa* (mu - m)(mu - m)^T``; ``log_marginal_likelihood`` -
  ``-(N D / 2) log pi + lmvgamma(nu*/2, D) - lmvgamma(nu/2, D) + nu/2 logdet Psi
  - nu*/2 logdet Psi* + D/2 (log kappa - log kappa*)``; ``compute_post_mus`` -
  ``(N mu + kappa m) / (N + kappa)``; ``init_priors`` - ``m`` the data mean,
  ``Psi = prior_sigma_scale I``; defaults kappa 1e-4, nu = feat_dim + 1, scale 0.005.
* ``project_utils/split_and_merge_ops.py``: ``log_Hastings_ratio_split`` - ``H = log alpha
  + lgamma(N1) + L1 + lgamma(N2) + L2 - lgamma(N) - L`` (0 if a half is empty), accept when
  ``H > 0 or (split_prob or exp(H)) > U``; ``log_Hastings_ratio_merge`` - ``H = lgamma(N)
  - (log alpha + lgamma(N1) + lgamma(N2)) + L - (L1 + L2)`` with ``lgamma(0) := 0``.
* ``methods/contrastive_training/gmm_sm.py``: ``split_rule`` (no split for clusters or
  halves of <= 5 points; L around the posterior means of the cluster and of its 2-means
  halves), ``merge_rule`` (each non-split cluster with its nearest non-split cluster;
  L around the raw centroids and their count-weighted mean), only unlabelled clusters.

The EM step with clamped labels is checked against the paper's formulas (the reference
code's clustering is its hard limit, semi-supervised k-means): labelled responsibilities
one-hot, unlabelled ones the posterior over active components, weighted ML M-step. The
oracles below are written from these formulas with numpy/scipy (slogdet, multigammaln,
math.lgamma); all comparisons in float64.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import multigammaln
from scipy.stats import multivariate_normal

from jaxclust.cluster import semi_supervised as ss, semi_supervised_gmm, semi_supervised_gmm_predict
from tests.utils import enable_x64

# ----------------------------------------------------------------------------- oracles


def _oracle_em_step(x, y, means, covs, w, active, reg, full):
    n, d = x.shape
    k = len(w)
    logp = np.full((n, k), -np.inf)
    for j in range(k):
        if active[j]:
            cov = covs[j] if full else np.diag(covs[j])
            logp[:, j] = np.log(w[j]) + multivariate_normal(means[j], cov).logpdf(x)
    lse = np.log(np.exp(logp - logp.max(1, keepdims=True)).sum(1)) + logp.max(1)
    r = np.exp(logp - lse[:, None])
    ll = np.where(y >= 0, logp[np.arange(n), np.maximum(y, 0)], lse).mean()
    r[y >= 0] = np.eye(k)[y[y >= 0]]
    nk = r.sum(0)
    mu = np.where(active[:, None], (r.T @ x) / np.maximum(nk, 1e-300)[:, None], means)
    new_cov = []
    for j in range(k):
        if not active[j]:
            new_cov.append(covs[j])
            continue
        diff = x - mu[j]
        c = (r[:, j, None] * diff).T @ diff / nk[j] + reg * np.eye(d)
        new_cov.append(c if full else np.diag(c))
    return ll, r, mu, np.array(new_cov), np.where(active, nk / nk.sum(), 0.0)


def _oracle_lml(xk, mu, m, psi, kappa, nu):
    n, d = xk.shape
    kappa_s, nu_s = kappa + n, nu + n
    diff = xk - mu
    psi_s = psi + diff.T @ diff + kappa * n / kappa_s * np.outer(mu - m, mu - m)
    return (-(n * d / 2) * math.log(math.pi) + multigammaln(nu_s / 2, d)
            - multigammaln(nu / 2, d) + nu / 2 * np.linalg.slogdet(psi)[1]
            - nu_s / 2 * np.linalg.slogdet(psi_s)[1] + d / 2 * (math.log(kappa)
                                                               - math.log(kappa_s)))


def _oracle_post_mu(xk, m, kappa):
    return (len(xk) * xk.mean(0) + kappa * m) / (len(xk) + kappa)


def _oracle_split_h(x1, x2, m, psi, kappa, nu, alpha=1.0):
    xk = np.r_[x1, x2]
    ll = _oracle_lml(xk, _oracle_post_mu(xk, m, kappa), m, psi, kappa, nu)
    l1 = _oracle_lml(x1, _oracle_post_mu(x1, m, kappa), m, psi, kappa, nu)
    l2 = _oracle_lml(x2, _oracle_post_mu(x2, m, kappa), m, psi, kappa, nu)
    n1, n2 = len(x1), len(x2)
    return (math.log(alpha) + math.lgamma(n1) + l1 + math.lgamma(n2) + l2
            - math.lgamma(n1 + n2) - ll)


def _oracle_merge_h(x1, x2, m, psi, kappa, nu, alpha=1.0):
    n1, n2 = len(x1), len(x2)
    c1, c2 = x1.mean(0), x2.mean(0)
    mu = (n1 * c1 + n2 * c2) / (n1 + n2)
    ll = _oracle_lml(np.r_[x1, x2], mu, m, psi, kappa, nu)
    l1 = _oracle_lml(x1, c1, m, psi, kappa, nu)
    l2 = _oracle_lml(x2, c2, m, psi, kappa, nu)
    return (math.lgamma(n1 + n2) - (math.log(alpha) + math.lgamma(n1) + math.lgamma(n2))
            + ll - (l1 + l2))


def _blobs(centres, m, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + scale * rng.normal(size=(m, len(c))) for c in centres])
    return x, np.repeat(np.arange(len(centres)), m)


# ----------------------------------------------------------------------------- EM step


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_em_step_with_clamped_labels_matches_oracle(cov_type):
    rng = np.random.default_rng(1)
    n, d, k = 30, 3, 5
    x = rng.normal(size=(n, d))
    y = np.where(rng.random(n) < 0.4, rng.integers(0, 2, n), -1)
    means = rng.normal(size=(k, d))
    if cov_type == "full":
        a = rng.normal(size=(k, d, d))
        covs = a @ a.transpose(0, 2, 1) + np.eye(d)
    else:
        covs = rng.uniform(0.5, 2.0, size=(k, d))
    w = np.array([0.3, 0.2, 0.25, 0.25, 0.0])
    active = np.array([True, True, True, True, False])
    reg = 1e-3
    ll_o, r_o, mu_o, cov_o, w_o = _oracle_em_step(x, y, means, covs, w, active, reg,
                                                  cov_type == "full")
    with enable_x64():
        p = ss._Params(jnp.asarray(means), jnp.asarray(covs), jnp.asarray(w),
                       jnp.asarray(active))
        ll, r = jax.jit(ss._e_step, static_argnums=3)(jnp.asarray(x), jnp.asarray(y), p,
                                                      cov_type)
        q = jax.jit(ss._m_from_resp, static_argnums=4)(jnp.asarray(x), r, p, reg, cov_type)
        # float64: agreement to rounding (largest difference seen ~1e-14)
        np.testing.assert_allclose(float(ll), ll_o, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(r), r_o, atol=1e-12)
        np.testing.assert_allclose(np.asarray(q.means), mu_o, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(q.cov), cov_o, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(q.weights), w_o, rtol=1e-12, atol=1e-15)
        # labelled rows are one-hot on their class (clamped)
        assert np.all(np.asarray(r)[y >= 0].argmax(1) == y[y >= 0])


def test_em_converged_is_measured_on_the_returned_parameters():
    """``_em`` (the EM runs of the fit): stopped by ``tol`` only when the log-likelihood of
    the returned parameters differs from the previous one by less than ``tol``."""
    x, _, labels = _problem()
    k, tol = 6, 1e-4
    p0 = ss._Params(jnp.asarray(np.array(_CENTRES + [[3.0, 3.0], [9.0, 9.0]]) + 0.5, jnp.float32),
                    jnp.ones((k, 2), jnp.float32), jnp.full((k,), 0.25, jnp.float32),
                    jnp.arange(k) < 4)
    em = jax.jit(lambda it: ss._em(jnp.asarray(x), jnp.asarray(labels), p0, 1e-6, tol, it,
                                   "diag"))
    e_step = jax.jit(ss._e_step, static_argnums=3)
    _, ll1, _, n1, stop1 = em(1)
    p, ll, resp, n, stop = em(200)
    assert int(n1) == 1 and not bool(stop1)  # one step from a shifted start: not converged
    assert bool(stop) and 1 < int(n) < 200
    ll_again, resp_again = e_step(jnp.asarray(x), jnp.asarray(labels), p, "diag")
    assert float(ll_again) == float(ll)  # the reported value is that of the returned fit
    np.testing.assert_allclose(np.asarray(resp_again), np.asarray(resp))
    # one more EM step changes the log-likelihood by less than tol (float32: the change is
    # ~1e-5 of |ll| ~ 4, well above rounding)
    q = ss._m_from_resp(jnp.asarray(x), resp, p, 1e-6, "diag")
    ll_next, _ = e_step(jnp.asarray(x), jnp.asarray(labels), q, "diag")
    assert abs(float(ll_next) - float(ll)) < tol
    assert np.all(np.asarray(p.weights)[4:] == 0)  # inactive components keep zero weight


# ----------------------------------------------------------------------------- split / merge


def test_niw_marginal_and_hastings_ratios_match_oracle():
    x1, _ = _blobs([[0.0, 0.0]], 20, seed=2)
    x2, _ = _blobs([[5.0, 1.0]], 15, seed=3)
    x = np.r_[x1, x2]
    m, psi, kappa, nu = x.mean(0), 0.3 * np.eye(2), 1e-4, 3.0
    with enable_x64():
        prior = ss._Prior(jnp.asarray(m), jnp.asarray(psi), jnp.asarray(kappa),
                          jnp.asarray(nu))
        masks = np.stack([np.r_[np.ones(20), np.zeros(15)], np.r_[np.zeros(20), np.ones(15)],
                          np.ones(35)])
        mus = np.stack([x1.mean(0), x2.mean(0), _oracle_post_mu(x, m, kappa)])
        niw = jax.jit(ss._niw_log_marginal)
        got = np.asarray(niw(jnp.asarray(x), jnp.asarray(masks), jnp.asarray(mus), prior))
        want = [_oracle_lml(x1, mus[0], m, psi, kappa, nu),
                _oracle_lml(x2, mus[1], m, psi, kappa, nu),
                _oracle_lml(x, mus[2], m, psi, kappa, nu)]
        np.testing.assert_allclose(got, want, rtol=1e-12)

        def post(xk):
            return jnp.asarray(_oracle_post_mu(xk, m, kappa))[None]

        def lml(xk, mu):
            # padded to the 35 rows of x (mask 0): one compilation for all the calls
            xp = np.r_[xk, np.zeros((35 - len(xk), 2))]
            mask = (np.arange(35) < len(xk)).astype(float)[None]
            return niw(jnp.asarray(xp), jnp.asarray(mask), mu, prior)[0]

        h_split = ss._log_hastings_split(1.0, 20.0, 15.0, lml(x1, post(x1)), lml(x2, post(x2)),
                                         lml(x, post(x)))
        h_merge = ss._log_hastings_merge(1.0, 20.0, 15.0, lml(x1, x1.mean(0)[None]),
                                         lml(x2, x2.mean(0)[None]),
                                         lml(x, jnp.asarray(x.mean(0))[None]))
        hs_o = _oracle_split_h(x1, x2, m, psi, kappa, nu)
        hm_o = _oracle_merge_h(x1, x2, m, psi, kappa, nu)
        np.testing.assert_allclose(float(h_split), hs_o, rtol=1e-10)
        np.testing.assert_allclose(float(h_merge), hm_o, rtol=1e-10)
        # two separated blobs: split favoured, merge rejected (hand-made case)
        assert hs_o > 0 and hm_o < 0
        # the reference's empty-half conventions
        assert float(ss._log_hastings_split(1.0, 0.0, 9.0, 1.0, 2.0, 3.0)) == 0.0
        assert float(ss._log_hastings_merge(1.0, 0.0, 0.0, 1.0, 2.0, 3.0)) == 1.0
        # acceptance: H > 0, else the coin (prob) or exp(H) when prob is 0
        acc = ss._accept(jnp.asarray([1.0, -1.0, -1.0, -1.0]), jnp.asarray([0.1, 0.1, 0.0, 0.0]),
                         jnp.asarray([0.99, 0.05, 0.30, 0.40]))
        assert np.asarray(acc).tolist() == [True, True, True, False]  # exp(-1) = 0.368


@pytest.mark.slow  # ~2 s of compilation; the decision rule itself is checked in the fast test
def test_split_merge_round_on_hand_made_assignment():
    """Cluster 2 holds two far blobs (must split), clusters 3 and 4 are the halves of one
    blob (must merge), cluster 0 / 1 are known; decisions equal the oracle's signs."""
    cs = [[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0], [16.0, 0.0]]
    x, blob = _blobs(cs, 12, seed=4, scale=0.6)
    z = np.array([0, 1, 2, 2, 3], int)[blob]
    half = (blob == 4) & (np.arange(len(x)) % 2 == 0)
    z[half] = 4
    m, psi, kappa, nu = x.mean(0), 0.5 * np.eye(2), 1e-4, 3.0
    hs = _oracle_split_h(x[blob == 2], x[blob == 3], m, psi, kappa, nu)
    hm = _oracle_merge_h(x[(blob == 4) & ~half], x[half], m, psi, kappa, nu)
    assert hs > 0 and hm > 0
    k = 7
    with enable_x64():
        prior = ss._Prior(jnp.asarray(m), jnp.asarray(psi), jnp.asarray(kappa),
                          jnp.asarray(nu))
        u = jnp.full((k, 2 * ss._SUB_INIT + 2), 0.5).at[:, -2:].set(0.99)  # no coin flips
        z2, act, n_split, n_merge = jax.jit(ss._split_merge, static_argnums=3)(
            jnp.asarray(x), jnp.asarray(z), jnp.arange(k) < 5, 2, prior, 1.0, 0.0, 0.0, u,
            jnp.asarray(True))
    z2, act = np.asarray(z2), np.asarray(act)
    assert int(n_split) == 1 and int(n_merge) == 1
    # blob 3 moved to the first free slot (5), blob 4 reunited in cluster 3
    assert act.tolist() == [True, True, True, True, False, True, False]
    assert len(set(z2[blob == 2])) == 1 and len(set(z2[blob == 3])) == 1
    assert {z2[blob == 2][0], z2[blob == 3][0]} == {2, 5}
    assert set(z2[blob == 4]) == {3}


# ----------------------------------------------------------------------------- end to end


_CENTRES = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]]


def _problem():
    x, y = _blobs(_CENTRES, 30, seed=0)
    labels = np.where((y < 2) & (np.arange(len(y)) % 2 == 0), y, -1)
    return x.astype(np.float32), y, labels


def test_fit_recovers_new_classes_and_their_number_under_vmap_over_keys():
    x, y, labels = _problem()

    def fit(key):
        return semi_supervised_gmm(jnp.asarray(x), jnp.asarray(labels), 2, max_components=6,
                                   n_components=6, key=key, covariance_type="diag",
                                   prior_scale=1.0, split_prob=0.0, merge_prob=0.0,
                                   n_rounds=4)

    res = jax.jit(jax.vmap(fit))(jax.random.split(jax.random.key(0), 2))
    from jaxclust.metrics import clustering_accuracy

    for b in range(2):
        r = jax.tree_util.tree_map(lambda t, b=b: t[b], res)
        # from a guess of 6 classes the merges reach the true 4
        assert int(r.n_components) == 4 and bool(r.converged)
        lab = np.asarray(r.labels)
        assert np.all(lab[labels >= 0] == labels[labels >= 0])  # clamped
        assert clustering_accuracy(y, lab) > 0.95
        w = np.asarray(r.weights)
        assert abs(w.sum() - 1) < 1e-5 and np.all(w[~np.asarray(r.active)] == 0)
        # predict on the training points reproduces the labels of the unlabelled ones
        pl, lr = semi_supervised_gmm_predict(jnp.asarray(x), r.means, r.covariances,
                                             r.weights, covariance_type="diag")
        assert np.all(np.asarray(pl)[labels < 0] == lab[labels < 0])
        assert np.all(np.isneginf(np.asarray(lr)[:, ~np.asarray(r.active)]))


# ----------------------------------------------------------------------------- bad input


def _call(**kw):
    x, _, labels = _problem()
    args = dict(x=jnp.asarray(x), labels=jnp.asarray(labels), n_known=2, max_components=6,
                n_components=4, key=jax.random.key(0))
    args.update(kw)
    x_, lab_, nk = args.pop("x"), args.pop("labels"), args.pop("n_known")
    return semi_supervised_gmm(x_, lab_, nk, **args)


@pytest.mark.parametrize("kw, match", [
    (dict(x=jnp.full((120, 2), jnp.nan)), "`x` contains NaN"),
    (dict(x=jnp.ones(5)), "`x`"),
    (dict(labels=jnp.zeros(7, int)), "`labels` must be an integer array of shape"),
    (dict(labels=jnp.zeros(120)), "`labels` must be an integer array"),
    (dict(labels=jnp.full(120, 5)), "`labels` must hold -1"),
    (dict(labels=jnp.where(jnp.arange(120) < 3, 0, -1)), "every known class"),
    (dict(labels=jnp.zeros(120, int).at[1].set(1)), "no unlabelled point"),
    (dict(n_known=0), "`n_known`"),
    (dict(max_components=2), "`max_components`"),
    (dict(max_components=500, n_components=4), "`max_components`"),
    (dict(n_components=2), "`n_components`"),
    (dict(n_components=7), "`n_components`"),
    (dict(covariance_type="tied"), "`covariance_type`"),
    (dict(tol=0.0), "`tol`"),
    (dict(reg_covar=-1.0), "`reg_covar`"),
    (dict(alpha=0.0), "`alpha`"),
    (dict(split_prob=1.5), "`split_prob`"),
    (dict(merge_prob=-0.1), "`merge_prob`"),
    (dict(prior_kappa=0.0), "`prior_kappa`"),
    (dict(prior_nu=0.5), "`prior_nu`"),
    (dict(prior_scale=-1.0), "`prior_scale`"),
    (dict(n_rounds=-1), "`n_rounds`"),
    (dict(max_iter=0), "`max_iter`"),
    (dict(key=0), "`key`"),
])
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        _call(**kw)


@pytest.mark.parametrize("args, kw, match", [
    ((jnp.ones((3, 2)), jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones(2)), {}, "`means`"),
    ((jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.ones((2, 2)), jnp.ones(2)), {}, "`covariances`"),
    ((jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.ones((2, 2)), jnp.ones(3)),
     dict(covariance_type="diag"), "`weights` must have shape"),
    ((jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.ones((2, 2)), jnp.asarray([1.0, -1.0])),
     dict(covariance_type="diag"), "`weights` must be finite, non-negative"),
    ((jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.ones((2, 2)), jnp.ones(2)),
     dict(covariance_type="spherical"), "`covariance_type`"),
])
def test_predict_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match):
        semi_supervised_gmm_predict(*args, **kw)


def test_predict_half_precision_computes_in_float32():
    x = jnp.asarray([[0.1, 0.0], [2.9, 0.0], [8.0, 9.5]])
    means = jnp.asarray([[0.0, 0.0], [3.0, 0.0], [9.0, 9.0]])
    w = jnp.asarray([0.5, 0.5, 0.0])
    lab, lr = semi_supervised_gmm_predict(x.astype(jnp.bfloat16), means, jnp.ones((3, 2)), w,
                                          covariance_type="diag")
    assert lr.dtype == jnp.float32 and lab.tolist() == [0, 1, 1]  # zero weight: never chosen
