"""scikit-learn's unsupervised clustering-metric tests (silhouette), ported to jaxclust.

Peer file: ``sklearn/metrics/cluster/tests/test_unsupervised.py`` of scikit-learn 1.9.1 (the
installed package). Data (iris, the peer's toy arrays), parameters and expected values are
the peer's; where the peer compares with its own implementation we compare with the
installed scikit-learn.

Translation of the API differences:

* ``silhouette_score(X, labels)`` (``metric="euclidean"``) -> ``silhouette(X, labels, k=k)``
  with ``k`` the (static) number of label values, ``max(labels) + 1``. jaxclust has no
  ``silhouette_samples``, no ``metric="precomputed"``, no sparse input and no
  ``sample_size``: the peer's per-sample assertions become assertions on their mean, a
  precomputed matrix that is Euclidean (the peer's integer ``[[0, 1, 2], [1, 0, 1], [2, 1,
  0]]`` is the distance matrix of the points 0, 1, 2 on a line) is passed as those points, and
  the sparse and non-Euclidean ones (Rousseeuw's Table 1) are not ported. Calinski-Harabasz
  and Davies-Bouldin have no jaxclust counterpart.
* The peer's ValueError "Number of labels is %d. Valid values are 2 to n_samples - 1" is
  jaxclust's "must contain between 2 and n - 1 ... non-empty clusters".
* Labels are non-negative integers; label values that never occur are allowed (empty
  clusters are ignored), so the peer's ``labels * 2 + 10`` is passed as is with ``k = 15``.
* float32 (jaxclust's default) against the peer's float64: ``rel=1e-5``.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.metrics import pairwise_distances, silhouette_samples, silhouette_score

from jaxclust.metrics import silhouette

_IRIS = datasets.load_iris()
X_IRIS, Y_IRIS = _IRIS.data, _IRIS.target


# --- peer: test_silhouette (dense, sample_size=None)
def test_silhouette():
    score_euclidean = float(silhouette(X_IRIS, Y_IRIS, k=3))
    # given that the actual labels are used, S is positive
    assert score_euclidean > 0
    d = pairwise_distances(X_IRIS, metric="euclidean")
    score_precomputed = silhouette_score(d, Y_IRIS, metric="precomputed")
    assert score_euclidean == pytest.approx(score_precomputed, rel=1e-5)
    assert score_euclidean == pytest.approx(silhouette_score(X_IRIS, Y_IRIS), rel=1e-5)


# --- peer: test_cluster_size_1
def test_cluster_size_1():
    # cluster 0: 1 sample -> 0 (Rousseeuw's convention); cluster 1: [.5, .5, 0];
    # cluster 2 (identical samples): [1, 1]. The peer's silhouette_samples is
    # [0, 0.5, 0.5, 0, 1, 1]: its mean is 0.5
    x = np.array([[0.0], [1.0], [1.0], [2.0], [3.0], [3.0]])
    labels = np.array([0, 1, 1, 1, 2, 2])
    value = float(silhouette(x, labels, k=3))
    assert not np.isnan(value)
    assert value == pytest.approx(np.mean([0, 0.5, 0.5, 0, 1, 1]))
    assert value == pytest.approx(np.mean(silhouette_samples(x, labels)))


# --- peer: test_correct_labelsize
@pytest.mark.parametrize("kind", ["n_labels_equals_n", "one_label"])
def test_correct_labelsize(kind):
    n = X_IRIS.shape[0]
    y = np.arange(n) if kind == "n_labels_equals_n" else np.zeros(n, dtype=int)
    # peer: "Number of labels is %d. Valid values are 2 to n_samples - 1 (inclusive)"
    with pytest.raises(ValueError, match=r"between 2 and n - 1 = 149 non-empty clusters"):
        silhouette(X_IRIS, y, k=int(y.max()) + 1)


# --- peer: test_non_encoded_labels
def test_non_encoded_labels():
    labels = Y_IRIS
    encoded = float(silhouette(X_IRIS, labels, k=3))
    assert float(silhouette(X_IRIS, labels * 2 + 10, k=15)) == pytest.approx(encoded, rel=1e-6)


# --- peer: test_non_numpy_labels
def test_non_numpy_labels():
    # peer: silhouette_score(list(X), list(y)) == silhouette_score(X, y)
    from_lists = float(silhouette([list(row) for row in X_IRIS], list(Y_IRIS), k=3))
    assert from_lists == float(silhouette(X_IRIS, Y_IRIS, k=3))


# --- peer: test_silhouette_samples_euclidean_sparse (dense input only)
def test_silhouette_samples_euclidean_dense():
    x = np.array([[0.2, 0.1, 0.1, 0.2, 0.1, 1.6, 0.2, 0.1]], dtype=np.float32).T
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    expected = np.mean(silhouette_samples(pairwise_distances(x), y, metric="precomputed"))
    assert float(silhouette(x, y, k=2)) == pytest.approx(expected, rel=1e-5)


# --- peer: assert_raises_on_only_one_label / assert_raises_on_all_points_same_cluster
@pytest.mark.parametrize("labels", [np.zeros(10, dtype=int), np.arange(10)],
                         ids=["only_one_label", "all_points_different_clusters"])
def test_raises_on_label_count(labels):
    rng = np.random.RandomState(seed=0)
    # peer: "Number of labels is"
    with pytest.raises(ValueError, match=r"between 2 and n - 1"):
        silhouette(rng.rand(10, 2), labels, k=int(labels.max()) + 1)


# --- peer: test_silhouette_score_integer_precomputed
def test_silhouette_score_integer_precomputed():
    # the peer's integer matrix [[0, 1, 2], [1, 0, 1], [2, 1, 0]] is the Euclidean distance
    # matrix of the points 0, 1, 2 on a line
    x = np.array([[0.0], [1.0], [2.0]])
    assert float(silhouette(x, np.array([0, 0, 1]), k=2)) == pytest.approx(1 / 6)
