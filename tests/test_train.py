"""The generic training utility ``jaxclust.train.fit``: deterministic keys, the EMA and the
step index against a NumPy recomputation, the per-epoch history (mean losses, metrics on the
EMA or on the parameters), NaN stop, bad input, and the same run through Equinox and Flax
NNX. (Score-network training through it: tests/diffusion/test_train.py.)"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxclust.train import FitResult, fit

X = jnp.asarray(np.random.default_rng(0).normal(size=(32, 3)), jnp.float32)


def test_deterministic_keys():
    def loss(p, batch, key):  # depends on the batch and on the key
        return jnp.mean((batch - p["m"][None]) ** 2) + 0.1 * jax.random.normal(key)

    run = functools.partial(fit, loss, {"m": jnp.zeros(3)}, X, steps=10, batch_size=4,
                            log_every=5, optimizer=optax.sgd(0.05), progress=False)
    a, b, c = run(key=jax.random.key(1)), run(key=jax.random.key(1)), run(key=jax.random.key(2))
    assert isinstance(a, FitResult)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.ema["m"], b.ema["m"])
    assert not np.allclose(a.losses, c.losses)


def test_ema_and_step_index_follow_the_numpy_recurrence():
    """SGD on 0.5 ||p - a||^2 + step * sum(p) (data-independent): the gradient is
    p - a + step, so p_k = p_{k-1} - lr (p_{k-1} - a + (k - 1)), and the EMA
    e_0 = p_0, e_k = d e_{k-1} + (1 - d) p_k, recomputed in NumPy float64."""
    a = np.array([1.0, -2.0, 0.5])
    lr, d, steps = 0.1, 0.8, 13

    def loss(p, batch, key, step):
        return 0.5 * jnp.sum((p["w"] - a) ** 2) + 0.01 * step * jnp.sum(p["w"])

    res = fit(loss, {"w": jnp.zeros(3)}, X, key=jax.random.key(0), steps=steps, batch_size=2,
              optimizer=optax.sgd(lr), ema_decay=d, log_every=5, pass_step=True,
              progress=False)
    p = np.zeros(3)
    e = p.copy()
    for k in range(steps):
        p = p - lr * (p - a + 0.01 * k)
        e = d * e + (1 - d) * p
    # 13 float32 steps of a contraction: rounding ~1e-7 relative
    np.testing.assert_allclose(res.params["w"], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.ema["w"], e, rtol=1e-5, atol=1e-6)


def test_history_per_epoch():
    """Epochs of log_every = 4 steps over 10 steps: entries after steps 4, 8, 10; the loss
    entry is the mean of the epoch's step losses; metrics on the EMA by default, on the
    current parameters with eval_on='params' (the last entry then equals the final
    parameters)."""
    def loss(p, batch, key):
        return jnp.mean((batch - p["m"][None]) ** 2)

    seen = []

    def metrics(p):
        seen.append(p)
        return {"m0": p["m"][0], "norm": float(jnp.linalg.norm(p["m"]))}

    run = functools.partial(fit, loss, {"m": jnp.ones(3)}, X, key=jax.random.key(3), steps=10,
                            batch_size=8, log_every=4, optimizer=optax.sgd(0.2),
                            ema_decay=0.5, eval_fn=metrics, progress=False)
    on_ema, on_params = run(), run(eval_on="params")
    h = on_ema.history
    assert sorted(h) == ["loss", "m0", "norm", "step"]
    np.testing.assert_array_equal(h["step"], [4, 8, 10])
    means = [on_ema.losses[:4].mean(), on_ema.losses[4:8].mean(), on_ema.losses[8:].mean()]
    np.testing.assert_allclose(h["loss"], means, rtol=1e-6)
    assert len(seen) == 6 and isinstance(h["m0"], np.ndarray)
    np.testing.assert_allclose(h["m0"][-1], on_ema.ema["m"][0], rtol=1e-6)
    np.testing.assert_allclose(on_params.history["m0"][-1], on_params.params["m"][0],
                               rtol=1e-6)
    # the EMA lags the iterate (decay 0.5 from m = 1 towards the data mean, ~0)
    assert abs(h["m0"][0]) > abs(on_params.history["m0"][0])


def test_nan_loss_stops_the_run():
    def loss(p, batch, key):
        return jnp.sum(p["w"]) * jnp.where(jnp.sum(p["w"]) < -0.25, jnp.nan, 1.0)

    # sgd(0.1) on sum(w): w = 0, -0.1, -0.2, -0.3 at steps 0..3 (0-based): NaN from step 3
    with pytest.raises(FloatingPointError, match="NaN or infinite at step 3"):
        fit(loss, {"w": jnp.zeros(1)}, X, key=jax.random.key(0), steps=10,
            batch_size=1, optimizer=optax.sgd(0.1), log_every=4, progress=False)


def test_bad_input():
    p, key = {"w": jnp.zeros(1)}, jax.random.key(0)
    loss = lambda p, b, k: jnp.sum(p["w"] ** 2)  # noqa: E731
    kw = dict(key=key, steps=2, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="`steps` must be a Python int >= 1"):
        fit(loss, p, X, **{**kw, "steps": 0})
    with pytest.raises(ValueError, match="`log_every` must be a Python int"):
        fit(loss, p, X, log_every=2.0, **kw)
    with pytest.raises(ValueError, match="`batch_size` must be a Python int"):
        fit(loss, p, X, **{**kw, "batch_size": 2.5})
    with pytest.raises(ValueError, match=r"`ema_decay` must be a Python number in \[0, 1\)"):
        fit(loss, p, X, ema_decay=1.0, **kw)
    with pytest.raises(ValueError, match="`eval_on` must be 'ema' or 'params'"):
        fit(loss, p, X, eval_on="last", **kw)
    with pytest.raises(ValueError, match="`eval_fn` must be a callable"):
        fit(loss, p, X, eval_fn={"acc": 1.0}, **kw)
    with pytest.raises(ValueError, match="must share a leading axis"):
        fit(loss, p, (X, jnp.zeros(3)), **kw)
    with pytest.raises(ValueError, match="`data` contains NaN"):
        fit(loss, p, X.at[0, 0].set(jnp.nan), **kw)
    with pytest.raises(ValueError, match="got no arrays"):
        fit(loss, p, (), **kw)
    with pytest.raises(ValueError, match="no floating-point arrays"):
        fit(loss, {"n": jnp.array(1)}, X, **kw)


def test_equinox_and_flax_nnx_train_the_same_linear_map():
    """A linear least-squares fit of y = x W* from the same initial weights, once as an
    Equinox module, once as the state of an NNX module (kernel = transposed weight): the
    trained maps agree and the loss went down."""
    eqx = pytest.importorskip("equinox")
    nnx = pytest.importorskip("flax.nnx")
    w_true = jnp.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    data = (X, X @ w_true)
    lin_nnx = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    lin_eqx = eqx.nn.Linear(3, 2, key=jax.random.key(0))
    lin_eqx = eqx.tree_at(lambda m: (m.weight, m.bias), lin_eqx,
                          (lin_nnx.kernel[...].T, lin_nnx.bias[...]))
    graphdef, state = nnx.split(lin_nnx)
    kw = dict(key=jax.random.key(1), steps=60, batch_size=8, log_every=60,
              optimizer=optax.adam(0.05), ema_decay=0.0, progress=False)

    def loss_eqx(m, batch, key):
        x, y = batch
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    def loss_nnx(s, batch, key):
        x, y = batch
        return jnp.mean((nnx.merge(graphdef, s)(x) - y) ** 2)

    res_eqx, res_nnx = fit(loss_eqx, lin_eqx, data, **kw), fit(loss_nnx, state, data, **kw)
    trained = nnx.merge(graphdef, res_nnx.ema)
    assert isinstance(res_eqx.ema, eqx.nn.Linear) and isinstance(trained, nnx.Linear)
    # same float32 arithmetic up to the order of a 3-term dot product
    np.testing.assert_allclose(res_eqx.ema.weight.T, trained.kernel[...], atol=1e-4)
    np.testing.assert_allclose(res_eqx.losses, res_nnx.losses, rtol=1e-4, atol=1e-6)
    assert float(res_eqx.losses[-5:].mean()) < 0.1 * float(res_eqx.losses[:5].mean())


# --- the deep clustering examples, which train through fit ----------------------------------


def _examples():
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import deep_clustering_digits

    return deep_clustering_digits


def test_long_tailed_digits_subset():
    """Imbalance ratio 10: sizes 174 * 10^(-r/9) for ranks r = 0..9, a random class order."""
    pytest.importorskip("sklearn")
    dcd = _examples()
    _, y = dcd.load_digits_data(ratio=10.0, seed=3)
    sizes = np.sort(np.bincount(y, minlength=10))[::-1]
    np.testing.assert_array_equal(sizes, np.round(174 * 10.0 ** (-np.arange(10) / 9)))
    _, y0 = dcd.load_digits_data(ratio=10.0, seed=0)
    assert not np.array_equal(np.bincount(y0), np.bincount(y))  # class order per seed


@pytest.mark.slow
def test_deep_clustering_example_quick_run():
    """The --quick protocol end to end: every head trains and is scored."""
    pytest.importorskip("sklearn")
    dcd = _examples()
    rows, hist, models, _ = dcd.run_seed(0, dcd.QUICK)
    assert set(dcd.HEADS) <= set(rows) and set(hist) == set(dcd.HEADS)
    for r in rows.values():
        assert 0.1 <= r["acc"] <= 1.0 and np.isfinite(r["nmi"])
    assert rows["k-means (raw pixels)"]["acc"] > 0.7


@pytest.mark.parametrize("change, expect", [
    (dict(key=None), "`key` must be a JAX PRNG key"),
    (dict(key=0), "`key` must be a JAX PRNG key"),
    (dict(params={"w": jnp.array([jnp.nan])}), "`params` contains NaN"),
    (dict(data=jnp.zeros((0, 1))), "`data` is empty"),
    (dict(data=None), "`data` must be an array"),
    (dict(loss_fn=None), "`loss_fn` must be a callable"),
])
def test_bad_arguments_are_named(change, expect):
    # issue 14 (1.6, 1.8): JAX's own messages before (key), a gather error (empty data)
    kw = dict(loss_fn=lambda p, b, k: jnp.sum(p["w"] ** 2), params={"w": jnp.ones(1)},
              data=jnp.zeros((4, 1)), key=jax.random.key(0))
    kw.update(change)
    with pytest.raises(ValueError, match=expect):
        fit(kw.pop("loss_fn"), kw.pop("params"), kw.pop("data"), steps=2, batch_size=2,
            progress=False, **kw)


def test_loss_fn_failing_on_the_batch_names_loss_fn_and_data():
    # a wrong-rank data array used to surface as JAX's broadcast error (fuzz finding)
    def loss(p, batch, key):
        return jnp.sum((batch[:, None] - p["c"][None]) ** 2)

    with pytest.raises(ValueError, match="`loss_fn` failed on a batch of `data`"):
        fit(loss, {"c": jnp.ones((3, 2))}, jnp.ones((1, 12, 2)), key=jax.random.key(0),
            steps=2, batch_size=2, progress=False)
