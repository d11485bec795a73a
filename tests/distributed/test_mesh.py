"""jaxclust.distributed helpers on the single device of the test process (the 8-device
behaviour, padding included, is checked in a subprocess by test_sharded_cluster.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust import distributed as jd
from jaxclust.distributed._hlo import collective_bytes, collective_ops


def test_make_mesh():
    mesh = jd.make_mesh()
    assert mesh.axis_names == (jd.AXIS,) == ("points",)
    assert mesh.devices.size == len(jax.devices())
    assert jd.make_mesh(jax.devices()[:1]).devices.size == 1


def test_make_mesh_bad_input():
    with pytest.raises(ValueError, match="`devices` is empty"):
        jd.make_mesh([])
    d = jax.devices()[0]
    with pytest.raises(ValueError, match="repeats a device"):
        jd.make_mesh([d, d])
    # issue 14: a platform name is not a list of devices (before: a mesh of the devices
    # 'c', 'p', 'u')
    with pytest.raises(ValueError, match=r"`devices` must be a sequence of JAX devices.*"
                                         r"jax.devices\('cpu'\)"):
        jd.make_mesh("cpu")
    with pytest.raises(ValueError, match="`devices` must contain JAX devices"):
        jd.make_mesh([d, "cpu"])
    assert jd.make_mesh(tuple(jax.devices())).devices.size == len(jax.devices())


def test_shard_and_gather_roundtrip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    w = rng.uniform(size=7).astype(np.float32)
    pts = jd.shard(x, jd.make_mesh(), weights=w)
    assert pts.n == 7 and pts.n_pad == 7 and pts.num_devices == 1
    assert pts.x.sharding.spec == jax.sharding.PartitionSpec(jd.AXIS)
    np.testing.assert_array_equal(jd.gather(pts.x, pts.n), x)
    np.testing.assert_array_equal(jd.gather(pts.weights, pts.n), w)
    assert jd.gather(pts.x).shape == (7, 3)
    unit = jd.shard(x)  # default mesh and weights
    np.testing.assert_array_equal(np.asarray(unit.weights), np.ones(7, np.float32))


def test_sharded_points_is_a_pytree_with_static_n_and_mesh():
    pts = jd.shard(jnp.arange(8.0).reshape(4, 2))
    leaves, tree = jax.tree_util.tree_flatten(pts)
    assert len(leaves) == 2
    back = jax.tree_util.tree_unflatten(tree, leaves)
    assert back.n == 4 and back.mesh is pts.mesh

    @jax.jit
    def f(p):
        return p.x.sum() * p.n  # n is a Python int inside jit

    assert float(f(pts)) == 28.0 * 4
    assert "n=4" in repr(pts)


def test_shard_bad_input():
    mesh = jd.make_mesh()
    with pytest.raises(ValueError, match=r"`x` must be 2-D"):
        jd.shard(jnp.ones(3), mesh)
    with pytest.raises(ValueError, match="`x` has no rows"):
        jd.shard(jnp.ones((0, 2)), mesh)
    with pytest.raises(ValueError, match="`x` contains NaN"):
        jd.shard(jnp.array([[0.0, jnp.nan]]), mesh)
    with pytest.raises(ValueError, match=r"`weights` must have shape \(n,\)"):
        jd.shard(jnp.ones((3, 2)), mesh, weights=jnp.ones(2))
    with pytest.raises(ValueError, match="`weights` must be finite and >= 0"):
        jd.shard(jnp.ones((3, 2)), mesh, weights=jnp.array([1.0, -1.0, 1.0]))
    other = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    with pytest.raises(ValueError, match="`mesh` must be a 1-D"):
        jd.shard(jnp.ones((3, 2)), other)


def test_shard_value_checks_under_jit():
    """issue 14: shard checked NaN and negative weights only eagerly; under jit they passed
    silently. Now the runtime error carries the same message."""
    mesh = jd.make_mesh()
    f = jax.jit(lambda x, w: jd.shard(x, mesh, w))  # the checks ride on the arrays
    x, w = jnp.ones((3, 2)), jnp.ones(3)
    np.testing.assert_array_equal(np.asarray(f(x, w).weights), np.ones(3))
    with pytest.raises(Exception, match="`weights` must be finite and >= 0"):
        jax.block_until_ready(f(x, w.at[1].set(-1.0)))
    with pytest.raises(Exception, match="`x` contains NaN or Inf"):
        jax.block_until_ready(f(x.at[0, 1].set(jnp.nan), w))


def test_shard_host_arrays():
    # numpy input is checked and padded on the host; integers become the default float
    pts = jd.shard(np.arange(6).reshape(3, 2), weights=np.array([1.0, 0.0, 2.0]))
    assert pts.x.dtype == jnp.float32 and pts.weights.dtype == jnp.float32
    np.testing.assert_array_equal(jd.gather(pts.weights, 3), [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="`x` contains NaN"):
        jd.shard(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match="`weights` must be finite and >= 0"):
        jd.shard(np.ones((2, 2)), weights=np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"`weights` must have shape"):
        jd.shard(np.ones((2, 2)), weights=np.ones(3))
    with pytest.raises(ValueError, match=r"`x` must be 2-D"):
        jd.shard(np.ones((2, 2, 2)))


def test_gather_bad_input():
    a = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="`n` must be in"):
        jd.gather(a, 5)
    with pytest.raises(ValueError, match="`n` must be a Python int"):
        jd.gather(a, 2.0)


_HLO = """\
HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%rare (q: (f32[16,4], /*index=1*/s32[])) -> f32[16,4] {
  ROOT %fix = f32[8,16]{1,0} all-gather(%q), dimensions={0}
}

