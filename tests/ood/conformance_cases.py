"""Conformance cases of ``jaxclust.ood`` and ``jaxclust.metrics.detection``: every public
function under jit and vmap, and against float64 finite differences where it is
differentiable.

Fast cases group several public functions in one compiled program (one compilation for
jit, vmap and the float64 gradient instead of one per function, to keep the suite's time
budget); every function also has a case of its own, marked slow. Statistics enter the
wrapped functions as plain arrays (the NamedTuples are rebuilt inside),
so the gradient checks also cover the dependence on fitted statistics. Not differentiated:
the detection metrics (piecewise constant), the Sinkhorn assignments of PALM and everything
built on them (``mixture_assignments``, ``palm_loss``, ``update_prototypes``: the codes are
stop-gradient targets, so autodiff is by design not the derivative finite differences see;
the differentiable parts, ``mixture_logits`` and ``prototype_contrastive_loss``, are checked).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxclust.metrics.detection as jdet
import jaxclust.ood as ood
from tests.conformance import Case

MODULES = [ood, jdet]

_Y = jnp.asarray([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], jnp.int32)
_ID = jnp.asarray([1, 1, 0, 1, 0, 0, 1, 0, 1, 1], jnp.int32)


def _tol(dtype):
    return 1e-10 if dtype == jnp.float64 else 1e-5


def _linear(x, w, b):
    return x @ w + b[None, :]


def _msp(z, t):
    return ood.msp(z, temperature=t)


def _energy(z, t):
    return ood.energy(z, temperature=t)


def _gen(z):
    return ood.gen(z), ood.gen(z, m=2, gamma=0.3)


def _odin(x, w, b):
    return ood.odin(lambda u: _linear(u, w, b), x, temperature=2.0, epsilon=0.01)


def _fit_mahalanobis(x):
    st = ood.fit_mahalanobis(x, _Y, num_classes=3)
    return tuple(st)


def _mahalanobis(f, x):
    st = ood.fit_mahalanobis(x, _Y, num_classes=3)
    return ood.mahalanobis(f, st)


def _relative_mahalanobis(f, x):
    st = ood.fit_mahalanobis(x, _Y, num_classes=3)
    return ood.relative_mahalanobis(f, st)


def _fit_knn(x):
    return ood.fit_knn(x).bank


def _knn(f, x):
    st = ood.fit_knn(x)
    return ood.knn(f, st, k=2), ood.knn(f, st, k=3, chunk_size=5)


def _fit_react(x):
    return ood.fit_react(x, percentile=75.0).threshold


def _react(f, w, b, c):
    return ood.react(f, w, b, ood.ReActStats(c))


def _ash(f, w, b):
    f = jnp.abs(f)  # post-ReLU activations
    return (ood.ash(f, w, b, percentile=50.0, variant="s"),
            ood.ash(f, w, b, percentile=50.0, variant="p"))


def _fit_vim(x, w, b):
    st = ood.fit_vim(x, w, b, dim=2)
    # the residual basis is defined up to rotation: compare its projector
    return st.origin, st.residual_basis @ st.residual_basis.T, st.alpha


def _vim(f, x, w, b):
    return ood.vim(f, w, b, ood.fit_vim(x, w, b, dim=2))


def _fit_prototypes(x):
    return tuple(ood.fit_prototypes(x, _Y, num_classes=3))


def _sinkhorn_score(f, x):
    st = ood.fit_prototypes(x, _Y, num_classes=3)
    return ood.sinkhorn_score(f, st, epsilon=0.2, tol=_tol(f.dtype), max_iter=5000)


def _ablated(h, t):
    return ood.ablated_energy(h, t)


def _cosine(x, w):
    return ood.cosine_logits(x, w)


def _learned_t(x, w, b):
    return ood.learned_temperature(x, w, b)


def _lt_loss(h, t):
    return ood.learned_temperature_loss(h, t, _Y[: h.shape[0]])


def _ce(z):
    return ood.cross_entropy(z, _Y[: z.shape[0]])


def _margin(zi, zo):
    return ood.energy_margin_loss(zi, zo, m_in=-3.0, m_out=-0.5)


def _energy_reg(zi, zo):
    return ood.energy_regularized_loss(zi, _Y[: zi.shape[0]], zo, m_in=-3.0, m_out=-0.5)


def _oe(zi, zo):
    return ood.outlier_exposure_loss(zi, _Y[: zi.shape[0]], zo)


def _logitnorm(z, t):
    return ood.logitnorm_loss(z, _Y[: z.shape[0]], temperature=t)


def _assign(f, p):
    return ood.mixture_assignments(f, p, epsilon=0.5, n_iter=3)


def _mixture_logits(f, p, w):
    return ood.mixture_logits(f, p, w / w.sum(-1, keepdims=True), temperature=0.5)


def _proto_contrastive(p):
    return ood.prototype_contrastive_loss(p, temperature=0.5)


def _palm(f, p):
    # top_k=1 of m=2: the pruning runs; momentum None: the prototypes as given
    y = _Y[: f.shape[0]]
    return (ood.palm_loss(f, y, p, temperature=0.5, epsilon=0.5, top_k=1, momentum=0.9),
            ood.palm_loss(f, y, p, temperature=0.5, epsilon=0.5, momentum=None),
            ood.mixture_assignments(f, p, y, epsilon=0.5, top_k=1))


def _update(p, f):
    return ood.update_prototypes(p, f, _Y[: f.shape[0]], momentum=0.9, epsilon=0.5, top_k=1)


def _fpr_auroc(s, y):
    return jdet.fpr_at_tpr(s, y), jdet.fpr_at_tpr(s, y, positive="ood"), jdet.auroc(s, y)


def _metrics(s, y):
    return (jdet.auroc(s, y), jdet.fpr_at_tpr(s, y), jdet.fpr_at_tpr(s, y, positive="ood"),
            jdet.aupr_in(s, y), jdet.aupr_out(s, y))


# ------------------------------------------------------------------------------------------
# grouped fast cases: several public functions in one compiled program (the test budget);
# every function also has its own case below, marked slow


def _group_logit(z):
    return (ood.msp(z, temperature=1.5), ood.max_logit(z), ood.energy(z, temperature=0.7),
            *_gen(z))


def _group_features(f, x):
    # statistics fitted once (differentiated through, like the scores)
    st = ood.fit_mahalanobis(x, _Y, num_classes=3)
    return (ood.mahalanobis(f, st), ood.relative_mahalanobis(f, st),
            ood.knn(f, ood.fit_knn(x), k=3, chunk_size=5))


def _group_head(f, x, w, b):
    return (ood.vim(f, w, b, ood.fit_vim(x, w, b, dim=2)),
            ood.react(f, w, b, ood.fit_react(x, percentile=75.0)),
            ood.ash(jnp.abs(f), w, b, percentile=50.0, variant="s"))


def _group_temperature(x, w, v, c):
    h = ood.cosine_logits(x, w)
    t = ood.learned_temperature(x, v, c)
    t_bn = ood.learned_temperature(x, v, c, batch_norm=True, scale=1.3, offset=0.1)
    return (h, t, t_bn, ood.ablated_energy(h, t),
            ood.learned_temperature_loss(h, t_bn, _Y[: x.shape[0]]))


def _group_losses(zi, zo, t):
    return (_ce(zi), _margin(zi, zo), _energy_reg(zi, zo), _oe(zi, zo), _logitnorm(zi, t))


def _group_palm(f, p, w):
    return _mixture_logits(f, p, w), _proto_contrastive(p)


def _group_logits_losses(z, zo, t):
    return (*_group_logit(z), *_group_losses(z, zo, t))


def _group_head_odin(f, x, w, b):
    return (*_group_head(f, x, w, b), _odin(f, w, b))


def _group_temperature_palm(x, w, v, c, hf, p, pw):
    return (*_group_temperature(x, w, v, c), *_group_palm(hf, p, pw))


def _group_palm_sinkhorn(f, p):
    return _assign(f, p), *_palm(f, p), _update(p, f)


def _group_mixoe_clipn(xi, xo, img, txt, txt_no):
    import jax
    mixed, lam = ood.mixoe_mix(jax.random.key(3), xi, xo)
    loss = ood.mixoe_loss(xi, _Y[: xi.shape[0]], mixed, lam, weight=0.5)
    out = ood.clipn_losses(img, txt, txt_no, logit_scale=5.0)
    z, zn = 5.0 * img @ txt.T, 5.0 * img @ txt_no.T
    return (mixed, loss, *out, out.total, ood.clipn_ctw(z, zn).score,
            ood.clipn_atd(z, zn).score)


def cases() -> list[Case]:
    rng = np.random.default_rng(5)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    z = f32(rng.normal(size=(6, 4)) * 2.0)
    zo = f32(rng.normal(size=(5, 4)))
    x = f32(rng.normal(size=(12, 3)) + 2.0 * np.eye(3)[np.asarray(_Y)])
    f = f32(rng.normal(size=(5, 3)) * 1.5)
    w = f32(rng.normal(size=(3, 4)))
    b = f32(rng.normal(size=4))
    h = f32(rng.uniform(-1, 1, size=(6, 4)))
    temps = f32(rng.uniform(1.0, 3.0, size=6))
    protos = f32(rng.normal(size=(3, 2, 3)))
    pw = f32(rng.uniform(0.2, 1.0, size=(6, 3, 2)))
    scores = f32(np.round(rng.normal(size=10), 1))
    x4 = x[:5]
    return [
        # fast grouped cases (see above): jit, vmap and grad of every differentiable function
        Case("ood-group-logits-losses", "msp", _group_logits_losses, (z, zo, f32(0.5)),
             (0, 1, 2)),
        # pinv / eigh in float32: 1e-4
        Case("ood-group-feature-scores", "mahalanobis", _group_features, (f, x), (0, 1),
             rtol=1e-4),
        Case("ood-group-head-odin", "vim", _group_head_odin, (f, x, w, b), (0, 1, 2, 3),
             rtol=1e-4),
        Case("ood-group-temperature-palm", "ablated_energy", _group_temperature_palm,
             (x4, w, f32(rng.normal(size=3) * 0.3), f32(0.2), h[:, :3], protos, pw),
             (0, 1, 2, 3, 4, 5, 6)),
        # MixOE (logits stand in for inputs) and CLIPN; the decisions are piecewise constant
        Case("ood-group-mixoe-clipn", "mixoe_loss", _group_mixoe_clipn,
             (z[:, :3].reshape(6, 3), zo[:, :3].reshape(5, 3)[:1].repeat(6, 0) * 0.5
              + z[:, 1:], h[:4, :3], x4[:4], f[:4]), (0, 1, 2, 3, 4)),
        # Sinkhorn codes are stop-gradient targets: jit and vmap only
        Case("ood-group-palm-sinkhorn", "palm_loss", _group_palm_sinkhorn, (h[:, :3], protos),
             slow=True),  # ~3 s of Sinkhorn compiles; tests/ood/test_losses.py runs them fast
        # detection metrics: piecewise constant in the scores (jit / vmap only); the AUPRs
        # are also run under jit(vmap) in tests/metrics/test_detection.py
        Case("detection-fpr-auroc", "fpr_at_tpr", _fpr_auroc, (scores, _ID)),
        # one case per public function, slow: the grouped cases above run the same code
        Case("ood-msp", "msp", _msp, (z, f32(1.5)), (0, 1), slow=True),
        Case("ood-max_logit", "max_logit", ood.max_logit, (z,), (0,), slow=True),
        Case("ood-energy", "energy", _energy, (z, f32(0.7)), (0, 1), slow=True),
        Case("ood-gen", "gen", _gen, (z,), (0,), slow=True),
        Case("ood-odin", "odin", _odin, (f, w, b), (0, 1, 2), slow=True),
        Case("ood-fit_mahalanobis", "fit_mahalanobis", _fit_mahalanobis, (x,), (0,),
             rtol=1e-4, slow=True),
        Case("ood-mahalanobis", "mahalanobis", _mahalanobis, (f, x), (0, 1), rtol=1e-4,
             slow=True),
        Case("ood-relative_mahalanobis", "relative_mahalanobis", _relative_mahalanobis, (f, x),
             (0, 1), rtol=1e-4, slow=True),
        Case("ood-fit_knn", "fit_knn", _fit_knn, (x,), (0,), slow=True),
        Case("ood-knn", "knn", _knn, (f, x), (0, 1), slow=True),
        Case("ood-fit_react", "fit_react", _fit_react, (x,), (0,), slow=True),
        Case("ood-react", "react", _react, (f, w, b, f32(1.0)), (0, 1, 2, 3), slow=True),
        Case("ood-ash", "ash", _ash, (f, w, b), (0, 1, 2), slow=True),
        Case("ood-fit_vim", "fit_vim", _fit_vim, (x, w, b), (0, 1, 2), rtol=1e-4, slow=True),
        Case("ood-vim", "vim", _vim, (f, x, w, b), (0, 1, 2, 3), rtol=1e-4, slow=True),
        Case("ood-fit_prototypes", "fit_prototypes", _fit_prototypes, (x,), (0,), slow=True),
        # implicit differentiation through Sinkhorn; also tested against POT in test_scores
        Case("ood-sinkhorn_score", "sinkhorn_score", _sinkhorn_score, (f, x), (0, 1),
             rtol=1e-4, slow=True),
        Case("ood-ablated_energy", "ablated_energy", _ablated, (h, temps), (0, 1), slow=True),
        Case("ood-cosine_logits", "cosine_logits", _cosine, (x, w), (0, 1), slow=True),
        Case("ood-learned_temperature", "learned_temperature", _learned_t,
             (x, f32(rng.normal(size=3) * 0.3), f32(0.2)), (0, 1, 2), slow=True),
        Case("ood-learned_temperature_loss", "learned_temperature_loss", _lt_loss, (h, temps),
             (0, 1), slow=True),
        Case("ood-cross_entropy", "cross_entropy", _ce, (z,), (0,), slow=True),
        Case("ood-energy_margin_loss", "energy_margin_loss", _margin, (z, zo), (0, 1),
             slow=True),
        Case("ood-energy_regularized_loss", "energy_regularized_loss", _energy_reg, (z, zo),
             (0, 1), slow=True),
        Case("ood-outlier_exposure_loss", "outlier_exposure_loss", _oe, (z, zo), (0, 1),
             slow=True),
        Case("ood-logitnorm_loss", "logitnorm_loss", _logitnorm, (z, f32(0.5)), (0, 1),
             slow=True),
        Case("ood-mixture_assignments", "mixture_assignments", _assign, (h[:, :3], protos),
             slow=True),
        Case("ood-mixture_logits", "mixture_logits", _mixture_logits, (h[:, :3], protos, pw),
             (0, 1, 2), slow=True),
        Case("ood-prototype_contrastive_loss", "prototype_contrastive_loss",
             _proto_contrastive, (protos,), (0,), slow=True),
        Case("ood-palm_loss", "palm_loss", _palm, (h[:, :3], protos), slow=True),
        Case("ood-update_prototypes", "update_prototypes", _update, (protos, h[:, :3]),
             slow=True),
        Case("ood-mixoe_mix", "mixoe_mix",
             lambda a, b: ood.mixoe_mix(jnp.asarray([0, 1], jnp.uint32), a, b, mode="cutmix"),
             (x.reshape(1, 6, 6), x[::-1].reshape(1, 6, 6)), (0, 1), slow=True),
        Case("ood-clipn_losses", "clipn_losses", lambda a, b, c: tuple(ood.clipn_losses(a, b, c)),
             (h[:4, :3], x4[:4], f[:4]), (0, 1, 2), slow=True),
        Case("ood-clipn_ctw", "clipn_ctw", lambda a, b: ood.clipn_ctw(a, b).score, (z, zo[:1] + z),
             (0, 1), slow=True),
        Case("ood-clipn_atd", "clipn_atd", lambda a, b: ood.clipn_atd(a, b).score, (z, zo[:1] + z),
             (0, 1), slow=True),
        Case("detection-all", "auroc", _metrics, (scores, _ID), slow=True),
        Case("detection-aupr_in", "aupr_in", lambda s, y: jdet.aupr_in(s, y), (scores, _ID),
             slow=True),
        Case("detection-aupr_out", "aupr_out", lambda s, y: jdet.aupr_out(s, y),
             (scores, _ID), slow=True),
    ]
