"""The NaN contract of jaxclust.ood: valid-looking inputs whose intermediates overflow the
float type raise a ValueError naming the argument (eagerly; under jit the message travels
in the runtime error), never a silent NaN/Inf. Found by auditing every public function with
x * 1e20, x * 1e-30, zeros, NaN/Inf, empty and None inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxclust.ood as ood


@pytest.fixture
def data(rng):
    y = jnp.asarray(np.arange(12) % 3)
    x = jnp.asarray(rng.normal(size=(12, 4)) + 2 * np.eye(3, 4)[np.arange(12) % 3],
                    jnp.float32)
    w = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    b = jnp.asarray(rng.normal(size=3), jnp.float32)
    return x, y, w, b


def test_overflowing_features_name_the_argument(data):
    x, y, w, b = data
    big = x * 1e20  # finite, but squared distances / covariances overflow float32
    stats = ood.fit_mahalanobis(x, y, num_classes=3)
    with pytest.raises(ValueError, match="`features` is too large"):
        ood.fit_mahalanobis(big, y, num_classes=3)
    with pytest.raises(ValueError, match="`features` is too large"):
        ood.mahalanobis(big, stats)
    with pytest.raises(ValueError, match="`features` is too large"):
        ood.relative_mahalanobis(big, stats)
    with pytest.raises(ValueError, match="`features` are too large"):
        ood.fit_vim(big, w, b, dim=2)
    with pytest.raises(ValueError, match="`features` is too large"):
        ood.vim(big, w, b, ood.fit_vim(x, w, b, dim=2))
    with pytest.raises(ValueError, match="`logits_out` is too large"):
        ood.energy_margin_loss(x[:, :3], x[:, :3] * 1e20)


def test_huge_ratio_is_an_error_under_jit(rng):
    # h / T of order 1e20: exact eagerly; under jit XLA fuses the ratio into the
    # log-sum-exp with a multiply-add that rounds it differently from the max, giving +-inf:
    # now an error that names `temperature`, not a silent inf
    h = jnp.asarray(rng.uniform(-1, 1, size=(6, 3)), jnp.float32) * 1e20
    t = jnp.asarray(rng.uniform(0.2, 0.9, size=6), jnp.float32)
    y = jnp.asarray(np.arange(6) % 3)
    eager = ood.ablated_energy(h, t)
    np.testing.assert_allclose(eager, np.max(np.asarray(h) / np.asarray(t)[:, None], axis=1),
                               rtol=1e-6)

    @jax.jit
    def both(h, t):
        return ood.ablated_energy(h, t), ood.learned_temperature_loss(h, t, y)

    try:
        score, loss = both(h, t)
    except Exception as err:  # noqa: BLE001 - JaxRuntimeError / EquinoxRuntimeError
        assert "`temperature` is too large" in str(err)
    else:  # a backend without the fused rounding: then the values are finite and right
        np.testing.assert_allclose(score, eager, rtol=1e-6)
        assert np.isfinite(loss)


def test_labels_none():
    with pytest.raises(ValueError, match="`labels` must be an array of integer class labels"):
        ood.cross_entropy(jnp.ones((2, 3)), None)


def test_non_finite_statistics_are_named(data):
    x, y, w, b = data
    st = ood.fit_mahalanobis(x, y, num_classes=3)
    with pytest.raises(ValueError, match="`stats.precision` contains NaN or Inf"):
        ood.mahalanobis(x, st._replace(precision=st.precision.at[0, 0].set(jnp.nan)))
    pst = ood.fit_prototypes(x, y, num_classes=3)
    with pytest.raises(ValueError, match="`stats.prototypes` contains NaN or Inf"):
        ood.sinkhorn_score(x, pst._replace(prototypes=pst.prototypes.at[0, 0].set(jnp.inf)))
    vst = ood.fit_vim(x, w, b, dim=2)
    with pytest.raises(ValueError, match="`stats.alpha` contains NaN or Inf"):
        ood.vim(x, w, b, vst._replace(alpha=jnp.asarray(jnp.nan)))


def test_infinite_assignments():
    with pytest.raises(ValueError, match="`assignments` must be finite"):
        ood.mixture_logits(jnp.ones((2, 3)), jnp.ones((2, 2, 3)),
                           jnp.full((2, 2, 2), jnp.inf))


def test_odin_model_failure_names_fn_and_x():
    w = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="`fn` failed on `x` of shape"):
        ood.odin(lambda u: u @ w.T, jnp.ones((2, 3, 5)))
