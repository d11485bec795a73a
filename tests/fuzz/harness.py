"""The engine of the bad-input fuzzer: public functions, their valid base calls, mutations,
the three ways of calling (eager, ``jax.jit``, ``jax.vmap``) and the classification of
each outcome.

Base calls
    Every public function of every public module (:func:`public_functions`) needs one valid
    call. They are taken from the conformance registry (``tests/test_conformance.py`` and
    ``tests/*/conformance_cases.py``): while each registered case runs, every public
    function is temporarily replaced (in every module that binds it) by a recorder that
    stores the arguments of its first outermost call and aborts the case
    (:func:`captured_calls`), so the registry's valid arguments are reused without running
    its solvers. Functions that no case reaches (host-side helpers) have a hand-written
    base call in :data:`EXTRA_CALLS`.

Mutations (:func:`mutations`)
    Chosen from each argument's name and value: NaN / Inf entries, ``x * 1e20``, an empty
    leading axis, one rank more or less, a trailing axis that no longer matches the other
    arrays, ``None``; for weights a negative entry and all zeros; for integer labels an
    out-of-range entry; ``k``-like integers 0, -1, rows + 1 and 2.5; keys ``None`` and ``0``;
    scalar floats NaN, negative and (epsilon / temperature-like) 1e-30; a callable that
    returns NaN.

Outcomes (:func:`classify`)
    ``clear``: ``ValueError`` / ``TypeError`` (eagerly or at trace time), or under jit/vmap
    a ``JaxRuntimeError`` / ``EquinoxRuntimeError`` whose message holds ``ValueError:``,
    naming the mutated argument (in backticks or quotes); ``flagged``: a result with
    ``converged=False``; ``accepted``: finite outputs (the bad value was harmless or
    meaningful). Violations: ``unclear`` (any other exception, or no argument name),
    ``nonfinite`` (NaN/Inf in a float output that is finite on the base call, without a
    ``converged=False`` flag), ``lying`` (the same with ``converged=True``), ``sentinel``
    (an integer output at its dtype's extreme, e.g. labels 2**31 - 1 from an argmin over
    NaN), ``batch`` (under vmap, the valid element of a batch of two differs from its
    own result because of the bad neighbour).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PUBLIC_MODULES = ["jaxclust.ot", "jaxclust.cluster", "jaxclust.metrics", "jaxclust.sdp",
                  "jaxclust.ood", "jaxclust.train", "jaxclust.diffusion", "jaxclust.distributed",
                  "jaxclust.data", "jaxclust"]

VIOLATIONS = ("unclear", "nonfinite", "lying", "sentinel", "batch")
OUTCOMES = ("clear", "flagged", "accepted") + VIOLATIONS

K_NAMES = {"k", "n_clusters", "n_components", "n_classes", "n_neighbors"}
WEIGHT_NAMES = {"a", "b", "weights", "w", "sample_weight", "sample_weights", "prior",
                "proportions", "class_weights"}
COUNT_NAMES = {"n", "n_steps", "n_iter", "batch_size", "steps", "n_per_class", "n_bins",
               "n_dims", "num_classes", "n_mm", "max_steps"}
SMALL_NAMES = ("epsilon", "temperature", "tau", "eps", "reg", "sigma", "bandwidth")


def subpackage(module_name: str) -> str:
    parts = module_name.split(".")
    return parts[1] if len(parts) > 1 else "jaxclust"


def _pillar_modules() -> list:
    from tests.conformance import pillar_cases

    return pillar_cases()[1]


def public_functions() -> dict[str, Callable]:
    """``'<subpackage>.<name>' -> function`` for every public function (deduplicated by
    identity: ``jaxclust.kmeans`` is ``cluster.kmeans``)."""
    out: dict[str, Callable] = {}
    seen: set[int] = set()
    modules = [importlib.import_module(m) for m in PUBLIC_MODULES] + _pillar_modules()
    for mod in modules:
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if not inspect.isfunction(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            out[f"{subpackage(mod.__name__)}.{name}"] = obj
    return out


# ------------------------------------------------------------------------------------------
# base calls


class _Captured(Exception):
    pass


def _has_tracer(tree) -> bool:
    return any(isinstance(t, jax.core.Tracer) for t in jax.tree_util.tree_leaves(tree))


# cheap public functions that cases call to prepare the arguments of another one
_CHEAP = {"distributed.shard", "distributed.make_mesh", "ood.fit_knn", "ood.fit_mahalanobis",
          "ood.fit_vim", "ood.fit_prototypes", "ood.fit_react", "cluster.soft_assignment",
          "cluster.minibatch_kmeans_init", "sdp.membership_matrix", "cluster.tell_assignment",
          "ood.cosine_logits", "ood.learned_temperature", "diffusion.from_eps",
          "diffusion.to_eps", "diffusion.mixture_score_fn", "diffusion.as_score_fn",
          "diffusion.mixture_denoiser", "diffusion.dsm_objective"}


def captured_calls(cases=None) -> dict[str, tuple[tuple, dict]]:
    """The first outermost call of each public function made by the registered cases."""
    if cases is None:
        from tests.test_conformance import CASES as cases
    funcs = public_functions()
    by_id = {id(f): key for key, f in funcs.items()}
    captured: dict[str, tuple[tuple, dict]] = {}
    depth = [0]

    target = [None]  # the function the running case registers

    def recorder(fn, key):
        @functools.wraps(fn)
        def rec(*args, **kwargs):
            if depth[0] == 0:
                if key not in captured and not _has_tracer((args, kwargs)):
                    captured[key] = (args, kwargs)
                    raise _Captured  # stop the case: its solvers never run here
                if key not in _CHEAP:
                    if target[0] in captured or target[0] is None:
                        raise _Captured
                    # the registered function comes later in this case: stand-in zeros
                    shapes = jax.eval_shape(lambda: fn(*args, **kwargs))
                    return jax.tree_util.tree_map(
                        lambda s: jnp.zeros(s.shape, s.dtype)
                        if not jnp.issubdtype(s.dtype, jax.dtypes.prng_key)
                        else jax.random.key(0), shapes)
            # a cheap function that prepares the arguments of the next one: run it
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
        return rec

    recs = {i: recorder(funcs[k], k) for i, k in by_id.items()}
    patched = []
    for mod in list(sys.modules.values()):
        name = getattr(mod, "__name__", "") or ""
        if not (name.startswith("jaxclust") or name.startswith("tests")):
            continue
        for attr, val in list(vars(mod).items()):
            if id(val) in recs and inspect.isfunction(val):
                patched.append((mod, attr, val))
                setattr(mod, attr, recs[id(val)])
    try:
        for case in cases:
            fn = case.fn
            if id(fn) in by_id:  # the case is the public function itself
                captured.setdefault(by_id[id(fn)], (tuple(case.args), {}))
                continue
            cells = [c for c in (getattr(fn, "__closure__", None) or ())
                     if id(getattr(c, "cell_contents", None)) in recs]
            olds = [c.cell_contents for c in cells]
            for c in cells:
                c.cell_contents = recs[id(c.cell_contents)]
            pillar = (getattr(fn, "__module__", "") or "").split(".")
            pillar = pillar[1] if len(pillar) > 2 else ""
            cands = [k for k in funcs if k.split(".", 1)[1] == case.public]
            own = [k for k in cands if k.split(".")[0] == pillar]
            cands = own or [k for k in cands if k.split(".")[0] != "distributed"]
            target[0] = next((k for k in cands if k not in captured), None)
            try:
                for _ in range(6):
                    n = len(captured)
                    try:
                        fn(*case.args)
                    except Exception:  # noqa: BLE001 - _Captured, or a case failing here
                        pass
                    if len(captured) == n:
                        break
            finally:
                for c, old in zip(cells, olds):
                    c.cell_contents = old
    finally:
        for mod, attr, val in patched:
            setattr(mod, attr, val)
    return captured


def _extra_calls() -> dict[str, Callable[[], tuple[tuple, dict]]]:
    """Base calls of the public functions that no registered case reaches."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(12, 2)), jnp.float32)
    lt = jnp.asarray([0, 0, 1, 1, 2, 2, 2, 0, 1, 2, 0, 1], jnp.int32)
    lp = jnp.asarray([1, 1, 0, 0, 2, 2, 2, 1, 0, 2, 1, 0], jnp.int32)

    def mesh_args():
        return (jax.devices()[:1],), {}

    def shard_args():
        import jaxclust.distributed as jd

        return (x, jd.make_mesh(jax.devices()[:1])), {}

    def gather_args():
        import jaxclust.distributed as jd

        return (jd.shard(x, jd.make_mesh(jax.devices()[:1])),), {}

    def train_fit_args():
        params = {"c": x[:3]}

        def loss_fn(p, batch, key):
            return jnp.mean(jnp.sum((batch[:, None] - p["c"][None]) ** 2, -1).min(-1))

        return (loss_fn, params, x), {"steps": 3, "batch_size": 4, "key": jax.random.key(0),
                                      "progress": False}

    return {
        "metrics.clustering_accuracy": lambda: ((lt, lp), {}),
        "distributed.make_mesh": mesh_args,
        "distributed.shard": shard_args,
        "distributed.gather": gather_args,
        "train.fit": train_fit_args,
        "data.gaussian_mixture": lambda: ((jax.random.key(0), 12, x[:3]), {}),
        "data.load_digits_classes": lambda: (((3, 8), 10), {"seed": 0}),
    }


