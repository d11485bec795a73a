"""The ``jaxclust`` command.

Usage::

    jaxclust --version
    jaxclust demo [--out DIR] [--seed N] [--section NAME ...] [--no-cache]
    jaxclust cluster FILE --k K [--method METHOD] [--scale {standard,minmax,none}]
                     [--seed N] [--out labels.csv] [--plot fig.png] [--force] [--quiet]
                     [--no-cache]

``jaxclust demo`` runs one small, real problem per pillar of the library (see
[`jaxclust.demo`][jaxclust.demo]), prints a table per section and, with ``--out``, saves
figures there. It needs scikit-learn for its data sets (``pip install "jaxclust[data]"``)
and, with ``--out``, matplotlib (``pip install matplotlib``); a missing one is named before
anything runs.

``jaxclust cluster`` clusters the points of a ``.csv`` (comma-separated numbers, one point
per row, an optional header row) or ``.npy`` file (a 2-D numeric array) with one of
``kmeans``, ``gmm``, ``spectral``, ``kmedoids``, ``sdp`` (k-means SDP, Burer–Monteiro),
``la-sdp`` (iLA-SDP) or ``sinkhorn`` (Sinkhorn k-means, balanced clusters). The features
are first standardised (``--scale standard``, the default: zero mean, unit variance per
column, so that a feature in large units does not decide the clusters alone), rescaled to
[0, 1] (``--scale minmax``) or used as given (``--scale none``); the summary says which.
It prints the scaling, cluster sizes, inertia (on the scaled features) and time; writes the
labels to ``--out`` as CSV (a header line ``label``, then one label per input point, in
input order) and a 2-D scatter plot (the first two principal components of the scaled
features above two features) to ``--plot``. On a terminal, progress lines go to stderr
(``--quiet`` silences them). Unreadable files, wrong shapes and non-numeric values are reported with
the file, the row and the column.

No data is lost or overwritten unasked: ``--out`` and ``--plot`` are checked before the
clustering starts (an existing file is kept unless ``--force`` is given; the input file
itself, a directory or a missing folder are refused: the folder is not created, so that a
mistyped path fails instead of scattering files), ``.npy`` files are read without
unpickling, the output files are written before the summary is printed, and every error
is one line on stderr (no traceback). Exit status: 0 success, 1 the method or writing an
output failed, 2 a problem with the input, the options or a missing optional package,
130 interrupted (Ctrl-C), 141 (128 + SIGPIPE) stdout was closed early (``| head``); the
output files are complete then.

Compiled programs are kept in JAX's persistent compilation cache, so a second run skips
most of the compilation: in ``$JAXCLUST_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/jaxclust/jax`` (``~/.cache/jaxclust/jax``). ``--no-cache`` or
``JAXCLUST_NO_CACHE=1`` turn it off; a ``JAX_COMPILATION_CACHE_DIR`` of your own is left
in charge.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["CLUSTER_METHODS", "SCALINGS", "build_parser", "cluster_points", "load_points",
           "main", "scale_features"]

#: The methods of ``jaxclust cluster``.
CLUSTER_METHODS = ("kmeans", "gmm", "spectral", "kmedoids", "sdp", "la-sdp", "sinkhorn")

#: The feature scalings of ``jaxclust cluster --scale`` (the first is the default).
SCALINGS = ("standard", "minmax", "none")

#: Exit statuses (see the module docstring).
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 128 + 13

#: Optional packages each demo section imports (``jaxclust demo`` checks them first), and
#: how to install them (never the heavy ``bench`` extra for one package).
DEMO_NEEDS = {"cluster": ("sklearn",), "ood": ("sklearn",), "diffusion": ("sklearn",)}
INSTALL_HINT = {
    "sklearn": 'pip install "jaxclust[data]" (scikit-learn)',
    "matplotlib": "pip install matplotlib",
    "flax": 'pip install "jaxclust[flax]"',
}


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
            holds a non-numeric or non-finite value (with its row and column), rows of
            different lengths, or values too large for float32 distances.
    """
    import numpy as np

    x = _read_points(path)
    _check_range(x, path)
    return x.astype(np.float32)


def _read_points(path: str):
    """``load_points`` in float64, before the float32 range check."""
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
    return x


