"""The ``jaxclust`` command.

Usage::

    jaxclust --version
    jaxclust demo [--out DIR] [--seed N] [--section NAME ...]
    jaxclust cluster FILE --k K [--method METHOD] [--seed N] [--out labels.csv]
                     [--plot fig.png]

``jaxclust demo`` runs one small, real problem per pillar of the library (see
[`jaxclust.demo`][jaxclust.demo]), prints a table per section and, with ``--out``, saves
figures there (matplotlib is then needed).

``jaxclust cluster`` clusters the points of a ``.csv`` (comma-separated numbers, one point
per row, an optional header row) or ``.npy`` file (a 2-D numeric array) with one of
``kmeans``, ``gmm``, ``spectral``, ``kmedoids``, ``sdp`` (k-means SDP, Burer–Monteiro),
``la-sdp`` (iLA-SDP) or ``sinkhorn`` (Sinkhorn k-means, balanced clusters); prints the
cluster sizes, inertia and time, writes one label per line to ``--out`` and a 2-D (PCA)
scatter plot to ``--plot``. Unreadable files, wrong shapes and non-numeric values are
reported with the file, the row and the column, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["CLUSTER_METHODS", "build_parser", "cluster_points", "load_points", "main"]

#: The methods of ``jaxclust cluster``.
CLUSTER_METHODS = ("kmeans", "gmm", "spectral", "kmedoids", "sdp", "la-sdp", "sinkhorn")


class InputError(ValueError):
    """A problem with the input file of ``jaxclust cluster`` (reported, exit status 2)."""


def load_points(path: str):
    """Read points from a ``.csv`` or ``.npy`` file as a float32 ``(n, d)`` NumPy array.

    CSV: comma-separated numbers, one point per row; a first row that is not numeric is
    taken as a header; empty lines are skipped.

    Raises:
        InputError: the file is missing or unreadable, has another extension, is not 2-D,
            holds a non-numeric or non-finite value (with its row and column), or rows of
            different lengths.
    """
    import csv
    from pathlib import Path

    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file.")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as err:  # numpy raises several types for corrupt files
            raise InputError(f"{path}: not a readable .npy file ({err}).") from err
        if arr.ndim != 2:
            raise InputError(f"{path}: expected a 2-D array (points x features), got shape "
                             f"{arr.shape}.")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype,
                                                                     np.complexfloating):
            raise InputError(f"{path}: expected real numbers, got dtype {arr.dtype}.")
        x = arr.astype(np.float64)
    elif suffix in (".csv", ".txt"):
        try:
            with p.open(newline="") as f:
                rows = [(i + 1, r) for i, r in enumerate(csv.reader(f))
                        if r and any(c.strip() for c in r)]
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: cannot read the file ({err}).") from err
        if rows and not _numeric_row(rows[0][1]):
            rows = rows[1:]  # header
        if not rows:
            raise InputError(f"{path}: no data rows.")
        width = len(rows[0][1])
        values = []
        for line, row in rows:
            if len(row) != width:
                raise InputError(f"{path}, line {line}: {len(row)} values, but the first data "
                                 f"row has {width}; every point needs the same features.")
            try:
                values.append([float(c) for c in row])
            except ValueError:
                col = next(j for j, c in enumerate(row) if not _is_number(c))
                raise InputError(f"{path}, line {line}, column {col + 1}: "
                                 f"{row[col]!r} is not a number.") from None
        x = np.asarray(values, np.float64)
    else:
        raise InputError(f"{path}: unknown file type {suffix!r}; use .csv or .npy.")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{path}: non-finite value {x[i, j]} at point {i + 1}, feature "
                         f"{j + 1}; remove or impute it.")
    return x.astype(np.float32)


def _is_number(c: str) -> bool:
    try:
        float(c)
    except ValueError:
        return False
    return True


def _numeric_row(row) -> bool:
    return all(_is_number(c) for c in row)


def cluster_points(x, k: int, method: str = "kmeans", seed: int = 0):
    """Cluster ``x`` (``(n, d)``) into ``k`` groups with ``method`` (one of
    ``CLUSTER_METHODS``); returns the labels as a NumPy int array.

    Raises:
        InputError: ``k`` is not in ``[2, n)`` or ``method`` is unknown.
    """
    import jax
    import numpy as np

    n = x.shape[0]
    if not 2 <= k < n:
        raise InputError(f"--k must be in [2, n) = [2, {n}) for {n} points, got {k}.")
    key = jax.random.key(seed)
    if method == "kmeans":
        from jaxclust.cluster import kmeans

        labels = kmeans(x, k, key=key, n_init=4).labels
    elif method == "gmm":
        from jaxclust.cluster import gmm

        labels = gmm(x, k, key=key).labels
    elif method == "spectral":
        from jaxclust.cluster import spectral

        labels = spectral(x, k, key=key, affinity="knn").labels
    elif method == "kmedoids":
        from jaxclust.cluster import kmedoids

        labels = kmedoids(x, k, key=key).labels
    elif method == "sdp":
        from jaxclust.sdp import kmeans_sdp

        labels = kmeans_sdp(x, k, method="bm", key=key).labels
    elif method == "la-sdp":
        from jaxclust.sdp import la_sdp

        labels = la_sdp(x, k, key=key).labels
    elif method == "sinkhorn":
        from jaxclust.cluster import sinkhorn_kmeans

        labels = sinkhorn_kmeans(x, k, key=key).labels
    else:
        raise InputError(f"--method must be one of {CLUSTER_METHODS}, got {method!r}.")
    return np.asarray(labels)


def _cluster_command(args) -> int:
    import time

    import numpy as np

    try:
        x = load_points(args.file)
        t0 = time.perf_counter()
        labels = cluster_points(x, args.k, args.method, args.seed)
        seconds = time.perf_counter() - t0
    except InputError as err:
        print(f"jaxclust cluster: error: {err}", file=sys.stderr)
        return 2
    sizes = np.bincount(labels, minlength=args.k)
    centres = np.stack([x[labels == j].mean(0) if s else np.zeros(x.shape[1])
                        for j, s in enumerate(sizes)])
    inertia = float(((x - centres[labels]) ** 2).sum())
    print(f"{args.method}: {x.shape[0]} points, {x.shape[1]} features, k = {args.k}")
    print("cluster sizes: " + ", ".join(f"{j}: {s}" for j, s in enumerate(sizes)))
    print(f"inertia (sum of squared distances to cluster means): {inertia:.6g}")
    print(f"time (compilation included): {seconds:.2f} s")
    if args.out:
        np.savetxt(args.out, labels, fmt="%d", header="label", comments="")
        print(f"labels written to {args.out}")
    if args.plot:
        _plot_clusters(x, labels, args.plot, f"{args.method}, k = {args.k}")
        print(f"figure written to {args.plot}")
    return 0


def _plot_clusters(x, labels, path, title):
    import numpy as np

    from jaxclust.demo import _pyplot

    plt = _pyplot()
    xc = x - x.mean(0)
    if x.shape[1] > 2:
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        xc = xc @ vt[:2].T
    elif x.shape[1] == 1:
        xc = np.c_[xc, np.zeros(len(xc))]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(xc[:, 0], xc[:, 1], c=labels, cmap="tab10", s=8, linewidths=0)
    ax.set_title(title + ("  (PCA)" if x.shape[1] > 2 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _version() -> str:
    try:
        from jaxclust import __version__

        return __version__
    except ImportError:  # pragma: no cover - only while the package is half-installed
        from importlib.metadata import version

        return version("jaxclust")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxclust`` command."""
    from jaxclust.demo import SECTIONS

    parser = argparse.ArgumentParser(
        prog="jaxclust",
        description="Optimal transport, clustering, SDP, diffusion and OOD in JAX.",
    )
    parser.add_argument("--version", action="version", version=f"jaxclust {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a small real problem per pillar and print the results",
        description="Run a small real problem per pillar, print tables, optionally save "
        "figures.",
    )
    demo.add_argument("--out", metavar="DIR", default=None,
                      help="directory to save figures to (needs matplotlib)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--section", dest="sections", action="append",
                      choices=[s.name for s in SECTIONS], metavar="NAME",
                      help="run only this section (repeatable); one of: "
                      + ", ".join(s.name for s in SECTIONS))

    clu = sub.add_parser(
        "cluster",
        help="cluster the points of a .csv or .npy file",
        description="Cluster the points (rows) of a .csv or .npy file and print a summary.",
    )
    clu.add_argument("file", metavar="FILE", help="points: .csv (one per row) or .npy (2-D)")
    clu.add_argument("--k", type=int, required=True, help="number of clusters")
    clu.add_argument("--method", default="kmeans", choices=CLUSTER_METHODS,
                     help="clustering method (default: kmeans)")
    clu.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    clu.add_argument("--out", metavar="CSV", default=None, help="write one label per line")
    clu.add_argument("--plot", metavar="PNG", default=None,
                     help="save a 2-D scatter plot (PCA above 2 features; needs matplotlib)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxclust`` command; returns the exit status.

    Example:
        >>> from jaxclust.cli import main
        >>> main([])  # doctest: +ELLIPSIS
        usage: jaxclust ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from jaxclust.demo import run_demo

        run_demo(seed=args.seed, out=args.out, sections=args.sections)
        return 0
    if args.command == "cluster":
        return _cluster_command(args)
    parser.print_help(sys.stdout)
    return 0
