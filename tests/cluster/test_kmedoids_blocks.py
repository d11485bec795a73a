"""FasterPAM's swaps do not depend on how many candidates one loop step evaluates.

The eager search evaluates ``_EAGER_BLOCK`` candidates per step and performs the first
improving one at or after its position (the blocks only batch the work; a block that
reaches past the end of a pass, or is clamped to the last rows, is masked). Any block size
must therefore give the same medoids, swaps and passes: checked here for block sizes 1, 3
and 8 on 12 problems whose size is no multiple of them, with many swaps from poor starts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxclust.cluster import medoids


def test_fasterpam_independent_of_block_size(monkeypatch):
    n, k, b = 61, 6, 12
    kc, kx, km = jax.random.split(jax.random.key(0), 3)
    centres = 3.0 * jax.random.normal(kc, (b, k, 3))
    spread = jnp.linspace(0.3, 2.0, b)[:, None, None]
    x = centres[:, jnp.arange(n) % k] + spread * jax.random.normal(kx, (b, n, 3))
    d = jax.vmap(lambda p: medoids._dissimilarity(p, "euclidean"))(x)
    # poor starts: k random points among the last 20 (the clamped last blocks)
    m0 = jax.vmap(lambda key: jax.random.choice(key, 20, (k,), replace=False))(
        jax.random.split(km, b)).astype(jnp.int32) + (n - 20)

    def search(d, m0):
        s, it, n_swaps, conv = medoids._fasterpam(d, None, m0, jnp.int32(100))
        return s.medoids, s.near, it, n_swaps, conv

    outs = []
    for size in (1, 3, 8):
        monkeypatch.setattr(medoids, "_EAGER_BLOCK", size)
        # vmap of the plain loop: one compiled search per block size for all problems
        outs.append([np.asarray(v) for v in jax.jit(jax.vmap(search))(d, m0)])
    ref = outs[0]
    assert ref[3].min() >= 2 and ref[4].all()  # searches that swap and converge
    for out in outs[1:]:
        for a, r in zip(out, ref, strict=True):
            np.testing.assert_array_equal(a, r)
