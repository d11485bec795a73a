"""The OOD demo section on a reduced configuration: data, a short training, three scores,
table and figure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from jaxclust.demo import ood as demo


def test_data_sets():
    data = demo.load_data(0, n_far=20)
    assert data.x_train.shape[1] == 64 and set(np.unique(data.y_train)) == set(range(5))
    assert data.x_train.shape[0] + data.x_test.shape[0] == 901  # digits 0-4
    assert data.ood["digits 5-9"].shape == (896, 64)
    for name in ("china patches", "flower patches", "uniform noise"):
        x = np.asarray(data.ood[name])
        assert x.shape == (20, 64) and x.min() >= 0.0 and x.max() <= 1.0
    # the two images differ, and patches are min-max stretched
    assert not np.allclose(data.ood["china patches"], data.ood["flower patches"])
    np.testing.assert_allclose(np.asarray(data.ood["china patches"]).max(1), 1.0, atol=1e-6)


def test_table_and_figure_from_given_scores(tmp_path):
    # the reporting helpers on hand-made scores (no training): ID points score higher
    rng = np.random.default_rng(0)
    x_id = jnp.asarray(rng.uniform(0.5, 1.0, (30, 4)), jnp.float32)
    x_ood = jnp.asarray(rng.uniform(0.0, 0.6, (20, 4)), jnp.float32)
    scores = {"mean": lambda x: jnp.mean(x, axis=1), "min": lambda x: jnp.min(x, axis=1)}
    runs, raw = demo.evaluate(scores, x_id, {"low": x_ood})
    ref = {"mean": (x_id.mean(1), x_ood.mean(1)), "min": (x_id.min(1), x_ood.min(1))}
    for r in runs:
        s_id, s_ood = map(np.asarray, ref[r.score])
        # AUROC by counting pairs (Mann-Whitney, no ties with continuous scores)
        pairs = (s_id[:, None] > s_ood[None, :]).mean()
        assert abs(r.auroc - pairs) < 1e-6
    console = Console(record=True, width=120)
    demo.print_table(console, runs)
    assert "mean" in console.export_text()
    path = demo.plot_scores(raw, tmp_path / "ood.png", names=("mean", "min"), runs=runs)
    assert path.exists() and path.stat().st_size > 10_000


@pytest.mark.slow
def test_short_run_table_and_figure(tmp_path):
    # a narrow MLP and a short training: the pipeline, not the benchmark numbers
    data = demo.load_data(0, n_far=40)
    params = demo.train_classifier(data.x_train, data.y_train, jax.random.key(0), steps=100,
                                   hidden=(32,))
    acc = float(jnp.mean(jnp.argmax(demo.logits(params, data.x_test), 1) == data.y_test))
    assert acc > 0.9  # 100 steps already separate five digit classes
    scores = demo.post_hoc_scores(params, data.x_train, data.y_train,
                                  only=("MSP", "KNN (k=10)"))
    assert list(scores) == ["MSP", "KNN (k=10)"]
    sets = {"uniform noise": data.ood["uniform noise"]}
    runs, raw = demo.evaluate(scores, data.x_test, sets)
    assert len(runs) == 2
    knn_noise = next(r for r in runs if r.score == "KNN (k=10)" and r.ood_set == "uniform noise")
    assert knn_noise.auroc > 0.95  # noise is far from every training feature
    console = Console(record=True, width=120)
    demo.print_table(console, runs)
    assert "KNN (k=10)" in console.export_text()
    path = demo.plot_scores(raw, tmp_path / "ood.png", names=("MSP", "KNN (k=10)"))
    assert path.exists() and path.stat().st_size > 10_000


def test_table_fits_80_columns_with_full_score_names():
    """The full demo table (12 scores x 4 OOD sets) at 80 columns: no line is wider, no
    cell is cut (no ellipsis), every score name and set name appears in full."""
    scores = ["MSP", "MaxLogit", "energy", "ODIN", "GEN", "Mahalanobis", "rel. Mahalanobis",
              "KNN (k=10)", "ReAct", "ASH-S", "ViM", "Sinkhorn"]
    sets = ["digits 5-9", "china patches", "flower patches", "uniform noise"]
    rng = np.random.default_rng(0)
    runs = [demo.ScoreRun(n, s, rng.uniform(0.5, 1.0), 1.0, 1.0, 0.5)  # FPR 100.0 (widest)
            for n in scores for s in sets]
    console = Console(record=True, width=80)
    demo.print_table(console, runs)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    for n in scores:  # whole, on one line
        assert any(line.lstrip().startswith(n + " ") for line in lines), n
    header = " ".join(lines[:6])
    for s in sets:  # set names may wrap in the header, but every word is there
        assert all(word in header for word in s.split()), s
    assert "100.0" in text
