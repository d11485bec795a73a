"""OOD training losses against direct NumPy re-computations (float32 vs float64: sums of a
few O(1)-O(100) terms agree to ~1e-6 relative; asserted at rtol 1e-5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

import jaxclust.ood as ood

RTOL = 1e-5


def _ce(z, y):
    return -np.mean(log_softmax(z, axis=1)[np.arange(len(y)), y])


@pytest.fixture
def logits(rng):
    zi = rng.normal(size=(6, 4)) * 8.0
    zo = rng.normal(size=(5, 4)) * 3.0
    y = rng.integers(0, 4, 6)
    return zi, zo, y


def test_energy_losses(logits):
    zi, zo, y = logits
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    m_in, m_out = -6.0, -2.0  # margins at the scale of these logits: both hinges active
    e_in, e_out = -logsumexp(zi, axis=1), -logsumexp(zo, axis=1)
    reg = (np.mean(np.maximum(e_in - m_in, 0) ** 2) + np.mean(np.maximum(m_out - e_out, 0) ** 2))
    assert reg > 0
    t = 2.0

    @jax.jit  # one compilation for the three values
    def losses(a, b, y):
        return (ood.energy_margin_loss(a, b, m_in=m_in, m_out=m_out),
                ood.energy_regularized_loss(a, y, b, weight=0.1, m_in=m_in, m_out=m_out),
                ood.energy_margin_loss(a, b, m_in=m_in, m_out=m_out, temperature=t))

    got_reg, got_total, got_reg_t = losses(f(zi), f(zo), jnp.asarray(y))
    np.testing.assert_allclose(got_reg, reg, rtol=RTOL)
    np.testing.assert_allclose(got_total, _ce(zi, y) + 0.1 * reg, rtol=RTOL)
    # temperature: E = -T lse(f / T)
    e_in, e_out = -t * logsumexp(zi / t, axis=1), -t * logsumexp(zo / t, axis=1)
    reg_t = (np.mean(np.maximum(e_in - m_in, 0) ** 2)
             + np.mean(np.maximum(m_out - e_out, 0) ** 2))
    np.testing.assert_allclose(got_reg_t, reg_t, rtol=RTOL)


def test_outlier_exposure_and_logitnorm(logits):
    zi, zo, y = logits
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    @jax.jit
    def losses(a, b, y):
        return (ood.outlier_exposure_loss(a, y, b), ood.logitnorm_loss(a, y),
                ood.cross_entropy(a, y))

    oe, ln, ce = losses(f(zi), f(zo), jnp.asarray(y))
    ref = _ce(zi, y) + 0.5 * np.mean(-log_softmax(zo, axis=1).mean(1))
    np.testing.assert_allclose(oe, ref, rtol=RTOL)
    zn = zi / (0.04 * (np.linalg.norm(zi, axis=1, keepdims=True) + 1e-7))
    np.testing.assert_allclose(ln, _ce(zn, y), rtol=RTOL)
    np.testing.assert_allclose(ce, _ce(zi, y), rtol=RTOL)


def test_learned_temperature_loss(rng):
    h = rng.uniform(-1, 1, size=(6, 3))
    t = rng.uniform(1, 3, size=6)
    y = rng.integers(0, 3, 6)
    got = ood.learned_temperature_loss(jnp.asarray(h, jnp.float32), jnp.asarray(t, jnp.float32),
                                       jnp.asarray(y))
    np.testing.assert_allclose(got, _ce(h / t[:, None], y), rtol=RTOL)


def test_mixture_logits(rng):
    # PALM's pieces are checked against the reference's formulas in test_reference_palm.py;
    # the mixture read-out of this library here
    n, k, m, d = 8, 3, 2, 4
    z = rng.normal(size=(n, d))
    p = rng.normal(size=(k, m, d))
    w = rng.uniform(0.1, 1.0, size=(n, k, m))
    w /= w.sum(2, keepdims=True)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=2, keepdims=True)
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    tau = 0.5
    got = jax.jit(lambda z, p, w: ood.mixture_logits(z, p, w, temperature=tau))(f(z), f(p),
                                                                                f(w))
    s = np.einsum("nd,kmd->nkm", zn, pn) / tau
    np.testing.assert_allclose(got, logsumexp(s + np.log(w), axis=2), rtol=RTOL, atol=1e-6)


def test_energy_loss_gradient_pushes_margins(logits):
    # one gradient step on the regulariser lowers ID energies and raises outlier energies
    zi, zo, _ = logits
    zi, zo = jnp.asarray(zi, jnp.float32), jnp.asarray(zo, jnp.float32)
    grad = jax.jit(jax.grad(lambda a, b: ood.energy_margin_loss(a, b, m_in=-6.0, m_out=-2.0),
                            argnums=(0, 1)))
    gi, go = grad(zi, zo)
    e = lambda z: -logsumexp(np.asarray(z), axis=1)  # noqa: E731
    assert np.mean(e(zi - 0.01 * gi)) < np.mean(e(zi))
    assert np.mean(e(zo - 0.01 * go)) > np.mean(e(zo))


# ------------------------------------------------------------------------------------------
# bad input: one test per rule


def test_margins_order():
    with pytest.raises(ValueError, match="`m_out` must be larger than `m_in`"):
        ood.energy_margin_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), m_in=-5.0, m_out=-7.0)


def test_class_count_mismatch():
    with pytest.raises(ValueError, match="same number of classes"):
        ood.outlier_exposure_loss(jnp.ones((2, 3)), jnp.array([0, 1]), jnp.ones((2, 4)))


def test_labels_out_of_range():
    with pytest.raises(ValueError, match="must lie in"):
        ood.cross_entropy(jnp.ones((2, 3)), jnp.array([0, 3]))


def test_negative_weight():
    with pytest.raises(ValueError, match="`weight` must be >= 0"):
        ood.energy_regularized_loss(jnp.ones((2, 3)), jnp.array([0, 1]), jnp.ones((2, 3)),
                                    weight=-1.0)


def test_logitnorm_bad_temperature():
    with pytest.raises(ValueError, match="`temperature`"):
        ood.logitnorm_loss(jnp.ones((2, 3)), jnp.array([0, 1]), temperature=0.0)


def test_palm_single_prototype():
    with pytest.raises(ValueError, match="m >= 2"):
        ood.prototype_contrastive_loss(jnp.ones((3, 1, 4)))


def test_prototypes_wrong_rank():
    with pytest.raises(ValueError, match="`prototypes` must be 3-D"):
        ood.mixture_logits(jnp.ones((2, 4)), jnp.ones((3, 4)))


def test_momentum_range():
    with pytest.raises(ValueError, match="`momentum`"):
        ood.update_prototypes(jnp.ones((2, 2, 3)), jnp.ones((4, 3)), jnp.array([0, 1, 0, 1]),
                              momentum=1.5)
    with pytest.raises(ValueError, match="`momentum`"):
        ood.palm_loss(jnp.ones((4, 3)), jnp.array([0, 1, 0, 1]), jnp.ones((2, 2, 3)),
                      momentum=-0.1)


def test_top_k_type():
    with pytest.raises(ValueError, match="`top_k`"):
        ood.mixture_assignments(jnp.ones((4, 3)), jnp.ones((2, 2, 3)), jnp.array([0, 1, 0, 1]),
                                top_k=-1)


def test_proto_temperature():
    with pytest.raises(ValueError, match="`proto_temperature`"):
        ood.palm_loss(jnp.ones((4, 3)), jnp.array([0, 1, 0, 1]), jnp.ones((2, 2, 3)),
                      proto_temperature=0.0)


def test_losses_nan_input():
    with pytest.raises(ValueError, match="NaN or Inf"):
        ood.logitnorm_loss(jnp.array([[0.0, jnp.nan]]), jnp.array([0]))
