"""Bad input of the model-selection metrics and a jit regression (agreement with scikit-learn:
tests/peers/test_sklearn_selection.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust.metrics import (
    adjusted_mutual_info,
    calinski_harabasz,
    davies_bouldin,
    silhouette_samples,
)

_X = jnp.asarray(np.arange(12.0).reshape(6, 2))
_LAB = jnp.asarray([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize("fn", [silhouette_samples, calinski_harabasz, davies_bouldin])
def test_geometric_bad_input(fn):
    with pytest.raises(ValueError, match="between 2 and n - 1"):
        fn(_X, jnp.zeros(6, int), k=1)
    with pytest.raises(ValueError, match="`labels` must have shape"):
        fn(_X, _LAB[:5], k=3)
    with pytest.raises(ValueError, match="`x` contains NaN"):
        fn(_X.at[0, 0].set(jnp.nan), _LAB, k=3)
    with pytest.raises(ValueError, match="entries >= `k`"):
        fn(_X, _LAB, k=2)


def test_ami_bad_input():
    with pytest.raises(ValueError, match="`average` must be one of"):
        adjusted_mutual_info(_LAB, _LAB, average="mean")
    with pytest.raises(ValueError, match="same length"):
        adjusted_mutual_info(_LAB, _LAB[:5])
    with pytest.raises(ValueError, match="negative"):
        adjusted_mutual_info(_LAB, -_LAB)


def test_davies_bouldin_under_jit_equals_sklearn():
    """Guard for a fixed defect (findings, fuzzuser 09:21): under jit XLA may recompute the
    cluster means in two fusions, leaving ~1e-8 on the diagonal of the centre distances, so
    a cluster was compared with itself: 9.4e7 against scikit-learn's 0.302 on these blobs
    (k = 4 with an empty 4th cluster, as select_k pads; the unvalidated kernel select_k
    runs). That program arose in a plain Python process (the fuzzer's script: 9.4e7 before
    the fix, 0.302 after) but not inside pytest's (a different fusion), so this check
    guards the public and internal entries without reproducing the fault here. float32:
    1e-5 relative."""
    from sklearn.metrics import davies_bouldin_score

    from jaxclust.metrics.clustering import _davies_bouldin

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 2)) + 6.0 * i for i in range(3)]).astype(
        np.float32)
    lab = np.repeat(np.arange(3), 20)
    want = davies_bouldin_score(x, lab)
    xj = jnp.asarray(x)
    got = jax.jit(lambda lb: _davies_bouldin(xj, lb, 4, False))(jnp.asarray(lab))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    got = jax.jit(lambda lb: davies_bouldin(xj, lb, k=4))(jnp.asarray(lab))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
