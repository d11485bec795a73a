"""python-kmedoids' integration tests, ported to `jaxclust.cluster.kmedoids` / `pam_build`.

Peer file: ``tests/test_integration.py`` of github.com/kno10/python-kmedoids at commit
``018f26b01fe86e9f7c0a1a51388c7c5d8501fa0a`` (the file as of ``9d6e5c68``, "Version
0.5.1"); the installed ``kmedoids`` package (0.5.5, GPL) is used as an oracle in these tests
only. Data (the peer's 5 x 5 integer dissimilarity matrix), parameters (``k = 2``,
``init="build"``, ``max_iter=100``) and expected losses are the peer's. Where the peer compares
its Python wrapper with its Rust core, we compare jaxclust with the installed package; the
last cases add the package's own results on a shared point cloud (k = 3 and 5).

Translation of the API differences:

* ``kmedoids.pam_build(diss, k)`` -> ``pam_build(diss, k, metric="precomputed")`` (medoid
  indices only; the loss is the sum over points of the smallest dissimilarity to a medoid).
* ``kmedoids.pam(diss, k)`` (BUILD, then PAM SWAP) -> ``kmedoids(diss, k,
  metric="precomputed", method="pam")``; ``kmedoids.fasterpam(diss, k, init="build")`` ->
  ``method="fasterpam"`` (jaxclust's default init is BUILD). ``kmedoids.fastpam1`` computes the
  same swaps as PAM faster; it maps to ``method="pam"``. ``loss`` / ``medoids`` / ``labels``
  keep their names; ``KMedoids(k, method=..., init="build").fit(diss)`` ->
  ``inertia_`` / ``medoid_indices_`` / ``labels_`` are the same three results.
* jaxclust reads a precomputed matrix row-wise (``x[m, i]``: point ``i`` to medoid ``m``),
  the transpose of the package's convention; the peer's matrices are symmetric.
* The alternating (Voronoi iteration) algorithm, the medoid silhouette and the
  silhouette-optimising variants (PAMSIL, PAMMEDSIL, FastMSC, FasterMSC, DynMSC) and
  ``n_cpu`` have no counterpart; the silhouette on a precomputed (non-Euclidean) matrix has
  none either.
* Dissimilarities are float32 in jaxclust (the peer's are int32): the peer's integer losses
  are exact in float32.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from jaxclust.cluster import kmedoids, pam_build

kmedoids_pkg = pytest.importorskip("kmedoids")  # GPL: a test-only oracle

DIST = np.array([[0, 2, 3, 4, 5], [2, 0, 6, 7, 8], [3, 6, 0, 9, 10], [4, 7, 9, 0, 11],
                 [5, 8, 10, 11, 0]], dtype=np.int32)


def _loss(d, medoids):
    return float(np.min(np.asarray(d, float)[np.asarray(medoids)], axis=0).sum())


# --- peer: test_pam (BUILD, then PAM SWAP)
def test_pam_build():
    medoids = np.asarray(pam_build(DIST, 2, metric="precomputed"))
    pkg = kmedoids_pkg.pam_build(DIST, 2)
    assert _loss(DIST, medoids) == 9  # the peer's value at 0.5.1 (11 before, at f9f1a8c)
    assert _loss(DIST, medoids) == pkg.loss
    np.testing.assert_array_equal(medoids, pkg.medoids)


def test_pam_swap():
    res = kmedoids(DIST, 2, metric="precomputed", method="pam")
    pkg = kmedoids_pkg.pam(DIST, 2)
    assert float(res.loss) == 9
    assert float(res.loss) == pkg.loss
    np.testing.assert_array_equal(res.medoids, pkg.medoids)
    assert bool(res.converged)


# --- peer: test_fasterpam
def test_fasterpam():
    res = kmedoids(DIST, 2, metric="precomputed", method="fasterpam", init="build")
    pkg = kmedoids_pkg.fasterpam(DIST, 2, init="build")
    assert float(res.loss) == 9
    assert float(res.loss) == pkg.loss
    np.testing.assert_array_equal(res.medoids, pkg.medoids)
    # the package counts passes and swaps as jaxclust does
    assert int(res.n_iters) == pkg.n_iter and int(res.n_swaps) == pkg.n_swap


# --- peer: test_fastpam1 (FastPAM1 makes PAM's swaps)
def test_fastpam1():
    res = kmedoids(DIST, 2, metric="precomputed", method="pam", init="build")
    fp1 = kmedoids_pkg.fastpam1(DIST, 2, init="build")
    assert fp1.loss == 9
    assert float(res.loss) == fp1.loss
    np.testing.assert_array_equal(res.medoids, fp1.medoids)


# --- peer: test_sklearn_kmedoids (fasterpam, pam, fastpam1; "alternate" has no counterpart)
@pytest.mark.parametrize("method, ours", [("fasterpam", "fasterpam"), ("pam", "pam"),
                                          ("fastpam1", "pam")])
def test_sklearn_kmedoids(method, ours):
    res_sk = kmedoids_pkg.KMedoids(2, method=method, init="build").fit(DIST)
    res = kmedoids(DIST, 2, metric="precomputed", method=ours, init="build")
    assert float(res.loss) == res_sk.inertia_
    np.testing.assert_array_equal(res.labels, res_sk.labels_)
    np.testing.assert_array_equal(res.medoids, res_sk.medoid_indices_)


# --- the package as an oracle on a shared point cloud (BUILD, PAM, FasterPAM)
def _cloud():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0], [2.0, 8.0]])
    x = np.concatenate([c + rng.normal(size=(12, 2)) for c in centres])
    return cdist(x, x).astype(np.float32)  # one float32 matrix for both


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("algorithm", ["build", "pam", "fasterpam"])
def test_package_oracle_point_cloud(algorithm, k):
    d = _cloud()
    if algorithm == "build":
        medoids = np.asarray(pam_build(d, k, metric="precomputed"))
        pkg = kmedoids_pkg.pam_build(d, k)
        loss = _loss(d, medoids)
    else:
        res = kmedoids(d, k, metric="precomputed", method=algorithm, init="build")
        pkg = (kmedoids_pkg.pam(d, k, init="build") if algorithm == "pam"
               else kmedoids_pkg.fasterpam(d, k, init="build"))
        medoids, loss = np.asarray(res.medoids), float(res.loss)
        np.testing.assert_array_equal(res.labels, pkg.labels)
    np.testing.assert_array_equal(medoids, pkg.medoids)
    np.testing.assert_allclose(loss, pkg.loss, rtol=1e-5)
