"""pytest configuration for the whole repository (tests/ and the doctests of jaxclust/).

The suite is dominated by XLA compilation (hundreds of small programs, each run on a tiny
problem), not by execution. LLVM's optimisation passes are most of the CPU compile time, so
the tests run with ``--xla_backend_optimization_level=0``: compile times drop by about 40%
and the programs compute the same values (no fast-math; only the machine code is less
tuned). Benchmarks, examples and users keep XLA's default optimisation. The flag is added
before JAX creates its CPU client (lazily, at the first computation), and appended to any
``XLA_FLAGS`` already set (e.g. ``--xla_force_host_platform_device_count``). Set
``JAXCLUST_TEST_XLA_OPT=1`` to test with full optimisation.
"""

from __future__ import annotations

import os

_FLAG = "--xla_backend_optimization_level=0"
if os.environ.get("JAXCLUST_TEST_XLA_OPT") != "1" and _FLAG not in os.environ.get("XLA_FLAGS",
                                                                                    ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()
