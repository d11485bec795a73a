"""Deep clustering heads (P²OT/SP²OT partial-OT head, DEC/DEPICT head, TELL layer) in Flax
NNX and Equinox: the two frameworks give the same outputs, losses and gradients for the same
parameters; the heads are the pure functions they wrap (and their gradient is the gradient
at fixed pseudo-labels, which the conformance suite checks against finite differences);
each trains with optax on a tiny separable problem; bad construction and calls."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxclust.nn.equinox as jeqx
from jaxclust.cluster import (
    dec_loss,
    dec_target,
    pseudo_label_loss,
    soft_assignment,
    swav_loss,
    tell_assignment,
    tell_loss,
)
from jaxclust.ot import p2ot_codes, sp2ot_codes, swav_codes

nnx = pytest.importorskip("flax.nnx")
import jaxclust.nn.flax as jflax  # noqa: E402  (after the optional-dependency skip)


def _blobs(n_per=8, d=4, scale=0.3, seed=0):
    """Three separated blobs (centres of norm 3 along random directions) and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d))
    centres *= 3.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(3), n_per)
    x = centres[labels] + scale * rng.normal(size=(3 * n_per, d))
    noise = scale * rng.normal(size=x.shape)
    return jnp.asarray(x, jnp.float32), jnp.asarray(x + noise, jnp.float32), labels


X, XB, LABELS = _blobs()
INIT = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)


def _close(a, b, tol=1e-6):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


# ------------------------------------------------------------------------------------------
# the frameworks agree, and are the pure functions


def _partial_pure(protos, mass, gamma):
    """The partial-OT head written with the pure functions: cosine logits / T, partial-OT
    codes (SP²OT with the reference's decayed weight (1 - mass) gamma), swapped weighted
    cross-entropy at fixed pseudo-labels summed over the two directions (the reference,
    rhfeiyang/SPPOT losses/losses.py SK_loss.forward, sums over the ordered view pairs)."""
    def logit(z):
        zn = z / jnp.linalg.norm(z, axis=1, keepdims=True)
        pn = protos / jnp.linalg.norm(protos, axis=1, keepdims=True)
        return zn @ pn.T / 0.2

    def code(z):
        lp = jax.nn.log_softmax(logit(z))
        if gamma > 0:
            return sp2ot_codes(lp, z, mass=mass, gamma=(1.0 - mass) * gamma, n_mm=5)
        return p2ot_codes(lp, mass=mass)

    qa, qb = code(X), code(XB)
    fixed = jax.lax.stop_gradient((qa.codes, qa.weights, qb.codes, qb.weights))
    loss = (pseudo_label_loss(logit(X), fixed[2], fixed[3])
            + pseudo_label_loss(logit(XB), fixed[0], fixed[1]))
    return logit(X), qa.codes, qa.weights, loss


@pytest.mark.parametrize("gamma", [
    0.0,
    # SP²OT codes inside the head: two more compilations of the nested MM loop; sp2ot_codes
    # itself is checked fast in tests/ot/test_progressive.py
    pytest.param(0.5, marks=pytest.mark.slow),
])
def test_partial_ot_head_same_in_both_frameworks(gamma):
    kw = dict(temperature=0.2, epsilon=0.1, reg=1.0, gamma=gamma, prototypes=INIT)
    fl = jflax.PartialOTClusteringHead(4, 3, **kw)
    eq = jeqx.PartialOTClusteringHead(4, 3, **kw)
    mass = jnp.float32(0.6)

    def run_f(m):
        res = m.codes(X, mass)
        g = nnx.grad(lambda m: m.loss(X, XB, mass))(m).prototypes[...]
        return m(X), res.codes, res.weights, m.loss(X, XB, mass), g

    def run_e(m):
        res = m.codes(X, mass)
        g = eqx.filter_grad(lambda m: m.loss(X, XB, mass))(m).prototypes
        # the same program written with the pure functions (in the same compilation)
        ref = _partial_pure(m.prototypes, mass, gamma)
        ref_g = jax.grad(lambda p: _partial_pure(p, mass, gamma)[3])(m.prototypes)
        return (m(X), res.codes, res.weights, m.loss(X, XB, mass), g), ref + (ref_g,)

    out_f = nnx.jit(run_f)(fl)
    out_e, ref = eqx.filter_jit(run_e)(eq)
    _close(out_f, out_e)  # same float32 program on the same arrays: rounding only
    # the head is the pure functions, and its gradient the gradient at fixed pseudo-labels
    # (which the conformance suite checks against finite differences)
    _close(out_e, ref, tol=2e-5)
    np.testing.assert_allclose(float(out_e[2].sum()), 0.6 * X.shape[0], rtol=1e-4)
    # the semantic weight is traceable: (1 - mass) gamma, or gamma without the decay
    for m in (fl, eq):
        np.testing.assert_allclose(float(m.semantic_weight(mass)), 0.4 * gamma, rtol=1e-6)
    fixed = jeqx.PartialOTClusteringHead(4, 3, gamma_decay=False, **kw)
    assert float(jax.jit(lambda r: fixed.semantic_weight(r))(mass)) == np.float32(gamma)


