"""The SDP demo section on a small slice: data generators, the recovery sweep (two
separations, one seed), the tables and the figure."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from jaxclust.demo.sdp import (
    heterogeneous_mixture,
    homogeneous_mixture,
    plot,
    print_tables,
    recovery_sweep,
)


def test_generators():
    x, y = heterogeneous_mixture(0)
    assert x.shape == (300, 10) and x.dtype == np.float32 and np.bincount(y).tolist() == [100] * 3
    # the wide cluster is ~5x wider than the tight ones
    spread = [np.linalg.norm(x[y == j] - x[y == j].mean(0), axis=1).mean() for j in range(3)]
    assert spread[0] > 4 * max(spread[1:])
    x, y = homogeneous_mixture(1, n=30, sep=6.0)
    centres = np.stack([x[y == j].mean(0) for j in range(3)])
    assert x.shape == (30, 5) and np.all(np.linalg.norm(centres[0] - centres[1:], axis=1) > 3)


def test_recovery_sweep_tables_and_figure(tmp_path):
    rows = recovery_sweep(seps=(2.0, 9.0), seeds=range(1), n=60)
    assert [r.sep for r in rows] == [2.0, 9.0]
    # far below the threshold nothing is recovered; far above, exactly
    assert rows[0].rate == 0.0 and rows[0].error > 0.1
    assert rows[1].rate == 1.0 and rows[1].ari == 1.0
    _, y = heterogeneous_mixture(0)
    comp = {m: {"error": np.array([0.1, 0.2]), "seconds": np.array([0.01, 0.02]),
                "labels": y} for m in ("k-means", "iLA-SDP")}
    console = Console(record=True, width=120)
    print_tables(console, rows, comp)
    text = console.export_text()
    assert "exact recovery" in text and "iLA-SDP" in text and "15.0%" in text
    path = plot(rows, comp, tmp_path / "sdp.png", seed=0)
    assert path.exists() and path.stat().st_size > 10_000
