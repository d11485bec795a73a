"""The NaN contract of ``jaxclust.diffusion`` and the score networks (issue 14, item 8):
NaN/Inf never leaks silently, bad input is a ``ValueError`` naming the argument (shapes at
trace time, values eagerly and under jit), and a user callable (``score_fn``, ``model_fn``,
``eps_fn``, ``log_prob_fn``) that returns NaN/Inf raises an error naming it instead of
producing NaN samples, likelihoods or labels.

Each check was observed to fail before the fix (the "before" is in each docstring). Problem
sizes are tiny (n <= 4, D <= 3, two steps) to keep compilations cheap.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxclust.diffusion as dif
from jaxclust.nn import equinox as jeqx

SDE = dif.VPSDE()
X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)), jnp.float32)
A = jnp.asarray([0.9, 0.6, 0.4, 0.2], jnp.float32)
S = jnp.asarray([0.3, 0.7, 0.9, 0.95], jnp.float32)


def nan_score(x, t):
    return jnp.where(t[:, None] < 0.5, jnp.nan, -x)


def _raises_traced(fn, *args, match):
    """Under jit the value check surfaces as a runtime error carrying "ValueError: ..."."""
    with pytest.raises(Exception, match="ValueError: " + match):
        jax.block_until_ready(jax.jit(fn)(*args))


# ------------------------------------------------------------------------------------------
# parametrisation conversions


def test_conversions_check_shapes_at_trace_time():
    """Before: eps (4, 2) with x_t (4, 3) or sigma (3,) broadcast silently or failed with
    JAX's broadcasting message."""
    with pytest.raises(ValueError, match=re.escape("`x_t` must have the shape of `eps`")):
        dif.eps_to_x0(X, jnp.zeros((4, 3)), A, S)
    with pytest.raises(ValueError, match=re.escape("`sigma` must be a scalar or have shape "
                                                   "(n,) = (4,)")):
        dif.eps_to_score(X, S[:3])
    with pytest.raises(ValueError, match=re.escape("`alpha`")):
        dif.to_eps(X, X, jnp.ones((4, 2)), S, param="v")


@pytest.mark.parametrize("case", ["nan-pred", "zero-sigma", "zero-alpha"])
def test_conversions_reject_bad_values(case):
    """Before: NaN predictions came back as NaN, sigma = 0 gave inf (x0_to_eps) and
    alpha = 0 gave inf (eps_to_x0), silently."""
    if case == "nan-pred":
        with pytest.raises(ValueError, match=re.escape("`eps` contains NaN or Inf")):
            dif.eps_to_score(X.at[0, 0].set(jnp.nan), S)
    elif case == "zero-sigma":
        with pytest.raises(ValueError, match=re.escape("`sigma` must be")):
            dif.x0_to_eps(X, X, A, S.at[1].set(0.0))
    else:
        with pytest.raises(ValueError, match=re.escape("`alpha` must be")):
            dif.from_eps(X, X, A.at[2].set(0.0), S, param="x0")


def test_conversion_value_check_under_jit():
    _raises_traced(lambda s: dif.eps_to_score(X, s), S.at[0].set(0.0),
                   match=re.escape("`sigma` must be"))


# ------------------------------------------------------------------------------------------
# user callables returning NaN: samplers, likelihood, guidance, classifier


SAMPLERS = {
    "euler_maruyama": lambda f: dif.euler_maruyama(f, jax.random.key(0), SDE, (4, 2),
                                                   n_steps=2),
    "predictor_corrector": lambda f: dif.predictor_corrector(f, jax.random.key(0), SDE,
                                                             (4, 2), n_steps=2),
    "probability_flow": lambda f: dif.probability_flow(f, jax.random.key(0), SDE, (4, 2),
                                                       n_steps=2, method="euler"),
    "ddim": lambda f: dif.ddim(f, jax.random.key(0), SDE, (4, 2), n_steps=2),
    "ode_likelihood": lambda f: dif.ode_likelihood(f, X, SDE, n_steps=2, method="euler").logp,
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_nan_score_fn_is_named(name):
    """Before: every sampler returned NaN samples and ode_likelihood NaN log-likelihoods,
    without an error."""
    with pytest.raises(ValueError, match=re.escape("`score_fn` returned NaN or Inf")):
        SAMPLERS[name](nan_score)


def test_nan_score_fn_under_jit():
    _raises_traced(lambda: SAMPLERS["ddim"](nan_score), match=re.escape("`score_fn`"))


def test_guidance_nan():
    """Before: NaN in eps_cond or a NaN scale gave NaN guidance; a classifier whose
    log-probability is NaN gave NaN guided scores."""
    with pytest.raises(ValueError, match=re.escape("`eps_cond` contains NaN")):
        dif.classifier_free_guidance(X.at[0, 0].set(jnp.inf), X, scale=2.0)
    with pytest.raises(ValueError, match=re.escape("`scale`")):
        dif.classifier_free_guidance(X, X, scale=float("nan"))
    guided = dif.classifier_guidance(lambda x, t: -x, lambda x, t, y: jnp.sqrt(x[:, 0] - 10.0),
                                     jnp.zeros(4))
    with pytest.raises(ValueError, match=re.escape("`log_prob_fn`")):
        guided(X, jnp.full((4,), 0.5))


def test_diffusion_classify_nan_eps_fn():
    """Before: the label was argmin of NaN errors (class 0), without an error."""
    def eps_fn(x_t, t, y):
        return jnp.where((y == 1)[:, None], jnp.nan, x_t)
    with pytest.raises(ValueError, match=re.escape("`eps_fn` returned NaN or Inf")):
        dif.diffusion_classify(eps_fn, X[0], jax.random.key(0), SDE, num_classes=2,
                               n_timesteps=4)


# ------------------------------------------------------------------------------------------
# integer x: time must stay a float


def test_integer_x_keeps_float_times():
    """Before: with integer x, ``jnp.asarray(t, x.dtype)`` turned every t in (0, 1) into 0:
    the model saw t = 0 and mixture_score_fn used sigma_0."""
    seen = []

    def model(x, t):
        seen.append(t)
        return jnp.zeros(x.shape, jnp.float32)

    xi = jnp.asarray([[1, 2], [3, 4]], jnp.int32)
    t = jnp.asarray([0.3, 0.7], jnp.float32)
    out = dif.as_score_fn(model, SDE, param="eps")(xi, t)
    assert jnp.issubdtype(seen[0].dtype, jnp.floating)
    np.testing.assert_allclose(seen[0], t)
    assert out.dtype == jnp.float32
    mix = dif.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(2)[None])
    fn = dif.mixture_score_fn(mix, SDE)
    np.testing.assert_allclose(fn(xi, t), fn(xi.astype(jnp.float32), t), rtol=1e-6)