def test_swav_head_hard_targets_sigma_same_in_both_frameworks():
    """SIGMA's settings on the SwAV head: argmax targets, eps 0.05, 10 iterations, T 0.1."""
    kw = dict(temperature=0.1, epsilon=0.05, n_iter=10, targets="hard", prototypes=INIT)
    fl = jflax.SinkhornClusteringHead(4, 3, **kw)
    eq = jeqx.SinkhornClusteringHead(4, 3, **kw)

    def run(m, grad):
        return m.codes(X), m.loss(X, XB), grad(lambda m: m.loss(X, XB))(m)

    out_f = nnx.jit(lambda m: run(m, nnx.grad))(fl)
    out_e = eqx.filter_jit(lambda m: run(m, eqx.filter_grad))(eq)
    _close(out_f[:2], out_e[:2])
    _close(out_f[2].prototypes[...], out_e[2].prototypes)
    codes = np.asarray(out_e[0])
    soft = np.asarray(swav_codes(eq(X), epsilon=0.05, n_iter=10))
    np.testing.assert_array_equal(codes, np.eye(3)[soft.argmax(1)])  # one-hot argmax
    ref = swav_loss(eq(X), eq(XB), temperature=0.1, epsilon=0.05, n_iter=10, targets="hard")
    np.testing.assert_allclose(float(out_e[1]), float(ref), rtol=1e-6)
    with pytest.raises(ValueError, match="`targets`"):
        jeqx.SinkhornClusteringHead(4, 3, targets="argmax", prototypes=INIT)


def test_dec_head_and_tell_layer_same_in_both_frameworks():
    fd = jflax.DECHead(4, 3, alpha=1.0, centroids=INIT)
    ed = jeqx.DECHead(4, 3, alpha=1.0, centroids=INIT)
    ft = jflax.TELLLayer(4, 3, temperature=0.5, normalize=True, centroids=INIT)
    et = jeqx.TELLLayer(4, 3, temperature=0.5, normalize=True, centroids=INIT)

    def run_f(d, t):
        q = d(X)
        gd = nnx.grad(lambda m: m.loss(X))(d).centroids[...]
        gt = nnx.grad(lambda m: m(X)[1])(t).centroids[...]
        return q, d.target(q), d.loss(X), gd, t(X), gt, t.weight, t.bias

    def run_e(d, t):
        q = d(X)
        gd = eqx.filter_grad(lambda m: m.loss(X))(d).centroids
        gt = eqx.filter_grad(lambda m: m(X)[1])(t).centroids
        out = q, d.target(q), d.loss(X), gd, t(X), gt, t.weight, t.bias
        # the pure functions: DEC's gradient at the fixed target, TELL's full gradient
        c = d.centroids
        qp = soft_assignment(X, c, kind="student_t")
        pp = dec_target(qp)
        ref = (qp, pp, dec_loss(qp, pp),
               jax.grad(lambda c: dec_loss(soft_assignment(X, c, kind="student_t"), pp))(c),
               (tell_assignment(X, c, temperature=0.5, normalize=True),
                tell_loss(X, c, temperature=0.5, normalize=True)),
               jax.grad(lambda c: tell_loss(X, c, temperature=0.5, normalize=True))(c),
               2 * c / jnp.linalg.norm(c, axis=1, keepdims=True), -jnp.ones(3))
        return out, ref, d.loss(X, pp)

    out_f = nnx.jit(run_f)(fd, ft)
    out_e, ref, loss_given_p = eqx.filter_jit(run_e)(ed, et)
    _close(out_f, out_e)
    _close(out_e, ref, tol=2e-6)
    # the loss with an explicit target (DEC refreshes it every few steps)
    np.testing.assert_allclose(float(loss_given_p), float(out_e[2]), rtol=1e-6)


@pytest.mark.parametrize("cls", [
    # a k-means compilation (~4 s); KMeansLayer.from_data, the same code, is tested fast
    pytest.param("DECHead", marks=pytest.mark.slow),
    pytest.param("TELLLayer", marks=pytest.mark.slow),
])
def test_from_data_and_default_init(cls):
    e = getattr(jeqx, cls).from_data(X, 3, key=jax.random.key(0))
    f = getattr(jflax, cls).from_data(X, 3, key=jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(e.centroids), np.asarray(f.centroids[...]))
    assert e.centroids.shape == (3, 4)
    a = getattr(jeqx, cls)(4, 3, key=jax.random.key(1))
    b = getattr(jflax, cls)(4, 3, rngs=nnx.Rngs(1))
    assert a.centroids.shape == b.centroids[...].shape == (3, 4)
    assert np.abs(np.asarray(a.centroids)).max() < 0.5  # 0.1 * normal


# ------------------------------------------------------------------------------------------
# training with optax (Equinox; the Flax heads give the same gradients, above)


