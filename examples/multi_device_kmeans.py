"""k-means on a million points sharded over 8 devices, checked against one device.

Shards ``n`` points (default 10^6 in 16-D, 16 Gaussian clusters, ``n`` not a multiple of
the device count, so the padding is exercised) over all devices with
``jaxclust.distributed``, runs k-means (k-means++ seeding, then a fixed number of Lloyd
iterations), runs the single-device ``jaxclust.cluster.kmeans`` from the same key, and
prints the agreement, the time per Lloyd iteration of both and the bytes each device
communicates per Lloyd iteration, read from the compiled HLO.

On a machine with one CPU device the script re-executes itself with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (8 simulated CPU devices sharing the
cores: this shows that the program runs sharded and what it communicates, not a speed-up).
On a machine with several accelerators it uses them as they are.

Run from the repository root (about a minute on a 2-core CPU)::

    python examples/multi_device_kmeans.py
    python examples/multi_device_kmeans.py --n 200000 --devices 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

from jaxclust import cluster, distributed as jd

# a reader of the collectives in compiled HLO text (a diagnostic of this repository, not
# public API: HLO text is not a stable format)
from jaxclust.distributed._hlo import collective_bytes


def _reexec_with_simulated_devices(count: int) -> None:
    """Start this script again with ``count`` simulated CPU devices (the XLA flag must be
    set before JAX initialises its CPU backend, so it cannot be set in this process)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return  # already re-executed (or set by the user): use what we have
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    os.execv(sys.executable, [sys.executable, *sys.argv])


def _timed(fn, *args, repeat=2):
    out = fn(*args)  # compile and warm up
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return out, best


def _agreement(sharded, labels, single) -> None:
    # the sharded results are replicated over the mesh: compare on the host
    c_sharded, c_single = np.asarray(sharded.centroids), np.asarray(single.centroids)
    rel = float(np.max(np.abs(c_sharded - c_single)) / np.max(np.abs(c_single)))
    print(f"  labels identical: {bool(np.array_equal(labels, np.asarray(single.labels)))}, "
          f"centroids max relative difference {rel:.1e}, inertia {float(sharded.inertia):.7g}"
          f" vs {float(single.inertia):.7g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_003, help="number of points")
    parser.add_argument("--d", type=int, default=16, help="dimension")
    parser.add_argument("--k", type=int, default=16, help="number of clusters")
    parser.add_argument("--iters", type=int, default=10, help="Lloyd iterations timed")
    parser.add_argument("--devices", type=int, default=8,
                        help="simulated CPU devices when only one device is present")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if jax.device_count() == 1 and jax.default_backend() == "cpu" and args.devices > 1:
        _reexec_with_simulated_devices(args.devices)

    n, d, k = args.n, args.d, args.k
    rng = np.random.default_rng(args.seed)
    means = rng.normal(size=(k, d)) * 3.0
    x = (means[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    key = jax.random.key(args.seed)

    mesh = jd.make_mesh()
    p = mesh.devices.size
    pts = jd.shard(x, mesh)
    print(f"{n} points in {d}-D, k = {k}, on {p} {jax.default_backend()} device(s): "
          f"{pts.n_pad // p} rows per device ({pts.n_pad - n} padding rows with weight 0)")

    # 1. the whole algorithm (k-means++ then Lloyd to convergence), sharded vs one device
    t = time.perf_counter()
    sharded = jd.kmeans(pts, k, key=key)
    labels = jd.gather(sharded.labels, pts.n)
    t_sharded = time.perf_counter() - t
    x1 = jax.device_put(x, jax.devices()[0])
    t = time.perf_counter()
    single = cluster.kmeans(x1, k, key=key)
    jax.block_until_ready(single)
    t_single = time.perf_counter() - t
    print(f"k-means++ and Lloyd to convergence, compile included: sharded {t_sharded:.1f} s "
          f"({int(sharded.n_iters)} iterations), one device {t_single:.1f} s "
          f"({int(single.n_iters)} iterations)")
    _agreement(sharded, labels, single)
    # k-means++ draws a point by inverse CDF over a float32 prefix sum of the n weights
    # w D^2: one device sums in one scan, P devices in P partial scans plus offsets, so the
    # CDFs differ by rounding (~1e-6 relative at n = 10^6) and a draw falling that close to
    # a boundary picks the neighbouring index. At n ~ 10^3 (the tests) this almost never
    # happens; at n = 10^6 it usually does for some of the k * trials draws, and the two
    # runs start from different (equally valid) seeds. Lloyd itself is deterministic:
    centres = cluster.kmeans_plusplus(x1, k, key=key)
    t = time.perf_counter()
    sharded = jd.kmeans(pts, k, key=key, init=centres)
    labels = jd.gather(sharded.labels, pts.n)
    t_sharded = time.perf_counter() - t
    single = cluster.kmeans(x1, k, key=key, init=centres)
    print(f"Lloyd from the same k-means++ centres ({int(sharded.n_iters)} vs "
          f"{int(single.n_iters)} iterations, sharded {t_sharded:.1f} s with compile):")
    _agreement(sharded, labels, single)

    # 2. time per Lloyd iteration: a fixed number of iterations from the same centres
    c0 = single.centroids
    iters = args.iters

    def lloyd_sharded(points):
        return jd.kmeans(points, k, key=key, init=c0, max_iter=iters, tol=0.0)

    def lloyd_single(xx):
        return cluster.kmeans(xx, k, key=key, init=c0, max_iter=iters, tol=0.0)

    f_sharded, f_single = jax.jit(lloyd_sharded), jax.jit(lloyd_single)
    res_s, dt_s = _timed(f_sharded, pts)
    res_1, dt_1 = _timed(f_single, x1)
    # each call runs `n_iters` iterations and one final assignment pass
    per_s, per_1 = dt_s / (int(res_s.n_iters) + 1), dt_1 / (int(res_1.n_iters) + 1)
    print(f"time per Lloyd iteration: sharded {1e3 * per_s:.1f} ms on {p} devices, one device "
          f"{1e3 * per_1:.1f} ms")

    # 3. what one Lloyd iteration communicates, from the compiled program
    hlo = f_sharded.lower(pts).compile().as_text()
    b = collective_bytes(hlo)
    print(f"communication per Lloyd iteration and device: {b['per_iteration']} bytes "
          f"(= 4 (k d + k + 1) = {4 * (k * d + k + 1)}: centre sums, masses, changed labels); "
          f"{b['per_iteration_branches']} more bytes in iterations that relocate an empty "
          f"cluster; largest communicated dimension {b['max_dim']} (n / P = {pts.n_pad // p})")
    print(f"the points themselves ({4 * n * d / 1e6:.0f} MB) never move: "
          f"{4 * pts.n_pad * d // p / 1e6:.1f} MB stay on each device")


if __name__ == "__main__":
    main()
