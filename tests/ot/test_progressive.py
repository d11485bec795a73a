"""P²OT / SP²OT pseudo-labels: cross-checked against POT (unbalanced Sinkhorn with a
KL-relaxed column marginal, balanced Sinkhorn on the augmented problem), jaxclust's own
unbalanced Sinkhorn, the first-order optimality conditions of the partial problem, cvxpy,
and the MM fixed point of SP²OT; the mass ramp against its closed form; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from jaxclust.ot import mass_schedule, p2ot_codes, sinkhorn_from_cost, sp2ot_codes

EPS = 0.1
N, K = 12, 3


@jax.jit
def _p2ot(lp, mass, reg, prior):
    # one compiled program for every (n, k) = (12, 3) check below; the solver's maths with
    # the prior in the order given (prior_order=None; the matching is tested below)
    return p2ot_codes(lp, mass=mass, reg=reg, prior=prior, prior_order=None, epsilon=EPS,
                      tol=1e-7, max_iter=5000)


def _problem(seed=0, scale=1.5, n=N, k=K):
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(n, k))
    logits[: n // 2, 0] += 2.0  # an imbalanced batch: half of it prefers cluster 0
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return lp  # float64


def _prior(k=K):
    p = np.arange(1.0, k + 1)
    return p / p.sum()


def _run(lp, mass, reg, prior):
    return _p2ot(jnp.asarray(lp, jnp.float32), jnp.float32(mass), jnp.float32(reg),
                 jnp.asarray(prior, jnp.float32))


def test_full_mass_is_semi_relaxed_unbalanced_ot_pot():
    lp, prior, lam = _problem(0), _prior(), 1.0
    res = _run(lp, 1.0, lam, prior)
    a = np.full(N, 1.0 / N)
    # POT: rows exact (reg_m = inf), columns KL-relaxed with weight lam, entropy sum P log P
    ref = ot.unbalanced.sinkhorn_unbalanced(a, prior, -lp, EPS, (np.inf, lam),
                                            reg_type="entropy", numItermax=20000,
                                            stopThr=1e-13)
    assert bool(res.converged)
    # float32 plan entries ~1/(nk); solver tol 1e-7 on the L1 column change
    np.testing.assert_allclose(np.asarray(res.plan), ref, atol=2e-6)
    np.testing.assert_allclose(np.asarray(res.weights), 1.0, atol=1e-5)


@pytest.mark.slow  # a second compiled solver; the fast POT check covers the same problem
def test_full_mass_matches_jaxclust_unbalanced_sinkhorn():
    # jaxclust.ot.sinkhorn uses the reference a x b in its entropy: with tau = lam/(lam+eps)
    # its fixed point equals ours when its column weights are prior ** tau
    lp, prior, lam = _problem(1), _prior(), 2.0
    tau = lam / (lam + EPS)
    res = _run(lp, 1.0, lam, prior)
    ref = sinkhorn_from_cost(jnp.asarray(-lp, jnp.float32), None,
                             jnp.asarray(prior ** tau, jnp.float32), epsilon=EPS, tau_b=tau,
                             tol=1e-7, max_iter=5000, mode="log")
    np.testing.assert_allclose(np.asarray(res.plan), np.asarray(ref.plan), atol=2e-6)


def test_exact_prior_is_partial_ot_on_the_augmented_problem():
    # reg = inf: real columns exactly mass * prior, the dummy column 1 - mass: balanced
    # entropic OT on [C, 0]; large finite reg approaches it
    lp, prior, mass = _problem(2), _prior(), 0.4
    M = np.concatenate([-lp, np.zeros((N, 1))], axis=1)
    b = np.concatenate([mass * prior, [1.0 - mass]])
    ref = ot.sinkhorn(np.full(N, 1.0 / N), b, M, EPS, numItermax=20000, stopThr=1e-13)
    res = _run(lp, mass, np.inf, prior)
    np.testing.assert_allclose(np.asarray(res.plan), ref[:, :K], atol=2e-6)
    np.testing.assert_allclose(np.asarray(res.plan.sum(0)), mass * prior, atol=1e-6)
    near = _run(lp, mass, 1e4, prior)
    # the KL-relaxed solution differs by O(eps / reg) = 1e-5 relative
    np.testing.assert_allclose(np.asarray(near.plan), ref[:, :K], atol=2e-5)


@pytest.mark.parametrize("mass,lam", [(0.3, 1.0), (0.7, 0.5)])
def test_first_order_optimality(mass, lam):
    """Stationarity of the partial problem with the slack xi = 1/n - Q1 eliminated:
    C_ij + eps log(Q_ij / xi_i) + lam log(c_j / (mass pi_j)) is the same for all (i, j)
    (the multiplier of the total-mass constraint), with Q1 <= 1/n and 1'Q1 = mass."""
    lp, prior = _problem(3, scale=1.0), _prior()
    res = _run(lp, mass, lam, prior)
    Q = np.asarray(res.plan, np.float64)
    xi = 1.0 / N - Q.sum(1)
    assert np.all(xi > 0) and abs(Q.sum() - mass) < 1e-5
    col = Q.sum(0)
    R = -lp + EPS * np.log(Q / xi[:, None]) + lam * np.log(col / (mass * prior))[None, :]
    # float32 plan: log of entries to ~1e-6 relative, xi by cancellation to ~1e-5
    assert np.ptp(R) < 1e-3, np.ptp(R)
    np.testing.assert_allclose(np.asarray(res.weights), N * Q.sum(1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.codes), Q / Q.sum(1, keepdims=True), rtol=1e-4)
    assert np.all(np.asarray(res.labels) == np.argmax(Q, 1))


