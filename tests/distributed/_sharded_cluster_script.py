"""Run by tests/distributed/test_sharded_cluster.py in a subprocess whose environment sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (8 simulated CPU devices; the flag
must be set before JAX starts). Compares the sharded k-means, mini-batch k-means and KNN
score with the single-device functions from the same keys and prints one JSON object of
measured differences and facts about the compiled HLO.

Data: 6 well-separated but overlapping Gaussian clusters in 4-D (centres 4 standard
deviations apart on average, so a few points sit between clusters), n = 1003 points, not a
multiple of 8 (8 devices hold 126 rows each, the last 5 rows are padding), random weights.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import numpy as np

from jaxclust import cluster, distributed as jd, ood
from jaxclust.distributed._hlo import collective_bytes, collective_ops

jax.config.update("jax_numpy_rank_promotion", "raise")  # as tests/conftest.py
_SHAPE = re.compile(r"\b(?:pred|[suf](?:8|16|32|64)|bf16)\[([0-9,]*)\]")


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _compare(sharded, single, n):
    lab = jd.gather(sharded.labels, n)
    return {"label_mismatches": int(np.sum(lab != np.asarray(single.labels))),
            "centroids_rel": _rel(sharded.centroids, single.centroids),
            "inertia_rel": _rel(sharded.inertia, single.inertia),
            "n_iters": [int(sharded.n_iters), int(single.n_iters)],
            "converged": [bool(sharded.converged), bool(single.converged)]}


def _hlo(text):
    """Collectives of a compiled program, and the largest dimension of any array in it."""
    ops = collective_ops(text)
    dims = [int(t) for dims in _SHAPE.findall(text) for t in dims.split(",") if t]
    return {"bytes": collective_bytes(text),
            "loop_max_dim": max((max(s, default=0) for o in ops if o.in_loop for s in o.shapes),
                                default=0),
            "kinds": sorted({o.kind for o in ops}),
            "max_array_dim": max(dims)}


def main():
    out = {"devices": len(jax.devices())}
    mesh = jd.make_mesh()
    rng = np.random.default_rng(0)
    n, k, d = 1003, 6, 4
    means = rng.normal(size=(k, d)) * 4.0
    x = (means[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    w = rng.uniform(0.5, 1.5, size=n).astype(np.float32)
    pts = jd.shard(x, mesh, weights=w)
    out["shard"] = {"n": pts.n, "n_pad": pts.n_pad,
                    "pad_weights": np.asarray(pts.weights)[n:].tolist(),
                    "shards": len(pts.x.addressable_shards),
                    "rows_per_shard": sorted({s.data.shape[0] for s in pts.x.addressable_shards}),
                    "roundtrip": bool(np.array_equal(jd.gather(pts.x, n), x))}

    key = jax.random.key(3)

    compiled_programs = {}

    def run(fn, name):
        """Compile ``fn(pts)`` under jit, run it and read its HLO: one compilation."""
        compiled = compiled_programs[name] = jax.jit(fn).lower(pts).compile()
        return compiled(pts), _hlo(compiled.as_text())

    # k-means, k-means++ seeding, two restarts
    single = cluster.kmeans(x, k, key=key, weights=w, n_init=2)
    res, hlo = run(lambda p: jd.kmeans(p, k, key=key, n_init=2), "kmeans")
    out["kmeans"] = dict(_compare(res, single, n), hlo=hlo)

    # Lloyd from given centres, one of them far away: its cluster is empty at the first
    # iteration and moves to the farthest point (the sharded relocation path); the program
    # holds only Lloyd's loop, so its per-iteration bytes are those of one Lloyd iteration
    c0 = np.array(x[:k])
    c0[0] = 100.0
    single = cluster.kmeans(x, k, key=key, weights=w, init=c0)
    res, hlo = run(lambda p: jd.kmeans(p, k, key=key, init=c0), "lloyd")
    out["lloyd"] = dict(_compare(res, single, n), hlo=hlo)
    out["lloyd"]["far_centre_moved"] = bool(np.abs(np.asarray(single.centroids[0])).max() < 50)

    # mini-batch k-means (batches with replacement, k-means++ on a seeding subset)
    single = cluster.minibatch_kmeans(x, k, key=key, weights=w, batch_size=64)
    res, hlo = run(lambda p: jd.minibatch_kmeans(p, k, key=key, batch_size=64),
                   "minibatch")
    out["minibatch"] = dict(_compare(res, single, n), hlo=hlo)

    # the same points moved by 1e4: both run around the points' mean (the sharded one
    # around the global mean), so the float32 distances do not cancel; eager calls
    far = x + np.float32(1e4)
    single = cluster.kmeans(far, k, key=key, weights=w, n_init=2)
    out["kmeans_far"] = _compare(jd.kmeans(jd.shard(far, mesh, weights=w), k, key=key,
                                           n_init=2), single, n)
    out["kmeans_far"]["same_labels_as_unmoved"] = bool(np.array_equal(
        np.asarray(single.labels), np.asarray(cluster.kmeans(x, k, key=key, weights=w,
                                                             n_init=2).labels)))

    # spherical (cosine) k-means and mini-batch k-means, one program each, not jitted
    # around (eager calls as a user makes them)
    single = cluster.kmeans(x, k, key=key, weights=w, spherical=True)
    out["kmeans_spherical"] = _compare(jd.kmeans(pts, k, key=key, spherical=True), single, n)
    single = cluster.minibatch_kmeans(x, k, key=key, weights=w, batch_size=64, spherical=True)
    out["minibatch_spherical"] = _compare(
        jd.minibatch_kmeans(pts, k, key=key, batch_size=64, spherical=True), single, n)

    # KNN with a sharded bank of 501 rows (63 per device, 3 padding rows); k = 70 exceeds
    # the rows per device, and runs over blocks of 16 bank rows
    stats = ood.fit_knn(x[:501])
    bank = jd.shard(stats.bank, mesh)
    q = x[480:560]
    out["knn"] = {"k5": _rel(jd.knn(q, bank, k=5), ood.knn(q, stats, k=5)),
                  "k70": _rel(jd.knn(q, bank, k=70, chunk_size=16), ood.knn(q, stats, k=70))}

    # bad values inside the compiled (jitted) sharded programs: every device sees the same
    # global verdict and raises; nothing hangs, nothing returns NaN
    def error_of(fn, *args):
        try:
            jax.block_until_ready(fn(*args))
        except Exception as err:  # noqa: BLE001 - the message is what is checked
            return str(err)
        return ""

    def with_x(a):
        return jax.tree_util.tree_map(lambda t: t.at[7].set(a) if t.ndim == 2 else t, pts)

    def with_w(a):
        return jax.tree_util.tree_map(lambda t: t * 0 + a if t.ndim == 1 else t, pts)

    lloyd, mb = compiled_programs["lloyd"], compiled_programs["minibatch"]
    knn5 = jax.jit(lambda q, b: jd.knn(q, b, k=5))
    out["errors"] = {
        "lloyd_nan_x": error_of(lloyd, with_x(np.nan)),
        "lloyd_negative_w": error_of(lloyd, with_w(-1.0)),
        "lloyd_zero_w": error_of(lloyd, with_w(0.0)),
        "minibatch_inf_x": error_of(mb, with_x(np.inf)),
        # issue 14: squared distances overflow float32 (before: labels 2**31 - 1, NaN
        # inertia, converged=True)
        "lloyd_huge_x": error_of(lloyd, with_x(1e20)),
        "minibatch_huge_x": error_of(mb, with_x(1e20)),
        # issue 14: shard's value checks hold under jit too (before: eager only)
        "shard_jit_negative_w": error_of(jax.jit(lambda a, b: jd.shard(a, mesh, b).weights),
                                         np.asarray(x), -np.asarray(w)),
        "knn_nan_query": error_of(knn5, np.where(np.arange(80)[:, None] == 3, np.nan, q), bank),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
