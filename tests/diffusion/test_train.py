"""The training utility: a score network learns a 2-D Gaussian mixture (its DSM loss nears
the loss of the exact noise predictor), the EMA follows the NumPy recurrence, runs are
deterministic and independent of the chunking, label dropout, Flax NNX via split/merge,
NaN and bad input."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxclust.diffusion import VPSDE, GaussianMixture, dsm_loss, mixture_score_fn
from jaxclust.diffusion.train import dsm_objective, fit
from jaxclust.nn._score_equinox import ScoreMLP

SDE = VPSDE()
MIX = GaussianMixture(jnp.full(4, 0.25),
                      jnp.array([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]]),
                      jnp.broadcast_to(0.09 * jnp.eye(2), (4, 2, 2)))


def _sample(seed, n):
    """n points of MIX (NumPy: no compilation)."""
    rng = np.random.default_rng(seed)
    means = np.asarray(MIX.means)[rng.integers(0, 4, n)]
    return jnp.asarray(means + 0.3 * rng.normal(size=(n, 2)), jnp.float32)


@functools.cache
def _trained():
    x = _sample(0, 2000)
    net = ScoreMLP(2, width=32, depth=2, embed_dim=16, key=jax.random.key(1))
    res = fit(dsm_objective(SDE, time_sampling="stratified"), net, x,
              key=jax.random.key(2), steps=300, batch_size=128,
              optimizer=optax.adam(3e-3), ema_decay=0.95, log_every=100, progress=False)
    return x, net, res


def test_loss_decreases_towards_the_exact_predictor():
    """300 adam steps on a 4-component mixture: the mean loss of the last 50 steps is below
    half that of the first 50, and the DSM loss of the EMA network on 2,048 fresh points is
    within 30% of the loss of the exact noise predictor (-sigma_t times the mixture's score,
    the minimiser; same points, times and noises)."""
    x, _, res = _trained()
    assert res.losses.shape == (300,) and res.seconds > 0
    assert float(res.losses[-50:].mean()) < 0.5 * float(res.losses[:50].mean())
    fresh = _sample(3, 2048)
    score = mixture_score_fn(MIX, SDE)

    def exact_eps(x_t, t):
        return -SDE.marginal_coefs(t)[1][:, None] * score(x_t, t)

    key = jax.random.key(4)

    @jax.jit
    def losses(initial, trained):
        return [dsm_loss(f, fresh, key, SDE, time_sampling="stratified")
                for f in (exact_eps, trained, initial)]

    floor, trained, initial = map(float, losses(_trained()[1], res.ema))
    assert floor < trained < 1.3 * floor < initial, (floor, trained, initial)


def test_ema_follows_the_numpy_recurrence():
    """SGD on 0.5 ||p - a||^2 (data-independent): p_k = p_{k-1} - lr (p_{k-1} - a), and the
    EMA e_0 = p_0, e_k = d e_{k-1} + (1 - d) p_k, recomputed in NumPy float64."""
    a = np.array([1.0, -2.0, 0.5])
    p0 = {"w": jnp.zeros(3), "b": jnp.array(4.0)}
    lr, d, steps = 0.1, 0.8, 23

    def loss(p, batch, key):
        return 0.5 * jnp.sum((p["w"] - a) ** 2) + 0.5 * (p["b"] - 1.0) ** 2

    res = fit(loss, p0, jnp.zeros((5, 1)), key=jax.random.key(0), steps=steps, batch_size=2,
              optimizer=optax.sgd(lr), ema_decay=d, log_every=10, progress=False)
    target = {"w": a, "b": 1.0}
    for name in ("w", "b"):
        p = np.asarray(p0[name], np.float64)
        e = p.copy()
        for _ in range(steps):
            p = p - lr * (p - target[name])
            e = d * e + (1 - d) * p
        # 23 float32 steps of a contraction: rounding ~1e-7 relative
        np.testing.assert_allclose(res.params[name], p, rtol=1e-5)
        np.testing.assert_allclose(res.ema[name], e, rtol=1e-5)


def test_deterministic_and_independent_of_the_chunking():
    x = _sample(0, 64)
    params = {"m": jnp.zeros(2)}

    def loss(p, batch, key):  # depends on the batch and on the key
        return jnp.mean((batch - p["m"][None]) ** 2) + 0.1 * jax.random.normal(key)

    run = functools.partial(fit, loss, params, x, steps=30, batch_size=8, progress=False,
                            optimizer=optax.sgd(0.05))
    a = run(key=jax.random.key(1), log_every=7)
    b = run(key=jax.random.key(1), log_every=30)
    c = run(key=jax.random.key(2), log_every=30)
    # same steps in different jitted chunks: equal up to float32 rounding of fused code
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.ema["m"], b.ema["m"], rtol=1e-6, atol=1e-6)
    assert not np.allclose(a.losses, c.losses)


def test_non_trainable_leaves_pass_through():
    params = {"w": jnp.ones(2), "count": jnp.array(3), "act": jnp.tanh, "scale": 2}

    def loss(p, batch, key):
        return jnp.sum(p["act"](p["w"] * p["scale"]) ** 2) + 0.0 * p["count"]

    res = fit(loss, params, jnp.zeros((4, 1)), key=jax.random.key(0), steps=3, batch_size=2,
              progress=False)
    assert res.ema["act"] is jnp.tanh and res.ema["scale"] == 2
    assert int(res.ema["count"]) == 3 and not np.allclose(res.params["w"], 1.0)


def test_label_dropout_rate():
    """A model whose output is c on null labels and 0 otherwise: the 'simple' DSM loss
    is E||eps||^2/D + c^2 P(null) - (cross term, mean 0), so (loss - 1) / c^2 estimates the
    dropout rate (binomial s.d. sqrt(0.2 * 0.8 / 4000) = 0.006 at n = 4000)."""
    c, null = 30.0, 5
    x = jnp.zeros((4000, 2))
    y = jnp.zeros(4000, jnp.int32)

    def model(x_t, t, y):
        return jnp.where((y == null)[:, None], c, 0.0) * jnp.ones_like(x_t)

    dropped, kept = jax.jit(lambda key: (
        dsm_objective(SDE, label_dropout=0.2, null_label=null)(model, (x, y), key),
        dsm_objective(SDE)(model, (x, y), key)))(jax.random.key(0))
    rate = (float(dropped) - 1.0) / c ** 2
    assert abs(rate - 0.2) < 0.03, rate
    # no dropout: the mean of eps^2 over 8,000 standard normals (s.d. 0.016)
    assert abs(float(kept) - 1.0) < 0.05


def test_flax_nnx_through_split_and_merge():
    """The documented NNX route: train the state of ``nnx.split``, ``nnx.merge`` the EMA
    (a linear noise predictor: cheap to compile)."""
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    objective = dsm_objective(SDE)

    def loss(s, batch, key):
        lin = nnx.merge(graphdef, s)
        return objective(lambda x_t, t: lin(x_t), batch, key)

    res = fit(loss, state, _sample(0, 64), key=jax.random.key(1), steps=5, batch_size=16,
              progress=False)
    trained = nnx.merge(graphdef, res.ema)
    assert isinstance(trained, nnx.Linear)
    assert not np.allclose(trained.kernel[...], model.kernel[...])
    assert res.losses.shape == (5,)


def test_nan_loss_stops_the_run():
    def loss(p, batch, key):
        return jnp.sum(p["w"]) * jnp.where(jnp.sum(p["w"]) < -0.25, jnp.nan, 1.0)

    # sgd(0.1) on sum(w): w = 0, -0.1, -0.2, -0.3 at steps 0..3 (0-based): NaN from step 3
    with pytest.raises(FloatingPointError, match="NaN or infinite at step 3"):
        fit(loss, {"w": jnp.zeros(1)}, jnp.zeros((2, 1)), key=jax.random.key(0), steps=10,
            batch_size=1, optimizer=optax.sgd(0.1), log_every=4, progress=False)


def test_bad_input():
    p, x, key = {"w": jnp.zeros(1)}, jnp.zeros((4, 1)), jax.random.key(0)
    loss = lambda p, b, k: jnp.sum(p["w"] ** 2)  # noqa: E731
    kw = dict(key=key, steps=2, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="`steps` must be a Python int >= 1"):
        fit(loss, p, x, **{**kw, "steps": 0})
    with pytest.raises(ValueError, match="`batch_size` must be a Python int"):
        fit(loss, p, x, **{**kw, "batch_size": 2.5})
    with pytest.raises(ValueError, match=r"`ema_decay` must be a Python number in \[0, 1\)"):
        fit(loss, p, x, ema_decay=1.0, **kw)
    with pytest.raises(ValueError, match="must share a leading axis"):
        fit(loss, p, (x, jnp.zeros(3)), **kw)
    with pytest.raises(ValueError, match="`data` contains NaN"):
        fit(loss, p, x.at[0].set(jnp.nan), **kw)
    with pytest.raises(ValueError, match="no floating-point arrays"):
        fit(loss, {"n": jnp.array(1)}, x, **kw)
    with pytest.raises(ValueError, match="`null_label` is required"):
        dsm_objective(SDE, label_dropout=0.1)
    with pytest.raises(ValueError, match=r"`label_dropout` must be a Python number in \[0, 1\)"):
        dsm_objective(SDE, label_dropout=1.0, null_label=3)