def test_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    lp, prior, mass, lam = _problem(4, n=N, k=K), _prior(), 0.5, 1.0
    C = -lp
    Q = cp.Variable((N, K), nonneg=True)
    xi = 1.0 / N - cp.sum(Q, axis=1)
    col = cp.sum(Q, axis=0)
    b = mass * prior
    kl = cp.sum(-cp.entr(col) - cp.multiply(col, np.log(b))) - cp.sum(col) + b.sum()
    obj = cp.sum(cp.multiply(Q, C)) - EPS * (cp.sum(cp.entr(Q)) + cp.sum(cp.entr(xi))) + lam * kl
    prob = cp.Problem(cp.Minimize(obj), [xi >= 0, cp.sum(Q) == mass])
    prob.solve(solver=cp.CLARABEL)
    res = _run(lp, mass, lam, prior)
    # interior point to ~1e-8; float32 plan
    np.testing.assert_allclose(np.asarray(res.plan), Q.value, atol=1e-5)


def test_mass_selects_confident_samples_and_weights():
    lp, prior = _problem(5, scale=3.0), _prior()
    res = _run(lp, 0.25, 1.0, prior)
    w = np.asarray(res.weights)
    assert np.all((w >= 0) & (w <= 1))
    np.testing.assert_allclose(w.sum(), 0.25 * N, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(res.codes).sum(1), 1.0, atol=1e-5)
    # the most confident samples (lowest min cost) are transported most
    conf = lp.max(1)
    assert np.corrcoef(conf, w)[0, 1] > 0.5


def test_warm_start_and_dtype():
    lp = jnp.asarray(_problem(6), jnp.float32)
    cold = p2ot_codes(lp, mass=0.5, tol=1e-6)
    warm = p2ot_codes(lp, mass=0.5, tol=1e-6, init=(cold.f, cold.g))
    assert int(warm.n_iters) < int(cold.n_iters)
    np.testing.assert_allclose(np.asarray(warm.plan), np.asarray(cold.plan), atol=1e-6)
    assert cold.plan.dtype == jnp.float32 and cold.g.shape == (K + 1,)
    # bfloat16 inputs: computed in float32, returned in bfloat16
    low = p2ot_codes(lp.astype(jnp.bfloat16), mass=0.5)
    assert low.codes.dtype == jnp.bfloat16


def test_non_convergence_is_data():
    res = p2ot_codes(jnp.asarray(_problem(7, scale=4.0), jnp.float32), mass=0.5, epsilon=0.01,
                     max_iter=10, tol=1e-9)
    assert not bool(res.converged) and int(res.n_iters) == 10


# ------------------------------------------------------------------------------------------
# SP²OT


def _numpy_objective(Q, C, S, mass, prior, lam, gamma):
    xi = 1.0 / Q.shape[0] - Q.sum(1)
    ent = np.sum(Q * np.log(Q)) + np.sum(xi * np.log(xi))
    col, b = Q.sum(0), mass * prior
    kl = np.sum(col * np.log(col / b) - col + b)
    return np.sum(Q * C) + EPS * ent + lam * kl - gamma * np.sum(S * (Q @ Q.T))


