"""The architecture page's import tables are the real imports (issue 17 §4).

``docs/architecture.md`` holds two generated tables between markers: which jaxclust units
import which (at import time, and on first use inside functions), and where the optional or
heavy third-party packages are imported. This test recomputes them from the source (``ast``,
no import) and fails when the page disagrees; it also checks the layering rule the page
states. To refresh the page after a change of imports::

    python tests/test_import_graph.py
"""

from __future__ import annotations

import ast
import functools
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxclust"
PAGE = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- import-table:begin -->", "<!-- import-table:end -->"

# the layers of the page: a unit may import only units of its own layer or below
LAYERS = {
    "_core": 0,
    "ot": 1, "metrics": 1, "train": 1, "cluster": 1, "ood": 1, "sdp": 1, "diffusion": 1,
    "data": 1, "graph": 1,
    "nn": 2, "distributed": 2, "sklearn": 2,
    "demo": 3, "cli": 3, "__main__": 3, "jaxclust": 3,
}
THIRD_PARTY = ("equinox", "flax", "optax", "rich", "sklearn", "matplotlib")


def _unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts == ("__init__",):
        return "jaxclust"
    return parts[0]


def _package_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1]  # the package a relative import starts from (also for __init__)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, pkg: list[str]):
    """(module name, when) for every import: ``"eager"`` (module level), ``"lazy"`` (inside a
    function); imports under ``if TYPE_CHECKING:`` are skipped (they never run)."""
    out = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, lazy)
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.Lambda))
            when = "lazy" if inner else "eager"
            if isinstance(child, ast.Import):
                out.extend((a.name, when) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg[:len(pkg) - child.level + 1]
                    if child.module:
                        out.append((".".join(base + [child.module]), when))
                    else:
                        out.extend((".".join(base + [a.name]), when) for a in child.names)
                else:
                    out.append((child.module or "", when))
            visit(child, inner)

    visit(tree, False)
    return out


@functools.cache
def import_graph():
    """``{unit: {imported unit: "eager" | "lazy"}}`` and ``{package: {unit: when}}``."""
    units: dict[str, dict[str, str]] = defaultdict(dict)
    third: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        units.setdefault(unit, {})
        for name, when in _imports(ast.parse(path.read_text()), _package_of(path)):
            parts = name.split(".")
            if parts[0] == "jaxclust":
                target = "jaxclust" if len(parts) == 1 else parts[1]
                if target != unit and units[unit].get(target) != "eager":
                    units[unit][target] = when
            elif parts[0] in THIRD_PARTY and third[parts[0]].get(unit) != "eager":
                third[parts[0]][unit] = when
    return units, third


def _fmt(deps: dict[str, str]) -> str:
    eager = sorted(u for u, w in deps.items() if w == "eager")
    lazy = sorted(u for u, w in deps.items() if w == "lazy")
    return (", ".join(f"`{u}`" for u in eager) or "—",
            ", ".join(f"`{u}`" for u in lazy) or "—")


def render_tables() -> str:
    units, third = import_graph()
    order = sorted(units, key=lambda u: (LAYERS.get(u, 9), u))
    lines = ["| layer | unit | imports when imported | imports on first use |",
             "|---|---|---|---|"]
    for u in order:
        eager, lazy = _fmt(units[u])
        lines.append(f"| {LAYERS.get(u, '?')} | `{u}` | {eager} | {lazy} |")
    lines += ["", "| package | imported when imported by | imported on first use by |",
              "|---|---|---|"]
    for pkg in THIRD_PARTY:
        eager, lazy = _fmt(third.get(pkg, {}))
        lines.append(f"| `{pkg}` | {eager} | {lazy} |")
    return "\n".join(lines)


def _page_tables() -> str:
    text = PAGE.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def test_architecture_page_tables_are_the_real_imports():
    expected = render_tables()
    assert _page_tables() == expected, (
        "docs/architecture.md's import tables are out of date; run "
        "`python tests/test_import_graph.py` to regenerate them. Expected:\n" + expected)


def test_imports_respect_the_layers():
    units, _ = import_graph()
    assert set(units) <= set(LAYERS), f"units without a layer: {set(units) - set(LAYERS)}"
    upward = [f"{u} -> {t}" for u, deps in units.items() for t in deps
              if LAYERS[t] > LAYERS[u] and u != "jaxclust"]
    assert not upward, f"imports from a higher layer: {upward}"


# where the page says the optional and heavy packages may be imported
ALLOWED = {"flax": {"nn"}, "sklearn": {"sklearn", "data", "demo"},
           "optax": {"train", "demo", "cli"}, "rich": {"train", "demo", "cli"},
           "matplotlib": {"demo", "cli"}}


def test_optional_packages_stay_where_the_page_says():
    _, third = import_graph()
    stray = {pkg: sorted(set(third.get(pkg, {})) - allowed) for pkg, allowed in ALLOWED.items()}
    assert not any(stray.values()), f"imported outside their units: {stray}"


def test_import_graph_sees_imports():
    """The parser finds what it must (the test can fail): a relative, an absolute and a
    function-level import, and skips TYPE_CHECKING blocks."""
    src = ("from typing import TYPE_CHECKING\nfrom ..ot import sinkhorn\nimport jaxclust.sdp\n"
           "if TYPE_CHECKING:\n    from ..nn import flax\n"
           "def f():\n    import optax\n    from . import _x\n")
    got = _imports(ast.parse(src), ["jaxclust", "cluster"])
    assert ("jaxclust.ot", "eager") in got and ("jaxclust.sdp", "eager") in got
    assert ("optax", "lazy") in got and ("jaxclust.cluster._x", "lazy") in got
    assert not [n for n, _ in got if n.startswith("jaxclust.nn")]


if __name__ == "__main__":  # rewrite the page's tables from the code
    text = PAGE.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(f"{head}{BEGIN}\n\n{render_tables()}\n\n{END}{tail}")
    print(f"updated {PAGE.relative_to(ROOT)}", file=sys.stderr)
