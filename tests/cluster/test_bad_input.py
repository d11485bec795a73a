"""Bad input and honest flags of the clustering solvers (issue 14, section 1).

Each test names the defect it pins down; before the fix it failed as described in its
docstring. Sizes are tiny: most checks raise during validation, before any solver compiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust import cluster as jc
from jaxclust._core import checks

KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).normal(size=(12, 3)), jnp.float32)
TOO_LARGE = "`x` has values too large for float32"

# every public function of jaxclust.cluster (owned here) that takes points `x`, with the
# arguments of a valid call once `x` is given
POINT_FUNCTIONS = {
    "kmeans": lambda x: jc.kmeans(x, 2, key=KEY),
    "kmeans_plusplus": lambda x: jc.kmeans_plusplus(x, 2, key=KEY),
    "minibatch_kmeans": lambda x: jc.minibatch_kmeans(x, 2, key=KEY, batch_size=4),
    "soft_kmeans": lambda x: jc.soft_kmeans(x, 2, temperature=1.0, key=KEY),
    "sinkhorn_kmeans": lambda x: jc.sinkhorn_kmeans(x, 2, key=KEY),
    "gmm": lambda x: jc.gmm(x, 2, key=KEY),
    "gmm_log_prob": lambda x: jc.gmm_log_prob(x, jnp.zeros((2, 3)), jnp.ones(2),
                                              jnp.full(2, 0.5), covariance_type="spherical"),
    "spectral": lambda x: jc.spectral(x, 2, key=KEY),
    "affinity_matrix": lambda x: jc.affinity_matrix(x),
    "kmedoids": lambda x: jc.kmedoids(x, 2),
}


@pytest.mark.parametrize("name", sorted(POINT_FUNCTIONS))
def test_float32_overflow_is_an_error_naming_x(name):
    """Before: ``kmeans(x * 1e20, ...)`` returned labels 2**31 - 1, NaN inertia and
    ``converged=True`` (mini-batch too); soft/Sinkhorn k-means all-zero labels with
    ``converged=True`` / an error about an ``epsilon`` never passed; GMM NaN; spectral blamed
    a NaN ``x``; k-medoids an infinite loss with ``converged=True``."""
    with pytest.raises(ValueError, match=TOO_LARGE) as err:
        POINT_FUNCTIONS[name](X * 1e20)
    assert "standardise" in str(err.value)


def test_overflowing_initial_centres_name_init():
    """Found by the fuzzer: huge initial centres ended in an error from inside the program."""
    for f in (jc.kmeans, jc.minibatch_kmeans):
        with pytest.raises(ValueError, match="`init` has values too large for float32"):
            f(X, 2, key=KEY, init=X[:2] * 1e20)


def test_gmm_log_prob_overflowing_means_name_means():
    """Found by the fuzzer: means of 1e20 gave non-finite log-responsibilities silently."""
    with pytest.raises(ValueError, match="`means` has values too large for float32"):
        jc.gmm_log_prob(X, jnp.full((2, 3), 1e20), jnp.ones(2), jnp.full(2, 0.5),
                        covariance_type="spherical")


def test_float32_overflow_under_jit_carries_the_message():
    f = jax.jit(lambda x: jc.kmeans(x, 2, key=KEY, max_iter=5).inertia)
    assert np.isfinite(float(f(X)))
    with pytest.raises(Exception, match=TOO_LARGE):  # JaxRuntimeError / EquinoxRuntimeError
        jax.block_until_ready(f(X * 1e20))


def test_jitted_kmeans_checks_ride_on_a_token_not_on_x():
    """Under ``jit`` the value checks of ``x`` (NaN / Inf, overflow) ride on a scalar token
    added to a small input (k-means: ``tol``; ``kmeans_predict``: the centres). Before,
    ``equinox.error_if`` returned ``x`` itself through a ``cond`` and XLA copied it: the
    compiled k-means carried a second ``x`` in its temporaries (measured 51 MB more at
    n = 200,000, d = 64). The messages under ``jit`` are those of an eager call."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(40_000, 32)), jnp.float32)
    fit = jax.jit(lambda x: jc.kmeans(x, 4, key=KEY, max_iter=3).inertia)
    pred = jax.jit(lambda x: jc.kmeans_predict(x, x[:4])[1])
    # soft and mini-batch k-means too (before: 10.6 and 10.4 MB of temporaries, a copy of x)
    soft = jax.jit(lambda x: jc.soft_kmeans(x, 4, temperature=1.0, key=KEY, max_iter=3).energy)
    mini = jax.jit(lambda x: jc.minibatch_kmeans(x, 4, key=KEY, max_steps=3).inertia)
    # copies of x allowed: one moved to the points' (or centres') mean, so that distances
    # do not cancel far from 0 (test_kmeans.py::test_points_far_from_the_origin...; a
    # blocked k-means moves each block instead: no copy); soft k-means' fixed-point loop
    # holds its own copy of the moved points. The checks add none (when they rode on x,
    # XLA copied it through their cond).
    for f, copies in ((fit, 1), (pred, 1), (soft, 2), (mini, 1)):
        temp = f.lower(x).compile().memory_analysis().temp_size_in_bytes
        assert temp < (copies + 0.5) * x.nbytes, (temp, x.nbytes)
        assert np.isfinite(float(jnp.sum(f(x))))
        for bad, msg in ((jnp.nan, "`x` contains NaN or Inf"), (jnp.inf, "`x` contains NaN"),
                         (1e30, TOO_LARGE)):
            with pytest.raises(Exception, match=msg):  # JaxRuntimeError / EquinoxRuntimeError
                jax.block_until_ready(f(X.at[4, 1].set(bad)))


