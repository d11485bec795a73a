"""The sections of ``jaxclust demo``, one module per pillar.

A section is a function ``run(ctx: DemoContext) -> None`` that solves a few small problems
on real or synthetic data, prints a table to ``ctx.console`` and, when ``ctx.out`` is set,
saves figures there. Sections are listed in [`SECTIONS`][jaxclust.demo.SECTIONS] by module
path and imported only when they run, so a pillar with heavy optional dependencies costs
nothing until it is asked for. To add a pillar, write ``jaxclust/demo/<pillar>.py`` with a
``run`` function and append a [`Section`][jaxclust.demo.Section] here.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is a runtime dependency, but keep imports cheap
    from rich.console import Console

__all__ = ["SECTIONS", "DemoContext", "Section", "run_demo"]


@dataclass(frozen=True)
class DemoContext:
    """What every demo section receives.

    Attributes:
        seed: integer seed; a section derives its PRNG keys from it.
        out: directory for figures, or ``None`` to skip plotting (and matplotlib).
        console: the rich console to print tables to.
    """

    seed: int
    out: Path | None
    console: Console


@dataclass(frozen=True)
class Section:
    """One entry of the demo.

    Attributes:
        name: short name used on the command line (``jaxclust demo --section ot``).
        title: one-line heading printed before the section runs.
        module: module path holding a ``run(ctx: DemoContext) -> None`` function.
    """

    name: str
    title: str
    module: str

    def run(self, ctx: DemoContext) -> None:
        """Import the section's module and run it."""
        importlib.import_module(self.module).run(ctx)


SECTIONS: tuple[Section, ...] = (
    Section("ot", "Optimal transport: handwritten 3s onto 8s", "jaxclust.demo.ot"),
    Section("cluster", "Clustering: iris, wine and digits", "jaxclust.demo.cluster"),
    Section("sdp", "SDP relaxations: exact recovery and heterogeneous clusters",
            "jaxclust.demo.sdp"),
    Section("ood", "OOD detection: MLP on digits 0-4 vs digits 5-9, image patches, noise",
            "jaxclust.demo.ood"),
    Section("diffusion", "Diffusion: score models on a 2-D mixture and digits",
            "jaxclust.demo.diffusion"),
    Section("graph", "Graphs: a heat-geodesic embedding unrolls a Swiss roll",
            "jaxclust.demo.graph"),
)
"""The demo sections, in the order they run."""


def run_demo(
    *,
    seed: int = 0,
    out: str | Path | None = None,
    sections: Sequence[str] | None = None,
    console: Console | None = None,
) -> None:
    """Run the demo sections.

    Args:
        seed: integer seed shared by all sections.
        out: directory for figures (created if missing), or ``None`` for tables only.
        sections: names of the sections to run, in :data:`SECTIONS` order; ``None`` runs all.
        console: rich console to print to; a new one by default.

    Raises:
        ValueError: if a name in ``sections`` is not a known section.
    """
    from rich.console import Console
    from rich.rule import Rule

    console = Console() if console is None else console
    known = {s.name for s in SECTIONS}
    if sections is not None:
        unknown = sorted(set(sections) - known)
        if unknown:
            raise ValueError(
                f"unknown demo section(s) {unknown}; choose from {sorted(known)}."
            )
    chosen = [s for s in SECTIONS if sections is None or s.name in sections]
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(seed=int(seed), out=out_dir, console=console)
    for section in chosen:
        console.print(Rule(f"[bold]{section.title}"))
        start = time.perf_counter()
        section.run(ctx)
        console.print(f"[dim]section '{section.name}' took {time.perf_counter() - start:.1f} s")
    if out_dir is not None:
        console.print(f"Figures saved under [bold]{out_dir}/")


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (figures go to files)."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("saving figures needs matplotlib: pip install matplotlib (or "
                          "run without an output folder for the tables only)") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
