"""Conformance registry: every public function of jaxclust, on a small problem, under
``jit``, ``vmap`` (batch of 3) and, where differentiable, float64 finite differences.

A new public function must be added to ``CASES`` (``test_every_public_function_is_registered``
fails otherwise).

Balanced potentials are defined up to a constant shift ``(f + c, g - c)``, so the sinkhorn
cases return gauge-invariant quantities only: the plan, ``reg_cost``, ``linear_cost``.
Weights are normalised inside the wrapped functions so that the multiplicative
perturbations of the vmap and finite-difference checks keep the problem balanced.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxclust
import jaxclust.cluster as jcl
import jaxclust.metrics as jmet
import jaxclust.ot as jot
import jaxclust.sdp as jsdp

from .conformance import Case, check_grad_fd, check_jit, check_vmap, pillar_cases
from .utils import weights


def _tol(dtype):
    # float64 is for the finite-difference checks (solve to 1e-10); float32 to 1e-5 (well
    # above its rounding floor of ~1e-7 on these unit-scale problems).
    return 1e-10 if dtype == jnp.float64 else 1e-5


def _outputs(res):
    return res.plan, res.reg_cost, res.linear_cost, res.converged


def _balanced(x, y, a, b):
    res = jot.sinkhorn(x, y, a / a.sum(), b / b.sum(), epsilon=0.5, tol=_tol(x.dtype),
                       max_iter=5000)
    return _outputs(res)


def _balanced_eps(x, y, eps):
    res = jot.sinkhorn(x, y, epsilon=eps, tol=_tol(x.dtype), max_iter=5000)
    return _outputs(res)


def _balanced_unrolled(x, y, a, b):
    res = jot.sinkhorn(x, y, a / a.sum(), b / b.sum(), epsilon=0.5, tol=_tol(x.dtype),
                       max_iter=3000, implicit=False)
    return _outputs(res)


def _unbalanced(x, y, a, b):
    # masses 1 and ~1.5 on purpose: the relaxation has something to do
    res = jot.sinkhorn(x, y, a, b, epsilon=0.5, tau_a=0.8, tau_b=0.6, tol=_tol(x.dtype),
                       max_iter=5000)
    return _outputs(res)


def _partial(x, y, a, b):
    res = jot.sinkhorn(x, y, a / a.sum(), b / b.sum(), epsilon=0.5, mass=0.7,
                       tol=_tol(x.dtype), max_iter=5000)
    return _outputs(res)


def _online(x, y, a, b):
    # chunk_size 5 does not divide n = 12
    res = jot.sinkhorn(x, y, a / a.sum(), b / b.sum(), epsilon=0.5, tol=_tol(x.dtype),
                       max_iter=5000, chunk_size=5)
    return res.marginals, res.reg_cost, res.linear_cost, res.apply(jnp.sin(y[:, 0]))


def _from_cost(C, a, b):
    res = jot.sinkhorn_from_cost(C, a / a.sum(), b / b.sum(), epsilon=0.3, tol=_tol(C.dtype),
                                 max_iter=5000)
    return _outputs(res)


def _divergence(x, y):
    res = jot.sinkhorn_divergence(x, y, epsilon=0.5, tol=_tol(x.dtype), max_iter=5000)
    return res.divergence, res.converged


def _swav(scores):
    return jot.swav_codes(scores, epsilon=0.5, n_iter=3)


def _default_eps_points(x, y):
    return jot.default_epsilon(x, y)


def _default_eps_cost(C):
    return jot.default_epsilon(C, scale=0.1)


def _kmeans(x):
    res = jcl.kmeans(x, 3, key=jax.random.key(0), n_init=2)
    return res.centroids, res.labels, res.inertia


def _kmeans_spherical(x):
    res = jcl.kmeans(x, 3, key=jax.random.key(0), spherical=True)
    return res.centroids, res.labels, res.inertia


def _kmeans_predict(x, c):
    return jcl.kmeans_predict(x, c), jcl.kmeans_predict(x, c, spherical=True)


def _kmeans_plusplus(x):
    return jcl.kmeans_plusplus(x, 3, key=jax.random.key(0))


_LT = jnp.asarray([0, 0, 1, 1, 2, 2, 2, 0, 1, 2, 0, 1], jnp.int32)
_LP = jnp.asarray([1, 1, 0, 0, 3, 2, 2, 1, 0, 3, 1, 2], jnp.int32)


def _contingency(lt, lp):
    return jmet.contingency(lt, lp, n_true=3, n_pred=4)


def _nmi(lt, lp):
    return jmet.nmi(lt, lp, n_true=3, n_pred=4)


def _ari(lt, lp):
    return jmet.ari(lt, lp, n_true=3, n_pred=4)


def _inertia(x, c):
    return jmet.inertia(x, c, _LT[: x.shape[0]])


def _silhouette(x):
    return jmet.silhouette(x, _LT, k=3)


def _soft_kmeans(x, t):
    res = jcl.soft_kmeans(x, 3, temperature=t, key=jax.random.key(0), tol=_tol(x.dtype) * 1e-2,
                          max_iter=2000)
    return res.centroids, res.assignments, res.energy


def _soft_kmeans_unrolled(x):
    res = jcl.soft_kmeans(x, x[:3], temperature=1.0, tol=_tol(x.dtype) * 1e-2, max_iter=300,
                          implicit=False)
    return res.centroids, res.assignments, res.energy


def _sinkhorn_kmeans(x):
    res = jcl.sinkhorn_kmeans(x, x[jnp.array([0, 5, 9])], epsilon=1.0, tol=_tol(x.dtype) * 1e-1,
                              sinkhorn_tol=_tol(x.dtype) * 1e-2, max_iter=300)
    return res.centroids, res.assignments, res.loss


def _minibatch_kmeans(x):
    res = jcl.minibatch_kmeans(x, 3, key=jax.random.key(0), batch_size=6, max_steps=10)
    return res.centroids, res.labels, res.inertia


def _minibatch_update(c, x):
    state, loss = jcl.minibatch_kmeans_update(jcl.minibatch_kmeans_init(c), x)
    state, loss2 = jcl.minibatch_kmeans_update(state, x[::-1])
    return state.centroids, state.counts, loss + loss2


_LAB2 = jnp.asarray([0, -1, -1, -1, -1, -1, 1, -1, -1, -1, -1, -1], jnp.int32)


def _affinity(x):
    return jcl.affinity_matrix(x, gamma=0.5), jcl.affinity_matrix(x, kind="knn", n_neighbors=3)


def _spectral(x):
    # eigenvalues, the sign/rotation-invariant projector of the embedding, the inertia
    res = jcl.spectral(x, 2, key=jax.random.key(0), gamma=0.5, n_components=3, n_init=2)
    e = res.embedding
    return res.labels, res.eigenvalues, e @ e.T, res.inertia


def _laplacian_kmeans(x):
    # kNN graph (piecewise constant in x), two labelled points, a fixed iteration count
    res = jcl.laplacian_kmeans(x, 2, init=x[jnp.asarray([0, 6])], n_neighbors=3, lam=0.5,
                               labels=_LAB2, temperature=0.5, max_iter=8, inner_iter=3, tol=0.0)
    return res.labels, res.assignments, res.centroids, res.objective


def _laplacian_kmeans_rbf(x):
    # differentiable, indefinite affinity of x: gradients also flow through W and eigvalsh(W)
    w = jcl.affinity_matrix(x, gamma=0.5) * (1.0 - jnp.eye(x.shape[0], dtype=x.dtype))
    res = jcl.laplacian_kmeans(x, 2, init=x[jnp.asarray([0, 6])], affinity=w, lam=0.5,
                               labels=_LAB2, temperature=0.5, max_iter=8, inner_iter=3, tol=0.0)
    return res.labels, res.assignments, res.centroids, res.final_objective


def _two_groups(x):
    # shift the points with _LT % 2 == 1 by 5 along the first axis: two separated groups, so
    # EM converges in a few steps from the fixed soft start and the fit is smooth in x
    side = (_LT % 2).astype(x.dtype)[:, None] * jnp.asarray([[5.0, 0.0]], x.dtype)
    return x + side, 0.1 + 0.8 * jax.nn.one_hot(_LT % 2, 2, dtype=x.dtype)


def _gmm(x):
    xs, r0 = _two_groups(x)
    tol = 1e-14 if x.dtype == jnp.float64 else 1e-6
    res = jcl.gmm(xs, 2, key=jax.random.key(0), init=r0, tol=tol, max_iter=500)
    return res.means, res.covariances, res.weights, res.responsibilities, res.log_likelihood


def _gmm_unrolled(x):
    xs, r0 = _two_groups(x)
    res = jcl.gmm(xs, 2, key=jax.random.key(0), init=r0, covariance_type="diag", tol=0.0,
                  max_iter=8, implicit=False)
    return res.means, res.covariances, res.weights, res.log_likelihood


def _gmm_log_prob(x, means, w):
    return jcl.gmm_log_prob(x, means, jnp.asarray([0.5, 1.5, 1.0], x.dtype), w / w.sum(),
                            covariance_type="spherical")


def _soft_assignment(x, c, t):
    return (jcl.soft_assignment(x, c, temperature=t),
            jcl.soft_assignment(x, c, temperature=t, kind="student_t", alpha=1.5))


def _kmeans_loss(x, c, w):
    # hard (a.e. differentiable: no ties on this problem) and soft
    return jcl.kmeans_loss(x, c, weights=w), jcl.kmeans_loss(x, c, temperature=0.5, weights=w)


def _nt_xent(za, zb, t):
    return jcl.nt_xent_loss(za, zb, temperature=t)


def _swav_loss(sa, sb, t):
    # the gradient in the scores holds the codes constant (SwAV's), not the derivative of the
    # loss: finite differences only in the temperature
    return jcl.swav_loss(sa, sb, temperature=t, epsilon=0.5)


def _kmedoids(x):
    res = jcl.kmedoids(x, 3)
    return res.loss, res.medoids, res.labels


def _kmedoids_pam_precomputed(d, w):
    res = jcl.kmedoids(d, 3, metric="precomputed", method="pam", weights=w)
    return res.loss, res.medoids, res.labels


def _pam_build(x):
    return jcl.pam_build(x, 3)


def _minibatch_init(c):
    return tuple(jcl.minibatch_kmeans_init(c))


def _blobs3(x):
    # three separated groups of four points (exact recovery regime for the SDP)
    shift = jnp.repeat(jnp.asarray([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], x.dtype), 4, axis=0)
    return 0.3 * x + shift


def _kmeans_sdp_admm(x):
    # labels up to permutation: compare the partition through its membership matrix; solved
    # to float32's floor, so runs that stop at different iterations agree to rounding
    res = jsdp.kmeans_sdp(_blobs3(x), 3, solver=jsdp.ADMM(tol=1e-7, max_iter=3000),
                          key=jax.random.key(0))
    return res.Z, jsdp.membership_matrix(res.labels, 3), res.objective


def _kmeans_sdp_bm(x):
    res = jsdp.kmeans_sdp(_blobs3(x), 3, solver=jsdp.BurerMonteiro(), key=jax.random.key(0))
    return res.Z, jsdp.membership_matrix(res.labels, 3), res.objective


_LA_INIT = jnp.asarray([0, 0, 0, 1, 1, 1, 1, 0, 2, 2, 2, 1], jnp.int32)


def _la_sdp(x):
    # labels up to permutation (membership matrix) and the fitted proportions, which a
    # permutation reorders: compare them sorted
    # started from a partition with two points misplaced (no k-means SDP inside: one
    # compilation less per check)
    res = jsdp.la_sdp(_blobs3(x), 3, key=jax.random.key(0), covariance_type="spherical",
                      reg_covar=1e-2, init_labels=_LA_INIT)
    return jsdp.membership_matrix(res.labels, 3), jnp.sort(res.proportions)


def _membership_matrix(lt):
    return jsdp.membership_matrix(lt, 3)


def _round_labels(x):
    z = jsdp.membership_matrix(jnp.repeat(jnp.arange(3), 4), 3) + 0.01 * x @ x.T
    return jsdp.membership_matrix(jsdp.round_labels(z, 3, key=jax.random.key(0)), 3)


def _spectral_embedding(x):
    z = jsdp.membership_matrix(jnp.repeat(jnp.arange(3), 4), 3) + 0.01 * x @ x.T
    e = jsdp.spectral_embedding(z, 3)
    return e @ e.T  # sign/rotation invariant


# public functions that run a host algorithm and are documented as not jittable
HOST_ONLY: set[str] = set()


def _make_cases() -> list[Case]:
    rng = np.random.default_rng(1234)
    f32 = lambda t: jnp.asarray(t, jnp.float32)  # noqa: E731
    x = f32(rng.normal(size=(12, 2)))
    y = f32(rng.normal(size=(9, 2)) + 0.5)
    a = f32(weights(rng, 12))
    b = f32(weights(rng, 9))
    b15 = f32(weights(rng, 9, total=1.5))
    C = f32(rng.uniform(0.0, 1.0, size=(7, 6)))
    scores = f32(rng.normal(size=(10, 4)))
    c3 = f32(np.random.default_rng(7).normal(size=(3, 2)))
    xd = np.asarray(x, np.float64)
    dm = f32(np.sqrt(((xd[:, None] - xd[None]) ** 2).sum(-1)))
    rng7 = np.random.default_rng(7)  # two blobs with clear Laplacian eigengaps
    x2 = f32(np.r_[rng7.normal(size=(6, 2)), rng7.normal(size=(6, 2)) + 3.0])
    return [
        Case("sinkhorn-balanced", "sinkhorn", _balanced, (x, y, a, b), (0, 1, 2, 3)),
        # the finite-difference checks of the epsilon, unbalanced and partial cases repeat
        # tests/ot/test_grad.py (which also compares with unrolled gradients): slow here
        Case("sinkhorn-epsilon", "sinkhorn", _balanced_eps, (x, y, f32(0.4)), (2,),
             slow_grad=True),
        Case("sinkhorn-unrolled", "sinkhorn", _balanced_unrolled, (x, y, a, b), (0, 3),
             slow=True),
        Case("sinkhorn-unbalanced", "sinkhorn", _unbalanced, (x, y, a, b15), (0, 1, 2, 3),
             slow_grad=True),
        Case("sinkhorn-partial", "sinkhorn", _partial, (x, y, a, b), (0, 2), slow_grad=True),
        # online gradients are also compared with dense ones in tests/ot/test_online.py
        Case("sinkhorn-online", "sinkhorn", _online, (x, y, a, b), (0, 1, 2), slow_grad=True),
        Case("sinkhorn_from_cost", "sinkhorn_from_cost", _from_cost, (C, f32(weights(rng, 7)),
             f32(weights(rng, 6))), (0, 1, 2)),
        # three balanced solves, slow: the balanced case checks the same machinery, and
        # tests/ot/test_divergence.py runs the divergence under jit(vmap) and grad
        Case("sinkhorn_divergence", "sinkhorn_divergence", _divergence, (x, y), (0, 1),
             slow=True),
        Case("swav_codes", "swav_codes", _swav, (scores,)),
        Case("default_epsilon-points", "default_epsilon", _default_eps_points, (x, y), (0, 1)),
        Case("default_epsilon-cost", "default_epsilon", _default_eps_cost, (C,), (0,)),
        # hard assignments: piecewise constant, so jit and vmap only
        # k-means: envelope gradients (labels fixed), exact where the labels are stable
        Case("kmeans", "kmeans", _kmeans, (x,), (0,)),
        Case("kmeans-spherical", "kmeans", _kmeans_spherical, (x,), (0,)),
        Case("kmeans_predict", "kmeans_predict", _kmeans_predict, (x, c3), (0, 1)),
        Case("soft_kmeans", "soft_kmeans", _soft_kmeans, (x, f32(0.8)), (0, 1)),
        Case("soft_kmeans-unrolled", "soft_kmeans", _soft_kmeans_unrolled, (x,), (0,),
             slow_grad=True),
        Case("sinkhorn_kmeans", "sinkhorn_kmeans", _sinkhorn_kmeans, (x,), (0,), slow_grad=True),
        # stochastic streaming fit: no exact derivative (documented); jit/vmap only
        Case("minibatch_kmeans", "minibatch_kmeans", _minibatch_kmeans, (x,)),
        Case("minibatch_kmeans_update", "minibatch_kmeans_update", _minibatch_update,
             (f32(rng.normal(size=(3, 2))), x), (0, 1)),
        Case("minibatch_kmeans_init", "minibatch_kmeans_init", _minibatch_init,
             (f32(rng.normal(size=(3, 2))),)),
        Case("kmeans_plusplus", "kmeans_plusplus", _kmeans_plusplus, (x,)),
        Case("affinity_matrix", "affinity_matrix", _affinity, (x2,), (0,)),
        Case("spectral", "spectral", _spectral, (x2,), (0,), slow_grad=True),
        Case("laplacian_kmeans", "laplacian_kmeans", _laplacian_kmeans, (x2,), (0,)),
        Case("laplacian_kmeans-rbf", "laplacian_kmeans", _laplacian_kmeans_rbf, (x2,), (0,)),
        Case("gmm", "gmm", _gmm, (x,), (0,)),
        # unrolled gradients are also checked in tests/cluster/test_gmm.py
        Case("gmm-unrolled", "gmm", _gmm_unrolled, (x,), (0,), slow=True),
        Case("gmm_log_prob", "gmm_log_prob", _gmm_log_prob,
             (x, f32(rng7.normal(size=(3, 2))), f32(weights(rng7, 3))), (0, 1, 2)),
        Case("soft_assignment", "soft_assignment", _soft_assignment, (x, c3, f32(0.8)),
             (0, 1, 2)),
        Case("kmeans_loss", "kmeans_loss", _kmeans_loss, (x, c3, a), (0, 1, 2)),
        Case("swav_loss", "swav_loss", _swav_loss, (scores, scores[::-1], f32(0.3)), (2,)),
        Case("nt_xent_loss", "nt_xent_loss", _nt_xent, (x[:4, :], x[4:8, :] * 1.1, f32(0.5)),
             (1, 2)),
        # k-medoids: indices carry no gradient; the loss is differentiable at fixed medoids
        Case("kmedoids", "kmedoids", _kmedoids, (x,), (0,)),
        Case("kmedoids-pam-precomputed", "kmedoids", _kmedoids_pam_precomputed, (dm, a),
             (0, 1)),
        Case("pam_build", "pam_build", _pam_build, (x,)),
        # SDP solvers: labels and solutions without gradients (stop_gradient); jit and vmap
        # ADMM in float32 stalls at ~1e-5 relative in <D, Z> (off-block entries of Z at the
        # residual floor times the large between-cluster distances): runs stopping at
        # different iterations agree to that floor
        Case("kmeans_sdp-admm", "kmeans_sdp", _kmeans_sdp_admm, (x,), rtol=1e-4),
        # BM stops at a relative objective change of tol = 1e-5: the batched and the single
        # program (rounded differently) may stop a check apart, ~2e-5 apart in the objective
        Case("kmeans_sdp-bm", "kmeans_sdp", _kmeans_sdp_bm, (x,), rtol=1e-4),
        # slow: three compilations of the nested SDP / covariance loops (~6 s); the same
        # program runs fast in tests/sdp/test_la_sdp.py
        Case("la_sdp", "la_sdp", _la_sdp, (x,), rtol=1e-4, slow=True),
        Case("membership_matrix", "membership_matrix", _membership_matrix, (_LT,)),
        Case("round_labels", "round_labels", _round_labels, (x,)),
        Case("spectral_embedding", "spectral_embedding", _spectral_embedding, (x,), (0,)),
        # metrics: label-only functions are integer-valued (jit/vmap); the geometric ones are
        # differentiable in the points
        Case("contingency", "contingency", _contingency, (_LT, _LP)),
        Case("nmi", "nmi", _nmi, (_LT, _LP)),
        Case("ari", "ari", _ari, (_LT, _LP)),
        Case("inertia", "inertia", _inertia, (x, f32(rng.normal(size=(3, 2)))), (0, 1)),
        Case("silhouette", "silhouette", _silhouette, (x,), (0,)),
    ]


# Pillars register their own cases in tests/<pillar>/conformance_cases.py (see
# ``tests.conformance.pillar_cases``); their public modules are checked for coverage too.
_PILLAR_CASES, _PILLAR_MODULES, _PILLAR_HOST_ONLY = pillar_cases()
CASES = _make_cases() + _PILLAR_CASES


def _params(cases, *, with_grad=False):
    out = []
    for c in cases:
        if with_grad and not c.diff_argnums:
            continue
        marks = [pytest.mark.slow] if c.slow or (with_grad and c.slow_grad) else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


def _public_functions(module) -> set[str]:
    return {n for n in module.__all__ if inspect.isfunction(getattr(module, n))}


def test_every_public_function_is_registered():
    registered = {c.public for c in CASES}
    public = (_public_functions(jot) | _public_functions(jcl) | _public_functions(jmet)
              | _public_functions(jsdp) | _public_functions(jaxclust))
    for module in _PILLAR_MODULES:
        public |= _public_functions(module)
    public -= HOST_ONLY | _PILLAR_HOST_ONLY
    missing = public - registered
    assert not missing, f"public functions without a conformance case: {sorted(missing)}"
    assert registered <= public, f"registry names unknown functions: {registered - public}"


# The two checks are classes so that ``make test`` (pytest-xdist ``--dist loadscope``, which
# sends whole modules, or classes, to one worker) can run them on different workers: as one
# module they were a single ~145 s unit of work, the largest of the suite.
class TestJitAndVmap:
    @pytest.mark.parametrize("case", _params(CASES))
    def test_jit_and_vmap(self, case):
        jitted = jax.jit(case.fn)  # shared by both checks: one compilation
        # float32: jit and eager run the same iterations; differences are fusion/rounding
        check_jit(case.fn, *case.args, rtol=case.rtol, atol=1e-6, jitted_fn=jitted)
        # float32: batched matmuls and reductions may sum in another order (rounding only)
        check_vmap(case.fn, *case.args, batch=3, rtol=case.rtol, atol=1e-6, jitted_fn=jitted)


class TestGradFd:
    @pytest.mark.parametrize("case", _params(CASES, with_grad=True))
    def test_grad_fd(self, case):
        check_grad_fd(case.fn, *case.args, argnums=case.diff_argnums, rtol=1e-4, atol=1e-8)
