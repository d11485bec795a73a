"""MixOE and CLIPN against independent NumPy oracles of their reference code.

MixOE: github.com/zjysteven/MixOE, commit 3ced26ed97a65d0de5d98a9818903b083c9d3185,
``train/train_mixoe.py``: ``SoftCE`` (``sum(-t * log_softmax)``, batch mean), ``rand_bbox``
(``W = size[2]``, ``H = size[3]``, ``cut = sqrt(1 - lam)``, sides ``int(W cut)``,
``int(H cut)``, uniform centre, box ``[c - side // 2, c + side // 2)`` clipped to the image,
outlier patch pasted into the ID batch, ``lam = 1 - area / (W H)``); mixup
``lam x + (1 - lam) x_oe``; soft labels ``lam onehot + (1 - lam) / k``; loss
``CE(id) + beta * SoftCE(mixed)``.

CLIPN: github.com/xmed-lab/CLIPN, commit a45efd0197a99a974aaa82ff41caf6baddb109ca,
``src/open_clip/loss.py`` (``ClipLoss.forward`` in its gathered branch: ``logits =
s I T^T``, ``logits_no = s I T_no^T``, softmax over {yes, no}; binary-opposite loss
``-log`` of yes on the diagonal / N and of no off the diagonal / (N^2 - N); semantic-opposite
``2 - sqrt(2 - 2 <t, t_no> + 1e-4)``, mean), ``src/training/train.py`` (total ``0.5 *
(yes + no + tso)``) and ``src/zero_shot_infer.py`` (CTW: yes-probability at the argmax class;
ATD: ``sum_j yes_j softmax(logits)_j``). Features unit-normalised as the CLIP encoders do.

Shared inputs, float64. Measured largest differences: MixOE loss 1.8e-15, CLIPN terms 4.4e-16,
CTW / ATD scores 1.1e-16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ood import clipn_atd, clipn_ctw, clipn_losses, mixoe_loss, mixoe_mix
from tests.utils import enable_x64


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _oracle_mixoe(zi, y, zm, lam, beta):
    n, k = zi.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    ce = -np.mean(_log_softmax(zi)[np.arange(n), y])
    soft = lam * onehot + (1 - lam) * np.ones((n, k)) / k
    return ce + beta * np.mean(np.sum(-soft * _log_softmax(zm), axis=1))


def _oracle_box(shape, lam0, cx, cy):
    w, h = shape[2], shape[3]
    cut = np.sqrt(1.0 - lam0)
    cw, ch = int(w * cut), int(h * cut)
    x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
    y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
    return x1, x2, y1, y2


def _oracle_clipn(img, txt, txt_no, scale):
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    img, txt, txt_no = unit(img), unit(txt), unit(txt_no)
    yes, no = scale * img @ txt.T, scale * img @ txt_no.T
    e = np.exp(np.stack([yes, no], -1))
    p = e / e.sum(-1, keepdims=True)
    n = len(img)
    eye = np.eye(n)
    binary = eye * p[:, :, 0] + (1 - eye) * p[:, :, 1]
    loss = -np.log(binary)
    l_yes = (eye * loss).sum() / n
    l_no = ((1 - eye) * loss).sum() / (n * n - n)
    tso = np.mean(2 - np.sqrt(2 - 2 * (txt * txt_no).sum(-1) + 1e-4))
    return l_yes, l_no, tso, 0.5 * (l_yes + l_no + tso)


def _oracle_rules(z, zn):
    e = np.exp(np.stack([z, zn], -1))
    yes = (e / e.sum(-1, keepdims=True))[:, :, 0]
    ctw = yes[np.arange(len(z)), z.argmax(1)]
    p = np.exp(_log_softmax(z))
    return ctw, (yes * p).sum(1), (yes * p).max(1)


_BOXES = {_oracle_box((3, 2, 7, 9), l0, cx, cy) for l0 in np.linspace(0, 1, 201)
          for cx in range(7) for cy in range(9)}


def test_mixoe_loss_matches_reference():
    rng = np.random.default_rng(0)
    with enable_x64():
        zi, zm = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 3
        y = rng.integers(0, 5, 6)
        for lam, beta in ((0.37, 1.0), (0.0, 0.5), (1.0, 2.0)):
            ours = float(mixoe_loss(jnp.asarray(zi), jnp.asarray(y), jnp.asarray(zm),
                                    jnp.asarray(lam), weight=beta))
            assert abs(ours - _oracle_mixoe(zi, y, zm, lam, beta)) < 1e-12


def test_mixoe_mix_mixup_and_cutmix_follow_reference():
    rng = np.random.default_rng(1)
    xi = jnp.asarray(rng.normal(size=(3, 2, 7, 9)), jnp.float32)
    xo = jnp.asarray(rng.normal(size=(3, 2, 7, 9)), jnp.float32)
    mixed, lam = mixoe_mix(jax.random.key(0), xi, xo)
    np.testing.assert_allclose(mixed, lam * xi + (1 - lam) * xo, rtol=1e-6, atol=1e-6)
    mix_cut = jax.jit(lambda k: mixoe_mix(k, xi, xo, mode="cutmix"))
    seen = set()
    for s in range(5):
        mixed, lam = mix_cut(jax.random.key(s))
        from_out = np.asarray(mixed == xo).all(axis=(0, 1))      # pixels taken from outliers
        from_in = np.asarray(mixed == xi).all(axis=(0, 1))
        assert (from_out ^ from_in).all()                        # one source per pixel
        rows, cols = np.nonzero(from_out)
        if rows.size:                                            # the box is a rectangle
            x1, x2, y1, y2 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            assert from_out[x1:x2, y1:y2].all() and from_out.sum() == (x2 - x1) * (y2 - y1)
            # some lam0 and centre of the reference's rand_bbox give this box
            assert (x1, x2, y1, y2) in _BOXES
            seen.add((x2 - x1, y2 - y1))
        assert abs(float(lam) - (1 - from_out.sum() / 63)) < 1e-6
    assert len(seen) > 2  # boxes vary with the key


def test_clipn_losses_and_rules_match_reference():
    rng = np.random.default_rng(2)
    with enable_x64():
        img, txt, txt_no = (rng.normal(size=(5, 4)) for _ in range(3))
        out = clipn_losses(jnp.asarray(img), jnp.asarray(txt), jnp.asarray(txt_no),
                           logit_scale=7.0)
        ref = _oracle_clipn(img, txt, txt_no, 7.0)
        got = (out.binary_yes, out.binary_no, out.semantic_opposite, out.total)
        assert max(abs(float(a) - b) for a, b in zip(got, ref)) < 1e-12
        z, zn = rng.normal(size=(8, 4)) * 3, rng.normal(size=(8, 4)) * 3
        ctw, atd = clipn_ctw(jnp.asarray(z), jnp.asarray(zn)), clipn_atd(jnp.asarray(z),
                                                                          jnp.asarray(zn))
        r_ctw, r_atd, r_max = _oracle_rules(z, zn)
        np.testing.assert_allclose(ctw.score, r_ctw, atol=1e-14)
        np.testing.assert_allclose(atd.score, r_atd, atol=1e-14)
        # threshold-free decisions of the paper: CTW "no" wins at the prediction; ATD the
        # OOD class 1 - sum beats every ID class
        np.testing.assert_array_equal(ctw.is_id, r_ctw >= 0.5)
        np.testing.assert_array_equal(atd.is_id, r_max > 1 - r_atd)
        assert 0 < ctw.is_id.sum() < 8 and 0 < atd.is_id.sum() < 8


@pytest.mark.parametrize("call, match", [
    (lambda: mixoe_mix(jax.random.key(0), jnp.ones((2, 3)), jnp.ones((3, 3))), "x_out"),
    (lambda: mixoe_mix(jax.random.key(0), jnp.ones((2, 3)), jnp.ones((2, 3)), mode="cut"),
     "mode"),
    (lambda: mixoe_mix(jax.random.key(0), jnp.ones((2, 3)), jnp.ones((2, 3)), alpha=0.0),
     "alpha"),
    (lambda: mixoe_mix(jax.random.key(0), jnp.ones((2, 3)), jnp.ones((2, 3)), mode="cutmix"),
     "spatial_axes"),
    (lambda: mixoe_mix(jax.random.key(0), jnp.full((2, 3), jnp.nan), jnp.ones((2, 3))),
     "x_in"),
    (lambda: mixoe_loss(jnp.ones((2, 3)), jnp.array([0, 1]), jnp.ones((2, 3)), 1.5), "lam"),
    (lambda: mixoe_loss(jnp.ones((2, 3)), jnp.array([0, 1]), jnp.ones((3, 3)), 0.5),
     "logits_mixed"),
    (lambda: mixoe_loss(jnp.ones((2, 3)), jnp.array([0, 1]), jnp.ones((2, 3)), 0.5,
                        weight=-1.0), "weight"),
    (lambda: mixoe_loss(jnp.ones((2, 3)), jnp.array([0, 3]), jnp.ones((2, 3)), 0.5),
     "labels_in"),
    (lambda: clipn_losses(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((2, 4))),
     "text_features_no"),
    (lambda: clipn_losses(jnp.ones((1, 3)), jnp.ones((1, 3)), jnp.ones((1, 3))), "at least 2"),
    (lambda: clipn_losses(jnp.ones((2, 3)), jnp.ones((2, 3)), jnp.ones((2, 3)),
                          logit_scale=0.0), "logit_scale"),
    (lambda: clipn_ctw(jnp.ones((2, 3)), jnp.ones((2, 2))), "logits_no"),
    (lambda: clipn_atd(jnp.ones((2, 3)), jnp.full((2, 3), jnp.inf)), "logits_no"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_lam_checked_under_jit():
    f = jax.jit(lambda lam: mixoe_loss(jnp.ones((2, 3)), jnp.array([0, 1]), jnp.ones((2, 3)),
                                       lam))
    with pytest.raises(Exception, match="lam"):
        f(jnp.asarray(2.0)).block_until_ready()
