"""FastRP against a NumPy oracle of the authors' code, in float64.

Oracle: GTmac/FastRP, ``fastrp.py``, commit d45d1c64775d0a6f35a0ee32a6105c908f1f673a
(``fastrp_projection`` + ``fastrp_merge``): ``M = D^-1 A`` (``'trans'``) or ``A``; the
projection's components multiplied by ``diag(deg ** alpha)``; ``U_1 = M R'``,
``U_i = M U_{i-1}``; optional row l2 normalisation; weighted sum; ``sklearn.preprocessing.scale``.
Written from those formulas; the random matrix ``R`` is shared (drawn by jaxclust), and its
distribution is checked separately against scikit-learn's ``SparseRandomProjection``
definition (density ``1/sqrt(n)``, values ``+-sqrt(s / dim)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.preprocessing import normalize, scale

import jaxclust.graph as jg
from jaxclust.graph._fastrp import _projection
from tests.utils import enable_x64


def _sbm(rng, sizes=(20, 20, 20), p_in=0.5, p_out=0.03):
    lab = np.repeat(np.arange(len(sizes)), sizes)
    p = np.where(lab[:, None] == lab[None], p_in, p_out)
    a = np.triu(rng.uniform(size=p.shape) < p, 1).astype(float)
    return a + a.T, lab


def _oracle(a, r, weights, alpha, normalization, input_matrix):
    deg = a.sum(1)
    m = a / deg[:, None] if input_matrix == "transition" else a
    if alpha is not None:
        r = (deg**alpha)[:, None] * r
    us = [m @ r]
    for _ in range(len(weights) - 1):
        us.append(m @ us[-1])
    if normalization:
        us = [normalize(u, norm="l2", axis=1) for u in us]
    return scale(sum(w * u for w, u in zip(weights, us)))


def test_fastrp_matches_the_reference_computation():
    rng = np.random.default_rng(0)
    a, _ = _sbm(rng)
    key = jax.random.key(3)
    with enable_x64():
        worst = 0.0
        for proj, alpha, norm, inp in (("sparse", -0.5, False, "transition"),
                                       ("gaussian", None, True, "adjacency")):
            f = jax.jit(lambda a, proj=proj, alpha=alpha, norm=norm, inp=inp: jg.fastrp(
                a, key, weights=(0.5, 1.0, 4.0), dim=32, alpha=alpha, normalization=norm,
                projection=proj, input_matrix=inp))
            ours = np.asarray(f(a))
            r = np.asarray(_projection(key, 60, 32, proj, jnp.float64))
            ref = _oracle(a, r, (0.5, 1.0, 4.0), alpha, norm, inp)
            worst = max(worst, np.abs(ours - ref).max())
        # measured: 1.8e-15
        assert worst < 1e-10, worst


def test_sparse_projection_distribution():
    n, dim = 400, 64
    r = np.asarray(_projection(jax.random.key(0), n, dim, "sparse", jnp.float32))
    s = np.sqrt(n)
    vals = np.unique(r)
    np.testing.assert_allclose(vals, [-np.sqrt(s / dim), 0.0, np.sqrt(s / dim)], rtol=1e-6)
    # density 1/s = 0.05 over 25,600 entries: std of the frequency ~1.4e-3
    assert abs((r != 0).mean() - 1 / s) < 0.006
    assert abs((r > 0).mean() - (r < 0).mean()) < 0.006


def test_fastrp_separates_blocks():
    rng = np.random.default_rng(1)
    a, lab = _sbm(rng)
    u = np.asarray(jax.jit(lambda a: jg.fastrp(a, jax.random.key(0), weights=(1.0, 1.0, 1.0),
                                               dim=32))(jnp.asarray(a, jnp.float32)))
    cent = np.stack([u[lab == c].mean(0) for c in range(3)])
    pred = np.argmin(((u[:, None] - cent[None]) ** 2).sum(-1), axis=1)
    assert (pred == lab).mean() > 0.95


@pytest.mark.parametrize("kw, match", [
    (dict(weights=()), "`weights` must be a 1-D"),
    (dict(weights=(1.0,), projection="dense"), "`projection` must be"),
    (dict(weights=(1.0,), input_matrix="laplacian"), "`input_matrix` must be"),
    (dict(weights=(1.0,), dim=0), "`dim` must be"),
    (dict(weights=(float("nan"),)), "`weights` contains NaN"),
])
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        jg.fastrp(jnp.ones((3, 3)), jax.random.key(0), **kw)


def test_bad_key():
    with pytest.raises(ValueError, match="`key` must be a JAX PRNG key"):
        jg.fastrp(jnp.ones((3, 3)), 0, weights=(1.0,))
