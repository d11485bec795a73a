"""``import jaxclust`` stays light: the subpackages load on first use (issue 17 §4).

Each check runs in a fresh interpreter (``sys.modules`` of the test process is already full).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Never loaded by ``import jaxclust``: the optional or heavy dependencies and the subpackages
# that need them (``import jaxclust`` imports no subpackage, so not even jax or equinox).
HEAVY = ("rich", "optax", "flax", "equinox", "sklearn", "jax", "jaxclust.train",
         "jaxclust.distributed", "jaxclust.nn", "jaxclust.sklearn", "jaxclust.cli",
         "jaxclust.demo")


def _run(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_jaxclust_loads_no_heavy_module_and_names_resolve_lazily():
    code = f"""
import sys
import jaxclust
loaded = [m for m in {HEAVY!r} if m in sys.modules]
assert not loaded, f"import jaxclust loaded {{loaded}}"
assert "kmeans" in dir(jaxclust) and "train" in dir(jaxclust)
from jaxclust import sinkhorn
import jaxclust.ot
assert sinkhorn is jaxclust.ot.sinkhorn is jaxclust.sinkhorn
assert jaxclust.kmeans is jaxclust.cluster.kmeans
import jaxclust.diffusion
loaded = [m for m in ("rich", "optax", "jaxclust.train") if m in sys.modules]
assert not loaded, f"import jaxclust.diffusion loaded {{loaded}}"
try:
    jaxclust.no_such_name
except AttributeError as err:
    assert "no_such_name" in str(err)
else:
    raise AssertionError("no AttributeError")
assert jaxclust.diffusion.fit is jaxclust.train.fit  # one home, the same object
assert jaxclust.diffusion.FitResult is jaxclust.train.FitResult
import jaxclust.diffusion.train as dt
assert dt.fit is jaxclust.train.fit and "optax" in sys.modules
print("ok")
"""
    assert _run(code) == "ok"