def _check_range(x, path: str) -> None:
    import numpy as np

    # float32 squared distances overflow beyond ~1.8e19 / sqrt(d): refuse, don't compute Inf
    limit = float(np.sqrt(np.finfo(np.float32).max / (4.0 * x.shape[1])))
    big = np.abs(x) > limit
    if big.any():
        i, j = np.argwhere(big)[0]
        raise InputError(f"{path}: value {x[i, j]:.3g} at point {i + 1}, feature {j + 1} is "
                         f"too large for float32 distances (limit {limit:.2g}); rescale the "
                         "data (e.g. --scale standard) first.")


def scale_features(x, how: str = "standard"):
    """Rescale each feature (column) of ``x``; returns ``(scaled float64 array, what was
    done in words)``.

    ``"standard"``: subtract the mean, divide by the standard deviation; ``"minmax"``: map
    each column's range onto [0, 1]; ``"none"``: unchanged. A constant column is only
    centred (or set to 0 for ``minmax``): it carries no information.

    Example:
        >>> import numpy as np
        >>> from jaxclust.cli import scale_features
        >>> z, what = scale_features(np.array([[1.0, 100.0], [3.0, 300.0]]))
        >>> z.tolist()
        [[-1.0, -1.0], [1.0, 1.0]]
        >>> what
        'standardised each of the 2 features (zero mean, unit variance)'
    """
    import numpy as np

    x = np.asarray(x, np.float64)
    d = x.shape[1]
    if how == "none":
        return x, "none (features used as given)"
    # divide by the largest magnitude first: moments of values near 1e300 would overflow
    big = np.abs(x).max(0)
    x = x / np.where(big > 0, big, 1.0)
    if how == "standard":
        sd = x.std(0)
        z = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
        what = f"standardised each of the {d} features (zero mean, unit variance)"
    elif how == "minmax":
        lo, span = x.min(0), np.ptp(x, 0)
        z = (x - lo) / np.where(span > 0, span, 1.0)
        what = f"rescaled each of the {d} features to [0, 1]"
    else:
        raise InputError(f"--scale must be one of {SCALINGS}, got {how!r}.")
    return z, what


def _is_number(c: str) -> bool:
    try:
        float(c)
    except ValueError:
        return False
    return True


def _numeric_row(row) -> bool:
    return all(_is_number(c) for c in row)


def _check_problem(x, k: int, method: str) -> None:
    """The checks of ``cluster_points`` that need no computation (InputError)."""
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


#: The methods whose solver takes a progress ``callback(iteration, error)``.
CALLBACK_METHODS = ("kmeans", "gmm", "sinkhorn")


def cluster_points(x, k: int, method: str = "kmeans", seed: int = 0, *, callback=None):
    """Cluster ``x`` (``(n, d)``) into ``k`` groups with ``method`` (one of
    ``CLUSTER_METHODS``); returns the labels as a NumPy int array.

    ``callback(iteration, error)``, if given, is passed to the solvers that report progress
    (``CALLBACK_METHODS``) and ignored by the others.

    Raises:
        InputError: ``k`` is not in ``[2, n)`` or ``method`` is unknown.
    """
    import jax
    import numpy as np

    _check_problem(x, k, method)
    n = x.shape[0]
    key = jax.random.key(seed)
    if method == "kmeans":
        from jaxclust.cluster import kmeans

        labels = kmeans(x, k, key=key, n_init=4, callback=callback).labels
    elif method == "gmm":
        from jaxclust.cluster import gmm

        labels = gmm(x, k, key=key, callback=callback).labels
    elif method == "spectral":
        from jaxclust.cluster import spectral

        labels = spectral(x, k, key=key, affinity="knn", n_neighbors=min(10, n - 1)).labels
    elif method == "kmedoids":
        from jaxclust.cluster import kmedoids

        labels = kmedoids(x, k, key=key).labels
    elif method == "sdp":
        from jaxclust.sdp import BurerMonteiro, kmeans_sdp

        labels = kmeans_sdp(x, k, solver=BurerMonteiro(), key=key).labels
    elif method == "la-sdp":
        from jaxclust.sdp import la_sdp

        labels = la_sdp(x, k, key=key).labels
    elif method == "sinkhorn":
        from jaxclust.cluster import sinkhorn_kmeans

        labels = sinkhorn_kmeans(x, k, key=key, callback=callback).labels
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.min() < 0 or labels.max() >= k:
        raise MethodError(f"{method} returned invalid labels (range "
                          f"[{labels.min()}, {labels.max()}] for k = {k}); the data may be "
                          "degenerate or badly scaled: standardise it or try another method.")
    return labels


