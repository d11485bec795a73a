"""Clustering losses: soft assignments (softmax and DEC's Student-t) and the SwAV loss against
NumPy references, the hard k-means loss against ``metrics.inertia``, the soft one's bounds
and T -> 0 limit, gradients vs float64 finite differences, jit/vmap, bad input."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp

from jaxclust.cluster.losses import kmeans_loss, soft_assignment, swav_loss
from jaxclust.metrics import inertia
from jaxclust.ot import swav_codes


def _problem(rng, n=12, k=3, d=2):
    x = rng.normal(size=(n, d))
    c = rng.normal(size=(k, d)) * 1.5
    return x, c


def _np_sq(x, c):
    return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)


# ------------------------------------------------------------------------------------------
# NumPy references (float64, exp domain, written from the papers' formulas)


def np_student_t(x, c, alpha, temperature=1.0):
    """DEC (Xie et al. 2016, eq. 1): q_ij ∝ (1 + |x_i - c_j|^2 / alpha)^(-(alpha+1)/2);
    the temperature divides the squared distances."""
    kern = (1.0 + _np_sq(x, c) / (alpha * temperature)) ** (-(alpha + 1.0) / 2.0)
    return kern / kern.sum(axis=1, keepdims=True)


def np_softmax_assign(x, c, temperature):
    e = np.exp(-_np_sq(x, c) / temperature)
    return e / e.sum(axis=1, keepdims=True)


def np_sinkhorn_knopp(scores, epsilon, n_iter):
    """SwAV's Algorithm (Caron et al. 2020): Q = exp(S / eps)^T (K x B), normalised to total
    mass 1, then n_iter rounds of rows (prototypes, mass 1/K) and columns (samples, mass
    1/B); returned as B x K codes whose rows sum to one."""
    Q = np.exp(scores / epsilon).T
    Q /= Q.sum()
    K, B = Q.shape
    for _ in range(n_iter):
        Q /= Q.sum(axis=1, keepdims=True) * K
        Q /= Q.sum(axis=0, keepdims=True) * B
    return (Q * B).T


def np_swav_loss(sa, sb, temperature, epsilon, n_iter):
    qa = np_sinkhorn_knopp(sa, epsilon, n_iter)
    qb = np_sinkhorn_knopp(sb, epsilon, n_iter)

    def log_softmax(s):
        z = s / temperature
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    per = (qb * log_softmax(sa)).sum(1) + (qa * log_softmax(sb)).sum(1)
    return -0.5 * per.mean()


# ------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize("alpha,temperature", [(1.0, 1.0), (3.5, 1.0), (0.6, 0.4)])
def test_student_t_matches_numpy(rng, alpha, temperature):
    x, c = _problem(rng, n=20, k=4, d=3)
    q = soft_assignment(jnp.asarray(x, jnp.float32), jnp.asarray(c, jnp.float32),
                        kind="student_t", alpha=alpha, temperature=temperature)
    ref = np_student_t(x, c, alpha, temperature)
    # float32 log-domain softmax of O(1) values: ~1e-6 relative
    np.testing.assert_allclose(q, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(q).sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
def test_softmax_matches_numpy(rng, temperature):
    x, c = _problem(rng, n=20, k=4, d=3)
    q = soft_assignment(jnp.asarray(x, jnp.float32), jnp.asarray(c, jnp.float32),
                        temperature=temperature)
    # float32: distances up to ~40 divided by T = 0.3 -> exponents ~1e2, relative ~1e-5;
    # entries below 1e-6 compared absolutely
    np.testing.assert_allclose(q, np_softmax_assign(x, c, temperature), rtol=2e-5, atol=1e-6)


def test_far_points_do_not_overflow():
    x = jnp.asarray([[1e3, 0.0], [0.0, 0.0]])
    c = jnp.asarray([[0.0, 0.0], [1.0, 0.0]])
    for kind in ("softmax", "student_t"):
        q = soft_assignment(x, c, kind=kind, temperature=0.01)
        assert np.all(np.isfinite(q))
        np.testing.assert_allclose(np.asarray(q).sum(1), 1.0, atol=1e-6)
    # the far point belongs to the nearer centroid
    assert float(soft_assignment(x, c, temperature=0.01)[0, 1]) > 0.99


def test_hard_kmeans_loss_is_mean_inertia(rng):
    x, c = _problem(rng, n=30, k=4)
    x, c = jnp.asarray(x, jnp.float32), jnp.asarray(c, jnp.float32)
    labels = jnp.argmin(jnp.asarray(_np_sq(np.asarray(x, np.float64), np.asarray(c, np.float64))),
                        axis=1)
    # float32 sums of 30 O(1) terms, one from a matmul expansion, one from differences
    np.testing.assert_allclose(kmeans_loss(x, c), inertia(x, c, labels) / 30, rtol=1e-5)
    w = jnp.asarray(rng.uniform(0.0, 2.0, 30), jnp.float32)
    np.testing.assert_allclose(kmeans_loss(x, c, weights=w),
                               inertia(x, c, labels, weights=w) / jnp.sum(w), rtol=1e-5)


def test_soft_kmeans_loss_matches_numpy_and_is_bounded(rng):
    x, c = _problem(rng, n=25, k=3)
    x32, c32 = jnp.asarray(x, jnp.float32), jnp.asarray(c, jnp.float32)
    w = rng.uniform(0.1, 1.0, 25)
    hard = float(kmeans_loss(x32, c32, weights=jnp.asarray(w, jnp.float32)))
    for t in (10.0, 1.0, 0.1):
        soft = float(kmeans_loss(x32, c32, temperature=t, weights=jnp.asarray(w, jnp.float32)))
        ref = -t * np.sum(w * np_logsumexp(-_np_sq(x, c) / t, axis=1)) / w.sum()
        np.testing.assert_allclose(soft, ref, rtol=1e-5, atol=1e-6)  # float32 sums
        # L - T log k <= L_T <= L (up to float32 rounding of O(1) values)
        assert hard - t * np.log(3) - 1e-5 <= soft <= hard + 1e-5


def test_soft_kmeans_loss_tends_to_hard(rng, x64):
    x, c = _problem(rng, n=25, k=3)
    x, c = jnp.asarray(x), jnp.asarray(c)
    hard = float(kmeans_loss(x, c))
    gaps = [hard - float(kmeans_loss(x, c, temperature=t)) for t in (1.0, 1e-1, 1e-2, 1e-3)]
    assert all(g >= -1e-12 for g in gaps)
    # closer as T falls (the gap vanishes like exp(-margin / T): 0 in float64 at T = 1e-2)
    assert all(b <= a for a, b in zip(gaps, gaps[1:])) and gaps[1] < gaps[0], gaps
    assert gaps[-1] < 1e-3 * np.log(3)


@pytest.mark.parametrize("epsilon,n_iter,temperature", [(0.05, 3, 0.1), (0.5, 1, 1.0),
                                                        (0.2, 10, 0.3)])
def test_swav_loss_matches_numpy(epsilon, n_iter, temperature):
    rng = np.random.default_rng(7)
    z = rng.normal(size=(32, 6))
    z2 = z + 0.3 * rng.normal(size=(32, 6))
    p = rng.normal(size=(5, 6))
    normed = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
    sa, sb = normed(z) @ normed(p).T, normed(z2) @ normed(p).T
    got = swav_loss(jnp.asarray(sa, jnp.float32), jnp.asarray(sb, jnp.float32),
                    temperature=temperature, epsilon=epsilon, n_iter=n_iter)
    ref = np_swav_loss(sa, sb, temperature, epsilon, n_iter)
    # float32: codes exp(S/eps) with |S/eps| <= 20 in the log domain, ~1e-6 relative
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)


def test_swav_loss_gradient_treats_codes_as_constants(rng, x64):
    """dL/dS^a = (softmax(S^a/T) - Q^b) / (2 B T): the codes carry no gradient."""
    sa = rng.normal(size=(10, 4))
    sb = rng.normal(size=(10, 4))
    t, eps = 0.3, 0.5
    g = jax.grad(swav_loss)(jnp.asarray(sa), jnp.asarray(sb), temperature=t, epsilon=eps)
    p = np.exp(sa / t - np_logsumexp(sa / t, axis=1, keepdims=True))
    expected = (p - np_sinkhorn_knopp(sb, eps, 3)) / (2 * 10 * t)
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------------------------------------
# gradients vs float64 central finite differences


def _fd_check(f, args, argnums, rng, h=1e-6):
    """Directional derivatives along random directions vs central differences (float64);
    one compilation serves the gradient and the finite differences."""
    args = [jnp.asarray(a) for a in args]
    value_and_grad = jax.jit(jax.value_and_grad(f, argnums=tuple(argnums)))
    _, grads = value_and_grad(*args)
    for argnum, g in zip(argnums, grads):
        v = jnp.asarray(rng.normal(size=np.shape(args[argnum])))
        plus, minus = list(args), list(args)
        plus[argnum] = args[argnum] + h * v
        minus[argnum] = args[argnum] - h * v
        fd = (value_and_grad(*plus)[0] - value_and_grad(*minus)[0]) / (2 * h)
        ad = jnp.sum(g * v)
        assert abs(float(fd)) > 1e-6  # not a vacuous check
        # float64, h = 1e-6: truncation ~1e-12, rounding ~1e-10 relative
        np.testing.assert_allclose(float(ad), float(fd), rtol=1e-6, atol=1e-9,
                                   err_msg=f"argnum {argnum}")


@pytest.mark.parametrize("kind", ["softmax", "student_t"])
def test_soft_assignment_gradients(rng, x64, kind):
    x, c = _problem(rng)
    w = jnp.asarray(rng.normal(size=(12, 3)))

    def f(x, c, t, a):
        return jnp.sum(w * soft_assignment(x, c, temperature=t, kind=kind, alpha=a))

    _fd_check(f, (x, c, 0.7, 2.0), (0, 1, 2) + ((3,) if kind == "student_t" else ()), rng)


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_kmeans_loss_gradients(rng, x64, temperature):
    x, c = _problem(rng)
    w = rng.uniform(0.2, 1.0, 12)
    f = lambda x, c, w: kmeans_loss(x, c, temperature=temperature, weights=w)
    _fd_check(f, (x, c, w), (0, 1, 2), rng)
    if temperature is not None:
        _fd_check(lambda x, t: kmeans_loss(x, c, temperature=t), (x, temperature), (1,), rng)


def test_swav_loss_temperature_gradient(rng, x64):
    """The codes do not depend on the temperature, so in T the loss is smooth and its
    gradient exact. (In the scores the gradient is SwAV's, codes held constant: not the
    derivative of the loss as a function of the scores; checked in closed form above.)"""
    sa, sb = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    _fd_check(lambda t: swav_loss(sa, sb, temperature=t, epsilon=0.5), (0.3,), (0,), rng)


# ------------------------------------------------------------------------------------------
# jit and vmap


def _batch(rng, shape, b=3):
    return jnp.asarray(rng.normal(size=(b,) + shape), jnp.float32)


@pytest.mark.slow  # the conformance cases of the three losses check jit and vmap fast
def test_jit_and_vmap(rng):
    def all_losses(x, c, t, sa, sb):  # one program: one compilation for jit, one for vmap
        return (soft_assignment(x, c, temperature=t),
                soft_assignment(x, c, temperature=t, kind="student_t", alpha=2.0),
                kmeans_loss(x, c), kmeans_loss(x, c, temperature=t),
                swav_loss(sa, sb, temperature=t, epsilon=0.3))

    args = (_batch(rng, (12, 2)), _batch(rng, (3, 2)), jnp.asarray([0.5, 1.0, 2.0]),
            _batch(rng, (10, 4)), _batch(rng, (10, 4)))
    batched = jax.jit(jax.vmap(all_losses))(*args)
    single = jax.jit(all_losses)
    item = lambda i: [a[i] for a in args]
    # float32: jit fuses, batched matmuls may sum in another order (rounding only)
    for got, want in zip(single(*item(0)), all_losses(*item(0))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for i in range(3):
        for got, want in zip(batched, single(*item(i))):
            np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)


def test_no_recompile_on_second_call(rng):
    traces = []

    @jax.jit
    def f(x, c):
        traces.append(1)
        return kmeans_loss(x, c, temperature=1.0)

    x, c = _batch(rng, (12, 2), 2), _batch(rng, (3, 2), 2)
    f(x[0], c[0])
    f(x[1], c[1])
    assert len(traces) == 1


def test_low_precision_inputs_keep_their_dtype(rng):
    x = jnp.asarray(rng.normal(size=(12, 2)), jnp.bfloat16)
    c = jnp.asarray(rng.normal(size=(3, 2)), jnp.bfloat16)
    q = soft_assignment(x, c)
    assert q.dtype == jnp.bfloat16
    loss = kmeans_loss(x, c, temperature=1.0)
    ref = kmeans_loss(x.astype(jnp.float32), c.astype(jnp.float32), temperature=1.0)
    assert loss.dtype == jnp.bfloat16
    np.testing.assert_allclose(float(loss), float(ref), rtol=1e-2)  # bfloat16: 8-bit mantissa


# ------------------------------------------------------------------------------------------
# bad input: one test per rule, eagerly and (value rules) under jit

X = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)
C = jnp.asarray(np.random.default_rng(1).normal(size=(3, 2)), jnp.float32)
S = jnp.asarray(np.random.default_rng(2).normal(size=(5, 3)), jnp.float32)
NAN = float("nan")

BAD = [
    ("x-1d", soft_assignment, (X[:, 0], C), {}, "`x` must be 2-D"),
    ("centroids-1d", kmeans_loss, (X, C[0]), {}, "`centroids` must be 2-D"),
    ("feature-mismatch-assign", soft_assignment, (X, C[:, :1]), {},
     "`centroids` must have the same number of features as `x`"),
    ("feature-mismatch-loss", kmeans_loss, (X, C[:, :1]), {},
     "`centroids` must have the same number of features as `x`"),
    ("x-empty", kmeans_loss, (X[:0], C), {}, "`x` has no rows"),
    ("kind", soft_assignment, (X, C), dict(kind="gaussian"), "`kind` must be one of"),
    ("temperature-zero-assign", soft_assignment, (X, C), dict(temperature=0.0),
     "`temperature` must be a finite number > 0"),
    ("temperature-negative-loss", kmeans_loss, (X, C), dict(temperature=-1.0),
     "`temperature` must be a finite number > 0"),
    ("temperature-zero-swav", swav_loss, (S, S), dict(temperature=0.0),
     "`temperature` must be a finite number > 0"),
    ("alpha", soft_assignment, (X, C), dict(kind="student_t", alpha=0.0),
     "`alpha` must be a finite number > 0"),
    ("epsilon", swav_loss, (S, S), dict(epsilon=0.0), "`epsilon` must be a finite number > 0"),
    ("n-iter", swav_loss, (S, S), dict(n_iter=0), "`n_iter` must be a Python int >= 1"),
    ("scores-mismatch", swav_loss, (S, S[:, :2]), {},
     "`scores_b` must have the same shape as `scores_a`"),
    ("scores-1d", swav_loss, (S[0], S[0]), {}, "`scores_a` must be 2-D"),
    ("weights-shape", kmeans_loss, (X, C), dict(weights=jnp.ones(5)),
     re.escape("`weights` must have shape (6,)")),
]


@pytest.mark.parametrize("name,fn,args,kwargs,match", BAD, ids=[b[0] for b in BAD])
def test_bad_input(name, fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


VALUE_RULES = [
    ("x-nan", lambda x, c: soft_assignment(x.at[0, 0].set(NAN), c), "`x` contains NaN"),
    ("centroids-nan", lambda x, c: kmeans_loss(x, c.at[1, 1].set(NAN)),
     "`centroids` contains NaN"),
    ("scores-nan", lambda x, c: swav_loss(S, S.at[0, 0].set(NAN) + x[0, 0]),
     "`scores_b` contains NaN"),
    ("weights-negative", lambda x, c: kmeans_loss(x, c, weights=jnp.ones(6).at[2].set(-1.0)),
     "`weights` has negative entries"),
    ("weights-zero-sum", lambda x, c: kmeans_loss(x, c, weights=jnp.zeros(6)),
     "`weights` sums to 0"),
    ("traced-temperature", lambda x, c: kmeans_loss(x, c, temperature=x[0, 0] * 0.0),
     "`temperature` must be a finite number > 0"),
]


@pytest.mark.parametrize("name,fn,match", VALUE_RULES, ids=[v[0] for v in VALUE_RULES])
def test_bad_values_eager_and_jit(name, fn, match):
    if name != "traced-temperature":
        with pytest.raises(ValueError, match=match):
            fn(X, C)
    else:
        with pytest.raises(ValueError, match=match):
            kmeans_loss(X, C, temperature=jnp.asarray(0.0))
    with pytest.raises(Exception, match=match):
        jax.block_until_ready(jax.jit(fn)(X, C))


def np_sigma_loss(sa, sb, epsilon, n_iter, temperature):
    """SIGMA's swapped loss re-derived from the authors' code (QUVA-Lab/SIGMA, commit
    9876f0925783fa417143cc5484788179aad0e90a: utils.py ``find_optimal_assignment`` and
    ``sinkhorn``, engine_for_pretraining.py, loss_func == 'SWAV'): Q = exp(S / eps)^T
    normalised to total mass 1; n_iter times, prototype rows scaled to 1/K, then sample
    columns to 1/B; targets = argmax over prototypes of Q / (column sums); the loss is the
    sum of the two cross-entropies (each a mean over samples) of scores / 0.1 against the
    other view's argmax."""

    def hard_codes(s):
        q = np.exp(s / epsilon).T
        q /= q.sum()
        kk, bb = q.shape
        for _ in range(n_iter):
            q *= (1.0 / kk / q.sum(1))[:, None]
            q *= (1.0 / bb / q.sum(0))[None, :]
        return (q / q.sum(0, keepdims=True)).T.argmax(1)

    def ce(s, t):
        z = s / temperature
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -logp[np.arange(len(t)), t].mean()

    return ce(sa, hard_codes(sb)) + ce(sb, hard_codes(sa))


