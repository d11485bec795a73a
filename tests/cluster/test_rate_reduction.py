"""MLC (coding-rate clustering) against an independent NumPy oracle of the reference code.

Reference: github.com/LeslieTrue/CPP (public code of MLC's successor, which trains the MLC
objective), ``loss/loss_fn.py`` @ 5a51168c09ec565d89961fd38cea7c519b3bc2cf (``MLCLoss``:
``discrimn = logdet(I + d/(n eps) W W^T) / 2`` with ``W = Z^T``; ``compress = sum_j trPi_j
logdet(I + d/(trPi_j eps) W diag(Pi_j) W^T) / (2n)``, ``trPi = Pi.sum + 1e-8``; loss
``-discrimn + gamma compress``), ``model/sink_distance.py`` @ 6d20bc7 (log-domain Sinkhorn
on cost ``-S`` with uniform marginals ``1/n``: even steps update ``u`` (rows), odd steps
``v`` (columns), ``pi = exp((S + u + v) / eps)``) and ``main.py`` @ 02e0470 (``S = |C C^T|``
of the unit cluster-head rows, ``Pi = n pi``, 5 steps, eta 0.175, MLCLoss(eps 0.1, gamma 1),
plus ``0.05 * 0.5 ||Pi||^2``; ``MLCLoss.forward`` receives ``Pi`` and takes the clusters from
``Pi.T``, i.e. the *columns* of ``Pi``; optimiser ``optim.SGD`` with momentum 0.9, lr 3e-3 /
weight decay 1e-4 for the representation, lr 2e-3 / weight decay 5e-3 for the cluster
head). The oracle is written from these formulas with
``numpy.linalg.slogdet`` and u/v potentials (our code: Cholesky log-det, log-domain
normalisations): float64, largest difference stated in the assertions' comments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import coding_rate, mlc, mlc_loss, mlc_membership
from tests.utils import enable_x64


def _oracle_membership(c, eta, n_iter):
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    s = np.abs(c @ c.T)
    n = len(s)
    u, v = np.zeros(n), np.zeros(n)
    lse = lambda a, ax: np.log(np.exp(a - a.max(ax, keepdims=True)).sum(ax)) + a.max(ax)  # noqa: E731
    for i in range(n_iter):
        m = (s + u[:, None] + v[None, :]) / eta
        if i % 2 == 0:
            u = eta * (np.log(1 / n) - lse(m, 1)) + u
        else:
            v = eta * (np.log(1 / n) - lse(m, 0)) + v
    return n * np.exp((s + u[:, None] + v[None, :]) / eta)


def _oracle_loss(z, pi, eps, gamma, reg):
    w = z.T
    p, m = w.shape
    discrimn = np.linalg.slogdet(np.eye(p) + p / (m * eps) * w @ w.T)[1] / 2
    compress = 0.0
    for row in pi:
        tr = row.sum() + 1e-8
        compress += tr * np.linalg.slogdet(np.eye(p) + p / (tr * eps) * (w * row) @ w.T)[1]
    compress /= 2 * m
    return -discrimn + gamma * compress + reg * 0.5 * np.sum(pi ** 2)


def test_mlc_matches_reference_oracle():
    rng = np.random.default_rng(0)
    with enable_x64():
        z = rng.normal(size=(9, 4))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        c = rng.normal(size=(9, 3))
        g = np.asarray(mlc_membership(jnp.asarray(c), eta=0.175, n_iter=5))
        g_ref = _oracle_membership(c, 0.175, 5)
        assert np.abs(g - g_ref).max() < 1e-12          # measured 7.8e-16
        np.testing.assert_allclose(g.sum(1), 1.0, atol=1e-12)
        ours = float(mlc_loss(jnp.asarray(z), jnp.asarray(g_ref), eps=0.1, gamma=1.0, reg=0.05))
        assert abs(ours - _oracle_loss(z, g_ref, 0.1, 1.0, 0.05)) < 1e-10  # measured 0
        # supervised MCR2 membership (k, n) and the rate alone
        onehot = np.eye(3)[rng.integers(0, 3, 9)].T
        ours = float(mlc_loss(jnp.asarray(z), jnp.asarray(onehot), eps=0.5, gamma=2.0, reg=0.0))
        assert abs(ours - _oracle_loss(z, onehot, 0.5, 2.0, 0.0)) < 1e-10
        r = float(coding_rate(jnp.asarray(z), eps=0.1))
        assert abs(r + _oracle_loss(z, np.zeros((1, 9)), 0.1, 1.0, 0.0)) < 1e-10


def _oracle_mlc_objective(x, a, b, eta=0.175, eps=0.1, reg=0.05):
    """The reference's training loss at linear heads ``A``, ``B``: unit rows, ``Pi`` from the
    cluster head, ``MLCLoss(Z, Pi)`` whose clusters are the columns of ``Pi``."""
    xc = x - x.mean(0)
    z = xc @ a
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    pi = _oracle_membership(xc @ b, eta, 5)
    return (_oracle_loss(z, pi.T, eps, 1.0, 0.0)     # the reference's Y.T: columns of Pi
            + reg * 0.5 * np.sum(pi ** 2))


def test_mlc_training_follows_the_reference_loss_and_sgd():
    """``mlc``'s loss at the PCA initialisation (both heads equal, the columns of Gamma as
    clusters) and after one step of the reference's SGD (gradient of the NumPy oracle by
    central finite differences, weight decay per head, lr 3e-3 / 2e-3), float64."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 3)) * np.array([2.0, 1.0, 0.5])
    with enable_x64():
        res = mlc(jnp.asarray(x), 2, key=jax.random.key(0), d=2, steps=2)
        losses = np.asarray(res.losses)
    a0 = np.linalg.svd(x - x.mean(0), full_matrices=False)[2][:2].T   # signs do not matter
    f = lambda a, b: _oracle_mlc_objective(x, a, b)  # noqa: E731
    assert abs(losses[0] - f(a0, a0)) < 1e-10        # measured 2.6e-16
    ga, gb, h = np.zeros_like(a0), np.zeros_like(a0), 1e-6
    for idx in np.ndindex(*a0.shape):
        e = np.zeros_like(a0)
        e[idx] = h
        ga[idx] = (f(a0 + e, a0) - f(a0 - e, a0)) / (2 * h)
        gb[idx] = (f(a0, a0 + e) - f(a0, a0 - e)) / (2 * h)
    a1 = a0 - 3e-3 * (ga + 1e-4 * a0)
    b1 = a0 - 2e-3 * (gb + 5e-3 * a0)
    assert abs(losses[1] - f(a1, b1)) < 1e-9         # measured 5.5e-14
    # the test can fail: the rows of Gamma as clusters (the previous wiring) differ by 1.7e-3
    xc = x - x.mean(0)
    z0 = xc @ a0 / np.linalg.norm(xc @ a0, axis=1, keepdims=True)
    pi = _oracle_membership(xc @ a0, 0.175, 5)
    rows = _oracle_loss(z0, pi, 0.1, 1.0, 0.0) + 0.025 * np.sum(pi ** 2)
    assert abs(losses[0] - rows) > 1e-5


