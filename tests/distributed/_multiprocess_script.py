"""One process of the 2-process x 4-CPU-device run of ``test_multiprocess.py``.

Usage: ``python _multiprocess_script.py PROCESS_ID PORT`` (the test starts two of them).
Each process joins the coordinator on ``localhost:PORT`` (``jax.distributed``; CPU
collectives across the processes by gloo), builds every sharded input from **its own rows
only** (``jax.make_array_from_process_local_data``), and runs the sharded k-means,
mini-batch k-means, online Sinkhorn with its implicit gradient, SwAV codes, the KNN score and
the Burer-Monteiro SDP. Process 0 also runs the single-device functions on the whole data
set (on its first local device) and prints, as the last line of its output, one JSON object
with the measured differences and the collectives of every compiled sharded program.
"""

from __future__ import annotations

import json
import os
import sys
import time

# 4 simulated CPU devices per process and XLA's collective timeouts raised (see _xla_env.py);
# must be set before JAX starts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _xla_env import xla_flags  # noqa: E402

os.environ["XLA_FLAGS"] = xla_flags(4, os.environ.get("XLA_FLAGS", ""))
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")  # cross-process collectives
jax.config.update("jax_numpy_rank_promotion", "raise")  # as tests/conftest.py

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

T0 = time.perf_counter()


def rel(u, v) -> float:
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return float(np.max(np.abs(u - v)) / max(np.max(np.abs(v)), 1e-30))


def process_rows(mesh, n_pad: int) -> slice:
    """The global rows this process holds under ``P("points")``: the union of the row blocks
    of its devices (contiguous: the mesh lists each process's devices together)."""
    sharding = NamedSharding(mesh, P("points"))
    blocks = sharding.addressable_devices_indices_map((n_pad,)).values()
    start = min(b[0].start or 0 for b in blocks)
    stop = max(b[0].stop or n_pad for b in blocks)
    return slice(start, stop)


def local_points(data: np.ndarray, weights: np.ndarray | None, mesh):
    """``ShardedPoints`` assembled from this process's rows of ``data`` (the other rows are
    never read): zero rows of weight 0 pad the global array to a multiple of the devices."""
    from jaxclust import distributed as jd

    n = data.shape[0]
    p = mesh.devices.size
    n_pad = -(-n // p) * p
    rows = process_rows(mesh, n_pad)
    m = rows.stop - rows.start
    x_local = np.zeros((m,) + data.shape[1:], data.dtype)
    w_local = np.zeros((m,), data.dtype)
    real = data[rows.start:min(rows.stop, n)]  # this process's real rows only
    x_local[:len(real)] = real
    w_local[:len(real)] = 1.0 if weights is None else weights[rows.start:rows.start + len(real)]
    sharding = NamedSharding(mesh, P(jd.AXIS))
    x = jax.make_array_from_process_local_data(sharding, x_local, (n_pad,) + data.shape[1:])
    w = jax.make_array_from_process_local_data(sharding, w_local, (n_pad,))
    return jd.ShardedPoints(x, w, n, mesh)


def replicated(arr, mesh):
    """A global array replicated on every device of ``mesh`` (each process passes the whole
    value)."""
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P()), np.asarray(arr))


def collectives(compiled, n_local: int) -> dict:
    """Kinds of the collectives of a compiled sharded program and the largest dimension of
    any of their buffers (compared with the rows per device, n_local)."""
    from jaxclust.distributed._hlo import collective_ops

    ops = collective_ops(compiled.as_text())
    return {"kinds": sorted({o.kind for o in ops}),
            "max_dim": max((max(s, default=1) for o in ops for s in o.shapes), default=0),
            "all_gather_max_dim": max((max(s, default=1) for o in ops if o.kind == "all-gather"
                                       for s in o.shapes), default=0),
            "n_local": n_local, "n_pad": n_local * jax.device_count()}