%body (p: (s32[], f32[16,4])) -> (s32[], f32[16,4]) {
  %p = (s32[], f32[16,4]{1,0}) parameter(0)
  %c = f32[16,4]{1,0} get-tuple-element(%p), index=1
  %r = (f32[16,4]{1,0}, f32[16]{0}) all-reduce(%c, %k), channel_id=1, to_apply=%add
  %b = f32[16,4]{1,0} conditional(%pred, %c, %c), branch_computations={%rare, %add}
  ROOT %t = (s32[], f32[16,4]{1,0}) tuple(%i, %c)
}

%cond (p: (s32[], f32[16,4])) -> pred[] {
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

ENTRY %main (x: f32[100,4]) -> f32[16,4] {
  %x = f32[100,4]{1,0} parameter(0)
  %g = (f32[100,4]{1,0}, f32[800,4]{1,0}) all-gather-start(%x), dimensions={0}
  %gd = f32[800,4]{1,0} all-gather-done(%g)
  %cp = (f32[5]{0}, f32[5]{0}, u32[], u32[]) collective-permute-start(%y), channel_id=2
  %cpd = f32[5]{0} collective-permute-done(%cp)
  %w = (s32[], f32[16,4]{1,0}) while(%init), condition=%cond, body=%body
  ROOT %o = f32[16,4]{1,0} get-tuple-element(%w), index=1
}
"""


def test_collective_ops_and_bytes_on_handwritten_hlo():
    ops = collective_ops(_HLO)
    assert [(o.kind, o.shapes, o.in_loop, o.in_branch, o.computation) for o in ops] == [
        ("all-gather", ((8, 16),), True, True, "rare"),
        ("all-reduce", ((16, 4), (16,)), True, False, "body"),
        ("all-gather", ((800, 4),), False, False, "main"),  # async: results only
        ("collective-permute", ((5,),), False, False, "main"),
    ]
    b = collective_bytes(_HLO)
    assert b["all-reduce"] == 4 * (64 + 16) == b["per_iteration"]
    assert b["per_iteration_branches"] == 4 * 8 * 16
    assert b["all-gather"] == 4 * (800 * 4 + 8 * 16)
    assert b["collective-permute"] == 4 * 5
    assert b["total"] == b["all-reduce"] + b["all-gather"] + b["collective-permute"]
    assert b["max_dim"] == 800
    assert collective_bytes("HloModule empty\n") == {
        "total": 0, "per_iteration": 0, "per_iteration_branches": 0, "max_dim": 0}
