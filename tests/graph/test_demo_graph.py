"""The graph demo section on a small Swiss roll: correlations, table and figure."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from jaxclust.demo import DemoContext
from jaxclust.demo.graph import run, swiss_roll, unroll


def test_swiss_roll_geodesics_are_exact_on_the_unrolled_sheet():
    x, t, g = swiss_roll(0, n=50)
    # neighbouring points: geodesic ~ chordal distance (the roll is smooth)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    near = (g > 0) & (g < 1.0)
    np.testing.assert_allclose(d[near], g[near], rtol=0.05)
    assert np.all(d <= g + 1e-4)  # chords never exceed geodesics


@pytest.mark.slow  # the method's acceptance checks are in test_embedding.py (fast budget)
def test_unroll_beats_the_ambient_distances():
    _, _, emb, scores, _ = unroll(0, n=200)
    assert emb.shape == (200, 2)
    # measured (seed 0, float32): 0.85 vs 0.33; at n = 120 the graph short-circuits the roll
    assert scores["heat-geodesic distances"] > scores["ambient Euclidean"] + 0.3


@pytest.mark.slow
def test_section_prints_the_table_and_saves_the_figure(tmp_path):
    console = Console(record=True, width=100)
    run(DemoContext(seed=0, out=tmp_path, console=console))
    assert "heat-geodesic distances" in console.export_text()
    assert (tmp_path / "graph_swiss_roll.png").stat().st_size > 10_000
