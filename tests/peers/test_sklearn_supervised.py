"""scikit-learn's supervised clustering-metric tests, ported to `jaxclust.metrics`.

Peer file: ``sklearn/metrics/cluster/tests/test_supervised.py`` of scikit-learn 1.9.1 (the
installed package). Data, parameters and expected values are the peer's; where the peer
compares with its own implementation we compare with the installed scikit-learn.

Translation of the API differences:

* ``normalized_mutual_info_score(a, b, average_method=m)`` -> ``nmi(a, b, average=m)``;
  ``adjusted_rand_score`` -> ``ari``; ``contingency_matrix`` -> ``contingency``. Rand index,
  homogeneity / completeness / V-measure, AMI, EMI, Fowlkes-Mallows and the pair confusion
  matrix have no jaxclust counterpart: their tests are not ported, except where a jaxclust
  metric has the same expected value (V-measure = NMI with the arithmetic mean; a Rand index
  of 1 means an ARI of 1; "MI = 0" means NMI = 0).
* jaxclust labels are non-negative integers (``[0, k)``, gaps allowed): the peer's float
  labels ``[0.0, 1.0, 0.0]`` are passed as ``.astype(int)`` and the peer's string labels
  (``["a"] * 6``) as the integer codes of ``np.unique(..., return_inverse=True)``.
  Conventions (asserted here, the peer's value in a comment): float labels raise a
  ValueError naming the argument (the peer accepts them); empty labellings raise (the
  peer returns 1.0); the contingency table is indexed by label value, so labels ``1..3``
  give a 4 x 4 table whose row and column 0 are empty (the peer's table is 3 x 3).
* Error messages: the peer's "Found input variables with inconsistent numbers of samples"
  and "labels_true must be 1D" become jaxclust's "must have the same length" and
  "`labels_true` must be 1-D".
* Computation is in float32 (jaxclust's default) unless stated; tolerances are the peer's
  when float32 can meet them.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    v_measure_score,
)

from jaxclust.metrics import ari, contingency, nmi

METHODS = ["min", "geometric", "arithmetic", "max"]
SCORE_FUNCS = {"ari": ari, "nmi": nmi}


def _score(func, labels_true, labels_pred, **kw):
    """``func`` ("ari" / "nmi") called eagerly on numpy arrays (the label counts inferred;
    eager dispatch shares compiled ops between the averages and between shapes, which costs
    less than one jit compilation per case here)."""
    a, b = np.asarray(labels_true), np.asarray(labels_pred)
    return float(SCORE_FUNCS[func](a, b, **kw))


def _codes(labels):
    """Integer codes of arbitrary (string) labels, the translation of the peer's labels."""
    return np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int32)


# --- peer: test_error_messages_on_wrong_input
@pytest.mark.parametrize("func", ["ari", "nmi"])
@pytest.mark.parametrize(
    "labels_true, labels_pred, match",
    [
        ([0, 1], [1, 1, 1], r"must have the same length, got 2 and 3"),  # peer: \[2, 3\]
        ([[0, 1], [1, 0]], [1, 1, 1], r"`labels_true` must be 1-D"),  # peer: labels_true must be 1D
        ([0, 1, 0], [[1, 1], [0, 0]], r"`labels_pred` must be 1-D"),  # peer: labels_pred must be 1D
    ],
)
def test_error_messages_on_wrong_input(func, labels_true, labels_pred, match):
    with pytest.raises(ValueError, match=match):
        SCORE_FUNCS[func](np.asarray(labels_true), np.asarray(labels_pred))


# --- peer: test_perfect_matches
PERFECT = [
    ([0], [1]),
    ([0, 0, 0], [0, 0, 0]),
    ([0, 1, 0], [42, 7, 42]),
    (np.array([0.0, 1.0, 0.0]).astype(int), np.array([42.0, 7.0, 42.0]).astype(int)),
    (np.array([0.0, 1.0, 2.0]).astype(int), np.array([42.0, 7.0, 2.0]).astype(int)),
    ([0, 1, 2], [42, 7, 2]),
]


@pytest.mark.parametrize("func", ["ari", "nmi"])
@pytest.mark.parametrize("labels_true, labels_pred", PERFECT)
def test_perfect_matches(func, labels_true, labels_pred):
    assert _score(func, labels_true, labels_pred) == pytest.approx(1.0)