class _Progress:
    """Progress on stderr when it is a terminal (never in pipes, logs or captured output,
    where the only stderr line is an error): a line per phase and a live ``iteration i,
    change e`` line rewritten in place by the solver's callback. ``--quiet`` silences it."""

    def __init__(self, quiet: bool, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.live = False
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def phase(self, text: str) -> None:
        if not self.quiet and self.tty:
            self._end_live()
            print(f"jaxclust: {text}", file=self.stream, flush=True)

    def callback(self):
        """A solver callback for the live line (``None``: no program change) when useful."""
        if self.quiet or not self.tty:
            return None

        def report(iteration: int, error: float) -> None:
            self.live = True
            self.stream.write(f"\r\033[Kjaxclust:   iteration {iteration}, change {error:.3g}")
            self.stream.flush()

        return report

    def _end_live(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.live = False

    def done(self) -> None:
        self._end_live()


def _error_line(err: BaseException) -> str:
    """One line for an exception: the ``ValueError: ...`` carried by a JAX runtime error,
    else the first line of its message."""
    text = str(err)
    for line in text.splitlines():
        if "ValueError: " in line:
            return line[line.index("ValueError: ") + len("ValueError: "):].strip()
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _missing(module: str) -> bool:
    """``module`` cannot be imported (absent, or blocked by ``sys.modules[module] = None``);
    found by the import system's metadata, without importing it."""
    import importlib.util

    if module in sys.modules:
        return sys.modules[module] is None
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _need(module: str, what: str) -> None:
    if _missing(module):
        raise InputError(f"{what} needs {module}, which is not installed: "
                         f"{INSTALL_HINT.get(module, f'pip install {module}')}.")


def _import_error_line(err: ImportError) -> str:
    """One line for a missing package, with the command that installs it."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    if not name:
        return f"{type(err).__name__}: {_error_line(err)}"
    return (f"the package {name} is not installed: "
            f"{INSTALL_HINT.get(name, f'pip install {name}')}.")


def _cache_dir(environ=None) -> str | None:
    """Where ``jaxclust`` keeps JAX's persistent compilation cache, or None when off.

    ``JAXCLUST_NO_CACHE`` (any value but empty or ``0``) turns it off; ``JAXCLUST_CACHE_DIR``
    chooses the folder; else ``$XDG_CACHE_HOME/jaxclust/jax`` (``~/.cache/jaxclust/jax``).
    """
    env = os.environ if environ is None else environ
    if env.get("JAXCLUST_NO_CACHE", "") not in ("", "0"):
        return None
    if env.get("JAXCLUST_CACHE_DIR"):
        return env["JAXCLUST_CACHE_DIR"]
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxclust", "jax")


def _enable_compilation_cache(no_cache: bool) -> str | None:
    """Turn on JAX's persistent compilation cache (before the first compilation); returns
    the folder, or None when off, left to the user's ``JAX_COMPILATION_CACHE_DIR``, or not
    writable (the run goes on without it)."""
    if no_cache or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    path = _cache_dir()
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    # the CLI's programs compile in 0.1-2 s each: keep them all, not only those above 1 s
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return path


def _fail(command: str, err: BaseException | str, status: int) -> int:
    print(f"jaxclust {command}: error: {err}", file=sys.stderr)
    return status


def _cluster_command(args) -> int:
    import time

    import numpy as np

    progress = _Progress(args.quiet)
    outputs = [(args.out, "--out"), (args.plot, "--plot")]
    try:
        if args.out and args.plot and os.path.abspath(args.out) == os.path.abspath(args.plot):
            raise InputError("--out and --plot are the same file; give two paths.")
        for path, option in outputs:
            if path:
                check_output(path, option, inputs=[args.file], force=args.force)
        if args.plot:
            _need("matplotlib", "--plot")
        raw = _read_points(args.file)
        x, scaling = scale_features(raw, args.scale)
        if not np.all(np.isfinite(x)):  # pragma: no cover - scale_features guards overflow
            raise InputError(f"--scale {args.scale} produced non-finite values; try "
                             "--scale none.")
        _check_range(x, args.file)
        x = x.astype(np.float32)
        _check_problem(x, args.k, args.method)
    except InputError as err:
        return _fail("cluster", err, EXIT_USAGE)
    try:
        _enable_compilation_cache(args.no_cache)
        progress.phase(f"{args.method} on {x.shape[0]} points x {x.shape[1]} features, "
                       f"k = {args.k} (the first run compiles: a few seconds)")
        t0 = time.perf_counter()
        labels = cluster_points(x, args.k, args.method, args.seed,
                                callback=progress.callback())
        seconds = time.perf_counter() - t0
        progress.phase(f"done in {seconds:.2f} s")
    except InputError as err:
        progress.done()
        return _fail("cluster", err, EXIT_USAGE)
    except MethodError as err:
        progress.done()
        return _fail("cluster", err, EXIT_FAILED)
    except ImportError as err:
        progress.done()
        return _fail("cluster", _import_error_line(err), EXIT_USAGE)
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        progress.done()
        return _fail("cluster", f"{args.method} failed on {args.file}: {_error_line(err)} "
                     "(try another --method or --seed)", EXIT_FAILED)

    # the output files first: a closed stdout (`| head`) must not lose them
    status, written = 0, []
    if args.out:
        try:
            with open(args.out, "w") as f:
                f.write("label\n")
                f.write("".join(f"{int(v)}\n" for v in labels))
            written.append(f"labels written to {args.out}")
        except OSError as err:
            status = _fail("cluster", f"cannot write --out {args.out}: {err}", EXIT_FAILED)
    if args.plot:
        try:
            _plot_clusters(x, labels, args.plot,
                           f"{args.method}, k = {args.k}, {x.shape[0]} points",
                           args.scale)
            written.append(f"figure written to {args.plot}")
        except Exception as err:  # noqa: BLE001 - one line, never a traceback
            status = _fail("cluster", f"cannot write --plot {args.plot}: {_error_line(err)}",
                           EXIT_FAILED)
    sizes = np.bincount(labels, minlength=args.k)
    xs = x.astype(np.float64)
    centres = np.stack([xs[labels == j].mean(0) if s else np.zeros(x.shape[1])
                        for j, s in enumerate(sizes)])
    inertia = float(((xs - centres[labels]) ** 2).sum())
    space = "the given features" if args.scale == "none" else "the scaled features"
    print(f"{args.method}: {x.shape[0]} points, {x.shape[1]} features, k = {args.k}")
    print(f"scaling: {scaling}")
    print("cluster sizes: " + ", ".join(f"{j}: {s}" for j, s in enumerate(sizes)))
    print(f"inertia (sum of squared distances to cluster means, on {space}): {inertia:.6g}")
    print(f"time (compilation included): {seconds:.2f} s")
    for line in written:
        print(line)
    return status


_AXIS = {"standard": " (standardised)", "minmax": " (scaled to [0, 1])", "none": ""}


def _plot_clusters(x, labels, path, title, scale="none"):
    import numpy as np

    from jaxclust.demo import _pyplot

    plt = _pyplot()
    xc = x - x.mean(0)
    if x.shape[1] > 2:
        _, sv, vt = np.linalg.svd(xc, full_matrices=False)
        share = sv[:2] ** 2 / max(float((sv ** 2).sum()), np.finfo(np.float32).tiny)
        xc = xc @ vt[:2].T
        xlabel, ylabel = (f"principal component {i + 1} ({100 * share[i]:.0f}% of the "
                          "variance)" for i in range(2))
        title += (f"\nfirst two principal components of the {x.shape[1]} features"
                  f"{_AXIS[scale]}")
    elif x.shape[1] == 1:
        xc = np.c_[xc, np.zeros(len(xc))]
        xlabel, ylabel = "feature 1" + _AXIS[scale] + ", centred", "(one feature)"
    else:
        xlabel, ylabel = (f"feature {i + 1}{_AXIS[scale]}, centred" for i in range(2))
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    k = int(labels.max()) + 1
    colours = dict(cmap="tab10", vmin=0, vmax=9) if k <= 10 else dict(cmap="viridis")
    sc = ax.scatter(xc[:, 0], xc[:, 1], c=labels, s=8, linewidths=0, **colours)
    ax.legend(*sc.legend_elements(), title="cluster", fontsize=7, title_fontsize=8,
              loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _console():
    """A rich console whose closed stdout ends the command like any other: rich's default
    exits with status 1 (``SystemExit``); here the ``BrokenPipeError`` reaches ``main``
    (status 141, stdout silenced)."""
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(32, "Broken pipe")

    return _PipeConsole()


def _demo_command(args) -> int:
    from jaxclust.demo import SECTIONS

    chosen = [s.name for s in SECTIONS if args.sections is None or s.name in args.sections]
    try:
        if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
            raise InputError(f"--out {args.out} is a file; give a directory.")
        for name in chosen:
            for module in DEMO_NEEDS.get(name, ()):
                _need(module, f"the '{name}' section of the demo (its data sets)")
        if args.out:
            _need("matplotlib", "--out (saving figures)")
    except InputError as err:
        return _fail("demo", err, EXIT_USAGE)
    from jaxclust.demo import run_demo

    try:
        _enable_compilation_cache(args.no_cache)
        run_demo(seed=args.seed, out=args.out, sections=args.sections, console=_console())
    except BrokenPipeError:  # stdout closed (`| head`): main ends quietly
        raise
    except ImportError as err:
        return _fail("demo", _import_error_line(err), EXIT_USAGE)
    except OSError as err:
        return _fail("demo", f"{type(err).__name__}: {err}", EXIT_FAILED)
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        return _fail("demo", f"{_error_line(err)} (please report this)", EXIT_FAILED)
    return 0


def _version() -> str:
    try:
        from jaxclust import __version__

        return __version__
    except ImportError:  # pragma: no cover - only while the package is half-installed
        from importlib.metadata import version

        return version("jaxclust")


_EPILOG = """\
Compiled programs are cached on disk (JAX's persistent compilation cache), so a second run
skips most compilation: in $JAXCLUST_CACHE_DIR, else $XDG_CACHE_HOME/jaxclust/jax
(~/.cache/jaxclust/jax). --no-cache or JAXCLUST_NO_CACHE=1 turn it off.
Exit status: 0 ok, 1 the method or an output failed, 2 bad input/options or a missing
optional package, 130 interrupted, 141 stdout closed early (e.g. | head; files are written).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxclust`` command (imports neither JAX nor NumPy)."""
    from jaxclust.demo import SECTIONS

    parser = argparse.ArgumentParser(
        prog="jaxclust",
        description="Optimal transport, clustering, SDP, diffusion and OOD in JAX.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jaxclust {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-cache", action="store_true",
                        help="do not use the on-disk compilation cache (also: "
                        "JAXCLUST_NO_CACHE=1); see 'jaxclust --help'")

    demo = sub.add_parser(
        "demo", parents=[common],
        help="run a small real problem per pillar and print the results",
        description="Run a small real problem per pillar, print tables, optionally save "
        "figures. Needs scikit-learn (pip install \"jaxclust[data]\") for its data sets.",
    )
    demo.add_argument("--out", metavar="DIR", default=None,
                      help="directory to save figures to, created if missing (needs "
                      "matplotlib: pip install matplotlib)")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    demo.add_argument("--section", dest="sections", action="append",
                      choices=[s.name for s in SECTIONS], metavar="NAME",
                      help="run only this section (repeatable); one of: "
                      + ", ".join(s.name for s in SECTIONS))

    clu = sub.add_parser(
        "cluster", parents=[common],
        help="cluster the points of a .csv or .npy file",
        description="Cluster the points (rows) of a .csv or .npy file and print a summary "
        "(the scaling, cluster sizes, inertia, time). On a terminal, progress goes to stderr.",
    )
    clu.add_argument("file", metavar="FILE", help="points: .csv (one per row) or .npy (2-D)")
    clu.add_argument("--k", type=int, required=True, help="number of clusters")
    clu.add_argument("--method", default="kmeans", choices=CLUSTER_METHODS,
                     help="clustering method (default: kmeans)")
    clu.add_argument("--scale", default=SCALINGS[0], choices=SCALINGS,
                     help="feature scaling before clustering: standard (zero mean, unit "
                     "variance per feature; the default), minmax (each feature to [0, 1]) "
                     "or none (as given)")
    clu.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    clu.add_argument("--out", metavar="CSV", default=None,
                     help="write the labels as CSV: a header line 'label', then one label "
                     "per input point, in input order (a new file unless --force; the "
                     "folder must exist)")
    clu.add_argument("--plot", metavar="PNG", default=None,
                     help="save a 2-D scatter plot of the scaled points (first two principal "
                     "components above 2 features; needs matplotlib: pip install "
                     "matplotlib; a new file unless --force)")
    clu.add_argument("--force", action="store_true",
                     help="overwrite existing --out / --plot files (never the input file)")
    clu.add_argument("--quiet", "-q", action="store_true",
                     help="no progress lines on stderr (errors are still reported)")
    return parser


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's final flush
    does not raise again (Python's documented recipe for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - exotic stdout
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxclust`` command; returns the exit status.

    Example:
        >>> from jaxclust.cli import main
        >>> main([])  # doctest: +ELLIPSIS
        usage: jaxclust ...
        0
    """
    try:
        status = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("\njaxclust: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo_command(args)
    if args.command == "cluster":
        return _cluster_command(args)
    parser.print_help(sys.stdout)
    return 0
