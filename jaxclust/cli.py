"""The ``jaxclust`` command.

Usage::

    jaxclust --version
    jaxclust demo [--out DIR] [--seed N] [--section NAME ...]
    jaxclust cluster FILE --k K [--method METHOD] [--seed N] [--out labels.csv]
                     [--plot fig.png] [--force]

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

No data is lost or overwritten unasked: ``--out`` and ``--plot`` are checked before the
clustering starts (an existing file is kept unless ``--force`` is given; the input file
itself, a directory or a missing folder are refused), ``.npy`` files are read without
unpickling, and every error is one line on stderr (no traceback) with a non-zero exit
status: 2 for a problem with the input or the options, 1 when the method itself fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["CLUSTER_METHODS", "build_parser", "cluster_points", "load_points", "main"]

#: The methods of ``jaxclust cluster``.
CLUSTER_METHODS = ("kmeans", "gmm", "spectral", "kmedoids", "sdp", "la-sdp", "sinkhorn")


class InputError(ValueError):
    """A problem with the input file of ``jaxclust cluster`` (reported, exit status 2)."""


class MethodError(RuntimeError):
    """The clustering method failed on valid input (reported, exit status 1)."""


SEED_RANGE = (-(2**31), 2**32)


def _seed(text: str) -> int:
    """``--seed``: an integer that ``jax.random.key`` accepts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not SEED_RANGE[0] <= value < SEED_RANGE[1]:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range; use an integer in [-2**31, 2**32).")
    return value


def check_output(path: str, option: str, *, inputs: Sequence[str] = (),
                 force: bool = False) -> None:
    """Refuse an output path that would lose data or fail after the work is done.

    Raises:
        InputError: ``path`` is one of ``inputs``, a directory, in a missing or
            unwritable folder, or an existing file (unless ``force``).
    """
    from pathlib import Path

    p = Path(path)
    for src in inputs:
        q = Path(src)
        if p.resolve() == q.resolve() or (p.exists() and q.exists() and os.path.samefile(p, q)):
            raise InputError(f"{option} {path} is the input file; writing there would destroy "
                             "the data. Choose another path.")
    if p.is_dir():
        raise InputError(f"{option} {path} is a directory; give a file name.")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: the folder {parent} does not exist; create it "
                         "first.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{option} {path}: the folder {parent} is not writable.")
    if p.exists() and not force:
        raise InputError(f"{option} {path} already exists; choose another path or pass "
                         "--force to overwrite it.")


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
    if p.is_dir():
        raise InputError(f"{path}: is a directory; give a .csv or .npy file.")
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
        if arr.dtype == bool:
            arr = arr.astype(np.float64)
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
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{path}: no data ({x.shape[0]} points x {x.shape[1]} features); "
                         "give at least one feature column and one row per point.")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{path}: non-finite value {x[i, j]} at point {i + 1}, feature "
                         f"{j + 1}; remove or impute it.")
    # float32 squared distances overflow beyond ~1.8e19 / sqrt(d): refuse, don't compute Inf
    limit = float(np.sqrt(np.finfo(np.float32).max / (4.0 * x.shape[1])))
    big = np.abs(x) > limit
    if big.any():
        i, j = np.argwhere(big)[0]
        raise InputError(f"{path}: value {x[i, j]:.3g} at point {i + 1}, feature {j + 1} is "
                         f"too large for float32 distances (limit {limit:.2g}); rescale the "
                         "data (e.g. standardise each column) first.")
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
    distinct = len(np.unique(x, axis=0))
    if distinct < k:
        raise InputError(f"the file has only {distinct} distinct point(s), fewer than "
                         f"--k {k}; lower --k or check the data.")
    if method == "spectral" and n < 3:
        raise InputError(f"--method spectral needs at least 3 points, got {n}.")
    if method not in CLUSTER_METHODS:
        raise InputError(f"--method must be one of {CLUSTER_METHODS}, got {method!r}.")
    key = jax.random.key(seed)
    if method == "kmeans":
        from jaxclust.cluster import kmeans

        labels = kmeans(x, k, key=key, n_init=4).labels
    elif method == "gmm":
        from jaxclust.cluster import gmm

        labels = gmm(x, k, key=key).labels
    elif method == "spectral":
        from jaxclust.cluster import spectral

        labels = spectral(x, k, key=key, affinity="knn", n_neighbors=min(10, n - 1)).labels
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
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.min() < 0 or labels.max() >= k:
        raise MethodError(f"{method} returned invalid labels (range "
                          f"[{labels.min()}, {labels.max()}] for k = {k}); the data may be "
                          "degenerate or badly scaled: standardise it or try another method.")
    return labels


