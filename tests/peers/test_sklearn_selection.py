"""Model-selection metrics against scikit-learn 1.9 (``sklearn.metrics``) and an independent
NumPy oracle of the expected mutual information.

Peer: scikit-learn ``sklearn/metrics/cluster/_unsupervised.py`` (silhouette_samples,
calinski_harabasz_score, davies_bouldin_score) and ``_supervised.py`` /
``_expected_mutual_info_fast.pyx`` (adjusted_mutual_info_score). The EMI oracle below is
written from Vinh, Epps and Bailey, JMLR 11 (2010), eq. 24a, with log-factorials (SciPy
``gammaln``), not from scikit-learn's code; jaxclust uses a ratio recurrence instead.

Tolerances: float64 runs agree to 1e-10 relative (summation order only), except
scikit-learn's Davies-Bouldin (its centroid distances by the dot-product expansion: 1e-8,
and 1e-12 against a direct-difference oracle). float32: the
geometric scores sum n ~ 40 float32 distances (1e-5); AMI subtracts E[I] from I, both
O(1) nats computed to ~1e-6: 2e-5 absolute on the ratio.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln
from sklearn import metrics as skm

from jaxclust.metrics import (
    adjusted_mutual_info,
    calinski_harabasz,
    davies_bouldin,
    silhouette_samples,
)

from ..utils import enable_x64

AVERAGES = ["arithmetic", "geometric", "min", "max"]


def _emi_oracle(labels_true, labels_pred):
    """E[I] from eq. 24a with log-factorials, float64."""
    a = np.bincount(labels_true).astype(float)
    b = np.bincount(labels_pred).astype(float)
    a, b = a[a > 0], b[b > 0]
    n = float(len(labels_true))
    total = 0.0
    for ai in a:
        for bj in b:
            for m in range(int(max(1, ai + bj - n)), int(min(ai, bj)) + 1):
                logp = (gammaln(ai + 1) + gammaln(bj + 1) + gammaln(n - ai + 1)
                        + gammaln(n - bj + 1) - gammaln(n + 1) - gammaln(m + 1)
                        - gammaln(ai - m + 1) - gammaln(bj - m + 1)
                        - gammaln(n - ai - bj + m + 1))
                total += m / n * np.log(n * m / (ai * bj)) * np.exp(logp)
    return total


def _label_pairs():
    rng = np.random.default_rng(0)
    return [
        ("random", rng.integers(0, 3, 40), rng.integers(0, 4, 40)),
        ("gaps", rng.choice([0, 2, 5], 40), rng.integers(0, 6, 40)),  # unused label values
        ("dependent", np.repeat(np.arange(4), 10), np.repeat(np.arange(4), 10) // 2),
        ("one-single", np.zeros(40, int), rng.integers(0, 3, 40)),
        ("both-single", np.zeros(40, int), np.zeros(40, int)),
        ("unbalanced", np.r_[np.zeros(37, int), [1, 2, 2]], rng.integers(0, 2, 40)),
    ]


def _all_averages(lt, lp):
    return [adjusted_mutual_info(lt, lp, average=avg, n_true=6, n_pred=6) for avg in AVERAGES]


def test_ami_matches_sklearn_float64():
    cases = _label_pairs()
    lt = jnp.asarray(np.stack([c[1] for c in cases]))
    lp = jnp.asarray(np.stack([c[2] for c in cases]))
    with enable_x64():
        ours = np.asarray(jax.jit(jax.vmap(_all_averages))(lt, lp))  # (averages, cases)
    for j, (name, t, p) in enumerate(cases):
        for i, avg in enumerate(AVERAGES):
            ref = skm.adjusted_mutual_info_score(t, p, average_method=avg)
            np.testing.assert_allclose(ours[i, j], ref, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {avg}")


def test_ami_float32_and_emi_oracle():
    from jaxclust.metrics.clustering import _expected_mutual_information

    rng = np.random.default_rng(1)
    lt, lp = rng.integers(0, 3, 40), rng.integers(0, 4, 40)
    ours = jax.jit(_all_averages)(jnp.asarray(lt), jnp.asarray(lp))
    for avg, v in zip(AVERAGES, ours):
        ref = skm.adjusted_mutual_info_score(lt, lp, average_method=avg)
        assert abs(float(v) - ref) < 2e-5, (avg, float(v), ref)
    with enable_x64():
        a, b = jnp.bincount(jnp.asarray(lt)), jnp.bincount(jnp.asarray(lp))
        emi = float(_expected_mutual_information(a, b, 40, jnp.dtype(jnp.float64)))
    np.testing.assert_allclose(emi, _emi_oracle(lt, lp), rtol=1e-11)


def _geometric_cases():
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) + 2.0]
    lab3 = rng.integers(0, 3, 40)
    singleton = lab3.copy()
    singleton[0] = 4  # a singleton cluster and an empty label (3)
    return [("k3", x, lab3, 3), ("singleton-and-empty", x, singleton, 5),
            ("large-scale", x * 1e15, lab3, 3)]


def _davies_bouldin_oracle(x, lab):
    """Davies and Bouldin (1979) with direct differences, float64: the mean of each
    cluster's largest ``(S_i + S_j) / |c_i - c_j|``, ``S`` the mean distance to the centroid."""
    used = np.unique(lab)
    cen = np.stack([x[lab == u].mean(axis=0) for u in used])
    spread = np.array([np.linalg.norm(x[lab == u] - cen[i], axis=1).mean()
                       for i, u in enumerate(used)])
    sep = np.linalg.norm(cen[:, None, :] - cen[None, :, :], axis=-1)
    ratio = (spread[:, None] + spread[None, :]) / np.where(sep > 0, sep, np.inf)
    np.fill_diagonal(ratio, 0.0)
    return ratio.max(axis=1).mean()