def test_sp2ot_is_an_mm_fixed_point_and_lowers_the_objective():
    rng = np.random.default_rng(8)
    lp, prior = _problem(8, scale=1.0), _prior()
    feats = rng.normal(size=(N, 4))
    zn = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    S = zn @ zn.T
    mass, lam, gamma = 0.5, 1.0, 2.0
    res = sp2ot_codes(jnp.asarray(lp, jnp.float32), jnp.asarray(feats, jnp.float32), mass=mass,
                      gamma=gamma, prior=jnp.asarray(prior, jnp.float32), prior_order=None,
                      epsilon=EPS,
                      reg=lam, n_mm=50, mm_tol=1e-9, tol=1e-7, max_iter=5000)
    Q = np.asarray(res.plan, np.float64)
    # fixed point: Q solves P²OT with the cost linearised at Q itself
    lin = lp + gamma * (2.0 * S) @ Q
    again = _run(lin, mass, lam, prior)
    np.testing.assert_allclose(np.asarray(again.plan), Q, atol=3e-6)
    # MM from the uniform plan decreases the SP²OT objective below P²OT's plan's value
    # (PSD cosine similarity: the linearisation majorises)
    p2 = np.asarray(_run(lp, mass, lam, prior).plan, np.float64)
    C = -lp
    assert (_numpy_objective(Q, C, S, mass, prior, lam, gamma)
            <= _numpy_objective(p2, C, S, mass, prior, lam, gamma) + 1e-6)


@pytest.mark.slow  # four compilations; fast counterpart: the MM fixed-point test
def test_sp2ot_gamma_zero_is_p2ot_and_knn_graph():
    lp = jnp.asarray(_problem(9), jnp.float32)
    feats = jnp.asarray(np.random.default_rng(9).normal(size=(N, 4)), jnp.float32)
    a = sp2ot_codes(lp, feats, mass=0.5, gamma=0.0, n_neighbors=3)
    b = p2ot_codes(lp, mass=0.5)
    np.testing.assert_allclose(np.asarray(a.plan), np.asarray(b.plan), atol=1e-6)
    # an explicit similarity gives the same as the features it came from
    zn = feats / jnp.linalg.norm(feats, axis=1, keepdims=True)
    c = sp2ot_codes(lp, similarity=zn @ zn.T, mass=0.5, gamma=0.5)
    d = sp2ot_codes(lp, feats, mass=0.5, gamma=0.5)
    np.testing.assert_allclose(np.asarray(c.plan), np.asarray(d.plan), atol=1e-6)


# ------------------------------------------------------------------------------------------
# mass schedule


def test_mass_schedule_closed_form_and_traced_step():
    steps = np.array([0, 10, 37, 50, 99, 100, 150])
    t = np.clip(steps / 100, 0, 1)
    ref_sig = 0.2 + 0.7 * np.exp(-5 * (1 - t) ** 2)
    ref_lin = 0.2 + 0.7 * t
    sig = jax.jit(jax.vmap(lambda s: mass_schedule(s, 100, start=0.2, end=0.9)))(steps)
    lin = jax.vmap(lambda s: mass_schedule(s, 100, start=0.2, end=0.9, kind="linear"))(steps)
    np.testing.assert_allclose(np.asarray(sig), ref_sig, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(lin), ref_lin, rtol=1e-6)
    assert mass_schedule(3, 10).dtype == jnp.float32


# ------------------------------------------------------------------------------------------
# bad input


