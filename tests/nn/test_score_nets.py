"""Score networks (MLP and U-Net) in Flax NNX and Equinox: shapes, the two frameworks give
the same outputs on the same parameters (copied across with the layout changes), the time
embedding against NumPy, single example vs batch, jit/grad, and bad input."""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.nn import _score_equinox as jeqx
from jaxclust.nn._score_common import sinusoidal_embedding

nnx = pytest.importorskip("flax.nnx")
from jaxclust.nn import _score_flax as jflax  # noqa: E402  (after the optional-dependency skip)

MLP = dict(width=16, depth=2, embed_dim=8, num_classes=3)
UNET = dict(channels=8, channel_mults=(1, 2), embed_dim=8, num_classes=3)


def _to_equinox(fl, eq):
    """``eq`` with every parameter taken from the Flax module ``fl`` (same attribute names),
    converted to Equinox's layouts."""
    if isinstance(eq, eqx.nn.Linear):
        return eqx.tree_at(lambda m: (m.weight, m.bias), eq, (fl.kernel[...].T, fl.bias[...]))
    if isinstance(eq, eqx.nn.Conv2d):  # (kh, kw, in, out) -> (out, in, kh, kw)
        return eqx.tree_at(lambda m: (m.weight, m.bias), eq,
                           (jnp.transpose(fl.kernel[...], (3, 2, 0, 1)),
                            fl.bias[...][:, None, None]))
    if isinstance(eq, eqx.nn.GroupNorm):
        return eqx.tree_at(lambda m: (m.weight, m.bias), eq, (fl.scale[...], fl.bias[...]))
    if isinstance(eq, eqx.nn.Embedding):
        return eqx.tree_at(lambda m: m.weight, eq, fl.embedding[...])
    if isinstance(eq, list):
        assert len(eq) == len(fl)
        return [_to_equinox(f, e) for f, e in zip(fl, eq)]
    assert isinstance(eq, eqx.Module), type(eq)
    for field in dataclasses.fields(eq):
        value = getattr(eq, field.name)
        if field.metadata.get("static", False) or value is None:
            assert value == getattr(fl, field.name) or value is None
            continue
        new = _to_equinox(getattr(fl, field.name), value)
        eq = eqx.tree_at(lambda m, name=field.name: getattr(m, name), eq, new)
    return eq


def _random_flax(fl, seed=0):
    """Every Flax parameter drawn afresh, ``0.5 * normal / sqrt(fan_in)`` (``fan_in`` = the
    product of all but the last axis; 1 for biases and GroupNorm scales), so that zero biases
    and unit scales (the Flax initialisation) cannot hide a mis-copied parameter. Drawn with
    NumPy: JAX's eager or jitted draws compile once per shape, tens of seconds here."""
    rng = np.random.default_rng(seed)
    state = nnx.state(fl, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    new = [jnp.asarray(0.5 * rng.normal(size=p.shape) / np.sqrt(np.prod(p.shape[:-1])),
                       jnp.float32) for p in leaves]
    nnx.update(fl, jax.tree.unflatten(treedef, new))
    return fl


@functools.cache
def _pair(kind):
    """A Flax network with random parameters, the Equinox network with the same parameters
    and an input batch. Both are built abstractly (``eval_shape``: no per-shape compilation
    of initialisers) and filled by ``_random_flax`` / ``_to_equinox``."""
    if kind == "mlp":
        fl = nnx.eval_shape(lambda: jflax.ScoreMLP(3, **MLP, rngs=nnx.Rngs(0)))
        eq = eqx.filter_eval_shape(lambda: jeqx.ScoreMLP(3, **MLP, key=jax.random.key(1)))
        x = jax.random.normal(jax.random.key(2), (5, 3))
    else:
        fl = nnx.eval_shape(lambda: jflax.ScoreUNet((8, 8), **UNET, rngs=nnx.Rngs(0)))
        eq = eqx.filter_eval_shape(lambda: jeqx.ScoreUNet((8, 8), **UNET,
                                                          key=jax.random.key(1)))
        x = jax.random.normal(jax.random.key(2), (5, 8, 8))
    fl = _random_flax(fl)
    return fl, _to_equinox(fl, eq), x


def test_sinusoidal_embedding_matches_numpy():
    t = np.array([0.0, 0.013, 0.5, 1.0])
    e = np.asarray(sinusoidal_embedding(jnp.asarray(t, jnp.float32), 6, scale=100.0,
                                        max_period=1000.0))
    w = 1000.0 ** (-np.arange(3) / 3)  # 1, 1000^(-1/3), 1000^(-2/3)
    arg = 100.0 * t[:, None] * w
    ref = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)
    # float32 sin/cos of arguments up to 100: absolute error ~ 100 * 2^-24 per unit
    np.testing.assert_allclose(e, ref, atol=2e-5)


