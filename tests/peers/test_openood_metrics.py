"""OpenOOD's OOD-detection metric definitions, as an independent NumPy oracle, against
`jaxclust.metrics.detection`.

Peer: ``openood/evaluators/metrics.py`` of github.com/Jingkang50/OpenOOD, commit
``a59cdac445a97884b574ea440e849e05289a712e`` (OpenOOD v1.5, ``auc_and_fpr_recall``), and the
earlier v1.0 definition of FPR@95 at commit ``00611f1a1a1969727ac873c6e80f577550cce94a``
(``fpr_recall``). OpenOOD computes its metrics with scikit-learn's curves; the oracle below is
written from those definitions (no OpenOOD or scikit-learn code), and is itself checked
against the same composition of the installed scikit-learn 1.9.1 curves that OpenOOD calls.

The definitions (``conf``: higher = more in-distribution; ``label == -1``: OOD):

* **AUROC**: OOD is the positive class, scored by ``-conf``; the trapezoidal area under the
  ROC curve with one point per distinct score and the origin.
* **FPR@95** (v1.5): on that ROC curve, the FPR of the first point (highest threshold) whose
  TPR is at least 0.95: the fraction of ID samples rejected when 95% of the OOD samples are
  detected.
* **AUPR-In**: ID positive, scored by ``conf``; **AUPR-Out**: OOD positive, scored by
  ``-conf``. Each is the trapezoidal area over recall of the precision-recall points, one
  per distinct score, plus the end point (recall 0, precision 1).
* **FPR@95** (v1.0): ID positive; with ``m = floor(0.95 n_id)`` the threshold is the m-th
  largest ID score and the FPR is the fraction of OOD scores *strictly* above it.

Translation of the API: ``labels = (label != -1)`` (1 = ID, 0 = OOD, jaxclust's
convention); ``conf`` is jaxclust's ``scores``. AUROC -> ``auroc``; AUPR-In / AUPR-Out ->
``aupr_in`` / ``aupr_out``; FPR@95 v1.5 -> ``fpr_at_tpr(..., tpr=0.95, positive="ood")``.
**Convention:** FPR@95 v1.0 is ``fpr_at_tpr(..., positive="id")`` only where the two
agree (``0.95 n_id`` an integer and no ID score tied with an OOD score at the threshold);
jaxclust keeps at least 95% of the ID samples (``ceil``) and counts tied OOD scores as
accepted (``>=``). The case with ties asserts jaxclust's value and keeps v1.0's in a comment.

Shared scores: one size (200 ID with OpenOOD's class labels 0..9, 100 OOD) so every case
reuses one compilation, with continuous scores, heavy ties (one decimal), ties across the
classes only, a constant score, a perfect and an inverted detector. float32 (jaxclust's
default) against the float64 oracle: the metrics are ratios of integer counts, ``rel=1e-6``.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxclust.metrics import aupr_in, aupr_out, auroc, fpr_at_tpr

N_ID, N_OOD = 200, 100


# ------------------------------------------------------------------ the oracle
def _trapezoid(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _counts(pos, t):
    """True / false positives at each distinct threshold of ``t``, highest first."""
    thresholds = np.unique(t)[::-1]
    tp = np.array([np.sum(pos & (t >= h)) for h in thresholds], float)
    fp = np.array([np.sum(~pos & (t >= h)) for h in thresholds], float)
    return tp, fp


def _roc(pos, t):
    tp, fp = _counts(pos, t)
    return np.r_[0.0, fp / np.sum(~pos)], np.r_[0.0, tp / np.sum(pos)]  # fpr, tpr


def oracle_auroc(conf, label):
    fpr, tpr = _roc(label == -1, -conf)
    return _trapezoid(fpr, tpr)


def oracle_fpr95_v15(conf, label, tpr_th=0.95):
    fpr, tpr = _roc(label == -1, -conf)
    return float(fpr[np.argmax(tpr >= tpr_th)])


def _aupr(pos, t):
    tp, fp = _counts(pos, t)
    precision, recall = tp / (tp + fp), tp / np.sum(pos)
    return _trapezoid(np.r_[0.0, recall], np.r_[1.0, precision])


def oracle_aupr_in(conf, label):
    return _aupr(label != -1, conf)


def oracle_aupr_out(conf, label):
    return _aupr(label == -1, -conf)


def oracle_fpr95_v10(conf, label, tpr=0.95):
    ind_conf, ood_conf = conf[label != -1], conf[label == -1]
    recall_num = int(np.floor(tpr * len(ind_conf)))
    thresh = np.sort(ind_conf)[-recall_num]
    return float(np.sum(ood_conf > thresh) / len(ood_conf))


def openood_sklearn(conf, label):
    """OpenOOD v1.5's composition of scikit-learn's curves (to check the oracle):
    ``(auroc, aupr_in, aupr_out, fpr95)``."""
    ood = (label == -1).astype(int)
    fpr_list, tpr_list, _ = skm.roc_curve(ood, -conf)
    p_in, r_in, _ = skm.precision_recall_curve(1 - ood, conf)
    p_out, r_out, _ = skm.precision_recall_curve(ood, -conf)
    return (skm.auc(fpr_list, tpr_list), skm.auc(r_in, p_in), skm.auc(r_out, p_out),
            fpr_list[np.argmax(tpr_list >= 0.95)])


# ------------------------------------------------------------------ shared scores
def _scores(kind):
    rng = np.random.default_rng(0)
    label = np.r_[rng.integers(0, 10, N_ID), np.full(N_OOD, -1)]  # OpenOOD's labels
    z = rng.normal(size=N_ID + N_OOD)
    conf = z + 1.5 * (label != -1)
    if kind == "continuous":
        pass
    elif kind == "ties":  # heavy ties within and across the classes
        conf = np.round(conf, 1)
    elif kind == "integer":  # few distinct values
        conf = np.floor(conf)
    elif kind == "constant":
        conf = np.full_like(conf, 0.5)
    elif kind == "perfect":
        conf = conf + 100.0 * (label != -1)
    elif kind == "inverted":
        conf = -conf
    perm = rng.permutation(N_ID + N_OOD)
    return conf[perm], label[perm]


KINDS = ["continuous", "ties", "integer", "constant", "perfect", "inverted"]
METRICS = {
    "auroc": (oracle_auroc, lambda s, y: auroc(s, y), 0),
    "aupr_in": (oracle_aupr_in, lambda s, y: aupr_in(s, y), 1),
    "aupr_out": (oracle_aupr_out, lambda s, y: aupr_out(s, y), 2),
    "fpr95": (oracle_fpr95_v15, lambda s, y: fpr_at_tpr(s, y, tpr=0.95, positive="ood"), 3),
}


@pytest.mark.parametrize("kind", KINDS)
def test_oracle_is_openood(kind):
    """The oracle equals OpenOOD v1.5's composition of the scikit-learn curves."""
    conf, label = _scores(kind)
    expected = openood_sklearn(conf, label)
    for oracle, _, i in METRICS.values():
        assert oracle(conf, label) == pytest.approx(expected[i], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", list(METRICS))
def test_jaxclust_equals_openood(metric, kind):
    oracle, ours, _ = METRICS[metric]
    conf, label = _scores(kind)
    expected = oracle(conf, label)
    value = float(ours(conf.astype(np.float32), label != -1))
    assert value == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("kind", ["continuous", "ties"])
def test_positive_class_conventions(kind):
    """Which class is positive: AUROC is the same either way; FPR@95 is not (OpenOOD v1.5
    calls OOD positive, the classic definition ID)."""
    conf, label = _scores(kind)
    is_id = label != -1
    # AUROC with ID positive (scored by conf) is the same area
    fpr, tpr = _roc(is_id, conf)
    assert float(auroc(conf, is_id)) == pytest.approx(_trapezoid(fpr, tpr), rel=1e-6)
    # FPR@95 with ID positive: the first ROC point (ID positive) with TPR >= 0.95
    classic = float(fpr[np.argmax(tpr >= 0.95)])
    assert float(fpr_at_tpr(conf, is_id, positive="id")) == pytest.approx(classic, rel=1e-6)
    assert classic != pytest.approx(oracle_fpr95_v15(conf, label))  # the two really differ


def test_fpr95_v10_agrees_without_ties():
    # 0.95 * 200 = 190 is an integer and the scores are continuous: v1.0 = jaxclust "id"
    conf, label = _scores("continuous")
    expected = oracle_fpr95_v10(conf, label)
    assert float(fpr_at_tpr(conf, label != -1, positive="id")) == pytest.approx(expected)


def test_fpr95_v10_convention_with_ties():
    conf, label = _scores("ties")
    v10 = oracle_fpr95_v10(conf, label)
    value = float(fpr_at_tpr(conf, label != -1, positive="id"))
    # jaxclust counts OOD scores tied with the threshold as accepted (>=); OpenOOD v1.0 does
    # not (>), so it reports a lower FPR here (v1.0: 0.51, jaxclust: 0.53 on these
    # scores). jaxclust's value is the ROC-curve definition (ID positive):
    fpr, tpr = _roc(label != -1, conf)
    assert value == pytest.approx(float(fpr[np.argmax(tpr >= 0.95)]))
    assert v10 < value
