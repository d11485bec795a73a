"""ott-jax's Sinkhorn divergence tests, ported to ``jaxclust.ot.sinkhorn_divergence``.

Peer file: ott-jax/ott ``tests/tools/sinkhorn_divergence_test.py`` at tag 0.6.0, commit
5aa6da0fbd8fe9c255b749ac5fb49f3092860cc4. The peer's data is reproduced exactly (``rng``
fixture ``jax.random.key(0)``, its ``setUp``/``initialize`` splits: 13 and 17 (or 12) points
in ``[0, 1]^d`` with random weights), parameters and tolerances. float32, as the peer.

Translation of the API
----------------------
* ``sinkhorn_divergence.sinkhorn_divergence(PointCloud, x, y, a=, b=, epsilon=,
  cost_fn=, solve_kwargs={...})`` and ``sinkdiv(x, y, ...)`` ->
  ``sinkhorn_divergence(x, y, a, b, epsilon=, cost=, tol=...)``. Both are
  ``OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2`` with ``OT_eps`` the regularised cost
  (ott's ``reg_ot_cost``, jaxclust's ``reg_cost``). ott returns ``(value, output)`` with the
  three solves' potentials and iteration counts; jaxclust returns the value (checks on the
  output object are not ported).
* ``epsilon=None`` with ``share_epsilon=True`` (ott: the ``(x, y)`` geometry's automatic
  epsilon used for all three terms) -> ``epsilon=default_epsilon(x, y)``.
* ``solve_kwargs={"threshold": t}`` -> ``tol=t``; ``inner_iterations``, momentum/Anderson
  and ``rank`` (low-rank solves) have no analog; ``static_b``/``offset_static_b``,
  segmented divergences and grid geometries neither.
* Costs: ``SqEuclidean``/``Euclidean`` -> ``cost="sqeuclidean"``/``"euclidean"``
  (``SqPNorm(2.1)`` has no jaxclust name for point clouds).
* Unbalanced divergence (``tau_a``/``tau_b`` in ``solve_kwargs``): the same ``tau_a``/``tau_b``
  of ``sinkhorn_divergence`` (added in f252cef; before, they raised a ValueError). Note that
  ott-jax 0.6 builds unbalanced plans with the entropy relative to 1, jaxclust (like POT)
  relative to ``a b^T``, so values differ; the peer's assertion (positivity) is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.ot import default_epsilon, sinkhorn, sinkhorn_divergence


def _value(out):
    # the divergence may become a result object with the value and the convergence flags
    for name in ("value", "divergence"):
        if hasattr(out, name):
            return getattr(out, name)
    return out


def _setup(dim=4, num_points=(13, 17)):
    """The peer's ``setUp``: weights from the first split, points from a second split."""
    rng, *rngs = jax.random.split(jax.random.key(0), 3)
    a = jax.random.uniform(rngs[0], (num_points[0],))
    b = jax.random.uniform(rngs[1], (num_points[1],))
    rngs = jax.random.split(rng, 2)
    x = jax.random.uniform(rngs[0], (num_points[0], dim))
    y = jax.random.uniform(rngs[1], (num_points[1], dim))
    return x, y, a / jnp.sum(a), b / jnp.sum(b)


# euclidean: slow (time budget: three more solver compilations); sqeuclidean stays fast
@pytest.mark.parametrize("cost", ["sqeuclidean", pytest.param("euclidean",
                                                               marks=pytest.mark.slow)])
def test_euclidean_point_cloud(cost):
    """Peer (eps = 5e-2): the divergence is >= 0 and equals the combination of the three
    separately solved regularised costs (1e-5); a cloud against itself has divergence 0
    within 1e-5 (eps = 0.1; the peer's threshold 1e-5 -> the default tol: jaxclust solves
    the same problem for the three terms). (Its gradient: ``test_gradient_...`` below.)"""
    x, y, a, b = _setup()
    epsilon = 5e-2
    div = _value(sinkhorn_divergence(x, y, a, b, epsilon=epsilon, cost=cost))
    assert float(div) >= 0.0
    div2_xy = sinkhorn(x, y, a, b, epsilon=epsilon, cost=cost).reg_cost
    div2_xx = sinkhorn(x, x, a, a, epsilon=epsilon, cost=cost).reg_cost
    div2_yy = sinkhorn(y, y, b, b, epsilon=epsilon, cost=cost).reg_cost
    np.testing.assert_allclose(div, div2_xy - 0.5 * (div2_xx + div2_yy), rtol=1e-5,
                               atol=1e-5)
    self_div = _value(sinkhorn_divergence(x, x, epsilon=1e-1, cost=cost))
    np.testing.assert_allclose(self_div, 0.0, rtol=1e-5, atol=1e-5)


def test_euclidean_autoepsilon():
    """Peer: with the automatic epsilon (shared by the three terms) and threshold 1e-2 (the
    default tol 1e-3 here, to share compilations) the divergence is positive; here also: the
    three terms used that one epsilon."""
    x, y, a, b = _setup()
    eps = default_epsilon(x, y)
    div = _value(sinkhorn_divergence(x, y, a, b, epsilon=eps))
    assert float(div) > 0.0
    kw = dict(epsilon=eps)
    terms = (sinkhorn(x, y, a, b, **kw).reg_cost, sinkhorn(x, x, a, a, **kw).reg_cost,
             sinkhorn(y, y, b, b, **kw).reg_cost)
    np.testing.assert_allclose(div, terms[0] - 0.5 * (terms[1] + terms[2]), rtol=1e-5,
                               atol=1e-6)


def test_euclidean_point_cloud_weights_unb():
    """Peer (eps = 0.1, threshold 1e-2, tau_a = 0.8, tau_b = 0.9): the unbalanced divergence
    is positive."""
    x, y, a, b = _setup()
    div = _value(sinkhorn_divergence(x, y, a, b, epsilon=0.1, tol=1e-2, tau_a=0.8, tau_b=0.9))
    assert float(div) > 0.0


def test_gradient_generic_point_cloud_wrapper():
    """Peer (13 vs 12 points in dimension 3, eps = 1, threshold 0.05): the gradient w.r.t.
    ``x`` is NaN-free and matches central differences (step 1e-3) within 1e-2."""
    rng, *rngs = jax.random.split(jax.random.key(0), 3)
    a = jax.random.uniform(rngs[0], (13,))
    b = jax.random.uniform(rngs[1], (12,))
    a, b = a / jnp.sum(a), b / jnp.sum(b)
    rngs = jax.random.split(rng, 3)
    x = jax.random.uniform(rngs[0], (13, 3))
    y = jax.random.uniform(rngs[1], (12, 3))

    @jax.jit
    @jax.value_and_grad
    def loss_fn(x):
        return _value(sinkhorn_divergence(x, y, a, b, epsilon=1.0, tol=0.05))

    delta = jax.random.normal(rngs[2], x.shape)
    eps = 1e-3
    loss_value, grad_loss = loss_fn(x)
    custom_grad = jnp.sum(delta * grad_loss)
    assert not jnp.isnan(loss_value)
    assert grad_loss.shape == x.shape
    np.testing.assert_array_equal(jnp.isnan(grad_loss), False)
    plus, _ = loss_fn(x + eps * delta)
    minus, _ = loss_fn(x - eps * delta)
    np.testing.assert_allclose(custom_grad, (plus - minus) / (2 * eps), rtol=1e-2, atol=1e-2)
