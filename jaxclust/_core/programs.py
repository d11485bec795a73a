"""Solvers compiled for eager calls: a default program and a quick-to-compile one.

A first eager call of a solver costs its compile time, which for a small problem is most of
the latency a user sees (seconds, against milliseconds of run time). XLA's CPU backend
compiles several times faster with the classic loop emitters, no LLVM optimisation and one
LLVM module (:data:`QUICK_OPTIONS`); the generated code is the same HLO, so results agree to
float32 rounding, and it runs slower (about 1-3x on small problems). A program run this way
must not rely on two fusions recomputing a value bit-identically: on an AMD EPYC the quick
flavour rounded ``c - 2 x y`` differently in two fusions of k-means' assignment (a
multiply-add contracted in one only), see ``cluster/lloyd._first_min``. :class:`EagerProgram`
keeps both flavours of one jitted function and picks the quick one for small problems on
CPU; under a transformation (an outer ``jit``, ``vmap``, ``grad``) the default is used and
inlined, and the outer program's options apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import jax

from . import checks

#: XLA options of the eager programs of small problems (CPU only). Measured on the 2-core
#: Xeon (compile CPU time, default -> quick): k-means 300 x 8, k = 3: 1.3 -> 0.3 s;
#: Sinkhorn 300 x 300: 1.4 -> 0.4 s; ADMM k-means SDP n = 300: 2.3 -> 0.6 s; GMM
#: 300 x 8, k = 4, full covariances: first call (wall) 3.5 -> 1.6 s with these options
#: alone, 0.7-1.1 s with its checks on the host too (benchmarks/results/compile.md).
QUICK_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0,
                 "xla_cpu_parallel_codegen_split_count": 1}
#: default size (the caller's ``work`` measure) up to which a problem counts as small
QUICK_WORK = 1 << 18
#: the options this XLA accepts: an option it rejects ("No such compile option: 'name'";
#: jaxlib 0.11 dropped ``xla_cpu_use_fusion_emitters``) is removed for the session
_options = dict(QUICK_OPTIONS)
_REJECTED = re.compile(r"No such compile option: '([\w.]+)'")


def _jaxlib_minor() -> tuple[int, int]:
    import jaxlib

    parts = re.findall(r"\d+", getattr(jaxlib, "__version__", "0.0"))[:2]
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, 0)


if _jaxlib_minor() >= (0, 11):  # known removed there: no failed first compile to find it out
    _options.pop("xla_cpu_use_fusion_emitters", None)


class EagerProgram:
    """``fn`` jitted twice: by default and with :data:`QUICK_OPTIONS`.

    Call it as ``program(work, *args, **kwargs)``: the quick flavour runs when ``work <=
    quick_work``, the backend is the CPU and no argument is traced; otherwise the default.
    An option this XLA rejects is dropped for the session and the call retried with the
    others; with none left the default flavour is used.
    """

    def __init__(self, fn: Callable, static_argnames: Sequence[str] | str = (), *,
                 quick_work: int = QUICK_WORK):
        self._fn, self._static = fn, static_argnames
        self.full = jax.jit(fn, static_argnames=static_argnames)
        self._quick: Callable | None = None
        self._quick_options: dict | None = None
        self.quick_work = quick_work

    @property
    def quick(self) -> Callable | None:
        """The quick flavour, jitted with the options this XLA accepts (None: none left)."""
        if not _options:
            return None
        if self._quick is None or self._quick_options != _options:
            try:
                self._quick = jax.jit(self._fn, static_argnames=self._static,
                                      compiler_options=dict(_options))
            except TypeError:  # a jax whose jit takes no compiler_options
                _options.clear()
                return None
            self._quick_options = dict(_options)
        return self._quick

    def __call__(self, work: int, *args, **kwargs):
        if (work <= self.quick_work and jax.default_backend() == "cpu"
                and not checks.is_traced(args, kwargs)):
            while (quick := self.quick) is not None:
                try:
                    return quick(*args, **kwargs)
                except Exception as err:  # an option this XLA lacks: drop it and retry
                    rejected = _REJECTED.search(str(err))
                    if rejected is None or rejected.group(1) not in _options:
                        raise
                    del _options[rejected.group(1)]
        return self.full(*args, **kwargs)


def eager_program(static_argnames: Sequence[str] | str = (), *, quick_work: int = QUICK_WORK):
    """Decorator form of :class:`EagerProgram`."""

    def wrap(fn: Callable) -> EagerProgram:
        return EagerProgram(fn, static_argnames, quick_work=quick_work)

    return wrap
