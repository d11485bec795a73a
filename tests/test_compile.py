"""No eager recompilation: a public function called again with the same shapes and options
compiles nothing (issue 15 §3).

The counter listens to JAX's own monitoring event for backend compilations
(``/jax/core/compile/backend_compile_duration``, emitted once per XLA executable built,
whether by ``jit``, an eager primitive or a loop primitive run eagerly); it is part of
``jax.monitoring``'s public listener API, unlike the log format of ``jax_log_compiles``.

Each check calls the function once (warm-up, compiles whatever it needs), then again on
*new* input values of the same shapes (a perturbed copy: a cache keyed by values, not
shapes, would fail) and asserts that the second call built no executable.

The cause of the recompilations this file guards against: ``lax.fori_loop`` /
``while_loop`` / ``scan`` / ``lax.map`` run eagerly trace their body, a closure created
anew on every call, so every call lowers and compiles a new loop. The fix is a
module-level ``jax.jit`` around the numerical core (static options as static arguments).

Cases come from the conformance registry (``tests/conformance.py``): the fast subset holds
every function that used to recompile plus one function per subpackage; the full sweep over
every registered case is ``slow`` (126 cases, 102 s at load ~10 on 2 cores).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import monitoring

from .conformance import pillar_cases

_EVENT = "/jax/core/compile/backend_compile_duration"


class _Counter:
    def __init__(self):
        self.count = 0

    def __call__(self, name, duration, **kwargs):
        if name == _EVENT:
            self.count += 1


@contextlib.contextmanager
def count_compilations():
    """``with count_compilations() as c: ...`` -> ``c.count`` executables built inside."""
    counter = _Counter()
    monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        monitoring.unregister_event_duration_listener(counter)


def _perturbed(args, scale=1e-3, seed=0):
    """Same shapes and dtypes, other values (floating arrays times ``1 + scale * u``)."""
    rng = np.random.default_rng(seed)
    out = []
    for a in args:
        if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating):
            u = jnp.asarray(rng.uniform(-1.0, 1.0, size=np.shape(a)), a.dtype)
            a = jax.block_until_ready((a * (1 + scale * u)).astype(a.dtype))
        out.append(a)
    return tuple(out)


def assert_second_call_compiles_nothing(fn, *args):
    jax.block_until_ready(fn(*args))
    again = _perturbed(args)  # built outside the counted region
    with count_compilations() as c:
        jax.block_until_ready(fn(*again))
    assert c.count == 0, f"the second eager call compiled {c.count} executable(s)"


def compile_counts(calls, *, cold: bool = True):
    """``({name: (executables the first call built, those the second built)}, {name: the
    first call's result})`` for a dict of zero-argument calls, run in order. ``cold``: JAX's
    caches are dropped first, so the counts do not depend on what ran before in the process
    (a program another test compiled, or a cache dropped by conftest.py's memory-map guard)."""
    if cold:
        jax.clear_caches()
    built, results = {}, {}
    for name, call in calls.items():
        with count_compilations() as first:
            results[name] = jax.block_until_ready(call())
        with count_compilations() as second:
            jax.block_until_ready(call())
        built[name] = (first.count, second.count)
    return built, results


def test_counter_sees_compilations():
    # the counter must be able to fail: a fresh closure under jit compiles every time
    x = jnp.arange(3.0)
    with count_compilations() as c:
        jax.block_until_ready(jax.jit(lambda t: t * 2.0 + 1.0)(x))
        jax.block_until_ready(jax.lax.fori_loop(0, 2, lambda i, t: t + x, x))
    assert c.count >= 2


# --- the conformance registry -------------------------------------------------------------

def _all_cases():
    from .test_conformance import CASES  # the core cases plus every pillar's
    return CASES


# Public functions that take a user callable (a score / denoiser / vector field): their
# loops close over it, and jitting with the callable as a static argument would bake the
# parameters it closes over into the program as constants (and keep them alive in the jit
# cache). Their registry cases build a new closure per call anyway. Eager users jit the call
# site (`jax.jit(lambda key: euler_maruyama(score_fn, key, sde, shape))`), see
# docs/guide/performance.md.
_TAKES_A_CALLABLE = {"euler_maruyama", "predictor_corrector", "probability_flow", "ddim",
                     "ode_likelihood", "divergence"}

# the fast subset: every function that recompiled eagerly before issue 15, plus one function
# per subpackage (ot, cluster, sdp, metrics, diffusion, ood, distributed, nn)
_FAST = {
    # used to recompile on every eager call (measured before the fix, compilations / call)
    "swav_codes",  # 1 (fori_loop closure); also the root of swav_loss, the SwAV heads' loss
    "swav_loss",  # 2 (two swav_codes); ood palm_loss (4) and update_prototypes (1) too
    "sinkhorn-online",  # 6 (chunked lax.map of the result's marginals / costs / apply)
    "ood-knn",  # 1 (chunked scan of the bank)
    # (minibatch_kmeans and laplacian_kmeans, 1 each, ~1-2 s of compilation each: in the
    # slow sweep)
    # one per remaining subpackage (sdp, metrics, diffusion, distributed; ot, cluster, ood
    # and nn are above / below)
    "membership_matrix", "inertia", "score_to_eps", "distributed-swav_codes",
}


def _params(fast: bool):
    out = []
    for c in _all_cases():
        if c.public in _TAKES_A_CALLABLE:
            continue
        if fast != (c.name in _FAST):
            continue
        marks = [] if fast else [pytest.mark.slow]
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


@pytest.mark.parametrize("case", _params(fast=True))
def test_second_eager_call_compiles_nothing(case):
    assert_second_call_compiles_nothing(case.fn, *case.args)


@pytest.mark.parametrize("case", _params(fast=False))
def test_second_eager_call_compiles_nothing_all(case):
    assert_second_call_compiles_nothing(case.fn, *case.args)


def test_fast_subset_names_exist():
    names = {c.name for c in _all_cases()}
    assert _FAST <= names, sorted(_FAST - names)
    publics = {c.public for c in _all_cases()}
    assert _TAKES_A_CALLABLE <= publics, sorted(_TAKES_A_CALLABLE - publics)


# --- the named offenders that the registry reaches only indirectly ------------------

def _views():
    z = jax.random.normal(jax.random.key(1), (16, 8))
    return z, z + 0.1


@pytest.mark.slow  # the same swav_loss as the Equinox head below, plus flax's first use
def test_flax_swav_head_loss_compiles_once():
    from flax import nnx

    from jaxclust.nn.flax import SinkhornClusteringHead

    head = SinkhornClusteringHead(8, 4, rngs=nnx.Rngs(0))
    assert_second_call_compiles_nothing(head.loss, *_views())


def test_equinox_swav_head_loss_compiles_once():
    from jaxclust.nn.equinox import SinkhornClusteringHead

    head = SinkhornClusteringHead(8, 4, key=jax.random.key(0))
    assert_second_call_compiles_nothing(head.loss, *_views())


def test_pillar_registry_is_reachable():
    # the pillar cases are part of the sweep (a registry refactor must not silently drop them)
    cases, _, _ = pillar_cases()
    assert {c.name for c in cases} <= {c.name for c in _all_cases()}


# --- first eager call of sinkhorn: the executables it builds (issue 15 §3) -------------------

def test_first_eager_sinkhorn_call_builds_one_program():
    """The default eager ``sinkhorn`` (``mode="auto"``: kernel path, log-domain fallback,
    opening log round) builds ONE executable on its first call, and a derived value
    (``reg_cost``) one more; before the host checks (529cfdf) the first call ran ~40
    op-by-op compilations of its validation and pre-processing (``jit(multiply)`` x 7,
    ``jit(_where)`` x 6, ...). Measured now: 1 and 1. (``mode="log"``, ``sinkhorn_from_cost``
    and ``sinkhorn_divergence``: tests/ot/test_eager_compile.py.)"""
    from jaxclust.ot import sinkhorn

    # shapes used by no other test: the first call starts from a cold cache
    x = jax.block_until_ready(jax.random.normal(jax.random.key(0), (17, 3)))
    y = jax.block_until_ready(jax.random.normal(jax.random.key(1), (9, 3)) + 1.0)
    with count_compilations() as first:
        res = jax.block_until_ready(sinkhorn(x, y, epsilon=0.5))
    with count_compilations() as derived:
        jax.block_until_ready(res.reg_cost)
    assert (first.count, derived.count) == (1, 1)


# --- first eager call of kmeans: what it loads (issue 15 §3) --------------------------------

def test_kmeans_first_call_loads_only_what_it_needs():
    """``jaxclust.cluster`` loads its modules on first access: a first ``kmeans`` call in a
    fresh process imports k-means and its helpers, not the other clustering methods, the OT
    package, the metrics or equinox (0.19 s of the first call's 0.59 s before, 2-core CPU;
    equinox is imported at the first *traced* value check)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu")
    code = (
        "import sys, jax, jax.numpy as jnp\n"
        "import jaxclust.cluster as jc\n"
        "res = jc.kmeans(jnp.arange(40.0).reshape(20, 2), 2, key=jax.random.key(0))\n"
        "assert res.labels.shape == (20,)\n"
        "heavy = ('jaxclust.ot', 'jaxclust.metrics', 'jaxclust.cluster.mixture',\n"
        "         'jaxclust.cluster.spectral_clustering', 'jaxclust.cluster.medoids', 'equinox')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=root, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


# --- first eager call of the metrics: one executable each --------------------------------

def test_first_eager_metric_calls_build_one_program():
    """The metrics validate their labels and points on the host (NumPy, for concrete arrays
    on the CPU) and run their arithmetic as one jitted program: a first eager call on new
    shapes builds ONE executable (measured before: nmi 84, silhouette 30, davies_bouldin
    29, inertia 25, ari 15, contingency 13 op-by-op compilations), a second call none; and
    the host checks still raise the documented ValueError."""
    from jaxclust import metrics as M

    n = 23  # a size no other test uses: cold caches
    rng = np.random.default_rng(3)
    t = jax.block_until_ready(jnp.asarray(rng.integers(0, 3, n), jnp.int32))
    p = jax.block_until_ready(jnp.asarray(rng.integers(0, 4, n), jnp.int32))
    x = jax.block_until_ready(jnp.asarray(rng.normal(size=(n, 2)), jnp.float32))
    c, w = x[:3], jax.block_until_ready(jnp.ones((n,), jnp.float32))
    calls = {
        "contingency": lambda: M.contingency(t, p),
        "nmi": lambda: M.nmi(t, p, average="geometric"),
        "ari": lambda: M.ari(t, p),
        "adjusted_mutual_info": lambda: M.adjusted_mutual_info(t, p, average="min"),
        "inertia": lambda: M.inertia(x, c),
        "inertia(labels, weights)": lambda: M.inertia(x, c, t, weights=w),
        "silhouette": lambda: M.silhouette(x, t, k=3),
        "silhouette_samples": lambda: M.silhouette_samples(x, t, k=3),
        "calinski_harabasz": lambda: M.calinski_harabasz(x, t, k=3),
        "davies_bouldin": lambda: M.davies_bouldin(x, t, k=3),
    }
    built, _ = compile_counts(calls)
    assert built == {name: (1, 0) for name in calls}, built
    with pytest.raises(ValueError, match="`labels_pred` has negative entries"):
        M.nmi(t, p - 1)
    with pytest.raises(ValueError, match="`labels` has entries >= `k` = 2"):
        M.silhouette(x, t, k=2)
    with pytest.raises(ValueError, match="between 2 and n - 1"):
        M.calinski_harabasz(x, jnp.zeros((n,), jnp.int32), k=3)
    with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
        M.davies_bouldin(x.at[0, 0].set(jnp.nan), t, k=3)
    with pytest.raises(ValueError, match="`weights` has negative entries"):
        M.inertia(x, c, t, weights=-w)


# --- first eager call of the iterative solvers: one quick program (issue 15 §3) -----------

def test_first_eager_solver_calls_build_one_quick_program():
    """``gmm``, ``soft_kmeans``, ``sinkhorn_kmeans``, ``spectral`` and ``laplacian_kmeans``
    run their seeding, default epsilon / affinity graph and solve as ONE jitted program
    (``jaxclust._core.programs.EagerProgram``), compiled with the quick XLA options for a
    small problem on CPU. Before, a first call built 4 (gmm), 4 (soft_kmeans), 67
    (sinkhorn_kmeans: the default epsilon and marginals op by op, the seeding as its own
    program), 76 (spectral: the affinity and embedding op by op) and 41 (laplacian_kmeans)
    executables, the solvers with the default options; first calls on 300 x 8 went
    3.5 -> 0.7 s, 1.0 -> 0.4 s, 4.9 -> 1.2 s, 4.0 -> 1.1 s, 3.3 -> 1.2 s (2-core CPU).
    Checked: the executables of a first call on cold shapes, none on the second, the quick
    flavour used eagerly and not under ``jit``, and its results equal to the default
    program's to float32 rounding."""
    from jaxclust._core.programs import EagerProgram
    from jaxclust.cluster import (
        gmm,
        laplacian,
        laplacian_kmeans,
        mixture,
        sinkhorn_kmeans,
        soft,
        soft_kmeans,
        spectral,
        spectral_clustering,
    )

    if jax.default_backend() != "cpu":
        pytest.skip("the quick flavour is for the CPU backend")
    x = jax.block_until_ready(jax.random.normal(jax.random.key(0), (31, 3)))  # cold shapes
    x2 = jax.block_until_ready(x * 1.001)  # same shapes, other values
    key = jax.block_until_ready(jax.random.key(1))
    cases = {
        "gmm": (lambda z: gmm(z, 3, key=key).means, mixture._fit),
        "soft_kmeans": (lambda z: soft_kmeans(z, 3, key=key, temperature=0.5).centroids,
                        soft._soft_kmeans),
        "sinkhorn_kmeans": (lambda z: sinkhorn_kmeans(z, 3, key=key).centroids,
                            soft._sinkhorn_kmeans),
        "spectral": (lambda z: spectral(z, 3, key=key).eigenvalues,
                     spectral_clustering._spectral),
        "laplacian_kmeans": (lambda z: laplacian_kmeans(z, 3, key=key).objective,
                             laplacian._laplacian),
    }
    built = {}
    for name, (call, program) in cases.items():
        assert isinstance(program, EagerProgram)
        quick0, full0 = program.quick._cache_size(), program.full._cache_size()
        with count_compilations() as first:
            eager = jax.block_until_ready(call(x))
        with count_compilations() as second:
            jax.block_until_ready(call(x2))
        built[name] = (first.count, second.count)
        assert (program.quick._cache_size() - quick0, program.full._cache_size() - full0) \
            == (1, 0), name
        jitted = jax.block_until_ready(jax.jit(call)(x))  # the outer program, default options
        assert program.full._cache_size() == full0, name  # inlined, not called
        np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    assert all(second == 0 for _, second in built.values()), built
    assert all(first <= 2 for first, _ in built.values()), built


def test_eager_program_drops_a_compile_option_this_xla_lacks(monkeypatch):
    """An option the installed XLA rejects ("No such compile option"; jaxlib 0.11 dropped
    ``xla_cpu_use_fusion_emitters``) is removed for the session and the call retried with
    the remaining ones: the quick flavour still runs, with the other options."""
    from jaxclust._core import programs

    if jax.default_backend() != "cpu":
        pytest.skip("the quick flavour is for the CPU backend")
    known = dict(programs._options)
    assert known, "this XLA accepts none of the quick options"
    monkeypatch.setattr(programs, "_options", {**known, "xla_no_such_option_here": True})
    program = programs.EagerProgram(lambda a: jnp.sin(a) * 2.0)
    x = jnp.arange(5.0)
    np.testing.assert_allclose(np.asarray(program(1, x)), 2 * np.sin(np.arange(5.0)),
                               rtol=1e-6)
    assert programs._options == known
    assert program.quick is not None and program.quick._cache_size() == 1
    assert program.full._cache_size() == 0
    # an error that is not about options propagates
    bad = programs.EagerProgram(lambda a: a.reshape(7))
    with pytest.raises(TypeError, match="reshape"):
        bad(1, x)


# --- first eager call of the OOD scores and fits: one program (or a few) each ---------------

def test_first_eager_ood_calls_build_one_program_each():
    """The OOD scores, fits and losses check their inputs on the host and run their
    arithmetic as module-level jitted programs: a first eager call on new shapes builds one
    executable (two or three where a value check on an intermediate result must run between
    steps, or where Sinkhorn runs in the middle), a second call none. Measured before, on
    the conformance problems (first eager call, fresh process): msp 18 op-by-op
    compilations, gen 19, mahalanobis 41 (with its fit), vim 51 (with its fit),
    sinkhorn_score 59, fit_vim 29, fit_prototypes 27, energy_regularized_loss 46,
    prototype_contrastive_loss 44, update_prototypes 54, palm_loss 91 (two calls and
    mixture_assignments); the host checks still raise the documented ValueError."""
    from jaxclust import ood

    n, d, k = 19, 7, 5  # sizes no other test uses: cold caches
    rng = np.random.default_rng(4)

    def put(a):
        return jax.block_until_ready(jax.device_put(np.asarray(a, np.float32)))

    z, x = put(rng.normal(size=(n, k)) * 2.0), put(rng.normal(size=(n, d)))
    h, t = put(rng.uniform(-1, 1, size=(n, k))), put(rng.uniform(0.2, 0.9, size=n))
    w, b = put(rng.normal(size=(d, k))), put(rng.normal(size=k))
    relu = put(np.abs(rng.normal(size=(n, d))))
    y = jax.block_until_ready(jax.device_put(np.arange(n, dtype=np.int32) % 3))
    fits = {
        "fit_mahalanobis": (lambda: ood.fit_mahalanobis(x, y), 2),
        "fit_knn": (lambda: ood.fit_knn(x), 1),
        "fit_react": (lambda: ood.fit_react(relu, percentile=80.0), 1),
        "fit_vim": (lambda: ood.fit_vim(x, w, b, dim=3), 3),
        "fit_prototypes": (lambda: ood.fit_prototypes(x, y), 1),
    }
    built, stats = compile_counts({name: call for name, (call, _) in fits.items()})
    scores = {
        "msp": (lambda: ood.msp(z, temperature=1.5), 1),
        "max_logit": (lambda: ood.max_logit(z), 1),
        "energy": (lambda: ood.energy(z), 1),
        "gen": (lambda: ood.gen(z, m=3), 1),
        "mahalanobis": (lambda: ood.mahalanobis(x, stats["fit_mahalanobis"]), 1),
        "relative_mahalanobis": (
            lambda: ood.relative_mahalanobis(x, stats["fit_mahalanobis"]), 1),
        "knn": (lambda: ood.knn(x, stats["fit_knn"], k=2, chunk_size=4), 1),
        "react": (lambda: ood.react(relu, w, b, stats["fit_react"]), 1),
        "ash": (lambda: ood.ash(relu, w, b, percentile=60.0), 1),
        "vim": (lambda: ood.vim(x, w, b, stats["fit_vim"]), 1),
        # the ratio and its log-sum-exp apart (see the function)
        "ablated_energy": (lambda: ood.ablated_energy(h, t), 2),
        # inputs, the quick Sinkhorn program, the cost per unit mass
        "sinkhorn_score": (lambda: ood.sinkhorn_score(x, stats["fit_prototypes"]), 3),
    }
    protos = put(rng.normal(size=(3, 2, d)))
    z_out, x_txt, x_no = (put(rng.normal(size=a.shape)) for a in (z, x, x))
    losses = {
        "cross_entropy": (lambda: ood.cross_entropy(z, y), 1),
        "energy_margin_loss": (lambda: ood.energy_margin_loss(z, z_out), 1),
        "energy_regularized_loss": (lambda: ood.energy_regularized_loss(z, y, z_out), 1),
        "outlier_exposure_loss": (lambda: ood.outlier_exposure_loss(z, y, z_out), 1),
        "logitnorm_loss": (lambda: ood.logitnorm_loss(z, y), 1),
        "cosine_logits": (lambda: ood.cosine_logits(x, w), 1),
        # the ratio and the cross-entropy apart; the ratio program (same shapes) is the one
        # ablated_energy built above
        "learned_temperature_loss": (lambda: ood.learned_temperature_loss(h, t, y), 1),
        "mixture_assignments": (lambda: ood.mixture_assignments(x, protos, y), 1),
        "mixture_logits": (lambda: ood.mixture_logits(x, protos), 1),
        "prototype_contrastive_loss": (lambda: ood.prototype_contrastive_loss(protos), 1),
        "palm_loss": (lambda: ood.palm_loss(x, y, protos, top_k=1), 1),
        "update_prototypes": (lambda: ood.update_prototypes(protos, x, y, top_k=1), 1),
        "clipn_losses": (lambda: ood.clipn_losses(x, x_txt, x_no), 1),
        "clipn_ctw": (lambda: ood.clipn_ctw(z, z_out), 1),
        "clipn_atd": (lambda: ood.clipn_atd(z, z_out), 1),
    }
    calls = {**fits, **scores, **losses}
    built.update(compile_counts({name: call for name, (call, _) in calls.items()
                                 if name not in fits}, cold=False)[0])
    assert built == {name: (count, 0) for name, (_, count) in calls.items()}, built
    with pytest.raises(ValueError, match="`labels` leave a class without samples"):
        ood.fit_prototypes(x, y, num_classes=4)
    with pytest.raises(ValueError, match="`features` contains NaN or Inf"):
        ood.mahalanobis(x.at[0, 0].set(jnp.nan), stats["fit_mahalanobis"])
    with pytest.raises(ValueError, match="`temperature` must be > 0 everywhere"):
        ood.ablated_energy(h, -t)


def test_first_eager_graph_calls_build_one_program_each():
    """The graph constructions, the Laplacian, the heat-geodesic distances, metric MDS and
    the local clustering steps check their inputs on the host and run as one jitted program
    each: a first eager call on new shapes builds one executable, a second none (measured
    before, on the conformance problems: mds 30 op-by-op compilations,
    heat_geodesic_distances 10, alpha_decay_graph 10, heat_geodesic_embedding 49 in all,
    local_cluster 55 in all, sweep_cut 38)."""
    from jaxclust import graph as G

    n = 21  # a size no other test uses
    rng = np.random.default_rng(5)
    x = jax.block_until_ready(jax.device_put(rng.normal(size=(n, 3)).astype(np.float32)))
    w = G.knn_graph(x + 1.0, k=4)  # built outside the counted calls (another input)
    d = G.heat_geodesic_distances(w, 2.0, order=8) + 0.0
    labels = jax.device_put((np.arange(n) % 2).astype(np.float32))
    lap = jax.block_until_ready(G.laplacian(w))
    scores = jax.device_put(rng.uniform(size=n).astype(np.float32))
    # a Python int seed converts with a small program of its own (cached or not, depending
    # on what ran before in the process): an array, as for the other inputs
    seed = jax.device_put(np.int32(2))
    calls = {
        "pairwise_sq_dists": lambda: G.pairwise_sq_dists(x),
        "knn_graph": lambda: G.knn_graph(x, k=3, sigma=1.0),
        "epsilon_graph": lambda: G.epsilon_graph(x, epsilon=1.0),
        "alpha_decay_graph": lambda: G.alpha_decay_graph(x, k=3),
        "laplacian": lambda: G.laplacian(w, kind="random_walk"),
        "heat_geodesic_distances": lambda: G.heat_geodesic_distances(w, 3.0, order=6),
        "mds": lambda: G.mds(d, dim=2, n_iter=7),
        "label_weighted_graph": lambda: G.label_weighted_graph(w, labels, epsilon=0.1),
        "personalized_pagerank": lambda: G.personalized_pagerank(w, seed, alpha=0.2),
        "sweep_cut": lambda: G.sweep_cut(w, scores),
        "heat_kernel": lambda: G.heat_kernel(lap, 1.5, order=5, lmax=2.2),
        "heat_kernel_expm": lambda: G.heat_kernel_expm(lap, 0.7),
        "chebyshev_coefficients": lambda: G.chebyshev_coefficients(1.3, 9),
    }
    built, _ = compile_counts(calls)
    assert built == {name: (1, 0) for name in calls}, built
    with pytest.raises(ValueError, match="`adjacency` has negative weights"):
        G.laplacian(-w)
    with pytest.raises(ValueError, match="`distances` has negative entries"):
        G.mds(-d)
