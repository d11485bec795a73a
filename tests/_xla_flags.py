"""The test suite's compile-time XLA flags, kept to those the installed XLA knows.

An ``XLA_FLAGS`` entry that the installed XLA does not know aborts the process at start-up
(``F... parse_flags_from_env.cc: Unknown flag in XLA_FLAGS``), before any test runs: jaxlib
0.11 removed ``--xla_cpu_use_fusion_emitters`` (the classic elemental emitters are gone).
This module imports no JAX (the flags must be set before JAX creates its CPU client). Each
flag has the jaxlib releases in which it is known to exist (read from the strings of the
jaxlib 0.4.35 and 0.10.2 binaries, 2026-12-05: 0.4.35, the oldest release pyproject.toml
allows, lacks ``--xla_cpu_use_fusion_emitters``); for another release, or an unknown one,
one subprocess per candidate set tries the flags not known there.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

#: the suite's compile-time flags (root conftest.py says why each pays)
TEST_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
              "--xla_cpu_parallel_codegen_split_count=1")
#: [first, past-last) jaxlib releases in which each flag is known to exist
_KNOWN_IN = {
    "--xla_backend_optimization_level": ((0, 4, 35), (0, 11)),
    "--xla_cpu_use_fusion_emitters": ((0, 10), (0, 11)),
    "--xla_cpu_parallel_codegen_split_count": ((0, 4, 35), (0, 11)),
}


def _jaxlib_version() -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            return None
        parts.append(int(digits))
    return tuple(parts)


def _starts(flags: list[str]) -> bool:
    """Whether a JAX process with ``flags`` in ``XLA_FLAGS`` creates its CPU client."""
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env,
                         capture_output=True, timeout=120)
    return run.returncode == 0


def supported(flags=TEST_FLAGS) -> list[str]:
    """The entries of ``flags`` that the installed XLA accepts."""
    version = _jaxlib_version()

    def known(flag):
        lo, hi = _KNOWN_IN.get(flag.split("=")[0], ((), ()))
        return version is not None and lo <= version < hi

    flags = list(flags)
    unknown = [f for f in flags if not known(f)]
    if not unknown or _starts(unknown):
        return flags
    return [f for f in flags if known(f) or _starts([f])]


def extend_environment() -> None:
    """Append the supported test flags that ``XLA_FLAGS`` lacks (no-op when all are set)."""
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in TEST_FLAGS if f.split("=")[0] not in current]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([current, *supported(missing)]).strip()
