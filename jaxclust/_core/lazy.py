"""Lazy package attributes (PEP 562), shared by ``jaxclust`` and ``jaxclust.cluster``.

Imports nothing beyond the standard library, so ``import jaxclust`` stays free of JAX.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, namespace: dict[str, Any],
                    table: dict[str, tuple[str, str | None]]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``table`` maps a public name to
    ``(module, attribute)``; ``module`` may be relative to ``package`` (``".lloyd"``) and
    ``attribute`` ``None`` for the module itself. The first access imports the module and
    stores the value in ``namespace`` (the package's ``globals()``), so later accesses skip
    ``__getattr__``."""

    def __getattr__(name: str) -> Any:
        try:
            module_name, attr = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(module_name, package)
        value = module if attr is None else getattr(module, attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
