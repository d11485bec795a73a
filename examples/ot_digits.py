"""Entropic optimal transport between handwritten 3s and 8s.

Loads 100 images of each digit from scikit-learn (no download), solves balanced,
unbalanced and partial (mass 0.7) entropic OT with ``jaxclust.ot.sinkhorn``, prints a
table and saves two figures:

- ``ot_plans.png``: the three plans as heatmaps, rows/columns sorted by the first
  principal component;
- ``ot_links.png``: both clouds in 2-D PCA with the strongest plan entries drawn.

Run from the repository root (a few seconds on a laptop CPU)::

    python examples/ot_digits.py --out out/ot_digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from jaxclust.demo.ot import digits_clouds, plot_links, plot_plans, print_table, solve_variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/ot_digits", help="directory for the figures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mass", type=float, default=0.7, help="mass of the partial plan")
    parser.add_argument("--n", type=int, default=100, help="images per digit")
    args = parser.parse_args()

    console = Console()
    x, y = digits_clouds(args.seed, classes=(3, 8), n_per_class=args.n)
    runs = solve_variants(x, y, mass=args.mass)
    print_table(console, runs)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in (plot_plans(x, y, runs, out / "ot_plans.png"),
                 plot_links(x, y, runs, out / "ot_links.png")):
        console.print(f"saved {path}")


if __name__ == "__main__":
    main()
