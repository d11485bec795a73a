"""Sharded k-means, mini-batch k-means and KNN score on 8 simulated CPU devices.

``_sharded_cluster_script.py`` runs once per module in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must be set before JAX
starts, so it cannot be set in this process) and prints a JSON of measured differences to
the single-device functions called with the same keys, and facts about the compiled
programs. The data (n = 1003, not a multiple of 8) exercise the padding rows.

Tolerances: labels must be identical; centroids, inertia and scores agree to 1e-5 relative
(float32: the sharded sums add eight partial sums instead of one sequence, so they differ
from the single-device sums by a few ulps, ~1e-7 relative here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust import distributed as jd

from ._xla_env import SUBPROCESS_TIMEOUT, subprocess_env

_ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(__file__).with_name("_sharded_cluster_script.py")


@pytest.fixture(scope="module")
def report():
    proc = subprocess.run([sys.executable, str(_SCRIPT)], env=subprocess_env(_ROOT, 8),
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=_ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_and_padding(report):
    assert report["devices"] == 8
    sh = report["shard"]
    assert (sh["n"], sh["n_pad"]) == (1003, 1008)
    assert sh["pad_weights"] == [0.0] * 5
    assert sh["shards"] == 8 and sh["rows_per_shard"] == [126]
    assert sh["roundtrip"]


@pytest.mark.parametrize("name", ["kmeans", "lloyd", "minibatch", "kmeans_spherical",
                                  "minibatch_spherical", "kmeans_far"])
def test_sharded_equals_single_device(report, name):
    r = report[name]
    if name == "kmeans_far":  # points moved by 1e4: the partition of the unmoved points
        assert r["same_labels_as_unmoved"]
    assert r["label_mismatches"] == 0
    assert r["centroids_rel"] <= 1e-5
    assert r["inertia_rel"] <= 1e-5
    assert r["n_iters"][0] == r["n_iters"][1]
    assert r["converged"][0] == r["converged"][1]


def test_empty_cluster_relocation_ran(report):
    # the far centre's cluster was empty and moved onto the data, in both runs alike
    assert report["lloyd"]["far_centre_moved"]


def test_knn_sharded_bank(report):
    assert report["knn"]["k5"] <= 1e-5
    assert report["knn"]["k70"] <= 1e-5  # k above the 63 bank rows per device, chunked


def test_no_collective_of_point_size_and_lloyd_bytes(report):
    n, n_local = 1003, 1008 // 8
    k, d = 6, 4
    for name in ("kmeans", "lloyd", "minibatch"):
        h = report[name]["hlo"]
        assert set(h["kinds"]) <= {"all-reduce", "all-gather"}, name
        assert h["loop_max_dim"] < n / 8, name
    # k-means (seeding included): every collective is tiny; no array of the program, on any
    # device, has more rows than the device's block (times the 2 vmapped restarts)
    assert report["kmeans"]["hlo"]["bytes"]["max_dim"] < n / 8
    assert report["kmeans"]["hlo"]["max_array_dim"] <= 2 * n_local
    # one Lloyd iteration all-reduces the k x d centre sums, the k masses and the number
    # of changed labels (float32 / int32): 4 (k d + k + 1) bytes; the empty-cluster branch
    # moves P k candidates (value and index) and k rows only when it runs
    lloyd = report["lloyd"]["hlo"]
    assert lloyd["bytes"]["per_iteration"] == 4 * (k * d + k + 1)
    assert lloyd["bytes"]["per_iteration_branches"] == 4 * (2 * 8 * k + k * d)
    assert lloyd["bytes"]["max_dim"] < n / 8 and lloyd["max_array_dim"] <= n_local
    # a mini-batch step: batch sums and reassigned rows (k x d each), masses, inertia and
    # batch weight; the seeding subset (3 x 64 rows) is fetched once, before the loop
    mb = report["minibatch"]["hlo"]
    assert mb["bytes"]["per_iteration"] == 4 * (2 * k * d + k + 2)
    assert mb["bytes"]["max_dim"] <= 3 * 64


@pytest.mark.parametrize("case, message", [
    ("lloyd_nan_x", "`points.x` contains NaN or Inf"),
    ("minibatch_inf_x", "`points.x` contains NaN or Inf"),
    ("lloyd_negative_w", "`points.weights` has NaN, Inf or negative entries"),
    ("lloyd_zero_w", "`points.weights` sums to 0"),
    ("knn_nan_query", "`features` contains NaN or Inf"),
    ("lloyd_huge_x", "`points.x` has values too large for float32"),
    ("minibatch_huge_x", "`points.x` has values too large for float32"),
    ("shard_jit_negative_w", "`weights` must be finite and >= 0"),
])
def test_bad_values_under_jit_raise_on_every_device(report, case, message):
    # a value check outside shard_map would run on one device: the others would hang at
    # the next collective (or the NaN would come out); inside, all devices raise together
    assert message in report["errors"][case]


# ------------------------------------------------------------------------------------------
# bad input (one device, in this process)


def test_bad_input():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)
    pts = jd.shard(x)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`points` must be a ShardedPoints"):
        jd.kmeans(x, 2, key=key)
    with pytest.raises(ValueError, match=r"`k` must be in \[1, n\]"):
        jd.kmeans(pts, 11, key=key)
    with pytest.raises(ValueError, match="`init` must be"):
        jd.kmeans(pts, 2, key=key, init="bad")
    with pytest.raises(ValueError, match=r"`init` centres must have shape \(2, 2\)"):
        jd.kmeans(pts, 2, key=key, init=x[:3])
    with pytest.raises(ValueError, match="`n_init` must be a Python int >= 1"):
        jd.kmeans(pts, 2, key=key, n_init=0)
    zero = jd.shard(x, weights=jnp.zeros(10))
    with pytest.raises(ValueError, match="`points.weights` sums to 0"):
        jd.kmeans(zero, 2, key=key)
    bad = jd.ShardedPoints(pts.x, pts.weights, 11, pts.mesh)
    with pytest.raises(ValueError, match="rows must be a multiple"):
        jd.kmeans(bad, 2, key=key)
    with pytest.raises(ValueError, match="`batch_size` must be a Python int >= 1"):
        jd.minibatch_kmeans(pts, 2, key=key, batch_size=0)
    with pytest.raises(ValueError, match="`reassignment_ratio`"):
        jd.minibatch_kmeans(pts, 2, key=key, reassignment_ratio=2.0)
    # issue 14: keys are checked with a message naming `key` (before: JAX's internal
    # TypeError)
    for bad_key in (None, 0):
        with pytest.raises(ValueError, match="`key` must be a JAX PRNG key"):
            jd.kmeans(pts, 2, key=bad_key)
        with pytest.raises(ValueError, match="`key` must be a JAX PRNG key"):
            jd.minibatch_kmeans(pts, 2, key=bad_key)
    with pytest.raises(ValueError, match="`key` must be a JAX PRNG key"):
        jd.kmeans_sdp(pts, 2, key=0)
    with pytest.raises(ValueError, match="`y` has no rows"):  # before: ZeroDivisionError
        jd.sinkhorn(pts, jnp.zeros((0, 2)), epsilon=1.0)
    # points built without shard's checks: a ValueError now, before anything compiles
    # (before: a JaxRuntimeError from inside the compiled program)
    nan_pts = jd.ShardedPoints(pts.x.at[0, 0].set(jnp.nan), pts.weights, pts.n, pts.mesh)
    huge_pts = jd.ShardedPoints(pts.x * 1e20, pts.weights, pts.n, pts.mesh)
    for call in (lambda p: jd.kmeans(p, 2, key=key), lambda p: jd.minibatch_kmeans(p, 2, key=key),
                 lambda p: jd.kmeans_sdp(p, 2), lambda p: jd.sinkhorn(p, x[:3], epsilon=1.0),
                 lambda p: jd.swav_codes(p, epsilon=1.0)):
        with pytest.raises(ValueError, match=r"`(points|scores)\.x` contains NaN or Inf"):
            call(nan_pts)
    for call in (lambda p: jd.kmeans(p, 2, key=key), lambda p: jd.kmeans_sdp(p, 2)):
        with pytest.raises(ValueError, match="`points.x` has values too large for float32"):
            call(huge_pts)


def test_minibatch_traced_init_with_concrete_points():
    """Before: TracerBoolConversionError (the eager weight check ran on a staged sum)."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)
    pts = jd.shard(x)
    f = jax.jit(lambda c: jd.minibatch_kmeans(pts, 2, key=jax.random.key(0), init=c,
                                              batch_size=4, max_steps=2).centroids)
    assert f(x[:2]).shape == (2, 2)
    with pytest.raises(ValueError, match="`bank` must be a ShardedPoints"):
        jd.knn(x, x, k=1)
    with pytest.raises(ValueError, match="k may not exceed the bank size"):
        jd.knn(x, pts, k=11)
    with pytest.raises(ValueError, match="`features` has 5 features but the bank has 2"):
        jd.knn(jnp.ones((3, 5)), pts, k=1)
