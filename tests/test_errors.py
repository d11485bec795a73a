"""The exceptions a user gets for bad input, as docs/errors.md states them (jax 0.10.2,
equinox 0.13.8): ``ValueError`` eagerly and for shapes; under ``jax.jit`` a
``JaxRuntimeError``, under ``equinox.filter_jit``, ``jax.vmap`` and ``jax.grad`` an
``EquinoxRuntimeError``, both carrying ``"ValueError: <message>"``; ``EQX_ON_ERROR=nan``
turns the traced checks into NaN outputs (issue 14, 1.7).

A cheap checked function (``kmeans_loss``, one compilation per transformation) stands for
all: every public function validates through the same ``checks.ensure``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.cluster import kmeans_loss

_X = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)
_C = _X[:2]
_BAD = _X.at[0, 0].set(jnp.nan)
_MSG = "`x` contains NaN or Inf"


def _loss(x):
    return kmeans_loss(x, _C)


def _raises(thunk):
    with pytest.raises(Exception) as info:
        jax.block_until_ready(thunk())
    return info.value


def test_eager_value_error():
    err = _raises(lambda: _loss(_BAD))
    assert type(err) is ValueError and _MSG in str(err)


@pytest.mark.parametrize("how, expected", [
    ("jax.jit", jax.errors.JaxRuntimeError),
    ("jit(vmap)", jax.errors.JaxRuntimeError),
    ("eqx.filter_jit", eqx.EquinoxRuntimeError),
    ("vmap", eqx.EquinoxRuntimeError),
    ("grad", eqx.EquinoxRuntimeError),
])
def test_traced_value_errors(how, expected):
    batch = jnp.stack([_X, _BAD])
    call = {
        "jax.jit": lambda: jax.jit(_loss)(_BAD),
        "jit(vmap)": lambda: jax.jit(jax.vmap(_loss))(batch),
        "eqx.filter_jit": lambda: eqx.filter_jit(_loss)(_BAD),
        "vmap": lambda: jax.vmap(_loss)(batch),
        "grad": lambda: jax.grad(_loss)(_BAD),
    }[how]
    err = _raises(call)
    assert isinstance(err, expected) and isinstance(err, RuntimeError)
    assert not isinstance(err, ValueError)
    assert "ValueError: " + _MSG in str(err)
    # the documented way to catch it
    try:
        call()
    except (ValueError, jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError) as caught:
        assert "ValueError: " in str(caught)


@pytest.mark.parametrize("how", ["eager", "jax.jit", "eqx.filter_jit", "vmap"])
def test_shape_errors_are_value_errors_everywhere(how):
    x3 = _X[:, :, None]
    call = {"eager": lambda: _loss(x3), "jax.jit": lambda: jax.jit(_loss)(x3),
            "eqx.filter_jit": lambda: eqx.filter_jit(_loss)(x3),
            "vmap": lambda: jax.vmap(_loss)(x3[None])}[how]
    err = _raises(call)
    assert type(err) is ValueError and "`x` must be 2-D" in str(err)


def test_eqx_on_error_nan_disables_the_traced_checks():
    # equinox reads EQX_ON_ERROR at import: a fresh interpreter
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        from jaxclust.cluster import kmeans_loss
        x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)
        bad = x.at[0, 0].set(jnp.nan)
        f = lambda x: kmeans_loss(x, x[:2] * 0 + jnp.asarray([[0.0, 0.0], [1.0, 1.0]]))
        try:
            f(bad)
            print("eager: no error")
        except ValueError:
            print("eager: ValueError")
        print("jit:", bool(jnp.isnan(jax.jit(f)(bad))))
        print("vmap:", np.isnan(np.asarray(jax.vmap(f)(jnp.stack([x, bad])))).tolist())
        # k-means' checks ride on a token, not on x: its outputs are NaN all the same
        from jaxclust.cluster import kmeans
        km = lambda x: kmeans(x, 2, key=jax.random.key(0)).inertia
        print("kmeans vmap:", np.isnan(np.asarray(jax.vmap(km)(jnp.stack([x, bad])))).tolist())
        # soft k-means' checks ride on a token as well (Sinkhorn k-means and mini-batch
        # k-means add theirs in the same way; one fit here: this process compiles each)
        from jaxclust.cluster import soft_kmeans
        soft = lambda x: soft_kmeans(x, 2, temperature=1.0, key=jax.random.key(0))
        for how, bad_x in (("nan", bad), ("overflow", x.at[0, 0].set(1e30))):
            r = jax.vmap(soft)(jnp.stack([x, bad_x]))
            print("soft", how, np.isnan(np.asarray(r.objective)).tolist(),
                  bool(np.isnan(np.asarray(r.centroids)).all()))
    """)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, EQX_ON_ERROR="nan",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert "eager: ValueError" in out  # eager checks still raise
    assert "jit: True" in out  # the traced check returns NaN instead of raising
    assert "vmap: [True, True]" in out  # and the valid batch element is lost too
    assert "kmeans vmap: [True, True]" in out
    for how in ("nan", "overflow"):
        assert f"soft {how} [True, True] True" in out, out


def test_distributed_checks_concrete_points_eagerly():
    import jaxclust.distributed as jd

    mesh = jd.make_mesh(jax.devices()[:1])
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        jd.swav_codes(jd.shard(jnp.pad(_BAD, ((0, 0), (0, 2))), mesh), epsilon=0.5, n_iter=3)
