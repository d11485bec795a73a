"""PALM against an independent NumPy oracle of its reference code.

Reference: github.com/jeff024/PALM, commit 71ce78d0635c16ed3952a3aea06367da3f6da0e0,
``util/loss_functions.py`` (class ``PALM``: ``sinkhorn``, ``mle_loss``, ``proto_contra``,
``forward``) with the defaults of ``util/loaders/args_loader.py`` and
``util/loaders/model_loader.py`` (temp 0.1, proto_m 0.999, cache_size 6 prototypes per
class, k = 5, epsilon 0.05, 3 Sinkhorn iterations, lambda_pcon 1). The oracle is written
from its formulas:

* prototypes are one ``(C * M, d)`` buffer; prototype ``i`` belongs to class ``i % C``
  (``arange(C).repeat(M)``), so jaxclust's ``p[c, j]`` is the reference's row ``j * C + c``;
* ``sinkhorn``: ``Q = exp(z P^T / eps)^T``, divided by its sum, 3 rounds of (rows: each
  prototype 1/K; columns: each sample 1/B), times B — over *all* prototypes;
* ``mle_loss``: class mask, top-k of ``mask * Q`` per row, ``U = colnorm(rownorm(topk *
  mask * Q))`` (L1), ``P' = normalize(m P + (1 - m) U^T z)``; codes again at ``P'``; logits
  ``z P'^T / temp`` (``P'`` detached); weights ``rownorm(topk * mask * Q')`` with the top-k
  set of ``U``; ``-mean(sum(w * logits) - log sum exp(logits))``;
* ``proto_contra``: ``S = P' P'^T / 0.5``; per prototype the *mean* of ``S`` over its
  same-class others minus the log-sum-exp over all others; minus the mean. ``P'`` is not
  detached there: its gradient reaches the features through ``U^T z``. ``Q`` is detached.

Shared inputs, float64. Measured: largest difference 9e-16 (codes, weights, updated
prototypes, both terms, the loss), gradient w.r.t. the features vs central differences of
the oracle with its detached tensors frozen: 6e-10 (FD error).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxclust.ood as ood

from ..utils import enable_x64

C, M, D, N = 2, 6, 4, 10  # classes, prototypes per class (reference: 6), features, batch


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _l1_rows(a):
    return a / np.maximum(a.sum(1, keepdims=True), 1e-12)


def _codes(z, protos, eps=0.05, iters=3):
    q = np.exp(z @ protos.T / eps).T  # K x B
    q = q / q.sum()
    kk, b = q.shape
    for _ in range(iters):
        q = q / q.sum(1, keepdims=True) / kk
        q = q / q.sum(0, keepdims=True) / b
    return (q * b).T


def _top(a, k):
    t = np.zeros_like(a)
    idx = np.argsort(-a, axis=1, kind="stable")[:, :k]
    np.put_along_axis(t, idx, 1.0, axis=1)
    return t


def _oracle(x, y, protos, *, beta, temp=0.1, k=5, lam=1.0, frozen=None):
    """The reference's PALM step on one batch; ``frozen``: the detached tensors of a
    previous call (to differentiate the oracle by finite differences)."""
    z = _unit(x)
    labels_p = np.tile(np.arange(C), M)
    mask = (y[:, None] == labels_p[None, :]).astype(float)
    if frozen is None:
        q = _codes(z, protos)
        upd = mask * q
        topk = _top(upd, k)
        u = _l1_rows(topk * upd)
        u = u / np.maximum(u.sum(0, keepdims=True), 1e-12)
    else:
        q, u = frozen["q"], frozen["u"]
    new = beta * protos + (1 - beta) * u.T @ z
    new = _unit(new)
    p_det = new if frozen is None else frozen["new"]
    q2 = _codes(z, p_det) if frozen is None else frozen["q2"]
    logits = z @ p_det.T / temp
    w = _l1_rows(_top(u, k) * mask * q2)
    mle = -np.mean((w * logits).sum(1) - np.log(np.exp(logits).sum(1)))
    pn = _unit(new)
    s = pn @ pn.T / 0.5
    s = s - s.max(1, keepdims=True)
    not_self = 1.0 - np.eye(C * M)
    pos_mask = (labels_p[:, None] == labels_p[None, :]) * not_self
    pos = (_l1_rows(pos_mask) * s).sum(1)
    neg = np.log((not_self * np.exp(s)).sum(1))
    pcon = -np.mean(pos - neg)
    return dict(q=q, u=u, w=w, new=new, q2=q2, mle=mle, pcon=pcon, loss=mle + lam * pcon,
                upd_weights=_l1_rows(topk * upd) if frozen is None else None)


def _to_ref(p):  # jaxclust (C, M, d) -> reference rows j * C + c
    return np.transpose(p, (1, 0, 2)).reshape(C * M, -1)


def _from_ref(a):  # reference (..., C * M[, d]) -> jaxclust (..., C, M[, d])
    if a.ndim == 2 and a.shape[1] == C * M:
        return a.reshape(a.shape[0], M, C).transpose(0, 2, 1)
    return a.reshape(M, C, -1).transpose(1, 0, 2)


def test_palm_equals_reference():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(N, D)) + 1.5 * np.eye(C, D)[np.arange(N) % C]
    y = np.arange(N) % C
    p = _unit(rng.normal(size=(C, M, D)))
    beta = 0.6  # far from 0.999 so that the update matters; the default is checked below
    ref = _oracle(x, y, _to_ref(p), beta=beta, lam=0.7)
    ref_default = _oracle(x, y, _to_ref(p), beta=0.999)
    with enable_x64():
        xj, pj, yj = jnp.asarray(x), jnp.asarray(p), jnp.asarray(y)

        @jax.jit
        def run(xj, pj):
            new = ood.update_prototypes(pj, xj, yj, momentum=beta)

            def loss(xj):
                return ood.palm_loss(xj, yj, pj, momentum=beta, weight=0.7)

            val, grad = jax.value_and_grad(loss)(xj)
            return (ood.mixture_assignments(xj, pj), ood.mixture_assignments(xj, pj, yj), new,
                    ood.prototype_contrastive_loss(new), val, grad, ood.palm_loss(xj, yj, pj),
                    ood.palm_loss(xj, yj, new, momentum=None, weight=0.7))

        out = [np.asarray(a) for a in run(xj, pj)]
    codes, weights, new, pcon, loss, grad, loss_default, loss_given = out
    diffs = {
        "codes": np.abs(codes - _from_ref(ref["q"])).max(),
        "weights": np.abs(weights.sum(1) - _from_ref(ref["upd_weights"]).sum(1)).max(),
        "prototypes": np.abs(new - _from_ref(ref["new"])).max(),
        "proto_contrastive": abs(float(pcon) - ref["pcon"]),
        "loss": abs(float(loss) - ref["loss"]),
        "loss_default": abs(float(loss_default) - ref_default["loss"]),
    }
    print("PALM oracle max diffs:", diffs)
    assert max(diffs.values()) < 1e-12, diffs
    # one Sinkhorn over all prototypes: rows sum to 1 over all k * m, not per class
    np.testing.assert_allclose(np.asarray(codes).sum((1, 2)), 1.0, rtol=1e-12)
    # the 5-of-6 pruning: 5 weights per sample, on its own class only
    np.testing.assert_array_equal((np.asarray(weights) > 0).sum((1, 2)), 5)
    # prototypes given (already updated, momentum=None): the pruning set comes from the codes
    # at the updated prototypes instead of the update's (the reference's); with momentum 0.6
    # four samples' fifth and sixth prototypes swap, a relative change of 2e-6 in the loss
    print("PALM momentum=None on updated prototypes vs the reference step:",
          abs(float(loss_given) - ref["loss"]))
    np.testing.assert_allclose(loss_given, ref["loss"], rtol=1e-4)
    # gradient path: central differences of the oracle with its detached tensors frozen
    # (codes, top-k weights, the prototypes of the likelihood term)
    fd = np.zeros_like(x)
    h = 1e-6
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = h
        fd[i] = (_oracle(x + e, y, _to_ref(p), beta=beta, lam=0.7, frozen=ref)["loss"]
                 - _oracle(x - e, y, _to_ref(p), beta=beta, lam=0.7, frozen=ref)["loss"]) / (2 * h)
    print("PALM gradient vs FD of the oracle:", np.abs(np.asarray(grad) - fd).max())
    np.testing.assert_allclose(grad, fd, atol=1e-7)
    # the contrastive term reaches the features only through the update: without it
    # (momentum 1: P' = P) the gradient is the likelihood term's alone
    ref_no_path = _oracle(x, y, _to_ref(p), beta=beta, lam=0.0)
    assert abs(ref["loss"] - ref_no_path["loss"]) > 1e-3


def test_update_is_a_mean_not_a_sum():
    # the weighted sum scaled with the batch size; the mean does not: a batch repeated
    # twice gives the same codes and the same update
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    y = jnp.asarray(np.arange(6) % 2)
    p = jnp.asarray(rng.normal(size=(2, 3, 3)), jnp.float32)
    up = jax.jit(lambda p, x, y: ood.update_prototypes(p, x, y, momentum=0.5))
    np.testing.assert_allclose(up(p, jnp.tile(x, (2, 1)), jnp.tile(y, 2)), up(p, x, y),
                               atol=1e-5)