def test_hard_targets_match_sigma_reference_code(x64):
    rng = np.random.default_rng(17)
    z = rng.normal(size=(40, 6))
    z2 = z + 0.3 * rng.normal(size=(40, 6))
    p = rng.normal(size=(7, 6))
    normed = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    sa, sb = normed(z) @ normed(p).T, normed(z2) @ normed(p).T
    # SIGMA's settings: eps 0.05, 10 Sinkhorn iterations, temperature 0.1, argmax targets
    got = swav_loss(jnp.asarray(sa), jnp.asarray(sb), temperature=0.1, epsilon=0.05,
                    n_iter=10, targets="hard")
    ref = np_sigma_loss(sa, sb, 0.05, 10, 0.1)
    # SIGMA sums the two directions, swav_loss averages them; observed difference 2.2e-16
    np.testing.assert_allclose(2.0 * float(got), ref, rtol=1e-12)
    soft = swav_loss(jnp.asarray(sa), jnp.asarray(sb), temperature=0.1, epsilon=0.05,
                     n_iter=10)
    assert abs(float(soft) - float(got)) > 1e-3  # hard targets are another loss
    # the gradient still treats the targets as constants: (p^a - onehot^b) / (2 B T)
    g = jax.grad(lambda s: swav_loss(s, jnp.asarray(sb), temperature=0.1, epsilon=0.05,
                                     n_iter=10, targets="hard"))(jnp.asarray(sa))
    e = np.exp((sa - sa.max(1, keepdims=True)) / 0.1)
    pa = e / e.sum(1, keepdims=True)
    tb = np.eye(7)[np.asarray(swav_codes(jnp.asarray(sb), epsilon=0.05, n_iter=10)).argmax(1)]
    np.testing.assert_allclose(np.asarray(g), (pa - tb) / (2 * 40 * 0.1), atol=1e-12)
    with pytest.raises(ValueError, match="`targets`"):
        swav_loss(jnp.asarray(sa), jnp.asarray(sb), targets="argmax")


