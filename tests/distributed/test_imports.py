"""``jaxclust.distributed`` reaches other packages only through their package-internal public
names (issue 17 §1): no ``from ..x import _private``, no import from another subpackage's
underscored module, and no collective outside ``_core.collectives`` (the sharded programs'
``shard_map`` specs aside)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "jaxclust" / "distributed"


def _cross_package_private_imports() -> list[str]:
    bad = []
    for path in sorted(PKG.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level < 2:
                continue  # absolute imports (jax ...) and imports within distributed/
            parts = (node.module or "").split(".")
            names = [a.name for a in node.names]
            if any(p.startswith("_") and p != "_core" for p in parts) or any(
                    n.startswith("_") and n != "_core" for n in names):
                bad.append(f"{path.name}:{node.lineno}: from {'.' * node.level}"
                           f"{node.module or ''} import {', '.join(names)}")
    return bad


def test_no_private_name_of_another_package():
    # _core is the shared-internals package every layer imports by design (DESIGN.md)
    assert _cross_package_private_imports() == []


def test_collectives_only_through_core():
    """Reductions go through _core.collectives (psum, pmax, all-gathers of candidates): no
    jax.lax collective is called in distributed/ itself."""
    calls = []
    for path in sorted(PKG.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in
                    ("psum", "pmax", "pmin", "all_gather", "axis_index", "ppermute")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "lax"):
                calls.append(f"{path.name}:{node.lineno}: jax.lax.{node.attr}")
    assert calls == []
