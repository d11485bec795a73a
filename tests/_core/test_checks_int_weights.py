"""One home for the "int, not bool" checks and the sample-weight checks (issue 17 §4):
``checks.check_int`` / ``checks.row_weights`` and a source scan that fails when a module
writes its own."""

from __future__ import annotations

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jaxclust._core import checks

PACKAGE = Path(__file__).resolve().parents[2] / "jaxclust"


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, "3", None, jnp.asarray(3)])
def test_check_int_rejects_non_ints(value):
    with pytest.raises(ValueError, match=r"^`n_iter` must be a Python int >= 1 \(why\), got"):
        checks.check_int(value, "n_iter", why="why")


def test_check_int_bounds_and_conversions():
    three = checks.check_int(np.int64(3), "k")
    assert three == 3 and type(three) is int
    assert checks.check_int(None, "k", none_ok=True) is None
    assert checks.check_int(-5, "n", low=None) == -5
    with pytest.raises(ValueError, match=r"`k` must be a Python int in \[2, 4\], got 5\."):
        checks.check_int(5, "k", low=2, high=4)
    with pytest.raises(ValueError, match=r"`m` must be None or a Python int in \[1, n\] = "
                                         r"\[1, 3\], got 0\."):
        checks.check_int(0, "m", high=3, bounds="in [1, n] = [1, 3]", none_ok=True)


def test_row_weights_messages():
    with pytest.raises(ValueError, match=re.escape("`a` must have shape (3,) (one per row of "
                                                   "`x`), got (2,).")):
        checks.row_weights(jnp.ones(2), 3, "x", name="a")
    with pytest.raises(ValueError, match="`weights` has negative entries"):
        checks.row_weights(jnp.array([1.0, -1.0]), 2, "x")
    with pytest.raises(ValueError, match="`weights` contains NaN or Inf"):
        checks.row_weights(jnp.array([1.0, jnp.nan]), 2, "x")
    with pytest.raises(ValueError, match="`weights` sums to 0"):
        checks.row_weights(jnp.zeros(2), 2, "x", positive_sum=True)
    w = checks.row_weights(np.array([1, 2]), 2, "x", dtype=jnp.float32, positive_sum=True)
    assert w.dtype == jnp.float32 and w.tolist() == [1.0, 2.0]


# an inline integer check: ``isinstance(v, int)`` / ``(int, np.integer)`` / ``numbers.Integral``
# (no float in the tuple) on a line of an ``if`` whose body raises ValueError within 3 lines
_INLINE_INT = re.compile(
    r"isinstance\(\w+, (?:int|\(int, np\.integer\)|numbers\.Integral)\)[^\n]*\n"
    r"(?:[^\n]*\n){0,2}?\s*raise ValueError")
# a hand-written sample-weight check
_INLINE_WEIGHTS = re.compile(r"`weights` has negative entries")


def test_int_and_weight_checks_have_one_home():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "_core/checks.py":
            continue
        src = path.read_text()
        offenders += [f"{rel}: {m.group(0).splitlines()[0].strip()}"
                      for m in _INLINE_INT.finditer(src)]
        # distributed: checks inside shard_map (a global verdict); barycenter: (N, n) weights,
        # one row per input measure, not sample weights of one point set
        if not rel.startswith("distributed/") and rel != "ot/barycenters.py":
            offenders += [f"{rel}: hand-written weight check"
                          for _ in _INLINE_WEIGHTS.finditer(src)]
    assert not offenders, "use checks.check_int / checks.row_weights:\n" + "\n".join(offenders)