EXTRA_CALLS = _extra_calls


# ------------------------------------------------------------------------------------------
# specs and mutations


@dataclass
class Spec:
    """One valid call of a public function."""

    name: str  # '<subpackage>.<function>'
    fn: Callable
    args: dict  # parameter name -> value (bound arguments, defaults not applied)

    @property
    def subpackage(self) -> str:
        return self.name.split(".")[0]

    def call(self, args: dict | None = None):
        sig = inspect.signature(self.fn)
        ba = sig.bind_partial()
        ba.arguments.update(self.args if args is None else args)
        return self.fn(*ba.args, **ba.kwargs)


def build_specs(names=None) -> dict[str, Spec]:
    funcs = public_functions()
    calls = captured_calls()
    extra = EXTRA_CALLS()
    specs = {}
    for key, fn in funcs.items():
        if names is not None and key not in names:
            continue
        if key in calls:
            a, kw = calls[key]
        elif key in extra:
            try:
                a, kw = extra[key]()
            except Exception:  # noqa: BLE001 - reported by the coverage test
                continue
        else:
            continue
        try:
            ba = inspect.signature(fn).bind(*a, **kw)
        except TypeError:
            continue
        specs[key] = Spec(key, fn, dict(ba.arguments))
    return specs


# public functions that run on the host (documented as not jittable): eager runs only
HOST_ONLY = {"metrics.clustering_accuracy", "train.fit", "distributed.make_mesh",
             "distributed.shard", "distributed.gather", "data.load_digits_classes"}