@functools.partial(jax.jit, static_argnames="k")
def _scores(x, lab, k):
    return (silhouette_samples(x, lab, k=k), calinski_harabasz(x, lab, k=k),
            davies_bouldin(x, lab, k=k))


@pytest.mark.parametrize("case", _geometric_cases(), ids=lambda c: c[0])
def test_geometric_scores_match_sklearn(case):
    _, x, lab, k = case
    ref = (skm.silhouette_samples(x, lab), skm.calinski_harabasz_score(x, lab),
           skm.davies_bouldin_score(x, lab))
    with enable_x64():
        ours = _scores(jnp.asarray(x), jnp.asarray(lab), k=5)  # k = 5: one compilation
    for o, r in zip(ours[:2], ref[:2]):
        np.testing.assert_allclose(np.asarray(o), r, rtol=1e-10, atol=1e-12)
    # Davies-Bouldin: scikit-learn measures the centroid separations with
    # euclidean_distances, the |a|^2 - 2<a, b> + |b|^2 expansion, whose cancellation error
    # depends on the BLAS (1.2e-9 relative on the singleton case with an AMD EPYC's
    # OpenBLAS, against a direct-difference oracle); jaxclust takes direct differences:
    # 1e-12 against that oracle, 1e-8 against scikit-learn
    np.testing.assert_allclose(np.asarray(ours[2]), _davies_bouldin_oracle(x, lab), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ours[2]), ref[2], rtol=1e-8)
    ours = _scores(jnp.asarray(x, jnp.float32), jnp.asarray(lab), k=5)
    for o, r in zip(ours, ref):
        np.testing.assert_allclose(np.asarray(o), r, rtol=1e-5, atol=1e-5)


def test_degenerate_geometric_scores():
    # all points of a cluster equal: W = 0 -> CH = 1, intra = 0 -> DB = 0 (sklearn rules)
    x = np.r_[np.zeros((3, 2)), np.ones((3, 2))]
    lab = np.r_[[0, 0, 0], [1, 1, 1]]
    _, ch, db = _scores(jnp.asarray(x, jnp.float32), jnp.asarray(lab), k=2)
    assert float(ch) == skm.calinski_harabasz_score(x, lab) == 1.0
    assert float(db) == skm.davies_bouldin_score(x, lab) == 0.0


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_gmm_bic_aic_match_sklearn(cov_type):
    """GaussianMixture.bic/aic (sklearn/mixture/_gaussian_mixture.py) on sklearn's own fitted
    parameters, scored on the training data and on held-out points; float64, 1e-10."""
    from sklearn.mixture import GaussianMixture

    from jaxclust.cluster import gmm_aic, gmm_bic

    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) * 0.5 + 3.0]
    held = rng.normal(size=(7, 2)) * 2.0
    gm = GaussianMixture(3, covariance_type=cov_type, random_state=0).fit(x)
    with enable_x64():
        params = tuple(jnp.asarray(a) for a in (gm.means_, gm.covariances_, gm.weights_))
        for z in (x, held):
            bic = float(gmm_bic(jnp.asarray(z), *params, covariance_type=cov_type))
            aic = float(gmm_aic(jnp.asarray(z), *params, covariance_type=cov_type))
            np.testing.assert_allclose(bic, gm.bic(z), rtol=1e-10)
            np.testing.assert_allclose(aic, gm.aic(z), rtol=1e-10)