def _error_line(err: BaseException) -> str:
    """One line for an exception: the ``ValueError: ...`` carried by a JAX runtime error,
    else the first line of its message."""
    text = str(err)
    for line in text.splitlines():
        if "ValueError: " in line:
            return line[line.index("ValueError: ") + len("ValueError: "):].strip()
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _cluster_command(args) -> int:
    import time

    import numpy as np

    outputs = [(args.out, "--out"), (args.plot, "--plot")]
    try:
        if args.out and args.plot and os.path.abspath(args.out) == os.path.abspath(args.plot):
            raise InputError("--out and --plot are the same file; give two paths.")
        for path, option in outputs:
            if path:
                check_output(path, option, inputs=[args.file], force=args.force)
        if args.plot:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise InputError("--plot needs matplotlib: pip install matplotlib (or drop "
                                 "--plot).") from None
        x = load_points(args.file)
        t0 = time.perf_counter()
        labels = cluster_points(x, args.k, args.method, args.seed)
        seconds = time.perf_counter() - t0
    except InputError as err:
        print(f"jaxclust cluster: error: {err}", file=sys.stderr)
        return 2
    except MethodError as err:
        print(f"jaxclust cluster: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        print(f"jaxclust cluster: error: {args.method} failed on {args.file}: "
              f"{_error_line(err)} (try another --method or --seed, or standardise the data)",
              file=sys.stderr)
        return 1
    sizes = np.bincount(labels, minlength=args.k)
    centres = np.stack([x[labels == j].mean(0) if s else np.zeros(x.shape[1])
                        for j, s in enumerate(sizes)])
    inertia = float(((x.astype(np.float64) - centres[labels]) ** 2).sum())
    print(f"{args.method}: {x.shape[0]} points, {x.shape[1]} features, k = {args.k}")
    print("cluster sizes: " + ", ".join(f"{j}: {s}" for j, s in enumerate(sizes)))
    print(f"inertia (sum of squared distances to cluster means): {inertia:.6g}")
    print(f"time (compilation included): {seconds:.2f} s")
    status = 0
    if args.out:
        try:
            np.savetxt(args.out, labels, fmt="%d", header="label", comments="")
            print(f"labels written to {args.out}")
        except OSError as err:
            print(f"jaxclust cluster: error: cannot write --out {args.out}: {err}",
                  file=sys.stderr)
            status = 1
    if args.plot:
        try:
            _plot_clusters(x, labels, args.plot, f"{args.method}, k = {args.k}")
            print(f"figure written to {args.plot}")
        except Exception as err:  # noqa: BLE001 - one line, never a traceback
            print(f"jaxclust cluster: error: cannot write --plot {args.plot}: "
                  f"{_error_line(err)}", file=sys.stderr)
            status = 1
    return status


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
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
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
    clu.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    clu.add_argument("--out", metavar="CSV", default=None,
                     help="write one label per line (a new file unless --force)")
    clu.add_argument("--plot", metavar="PNG", default=None,
                     help="save a 2-D scatter plot (PCA above 2 features; needs matplotlib; a "
                     "new file unless --force)")
    clu.add_argument("--force", action="store_true",
                     help="overwrite existing --out / --plot files (never the input file)")
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

        if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
            print(f"jaxclust demo: error: --out {args.out} is a file; give a directory.",
                  file=sys.stderr)
            return 2

        run_demo(seed=args.seed, out=args.out, sections=args.sections)
        return 0
    if args.command == "cluster":
        return _cluster_command(args)
    parser.print_help(sys.stdout)
    return 0
