"""Strict test configuration shared by the whole suite.

* ``jax_numpy_rank_promotion = "raise"`` at import: implicit rank promotion
  (``(n, d) - (d,)``) is an error everywhere, library code included.
* ``key`` / ``rng``: a fixed-seed JAX key and numpy generator per test.
* ``x64``: float64 enabled only for the duration of one test (finite-difference gradient
  checks); everything else runs in the default float32.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# `jaxclust.cli.main` turns on JAX's on-disk compilation cache; not inside the test process
os.environ.setdefault("JAXCLUST_NO_CACHE", "1")

from .utils import enable_x64  # noqa: E402  (re-exported for tests)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def x64():
    with enable_x64():
        yield


# Heavy checks that duplicate a property covered elsewhere in the fast suite (the conformance
# registry's jit/vmap/FD cases, the peer ports, the fuzzer): they run in `make test-all` so that
# `make test` stays under 8 minutes on 2 cores. Every id must exist (checked below).
_IN_TEST_ALL = {
    "tests/cluster/test_soft.py::test_sinkhorn_kmeans_sizes_and_fixed_point_vs_pot",
    "tests/cluster/test_soft.py::test_kmeans_envelope_gradient_matches_fd[centroids]",
    "tests/ot/test_grad.py::test_implicit_unrolled_and_finite_differences_agree[balanced]",
    "tests/ot/test_grad.py::test_padded_gradients_equal_unpadded[1.0-True]",
    "tests/ot/test_online.py::test_online_gradients_equal_dense_gradients[True]",
    "tests/ot/test_sinkhorn.py::test_default_epsilon_is_a_fraction_of_the_cost_spread",
    "tests/metrics/test_clustering.py::test_degenerate_values",
    "tests/metrics/test_clustering.py::test_silhouette_matches_sklearn[two-row-blocks]",
    "tests/metrics/test_clustering.py::test_silhouette_matches_sklearn[empty-label]",
    "tests/metrics/test_clustering.py::test_inertia_gradient",
    "tests/metrics/test_clustering.py::test_jit_and_vmap[silhouette]",
    "tests/metrics/test_precision.py::test_label_metrics_near_constant_labellings",
    "tests/sdp/test_kmeans_sdp.py::test_gap_and_residuals_small_at_convergence",
    "tests/cluster/test_kmeans.py::test_same_key_same_result_and_restarts_help",
    "tests/cluster/test_kmeans_predict.py::test_spherical_minibatch_and_its_prediction",
    "tests/cluster/test_gmm.py::test_implicit_gradient_matches_finite_differences[spherical]",
    "tests/cluster/test_gmm.py::test_empty_and_degenerate_components_stay_finite",
    "tests/cluster/test_gmm.py::test_jit_and_vmap",
    "tests/cluster/test_bad_input.py::test_sinkhorn_kmeans_converged_requires_the_final_assignment_to_converge",
    "tests/cluster/test_bad_input.py::test_sinkhorn_kmeans_on_constant_data_needs_no_epsilon",
    "tests/cluster/test_kmedoids.py::test_loss_gradient_at_fixed_medoids",
    "tests/cluster/test_spectral.py::test_vmap_and_the_knn_option",
    "tests/cluster/test_spectral.py::test_knn_affinity_matches_sklearn_kneighbors_graph",
    "tests/cluster/test_losses.py::test_swav_loss_gradient_treats_codes_as_constants",
    "tests/_core/test_costs.py::test_lse_dense_equals_online[sqeuclidean-1]",
    "tests/diffusion/test_train.py::test_loss_decreases_towards_the_exact_predictor",
    "tests/diffusion/test_classifier.py::test_pruning_keeps_the_best_classes_of_the_first_stage",
    "tests/nn/test_score_nets.py::test_unet_28x28_three_levels_and_unconditional",
    "tests/peers/test_sklearn_supervised.py::test_exactly_zero_info_score[10000-min]",
}


def pytest_collection_modifyitems(config, items):
    ids = {item.nodeid for item in items}
    if any(i.startswith("tests/cluster/") for i in ids) and len(ids) > 1000:  # a whole-suite run
        unknown = sorted(_IN_TEST_ALL - ids)
        assert not unknown, f"tests/conftest.py _IN_TEST_ALL names unknown tests: {unknown}"
    for item in items:
        if item.nodeid in _IN_TEST_ALL:
            item.add_marker(pytest.mark.slow)