LP = jnp.asarray(_problem(0), jnp.float32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(log_probs=LP[0]), "2-D"),
    (dict(log_probs=LP.at[0, 0].set(jnp.nan)), "NaN or Inf"),
    (dict(mass=0.0), "in \\(0, 1\\]"),
    (dict(mass=1.5), "in \\(0, 1\\]"),
    (dict(mass=jnp.ones(2)), "scalar"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(reg=-1.0), "reg"),
    (dict(prior=jnp.ones(4) / 4), "shape \\(3,\\)"),
    (dict(prior=jnp.array([1.2, -0.1, -0.1])), "negative"),
    (dict(prior=jnp.array([0.5, 0.5, 0.5])), "sum to 1"),
    (dict(init=(jnp.zeros(N),)), "pair"),
    (dict(init=(jnp.zeros(N), jnp.zeros(K))), "shapes"),
    (dict(tol=0.0), "tol"),
    (dict(max_iter=0), "max_iter"),
])
def test_p2ot_bad_input(kwargs, match):
    args = dict(log_probs=LP, mass=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        p2ot_codes(args.pop("log_probs"), **args)


def test_p2ot_bad_traced_mass_raises_under_jit():
    with pytest.raises(Exception, match="mass"):
        jax.jit(lambda m: p2ot_codes(LP, mass=m).plan)(jnp.float32(1.5)).block_until_ready()


@pytest.mark.parametrize("kwargs,match", [
    (dict(features=None), "exactly one"),
    (dict(similarity=jnp.eye(N)), "exactly one"),
    (dict(features=jnp.ones((N + 1, 2))), "12 rows"),
    (dict(features=None, similarity=jnp.eye(N + 1)), "shape \\(12, 12\\)"),
    (dict(features=jnp.ones((N, 2)).at[0, 0].set(jnp.nan)), "`features` contains NaN"),
    (dict(features=None, similarity=jnp.eye(N).at[0, 1].set(jnp.inf)),
     "`similarity` contains NaN"),
    (dict(gamma=-1.0), "gamma"),
    (dict(gamma=jnp.ones(2)), "scalar"),
    (dict(n_neighbors=N), "n_neighbors"),
    (dict(n_mm=0), "n_mm"),
    (dict(mm_tol=-1.0), "mm_tol"),
])
def test_sp2ot_bad_input(kwargs, match):
    args = dict(features=jnp.ones((N, 2)), mass=0.5, gamma=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        sp2ot_codes(LP, args.pop("features"), **args)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="cosine"), "kind"),
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=10.0), "total_steps.*integer"),
    (dict(total_steps=jnp.float32(10)), "total_steps.*integer"),
    (dict(step=-1), "step"),
    (dict(step=float("nan")), "step"),
    (dict(step=float("inf")), "step"),
    (dict(step=jnp.float32(jnp.nan)), "step"),
    (dict(step=True), "step"),
    (dict(step=None), "`step`"),
    (dict(total_steps=None), "`total_steps`"),
    (dict(start=0.0), "start"),
    (dict(end=1.5), "end"),
    (dict(start=jnp.ones(2)), "scalar"),
])
def test_mass_schedule_bad_input(kwargs, match):
    args = dict(step=1, total_steps=10) | kwargs
    with pytest.raises(ValueError, match=match):
        mass_schedule(args.pop("step"), args.pop("total_steps"), **args)


# ------------------------------------------------------------------------------------------
# the authors' public code, re-derived in NumPy (float64)

_SPPOT = ("rhfeiyang/SPPOT, commit 788a7a4670cc6c3205566cfda4d7fa502343daa8, "
          "utils/sinkhorn_knopp.py and losses/losses.py")


def np_sppot_scaling(cost, rho, eps, lam, prior=None, order=None, n_iter=20000, stop=1e-15):
    """``SemiCurrSinkhornKnopp.cost_forward`` re-derived (see _SPPOT): K = exp(-[C, 0]/eps);
    a = 1/n; b_real = rho/k, or, with a prior, its proportions times rho at the clusters
    ranked by decreasing summed cost (``order``: that ranking, from the original cost);
    b_dummy = 1 - rho; iterate u = a / (K v), v = b / (K^T u), v_real **= lam/(lam+eps)
    until |v - v_last| < stop. Returns the plan without its dummy column."""
    n, k = cost.shape
    K = np.exp(-np.concatenate([cost, np.zeros((n, 1))], axis=1) / eps)
    a = np.full(n, 1.0 / n)
    b = np.full(k + 1, rho / k)
    if prior is not None:
        if order is None:
            order = np.argsort(-cost.sum(0), kind="stable")
        b[order] = np.sort(prior)[::-1] * rho
    b[-1] = 1.0 - rho
    fi = lam / (lam + eps)
    v = np.full(k + 1, 1.0 / (k + 1))
    for _ in range(n_iter):
        u = a / (K @ v)
        v_new = b / (K.T @ u)
        v_new[:-1] = v_new[:-1] ** fi
        done = np.linalg.norm(v_new - v) < stop
        v = v_new
        if done:
            break
    return (u[:, None] * K * v[None, :])[:, :-1]


def np_sppot_mm(lp, feats, rho, gamma0, eps, lam, n_rounds, prior=None):
    """``MMOT.forward`` re-derived (see _SPPOT), with ``SK_loss``'s semantic weight: S the
    cosine Gram matrix of the features (``get_feature_similarity``); lam1 = (1 - rho) *
    gamma0 (``MMOT.set_rho``, mm_factor_fix=False); Q0 = rho / (n k); per round the cost
    C - lam1 (S + S^T) Q is solved by the scaling above (the prior ranked once, by the
    original cost), Q <- its plan (ema = 1). Returns the pseudo-labels n Q."""
    n, k = lp.shape
    C = -lp
    zn = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    S = zn @ zn.T
    lam1 = (1.0 - rho) * gamma0
    order = np.argsort(-C.sum(0), kind="stable")
    Q = np.full((n, k), rho / (n * k))
    for _ in range(n_rounds):
        Q = np_sppot_scaling(C - lam1 * (S + S.T) @ Q, rho, eps, lam, prior, order)
    return n * Q


