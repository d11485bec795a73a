"""AbeT / GODIN learned temperature against an independent NumPy oracle of the reference code.

Reference: github.com/anonymousoodauthor/abet, commit 736718cc8006078bb5262c9d626cf255f2c95fb2,
``nets.py`` (``CosineClassificationHead``, ``LearnedTemperatureClassificationNet``) and
``main.py`` (training with ``nn.CrossEntropyLoss`` on ``logits``; ``getScores`` with
``inference_mode == 'ablated_energy'``). What the oracle below is written from (formulas only):

* numerator: ``h = norm(x) @ norm(W).T`` with ``norm(u) = u / (||u|| + 1e-4)`` (rows);
* temperature: ``T = sigmoid(BatchNorm1d(1)(Linear(d, 1)(x))) + 1e-12`` — in training mode
  the batch norm uses the batch mean and biased variance (eps 1e-5, affine init 1 / 0), in
  ``eval()`` the running statistics (torch: momentum 0.1, running variance from the unbiased
  batch variance);
* logits ``h / T``; loss ``CrossEntropyLoss(logits, y)``; score ``log(sum(exp(logits)))``.

The GODIN reproduction github.com/guyera/Generalized-ODIN-Implementation (``deconfnet.py``)
divides by the same ``sigmoid(Linear(x))`` (its batch norm commented out). Shared inputs,
float64. Measured: largest difference 2.7e-15 (logits of size ~10; temperature 4e-17, loss
2e-16), pure functions and both heads in training mode.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxclust.ood as ood
from jaxclust.nn import _ood_equinox as E, _ood_flax as F

from ..utils import enable_x64


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def _oracle(x, W, lin_w, lin_b, y, *, gamma=1.0, beta=0.0, running=None):
    """The reference's forward pass and loss in NumPy (W: ``(k, d)`` as torch's Linear)."""
    def norm(u):
        return u / (np.sqrt((u * u).sum(1, keepdims=True)) + 1e-4)

    h = norm(x) @ norm(W).T
    a = x @ lin_w + lin_b
    if running is None:
        mu, var = a.mean(), a.var()  # training mode: biased batch variance
    else:
        mu, var = running
    t = _sigmoid(gamma * (a - mu) / np.sqrt(var + 1e-5) + beta) + 1e-12
    logits = h / t[:, None]
    lse = np.log(np.exp(logits).sum(1))
    loss = np.mean(lse - logits[np.arange(len(y)), y])
    return dict(h=h, t=t, logits=logits, loss=loss, score=lse, mu=a.mean(),
                var_unbiased=a.var(ddof=1), var_biased=a.var())


@pytest.fixture
def shared(rng):
    n, d, k = 7, 5, 4
    return dict(x=rng.normal(size=(n, d)) * 2.0, W=rng.normal(size=(k, d)),
                lin_w=rng.normal(size=d), lin_b=0.3, y=rng.integers(0, k, n))


def test_pure_functions_equal_reference(shared):
    s = shared
    ref = _oracle(s["x"], s["W"], s["lin_w"], s["lin_b"], s["y"], gamma=1.7, beta=-0.4)
    with enable_x64():
        x, w, v = (jnp.asarray(s[a], jnp.float64) for a in ("x", "W", "lin_w"))
        y = jnp.asarray(s["y"])

        @jax.jit
        def run(x, wt, v):
            h = ood.cosine_logits(x, wt)
            t = ood.learned_temperature(x, v, s["lin_b"], batch_norm=True, scale=1.7,
                                        offset=-0.4)
            t_eval = ood.learned_temperature(x, v, s["lin_b"], batch_norm=True, mean=0.2,
                                             var=1.5)
            t_plain = ood.learned_temperature(x, v, s["lin_b"])
            return (h, t, h / t[:, None], ood.learned_temperature_loss(h, t, y),
                    ood.ablated_energy(h, t), t_eval, t_plain)

        h, t, logits, loss, score, t_eval, t_plain = run(x, w.T, v)
    diffs = [np.max(np.abs(np.asarray(a) - ref[b])) for a, b in
             ((h, "h"), (t, "t"), (logits, "logits"), (loss, "loss"), (score, "score"))]
    print("AbeT oracle max diffs (h, T, logits, loss, score):", diffs)
    assert max(diffs) < 1e-13, diffs
    ref_eval = _oracle(s["x"], s["W"], s["lin_w"], s["lin_b"], s["y"], running=(0.2, 1.5))
    np.testing.assert_allclose(t_eval, ref_eval["t"], rtol=1e-13)
    # no batch norm: sigmoid(Linear(x)), GODIN's g(x) as in the reproduction's deconfnet.py
    np.testing.assert_allclose(t_plain, _sigmoid(s["x"] @ s["lin_w"] + s["lin_b"]) + 1e-12,
                               rtol=1e-13)
    assert np.all((np.asarray(t) > 0) & (np.asarray(t) < 1))  # (0, 1): T enlarges the logits


def test_heads_with_batch_norm_equal_reference(shared):
    # both frameworks, training mode (batch statistics), then one running-statistics update
    # and inference mode
    s = shared
    ref = _oracle(s["x"], s["W"], s["lin_w"], s["lin_b"], s["y"])
    with enable_x64():
        x = jnp.asarray(s["x"])
        y = jnp.asarray(s["y"])
        eq = E.TemperatureHead(5, 4, weight=s["W"].T, temp_weight=s["lin_w"],
                               temp_bias=s["lin_b"], batch_norm=True)
        fl = F.TemperatureHead(5, 4, weight=s["W"].T, temp_weight=s["lin_w"],
                               temp_bias=s["lin_b"], batch_norm=True)
        out_eq = eqx.filter_jit(lambda m: (m(x), m.loss(x, y), m.score(x)))(eq)
        out_fl = (fl(x), fl.loss(x, y), fl.score(x))  # eager: the call updates the stats
        for out in (out_eq, out_fl):
            for got, key in zip(out, ("logits", "loss", "score")):
                np.testing.assert_allclose(got, ref[key], rtol=1e-12, atol=1e-12)
        # running statistics after one batch (three calls above: the flax head updated its
        # statistics three times; the equinox head once, explicitly)
        eq1 = eqx.nn.inference_mode(eq.update_statistics(x))
        fl1 = F.TemperatureHead(5, 4, weight=s["W"].T, temp_weight=s["lin_w"],
                                temp_bias=s["lin_b"], batch_norm=True)
        fl1.temperature(x)
        fl1.eval()
        mu = 0.1 * ref["mu"]
        var = 0.9 + 0.1 * ref["var_biased"]  # flax's (biased); torch: 0.1 * var_unbiased
        ref_eval = _oracle(s["x"], s["W"], s["lin_w"], s["lin_b"], s["y"], running=(mu, var))
        np.testing.assert_allclose(eq1.temperature(x), ref_eval["t"], rtol=1e-12)
        # nnx.BatchNorm keeps its running statistics in float32: float32 agreement
        np.testing.assert_allclose(fl1.temperature(x), ref_eval["t"], rtol=1e-6)
        torch_var = 0.9 + 0.1 * ref["var_unbiased"]
        assert abs(torch_var - var) / var < 0.1  # the documented n/(n-1) difference, n = 7


def test_fixed_head_reaches_confidence_near_one():
    # 10 separable classes: the inverted temperature (T >= 1) capped the best softmax at
    # e / (e + 9 / e) = 0.45; with T = sigmoid(.) in (0, 1) training drives it near 1
    k = 10
    rng = np.random.default_rng(3)
    x = jnp.asarray(np.repeat(np.eye(k) * 3.0, 3, axis=0) + 0.1 * rng.normal(size=(3 * k, k)),
                    jnp.float32)
    y = jnp.repeat(jnp.arange(k), 3)
    head = E.TemperatureHead(k, k, key=jax.random.key(0))
    opt = optax.adam(0.05)
    params, static = eqx.partition(head, eqx.is_array)

    def step(carry, _):
        p, s = carry
        g = jax.grad(lambda p: eqx.combine(p, static).loss(x, y))(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, 300))(params)
    trained = eqx.combine(params, static)
    conf = jax.nn.softmax(trained(x), axis=1).max(1)
    assert float(conf.mean()) > 0.99, float(conf.mean())
    assert float(trained.temperature(x).max()) < 0.3
    # the old head's cap, for the record: cosine logits in [-1, 1] divided by T >= 1
    assert np.e / (np.e + 9 / np.e) < 0.46


def test_batch_norm_bad_input():
    x = jnp.ones((1, 3))
    with pytest.raises(ValueError, match="`features` has one row"):
        ood.learned_temperature(x, jnp.ones(3), batch_norm=True)
    with pytest.raises(ValueError, match="`mean` and `var` must be given together"):
        ood.learned_temperature(jnp.ones((2, 3)), jnp.ones(3), batch_norm=True, mean=0.0)
    with pytest.raises(ValueError, match="`var` must be >= 0"):
        ood.learned_temperature(jnp.ones((2, 3)), jnp.ones(3), batch_norm=True, mean=0.0,
                                var=-1.0)
    with pytest.raises(ValueError, match="with batch_norm=True"):
        ood.learned_temperature(jnp.ones((2, 3)), jnp.ones(3), mean=0.0, var=1.0)
    with pytest.raises(ValueError, match="`eps`"):
        ood.cosine_logits(jnp.ones((2, 3)), jnp.ones((3, 2)), eps=-1.0)