def _is_key(v) -> bool:
    return hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jax.dtypes.prng_key)


def _is_float_array(v) -> bool:
    return (isinstance(v, (jax.Array, np.ndarray)) and not _is_key(v)
            and jnp.issubdtype(v.dtype, jnp.floating))


def _is_int_array(v) -> bool:
    return (isinstance(v, (jax.Array, np.ndarray)) and not _is_key(v)
            and jnp.issubdtype(v.dtype, jnp.integer))


def _rows(spec: Spec) -> int:
    for v in spec.args.values():
        if (_is_float_array(v) or _is_int_array(v)) and np.ndim(v) >= 1:
            return int(np.shape(v)[0])
    return 12


@dataclass(frozen=True)
class Mutation:
    arg: str
    kind: str
    value: Any = field(compare=False, hash=False, repr=False)
    same_shape: bool = False  # usable under jit (traced) and vmap


VALUE_KINDS = ("nan", "inf", "huge", "negative", "zeros", "tiny", "neg_scalar", "nan_scalar",
               "oob")


def _set_first(v, val, pos=0):
    arr = np.array(v)
    flat = arr.reshape(-1)
    flat[pos % max(flat.size, 1)] = val
    return _device(flat.reshape(arr.shape).astype(v.dtype))


def _device(a):
    """A NumPy-built mutation as a JAX array: ``jax.device_put`` compiles nothing (a
    ``jnp`` expression per argument shape is an XLA compilation, ~20-40 ms each: the
    fuzzer builds hundreds of such variants)."""
    return jax.device_put(np.asarray(a))


