"""pytest configuration for the whole repository (tests/ and the doctests of jaxclust/).

The suite is dominated by XLA compilation (hundreds of small programs, each run on a tiny
problem), not by execution. Three XLA options cut the CPU compile time, and only it:

* ``--xla_backend_optimization_level=0``: LLVM's optimisation passes are most of the
  codegen time (about 40% less compile time);
* ``--xla_cpu_use_fusion_emitters=false``: fused computations are emitted by XLA's
  classic elemental emitter instead of the newer MLIR fusion emitters, which are slower to
  compile (about a third less time on top of the first flag, measured on
  tests/ot/test_sinkhorn.py + tests/metrics/test_clustering.py: 53 s -> 35 s);
* ``--xla_cpu_parallel_codegen_split_count=1``: one object file per program instead of
  several compiled in parallel (the workers already use the cores). Each object file maps
  its own code and data regions: 20 small Sinkhorn + k-means program pairs mapped 30.6
  regions per pair by default and 9.6 with the flag (about 7% quicker to compile as well,
  2026-12-05), so the memory-map guard below drops the compilation caches a third as often.

All three change how the machine code is generated, not what it computes (no fast-math, the
same HLO); benchmarks, examples and users keep XLA's defaults. The flags are added before
JAX creates its CPU client (lazily, at the first computation) and appended to any
``XLA_FLAGS`` already set (e.g. ``--xla_force_host_platform_device_count``; the 8-device
subprocesses of tests/distributed inherit them). Only the flags the installed XLA knows are
added (an unknown ``XLA_FLAGS`` entry aborts the process; jaxlib 0.4.35 lacks the second
one and 0.11 dropped it): ``tests/_xla_flags.py``. Set ``JAXCLUST_TEST_XLA_OPT=1`` to test with
XLA's default compilation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests._xla_flags import extend_environment

if os.environ.get("JAXCLUST_TEST_XLA_OPT") != "1":
    extend_environment()


# One on-disk compilation cache per test session, shared by the xdist workers (they inherit
# the variables from the controller, whose import of this file comes first) and removed at the
# end of the session: a program compiled once (by the other worker, or before conftest's
# memory-map guard below dropped the in-memory caches, or as the same HLO under another
# `jax.jit` wrapper) is read back instead of recompiled. Measured on the 2-core EPYC,
# 2026-12-05: about 3,500 of 12,300 compilations of `make test` were cache hits, and the run
# took 485 s instead of 520 s. The cache key is the HLO, the compile options and flags and
# the JAX version, so a hit is the executable the compiler would have built. The session
# starts empty (nothing carries over between runs); a JAX_COMPILATION_CACHE_DIR set by the
# caller is used as it is, and JAXCLUST_TEST_COMPILE_CACHE=0 turns the cache off.
_SESSION_CACHE: str | None = None
if (os.environ.get("JAXCLUST_TEST_COMPILE_CACHE", "1") != "0"
        and not os.environ.get("JAX_COMPILATION_CACHE_DIR")):
    import tempfile

    try:
        _SESSION_CACHE = tempfile.mkdtemp(prefix="jaxclust-test-xla-cache-")
    except OSError:  # no writable temporary directory: the suite runs without the cache
        _SESSION_CACHE = None
    if _SESSION_CACHE is not None:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = _SESSION_CACHE
        # every program, however quick to compile (the suite's are mostly small)
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


def _memoize_jax_frame_filter():
    """Remember JAX's answer to "is this source file one of JAX's own?" per file name.

    ``equinox.error_if``, traced (every value check of jaxclust under ``jit``, ``vmap`` or
    ``grad``), records the Python stack, and asks ``jax._src.traceback_util.include_frame``
    about each frame; so does JAX when it filters an exception's traceback. The answer
    compares the file with each of ~40 registered JAX and equinox paths by ``os.path``
    arithmetic and ``os.path.samefile`` (two ``stat`` calls each): 0.5 ms per frame, and a
    test's stack is ~60 frames deep (pytest, pluggy). Measured 2026-12-05 on the sinkhorn
    and k-means cases of ``tests/test_conformance.py::TestJitAndVmap``: 4,781 calls, 2.67 s
    of 65.8 s (4%); 0.04 s memoised. The answer only changes
    when a path is registered (the list only grows), so it is kept per (file, number of
    registered paths): the same answers, each computed once. Skipped when this JAX lacks the
    function or the list (the suite then runs unchanged, only slower).
    """
    try:
        from jax._src import traceback_util
    except ImportError:
        return
    original = getattr(traceback_util, "include_filename", None)
    paths = getattr(traceback_util, "_exclude_paths", None)
    if (not callable(original) or not isinstance(paths, list)
            or getattr(original, "memoized_by_jaxclust_tests", False)):
        return
    answers: dict[tuple[str, int], bool] = {}

    def include_filename(filename):
        key = (filename, len(paths))
        answer = answers.get(key)
        if answer is None:
            answer = answers[key] = original(filename)
        return answer

    include_filename.memoized_by_jaxclust_tests = True
    traceback_util.include_filename = include_filename


def pytest_configure(config):
    import sys

    if _SESSION_CACHE is not None and "jax" in sys.modules:  # imported before this file
        import jax

        jax.config.update("jax_compilation_cache_dir", _SESSION_CACHE)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    _memoize_jax_frame_filter()


def _exit_without_teardown():  # pragma: no cover - runs after the session
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def pytest_unconfigure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # An xdist worker has sent every report by now. Tearing down its interpreter took
        # 6-8 s after a `make test` (JAX's exit handler clears the backends and caches of
        # thousands of compiled programs, then the interpreter frees the rest), and the
        # controller waits up to 10 s (xdist's EXIT_TIMEOUT) for both workers to exit before
        # it ends the session: measured 2026-12-05, 10.1 s between the last test and the
        # end. Registered last, this exit handler runs first and skips the rest.
        import atexit

        atexit.register(_exit_without_teardown)
    if _SESSION_CACHE is not None:
        import shutil

        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


_TESTS = Path(__file__).resolve().parent / "tests"


def pytest_ignore_collect(collection_path, config):
    """Only ``test_*.py`` (and conftest / package files) are collected under ``tests/``.

    ``make test`` runs the tests and the doctests of ``jaxclust/`` in one session
    (``--doctest-modules``, which would import every module under the given paths): the
    helpers and subprocess scripts of ``tests/`` are not doctest modules, and the distributed
    scripts configure JAX for other processes at import. Plain test runs never collect them.
    """
    p = Path(collection_path)
    if (p.suffix == ".py" and _TESTS in p.parents
            and not (p.name.startswith("test_") or p.name in ("conftest.py", "__init__.py"))):
        return True
    return None


@pytest.fixture(autouse=True)
def _doctests_as_users_run_them(request):
    """The doctests of ``jaxclust/`` run with JAX's default rank promotion, as a user's code
    does; ``tests/conftest.py`` makes implicit rank promotion an error for the tests."""
    if type(request.node).__name__ != "DoctestItem":
        yield
        return
    import jax

    with jax.numpy_rank_promotion("allow"):
        yield


# XLA:CPU maps about 14 memory regions per compiled program (code and data of its object
# files), and Linux refuses a process more than vm.max_map_count (65,530 by default) regions:
# a worker of `make test` compiles thousands of programs, and on a 2-core AMD EPYC one
# reached 59,000 regions and the next compilation segfaulted inside LLVM (a crashed worker
# fails the run). Every _MAPS_EVERY items the worker counts its regions and, above
# _MAPS_LIMIT, drops JAX's compilation caches (the programs are unmapped; later tests
# recompile what they need). Dropping them is not free: 7.1 s for a worker's ~3,000 programs
# (2026-12-05), and what is dropped and needed later is compiled or read back again. In a
# `make test` of that day one worker dropped them at 30,200 regions and added 8,800 more after
# (about 39,000 without the drop), the other ended at 24,500, and no count exceeded the one
# before by more than 1,530; so the caches are dropped above 45,000 (that run would not have
# needed it), 20,000 regions below the kernel's limit.
_MAPS_EVERY = 10
_MAPS_LIMIT = 45_000
_items_run = 0


def _mapped_regions() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


def pytest_runtest_teardown(item, nextitem):
    global _items_run
    _items_run += 1
    if _items_run % _MAPS_EVERY and (nextitem is None or nextitem.path == item.path):
        return
    if _mapped_regions() > _MAPS_LIMIT:
        import gc

        import jax

        jax.clear_caches()
        gc.collect()
