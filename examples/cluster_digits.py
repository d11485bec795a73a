"""Every clustering method of jaxclust on iris, wine and scikit-learn's digits.

Prints ACC / NMI / ARI and the time per call for each method and data set, and saves
``cluster_digits.png``: the digits in 2-D (PCA), coloured by each method's clusters.
The same as ``jaxclust demo --section cluster``.

Run from the repository root (about a minute on a laptop CPU, most of it compilation)::

    python examples/cluster_digits.py --out out/cluster_digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from jaxclust.demo.cluster import evaluate, load_datasets, plot_embedding, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/cluster_digits", help="directory for the figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=["iris", "wine", "digits"],
                        choices=["iris", "wine", "digits"])
    args = parser.parse_args()

    console = Console()
    datasets = load_datasets(tuple(args.datasets))
    console.print(f"clustering {', '.join(ds.name for ds in datasets)} with every method "
                  "(the first call of each method compiles) ...")
    runs = evaluate(datasets, seed=args.seed)
    print_table(console, runs)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        path = plot_embedding(ds, runs, out / f"cluster_{ds.name}.png")
        console.print(f"saved {path}")


if __name__ == "__main__":
    main()
