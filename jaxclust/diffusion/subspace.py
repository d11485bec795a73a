r"""K-subspaces: fitting the subspaces of a mixture of low-rank Gaussians to data.

The optimal denoiser of a MoLRG with equal weights depends on the data through the energies
$\lVert U_k^\top x\rVert^2$ only ([`mixture_posterior`][jaxclust.diffusion.mixture_posterior]),
and as the noise vanishes its posterior becomes the hard assignment
$\arg\max_k \lVert U_k^\top x\rVert^2$. Fitting the subspaces by minimising the residual

$$
  \min_{U_1..U_K,\; U_k^\top U_k = I}\; \frac1n\sum_i \min_k \lVert x_i - U_kU_k^\top x_i\rVert^2
$$

is K-subspaces clustering, solved by alternating assignment and a rank-$d$ PCA per cluster
(a Lloyd iteration on subspaces). Wang et al. (2024) show that training the diffusion loss
on a MoLRG amounts to this problem.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._core import checks
from .._core.results import with_summary_repr
from ._utils import check_int, pow2_scale

__all__ = ["KSubspacesResult", "k_subspaces"]

_HI = jax.lax.Precision.HIGHEST


@with_summary_repr
class KSubspacesResult(NamedTuple):
    """Result of [`k_subspaces`][jaxclust.diffusion.k_subspaces] (a pytree).

    Attributes:
      bases: orthonormal bases of the fitted subspaces, shape ``(k, D, d)``.
      labels: subspace of each point, ``argmax_k ||U_k^T x_i||^2``, shape ``(n,)``.
      objective: mean squared distance of the points to their subspace (minimised); also
        readable as ``residual``.
      n_iters: iterations run (best restart).
      converged: the labels stopped changing before ``max_iter`` and the residual is
        finite (it overflows for data of magnitude ~1e20 in float32; labels and bases are
        still exact, the fit runs on rescaled data).
    """

    bases: Float[Array, "k D d"]
    labels: Int[Array, " n"]
    objective: Float[Array, ""]
    n_iters: Int[Array, ""]
    converged: Bool[Array, ""]

    @property
    def residual(self) -> Float[Array, ""]:
        """Read-only alias of ``objective`` (this result's name for it before the shared
        vocabulary: every result calls its objective ``objective``)."""
        return self.objective


def _assign(x, U):
    proj = jnp.einsum("nD,kDd->nkd", x, U, precision=_HI)
    energy = jnp.sum(proj * proj, axis=2)  # (n, k)
    labels = jnp.argmax(energy, axis=1)
    resid = jnp.sum(x * x, axis=1) - jnp.max(energy, axis=1)
    return labels, jnp.mean(jnp.maximum(resid, 0.0))


def _fit(x, labels, U_old):
    k, D, d = U_old.shape
    onehot = jax.nn.one_hot(labels, k, dtype=x.dtype)  # (n, k)
    S = jnp.einsum("nk,nD,nE->kDE", onehot, x, x, precision=_HI)
    _, vecs = jnp.linalg.eigh(S)  # ascending eigenvalues
    U = vecs[:, :, D - d:][:, :, ::-1]
    counts = jnp.sum(onehot, axis=0)
    return jnp.where((counts >= 1)[:, None, None], U, U_old)


@functools.partial(jax.jit, static_argnums=2)
def _run(x, U0, max_iter):
    labels0, _ = _assign(x, U0)

    def cond(state):
        _, _, it, changed = state
        return changed & (it < max_iter)

    def body(state):
        U, labels, it, _ = state
        U = _fit(x, labels, U)
        new, _ = _assign(x, U)
        return U, new, it + 1, jnp.any(new != labels)

    U, labels, it, changed = jax.lax.while_loop(
        cond, body, (U0, labels0, jnp.asarray(0), jnp.asarray(True)))
    _, resid = _assign(x, U)
    return KSubspacesResult(U, labels, resid, it, ~changed)


def k_subspaces(x: Float[Array, "n D"], k: int, d: int, *, key: PRNGKeyArray | None = None,
                n_init: int = 10, max_iter: int = 100, init: Array | None = None
                ) -> KSubspacesResult:
    r"""K-subspaces clustering of ``x`` into ``k`` linear subspaces of dimension ``d``
    (module docstring): alternate the assignment $\ell_i = \arg\max_k \lVert U_k^\top
    x_i\rVert^2$ and the refit of $U_k$ as the top-$d$ eigenvectors of
    $\sum_{\ell_i = k} x_ix_i^\top$, until the labels stop changing. ``n_init`` restarts
    from random orthonormal bases run under ``vmap``; the one of least residual is
    returned. ``init`` (shape ``(k, D, d)``, orthonormalised by QR) replaces the random
    starts.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxclust.diffusion import MoLRG, k_subspaces, mixture_sample
      >>> U = jnp.stack([jnp.eye(6)[:, 2 * i:2 * i + 2] for i in range(3)])  # 3 planes
      >>> x, y = mixture_sample(jax.random.key(0), MoLRG(jnp.ones(3) / 3, U, 1e-4), 90)
      >>> res = k_subspaces(x, 3, 2, key=jax.random.key(1), n_init=4)
      >>> bool(res.residual < 1e-2)
      True

    References:
      Bradley & Mangasarian, "k-Plane Clustering", J. Global Optimization 2000. Tseng,
      "Nearest q-Flat to m Points", JOTA 2000. Wang et al., "Diffusion Models Learn
      Low-Dimensional Distributions via Subspace Clustering", 2024.
    """
    x = checks.as_float_array(x, "x")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # eigh needs float32 at least
    checks.check_ndim(x, "x", 2, "(n, D)")
    if x.size == 0:
        raise ValueError(f"`x` is empty (shape {tuple(x.shape)}); pass at least k points of "
                         "dimension >= 1.")
    x = checks.check_finite(x, "x")
    # K-subspaces is scale-invariant: fit in units of a power of two of the data's magnitude
    # (exact), so the energies ||U^T x||^2 neither overflow (x ~ 1e20) nor underflow; the
    # residual is scaled back (and converged is False if it overflows)
    scale = pow2_scale(jnp.max(jnp.abs(x)))
    x = x / scale
    n, D = x.shape
    checks.check_num_clusters(k, n)
    d = check_int(d, "d")
    if d > D:
        raise ValueError(f"`d` must be <= D = {D} (the data dimension), got {d}.")
    max_iter = check_int(max_iter, "max_iter")
    if init is not None:
        U0 = checks.as_float_array(init, "init").astype(x.dtype)
        if U0.shape != (k, D, d):
            raise ValueError(f"`init` must have shape (k, D, d) = {(k, D, d)}, got {U0.shape}.")
        U0 = jnp.linalg.qr(checks.check_finite(U0, "init"))[0]
        return _rescaled(_run(x, U0, max_iter), scale)
    if key is None:
        raise ValueError("`key` is required for random starts (or pass `init`).")
    n_init = check_int(n_init, "n_init")
    U0 = jnp.linalg.qr(jax.random.normal(checks.check_key(key), (n_init, k, D, d), x.dtype))[0]
    return _rescaled(_best_of(x, U0, max_iter), scale)


def _rescaled(res: KSubspacesResult, scale) -> KSubspacesResult:
    residual = res.residual * scale * scale
    # converged never lies: a residual beyond the float range is not a converged result
    return res._replace(objective=residual, converged=res.converged & jnp.isfinite(residual))


@functools.partial(jax.jit, static_argnums=2)
def _best_of(x, U0, max_iter):
    runs = jax.vmap(lambda u: _run(x, u, max_iter))(U0)
    best = jnp.argmin(runs.residual)
    return jax.tree_util.tree_map(lambda a: a[best], runs)