# ------------------------------------------------------------------------------------------
# overflow and tiny temperatures: an error naming the argument, or a finite result


def _huge_cases():
    from jaxclust.cluster import tell_assignment, tell_loss
    from jaxclust.cluster.contrastive import nt_xent_loss

    x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)), jnp.float32)
    c = x[:2]
    return x, c, [
        (lambda: soft_assignment(x * 1e20, c, temperature=0.8), "`x`"),
        (lambda: soft_assignment(x, c * 1e20, kind="student_t"), "`centroids`"),
        (lambda: kmeans_loss(x * 1e20, c), "`x`"),
        (lambda: kmeans_loss(x, c * 1e20, temperature=1.0), "`centroids`"),
        (lambda: tell_assignment(x * 1e20, c), "`x`"),
        (lambda: tell_loss(x, c * 1e20), "`centroids`"),
        (lambda: swav_loss(x * 1e37, x), "`scores_a`"),
    ], (tell_assignment, tell_loss, nt_xent_loss)


@pytest.mark.slow  # in make test-all: the fast suite stays under 8 min
def test_huge_inputs_raise_naming_the_argument_or_stay_finite():
    x, c, cases, (tell_assignment, tell_loss, nt_xent_loss) = _huge_cases()
    for fn, name in cases:
        with pytest.raises(ValueError, match=re.escape(name)):
            fn()
    # scale-free functions stay exact on huge rows (the norm no longer overflows)
    np.testing.assert_allclose(float(nt_xent_loss(x * 1e20, (x + 0.1) * 1e20)),
                               float(nt_xent_loss(x, x + 0.1)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(tell_assignment(x * 1e20, c, normalize=True)),
                               np.asarray(tell_assignment(x, c, normalize=True)), atol=1e-6)


def test_tiny_temperature_is_one_hot_eager_and_jit():
    x, c, _, (tell_assignment, _, _) = _huge_cases()
    nearest = np.asarray(jnp.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1))
    for fn in (lambda x, t: soft_assignment(x, c, temperature=t),
               lambda x, t: tell_assignment(x, c, temperature=t)):
        for out in (fn(x, 1e-30), jax.jit(fn)(x, 1e-30)):
            np.testing.assert_allclose(np.asarray(out), np.eye(2)[nearest], atol=1e-6)
    # Student-t (alpha = 1) tends to q ~ 1 / D as T -> 0, not to one-hot (rows of x that
    # are centroids have D = 0: one-hot there)
    d2 = np.asarray(((x[2:, None] - c[None]) ** 2).sum(-1), np.float64)
    ref = (1 / d2) / (1 / d2).sum(1, keepdims=True)
    st = lambda x, t: soft_assignment(x, c, temperature=t, kind="student_t")  # noqa: E731
    for out in (st(x, 1e-30), jax.jit(st)(x, 1e-30)):
        np.testing.assert_allclose(np.asarray(out)[2:], ref, rtol=1e-4)
        np.testing.assert_allclose(np.asarray(out)[:2], np.eye(2), atol=1e-6)
    hard = float(kmeans_loss(x, c))
    np.testing.assert_allclose(float(jax.jit(lambda t: kmeans_loss(x, c, temperature=t))(
        1e-30)), hard, rtol=1e-6)
