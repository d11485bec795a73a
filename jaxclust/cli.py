"""The ``jaxclust`` command.

Usage::

    jaxclust --version
    jaxclust demo [--out DIR] [--seed N] [--section NAME ...]

``jaxclust demo`` runs one small, real problem per pillar of the library (see
[`jaxclust.demo`][jaxclust.demo]), prints a table per section and, with ``--out``, saves
figures there (matplotlib is then needed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


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
    parser.print_help(sys.stdout)
    return 0
