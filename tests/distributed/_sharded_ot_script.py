"""Run sharded Sinkhorn, SwAV codes and the BM k-means SDP on 8 simulated CPU devices and
print, as one JSON line, their differences to the single-device results and the collectives
of the compiled sharded Sinkhorn (read by test_sharded_ot.py).

The device count must be fixed before JAX starts, hence a separate process:
``XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu python <this file>``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _xla_env import xla_flags  # noqa: E402  (8 devices + the collective timeouts)

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = xla_flags(8, os.environ.get("XLA_FLAGS", ""))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxclust import distributed as jd  # noqa: E402
from jaxclust.distributed import _ot, _sdp  # noqa: E402
from jaxclust.distributed._hlo import collective_ops  # noqa: E402
from jaxclust.ot import sinkhorn, swav_codes  # noqa: E402
from jaxclust.sdp import BurerMonteiro, kmeans_sdp  # noqa: E402


def rel(u, v) -> float:
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return float(np.max(np.abs(u - v)) / max(np.max(np.abs(v)), 1e-30))


def main() -> dict:
    out: dict = {"devices": jax.device_count()}
    mesh = jd.make_mesh()
    rng = np.random.default_rng(0)

    # ---- Sinkhorn (online): n = 203 (not divisible by 8: 5 padding rows), far from 0 ------
    n, m, d = 203, 17, 3
    x = (2.0 * rng.standard_normal((n, d)) + 5.0).astype(np.float32)
    y = (rng.standard_normal((m, d)) + 5.5).astype(np.float32)
    w = rng.uniform(0.5, 1.5, n).astype(np.float32)
    pts = jd.shard(x, mesh, weights=w)
    a = w / w.sum()
    opts = dict(epsilon=0.3, tol=1e-6, max_iter=100, chunk_size=16)
    for name, tau in (("balanced", 1.0), ("unbalanced", 0.7)):
        tau = jnp.asarray(tau)  # traced: one compiled program for both
        r = _ot.sinkhorn(pts, y, tau_a=tau, tau_b=tau, **opts)
        r0 = sinkhorn(x, y, a, tau_a=tau, tau_b=tau, **opts)
        f, g = jd.gather(r.f, n), np.asarray(r.g)
        # balanced potentials are defined up to (f + c, g - c): rounding moves c a little
        # every iteration, so compare them with the constant fixed by mean(g) = 0 as well
        c, c0 = g.mean(), float(r0.g.mean())
        out[name] = {
            "f": rel(f, r0.f), "g": rel(g, r0.g),
            "f_fixed": rel(f + c, r0.f + c0), "g_fixed": rel(g - c, r0.g - c0),
            "n_iters": [int(r.n_iters), int(r0.n_iters)],
            "errors": rel(r.errors, r0.errors),
            "f_shape": list(r.f.shape), "f_sharded": r.f.sharding.spec == jax.sharding
            .PartitionSpec(jd.AXIS),
        }
    txt = jax.jit(lambda p, yy: _ot.sinkhorn(p, yy, **opts).f).lower(pts, y).compile().as_text()
    ops = collective_ops(txt)
    out["hlo"] = {"kinds": sorted({o.kind for o in ops}),
                  "shapes": sorted({s for o in ops for s in o.shapes}),
                  "n_pad": pts.n_pad, "n_local": pts.n_pad // 8}
    # a bad value under jit raises on every device (no device left waiting at a collective)
    def error_of(fn, *args):
        try:
            jax.block_until_ready(fn(*args))
        except Exception as err:  # noqa: BLE001 (the JAX runtime error type varies)
            return str(err)[-2000:]
        return None

    solve_g = jax.jit(lambda p, yy: _ot.sinkhorn(p, yy, **opts).g)  # one compilation
    out["nan_error"] = error_of(solve_g, pts, jnp.asarray(y).at[2, 1].set(jnp.nan))
    out["nan_x_error"] = error_of(
        solve_g, jax.tree_util.tree_map(lambda t: t.at[5].set(jnp.nan) if t.ndim == 2 else t,
                                        pts), y)
    out["negative_w_error"] = error_of(
        solve_g, jax.tree_util.tree_map(lambda t: t.at[5].set(-1.0) if t.ndim == 1 else t,
                                        pts), y)

    # gradients (implicit differentiation) w.r.t. the points, their weights, y and epsilon,
    # in float64: the float32 conjugate-gradient adjoint of the balanced problem is accurate
    # to ~1% only, on one device as on eight (a property of the solve, not of the sharding)
    with jax.enable_x64(True):
        x64, y64, w64 = (np.asarray(t, np.float64) for t in (x, y, w))
        pts64 = jd.shard(x64, mesh, weights=w64)
        rf = rng.standard_normal(n)
        rg = rng.standard_normal(m)
        rf_sharded = jd.shard(rf[:, None], mesh).x[:, 0]
        o64 = dict(opts, tol=1e-10, max_iter=3000)

        def loss_sharded(p, yy, eps, tau):
            r = _ot.sinkhorn(p, yy, tau_a=tau, tau_b=tau, **dict(o64, epsilon=eps))
            return jnp.sum(r.f * rf_sharded) + jnp.sum(r.g * rg) + r.linear_cost

        def loss_single(xx, ww, yy, eps, tau):
            r = sinkhorn(xx, yy, ww / jnp.sum(ww), tau_a=tau, tau_b=tau,
                         **dict(o64, epsilon=eps))
            return jnp.sum(r.f * rf) + jnp.sum(r.g * rg) + r.linear_cost

        grad_sh = jax.jit(jax.grad(loss_sharded, argnums=(0, 1, 2)))
        grad_1 = jax.jit(jax.grad(loss_single, argnums=(0, 1, 2, 3)))
        for name, tau in (("balanced", 1.0), ("unbalanced", 0.7)):
            eps, tau = jnp.asarray(0.3), jnp.asarray(tau)
            gp, gy, ge = grad_sh(pts64, jnp.asarray(y64), eps, tau)
            gx1, gw1, gy1, ge1 = grad_1(jnp.asarray(x64), jnp.asarray(w64), jnp.asarray(y64),
                                        eps, tau)
            out["grad_" + name] = {
                "x": rel(jd.gather(gp.x, n), gx1), "weights": rel(jd.gather(gp.weights, n), gw1),
                "y": rel(gy, gy1), "epsilon": rel(ge, ge1),
                "padding": float(np.max(np.abs(np.asarray(gp.x)[n:])))}

    # ---- SwAV codes: a padded ShardedPoints batch and an evenly divisible array ------------
    s = (3.0 * rng.standard_normal((61, 5))).astype(np.float32)
    q = jd.gather(_ot.swav_codes(jd.shard(s, mesh), epsilon=0.5, n_iter=5), 61)
    s2 = (3.0 * rng.standard_normal((64, 5))).astype(np.float32)
    q2 = _ot.swav_codes(jnp.asarray(s2), epsilon=0.5, n_iter=5)
    swav_ops = collective_ops(jax.jit(lambda p: _ot.swav_codes(p, epsilon=0.5, n_iter=5))
                                 .lower(jd.shard(s, mesh)).compile().as_text())
    out["swav"] = {"padded": rel(q, swav_codes(s, epsilon=0.5, n_iter=5)),
                   "kinds": sorted({o.kind for o in swav_ops}),
                   "max_dim": max(max(sh, default=1) for o in swav_ops for sh in o.shapes),
                   "array": rel(q2, swav_codes(s2, epsilon=0.5, n_iter=5)),
                   "array_shape": list(q2.shape)}

    # ---- BM k-means SDP: n = 61 (3 padding rows), 3 clusters in d = 5, fixed budget -------
    n_sdp = 61
    lab = np.arange(n_sdp) % 3
    xs = (6.0 / np.sqrt(2.0) * np.eye(3, 5)[lab] + rng.standard_normal((n_sdp, 5)))
    xs = xs.astype(np.float32)
    key = jax.random.key(1)
    bm200 = BurerMonteiro(max_iter=200)
    ref = kmeans_sdp(xs, 3, solver=bm200, key=key)
    res = _sdp.kmeans_sdp(jd.shard(xs, mesh), 3, key=key, solver=bm200)
    bad_pts = jax.tree_util.tree_map(lambda t: t.at[4].set(jnp.inf) if t.ndim == 2 else t,
                                     jd.shard(xs, mesh))
    out["bm_inf_error"] = error_of(lambda p: _sdp.kmeans_sdp(p, 3, key=key, solver=bm200)
                                   .objective, bad_pts)
    huge_pts = jax.tree_util.tree_map(lambda t: t.at[4].set(1e20) if t.ndim == 2 else t,
                                      jd.shard(xs, mesh))
    out["bm_huge_error"] = error_of(lambda p: _sdp.kmeans_sdp(p, 3, key=key, solver=bm200)
                                    .objective, huge_pts)
    out["bm"] = {"objective": abs(float(res.objective) / float(ref.objective) - 1.0),
                 "factor": rel(jd.gather(res.stats.factor, n_sdp), ref.stats.factor),
                 "residual": abs(float(res.primal_residual) - float(ref.primal_residual)),
                 "n_iters": [int(res.n_iters), int(ref.n_iters)],
                 "labels_equal": bool(np.array_equal(jd.gather(res.labels, n_sdp),
                                                     np.asarray(ref.labels))),
                 "padding_zero": bool(np.all(np.asarray(res.stats.factor)[n_sdp:] == 0))}
    # the "kmeans" start: sharded k-means labels, the single-device noise
    bm_km = BurerMonteiro(max_iter=100, init="kmeans")
    ref = kmeans_sdp(xs, 3, solver=bm_km, key=key)
    res = _sdp.kmeans_sdp(jd.shard(xs, mesh), 3, key=key, solver=bm_km)
    out["bm_kmeans_init"] = {
        "objective": abs(float(res.objective) / float(ref.objective) - 1.0),
        "factor": rel(jd.gather(res.stats.factor, n_sdp), ref.stats.factor),
        "n_iters": [int(res.n_iters), int(ref.n_iters)],
        "labels_equal": bool(np.array_equal(jd.gather(res.labels, n_sdp),
                                            np.asarray(ref.labels)))}
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
