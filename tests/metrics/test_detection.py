"""OOD detection metrics against scikit-learn's ROC and precision-recall curves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from jaxclust.metrics.detection import aupr_in, aupr_out, auroc, fpr_at_tpr

METRICS = (auroc, fpr_at_tpr, aupr_in, aupr_out)
TPRS = (0.95, 0.8)


def _fpr_ref(y, s, tpr):
    # the classic definition: the first point of the full ROC curve with TPR >= tpr
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    return fpr[np.searchsorted(tpr_curve, tpr, side="left")]


def _aupr_ref(y, s):
    precision, recall, _ = precision_recall_curve(y, s)
    return auc(recall, precision)


def _reference(s, y):
    s = np.asarray(s, np.float64)  # the float32 scores, exactly
    out = {"auroc": roc_auc_score(y, s), "aupr_in": _aupr_ref(y, s),
           "aupr_out": _aupr_ref(1 - y, -s)}
    for tpr in TPRS:
        out[f"fpr_id_{tpr}"] = _fpr_ref(y, s, tpr)
        out[f"fpr_ood_{tpr}"] = _fpr_ref(1 - y, -s, tpr)
    return out


@jax.jit
def _ours(s, y):
    out = {"auroc": auroc(s, y), "aupr_in": aupr_in(s, y), "aupr_out": aupr_out(s, y)}
    for tpr in TPRS:
        out[f"fpr_id_{tpr}"] = fpr_at_tpr(s, y, tpr=tpr)
        out[f"fpr_ood_{tpr}"] = fpr_at_tpr(s, y, tpr=tpr, positive="ood")
    return out


SIZES = (3, 200)  # two sizes only: each compiles once (n = 2 by hand below)


def _problems(rng):
    """Random continuous, heavily tied and tiny problems (each with both classes)."""
    out = []
    for i in range(20):
        n = SIZES[i % len(SIZES)]
        y = rng.integers(0, 2, n)
        y[0], y[-1] = 1, 0
        s = rng.normal(size=n) + 0.8 * y
        if i % 2 == 1:  # ties within and across the classes
            s = np.round(s * 2) / 2
        out.append((s.astype(np.float32), y))
    return out


def test_metrics_equal_sklearn(rng):
    # float32 scores, exact integer counts; the only rounding is float32 division and the
    # float32 sum of <= 200 terms in [0, 2]: 1e-6 absolute is ~10 ulps of the result
    for s, y in _problems(rng):
        ref, got = _reference(s, y), _ours(s, y)
        for name in ref:
            np.testing.assert_allclose(float(got[name]), ref[name], rtol=0, atol=1e-6,
                                       err_msg=f"{name}, n={len(s)}, s={s}, y={y}")


def test_tiny_cases_by_hand():
    # one ID sample above, tied with, or below two OOD samples (n = 3, jitted once above)
    y = jnp.array([1, 0, 0])
    above, tied, below = (_ours(jnp.array([v, 0.0, -1.0]), y) for v in (1.0, 0.0, -2.0))
    assert float(above["auroc"]) == 1.0 and float(above["fpr_id_0.95"]) == 0.0
    assert float(tied["auroc"]) == 0.75  # (1 + 1/2) / 2
    assert float(tied["fpr_id_0.95"]) == 0.5  # the tied OOD sample is accepted
    assert float(below["auroc"]) == 0.0 and float(below["fpr_id_0.95"]) == 1.0
    assert float(above["aupr_in"]) == 1.0


def test_conventions_and_symmetries(rng):
    s = jnp.asarray(rng.normal(size=200), jnp.float32)
    y = jnp.asarray(rng.uniform(size=200) < 0.4, jnp.int32)
    ours, flipped = _ours(s, y), _ours(-s, 1 - y)
    # AUROC is convention-free: flipping labels and scores leaves it unchanged
    np.testing.assert_allclose(ours["auroc"], flipped["auroc"], atol=1e-6)
    # positive="ood" is the ID-positive metric on flipped labels and scores (same counts)
    np.testing.assert_allclose(ours["fpr_ood_0.95"], flipped["fpr_id_0.95"], atol=0)
    np.testing.assert_allclose(ours["aupr_out"], flipped["aupr_in"], atol=0)
    # boolean labels are the same as 0/1
    np.testing.assert_allclose(_ours(s, y.astype(bool))["auroc"], ours["auroc"], atol=0)


def test_aupr_differs_from_average_precision(rng):
    # the trapezoidal AUPR is not sklearn's step-wise average precision
    s = rng.normal(size=200).astype(np.float32)
    y = (rng.uniform(size=200) < 0.5).astype(np.int32)
    ap = average_precision_score(y, s.astype(np.float64))
    got = float(_ours(s, y)["aupr_in"])
    assert abs(got - ap) > 1e-3
    np.testing.assert_allclose(got, _aupr_ref(y, s.astype(np.float64)), atol=1e-6)


def test_jit_and_vmap_match_eager(rng):
    s = jnp.asarray(np.round(rng.normal(size=(3, 200)), 1), jnp.float32)
    y = rng.integers(0, 2, size=(3, 200))
    y[:, 0], y[:, 1] = 1, 0
    y = jnp.asarray(y, jnp.int32)
    batched = jax.jit(jax.vmap(_ours))(s, y)
    for b in range(3):
        single = _ours(s[b], y[b])
        for name, value in single.items():
            # the same float32 operations, batched: rounding only
            assert float(batched[name][b]) == pytest.approx(float(value), abs=1e-6)


# ------------------------------------------------------------------------------------------
# bad input: one test per rule


@pytest.mark.parametrize("fn", METRICS)
def test_wrong_rank(fn):
    with pytest.raises(ValueError, match="`scores` must be 1-D"):
        fn(jnp.ones((4, 2)), jnp.array([1, 0, 1, 0]))


def test_labels_wrong_rank():
    with pytest.raises(ValueError, match="`labels` must be 1-D"):
        auroc(jnp.ones(4), jnp.ones((4, 1)))


@pytest.mark.parametrize("fn", METRICS)
def test_mismatched_lengths(fn):
    with pytest.raises(ValueError, match="same length"):
        fn(jnp.arange(5.0), jnp.array([1, 0, 1, 0]))


@pytest.mark.parametrize("fn", METRICS)
def test_single_class(fn):
    with pytest.raises(ValueError, match="both classes"):
        fn(jnp.arange(4.0), jnp.array([1, 1, 1, 1]))


def test_single_class_under_jit():
    with pytest.raises(Exception, match="both classes"):
        jax.block_until_ready(jax.jit(auroc)(jnp.arange(4.0), jnp.zeros(4, jnp.int32)))


def test_labels_not_binary():
    with pytest.raises(ValueError, match="only 0"):
        auroc(jnp.arange(4.0), jnp.array([0, 1, 2, 1]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", METRICS)
def test_nan_inf_scores(fn, bad):
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn(jnp.array([0.1, bad, 0.3, 0.2]), jnp.array([1, 0, 1, 0]))


def test_too_few_samples():
    with pytest.raises(ValueError, match="at least two"):
        auroc(jnp.array([0.1]), jnp.array([1]))


@pytest.mark.parametrize("tpr", [0.0, 1.5, -0.1, True])
def test_bad_tpr(tpr):
    with pytest.raises(ValueError, match="`tpr`"):
        fpr_at_tpr(jnp.arange(4.0), jnp.array([1, 0, 1, 0]), tpr=tpr)


def test_bad_positive():
    with pytest.raises(ValueError, match="`positive`"):
        fpr_at_tpr(jnp.arange(4.0), jnp.array([1, 0, 1, 0]), positive="in")
