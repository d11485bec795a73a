"""The score networks of ``jaxclust.nn`` follow the calling convention of
``jaxclust.diffusion`` (batched ``model(x_t, t)`` / ``model(x_t, t, y)``, output of the input's
shape): they go through the DSM loss, the samplers, the likelihood and the diffusion
classifier. Shapes are checked by abstract evaluation (``eval_shape``: traced, not
compiled); the slow test computes a small MLP's loss and likelihood for real."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.diffusion import (
    VPSDE,
    as_score_fn,
    ddim,
    diffusion_classify,
    dsm_loss,
    euler_maruyama,
    ode_likelihood,
)
from jaxclust.nn._score_equinox import ScoreMLP, ScoreUNet

SDE = VPSDE()


def _abstract(cls, *args, **kwargs):
    return eqx.filter_eval_shape(lambda: cls(*args, **kwargs, key=jax.random.key(0)))


@pytest.mark.parametrize("kind", ["mlp", "unet"])
def test_networks_through_the_samplers_and_the_loss(kind):
    if kind == "mlp":
        net, shape = _abstract(ScoreMLP, 5, width=8, depth=1, embed_dim=8, num_classes=3), (5,)
    else:
        net, shape = _abstract(ScoreUNet, (8, 8), channels=8, embed_dim=8, num_classes=3), (8, 8)
    n = 4
    x = jnp.zeros((n,) + shape)
    y = jnp.array([0, 1, 2, 3])

    def run(net):
        score = as_score_fn(net, SDE)
        cond = as_score_fn(lambda x, t: net(x, t, y), SDE)
        return (dsm_loss(net, x, jax.random.key(1), SDE, y=y),
                ddim(score, jax.random.key(2), SDE, (n,) + shape, n_steps=3),
                euler_maruyama(cond, jax.random.key(3), SDE, (n,) + shape, n_steps=3),
                diffusion_classify(net, x[0], jax.random.key(4), SDE, num_classes=3,
                                   n_timesteps=2).errors)

    loss, s1, s2, errors = eqx.filter_eval_shape(run, net)
    assert loss.shape == () and s1.shape == s2.shape == (n,) + shape
    assert errors.shape == (3,)


@pytest.mark.slow
def test_mlp_likelihood_and_loss_values():
    """A real (tiny) evaluation: the DSM loss of an untrained MLP is finite and of order one
    (the output is O(1), the target a standard normal), and the PF-ODE log-likelihood is
    finite."""
    net = ScoreMLP(2, width=8, depth=1, embed_dim=4, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (16, 2))

    @jax.jit
    def run(net):
        return (dsm_loss(net, x, jax.random.key(2), SDE),
                ode_likelihood(as_score_fn(net, SDE), x[:4], SDE, n_steps=4).logp)

    loss, logp = run(net)
    assert 0.1 < float(loss) < 10.0
    assert logp.shape == (4,) and np.all(np.isfinite(logp))
