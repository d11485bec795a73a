"""k-means prediction for new points, spherical (cosine) k-means, and the first eager call
compiling one program (issue 15 §3, issue 18). The faiss cross-checks are in
tests/peers/test_faiss_kmeans.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import kmeans, kmeans_predict, minibatch_kmeans
from jaxclust.cluster.lloyd import kmeans_unvalidated

RNG = np.random.default_rng(11)
# three blobs in 3-D on different rays from the origin (also a clean cosine problem)
X = jnp.asarray(np.concatenate([RNG.normal(size=(20, 3)) * 0.3 + m for m in
                                ([4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0])]), jnp.float32)


def _np_nearest(x, c):
    d = ((np.asarray(x, np.float64)[:, None] - np.asarray(c, np.float64)[None]) ** 2).sum(-1)
    return d.argmin(1), d.min(1)


def test_predict_equals_fit_labels_and_a_numpy_oracle():
    res = kmeans(X, 3, key=jax.random.key(0))
    lab, dist = kmeans_predict(X, res.centroids)
    np.testing.assert_array_equal(lab, res.labels)
    # the package-internal entry without checks (sdp rounding) runs the same program
    raw = kmeans_unvalidated(X, 3, key=jax.random.key(0))
    np.testing.assert_array_equal(raw.labels, res.labels)
    assert float(raw.inertia) == float(res.inertia)
    # float32 distances of unit-scale points: 1e-4 absolute is ~100 ulps of |x|^2 ~ 16
    np.testing.assert_allclose(float(dist.sum()), float(res.inertia), rtol=1e-5)
    new = jnp.asarray(RNG.normal(size=(9, 3)) * 3.0, jnp.float32)
    lab, dist = kmeans_predict(new, res.centroids)
    ref_lab, ref_dist = _np_nearest(new, res.centroids)
    np.testing.assert_array_equal(lab, ref_lab)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-4)
    # chunked (a block size that does not divide m)
    lab_c, _ = kmeans_predict(new, res.centroids, chunk_size=4)
    np.testing.assert_array_equal(lab_c, ref_lab)


def test_spherical_minibatch_and_its_prediction():
    mb = minibatch_kmeans(X, 3, key=jax.random.key(1), batch_size=16, max_steps=20,
                          spherical=True)
    c = np.asarray(mb.centroids, np.float64)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(mb.labels, (np.asarray(X, np.float64) @ c.T).argmax(1))
    np.testing.assert_array_equal(kmeans_predict(X, mb.centroids, spherical=True)[0],
                                  mb.labels)
    assert sorted(np.bincount(np.asarray(mb.labels)).tolist()) == [20, 20, 20]


def test_spherical_centres_are_unit_and_labels_maximise_the_inner_product():
    x = X * jnp.asarray(RNG.uniform(0.5, 2.0, size=(60, 1)), jnp.float32)  # rows not unit
    res = kmeans(x, 3, key=jax.random.key(0), spherical=True)
    c = np.asarray(res.centroids, np.float64)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
    xn = np.asarray(x, np.float64)
    np.testing.assert_array_equal(res.labels, (xn @ c.T).argmax(1))
    # the centres are the normalised sums of their points (fixed point of the iteration)
    lab = np.asarray(res.labels)
    s = np.stack([xn[lab == j].sum(0) for j in range(3)])
    np.testing.assert_allclose(c, s / np.linalg.norm(s, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(float(res.inertia), ((xn - c[lab]) ** 2).sum(), rtol=1e-5)
    lab_p, _ = kmeans_predict(x, res.centroids, spherical=True)
    np.testing.assert_array_equal(lab_p, res.labels)
    assert bool(res.converged)


def test_first_eager_call_compiles_one_program_and_the_second_none():
    # issue 15 §3: the first call used to compile ~33 programs (eager checks, seeding,
    # Lloyd, the choice of the best restart); a shape no other test uses, so nothing cached
    compiles = []

    def listen(name, *args, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        x = jnp.asarray(RNG.normal(size=(29, 3)), jnp.float32)
        k0, k1 = jax.random.key(0), jax.random.key(1)
        jax.block_until_ready((x, k0, k1))
        n0 = len(compiles)
        jax.block_until_ready(kmeans(x, 2, key=k0, n_init=2))
        first = len(compiles) - n0
        jax.block_until_ready(kmeans(x, 2, key=k1, n_init=2))
    finally:
        unregister = getattr(jax.monitoring, "unregister_event_duration_listener", None)
        if unregister is not None:
            unregister(listen)
    assert (first, len(compiles) - n0 - first) == (1, 0)


@pytest.mark.parametrize("args, kwargs, match", [
    ((X, jnp.zeros((3, 2))), {}, "`x` must have 2 features"),
    ((X[0], jnp.zeros((3, 3))), {}, "`x`"),
    ((X, jnp.zeros((3, 3))), dict(spherical=1), "`spherical`"),
    ((X, jnp.full((3, 3), jnp.nan)), {}, "`centroids`.*NaN"),
    ((X, jnp.zeros((3, 3))), dict(chunk_size=0), "`chunk_size`"),
])
def test_predict_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kmeans_predict(*args, **kwargs)


def test_kmeans_spherical_must_be_bool():
    with pytest.raises(ValueError, match="`spherical`"):
        kmeans(X, 3, key=jax.random.key(0), spherical="yes")