# ------------------------------------------------------------------------------------------
# mixture oracles: covariance validation


@pytest.mark.parametrize("case", ["non-symmetric", "negative-definite"])
def test_mixture_covariances_validated(case):
    """Before: a non-symmetric or negative-definite covariance was accepted (cholesky read
    one triangle, or returned NaN scores)."""
    cov = jnp.array([[1.0, 0.5], [0.0, 1.0]]) if case == "non-symmetric" else -jnp.eye(2)
    mix = dif.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), cov[None])
    word = "symmetric" if case == "non-symmetric" else "positive semi-definite"
    with pytest.raises(ValueError, match=f"`covs` must be {word}"):
        dif.mixture_score(X, mix, A, S)
    with pytest.raises(ValueError, match=f"`covs` must be {word}"):
        dif.mixture_sample(jax.random.key(0), mix, 3)
    _raises_traced(lambda c: dif.mixture_logp(X, dif.GaussianMixture(jnp.ones(1),
                                                                    jnp.zeros((1, 2)), c)),
                   cov[None], match=f"`covs` must be {word}")


def test_mixture_singular_cov_at_sigma_zero():
    """A PSD but singular covariance is valid for sigma > 0 and for sampling; at sigma = 0
    the density does not exist: an error, not NaN."""
    mix = dif.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)),
                              jnp.array([[[1.0, 0.0], [0.0, 0.0]]]))
    x, _ = dif.mixture_sample(jax.random.key(0), mix, 3)
    assert bool(jnp.all(jnp.isfinite(x)))
    assert bool(jnp.all(jnp.isfinite(dif.mixture_score(X, mix, A, S))))
    with pytest.raises(ValueError, match=re.escape("`covs`")):
        dif.mixture_logp(X, mix)


# ------------------------------------------------------------------------------------------
# k-subspaces on huge data


def test_k_subspaces_huge_scale():
    """Before: x * 1e20 gave all-zero labels with converged=True (the energies overflow).
    K-subspaces is scale-invariant: the labels must be those of x; the residual (1e40) is
    beyond float32, so converged must be False."""
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.normal(size=(2, 3, 1)))[0]
    x = np.concatenate([rng.normal(size=(10, 1)) @ u[0].T, rng.normal(size=(10, 1)) @ u[1].T])
    x = jnp.asarray(x + 0.01 * rng.normal(size=x.shape), jnp.float32)
    ref = dif.k_subspaces(x, 2, 1, key=jax.random.key(0), n_init=2)
    big = dif.k_subspaces(x * 1e20, 2, 1, key=jax.random.key(0), n_init=2)
    np.testing.assert_array_equal(big.labels, ref.labels)
    assert not (bool(big.converged) and not bool(jnp.isfinite(big.residual)))
    assert not bool(big.converged)
    assert bool(jnp.all(jnp.isfinite(big.bases)))


# ------------------------------------------------------------------------------------------
# score networks


def test_score_net_nan_input_and_weights():
    """Before: NaN in x, or NaN weights, gave NaN outputs without an error."""
    net = jeqx.ScoreMLP(2, width=8, depth=1, embed_dim=4, key=jax.random.key(0))
    t = jnp.full((4,), 0.5)
    with pytest.raises(ValueError, match=re.escape("`x` contains NaN or Inf")):
        net(X.at[1, 1].set(jnp.nan), t)
    bad = jax.tree_util.tree_map(lambda a: a * jnp.nan if isinstance(a, jax.Array)
                                 and jnp.issubdtype(a.dtype, jnp.floating) else a, net)
    with pytest.raises(ValueError, match="output is NaN or Inf"):
        bad(X, t)


