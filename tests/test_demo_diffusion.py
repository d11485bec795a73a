"""The diffusion demo's helpers (no training here: the training loop and the networks have
their own tests): the digits split and pixel scale, the nearest-neighbour memorisation
check against NumPy and on planted copies, the figures."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from jaxclust.demo.diffusion import (
    DEMO,
    EXAMPLE,
    N_LEVELS,
    Row,
    levels_to_pixels,
    load_digits_split,
    memorisation,
    nearest_distances,
    plot_grid,
    plot_mixture,
    print_table,
    ring_mixture,
)


def test_digits_split_is_stratified_and_scaled():
    data = load_digits_split()
    assert data.train_levels.shape == (1347, 64) and data.test_levels.shape == (450, 64)
    assert int(data.train_levels.min()) == 0 and int(data.train_levels.max()) == N_LEVELS - 1
    # stratified: each class holds ~25% of its digits out (176-183 digits per class)
    counts = np.bincount(np.asarray(data.test_labels), minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46
    px = np.asarray(levels_to_pixels(np.array([0, 8, 16])))
    np.testing.assert_allclose(px, [-1 + 1 / 17, 0.0, 1 - 1 / 17], atol=1e-6)


def test_nearest_distances_match_numpy(rng):
    x, ref = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    d = np.sort(np.linalg.norm(x[:, None] - ref[None], axis=2), axis=1)[:, :2]
    # float32 squared-distance expansion of O(1) values: ~1e-6 absolute, sqrt amplifies
    np.testing.assert_allclose(nearest_distances(np.float32(x), np.float32(ref)), d,
                               atol=1e-4)


def test_memorisation_flags_copies(rng):
    train = rng.normal(size=(200, 8))
    test = rng.normal(size=(100, 8))
    fresh = memorisation(np.float32(rng.normal(size=(100, 8))), np.float32(train),
                         np.float32(test))
    copies = memorisation(np.float32(train[:100] + 1e-3 * rng.normal(size=(100, 8))),
                          np.float32(train), np.float32(test))
    # fresh draws of the same law look like held-out points; near-copies do not
    assert fresh["frac_below_test_p1"] < 0.1 and copies["frac_below_test_p1"] == 1.0
    assert abs(fresh["sample_nn_median"] / fresh["test_nn_median"] - 1) < 0.2
    assert copies["sample_ratio_median"] < 0.01 < fresh["sample_ratio_median"]


def test_figures_and_table(tmp_path):
    x = ring_mixture(300, seed=1)
    assert x.shape == (300, 2)
    radii = np.linalg.norm(np.asarray(x), axis=1)
    assert abs(np.median(radii) - 2.0) < 0.1  # centres on the circle of radius 2
    p1 = plot_mixture(x, x[::-1], tmp_path / "m.png")
    p2 = plot_grid(levels_to_pixels(load_digits_split().test_levels[:20]), tmp_path / "g.png",
                   cols=10, title="digits")
    assert p1.stat().st_size > 5_000 and p2.stat().st_size > 2_000
    console = Console(record=True, width=100)
    print_table(console, [Row("digits", "accuracy", "97%")])
    assert "accuracy" in console.export_text()


def test_demo_settings_are_the_small_ones():
    assert DEMO.digits_steps < EXAMPLE.digits_steps and DEMO.width < EXAMPLE.width
    assert DEMO.n_classify is not None and EXAMPLE.n_classify is None  # all held-out digits
