"""scikit-learn's ranking-metric tests (ROC AUC, ROC curve, precision-recall), ported to
`jaxclust.metrics.detection`.

Peer file: ``sklearn/metrics/tests/test_ranking.py`` of scikit-learn 1.9.1 (the installed
package). Data (the peer's ``make_prediction(binary=True)``: iris classes 0/1 with 200 noise
features per feature, a logistic regression trained on half, scores on the other half; the
toy arrays), parameters and expected values are the peer's; where the peer compares with its
own implementation we compare with the installed scikit-learn.

Translation of the API differences:

* ``roc_auc_score(y_true, y_score)`` -> ``auroc(y_score, y_true)``: scores first, and labels
  are 1 for the positive class (jaxclust: "ID"), 0 for the negative one. The peer's
  ``{-1, 1}`` labels are passed as ``y_true == 1``.
* ``auc(*precision_recall_curve(y_true, y_score)[1::-1])`` (the trapezoidal area under the PR
  curve) -> ``aupr_in(y_score, y_true)``. **Convention:** jaxclust's AUPR is the trapezoidal
  area, as OpenOOD and the OOD literature report it, not ``average_precision_score`` (the
  step-wise area). Cases whose expected value is an average precision assert jaxclust's
  trapezoidal value (cross-checked with the peer's own ``precision_recall_curve`` and
  ``auc``) and keep the peer's AP in a comment.
* ``roc_curve`` has no counterpart; its points are checked through
  ``fpr_at_tpr(y_score, y_true, tpr=t)`` = ``fpr[np.searchsorted(tpr_curve, t)]`` of
  ``roc_curve(..., drop_intermediate=False)`` (``positive="ood"``: the same with the roles
  swapped and the scores negated).
* **Convention:** a single-class ``y_true`` is a ValueError in jaxclust; the peer warns
  (``UndefinedMetricWarning``) and returns NaN. Multi-class and multi-label ROC AUC, DET
  curves, ranking losses, DCG/NDCG and top-k accuracy have no jaxclust counterpart.
* float32 (jaxclust's default) against the peer's float64: AUROC and AUPR come from integer
  counts, so they agree to float32 rounding (``rel=1e-6``).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score, roc_curve
from sklearn.utils.validation import check_random_state

from jaxclust.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr


@functools.cache
def make_prediction():
    """The peer's ``make_prediction(binary=True)``: ``(y_true, y_pred, y_score)``."""
    dataset = datasets.load_iris()
    x, y = dataset.data, dataset.target
    x, y = x[y < 2], y[y < 2]
    n_samples, n_features = x.shape
    p = np.arange(n_samples)
    check_random_state(37).shuffle(p)
    x, y = x[p], y[p]
    half = int(n_samples / 2)
    rng = np.random.RandomState(0)
    x = np.c_[x, rng.randn(n_samples, 200 * n_features)]
    clf = LogisticRegression(random_state=0)
    y_score = clf.fit(x[:half], y[:half]).predict_proba(x[half:])[:, 1]
    return y[half:], clf.predict(x[half:]), y_score


def _auc(y_true, y_score):
    """The peer's alternative AUROC: the fraction of (positive, negative) pairs ranked
    strictly right (ties count 0, hence the peer's decimal=2 comparison)."""
    pos = y_score[y_true == 1]
    neg = y_score[y_true != 1]
    return np.sum(pos[None, :] - neg[:, None] > 0) / float(len(pos) * len(neg))


def _trapezoidal_pr(y_true, y_score):
    """The peer's own trapezoidal PR area: ``auc(recall, precision)``."""
    precision, recall, _ = precision_recall_curve(y_true, y_score, drop_intermediate=False)
    return auc(recall, precision)


# --- peer: test_roc_curve (drop_intermediate does not change the area)
def test_roc_curve():
    y_true, _, y_score = make_prediction()
    value = float(auroc(y_score, y_true))
    np.testing.assert_array_almost_equal(value, _auc(y_true, y_score), decimal=2)
    assert value == pytest.approx(roc_auc_score(y_true, y_score), rel=1e-6)


# --- peer: test_roc_curve_confidence
def test_roc_curve_confidence():
    y_true, _, y_score = make_prediction()
    np.testing.assert_array_almost_equal(float(auroc(y_score - 0.5, y_true)), 0.90, decimal=2)


# --- peer: test_roc_curve_hard
@pytest.mark.parametrize("kind, expected", [("ones", 0.50), ("zeros", 0.50), ("pred", 0.78)])
def test_roc_curve_hard(kind, expected):
    y_true, pred, _ = make_prediction()
    scores = {"ones": np.ones(y_true.shape), "zeros": np.zeros(y_true.shape),
              "pred": pred.astype(float)}[kind]
    np.testing.assert_array_almost_equal(float(auroc(scores, y_true)), expected, decimal=2)


# --- peer: test_roc_curve_one_label
@pytest.mark.parametrize("positive_class", [1, 0])
def test_roc_curve_one_label(positive_class):
    y_true = np.full(10, positive_class)
    y_pred = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=float)
    # peer: UndefinedMetricWarning and NaN rates; jaxclust: a ValueError
    with pytest.raises(ValueError, match="both classes"):
        auroc(y_pred, y_true)