def test_jitted_sinkhorn_kmeans_checks_x_once_with_the_eager_messages():
    """Sinkhorn k-means checks ``x`` once (a token, as k-means) and its inner Sinkhorn
    solves skip their own value checks (they ran at every outer iteration); a bad ``x``
    still raises the eager message under ``jit``."""
    f = jax.jit(lambda x: jc.sinkhorn_kmeans(x, 2, key=KEY, max_iter=3).objective)
    assert np.isfinite(float(f(X)))
    for bad, msg in ((jnp.nan, "`x` contains NaN or Inf"), (1e30, TOO_LARGE)):
        with pytest.raises(Exception, match=msg):
            jax.block_until_ready(f(X.at[4, 1].set(bad)))


def test_large_but_representable_values_pass():
    # |x|^2 up to finfo.max / 4 is accepted: 1e18-scale data are fine in float32
    assert bool(checks.sq_norm_overflow(jnp.full((3, 2), 4e18))) is False
    assert bool(checks.sq_norm_overflow(jnp.full((3, 2), 8e18))) is True
    assert bool(checks.sq_norm_overflow(jnp.asarray([[jnp.nan, 1e30]]))) is False  # NaN: own msg


def _huge_inertia_data():
    """40 points at +-a in 1-D with a^2 = 2e37: each squared distance to the centre 0 fits
    in float32, their sum (8e38) does not."""
    a = float(np.sqrt(2e37))
    return jnp.asarray(np.tile([[a], [-a]], (20, 1)), jnp.float32)


def test_converged_is_false_when_the_inertia_overflows():
    """Before: inertia inf with ``converged=True`` (kmeans, soft k-means energy)."""
    x = _huge_inertia_data()
    res = jc.kmeans(x, 1, key=KEY)
    assert not np.isfinite(float(res.inertia)) and not bool(res.converged)
    soft = jc.soft_kmeans(x, 1, temperature=1.0, key=KEY)
    assert not np.isfinite(float(soft.energy)) and not bool(soft.converged)


def test_kmedoids_converged_is_false_when_the_loss_overflows():
    """Before: loss inf with ``converged=True``."""
    d = jnp.full((40, 40), 1e37, jnp.float32) * (1.0 - jnp.eye(40))
    res = jc.kmedoids(d, 1, metric="precomputed")
    assert not np.isfinite(float(res.loss)) and not bool(res.converged)


def test_sinkhorn_kmeans_converged_requires_the_final_assignment_to_converge():
    """Before: ``converged`` only looked at the centroid shift; with an inner budget too
    small for ``sinkhorn_tol`` the returned assignments missed the prescribed sizes while
    ``converged=True``."""
    x = jnp.concatenate([X[:9] + 4.0, X[9:] - 4.0])
    sizes = jnp.asarray([0.5, 0.5])
    res = jc.sinkhorn_kmeans(x, x[jnp.asarray([0, 11])], sizes=sizes, epsilon=0.05,
                             sinkhorn_max_iter=2)
    col = jnp.sum(res.assignments, axis=0) / x.shape[0]
    assert float(jnp.max(jnp.abs(col - sizes))) > 1e-3  # the sizes are not met ...
    assert not bool(res.converged)  # ... and that is reported
    # a tiny epsilon: before, a failed inner plan made NaN centroids and the next solve
    # raised "`y` contains NaN" (a `y` the user never passed); now columns without mass keep
    # their centroid and the failure shows in `converged`
    res = jc.sinkhorn_kmeans(x, x[jnp.asarray([0, 11])], sizes=sizes, epsilon=1e-30,
                             sinkhorn_max_iter=2)
    assert not bool(res.converged) and bool(jnp.all(jnp.isfinite(res.centroids)))
    with pytest.raises(ValueError, match="`sinkhorn_tol` must be a number >= 0"):
        jc.sinkhorn_kmeans(x, 2, key=KEY, sinkhorn_tol=-1)  # before: named `tol`


