"""Regenerate the fuzzer's table: ``python -m tests.fuzz.report [--fast] [--violations]
[NAME ...]``.

Runs every public function's mutations (eagerly, under ``jax.jit`` and ``jax.vmap`` on all
traced arguments; ``--fast``: the fast suite's plan) and prints, per subpackage, the runs,
clear errors, flagged results (``converged=False``), accepted finite results and
violations; ``--violations`` also lists each violation. Names restrict the run
(e.g. ``cluster.kmeans``). Exit status 1 when there is a violation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "XLA_FLAGS" not in os.environ:  # the test suite's compile-time flags (tests/_xla_flags.py)
    from tests._xla_flags import extend_environment

    extend_environment()


def main(argv=None) -> int:
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")  # as in the test suite
    from . import harness
    from .test_fuzz import FAST_KINDS, FAST_TRACED

    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.report")
    ap.add_argument("names", nargs="*")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--violations", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    specs = harness.build_specs(set(args.names) or None)
    missing = sorted(set(args.names or harness.public_functions()) - set(specs))
    outcomes = []
    for name, spec in specs.items():
        if args.fast and name not in FAST_TRACED:
            runner = harness.Runner(spec, base=False)
            outcomes += [runner.eager(m) for m in harness.mutations(spec)
                         if m.kind in FAST_KINDS]
        else:
            outcomes += harness.run_spec(spec, jit_args=None if not args.fast else 1)
    print(harness.format_table(harness.summary(outcomes)))
    print(f"{len(specs)} functions, {time.perf_counter() - t0:.0f} s"
          + (f"; without a base call: {missing}" if missing else ""))
    bad = [o for o in outcomes if o.violation]
    if args.violations:
        for o in bad:
            print(o.line())
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
