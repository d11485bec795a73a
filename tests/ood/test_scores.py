"""Post-hoc OOD scores and their fitted statistics against direct NumPy re-computations.

Tolerances: float32 computations of O(1)-O(10) quantities from sums of <= 64 terms agree
with float64 NumPy to ~1e-6 relative; we assert rtol 1e-5 (pinv / eigh paths: 1e-4, their
conditioning amplifies float32 rounding by up to the condition number, ~10 here).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

import jaxclust.ood as ood

RTOL = 1e-5


@pytest.fixture
def problem(rng):
    n, d, k = 40, 5, 3
    y = np.arange(n) % k
    x = rng.normal(size=(n, d)) + 2.0 * np.eye(k, d)[y]
    w = rng.normal(size=(d, k))
    b = rng.normal(size=k)
    test = rng.normal(size=(7, d)) * 1.5
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return dict(x=x, y=y, w=w, b=b, test=test, xj=f32(x), wj=f32(w), bj=f32(b),
                testj=f32(test), logits=test @ w + b, logitsj=f32(test @ w + b))


def test_logit_scores(problem):
    z = problem["logits"]

    @jax.jit  # one compilation for all the logit scores
    def scores(zj):
        return (ood.msp(zj), ood.msp(zj, temperature=2.0), ood.max_logit(zj),
                ood.energy(zj, temperature=0.5), ood.gen(zj), ood.gen(zj, m=2))

    got = scores(problem["logitsj"])
    np.testing.assert_allclose(got[0], softmax(z, axis=1).max(1), rtol=RTOL)
    np.testing.assert_allclose(got[1], softmax(z / 2, axis=1).max(1), rtol=RTOL)
    np.testing.assert_allclose(got[2], z.max(1), rtol=RTOL)
    np.testing.assert_allclose(got[3], 0.5 * logsumexp(z / 0.5, axis=1), rtol=RTOL)
    # GEN: top-M probabilities, gamma = 0.1
    p = np.sort(softmax(z, axis=1), axis=1)[:, ::-1]
    for top, value in ((p, got[4]), (p[:, :2], got[5])):
        ref = -np.sum(top ** 0.1 * (1 - top) ** 0.1, axis=1)
        np.testing.assert_allclose(value, ref, rtol=RTOL)


def test_odin_matches_manual_perturbation(problem):
    w, b, test = problem["w"], problem["b"], problem["test"]
    t, eps = 10.0, 0.05
    fn = lambda x: x @ problem["wj"] + problem["bj"][None, :]  # noqa: E731
    # NumPy: gradient of log softmax_yhat(f(x)/T) for a linear model is (W[:, y] - W p)/T
    z = test @ w + b
    yhat = z.argmax(1)
    p = softmax(z / t, axis=1)
    grad = (w[:, yhat].T - p @ w.T) / t
    x_tilde = test + eps * np.sign(grad)
    ref = softmax((x_tilde @ w + b) / t, axis=1).max(1)
    np.testing.assert_allclose(ood.odin(fn, problem["testj"], temperature=t, epsilon=eps), ref,
                               rtol=RTOL)
    # epsilon = 0 is temperature scaling alone
    np.testing.assert_allclose(ood.odin(fn, problem["testj"], temperature=t, epsilon=0.0),
                               softmax(z / t, axis=1).max(1), rtol=RTOL)


def test_mahalanobis_family(problem):
    x, y, test = problem["x"], problem["y"], problem["test"]
    @jax.jit  # one compilation: fit and both scores
    def fit_and_score(x, y, t):
        st = ood.fit_mahalanobis(x, y, num_classes=3)
        return st, ood.mahalanobis(t, st), ood.relative_mahalanobis(t, st)

    stats, maha, rel = fit_and_score(problem["xj"], jnp.asarray(y), problem["testj"])
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    cov = np.cov((x - means[y]).T, bias=True)
    mu0 = x.mean(0)
    cov0 = np.cov(x.T, bias=True)
    # pinv of a well-conditioned 5x5 covariance in float32: 1e-4 relative
    np.testing.assert_allclose(stats.means, means, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(stats.precision, np.linalg.inv(cov), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.background_precision, np.linalg.inv(cov0), rtol=1e-4,
                               atol=1e-5)
    prec, prec0 = np.linalg.inv(cov), np.linalg.inv(cov0)
    diff = test[:, None, :] - means[None]
    d2 = np.einsum("nkd,de,nke->nk", diff, prec, diff)
    d0 = np.einsum("nd,de,ne->n", test - mu0, prec0, test - mu0)
    np.testing.assert_allclose(maha, -d2.min(1), rtol=1e-4)
    np.testing.assert_allclose(rel, -(d2 - d0[:, None]).min(1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 4])
def test_knn_dense_and_chunked(problem, k):
    x, test = problem["x"], problem["test"]
    bank = x / np.linalg.norm(x, axis=1, keepdims=True)
    z = test / np.linalg.norm(test, axis=1, keepdims=True)
    dist = np.linalg.norm(z[:, None] - bank[None], axis=2)
    ref = -np.sort(dist, axis=1)[:, k - 1]
    stats = ood.fit_knn(problem["xj"])
    np.testing.assert_allclose(stats.bank, bank, rtol=RTOL, atol=1e-6)
    # distances from 2 - 2 cos: float32 cancellation near 0 costs ~sqrt(1e-7); these are O(1)
    np.testing.assert_allclose(ood.knn(problem["testj"], stats, k=k), ref, rtol=1e-5,
                               atol=1e-5)
    # 40 bank rows in chunks of 7 (a ragged last chunk): the same k-th neighbour
    np.testing.assert_allclose(ood.knn(problem["testj"], stats, k=k, chunk_size=7),
                               ood.knn(problem["testj"], stats, k=k), rtol=1e-6)


def test_react_ash(problem):
    x, w, b, test = problem["x"], problem["w"], problem["b"], problem["test"]
    xr = np.abs(test)  # post-ReLU activations for ASH
    stats = ood.fit_react(problem["xj"], percentile=80.0)
    c = np.percentile(x.reshape(-1), 80.0)
    np.testing.assert_allclose(stats.threshold, c, rtol=RTOL)
    ref = logsumexp(np.minimum(test, c) @ w + b, axis=1)
    np.testing.assert_allclose(ood.react(problem["testj"], problem["wj"], problem["bj"], stats),
                               ref, rtol=RTOL)
    d = x.shape[1]
    keep = d - int(round(d * 0.6))
    thr = np.sort(xr, axis=1)[:, -keep][:, None]
    mask = xr >= thr
    kept = np.where(mask, xr, 0.0)
    s1, s2 = xr.sum(1, keepdims=True), kept.sum(1, keepdims=True)
    shaped = {"p": kept, "s": kept * np.exp(s1 / s2), "b": np.where(mask, s1 / keep, 0.0)}
    for variant, a in shaped.items():
        got = ood.ash(jnp.asarray(xr, jnp.float32), problem["wj"], problem["bj"],
                      percentile=60.0, variant=variant)
        np.testing.assert_allclose(got, logsumexp(a @ w + b, axis=1), rtol=RTOL, atol=1e-5)


def test_vim(problem):
    x, w, b, test = problem["x"], problem["w"], problem["b"], problem["test"]
    stats = ood.fit_vim(problem["xj"], problem["wj"], problem["bj"], dim=2)
    u = -np.linalg.pinv(w.T) @ b
    np.testing.assert_allclose(stats.origin, u, rtol=1e-4, atol=1e-5)
    xc = x - u
    vals, vecs = np.linalg.eigh(xc.T @ xc / len(x))
    basis = vecs[:, : x.shape[1] - 2]
    # the residual subspace is basis-free: compare projectors
    proj = np.asarray(stats.residual_basis) @ np.asarray(stats.residual_basis).T
    np.testing.assert_allclose(proj, basis @ basis.T, atol=1e-4)
    alpha = (x @ w + b).max(1).mean() / np.linalg.norm(xc @ basis, axis=1).mean()
    np.testing.assert_allclose(stats.alpha, alpha, rtol=1e-4)
    ref = logsumexp(test @ w + b, axis=1) - alpha * np.linalg.norm((test - u) @ basis, axis=1)
    np.testing.assert_allclose(ood.vim(problem["testj"], problem["wj"], problem["bj"], stats),
                               ref, rtol=1e-4, atol=1e-4)


def test_ablated_energy_and_temperature(problem):
    x, w = problem["x"], problem["w"]
    wt, bt = problem["b"][:1].repeat(5) * 0.3, 0.2
    # the reference's guarded norms u / (||u|| + 1e-4), and T = sigmoid(.) in (0, 1)
    h = ((x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-4))
         @ (w / (np.linalg.norm(w, axis=0) + 1e-4)))
    t = 1.0 / (1.0 + np.exp(-(x @ wt + bt))) + 1e-12

    @jax.jit
    def pieces(x, w, v):
        hj, tj = ood.cosine_logits(x, w), ood.learned_temperature(x, v, bt)
        return hj, tj, ood.ablated_energy(hj, tj)

    hj, tj, score = pieces(problem["xj"], problem["wj"], jnp.asarray(wt, jnp.float32))
    np.testing.assert_allclose(hj, h, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(tj, t, rtol=RTOL)
    np.testing.assert_allclose(score, logsumexp(h / t[:, None], axis=1), rtol=RTOL)


def test_sinkhorn_score_matches_pot(problem):
    import ot  # POT: an independent Sinkhorn

    x, y, test = problem["x"], problem["y"], problem["test"]
    stats = ood.fit_prototypes(problem["xj"], jnp.asarray(y), num_classes=3)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    protos = np.stack([xn[y == c].mean(0) for c in range(3)])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    np.testing.assert_allclose(stats.prototypes, protos, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(stats.weights, np.bincount(y) / len(y), rtol=RTOL)
    z = test / np.linalg.norm(test, axis=1, keepdims=True)
    cost = np.maximum(2 - 2 * z @ protos.T, 0.0)
    a = np.full(len(z), 1 / len(z))
    plan = ot.sinkhorn(a, np.bincount(y) / len(y), cost, 0.05, method="sinkhorn_log",
                       stopThr=1e-10, numItermax=100000)
    ref = -(plan * cost).sum(1) / plan.sum(1)
    # marginal tolerance 1e-4 (ours) vs 1e-10 (POT): the scores agree to ~1e-3
    got = ood.sinkhorn_score(problem["testj"], stats, epsilon=0.05, tol=1e-5)
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_jit_vmap_knn_chunked(problem):
    stats = ood.fit_knn(problem["xj"])
    f = jax.jit(jax.vmap(lambda t: ood.knn(t, stats, k=2, chunk_size=16)))
    batch = jnp.stack([problem["testj"], 2 * problem["testj"] + 1])
    out = f(batch)
    for i in range(2):
        np.testing.assert_allclose(out[i], ood.knn(batch[i], stats, k=2), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# bad input: one test per rule


def test_wrong_rank_logits():
    with pytest.raises(ValueError, match="`logits` must be 2-D"):
        ood.energy(jnp.ones(3))


def test_wrong_rank_features(problem):
    stats = ood.fit_knn(problem["xj"])
    with pytest.raises(ValueError, match="`features` must be 2-D"):
        ood.knn(jnp.ones(5), stats)


def test_feature_width_mismatch(problem):
    stats = ood.fit_mahalanobis(problem["xj"], jnp.asarray(problem["y"]))
    with pytest.raises(ValueError, match="has 4 features"):
        ood.mahalanobis(jnp.ones((2, 4)), stats)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan")])
def test_temperature_not_positive(t):
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
        ood.msp(jnp.ones((2, 3)), temperature=t)


def test_k_larger_than_bank(problem):
    stats = ood.fit_knn(problem["xj"][:4])
    with pytest.raises(ValueError, match="may not exceed the bank size"):
        ood.knn(problem["testj"], stats, k=5)


def test_nan_scores_input():
    with pytest.raises(ValueError, match="NaN or Inf"):
        ood.max_logit(jnp.array([[0.0, jnp.nan]]))


def test_nan_under_jit():
    with pytest.raises(Exception, match="NaN or Inf"):
        jax.block_until_ready(jax.jit(ood.energy)(jnp.array([[0.0, jnp.inf]])))


def test_wrong_stats_type(problem):
    with pytest.raises(ValueError, match="must be a KNNStats"):
        ood.knn(problem["testj"], ood.fit_react(problem["xj"]))


def test_bad_percentile(problem):
    with pytest.raises(ValueError, match="`percentile`"):
        ood.fit_react(problem["xj"], percentile=100.0)


def test_bad_ash_variant(problem):
    with pytest.raises(ValueError, match="`variant`"):
        ood.ash(problem["testj"], problem["wj"], problem["bj"], variant="x")


def test_bad_vim_dim(problem):
    with pytest.raises(ValueError, match="`dim`"):
        ood.fit_vim(problem["xj"], problem["wj"], problem["bj"], dim=5)


def test_head_shape_mismatch(problem):
    with pytest.raises(ValueError, match="`weight` must have shape"):
        ood.react(problem["testj"], problem["wj"].T, problem["bj"],
                  ood.ReActStats(jnp.asarray(1.0)))


def test_empty_class():
    with pytest.raises(ValueError, match="without samples"):
        ood.fit_mahalanobis(jnp.ones((4, 2)), jnp.array([0, 0, 2, 2]), num_classes=3)


def test_labels_length():
    with pytest.raises(ValueError, match="one label per sample"):
        ood.fit_prototypes(jnp.ones((4, 2)), jnp.array([0, 1, 1]))


def test_odin_bad_epsilon():
    with pytest.raises(ValueError, match="`epsilon` must be >= 0"):
        ood.odin(lambda x: x, jnp.ones((2, 3)), epsilon=-0.1)


def test_odin_bad_model_output():
    with pytest.raises(ValueError, match="must return logits of shape"):
        ood.odin(lambda x: x[0], jnp.ones((2, 3)))


def test_gen_bad_gamma():
    with pytest.raises(ValueError, match="`gamma`"):
        ood.gen(jnp.ones((2, 3)), gamma=1.5)


def test_ablated_energy_bad_temperature():
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        ood.ablated_energy(jnp.ones((2, 3)), jnp.array([1.0, 0.0]))


def test_sinkhorn_bad_epsilon(problem):
    stats = ood.PrototypeStats(jnp.eye(5)[:3], jnp.ones(3) / 3)
    with pytest.raises(ValueError, match="`epsilon`"):
        ood.sinkhorn_score(problem["testj"], stats, epsilon=0.0)


def test_mahalanobis_classes_in_groups_equal_numpy_and_all_at_once(rng, monkeypatch):
    """Past ``_core.groups.DIFF_ENTRIES`` entries of ``n x k x d`` centred differences the
    Mahalanobis scores scan the classes in groups with a running minimum (the last group
    padded with copies of the first mean). Forced here with a small budget (groups of 2 of 5
    classes: 2 + 2 + 1 padded) on this test's own shapes (so the jitted scorers trace afresh): the
    scores equal a NumPy re-computation of Lee et al.'s per-class formula and the
    all-at-once schedule, and so do their gradients in the features; the jitted scorer
    holds less than half of one ``(n, k, d)`` tensor (3x with all classes at once). The
    schedule is checked to be a scan."""
    from jaxclust._core import groups
    from jaxclust.ood import scores

    n, d, k = 31, 8, 5
    y = np.arange(150) % k
    x = rng.normal(size=(150, d)) + 3.0 * np.eye(k, d)[y]
    test = jnp.asarray(rng.normal(size=(n, d)) * 2.0, jnp.float32)
    st = ood.fit_mahalanobis(jnp.asarray(x, jnp.float32), jnp.asarray(y), num_classes=k)
    prec, prec0 = np.asarray(st.precision, np.float64), np.asarray(st.background_precision,
                                                                   np.float64)
    means, t = np.asarray(st.means, np.float64), np.asarray(test, np.float64)
    d2 = np.stack([np.einsum("nd,de,ne->n", t - means[c], prec, t - means[c])
                   for c in range(k)], 1)
    d0 = np.einsum("nd,de,ne->n", t - np.asarray(st.mean), prec0, t - np.asarray(st.mean))

    def both(t):
        return ood.mahalanobis(t, st), ood.relative_mahalanobis(t, st)

    def grads(t):
        return jax.grad(lambda t: jnp.sum(jnp.sin(sum(both(t)))))(t)

    at_once = both(test), grads(test)
    monkeypatch.setattr(groups, "DIFF_ENTRIES", 2 * n * d)
    test2 = test[: n - 1]  # other shapes: traced afresh with the small budget
    assert "scan" in str(jax.make_jaxpr(lambda t: scores._mahalanobis(t, st.means,
                                                                      st.precision))(test2))
    grouped = both(test2), grads(test2)
    np.testing.assert_allclose(grouped[0][0], -d2.min(1)[: n - 1], rtol=1e-4)
    np.testing.assert_allclose(grouped[0][1], -(d2 - d0[:, None]).min(1)[: n - 1], rtol=1e-4,
                               atol=1e-4)
    for got, want in zip(jax.tree_util.tree_leaves(grouped), jax.tree_util.tree_leaves(
            (tuple(s[: n - 1] for s in at_once[0]), at_once[1][: n - 1]))):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    big = jnp.asarray(rng.normal(size=(200, d)), jnp.float32)
    monkeypatch.setattr(groups, "DIFF_ENTRIES", 200 * d)  # one class per step
    for fn, bound in ((lambda t: scores._mahalanobis(t, st.means, st.precision), 0.5),
                      (lambda t: scores._relative_mahalanobis(t, st), 1.0)):
        temps = jax.jit(fn).lower(big).compile().memory_analysis().temp_size_in_bytes
        assert temps < bound * 200 * k * d * 4, temps
