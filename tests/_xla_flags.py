"""The test suite's compile-time XLA flags, kept to those the installed XLA knows.

An ``XLA_FLAGS`` entry that the installed XLA does not know aborts the process at start-up
(``F... parse_flags_from_env.cc: Unknown flag in XLA_FLAGS``), before any test runs: jaxlib
0.11 removed ``--xla_cpu_use_fusion_emitters`` (the classic elemental emitters are gone).
This module imports no JAX (the flags must be set before JAX creates its CPU client). For a
jaxlib older than 0.11 the flags below are known to exist (the project's tested releases);
for a newer one, or an unknown version, one subprocess per candidate set tries them.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

#: the suite's compile-time flags (root conftest.py says why each pays)
TEST_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
_KNOWN_BEFORE = (0, 11)  # every flag of TEST_FLAGS exists in jaxlib < 0.11


def _jaxlib_version() -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in text.split(".")[:2]:
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
    flags = list(flags)
    version = _jaxlib_version()
    if version is not None and version < _KNOWN_BEFORE:
        return flags
    if not flags or _starts(flags):
        return flags
    return [f for f in flags if _starts([f])]


def extend_environment() -> None:
    """Append the supported test flags that ``XLA_FLAGS`` lacks (no-op when all are set)."""
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in TEST_FLAGS if f.split("=")[0] not in current]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([current, *supported(missing)]).strip()