@pytest.mark.parametrize("func", ["ari", "nmi"])
def test_perfect_matches_empty_raises(func):
    # peer: score_func([], []) == 1.0; jaxclust: at least one label is required
    with pytest.raises(ValueError, match="at least one label"):
        SCORE_FUNCS[func](np.zeros(0, int), np.zeros(0, int))


@pytest.mark.parametrize("func", ["ari", "nmi"])
def test_perfect_matches_float_labels_raise(func):
    # peer: score_func([0.0, 1.0, 0.0], [42.0, 7.0, 42.0]) == 1.0; jaxclust: integer labels
    with pytest.raises(ValueError, match="integer labels.*astype"):
        SCORE_FUNCS[func](np.array([0.0, 1.0, 0.0]), np.array([42.0, 7.0, 42.0]))


@pytest.mark.parametrize("average_method", METHODS)
def test_perfect_matches_with_changing_means(average_method):
    for a, b in PERFECT + [([0, 1], [0, 1]), ([0, 1, 2, 3], [0, 1, 2, 3])]:
        assert _score("nmi", a, b, average=average_method) == pytest.approx(1.0), (a, b)


# --- peer: test_non_consecutive_labels
@pytest.mark.parametrize("labels_pred", [[0, 1, 0, 1, 2, 2], [0, 4, 0, 4, 2, 2]])
def test_non_consecutive_labels(labels_pred):
    np.testing.assert_almost_equal(_score("ari", [0, 0, 0, 1, 1, 1], labels_pred), 0.24, 2)


# --- peer: test_adjustment_for_chance
@pytest.mark.parametrize("k, expected", [(2, 0.02), (10, 0.03), (50, 0.03), (90, 0.02)])
def test_adjustment_for_chance(k, expected):
    # the peer's uniform_labelings_scores(adjusted_rand_score, 100, [2, 10, 50, 90], 10, 42):
    # the same draws in the same order, one k per case
    random_labels = np.random.RandomState(42).randint
    # the peer draws the k values in sequence from one generator: replay the earlier ones
    for k_before in [2, 10, 50, 90][: [2, 10, 50, 90].index(k)]:
        for _ in range(20):
            random_labels(low=0, high=k_before, size=100)
    scores = []
    for _ in range(10):
        labels_a = random_labels(low=0, high=k, size=100)
        labels_b = random_labels(low=0, high=k, size=100)
        scores.append(float(ari(labels_a, labels_b, n_true=k, n_pred=k)))
    np.testing.assert_array_almost_equal(np.abs(scores).max(), expected, 2)


# --- peer: test_adjusted_mutual_info_score
LABELS_A = np.array([1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3])
LABELS_B = np.array([1, 1, 1, 1, 2, 1, 2, 2, 2, 2, 3, 1, 3, 3, 3, 2, 2])


@pytest.mark.parametrize("repeat", [1, 110])
def test_mutual_info_labels_vs_peer(repeat):
    # the peer's MI / AMI data (MI = 0.41022); jaxclust has no MI or AMI, so its NMI is
    # compared with the installed peer's NMI, on the data and on the data repeated 110 times
    a, b = np.tile(LABELS_A, repeat), np.tile(LABELS_B, repeat)
    expected = normalized_mutual_info_score(a, b)
    np.testing.assert_allclose(_score("nmi", a, b), expected, rtol=1e-6)


# --- peer: test_contingency_matrix
def test_contingency_matrix():
    c = np.asarray(contingency(LABELS_A, LABELS_B))
    c2 = np.histogram2d(LABELS_A, LABELS_B, bins=(np.arange(1, 5), np.arange(1, 5)))[0]
    # labels 1..3 index rows/columns 1..3; row and column 0 are empty (peer: a 3 x 3 table)
    assert c.shape == (4, 4)
    assert c[0].sum() == 0 and c[:, 0].sum() == 0
    np.testing.assert_array_almost_equal(c[1:, 1:], c2)


# --- peer: test_exactly_zero_info_score
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("i", [10, 100, 1000, 10000])
def test_exactly_zero_info_score(i, method):
    # n = 100 failed before 563168e (issue 14 section 1.1: 2.0 with "min")
    labels_a, labels_b = np.ones(i, dtype=int), np.arange(i, dtype=int)
    # (with the arithmetic mean, this is also the peer's v_measure_score assertion)
    assert _score("nmi", labels_a, labels_b, average=method) == pytest.approx(0.0)