def _train(head, loss_fn, lr, steps):
    tx = optax.adam(lr)

    @eqx.filter_jit
    def step(model, opt_state):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    state = tx.init(eqx.filter(head, eqx.is_array))
    losses = []
    for _ in range(steps):
        head, state, loss = step(head, state)
        losses.append(float(loss))
    return head, losses


def _ari(labels, pred):
    from sklearn.metrics import adjusted_rand_score
    return adjusted_rand_score(labels, np.asarray(pred))


def test_partial_ot_head_trains():
    """Fixed features of three blobs, two noisy views, 40 adam steps with the mass ramped
    from 0.3 to 1: the swapped loss at full mass drops and the head's argmax recovers the
    blobs."""
    from jaxclust.ot import mass_schedule
    head = jeqx.PartialOTClusteringHead(4, 3, temperature=0.2, key=jax.random.key(2))
    evaluate = eqx.filter_jit(lambda m: (m.loss(X, XB, 1.0), jnp.argmax(m(X), axis=1)))
    before = float(evaluate(head)[0])
    tx = optax.adam(0.05)

    @eqx.filter_jit
    def update(model, opt_state, mass):
        loss, grads = eqx.filter_value_and_grad(lambda m: m.loss(X, XB, mass))(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    state = tx.init(eqx.filter(head, eqx.is_array))
    for s in range(40):
        head, state, _ = update(head, state, mass_schedule(s, 30, start=0.3))
    after, pred = evaluate(head)
    assert float(after) < 0.7 * before, (before, float(after))
    assert _ari(LABELS, pred) > 0.9


def test_dec_head_and_tell_layer_train():
    """DEC: from perturbed blob means (a k-means-like start), the KL to the fixed target
    decreases (DEC's alternation); TELL: from one shifted point per blob, the k-means loss
    drops and the blobs are recovered."""
    means = jnp.stack([X[LABELS == j].mean(0) for j in range(3)])
    dec = jeqx.DECHead(4, 3, centroids=means + 0.5)
    p = dec.target(dec(X))
    dec, losses = _train(dec, lambda m: m.loss(X, p), 0.05, 20)
    assert losses[-1] < 0.8 * losses[0], losses
    tell = jeqx.TELLLayer(4, 3, temperature=0.5, key=jax.random.key(3))
    tell = eqx.tree_at(lambda m: m.centroids, tell, X[jnp.array([0, 8, 16])] + 0.5)
    tell, losses = _train(tell, lambda m: m(X)[1], 0.1, 30)
    assert losses[-1] < 0.5 * losses[0], losses
    assert _ari(LABELS, jnp.argmax(tell(X)[0], axis=1)) > 0.9


# ------------------------------------------------------------------------------------------
# bad construction and calls


@pytest.mark.parametrize("make,match", [
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT, prior=(0.5, 0.5)), "prior"),
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT, prior=(0.5, 0.6, -0.1)),
     "prior"),
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT, gamma=-1.0), "gamma"),
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT, reg=0.0), "reg"),
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT, temperature=0.0),
     "temperature"),
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT, max_iter=0), "max_iter"),
    (lambda m: m.PartialOTClusteringHead(4, 3), "required"),
    (lambda m: m.PartialOTClusteringHead(4, 3, prototypes=INIT[:, :2]), "shape"),
    (lambda m: m.DECHead(4, 3, centroids=INIT, target="idec"), "target"),
    (lambda m: m.DECHead(4, 3, centroids=INIT, kind="gauss"), "kind"),
    (lambda m: m.DECHead(4, 3, centroids=INIT, power=0), "power"),
    (lambda m: m.DECHead(4, 0, centroids=INIT), "`k`"),
    (lambda m: m.TELLLayer(4, 3, centroids=INIT, temperature=-1.0), "temperature"),
    (lambda m: m.TELLLayer(4.0, 3, centroids=INIT), "`d`"),
])
@pytest.mark.parametrize("framework", ["flax", "equinox"])
def test_bad_construction(make, match, framework):
    with pytest.raises(ValueError, match=match):
        make(jflax if framework == "flax" else jeqx)


def test_bad_calls():
    for m in (jeqx, jflax):
        head = m.PartialOTClusteringHead(4, 3, prototypes=INIT)
        with pytest.raises(ValueError, match="batch, 4"):
            head(X[:, :2])
        with pytest.raises(ValueError, match="same batch size"):
            head.loss(X, XB[:5], 0.5)
        with pytest.raises(ValueError, match="mass"):
            head.codes(X, 1.5)
        with pytest.raises(ValueError, match="same number of features"):
            m.DECHead(4, 3, centroids=INIT)(X[:, :3])
        with pytest.raises(ValueError, match="same shape"):
            m.DECHead(4, 3, centroids=INIT).loss(X, jnp.ones((2, 3)) / 3)
        with pytest.raises(ValueError, match="2-D"):
            m.TELLLayer(4, 3, centroids=INIT)(X[0])
