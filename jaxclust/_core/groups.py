"""Row minima over many centres without an ``(n, k, d)`` tensor of differences.

Several quantities are a minimum over ``k`` centres of a per-pair value computed from the
exactly centred differences ``x_i - c_j`` (k-means' nearest squared distance, the
Mahalanobis OOD score). Forming all ``n x k x d`` differences at once is the simplest
program and the fastest for small problems, but its memory grows as ``n k d``: 2 GB for
10,000 points of width 512 against 100 centres. :func:`grouped_row_min` evaluates the pairs
for groups of centres in turn (``lax.scan`` with a rematerialised body, so that reverse mode
keeps no per-group differences either) and keeps the running minimum; :func:`map_groups`
maps any per-centre function in such groups.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["DIFF_ENTRIES", "grouped_row_min", "map_groups"]

#: entries (points x centres x features) of the centred differences formed at once: 4 Mi
#: (16 MiB in float32); past it the centres are taken in groups
DIFF_ENTRIES = 1 << 22


def grouped_row_min(pair_values: Callable[[jax.Array, jax.Array], jax.Array], x: jax.Array,
                    centres: jax.Array, budget: int | None = None) -> jax.Array:
    """``min_j pair_values(x, centres)[:, j]``, shape ``(n,)``.

    ``pair_values(x, c)`` maps ``(n, d)`` points and ``(g, d)`` centres to ``(n, g)``
    values, forming about ``n g d`` entries. All ``k`` centres go in one call while
    ``n k d <= budget`` (default :data:`DIFF_ENTRIES`, read at trace time); otherwise groups
    of ``budget // (n d)`` centres (at least one) in a scan that keeps the running minimum.
    The last group is completed with copies of the first centre, which change neither the
    minimum nor its derivative (a tie between equal functions of the inputs). Same values
    as the one-call form: each entry is computed by the same ``pair_values``.
    """
    n, d = x.shape
    k = centres.shape[0]
    budget = DIFF_ENTRIES if budget is None else budget
    group = max(1, budget // max(1, n * d))
    if group >= k:
        return jnp.min(pair_values(x, centres), axis=1)
    n_groups = -(-k // group)
    padded = jnp.concatenate([centres, jnp.broadcast_to(centres[:1],
                                                        (n_groups * group - k, d))])

    def step(best, c):
        return jnp.minimum(best, jnp.min(pair_values(x, c), axis=1)), None

    best, _ = jax.lax.scan(jax.checkpoint(step),
                           jnp.full((n,), jnp.inf, jnp.result_type(x.dtype, centres.dtype)),
                           padded.reshape(n_groups, group, d))
    return best


def map_groups(fn: Callable, *args, entries: int):
    """``jax.vmap(fn)(*args)`` over the leading (centre) axis of ``args``, in groups of at
    most ``DIFF_ENTRIES // entries`` centres (``entries``: what ``fn`` forms per centre, e.g.
    ``n d``) run one after another by ``lax.map``, each group's body rematerialised
    (``jax.checkpoint``). Same arithmetic per centre in both schedules."""
    k = jax.tree_util.tree_leaves(args)[0].shape[0]
    group = max(1, DIFF_ENTRIES // max(1, entries))
    if group >= k:
        return jax.vmap(fn)(*args)
    return jax.lax.map(jax.checkpoint(lambda a: fn(*a)), args, batch_size=group)