# --- peer: test_v_measure_and_mutual_information
@pytest.mark.parametrize("i", [10, 100, 1000, 10000])
def test_v_measure_and_mutual_information(i, seed=36):
    random_state = np.random.RandomState(seed)
    labels_a, labels_b = random_state.randint(0, 10, i), random_state.randint(0, 10, i)
    np.testing.assert_almost_equal(
        _score("nmi", labels_a, labels_b, average="arithmetic"),
        v_measure_score(labels_a, labels_b),
    )


# --- peer: test_mutual_info_score_positive_constant_label
@pytest.mark.parametrize(
    "labels_true, labels_pred",
    [
        (["a"] * 6, [1, 1, 0, 0, 1, 1]),
        ([1] * 6, [1, 1, 0, 0, 1, 1]),
        ([1, 1, 0, 0, 1, 1], ["a"] * 6),
        ([1, 1, 0, 0, 1, 1], [1] * 6),
        (["a"] * 6, ["a"] * 6),
    ],
)
def test_mutual_info_score_positive_constant_label(labels_true, labels_pred):
    # peer: mutual_info_score(...) == 0 when one or both labellings are constant. With MI = 0
    # the NMI is 0, except for two single-cluster labellings, where it is 1 by convention
    # (jaxclust and normalized_mutual_info_score alike)
    a, b = _codes(labels_true), _codes(labels_pred)
    both_constant = len(set(labels_true)) == 1 and len(set(labels_pred)) == 1
    value = _score("nmi", a, b)
    assert value == (1.0 if both_constant else 0.0)
    assert value == normalized_mutual_info_score(labels_true, labels_pred)


# --- peer: test_rand_score_edge_cases
@pytest.mark.parametrize(
    "clustering1, clustering2",
    [(list(range(100)), list(range(100))), (np.zeros((100,), int), np.zeros((100,), int))],
)
def test_rand_score_edge_cases(clustering1, clustering2):
    # peer: rand_score == 1 (every element its own cluster; one cluster); identical
    # partitions have ARI 1 as well
    np.testing.assert_allclose(_score("ari", clustering1, clustering2), 1.0)


# --- peer: test_adjusted_rand_score_overflow
def test_adjusted_rand_score_overflow():
    rng = np.random.RandomState(0)
    y_true = rng.randint(0, 2, 100_000, dtype=np.int8)
    y_pred = rng.randint(0, 2, 100_000, dtype=np.int8)
    score = float(ari(y_true, y_pred))
    # peer: no overflow warning. Here: finite and equal to the peer's value to float32
    # rounding of an ARI near 0 (a difference of terms of order 1/4)
    assert np.isfinite(score)
    np.testing.assert_allclose(score, adjusted_rand_score(y_true, y_pred), atol=2e-7)


# --- peer: test_normalized_mutual_info_score_bounded
@pytest.mark.parametrize("average_method", METHODS)
def test_normalized_mutual_info_score_bounded(average_method):
    labels1 = [0] * 469
    labels2 = [1] + labels1[1:]
    labels3 = [0, 1] + labels1[2:]
    # labels1 is constant: the mutual information with any other labelling is 0
    assert _score("nmi", labels1, labels2, average=average_method) == 0
    # non constant, non perfect matching labels
    value = _score("nmi", labels2, labels3, average=average_method)
    assert 0 <= value < 1


@pytest.mark.parametrize("average_method", ["min", "arithmetic"])
def test_normalized_mutual_info_score_bounded_value_float32(average_method):
    # the peer's 2.98866e-4; jaxclust's float32 gave 3.012e-4 before 563168e and 2.973e-4
    # before b4ceb95 (cancellation in the MI), now 2.98866e-4 (MI from exact integer counts)
    labels2 = np.array([1] + [0] * 468)
    labels3 = np.array([0, 1] + [0] * 467)
    value = _score("nmi", labels2, labels3, average=average_method)
    expected = normalized_mutual_info_score(labels2, labels3, average_method=average_method)
    np.testing.assert_allclose(value, expected, rtol=1e-3)