def test_sinkhorn_kmeans_on_constant_data_needs_no_epsilon():
    """Before: constant data raised about an ``epsilon`` the user never passed (the default
    0.05 std of the costs is 0). Now any epsilon gives the same plan; 1 is used."""
    # the shapes and static options of the test above: one compiled program for both
    res = jc.sinkhorn_kmeans(jnp.ones((12, 3)), jnp.ones((2, 3)), sizes=jnp.asarray([0.5, 0.5]),
                             sinkhorn_max_iter=2)
    assert bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.assignments), 0.5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(res.centroids), 1.0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(POINT_FUNCTIONS))
def test_empty_x_blames_x_not_k(name):
    """Before: "`k` must be in [1, n] = [1, 0]"."""
    with pytest.raises(ValueError, match="`x` has no rows"):
        POINT_FUNCTIONS[name](jnp.zeros((0, 3)))


def test_points_without_features_are_rejected():
    for name in ("kmeans", "gmm", "spectral", "kmedoids"):
        with pytest.raises(ValueError, match="`x` has no features"):
            POINT_FUNCTIONS[name](jnp.zeros((12, 0)))


@pytest.mark.parametrize("name", sorted(POINT_FUNCTIONS))
def test_none_x_names_x(name):
    """Before: "None is not a valid value for jnp.array"."""
    with pytest.raises(ValueError, match="`x` is None"):
        POINT_FUNCTIONS[name](None)


KEYED = {
    "kmeans": lambda key: jc.kmeans(X, 2, key=key),
    "kmeans_plusplus": lambda key: jc.kmeans_plusplus(X, 2, key=key),
    "minibatch_kmeans": lambda key: jc.minibatch_kmeans(X, 2, key=key),
    "minibatch_kmeans_update": lambda key: jc.minibatch_kmeans_update(
        jc.minibatch_kmeans_init(X[:2]), X, key=key),
    "soft_kmeans": lambda key: jc.soft_kmeans(X, 2, temperature=1.0, key=key),
    "sinkhorn_kmeans": lambda key: jc.sinkhorn_kmeans(X, 2, key=key),
    "gmm": lambda key: jc.gmm(X, 2, key=key),
    "spectral": lambda key: jc.spectral(X, 2, key=key),
    "kmedoids": lambda key: jc.kmedoids(X, 2, init="random", key=key),
}


@pytest.mark.parametrize("name", sorted(KEYED))
@pytest.mark.parametrize("bad", [0, "0", jnp.zeros(3, jnp.uint32)], ids=["int", "str", "u32x3"])
def test_bad_key_names_key(name, bad):
    """Before: JAX's internal "unexpected PRNG key type" / "invalid PRNG key data"."""
    with pytest.raises(ValueError, match=r"`key` must be a JAX PRNG key such as "
                                         r"jax\.random\.key\(0\)"):
        KEYED[name](bad)


def test_required_key_none_names_key():
    for name in ("kmeans", "kmeans_plusplus", "minibatch_kmeans", "gmm", "spectral"):
        with pytest.raises(ValueError, match="`key` must be a JAX PRNG key"):
            KEYED[name](None)


def test_check_key_accepts_typed_and_legacy_keys():
    typed, legacy = jax.random.key(3), jax.random.PRNGKey(3)
    assert checks.check_key(typed) is typed and checks.check_key(legacy) is legacy
    jax.vmap(lambda k: checks.check_key(k, "keys"))(jax.random.split(typed, 2))
    with pytest.raises(ValueError, match="`seed` must be a JAX PRNG key"):
        checks.check_key(jax.random.split(typed, 2), "seed")  # a batch is not one key
    # a legacy key works end to end
    c = jc.kmeans_plusplus(X, 2, key=legacy)
    assert c.shape == (2, 3)


def test_as_float_array_names_the_argument():
    for bad in (None, "abc", [[1.0], [1.0, 2.0]], {"a": 1}):
        with pytest.raises(ValueError, match="`w`"):
            checks.as_float_array(bad, "w")
    with pytest.raises(ValueError, match="`w` must be a 2-D array"):
        checks.check_ndim([1.0], "w", 2, "(n, d)")