def _nan_fn(fn):
    def bad(*a, **kw):
        return jax.tree_util.tree_map(
            lambda t: t * jnp.nan if jnp.issubdtype(jnp.result_type(t), jnp.floating) else t,
            fn(*a, **kw))
    return bad


def _poison(tree, val, pos):
    """``tree`` with ``val`` in the first floating array leaf."""
    done = [False]

    def f(t):
        if not done[0] and _is_float_array(t) and np.ndim(t) >= 1:
            done[0] = True
            return _set_first(t, val, pos)
        return t
    return jax.tree_util.tree_map(f, tree)


def mutations(spec: Spec, pos: int = 0, huge: float = 1e20, tiny: float = 1e-30
              ) -> list[Mutation]:
    """Every bad variant of the base call (one argument changed at a time)."""
    out: list[Mutation] = []
    n = _rows(spec)
    params = inspect.signature(spec.fn).parameters
    optional = {k for k, p in params.items() if p.default is None}
    others2d = [k for k, v in spec.args.items() if _is_float_array(v) and np.ndim(v) >= 2]
    for name, v in spec.args.items():
        if _is_key(v) or name == "key":
            if name not in optional:
                out.append(Mutation(name, "key_none", None))
            out.append(Mutation(name, "key_zero", 0))
        elif _is_float_array(v) and np.ndim(v) >= 1 and np.size(v) > 0:
            if name in WEIGHT_NAMES:
                out.append(Mutation(name, "negative", _set_first(v, -1.0, pos), True))
                out.append(Mutation(name, "zeros", _device(np.zeros(np.shape(v), v.dtype)),
                                    True))
            out.append(Mutation(name, "nan", _set_first(v, np.nan, pos), True))
            out.append(Mutation(name, "inf", _set_first(v, np.inf, pos), True))
            with np.errstate(over="ignore"):
                big = (np.asarray(v) * huge).astype(v.dtype)
            out.append(Mutation(name, "huge", _device(big), True))
            out.append(Mutation(name, "empty", _device(np.asarray(v)[:0])))
            out.append(Mutation(name, "rank_up", _device(np.asarray(v)[None])))
            out.append(Mutation(name, "rank_down", _device(np.asarray(v)[0])))
            if name not in optional:
                out.append(Mutation(name, "none", None))
            if np.ndim(v) >= 2 and len(others2d) >= 2:
                a = np.asarray(v)
                out.append(Mutation(name, "mismatch",
                                    _device(np.concatenate([a, a[..., :1]], axis=-1))))
        elif _is_float_array(v) and np.ndim(v) == 0:
            out.append(Mutation(name, "nan_scalar", jnp.asarray(np.nan, v.dtype), True))
            out.append(Mutation(name, "neg_scalar", -jnp.abs(v) - 1, True))
            if any(s in name for s in SMALL_NAMES):
                out.append(Mutation(name, "tiny", jnp.asarray(tiny, v.dtype), True))
        elif _is_int_array(v) and np.ndim(v) >= 1 and np.size(v) > 0:
            out.append(Mutation(name, "oob", _set_first(v, 10**6, pos), True))
            out.append(Mutation(name, "empty", _device(np.asarray(v)[:0])))
            out.append(Mutation(name, "rank_up", _device(np.asarray(v)[None])))
            if name not in optional:
                out.append(Mutation(name, "none", None))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, str):
            out.append(Mutation(name, "bad_str", "no-such-option"))
        elif isinstance(v, int) and name in COUNT_NAMES:
            out.append(Mutation(name, "int_negative", -1))
        elif isinstance(v, (tuple, list)) and not hasattr(v, "_fields") and not any(
                isinstance(t, (jax.Array, np.ndarray)) for t in v):
            if name not in optional:
                out.append(Mutation(name, "none", None))
            out.append(Mutation(name, "empty_seq", type(v)()))
            out.append(Mutation(name, "wrong_items", type(v)(["no-such-item"])))
        elif isinstance(v, int) and name in K_NAMES:
            out += [Mutation(name, "k_zero", 0), Mutation(name, "k_negative", -1),
                    Mutation(name, "k_too_big", n + 1), Mutation(name, "k_float", 2.5)]
        elif isinstance(v, float):
            out.append(Mutation(name, "nan_scalar", float("nan")))
            out.append(Mutation(name, "neg_scalar", -abs(v) - 1.0))
            if any(s in name for s in SMALL_NAMES):
                out.append(Mutation(name, "tiny", tiny))
        elif callable(v) and not inspect.isclass(v) and name.endswith("_fn"):
            out.append(Mutation(name, "nan_fn", _nan_fn(v)))
        elif hasattr(v, "__dataclass_fields__") or jax.tree_util.treedef_is_leaf(
                jax.tree_util.tree_structure(v)) is False:
            leaves = jax.tree_util.tree_leaves(v)
            if any(_is_float_array(t) and np.ndim(t) >= 1 for t in leaves):
                try:
                    out.append(Mutation(name, "nan", _poison(v, np.nan, pos)))
                    out.append(Mutation(name, "inf", _poison(v, np.inf, pos)))
                except Exception:  # noqa: BLE001 - a pytree that cannot be rebuilt
                    pass
        if (v is not None and name not in optional and not isinstance(v, (int, float, str))
                and not isinstance(v, (jax.Array, np.ndarray)) and not callable(v)
                and not (isinstance(v, (tuple, list)) and not hasattr(v, "_fields"))
                and (hasattr(v, "__dataclass_fields__") or hasattr(v, "_fields")
                     or type(v).__module__.startswith("jaxclust"))):
            out.append(Mutation(name, "none", None))  # an SDE, a mixture, stats, a state
    return out


