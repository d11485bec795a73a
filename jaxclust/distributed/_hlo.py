r"""A reader of the collectives in compiled HLO text (for tests, benchmarks and examples).

Not public API: HLO text is not a stable format across XLA versions, so this parser is a
diagnostic of this repository (the sharded algorithms' tests check with it that no n-sized
array is communicated), kept in the package only so that tests, benchmarks and examples share
one copy. Use: ``collective_bytes(jax.jit(f).lower(*args).compile().as_text())``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .._core.results import with_summary_repr

__all__ = ["CollectiveOp", "collective_bytes", "collective_ops"]

_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
                "collective-broadcast")
_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_SHAPE = re.compile(r"\b(pred|[su](?:8|16|32|64)|bf16|f16|f32|f64|c64|c128)\[([0-9,]*)\]")
_OP = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s("
                 + "|".join(re.escape(c) for c in _COLLECTIVES) + r")(-start)?\(")
_COMP = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"(?:body|condition|to_apply|calls|branch_computations|true_computation|"
                    r"false_computation)=(\{[^}]*\}|%?[\w.\-]+)")


@with_summary_repr
class CollectiveOp(NamedTuple):
    """One collective of a compiled program.

    Attributes:
      kind: ``"all-reduce"``, ``"all-gather"``, ``"reduce-scatter"``, ``"all-to-all"`` or
        ``"collective-permute"``.
      shapes: the result shapes (one per buffer of a tuple-valued collective).
      nbytes: bytes of the result buffers on one device.
      computation: the HLO computation it belongs to.
      in_loop: whether it runs inside the body of a ``while`` loop (once per iteration).
      in_branch: whether, inside a loop, it sits in a branch of a conditional (it runs only
        in the iterations that take the branch, e.g. k-means' empty-cluster relocation).
    """

    kind: str
    shapes: tuple[tuple[int, ...], ...]
    nbytes: int
    computation: str
    in_loop: bool
    in_branch: bool = False


def collective_ops(hlo_text: str) -> list[CollectiveOp]:
    r"""The collectives of a compiled HLO module, e.g.
    ``jax.jit(f).lower(*args).compile().as_text()``.

    Asynchronous pairs (``all-reduce-start`` / ``-done``) count once. ``in_loop`` marks the
    collectives in a computation reachable from the body of a ``while`` (an iteration of
    Lloyd, Sinkhorn ...); ``in_branch`` those of them reached through a branch of a
    conditional called inside a loop.

    Args:
      hlo_text: the text of an HLO module.

    Returns:
      one :class:`CollectiveOp` per collective, in program order.
    """
    comp = ""
    calls: dict[str, set[str]] = {}
    bodies: set[str] = set()
    branches: dict[str, set[str]] = {}
    raw: list[tuple[str, tuple, int, str]] = []
    for line in hlo_text.splitlines():
        m = _COMP.match(line)
        if m and not line[0].isspace():  # a computation's header (instructions are indented)
            comp = m.group(1)
            calls.setdefault(comp, set())
            continue
        for cm in _CALLS.finditer(line):
            names = {s.strip().lstrip("%") for s in cm.group(1).strip("{}").split(",") if s.strip()}
            calls.setdefault(comp, set()).update(names)
            if line.find(" while(") >= 0 and cm.group(0).startswith("body="):
                bodies |= names
            if cm.group(0).startswith(("branch_computations=", "true_computation=",
                                       "false_computation=")):
                branches.setdefault(comp, set()).update(names)
        m = _OP.match(line)
        if m is None:
            continue
        found = _SHAPE.findall(m.group(1))
        if m.group(3) and m.group(2) != "all-reduce" and len(found) > 1:
            # an async start returns (operands, results[, u32[] contexts]): keep the results
            found = [f for f in found if f != ("u32", "")] or found
            found = found[len(found) // 2:]
        bufs = [(tuple(int(s) for s in dims.split(",") if s), _DTYPE_BYTES[dt])
                for dt, dims in found]
        shapes = tuple(shape for shape, _ in bufs)
        nbytes = sum(size * int(np.prod(shape, dtype=np.int64)) for shape, size in bufs)
        raw.append((m.group(2), shapes, nbytes, comp))
    looped = _reachable(bodies, calls)
    in_branch = _reachable(set().union(*[branches.get(c, set()) for c in looped]), calls)
    return [CollectiveOp(k, s, b, c, c in looped, c in looped and c in in_branch)
            for k, s, b, c in raw]


def _reachable(roots: set[str], calls: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        c = stack.pop()
        if c not in seen:
            seen.add(c)
            stack += list(calls.get(c, ()))
    return seen


def collective_bytes(hlo_text: str) -> dict[str, int]:
    r"""Bytes moved by the collectives of a compiled HLO module, per device.

    The count is the size of each collective's result on one device: for an all-reduce
    the reduced buffer (a ring all-reduce sends about twice that over the wire), for an
    all-gather the gathered buffer.

    Args:
      hlo_text: the text of an HLO module (``jax.jit(f).lower(*a).compile().as_text()``).

    Returns:
      dict with one entry per collective kind present (bytes, whole program text, each op
      counted once), ``"total"`` (their sum), ``"per_iteration"`` (the collectives inside
      ``while`` bodies outside conditional branches: bytes of every iteration of the loop),
      ``"per_iteration_branches"`` (those in conditional branches inside loops: bytes of the
      iterations that take the branch) and ``"max_dim"`` (the largest dimension of any
      collective's buffer, to check that no n-sized array is communicated).

    Example:
      >>> text = "ENTRY %main (p: f32[4,3]) -> f32[4,3] {\n" \
      ...        "  %ar = f32[4,3]{1,0} all-reduce(f32[4,3]{1,0} %p), to_apply=%add\n}"
      >>> collective_bytes(text)["all-reduce"]
      48
    """
    ops = collective_ops(hlo_text)
    out: dict[str, int] = {}
    for op in ops:
        out[op.kind] = out.get(op.kind, 0) + op.nbytes
    out["total"] = sum(op.nbytes for op in ops)
    out["per_iteration"] = sum(op.nbytes for op in ops if op.in_loop and not op.in_branch)
    out["per_iteration_branches"] = sum(op.nbytes for op in ops if op.in_branch)
    out["max_dim"] = max((max(s, default=0) for op in ops for s in op.shapes), default=0)
    return out