@pytest.mark.slow  # 4-10 s of compiles; mlc's doctest runs such a union in the fast suite
def test_mlc_clusters_a_union_of_lines_where_kmeans_cannot():
    """Two lines through the origin (symmetric about it): k-means' centroids are ~0, so it
    splits by sign; MLC's |cos| membership separates the lines."""
    k1, k2 = jax.random.split(jax.random.key(0))
    t = jax.random.normal(k1, (40, 1))
    x = jnp.concatenate([t[:20] * jnp.array([[1.0, 0.2, 0]]), t[20:] * jnp.array([[0, 1.0, 0.3]])])
    x = x + 0.02 * jax.random.normal(k2, x.shape)
    res = mlc(x, 2, key=jax.random.key(1), steps=20)
    y = np.repeat([0, 1], 20)
    lab = np.asarray(res.labels)
    acc = max(np.mean(lab == y), np.mean(lab != y))
    assert acc == 1.0
    assert np.isfinite(np.asarray(res.losses)).all() and res.losses[-1] <= res.losses[0]


@pytest.mark.parametrize("call, match", [
    (lambda: mlc_loss(jnp.ones((4, 2)), jnp.ones((4, 3))), "membership"),
    (lambda: mlc_loss(jnp.ones((4, 2)), -jnp.ones((4, 4))), "nonnegative"),
    (lambda: mlc_loss(jnp.ones((4, 2)), jnp.ones((4, 4)), eps=0.0), "eps"),
    (lambda: mlc_loss(jnp.ones((4, 2)), jnp.ones((4, 4)), reg=-1.0), "reg"),
    (lambda: mlc_membership(jnp.ones((4, 2)), eta=-1.0), "eta"),
    (lambda: mlc_membership(jnp.ones((4, 2)), n_iter=0), "n_iter"),
    (lambda: mlc_membership(jnp.full((4, 2), jnp.nan)), "c"),
    (lambda: coding_rate(jnp.ones(4)), "z"),
    (lambda: mlc(jnp.ones((4, 2)), 5, key=jax.random.key(0)), "k"),
    (lambda: mlc(jnp.ones((4, 2)), 2, key=jax.random.key(0), d=3), "d"),
    (lambda: mlc(jnp.ones((4, 2)), 2, key=jax.random.key(0), momentum=1.0), "momentum"),
    (lambda: mlc(jnp.ones((4, 2)), 2, key=jax.random.key(0), learning_rate_head=0.0),
     "learning_rate_head"),
    (lambda: mlc(jnp.ones((4, 2)), 2, key=jax.random.key(0), weight_decay_head=-1.0),
     "weight_decay_head"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