# ------------------------------------------------------------------------------------------
# classification


@dataclass
class Outcome:
    name: str
    arg: str
    kind: str
    mode: str
    outcome: str
    detail: str = ""

    @property
    def violation(self) -> bool:
        return self.outcome in VIOLATIONS

    def line(self) -> str:
        return (f"{self.outcome:9s} {self.mode:5s} {self.name}({self.arg}={self.kind}): "
                f"{self.detail[:300]}")


def _names_arg(msg: str, names) -> bool:
    return any(re.search(rf"[`'\"]{re.escape(n)}[`'\"\[(.]", msg) for n in names)


def classify_error(err: BaseException, names, mode: str) -> tuple[str, str]:
    text = str(err)
    carried = [ln.strip() for ln in text.splitlines() if "ValueError: " in ln]
    msg = f"{type(err).__name__}: " + (carried[0] if carried and not isinstance(
        err, ValueError) else text)
    if isinstance(err, (ValueError, TypeError, FloatingPointError)):
        ok = True  # FloatingPointError: train.fit's documented NaN-loss error
    elif mode != "eager" and isinstance(err, RuntimeError) and "ValueError" in str(err):
        ok = True  # JaxRuntimeError / EquinoxRuntimeError carrying the check's message
    else:
        ok = False
    if ok and _names_arg(str(err), names):
        return "clear", msg
    return "unclear", msg


def _leaves(tree):
    return [np.asarray(t) for t in jax.tree_util.tree_leaves(tree)
            if isinstance(t, (jax.Array, np.ndarray, float, int, np.generic))]


def _converged(out):
    c = getattr(out, "converged", None)
    if c is None and isinstance(out, tuple) and out and hasattr(out[0], "converged"):
        c = out[0].converged
    return None if c is None else np.asarray(c)


def finite_mask(out) -> list[bool]:
    """Per leaf: all entries finite (non-float leaves count as finite)."""
    res = []
    for t in _leaves(out):
        res.append(not np.issubdtype(t.dtype, np.floating) or bool(np.all(np.isfinite(t))))
    return res