def test_minibatch_update_names_batch():
    """Before: a NaN batch was reported as "`x` contains NaN"."""
    state = jc.minibatch_kmeans_init(X[:2])
    with pytest.raises(ValueError, match="`batch` contains NaN"):
        jc.minibatch_kmeans_update(state, X.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="`batch` has values too large"):
        jc.minibatch_kmeans_update(state, X * 1e20)
    with pytest.raises(ValueError, match="`state.centroids` contains NaN"):  # before: NaN out
        jc.minibatch_kmeans_update(state._replace(centroids=state.centroids.at[0, 0].set(
            jnp.nan)), X)


@pytest.mark.parametrize("framework", ["equinox", "flax"])
def test_heads_name_their_arguments(framework):
    """Before: the DEC head's messages named `x` for its argument `z`, and the P²OT head's
    loss named `z` for its views `z_a` / `z_b`."""
    if framework == "flax":
        pytest.importorskip("flax")
        from jaxclust.nn.flax import DECHead, PartialOTClusteringHead
    else:
        from jaxclust.nn.equinox import DECHead, PartialOTClusteringHead
    bad = X.at[0, 0].set(jnp.nan)
    head = DECHead(3, 2, centroids=X[:2])
    with pytest.raises(ValueError, match="`z` contains NaN"):
        head(bad)
    with pytest.raises(ValueError, match=r"`z` must have shape \(batch, 3\)"):
        head(jnp.ones((4, 5)))
    p2ot = PartialOTClusteringHead(3, 2, prototypes=X[:2])
    with pytest.raises(ValueError, match="`z_a` contains NaN"):
        p2ot.loss(bad, X, 0.5)
    with pytest.raises(ValueError, match="`z_b` contains NaN"):
        p2ot.loss(X, bad, 0.5)


def test_half_precision_inputs_are_computed_in_float32():
    """The Cholesky/eigh-based code runs on float16 input (XLA has no half-precision
    factorisations): computed, and returned, in float32 (a float16 log-likelihood or inertia
    would overflow at 65504)."""
    h = X.astype(jnp.float16)
    cov = jnp.stack([jnp.eye(3), 2.0 * jnp.eye(3)])
    args = (h[:2], cov.astype(jnp.float16), jnp.asarray([0.25, 0.75], jnp.float16))
    lp, lr = jc.gmm_log_prob(h, *args)
    ref, _ = jc.gmm_log_prob(h.astype(jnp.float32), *(a.astype(jnp.float32) for a in args))
    assert lp.dtype == lr.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lp), np.asarray(ref), rtol=1e-6)


def test_predict_functions_validate_their_fitted_state():
    """Fuzzer findings (tests/fuzz): ``laplacian_kmeans_predict(result=None)`` raised an
    AttributeError and NaN / Inf in the result (or ``x * 1e20``) gave NaN assignments
    silently; ``select_k(k_values=['a'])`` raised int()'s message; ``sinkhorn_kmeans_predict``
    returned inf / NaN assignments for a tiny epsilon and blamed `y` for huge centroids."""
    with pytest.raises(ValueError, match="`result` must be the LaplacianKMeansResult"):
        jc.laplacian_kmeans_predict(X[:2], X, None)
    z = jnp.full((12, 2), 0.5)
    fit = jc.LaplacianKMeansResult(z, jnp.zeros(12, jnp.int32), X[:2], jnp.zeros(3),
                                   jnp.asarray(1), jnp.asarray(True))
    with pytest.raises(ValueError, match="`result.centroids` contains NaN"):
        jc.laplacian_kmeans_predict(X[:2], X, fit._replace(centroids=X[:2].at[0, 0].set(
            jnp.nan)))
    with pytest.raises(ValueError, match="`result.assignments` contains NaN"):
        jc.laplacian_kmeans_predict(X[:2], X, fit._replace(assignments=z.at[0, 0].set(
            jnp.inf)))
    with pytest.raises(ValueError, match=TOO_LARGE):
        jc.laplacian_kmeans_predict(X[:2] * 1e20, X, fit)
    for bad in (["no-such-item"], [2, 2.5], [True, 3], "23", jnp.asarray([2.0, 3.0])):
        with pytest.raises(ValueError, match="`k_values` must be a non-empty sequence"):
            jc.select_k(X, bad, key=KEY)
    with pytest.raises(ValueError, match="`centroids` has values too large"):
        jc.sinkhorn_kmeans_predict(X, X[:2] * 1e20, epsilon=1.0)
    with pytest.raises(ValueError, match="`epsilon` is too small for float32"):
        jc.sinkhorn_kmeans_predict(X, X[:2], epsilon=1e-38)
    _, q, _ = jc.sinkhorn_kmeans_predict(X, X[:2], epsilon=1e-30)  # the hard limit: finite
    assert bool(jnp.all(jnp.isfinite(q))) and bool(jnp.all((q == 0) | (q == 1)))
