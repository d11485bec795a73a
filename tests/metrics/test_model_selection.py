"""Bad input of the model-selection metrics (agreement with scikit-learn:
tests/peers/test_sklearn_selection.py)."""

from __future__ import annotations

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
