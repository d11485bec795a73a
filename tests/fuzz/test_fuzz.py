"""Bad-input fuzzer over every public function of every subpackage (issue 14, section 4).

Design (the engine is :mod:`tests.fuzz.harness`; read its docstring for the mutations and
the outcome classes):

* **Coverage.** :func:`test_every_public_function_is_fuzzed` fails when a public function
  (any ``__all__`` function of the public modules and of the pillars' conformance modules)
  has no valid base call or no mutation, exactly as ``tests/test_conformance.py`` fails for
  a function without a conformance case. Base calls are the conformance registry's own
  valid arguments, captured while its cases start (no solver runs for that).
* **Fast suite** (:func:`test_bad_inputs`, one test per function): hypothesis, derandomized
  (``derandomize=True``, no example database, so CI is deterministic), one example per
  function, draws the position of the bad entry, the overflow factor (1e20 .. 1e30) and the
  underflowing epsilon / temperature (1e-38 .. 1e-25); every mutation whose outcome is
  decided by validation (NaN / Inf entries, empty, one rank more, ``None``, bad keys,
  ``k`` out of range or non-integer, negative / zero weights, 1e-30, NaN scalars,
  out-of-range labels, NaN callables) runs eagerly. The fuzzer is compile-bound, so the
  mutations that make a solver run to the end (``x * 1e20``, one rank less, mismatched
  feature sizes) and the ``jax.jit`` / ``jax.vmap`` runs (a compilation each) are done in
  the fast suite for a representative set of cheap functions, one or more per subpackage
  (:data:`FAST_TRACED`), and for every function in the slow test.
* **Slow suite** (:func:`test_bad_inputs_everything`, ``@pytest.mark.slow``): every
  mutation eagerly, and under ``jax.jit`` (NaN, ``x * 1e20``, negative weights, tiny
  epsilon) and ``jax.vmap`` (a batch of two, one bad element: the valid element must equal
  its own result) on the first traced argument of every function.
* Every test asserts **no violation**: no unclear error, no silent NaN/Inf, no lying
  ``converged``, no sentinel label, no corrupted batch element. Outcome counts per
  subpackage are printed at the end of the session (``tests/fuzz/conftest.py``);
  ``python -m tests.fuzz.report`` regenerates the full table.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from . import harness

NAMES = sorted(harness.public_functions())

#: kinds whose outcome validation decides (cheap: no solver runs when the check works)
FAST_KINDS = {"nan", "inf", "none", "empty", "rank_up", "key_none", "key_zero", "k_zero",
              "bad_str", "int_negative", "empty_seq", "wrong_items",
              "k_negative", "k_float", "negative", "zeros", "tiny", "nan_scalar", "oob",
              "nan_fn"}

#: cheap functions (one small compiled program) that also get every kind, jit and vmap in
#: the fast suite: the traced-check path of each subpackage
FAST_TRACED = {"ot.swav_codes", "ot.default_epsilon", "cluster.soft_assignment",
               "cluster.kmeans_loss", "metrics.inertia", "metrics.auroc",
               "sdp.membership_matrix", "ood.energy", "ood.msp", "diffusion.eps_to_x0",
               "diffusion.mixture_logp", "data.gaussian_mixture", "distributed.swav_codes",
               "graph.laplacian"}

OUTCOMES: list[harness.Outcome] = []  # every outcome of this session (summary table)

_SPECS: dict[str, harness.Spec] | None = None


def _specs() -> dict[str, harness.Spec]:
    global _SPECS
    if _SPECS is None:
        _SPECS = harness.build_specs()
    return _SPECS


# generate only: no shrinking (each replay is a full batch of compiled runs)
_SETTINGS = settings(derandomize=True, database=None, max_examples=1, deadline=None,
                     phases=[Phase.generate],
                     suppress_health_check=list(HealthCheck), print_blob=False)


def _check(outcomes: list[harness.Outcome]):
    OUTCOMES.extend(outcomes)
    bad = [o.line() for o in outcomes if o.violation]
    assert not bad, f"{len(bad)} violation(s):\n" + "\n".join(bad)


def test_every_public_function_is_fuzzed():
    specs = _specs()
    missing = sorted(set(NAMES) - set(specs))
    assert not missing, f"public functions without a fuzz base call: {missing}"
    no_mutation = sorted(k for k, s in specs.items() if not harness.mutations(s))
    assert not no_mutation, f"public functions without a bad-input mutation: {no_mutation}"


@pytest.mark.parametrize("name", NAMES)
@_SETTINGS
@given(data=st.data())
def test_bad_inputs(name, data):
    spec = _specs().get(name)
    if spec is None:
        pytest.skip("no base call (test_every_public_function_is_fuzzed fails)")
    pos = data.draw(st.integers(0, 7), label="bad entry")
    huge = 10.0 ** data.draw(st.integers(20, 30), label="overflow exponent")
    tiny = 10.0 ** -data.draw(st.integers(25, 38), label="underflow exponent")
    if name in FAST_TRACED:
        _check(harness.run_spec(spec, pos=pos, huge=huge, tiny=tiny,
                                bad_item=data.draw(st.integers(0, 1), label="bad item")))
        return
    runner = harness.Runner(spec, base=False)
    muts = [m for m in harness.mutations(spec, pos=pos, huge=huge, tiny=tiny)
            if m.kind in FAST_KINDS]
    _check([runner.eager(m) for m in muts])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_everything(name):
    spec = _specs().get(name)
    if spec is None:
        pytest.skip("no base call (test_every_public_function_is_fuzzed fails)")
    _check(harness.run_spec(spec, jit_args=None))