def test_flax_and_equinox_give_the_same_mlp():
    fl, eq, x = _pair("mlp")
    t = jnp.array([0.01, 0.2, 0.5, 0.9, 1.0])
    y = jnp.array([0, 1, 2, 3, 1])  # 3 = the null class
    out_f = nnx.jit(lambda m: (m(x, t, y), m(x, t)))(fl)
    out_e = eqx.filter_jit(lambda m: (m(x, t, y), m(x, t), m(x, t, jnp.full(5, 3))))(eq)
    for f, e in zip(out_f, out_e):
        assert f.shape == x.shape
        # the same float32 program up to the order of the sums (outputs are O(1))
        np.testing.assert_allclose(f, e, rtol=1e-5, atol=1e-5)
    # y=None is the null class, and the class changes the output
    np.testing.assert_array_equal(out_e[1], out_e[2])
    assert not np.allclose(out_e[0], out_e[1], atol=1e-3)
    _same_gradients(fl, eq, x, t, y)


def _same_gradients(fl, eq, x, t, y):
    """Parameter gradients of the summed squared output agree, parameter by parameter."""
    gf = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x, t, y) ** 2)))(fl)
    ge = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(x, t, y) ** 2)))(eq)
    as_module = nnx.clone(fl)
    nnx.update(as_module, gf)
    leaves_f = jax.tree.leaves(eqx.filter(_to_equinox(as_module, eq), eqx.is_array))
    leaves_e = jax.tree.leaves(eqx.filter(ge, eqx.is_array))
    assert len(leaves_f) == len(leaves_e)
    for a, b in zip(leaves_f, leaves_e):
        # float32 sums in different orders (convolutions, GroupNorm statistics), relative
        # to the largest entry of each gradient
        scale = max(1.0, float(jnp.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.slow  # ~5 s of convolution compiles; the MLP equality test stays fast
def test_flax_and_equinox_give_the_same_unet():
    fl, eq, x = _pair("unet")
    t = jnp.array([0.01, 0.2, 0.5, 0.9, 1.0])
    y = jnp.array([0, 1, 2, 3, 1])  # 3 = the null class
    f = nnx.jit(lambda m: m(x, t, y))(fl)
    e = eqx.filter_jit(lambda m: m(x, t, y))(eq)
    assert f.shape == x.shape
    # the same float32 program up to the order of the sums in the convolutions and the
    # GroupNorm statistics (outputs are O(1))
    np.testing.assert_allclose(f, e, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_flax_and_equinox_unet_gradients():
    fl, eq, x = _pair("unet")
    _same_gradients(fl, eq, x, jnp.array([0.01, 0.2, 0.5, 0.9, 1.0]), jnp.array([0, 1, 2, 3, 1]))


@pytest.mark.parametrize("kind", ["mlp", pytest.param("unet", marks=pytest.mark.slow)])
def test_single_example_equals_batch_row(kind):
    _, eq, x = _pair(kind)
    batch, one = eqx.filter_jit(lambda m: (m(x, 0.3, 2), m(x[1], 0.3, 2)))(eq)
    assert one.shape == x.shape[1:]
    np.testing.assert_allclose(one, batch[1], rtol=1e-5, atol=1e-5)


def test_unet_28x28_three_levels_and_unconditional():
    """Shapes only (abstract evaluation: 28 -> 14 -> 7 and back)."""
    kw = dict(channels=8, channel_mults=(1, 1, 2), embed_dim=8)
    x, t = jnp.zeros((2, 28, 28)), jnp.array([0.1, 0.7])
    eq = eqx.filter_eval_shape(lambda: jeqx.ScoreUNet((28, 28), **kw, key=jax.random.key(0)))
    assert eqx.filter_eval_shape(lambda m: m(x, t), eq).shape == (2, 28, 28)
    fl = nnx.eval_shape(lambda: jflax.ScoreUNet((28, 28), **kw, rngs=nnx.Rngs(0)))
    assert nnx.eval_shape(lambda m: m(x, t), fl).shape == (2, 28, 28)
    assert [lv.resample is None for lv in eq.down] == [False, False, True]


@pytest.mark.parametrize("framework", ["flax", "equinox"])
def test_default_init_is_keyed(framework):
    """The real constructors: same seed, same parameters; another seed, others."""
    kw = dict(width=4, depth=1, embed_dim=4, num_classes=2)  # few shapes: few compilations
    if framework == "flax":
        make = lambda s: nnx.state(jflax.ScoreMLP(2, **kw, rngs=nnx.Rngs(s)), nnx.Param)  # noqa: E731
    else:
        make = lambda s: jeqx.ScoreMLP(2, **kw, key=jax.random.key(s))  # noqa: E731
    a, b, c = (jax.tree.leaves(eqx.filter(make(s), eqx.is_array)) for s in (0, 0, 1))
    assert len(a) == 5 + 2 + 3 * 2 + 2  # cond (2 linear, embedding), in, 1 block, out
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_jit_and_grad_of_an_input_loss():
    """The gradient in x of a loss through the jitted MLP matches a central finite
    difference along a random direction (the U-Net's gradients: the slow test above)."""
    _, eq, x = _pair("mlp")

    @jax.jit
    def loss(x):
        return jnp.mean(eq(x, 0.4, 1) ** 2)

    g = jax.grad(loss)(x)
    v = jax.random.normal(jax.random.key(5), x.shape)
    h = 1e-2
    fd = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
    # float32 central difference with h = 1e-2 on an O(1) smooth loss: ~1e-3 accuracy
    np.testing.assert_allclose(jnp.vdot(g, v), fd, rtol=2e-2, atol=1e-3)


# ------------------------------------------------------------------------------------------
# bad input


def test_bad_shapes_and_labels():
    _, mlp, _ = _pair("mlp")
    with pytest.raises(ValueError, match=r"`x` must have shape \(3,\)"):
        mlp(jnp.zeros((4, 2)), 0.5)
    with pytest.raises(ValueError, match="`t` must be a scalar or have shape"):
        mlp(jnp.zeros((4, 3)), jnp.zeros(3))
    with pytest.raises(ValueError, match="`y` must be a scalar or have shape"):
        mlp(jnp.zeros((4, 3)), 0.5, jnp.zeros(3, int))
    with pytest.raises(ValueError, match="integer class labels"):
        mlp(jnp.zeros((4, 3)), 0.5, jnp.zeros(4))
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\)"):
        mlp(jnp.zeros((4, 3)), 0.5, jnp.array([0, 1, 4, 2]))
    with pytest.raises(ValueError, match="`t` contains NaN"):
        mlp(jnp.zeros((4, 3)), jnp.nan)
    plain = eqx.filter_eval_shape(lambda: jeqx.ScoreMLP(3, width=8, depth=1, embed_dim=8,
                                                        key=jax.random.key(0)))
    with pytest.raises(ValueError, match="no class embedding"):
        plain(jnp.zeros((4, 3)), 0.5, jnp.zeros(4, int))


def test_bad_hyper_parameters():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`embed_dim` must be even"):
        jeqx.ScoreMLP(2, embed_dim=7, key=key)
    with pytest.raises(ValueError, match="`num_classes` must be a Python int >= 1"):
        jflax.ScoreMLP(2, num_classes=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`time_scale` must be a finite number > 0"):
        jeqx.ScoreMLP(2, time_scale=-1.0, key=key)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*\\(levels - 1\\) = 8"):
        jeqx.ScoreUNet((28, 28), channel_mults=(1, 2, 2, 2), key=key)
    with pytest.raises(ValueError, match="`image_shape` must be a pair"):
        jflax.ScoreUNet((8, 8, 1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`channel_mults` must be a non-empty tuple"):
        jeqx.ScoreUNet((8, 8), channel_mults=(), key=key)
