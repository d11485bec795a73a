"""Debiased Sinkhorn divergence."""

from __future__ import annotations

from jaxtyping import Array, Float

from .sinkhorn import sinkhorn

__all__ = ["sinkhorn_divergence"]


def sinkhorn_divergence(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    a: Float[Array, " n"] | None = None,
    b: Float[Array, " m"] | None = None,
    *,
    epsilon: float | Float[Array, ""],
    cost: str = "sqeuclidean",
    **kwargs,
) -> Float[Array, ""]:
    r"""Debiased Sinkhorn divergence between two weighted point clouds.

    $$
        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
        - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha)
        - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta),
    $$

    with $\mathrm{OT}_\varepsilon$ the balanced entropic objective
    ([`SinkhornResult.reg_cost`][jaxclust.ot.SinkhornResult.reg_cost]). For the squared
    Euclidean cost it is non-negative, zero iff $\alpha = \beta$, and interpolates
    between OT (``epsilon -> 0``) and MMD (``epsilon -> inf``). Differentiable in ``x``,
    ``y``, ``a``, ``b``; extra keyword arguments (``tol``, ``max_iter``, ``implicit``,
    ``chunk_size`` ...) go to [`sinkhorn`][jaxclust.ot.sinkhorn].

    Example:
      >>> import jax
      >>> from jaxclust.ot import sinkhorn_divergence
      >>> x = jax.random.normal(jax.random.key(0), (50, 2))
      >>> float(sinkhorn_divergence(x, x, epsilon=0.1))
      0.0
      >>> bool(sinkhorn_divergence(x, x + 1.0, epsilon=0.1) > 0.5)
      True

    References:
      Feydy et al., "Interpolating between Optimal Transport and MMD using Sinkhorn
      Divergences", AISTATS 2019. Genevay, Peyré, Cuturi, "Learning Generative Models with
      Sinkhorn Divergences", AISTATS 2018.
    """
    for key in ("tau_a", "tau_b", "mass"):
        if key in kwargs:
            raise ValueError(f"`{key}` is not supported: sinkhorn_divergence is defined here "
                             "for balanced OT.")
    kw = dict(epsilon=epsilon, cost=cost, **kwargs)
    xy = sinkhorn(x, y, a, b, **kw).reg_cost
    xx = sinkhorn(x, x, a, a, **kw).reg_cost
    yy = sinkhorn(y, y, b, b, **kw).reg_cost
    return xy - 0.5 * (xx + yy)