def classify_result(out, base_finite: list[bool] | None, item=None) -> tuple[str, str]:
    """Outcome of a call that returned; ``item`` selects one batch element (vmap)."""
    if item is not None:
        out = jax.tree_util.tree_map(lambda t: t[item] if np.ndim(t) else t, out)
    conv = _converged(out)
    leaves = _leaves(out)
    bad = []
    for i, t in enumerate(leaves):
        if base_finite is not None and i < len(base_finite) and not base_finite[i]:
            continue
        if np.issubdtype(t.dtype, np.floating) and not np.all(np.isfinite(t)):
            bad.append(i)
    sentinel = [i for i, t in enumerate(leaves) if np.issubdtype(t.dtype, np.integer)
                and t.dtype.itemsize >= 4 and t.size
                and (np.any(t == np.iinfo(t.dtype).max) or np.any(t == np.iinfo(t.dtype).min))]
    if conv is not None and not bool(np.all(conv)):
        return "flagged", f"converged={conv.tolist()}"
    if bad:
        what = "lying" if conv is not None else "nonfinite"
        return what, f"non-finite output leaves {bad} of {len(leaves)}"
    if sentinel:
        return "sentinel", f"integer output leaves {sentinel} at their dtype's extreme"
    return "accepted", ""


def _same(u, v) -> bool:
    u, v = np.asarray(u), np.asarray(v)
    if u.shape != v.shape:
        return False
    if np.issubdtype(u.dtype, np.floating):
        return bool(np.allclose(u, v, rtol=1e-4, atol=1e-5, equal_nan=True))
    return bool(np.array_equal(u, v))


# ------------------------------------------------------------------------------------------
# running


class Runner:
    """Runs mutations of one spec eagerly, under jit and under vmap, caching compilations
    (one jit and one vmap program per mutated argument, reused by all same-shape kinds)."""

    def __init__(self, spec: Spec, base: bool = True):
        self.spec = spec
        self._jit: dict[str, Callable] = {}
        self._vmap: dict[str, Callable] = {}
        self._base_out = None
        self._base_finite = None
        self._base_done = False
        self.base_error: str | None = None
        if base:
            self._base()

    def _base(self):
        """The valid call's output (computed once, lazily when ``base=False``)."""
        if not self._base_done:
            self._base_done = True
            try:
                self._base_out = self.spec.call()
                self._base_finite = finite_mask(self._base_out)
            except Exception as err:  # noqa: BLE001
                self.base_error = f"{type(err).__name__}: {err}"
        return self._base_out

    def _names(self, m: Mutation):
        v = self.spec.args.get(m.arg)
        if m.kind in ("nan", "inf") and not isinstance(v, (jax.Array, np.ndarray)):
            # a bad leaf inside a pytree argument (stats, mixture, state): its field name
            fields = list(getattr(v, "_fields", ()) or getattr(v, "__dataclass_fields__", ()))
            return [m.arg] + fields
        if m.kind in ("empty", "mismatch", "rank_up", "rank_down"):
            # a shape relation between arrays: naming any array argument is clear
            return [k for k, v in self.spec.args.items()
                    if isinstance(v, (jax.Array, np.ndarray)) and np.ndim(v) >= 1] + [m.arg]
        return [m.arg]

    def eager(self, m: Mutation) -> Outcome:
        args = dict(self.spec.args)
        args[m.arg] = m.value
        return self._run(m, "eager", lambda: self.spec.call(args), None)

    def _traced(self, arg):
        spec = self.spec

        def f(v):
            args = dict(spec.args)
            args[arg] = v
            return spec.call(args)
        return f

    def jit(self, m: Mutation) -> Outcome:
        if m.arg not in self._jit:
            self._jit[m.arg] = jax.jit(self._traced(m.arg))
        fn = self._jit[m.arg]
        return self._run(m, "jit", lambda: fn(m.value), None)

    def vmap(self, m: Mutation, bad_item: int = 1) -> Outcome:
        if m.arg not in self._vmap:
            self._vmap[m.arg] = jax.jit(jax.vmap(self._traced(m.arg)))
        fn = self._vmap[m.arg]
        good = jnp.asarray(self.spec.args[m.arg])
        pair = [good, jnp.asarray(m.value, good.dtype)]
        if bad_item == 0:
            pair = pair[::-1]
        stacked = jnp.stack(pair)
        res = self._run(m, "vmap", lambda: fn(stacked), 1 - bad_item, bad_item)
        return res

    def _run(self, m: Mutation, mode: str, thunk, good_item, bad_item=None) -> Outcome:
        name = self.spec.name
        try:
            out = thunk()
            jax.block_until_ready(out)
        except Exception as err:  # noqa: BLE001 - every exception is classified
            kind, detail = classify_error(err, self._names(m), mode)
            return Outcome(name, m.arg, m.kind, mode, kind, detail)
        if good_item is not None and self._base_out is not None:
            got = jax.tree_util.tree_map(lambda t: t[good_item] if np.ndim(t) else t, out)
            ga, ea = _leaves(got), _leaves(self._base_out)
            diff = [i for i, (u, v) in enumerate(zip(ga, ea)) if not _same(u, v)]
            if len(ga) != len(ea) or diff:
                return Outcome(name, m.arg, m.kind, mode, "batch",
                               f"valid element's leaves {diff} changed by the bad neighbour")
        kind, detail = classify_result(out, self._base_finite, bad_item)
        if kind in ("nonfinite", "lying") and not self._base_done:
            self._base()  # leaves non-finite on valid input too are not the mutation's fault
            kind, detail = classify_result(out, self._base_finite, bad_item)
        return Outcome(name, m.arg, m.kind, mode, kind, detail)


