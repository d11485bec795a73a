"""``barycenter``: the entropic mode against a NumPy oracle of the same fixed point, implicit
gradients against finite differences (both modes), and bad input (POT cross-check of the
exact mode: tests/peers/test_pot_barycenter.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from jaxclust.ot import barycenter
from tests.conformance import check_grad_fd
from tests.utils import enable_x64

_rng = np.random.default_rng(0)
LOCS = _rng.normal(size=(2, 6, 2)) + np.asarray([0.0, 2.0])[:, None, None]
W = _rng.uniform(0.2, 1.0, size=(2, 6))
W = W / W.sum(1, keepdims=True)
X0 = _rng.normal(size=(4, 2))


def _oracle(locs, w, x, eps, iters=200):
    """Cuturi-Doucet Alg. 2 with entropic plans: log-domain Sinkhorn to 1e-13, numpy."""
    b = np.full(len(x), 1 / len(x))
    for _ in range(iters):
        new = np.zeros_like(x)
        for loc, wi in zip(locs, w):
            C = ((x[:, None] - loc[None]) ** 2).sum(-1)
            f, g = np.zeros(len(x)), np.zeros(len(loc))
            for _ in range(20000):
                f = eps * np.log(b) - eps * logsumexp((g[None] - C) / eps, axis=1)
                g = eps * np.log(wi) - eps * logsumexp((f[:, None] - C) / eps, axis=0)
                P = np.exp((f[:, None] + g[None] - C) / eps)
                if np.abs(P.sum(1) - b).sum() < 1e-13:
                    break
            new += 0.5 * (P @ loc) / b[:, None]
        if ((new - x) ** 2).sum() <= 1e-12:
            return new
        x = new
    return x


@pytest.mark.slow  # ~8 s: the numpy oracle iterates in Python
def test_entropic_mode_equals_numpy_oracle():
    with enable_x64():
        res = barycenter(jnp.asarray(LOCS), jnp.asarray(X0), jnp.asarray(W), epsilon=0.5,
                         tol=1e-12, inner_tol=1e-12)
        assert bool(res.converged)
        np.testing.assert_allclose(res.x, _oracle(LOCS, W, X0, 0.5), atol=1e-8)


def test_entropic_gradients_match_finite_differences():
    """Implicit differentiation of the fixed point X = F(X) (GMRES on VJPs of F, each through
    the implicitly differentiated Sinkhorn plans) w.r.t. the supports and the weights of the
    measures, float64, support tol 1e-24 (squared move), plans to 1e-12: rtol 1e-5 (FD step
    1e-4, O(h^2) truncation)."""
    x0 = jnp.asarray(X0[:3])

    def fn(locs, w):
        return barycenter(locs, x0, w / w.sum(1, keepdims=True), epsilon=0.5, tol=1e-24,
                          inner_tol=1e-12, max_iter=500).x

    check_grad_fd(fn, jnp.asarray(LOCS[:, :4]), jnp.asarray(W[:, :4]), argnums=(0, 1),
                  rtol=1e-5)


@pytest.mark.slow  # ~3.7 s at load 7; conformance case `barycenter` checks it too (slow)
def test_exact_gradient_matches_finite_differences():
    """Exact plans are locally constant permutations, so x = sum_i lam_i Y_i[s_i] near the
    solution and dx/dY_i is lam_i at the assigned points (no coordinate ties here)."""
    x0 = jnp.asarray(X0)
    check_grad_fd(lambda y: barycenter(y, x0, max_iter=50).x, jnp.asarray(LOCS[:, :4]),
                  argnums=(0,), rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(x_init=X0), "as many points as each measure"),
    (dict(weights=W), "exact mode \\(epsilon=None\\) needs uniform weights"),
    (dict(x_init=X0[:, :1], epsilon=0.1), "`x_init` must have the measures' 2 features"),
    (dict(locations=LOCS[0]), "`locations` must be 3-D"),
    (dict(epsilon=0.1, weights=W[:, :5]), "`weights` must have shape \\(N, n\\) = \\(2, 6\\)"),
    (dict(epsilon=-1.0), "`epsilon` must be a finite number > 0"),
    (dict(epsilon=0.1, x_init=np.where(X0 > 0, np.nan, X0)), "`x_init` contains NaN"),
])
def test_bad_input(kwargs, message):
    args = dict(locations=jnp.asarray(LOCS, jnp.float32),
                x_init=jnp.asarray(_rng.normal(size=(6, 2)), jnp.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        barycenter(args.pop("locations"), args.pop("x_init"), **args)