# --- peer: test_roc_curve_toydata (binary part) and test_precision_recall_curve_toydata
TOY = [
    # y_true, y_score, ROC AUC, trapezoidal PR area (the peer's average precision)
    ([0, 1], [0.0, 1.0], 1.0, 1.0),  # AP 1.0
    ([0, 1], [1.0, 0.0], 0.0, 0.25),  # AP 0.5
    ([1, 0], [1.0, 1.0], 0.5, 0.75),  # AP 0.5
    ([1, 0], [1.0, 0.0], 1.0, 1.0),  # AP 1.0
    ([1, 0], [0.5, 0.5], 0.5, 0.75),  # AP 0.5
]


@pytest.mark.parametrize("y_true, y_score, roc, _pr", TOY)
def test_roc_curve_toydata(y_true, y_score, roc, _pr):
    y_true, y_score = np.array(y_true), np.array(y_score)
    assert float(auroc(y_score, y_true)) == pytest.approx(roc)
    assert float(auroc(y_score, y_true)) == pytest.approx(roc_auc_score(y_true, y_score))


@pytest.mark.parametrize("y_true, y_score, _roc, pr", TOY)
def test_precision_recall_curve_toydata(y_true, y_score, _roc, pr):
    y_true, y_score = np.array(y_true), np.array(y_score)
    value = float(aupr_in(y_score, y_true))
    assert value == pytest.approx(pr)
    assert value == pytest.approx(_trapezoidal_pr(y_true, y_score))


@pytest.mark.parametrize("y_true", [[0, 0], [1, 1]])
def test_toydata_single_class(y_true):
    # peer: roc_auc_score is NaN with a warning; average_precision_score is 0 ([0, 0], with
    # a warning) or 1 ([1, 1]). jaxclust: a ValueError for every detection metric
    for metric in (auroc, aupr_in, aupr_out, fpr_at_tpr):
        with pytest.raises(ValueError, match="both classes"):
            metric(np.array([0.25, 0.75]), np.array(y_true))


# --- peer: test_precision_recall_curve
@pytest.mark.parametrize("labels", ["01", "-11"])
def test_precision_recall_curve(labels):
    y_true, _, y_score = make_prediction()
    if labels == "-11":  # the peer's {-1, 1} labels: 1 is the positive class
        y_true = np.where(y_true == 0, -1, 1)
    positive = y_true == 1
    value = float(aupr_in(y_score, positive))
    # the peer's average precision here is 0.869; the trapezoidal area is the peer's
    # auc(recall, precision) of the same curve
    assert value == pytest.approx(_trapezoidal_pr(positive, y_score), rel=1e-6)


def test_precision_recall_curve_small():
    labels, predict_probas = np.array([1, 0, 0, 1]), np.array([1.0, 2.0, 3.0, 4.0])
    # peer (drop_intermediate=False): p = [0.5, 1/3, 0.5, 1, 1], r = [1, 0.5, 0.5, 0.5, 0]
    p = [0.5, 1 / 3, 0.5, 1.0, 1.0]
    r = [1.0, 0.5, 0.5, 0.5, 0.0]
    assert float(aupr_in(predict_probas, labels)) == pytest.approx(auc(r, p))  # 17/24


# --- peer: test_average_precision_constant_values
def test_average_precision_constant_values():
    y_true = np.zeros(100, dtype=int)
    y_true[::4] = 1
    y_score = np.ones(100)
    # peer: average_precision_score == 0.25 (one threshold, precision 0.25). The trapezoid
    # from the start point (recall 0, precision 1) to (1, 0.25) has area 0.625
    assert float(aupr_in(y_score, y_true)) == pytest.approx(0.625)
    assert float(aupr_in(y_score, y_true)) == pytest.approx(_trapezoidal_pr(y_true, y_score))


# --- peer: test_score_scale_invariance
@pytest.mark.parametrize("metric", [auroc, aupr_in])
def test_score_scale_invariance(metric):
    y_true, _, y_score = make_prediction()
    value = float(metric(y_score, y_true))
    assert value == float(metric(100 * y_score, y_true))
    assert value == float(metric(1e-6 * y_score, y_true))
    assert value == float(metric(y_score - 10, y_true))


# --- peer: test_roc_curve_drop_intermediate data, read through fpr_at_tpr
ROC_DATA = {
    "drop_intermediate_1": ([0, 0, 0, 0, 1, 1], [0.0, 0.2, 0.5, 0.6, 0.7, 1.0]),
    "drop_intermediate_2": ([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
                            [0.0, 0.1, 0.6, 0.6, 0.7, 0.8, 0.9, 0.6, 0.7, 0.8, 0.9, 0.9, 1.0]),
    "make_prediction": None,
}


@pytest.mark.parametrize("positive", ["id", "ood"])
@pytest.mark.parametrize("data", list(ROC_DATA))
def test_roc_curve_points_fpr_at_tpr(data, positive):
    if data == "make_prediction":
        y_true, _, y_score = make_prediction()
    else:
        y_true, y_score = map(np.array, ROC_DATA[data])
    pos, oriented = (y_true, y_score) if positive == "id" else (1 - y_true, -y_score)
    fpr, tpr, _ = roc_curve(pos, oriented, drop_intermediate=False)
    for t in (0.5, 0.8, 0.95, 1.0):
        expected = fpr[np.searchsorted(tpr, t)]
        value = float(fpr_at_tpr(y_score, y_true, tpr=t, positive=positive))
        assert value == pytest.approx(expected), t