def run_spec(spec: Spec, *, pos: int = 0, huge: float = 1e20, tiny: float = 1e-30,
             jit_kinds=("nan", "huge", "tiny", "negative"), vmap_kinds=("nan",),
             bad_item: int = 1, jit_args: int | None = 1) -> list[Outcome]:
    """Every mutation eagerly; ``jit_kinds`` under jit and ``vmap_kinds`` under vmap (same-shape
    mutations only) on the first ``jit_args`` mutated arguments (None: all)."""
    runner = Runner(spec)
    if runner.base_error is not None:
        return [Outcome(spec.name, "-", "base", "eager", "unclear",
                        "the base call fails: " + runner.base_error)]
    muts = mutations(spec, pos=pos, huge=huge, tiny=tiny)
    out = [runner.eager(m) for m in muts]
    if spec.name in HOST_ONLY or callable(runner._base_out):
        return out  # host code, or a function that builds a function: eager only
    traced_args: list[str] = []
    for m in muts:
        if m.same_shape and m.arg not in traced_args:
            traced_args.append(m.arg)
    if jit_args is not None:
        traced_args = traced_args[:jit_args]
    for m in muts:
        if not m.same_shape or m.arg not in traced_args:
            continue
        if m.kind in jit_kinds:
            out.append(runner.jit(m))
        if m.kind in vmap_kinds:
            out.append(runner.vmap(m, bad_item))
    return out


def summary(outcomes: list[Outcome]) -> dict[str, Counter]:
    table: dict[str, Counter] = {}
    for o in outcomes:
        c = table.setdefault(o.name.split(".")[0], Counter())
        c["runs"] += 1
        c[o.outcome] += 1
        c["violations"] += o.violation
    return table


def format_table(table: dict[str, Counter]) -> str:
    cols = ["runs", "clear", "flagged", "accepted", "violations"]
    lines = [f"{'subpackage':12s}" + "".join(f"{c:>11s}" for c in cols)]
    total = Counter()
    for sub in sorted(table):
        lines.append(f"{sub:12s}" + "".join(f"{table[sub][c]:>11d}" for c in cols))
        total.update(table[sub])
    lines.append(f"{'total':12s}" + "".join(f"{total[c]:>11d}" for c in cols))
    return "\n".join(lines)