def _pseudo_labels(res):
    # the reference's pseudo-labels are n Q: rows sum to the transported fraction w_i
    return np.asarray(res.weights)[:, None] * np.asarray(res.codes)


@pytest.mark.parametrize("prior_order", ["reference", "size"])
def test_p2ot_matches_sppot_reference_code(x64, prior_order):
    """P²OT codes = the reference code: rhfeiyang/SPPOT (commit
    788a7a4670cc6c3205566cfda4d7fa502343daa8), utils/sinkhorn_knopp.py,
    SemiCurrSinkhornKnopp.cost_forward (P²OT's own code, rhfeiyang/PPOT commit
    bd6721c4b5f6581ae5cd896eba9cc9250c769997, utils/sinkhorn_knopp.py, is the same scaling
    with the uniform prior); prior matched as the reference ("reference") or reversed
    ("size", our default)."""
    lp, prior = _problem(11), _prior()
    mass, lam, eps = 0.4, 1.0, 0.5
    res = p2ot_codes(jnp.asarray(lp), mass=mass, reg=lam, epsilon=eps,
                     prior=jnp.asarray(prior), prior_order=prior_order, tol=1e-13,
                     max_iter=20000)
    order = np.argsort(-(-lp).sum(0))
    ref = N * np_sppot_scaling(-lp, mass, eps, lam, prior,
                               order if prior_order == "reference" else order[::-1])
    assert bool(res.converged)
    # observed largest difference 4e-14
    np.testing.assert_allclose(_pseudo_labels(res), ref, atol=1e-12)
    # what the two orders do: "size" gives the largest proportion to the cluster the model
    # predicts largest (smallest summed cost), the reference to the one it predicts smallest
    biggest = int(np.argmin((-lp).sum(0)))
    col = np.asarray(res.plan).sum(0)
    assert (int(np.argmax(col)) == biggest) == (prior_order == "size")


def test_sp2ot_matches_sppot_reference_code_and_decayed_weight(x64):
    """SP²OT codes = the reference code: rhfeiyang/SPPOT (commit
    788a7a4670cc6c3205566cfda4d7fa502343daa8), utils/sinkhorn_knopp.py MMOT.forward with the
    semantic weight (1 - rho) gamma0 of MMOT.set_rho, and losses/losses.py SK_loss (cosine
    similarity of the features); a fixed number of MM rounds (mm_tol=0), uniform prior."""
    rng = np.random.default_rng(12)
    lp = _problem(12)
    feats = rng.normal(size=(N, 4))
    mass, gamma0, eps, lam, rounds = 0.3, 0.8, 0.5, 1.0, 6
    res = sp2ot_codes(jnp.asarray(lp), jnp.asarray(feats), mass=mass,
                      gamma=(1.0 - mass) * gamma0, epsilon=eps, reg=lam, n_mm=rounds,
                      mm_tol=0.0, tol=1e-13, max_iter=20000)
    ref = np_sppot_mm(lp, feats, mass, gamma0, eps, lam, rounds)
    # observed largest difference 3.5e-14
    np.testing.assert_allclose(_pseudo_labels(res), ref, atol=1e-11)
    p2 = N * np_sppot_scaling(-lp, mass, eps, lam)
    assert np.abs(ref - p2).max() > 1e-3  # the semantic term does change the labels


def test_converged_never_lies_on_tiny_epsilon_and_huge_log_probs():
    """converged=True implies finite outputs and an error <= tol measured on the result."""
    lp = jnp.asarray(_problem(13), jnp.float32)
    z = jnp.asarray(np.random.default_rng(13).normal(size=(N, 4)), jnp.float32)
    f = jax.jit(lambda lp, eps: (p2ot_codes(lp, mass=0.5, epsilon=eps),
                                 sp2ot_codes(lp, z, mass=0.5, gamma=0.5, epsilon=eps)))
    for lpx, eps in [(lp, 0.1), (lp, 1e-12), (lp, 1e-30), (lp * 1e30, 0.1),
                     (jnp.full_like(lp, -3e38), 0.1)]:
        for res in f(lpx, eps):
            finite = all(np.all(np.isfinite(np.asarray(t))) for t in res[:6])
            if bool(res.converged):
                assert finite and float(res.error) <= 1e-5
                # the transported mass of the returned plan is the requested one
                assert abs(float(res.weights.sum()) - 0.5 * N) < 1e-3 * N
    assert bool(f(lp, 0.1)[0].converged)  # the ordinary case converges
