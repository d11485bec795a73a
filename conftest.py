"""pytest configuration for the whole repository (tests/ and the doctests of jaxclust/).

The suite is dominated by XLA compilation (hundreds of small programs, each run on a tiny
problem), not by execution. Two XLA options cut the CPU compile time, and only it:

* ``--xla_backend_optimization_level=0``: LLVM's optimisation passes are most of the
  codegen time (about 40% less compile time);
* ``--xla_cpu_use_fusion_emitters=false``: fused computations are emitted by XLA's
  classic elemental emitter instead of the newer MLIR fusion emitters, which are slower to
  compile (about a third less time on top of the first flag, measured on
  tests/ot/test_sinkhorn.py + tests/metrics/test_clustering.py: 53 s -> 35 s).

Both change how the machine code is generated, not what it computes (no fast-math, the
same HLO); benchmarks, examples and users keep XLA's defaults. The flags are added before
JAX creates its CPU client (lazily, at the first computation) and appended to any
``XLA_FLAGS`` already set (e.g. ``--xla_force_host_platform_device_count``; the 8-device
subprocesses of tests/distributed inherit them). Only the flags the installed XLA knows are
added (an unknown ``XLA_FLAGS`` entry aborts the process; jaxlib 0.11 dropped the second
one): ``tests/_xla_flags.py``. Set ``JAXCLUST_TEST_XLA_OPT=1`` to test with
XLA's default compilation.
"""

from __future__ import annotations

import os

from tests._xla_flags import extend_environment

if os.environ.get("JAXCLUST_TEST_XLA_OPT") != "1":
    extend_environment()
