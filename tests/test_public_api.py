"""The public surface: every exported name imports, and the version is consistent."""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from pathlib import Path

import pytest

import jaxclust

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = ["jaxclust", "jaxclust.ot", "jaxclust.cluster", "jaxclust.metrics",
                  "jaxclust.sdp", "jaxclust.ood", "jaxclust.diffusion",
                  "jaxclust.distributed", "jaxclust.train", "jaxclust.sklearn",
                  "jaxclust.graph"]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_exported_name_imports(module_name):
    module = importlib.import_module(module_name)
    assert module.__all__, f"{module_name} exports nothing"
    assert len(set(module.__all__)) == len(module.__all__), "duplicate names in __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"
        ns: dict = {}
        exec(f"from {module_name} import {name}", ns)  # the user's import statement
        assert ns[name] is getattr(module, name)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_functions_are_documented(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{module_name}.{name} has no docstring"


def test_top_level_reexports_are_the_subpackage_functions():
    for name in jaxclust.__all__:
        obj = getattr(jaxclust, name)
        if inspect.isfunction(obj):
            homes = [m for m in (jaxclust.ot, jaxclust.cluster) if getattr(m, name, None) is obj]
            assert homes, f"jaxclust.{name} is not a subpackage function"


def test_private_internals_are_not_exported():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert not [n for n in module.__all__ if n.startswith("_") and n != "__version__"]


def test_version_matches_pyproject():
    version = jaxclust.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?(a|b|rc|dev|post)\d*)*", version), version
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("pyproject.toml is not readable from here (installed package)")
    meta = tomllib.loads(pyproject.read_text())
    project = meta.get("project", {})
    if "version" in project:
        assert project["version"] == version
        return
    # a dynamic version must be read from the file that defines jaxclust.__version__
    assert "version" in project.get("dynamic", [])
    path = meta["tool"]["hatch"]["version"]["path"]
    source = (ROOT / path).read_text()
    declared = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", source, re.M)
    assert declared, f"no __version__ in {path}"
    assert (ROOT / path).resolve() == Path(jaxclust.__file__).resolve()
    assert declared.group(1) == version


def test_no_module_is_shadowed_by_a_function():
    """Every submodule stays reachable by its dotted name: no package attribute of the same name
    as one of its modules is something other than that module (issue 17 §4)."""
    import pkgutil

    shadowed = []
    for pkg_info in pkgutil.walk_packages(jaxclust.__path__, "jaxclust."):
        if pkg_info.name.rsplit(".", 1)[-1] in {"__main__"}:
            continue
        parent_name, _, leaf = pkg_info.name.rpartition(".")
        try:
            parent = importlib.import_module(parent_name)
            module = importlib.import_module(pkg_info.name)
        except ImportError:  # optional extras (flax, equinox, sklearn) absent
            continue
        if getattr(parent, leaf, module) is not module:
            shadowed.append(pkg_info.name)
    assert not shadowed, f"modules shadowed by a same-named attribute: {shadowed}"


OBJECTIVE_ALIASES = ("inertia", "loss", "energy", "log_likelihood", "residual")


def test_results_name_their_objective_objective():
    """One vocabulary (issue 17 §4): every public result with an objective value calls it
    ``objective`` (a field); the names used before stay as read-only property aliases."""
    seen = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            cls = getattr(module, name)
            if not (inspect.isclass(cls) and issubclass(cls, tuple) and hasattr(cls, "_fields")
                    and name.endswith("Result")) or cls in seen:
                continue
            seen.add(cls)
            names = set(cls._fields) | {n for n in dir(cls) if isinstance(
                inspect.getattr_static(cls, n, None), property)}
            if not names & {"objective", *OBJECTIVE_ALIASES}:
                continue
            assert "objective" in cls._fields, f"{module_name}.{name} has no field `objective`"
            inst = cls(*(object() for _ in cls._fields))
            for old in OBJECTIVE_ALIASES:
                if isinstance(inspect.getattr_static(cls, old, None), property):
                    assert getattr(inst, old) is inst.objective, f"{name}.{old}"
                    with pytest.raises(AttributeError):
                        setattr(inst, old, 0.0)
    assert len(seen) >= 10  # the registry above really found the results
