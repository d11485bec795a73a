"""Conformance cases of the model-selection metrics (registered through
``tests.conformance.pillar_cases``; jaxclust.metrics' coverage is checked by
tests/test_conformance.py itself, so MODULES is empty here)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..conformance import Case

MODULES: list = []

_LAB = jnp.asarray([0, 0, 1, 1, 2, 2, 0, 1, 2, 1])
_LAB2 = jnp.asarray([1, 0, 1, 1, 2, 0, 0, 1, 2, 2])


def _geometric(x):
    # the three label-based geometric scores in one program (one compilation)
    from jaxclust.metrics import calinski_harabasz, davies_bouldin, silhouette_samples

    return (silhouette_samples(x, _LAB, k=3), calinski_harabasz(x, _LAB, k=3),
            davies_bouldin(x, _LAB, k=3))


def _ch(x):
    from jaxclust.metrics import calinski_harabasz

    return calinski_harabasz(x, _LAB, k=3)


def _db(x):
    from jaxclust.metrics import davies_bouldin

    return davies_bouldin(x, _LAB, k=3)


def _ami(lt, lp):
    from jaxclust.metrics import adjusted_mutual_info

    return adjusted_mutual_info(lt, lp, n_true=3, n_pred=3, average="geometric")


def cases() -> list[Case]:
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(10, 2)), jnp.float32)
    return [
        Case("silhouette_samples+ch+db", "silhouette_samples", _geometric, (x,), (0,)),
        # covered by the fused case above; their own cases compile the same code again
        Case("calinski_harabasz", "calinski_harabasz", _ch, (x,), (0,), slow=True),
        Case("davies_bouldin", "davies_bouldin", _db, (x,), (0,), slow=True),
        # slow: the fast tests/peers/test_sklearn_selection.py runs AMI under jit(vmap)
        Case("adjusted_mutual_info", "adjusted_mutual_info", _ami, (_LAB, _LAB2), slow=True),
    ]
