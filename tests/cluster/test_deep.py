"""Deep clustering losses (DEC/DEPICT targets and KL, P²OT pseudo-label cross-entropy,
TELL's k-means layer) against direct NumPy recomputations; bad input per rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import (
    dec_loss,
    dec_target,
    kmeans_loss,
    pseudo_label_loss,
    soft_assignment,
    tell_assignment,
    tell_loss,
)

RNG = np.random.default_rng(0)
Q = RNG.dirichlet(np.ones(4), size=10)  # (10, 4) soft assignments, float64
X = RNG.normal(size=(10, 3))
C = RNG.normal(size=(4, 3))
F32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731


def test_dec_and_depict_targets_match_numpy(x64):
    """DEC: q^a / f. DEPICT has two formulas: its released code (herandy/DEPICT, commit
    e75840d7b401b919d00abfb905169e02e40daba2, functions.py, train_depict: the epoch's
    predictions squared, divided by their column sums, rows renormalised) = kind="depict";
    its paper (q / sqrt(f), rows renormalised) = kind="depict_paper"."""
    f = Q.sum(0)
    dec = Q ** 2 / f
    dec /= dec.sum(1, keepdims=True)
    dec3 = Q ** 3 / f
    dec3 /= dec3.sum(1, keepdims=True)
    dep = Q / np.sqrt(f)
    dep /= dep.sum(1, keepdims=True)
    # float32, computed in the log domain: ~1e-6 relative
    np.testing.assert_allclose(np.asarray(dec_target(F32(Q))), dec, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dec_target(F32(Q), power=3.0)), dec3, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dec_target(F32(Q), kind="depict_paper")), dep,
                               rtol=1e-5)
    # the released code's target, float64 (observed largest difference 1e-16)
    code = Q ** 2 / f
    code = (code.T / code.sum(1)).T
    got = np.asarray(dec_target(jnp.asarray(Q), kind="depict"))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, code, rtol=1e-13, atol=1e-15)
    assert np.abs(code - dep).max() > 0.05  # the two DEPICT formulas differ


def test_dec_target_is_a_constant_and_sharper():
    g = jax.grad(lambda q: jnp.sum(dec_target(q) * jnp.arange(4.0)[None, :]))(F32(Q))
    assert np.all(np.asarray(g) == 0)
    p = np.asarray(dec_target(F32(Q)))
    ent = lambda t: -(t * np.log(t)).sum(1)  # noqa: E731
    assert np.all(ent(p) <= ent(Q) + 1e-5)  # sharpening lowers the entropy of every row here


def test_dec_loss_matches_numpy_and_gradient():
    P = RNG.dirichlet(np.ones(4), size=10)
    ref = np.mean(np.sum(P * np.log(P / Q), axis=1))
    np.testing.assert_allclose(float(dec_loss(F32(Q), F32(P))), ref, rtol=1e-5)
    # d/dq mean KL(p || q) = -p / (n q)
    g = jax.grad(dec_loss)(F32(Q), F32(P))
    np.testing.assert_allclose(np.asarray(g), -P / (10 * Q), rtol=1e-4)
    # zeros of p contribute 0 log 0 = 0
    P0 = P.copy()
    P0[:, 0] = 0.0
    P0 /= P0.sum(1, keepdims=True)
    ref0 = np.mean(np.sum(P0[:, 1:] * np.log(P0[:, 1:] / Q[:, 1:]), axis=1))
    np.testing.assert_allclose(float(dec_loss(F32(Q), F32(P0))), ref0, rtol=1e-5)


def test_dec_loss_on_student_t_assignments():
    q = soft_assignment(F32(X), F32(C), kind="student_t")
    p = dec_target(q)
    qn, pn = np.asarray(q, np.float64), np.asarray(p, np.float64)
    np.testing.assert_allclose(float(dec_loss(q, p)),
                               np.mean(np.sum(pn * np.log(pn / qn), 1)), rtol=1e-5)


def test_pseudo_label_loss_matches_numpy():
    logits = RNG.normal(size=(10, 4)) * 2
    w = RNG.uniform(size=10)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ce = -(Q * logp).sum(1)
    np.testing.assert_allclose(float(pseudo_label_loss(F32(logits), F32(Q))), ce.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(float(pseudo_label_loss(F32(logits), F32(Q), F32(w))),
                               (w * ce).mean(), rtol=1e-5)
    # gradient in the logits: w_i (softmax - c) / n for rows summing to 1
    g = jax.grad(pseudo_label_loss)(F32(logits), F32(Q), F32(w))
    ref = w[:, None] * (np.exp(logp) - Q) / 10
    np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-4, atol=1e-7)


def test_tell_layer_matches_distances_and_numpy():
    T = 0.7
    d2 = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    # the linear layer x @ (2C)^T - |c|^2 equals -|x - c|^2 up to a per-row constant
    logits = X @ (2 * C).T - (C ** 2).sum(1)[None]
    np.testing.assert_allclose(logits - logits[:, :1], -(d2 - d2[:, :1]), atol=1e-12)
    q = np.exp(-d2 / T)
    q /= q.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(tell_assignment(F32(X), F32(C), temperature=T)), q,
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(tell_assignment(F32(X), F32(C), temperature=T)),
                               np.asarray(soft_assignment(F32(X), F32(C), temperature=T)),
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(float(tell_loss(F32(X), F32(C), temperature=T)),
                               np.mean((q * d2).sum(1)), rtol=1e-5)


def test_tell_on_the_unit_sphere_matches_numpy():
    T = 0.3
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cn = C / np.linalg.norm(C, axis=1, keepdims=True)
    d2 = ((xn[:, None, :] - cn[None]) ** 2).sum(-1)
    q = np.exp(-d2 / T)
    q /= q.sum(1, keepdims=True)
    x, c = F32(X), F32(C)
    np.testing.assert_allclose(
        np.asarray(tell_assignment(x, c, temperature=T, normalize=True)), q, rtol=1e-4,
        atol=1e-7)
    np.testing.assert_allclose(float(tell_loss(x, c, temperature=T, normalize=True)),
                               np.mean((q * d2).sum(1)), rtol=1e-5)
    # scale invariance of the normalised layer
    np.testing.assert_allclose(float(tell_loss(3 * x, 0.5 * c, temperature=T, normalize=True)),
                               np.mean((q * d2).sum(1)), rtol=1e-5)


def test_tell_loss_bounds_and_limit():
    x, c = F32(X), F32(C)
    hard = float(kmeans_loss(x, c))
    np.testing.assert_allclose(float(tell_loss(x, c, temperature=1e-4)), hard, rtol=1e-5)
    # soft k-means free energy <= TELL's loss (= free energy + T * mean entropy) <= ...
    T = 0.5
    q = np.asarray(tell_assignment(x, c, temperature=T), np.float64)
    ent = -(q * np.log(q)).sum(1).mean()
    np.testing.assert_allclose(float(tell_loss(x, c, temperature=T)),
                               float(kmeans_loss(x, c, temperature=T)) + T * ent, rtol=1e-4)


@pytest.mark.parametrize("fn,args,kwargs,match", [
    (dec_target, (F32(Q[0]),), {}, "2-D"),
    (dec_target, (F32(-Q),), {}, "negative"),
    (dec_target, (F32(Q).at[0, 0].set(jnp.nan),), {}, "NaN or Inf"),
    (dec_target, (F32(Q),), dict(kind="sharp"), "kind"),
    (dec_target, (F32(Q),), dict(power=0.0), "power"),
    (dec_loss, (F32(Q), F32(Q[:, :3])), {}, "same shape"),
    (dec_loss, (F32(Q), F32(-Q)), {}, "`p` has negative"),
    (pseudo_label_loss, (F32(Q), F32(Q[:5])), {}, "same shape"),
    (pseudo_label_loss, (F32(Q)[0], F32(Q)), {}, "2-D"),
    (pseudo_label_loss, (F32(Q), F32(-Q)), {}, "`codes` has negative"),
    (pseudo_label_loss, (F32(Q), F32(Q), jnp.ones(3)), {}, "shape \\(10,\\)"),
    (pseudo_label_loss, (F32(Q), F32(Q), -jnp.ones(10)), {}, "`weights` has negative"),
    (tell_loss, (F32(X), F32(C[:, :2])), {}, "same number of features"),
    (tell_loss, (F32(X), F32(C)), dict(temperature=0.0), "temperature"),
    (tell_assignment, (F32(X)[0], F32(C)), {}, "2-D"),
    (tell_assignment, (F32(X).at[1, 1].set(jnp.inf), F32(C)), {}, "NaN or Inf"),
])
def test_bad_input(fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)