def main(pid: int, port: int) -> dict | None:
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=pid)
    from jaxclust import cluster, distributed as jd, ood, ot, sdp

    ref = pid == 0  # the single-device references run on process 0 only
    out: dict = {"processes": jax.process_count(), "devices": jax.device_count(),
                 "local_devices": jax.local_device_count()}
    mesh = jd.make_mesh()
    rng = np.random.default_rng(0)  # the same data set on both processes (each reads its rows)

    def run(fn, *args):
        compiled = jax.jit(fn).lower(*args).compile()
        return compiled(*args), compiled

    # ---- k-means and mini-batch k-means: n = 1003 (5 padding rows, on process 1) ---------
    n, k, d = 1003, 6, 4
    means = rng.normal(size=(k, d)) * 4.0
    x = (means[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    w = rng.uniform(0.5, 1.5, size=n).astype(np.float32)
    pts = local_points(x, w, mesh)
    n_local = pts.n_pad // jax.device_count()
    out["points"] = {"n_pad": pts.n_pad, "local_rows": process_rows(mesh, pts.n_pad).stop
                     - process_rows(mesh, pts.n_pad).start,
                     "addressable_shards": len(pts.x.addressable_shards),
                     "roundtrip": bool(np.array_equal(jd.gather(pts.x, n), x))}
    key = jax.random.key(3)
    res, comp = run(lambda p: jd.kmeans(p, k, key=key, n_init=2), pts)
    out["kmeans"] = {"hlo": collectives(comp, n_local)}
    mres, comp = run(lambda p: jd.minibatch_kmeans(p, k, key=key, batch_size=64), pts)
    out["minibatch"] = {"hlo": collectives(comp, n_local)}
    labels, mlabels = jd.gather(res.labels, n), jd.gather(mres.labels, n)
    if ref:
        one = cluster.kmeans(x, k, key=key, weights=w, n_init=2)
        out["kmeans"].update(label_mismatches=int(np.sum(labels != np.asarray(one.labels))),
                             centroids=rel(res.centroids, one.centroids),
                             inertia=rel(res.inertia, one.inertia))
        one = cluster.minibatch_kmeans(x, k, key=key, weights=w, batch_size=64)
        out["minibatch"].update(label_mismatches=int(np.sum(mlabels != np.asarray(one.labels))),
                                centroids=rel(mres.centroids, one.centroids),
                                inertia=rel(mres.inertia, one.inertia))

    # ---- online Sinkhorn and its implicit gradient (float64): n = 203, m = 17 -------------
    with jax.enable_x64(True):
        ns, m = 203, 17
        xs = 2.0 * rng.standard_normal((ns, 3)) + 5.0
        ys = rng.standard_normal((m, 3)) + 5.5
        ws = rng.uniform(0.5, 1.5, ns)
        rf, rg = rng.standard_normal(ns), rng.standard_normal(m)
        spts = local_points(xs, ws, mesh)
        rf_sh = local_points(rf[:, None], None, mesh).x[:, 0]
        opts = dict(epsilon=0.3, tol=1e-10, max_iter=3000, chunk_size=16)

        def loss_sharded(p, yy, wf):
            r = jd.sinkhorn(p, yy, **opts)
            return jnp.sum(r.f * wf) + jnp.sum(r.g * rg)

        y_rep = replicated(ys, mesh)
        (val, (gp, gy)), comp = run(jax.value_and_grad(loss_sharded, argnums=(0, 1)), spts,
                                    y_rep, rf_sh)
        r, comp_fwd = run(lambda p, yy: jd.sinkhorn(p, yy, **opts), spts, y_rep)
        s_local = spts.n_pad // jax.device_count()
        out["sinkhorn"] = {"hlo": collectives(comp_fwd, s_local),
                           "hlo_grad": collectives(comp, s_local),
                           "converged": bool(r.converged)}
        f, g = jd.gather(r.f, ns), np.asarray(r.g)
        gx = jd.gather(gp.x, ns)
        gw = jd.gather(gp.weights, ns)
        if ref:
            def loss_single(xx, ww, yy):
                r = ot.sinkhorn(xx, yy, ww / jnp.sum(ww), **opts)
                return jnp.sum(r.f * rf) + jnp.sum(r.g * rg), r

            (val1, r1), (gx1, gw1, gy1) = jax.value_and_grad(
                loss_single, argnums=(0, 1, 2), has_aux=True)(xs, ws, ys)
            c, c1 = g.mean(), float(r1.g.mean())  # balanced potentials: fix the constant
            out["sinkhorn"].update(
                f=rel(f + c, r1.f + c1), g=rel(g - c, r1.g - c1),
                n_iters=[int(r.n_iters), int(r1.n_iters)], loss=rel(val, val1),
                grad_x=rel(gx, gx1), grad_weights=rel(gw, gw1), grad_y=rel(gy, gy1))

    # ---- SwAV codes of a batch of 61 score rows ---------------------------------------------
    sc = (3.0 * rng.standard_normal((61, 5))).astype(np.float32)
    q, comp = run(lambda p: jd.swav_codes(p, epsilon=0.5, n_iter=5), local_points(sc, None, mesh))
    out["swav"] = {"hlo": collectives(comp, -(-61 // 8))}
    q = jd.gather(q, 61)
    if ref:
        out["swav"]["codes"] = rel(q, ot.swav_codes(sc, epsilon=0.5, n_iter=5))

    # ---- KNN score: a bank of 501 rows (the first 501 points), 40 replicated queries -----
    stats = ood.fit_knn(x[:501])
    bank = local_points(np.asarray(stats.bank), None, mesh)
    queries = x[480:520]
    score, comp = run(lambda qq, b: jd.knn(qq, b, k=5), replicated(queries, mesh), bank)
    out["knn"] = {"hlo": collectives(comp, bank.n_pad // jax.device_count())}
    score = np.asarray(score)
    if ref:
        out["knn"]["score"] = rel(score, ood.knn(queries, stats, k=5))

    # ---- Burer-Monteiro k-means SDP: n = 61, 3 clusters in d = 5, fixed budget ------------
    lab = np.arange(61) % 3
    xb = (6.0 / np.sqrt(2.0) * np.eye(3, 5)[lab] + rng.standard_normal((61, 5)))
    xb = xb.astype(np.float32)
    key = jax.random.key(1)
    bpts = local_points(xb, None, mesh)
    solver = sdp.BurerMonteiro(max_iter=200)
    bm, comp = run(lambda p: jd.kmeans_sdp(p, 3, solver=solver, key=key), bpts)
    # on every process
    bm_labels, bm_factor = jd.gather(bm.labels, 61), jd.gather(bm.stats.factor, 61)
    out["bm"] = {"hlo": collectives(comp, bpts.n_pad // jax.device_count())}
    if ref:
        one = sdp.kmeans_sdp(xb, 3, solver=sdp.BurerMonteiro(max_iter=200), key=key)
        one_labels = np.asarray(one.labels)
        # the same partition: each sharded label maps to exactly one single-device label
        pairs = {(int(a), int(b)) for a, b in zip(bm_labels, one_labels, strict=True)}
        out["bm"].update(objective=abs(float(bm.objective) / float(one.objective) - 1.0),
                         factor=rel(bm_factor, one.stats.factor),
                         labels_equal=bool(np.array_equal(bm_labels, one_labels)),
                         same_partition=len(pairs) == len({a for a, _ in pairs})
                         == len({b for _, b in pairs}),
                         labels=[bm_labels.tolist(), one_labels.tolist()],
                         n_iters=[int(bm.n_iters), int(one.n_iters)])
    out["seconds"] = time.perf_counter() - T0
    jax.distributed.shutdown()
    return out if ref else None


if __name__ == "__main__":
    result = main(int(sys.argv[1]), int(sys.argv[2]))
    if result is not None:
        print(json.dumps(result))
