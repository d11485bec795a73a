"""Shared helpers for the benchmark scripts: machine description, interleaved timing, tables.

Protocol (DESIGN.md, Benchmarks): every library runs in one process on the same data; the
first call is timed separately (it includes compilation for jitted code), one warm-up call
follows, then rounds in which each library runs once in turn (interleaved, so load changes on
the machine hit everyone alike); the reported time is the median over the rounds.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "?"


def _git_commit() -> str:
    if os.environ.get("JAXCLUST_COMMIT"):  # a copy of the tree without .git (device runs)
        return os.environ["JAXCLUST_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine_lines(packages=("jax", "jaxlib", "ott-jax", "POT", "numpy")) -> list[str]:
    """Markdown bullet lines describing the machine and the software versions."""
    import jax

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * usable
    warn = [f"- **The machine was busy (1-min load {os.getloadavg()[0]:.1f} on {usable} cores) "
            "when this run started: timings are noisy; rerun on an idle machine.**"] if busy else []
    return warn + [
        f"- date: {now}; jaxclust commit `{_git_commit()}`",
        f"- CPU: {_cpu_model()}, {cores} logical cores ({usable} usable), {_mem_gib()} RAM; "
        f"load average at start (1/5/15 min): {load}",
        f"- jax backend: {jax.default_backend()} ({jax.devices()[0].device_kind}); "
        f"Python {platform.python_version()}",
        f"- {versions}",
    ]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall time of one call; ``fn`` must block until its result is ready."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleaved(runners: dict[str, Callable[[], object]], repeats: dict[str, int]):
    """Run the ``runners`` in rounds, each once per round while it still needs samples.

    Returns ``({name: [seconds, ...]}, {name: last output})``.
    """
    times = {k: [] for k in runners}
    outs = {}
    for r in range(max(repeats.values(), default=0)):
        for name, fn in runners.items():
            if r < repeats[name]:
                t, outs[name] = timed(fn)
                times[name].append(t)
    return times, outs


class Protocol:
    """Warm-up, then interleaved timed rounds (the benchmark protocol of DESIGN.md).

    ``add(name, prepare)`` calls ``prepare()`` (timed as the *compile* time: for jax, build
    the executable with ``jax.jit(f).lower(*args).compile()``) which returns a zero-argument
    ``call`` that blocks until its result is ready; ``call`` then runs once as warm-up
    (timed too; ``add`` returns its output). ``run()`` times the calls in interleaved rounds:
    each entry is sampled while its samples fit in ``budget`` seconds (between 1 and
    ``max_runs``). An entry whose warm-up alone took longer than ``budget`` is not run again:
    its warm-up run is its single sample (the compilation was already excluded).
    """

    def __init__(self, budget: float, max_runs: int):
        self.budget, self.max_runs = budget, max_runs
        self.calls, self.info = {}, {}

    def add(self, name: str, prepare: Callable[[], Callable[[], object]]):
        t_compile, call = timed(prepare)
        t_first, out = timed(call)
        self.calls[name] = call
        self.info[name] = dict(compile=t_compile, first=t_first, out=out)
        return out

    def run(self) -> dict[str, dict]:
        """``{name: {compile, first, times, out}}`` (``out``: the last call's output)."""
        long = {k for k, v in self.info.items() if v["first"] > self.budget}
        reps = {k: 0 if k in long else repeats_for(self.info[k]["first"], self.budget, 1,
                                                    self.max_runs) for k in self.calls}
        times, outs = interleaved(self.calls, reps)
        for k, v in self.info.items():
            v["times"] = [v["first"]] if k in long else times[k]
            v["out"] = outs.get(k, v["out"])
        return self.info


def jax_prepare(fn: Callable, *args) -> Callable[[], Callable[[], object]]:
    """``prepare`` for :class:`Protocol`: AOT-compile ``jax.jit(fn)`` for ``args``; the call
    returns the outputs as numpy arrays (which blocks until they are ready)."""
    import jax
    import numpy as np

    def prepare():
        compiled = jax.jit(fn).lower(*args).compile()
        return lambda: jax.tree_util.tree_map(np.asarray, compiled(*args))

    return prepare


def repeats_for(t_one: float, budget: float, lo: int = 1, hi: int = 7) -> int:
    """How many timed repetitions fit in ``budget`` seconds (clamped to [lo, hi])."""
    return int(min(hi, max(lo, budget // max(t_one, 1e-9))))


def median(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_s(t: float | None) -> str:
    """Seconds in a compact human form."""
    if t is None or t != t:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1.0:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table (numbers right-aligned)."""
    def cell(v):
        return str(v).replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