def test_sde_losses_and_divergence_nan():
    """Before: loss_weight('likelihood') at t = 0 was inf, dsm_loss with a NaN model was NaN,
    prior_logp of z ~ 1e20 was -inf, divergence of a NaN field and reverse_drift with a NaN
    score were NaN, all silently."""
    with pytest.raises(ValueError, match="weight is infinite"):
        dif.loss_weight(jnp.array([0.0, 0.5]), SDE, "likelihood")
    with pytest.raises(ValueError, match=re.escape("`model_fn` returned NaN or Inf")):
        dif.dsm_loss(lambda x, t: x * jnp.nan, X, jax.random.key(0), SDE)
    with pytest.raises(ValueError, match=re.escape("`z`")):
        SDE.prior_logp(X * 1e20)
    with pytest.raises(ValueError, match=re.escape("`fn` returned NaN or Inf")):
        dif.divergence(lambda v: jnp.sqrt(v - 10.0), X)
    with pytest.raises(ValueError, match=re.escape("`score` contains NaN")):
        SDE.reverse_drift(X, 0.5, X * jnp.nan)


def test_fuzz_findings_named():
    """findings.md (fuzz): mixture_* with alpha = Inf returned NaN, x=None an AttributeError;
    ode_likelihood on an empty batch a ZeroDivisionError; k_subspaces on empty x blamed `k`."""
    mix = dif.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(2)[None])
    with pytest.raises(ValueError, match=re.escape("`alpha` must be finite")):
        dif.mixture_score(X, mix, jnp.inf, 0.5)
    with pytest.raises(ValueError, match=re.escape("`x` must be an array")):
        dif.mixture_logp(None, mix)
    with pytest.raises(ValueError, match=re.escape("`x` is empty")):
        dif.ode_likelihood(lambda x, t: -x, jnp.zeros((0, 2)), SDE, n_steps=2)
    with pytest.raises(ValueError, match=re.escape("`x` is empty")):
        dif.k_subspaces(jnp.zeros((0, 3)), 2, 1, key=jax.random.key(0))


def test_fuzz_messages_name_the_argument():
    """tests/fuzz (the fuzz harness run on this subpackage): key=None gave JAX's "unexpected
    PRNG key type"; a batch of the wrong rank failed inside the user's score_fn with a bare
    broadcasting error; huge x in ode_likelihood blamed `z`; eps_to_v with a huge sigma
    blamed `alpha` only."""
    with pytest.raises(ValueError, match=re.escape("`key`")):
        dif.euler_maruyama(lambda x, t: -x, None, SDE, (4, 2), n_steps=2)
    mu = jnp.ones(2)
    with pytest.raises(ValueError, match=re.escape("`score_fn` failed") + ".*`x_T`"):
        dif.probability_flow(lambda x, t: -(x - mu), None, SDE, x_T=X[None], n_steps=2)
    with pytest.raises(ValueError, match=re.escape("`x` is too large")):
        dif.ode_likelihood(lambda x, t: -x, X * 1e25, SDE, n_steps=2, method="euler")
    with pytest.raises(ValueError, match=re.escape("`sigma` too large")):
        dif.eps_to_v(X, X, A, S * 1e30)


def test_flax_score_net_nan_input_and_weights():
    """The Flax twin: NaN in x, and NaN parameters, gave NaN outputs silently."""
    from flax import nnx

    from jaxclust.nn import flax as jfl

    net = jfl.ScoreMLP(2, width=8, depth=1, embed_dim=4, rngs=nnx.Rngs(0))
    t = jnp.full((4,), 0.5)
    with pytest.raises(ValueError, match=re.escape("`x` contains NaN or Inf")):
        net(X.at[1, 1].set(jnp.nan), t)
    graph, state = nnx.split(net)
    bad = nnx.merge(graph, jax.tree_util.tree_map(lambda a: a * jnp.nan, state))
    with pytest.raises(ValueError, match="output is NaN or Inf"):
        bad(X, t)


def test_float16_inputs_computed_in_float32():
    """Issue 14 item 8: float16 inputs failed with NotImplementedError in the Cholesky /
    eigh-based code (mixture oracles, k_subspaces); they are computed in float32."""
    h = jnp.float16
    mix = dif.GaussianMixture(jnp.ones(1, h), jnp.zeros((1, 2), h), jnp.eye(2, dtype=h)[None])
    ref = dif.mixture_score(X, dif.GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)),
                                                   jnp.eye(2)[None]), A, S)
    got = dif.mixture_score(X.astype(h), mix, A, S)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-2)  # X rounded to float16: 1e-3 relative
    assert dif.mixture_sample(jax.random.key(0), mix, 3)[0].dtype == jnp.float32
    res = dif.k_subspaces(X.astype(h), 2, 1, key=jax.random.key(0), n_init=2)
    assert res.bases.dtype == jnp.float32 and bool(jnp.isfinite(res.residual))
