"""Conformance cases of ``jaxclust.diffusion`` and ``jaxclust.metrics.distribution``: every
public function under jit and vmap, and against float64 finite differences where it is
differentiable.

Keys are fixed inside the wrapped functions (randomness is not what vmap perturbs); mixture
parameters enter as raw arrays and are made valid inside (softmax weights, ``L L^T + 0.1 I``
covariances, QR bases), so the multiplicative perturbations keep every problem well posed.
The samplers, the likelihood and the classifier compile a whole loop: their cases are slow;
so are the gradient checks of the closed-form conversions and weights (rational functions,
differentiated again inside ``dsm_loss``, ``to_eps`` and ``from_eps``). Not differentiated:
``dequantize`` and ``k_subspaces`` (piecewise constant in their inputs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxclust.diffusion as dif
import jaxclust.metrics.distribution as jdist
from tests.conformance import Case

MODULES = [dif, jdist]
# a host loop (Python steps, progress bar) around jitted optax steps; its loss is a case
HOST_ONLY = {"fit"}

_rng = np.random.default_rng(0)


def _arr(*shape, scale=1.0, shift=0.0):
    return jnp.asarray(shift + scale * _rng.normal(size=shape), jnp.float32)


_X = _arr(4, 2)
_E = _arr(4, 2)
_A = jnp.asarray([0.9, 0.6, 0.4, 0.2], jnp.float32)  # alpha_t
_S = jnp.asarray([0.3, 0.7, 0.9, 0.95], jnp.float32)  # sigma_t
_T = jnp.asarray([0.2, 0.4, 0.6, 0.8], jnp.float32)
_MU = jnp.asarray([0.5, -0.3], jnp.float32)
_KEY = 0


def _key(i=_KEY):
    return jax.random.key(i)


def _gauss_score(mu):
    """Exact VP score of data N(mu, I) (its marginals are N(alpha mu, I))."""
    def score(x, t):
        a, _ = dif.VPSDE()._coefs(t)
        return -(x - a[:, None] * mu[None, :])
    return score


def _gmm(means, chol, logits):
    D = means.shape[1]
    covs = chol @ jnp.swapaxes(chol, 1, 2) + 0.1 * jnp.eye(D, dtype=means.dtype)[None]
    return dif.GaussianMixture(jax.nn.softmax(logits), means, covs)


def _molrg(raw):
    return dif.MoLRG(jnp.full((raw.shape[0],), 1.0 / raw.shape[0], raw.dtype),
                     jnp.linalg.qr(raw)[0], 0.2)


_MEANS = _arr(2, 2, scale=2.0)
_CHOL = _arr(2, 2, 2, scale=0.5)
_LOGITS = _arr(2)
_RAW_U = _arr(3, 5, 2)


def _mixture_fn(fn):
    def wrapped(x, means, chol, logits):
        return fn(x, _gmm(means, chol, logits), _A, _S)
    return wrapped


def _molrg_denoiser(x, raw):
    return dif.mixture_denoiser(x, _molrg(raw), _A[:3], _S[:3])


def _conversions():
    cases = [
        Case("eps_to_score", "eps_to_score", dif.eps_to_score, (_E, _S), (0, 1),
             slow_grad=True),
        Case("score_to_eps", "score_to_eps", dif.score_to_eps, (_E, _S), (0, 1),
             slow_grad=True),
    ]
    for name in ("eps_to_x0", "x0_to_eps", "eps_to_v", "v_to_eps"):
        cases.append(Case(name, name, getattr(dif, name), (_E, _X, _A, _S), (0, 1, 2, 3),
                          slow_grad=True))
    cases += [
        Case("to_eps_v", "to_eps", lambda p, x, a, s: dif.to_eps(p, x, a, s, param="v"),
             (_E, _X, _A, _S), (0, 1, 2, 3)),
        Case("from_eps_x0", "from_eps", lambda e, x, a, s: dif.from_eps(e, x, a, s, param="x0"),
             (_E, _X, _A, _S), (0, 1, 2, 3)),
    ]
    return cases


def _guidance():
    def cfg(c, u):
        return dif.classifier_free_guidance(c, u, scale=2.5)

    def cg(x, m):
        logp = lambda z, t, y: -0.5 * jnp.sum((z - m[None, :]) ** 2, axis=1)  # noqa: E731
        return dif.classifier_guidance(lambda z, t: -z, logp, jnp.zeros(4), scale=1.5)(x, _T)

    def score_fn(x, w):
        return dif.as_score_fn(lambda z, t: jnp.tanh(z * w[None, :]), dif.VPSDE(),
                               param="x0")(x, _T)

    return [
        Case("classifier_free_guidance", "classifier_free_guidance", cfg, (_E, _X), (0, 1),
             slow_grad=True),
        Case("classifier_guidance", "classifier_guidance", cg, (_X, _MU), (0, 1)),
        Case("as_score_fn_x0", "as_score_fn", score_fn, (_X, _MU), (0, 1)),
    ]


def _losses():
    def loss(x0, w):
        model = lambda x, t: x @ w + 0.1 * t[:, None]  # noqa: E731
        return dif.dsm_loss(model, x0, _key(), dif.VPSDE(), weighting="likelihood",
                            time_sampling="stratified", eps_t=1e-2)

    def weight(t):
        return dif.loss_weight(t, dif.VPSDE(), "likelihood"), dif.loss_weight(t, dif.VESDE(),
                                                                              "v")

    def times(T):
        return dif.sample_times(_key(), 6, dif.VPSDE(T=T), method="antithetic")

    return [
        Case("dsm_loss", "dsm_loss", loss, (_X, _arr(2, 2)), (0, 1)),
        Case("loss_weight", "loss_weight", weight, (_T,), (0,), slow_grad=True),
        Case("sample_times", "sample_times", times, (jnp.asarray(1.5, jnp.float32),), (0,)),
    ]


def _samplers():
    sde = dif.VPSDE()

    def em(mu):
        return dif.euler_maruyama(_gauss_score(mu), _key(), sde, (4, 2), n_steps=5)

    def pc(mu):
        return dif.predictor_corrector(_gauss_score(mu), _key(), sde, (4, 2), n_steps=4)

    def pf(x_T, mu):
        return dif.probability_flow(_gauss_score(mu), None, sde, x_T=x_T, n_steps=5,
                                    method="rk4")

    def dd(mu):
        return dif.ddim(_gauss_score(mu), _key(), sde, (4, 2), n_steps=5, eta=0.5)

    return [
        Case("euler_maruyama", "euler_maruyama", em, (_MU,), (0,), slow=True, rtol=1e-4),
        Case("predictor_corrector", "predictor_corrector", pc, (_MU,), (0,), slow=True,
             rtol=1e-4),
        Case("probability_flow", "probability_flow", pf, (_X, _MU), (0, 1), slow=True,
             rtol=1e-4),
        Case("ddim", "ddim", dd, (_MU,), (0,), slow=True, rtol=1e-4),
    ]


def _likelihood():
    def like(x, mu):
        r = dif.ode_likelihood(_gauss_score(mu), x, dif.VPSDE(), n_steps=4)
        return r.logp, r.z

    def div(x, A):
        f = lambda v: jnp.tanh(v) @ A.T  # noqa: E731
        return (dif.divergence(f, x),
                dif.divergence(f, x, _key(), method="hutchinson", n_probes=3))

    def bpd(logp):
        return dif.bits_per_dim(logp, 4, low=-1.0, high=1.0)

    def deq(u):
        return dif.dequantize(_key(), jnp.round(jnp.abs(u) * 3.0), n_bins=16)

    return [
        Case("ode_likelihood", "ode_likelihood", like, (_X, _MU), (0, 1), slow=True,
             rtol=1e-4),
        Case("divergence", "divergence", div, (_X, _arr(2, 2)), (0, 1)),
        Case("bits_per_dim", "bits_per_dim", bpd, (_arr(3, shift=-3.0),), (0,),
             slow_grad=True),
        Case("dequantize", "dequantize", deq, (_X,)),
    ]


def _analytic():
    mix_args = (_X, _MEANS, _CHOL, _LOGITS)

    def sample(means, chol, logits):
        return dif.mixture_sample(_key(), _gmm(means, chol, logits), 5)

    def score_fn(x, means, chol, logits):
        return dif.mixture_score_fn(_gmm(means, chol, logits), dif.SubVPSDE())(x, _T)

    return [
        Case("mixture_logp", "mixture_logp", _mixture_fn(dif.mixture_logp), mix_args,
             (0, 1, 2, 3)),
        Case("mixture_score", "mixture_score", _mixture_fn(dif.mixture_score), mix_args,
             (0, 1, 2, 3)),
        Case("mixture_denoiser", "mixture_denoiser", _mixture_fn(dif.mixture_denoiser),
             mix_args, (0, 1, 2, 3)),
        Case("mixture_denoiser_molrg", "mixture_denoiser", _molrg_denoiser,
             (_arr(3, 5, scale=2.0), _RAW_U), (0, 1)),
        Case("mixture_posterior", "mixture_posterior", _mixture_fn(dif.mixture_posterior),
             mix_args, (0, 1, 2, 3), slow_grad=True),
        Case("mixture_sample", "mixture_sample", sample, mix_args[1:], (0, 1), slow_grad=True),
        Case("mixture_score_fn", "mixture_score_fn", score_fn, mix_args, (0, 1), slow=True),
    ]


def _clustering():
    def ksub(x):
        res = dif.k_subspaces(x, 2, 1, key=_key(), n_init=2, max_iter=20)
        proj = jnp.einsum("kDd,kEd->kDE", res.bases, res.bases)  # sign-free projectors
        return proj, res.labels, res.residual

    def classify(x, m):
        def eps_fn(z, t, y):
            a, s = dif.VPSDE()._coefs(t)
            return s[:, None] * (z - a[:, None] * m[y])
        res = dif.diffusion_classify(eps_fn, x, _key(), dif.VPSDE(), num_classes=2,
                                     schedule=((4, 2), (4, 1)), t_min=0.05)
        return res.errors, res.label

    return [
        Case("k_subspaces", "k_subspaces", ksub, (_arr(12, 3),), slow=True),
        Case("diffusion_classify", "diffusion_classify", classify, (_MU, _arr(2, 2)), (0, 1),
             slow=True),
    ]


def _distribution():
    return [
        Case("energy_distance", "energy_distance",
             lambda x, y: jdist.energy_distance(x, y), (_arr(6, 2), _arr(5, 2, shift=0.5)),
             (0, 1)),
        Case("mmd", "mmd", lambda x, y, h: jdist.mmd(x, y, bandwidth=h),
             (_arr(6, 2), _arr(5, 2, shift=0.5), jnp.asarray([0.5, 2.0], jnp.float32)),
             (0, 1, 2)),
    ]


def _train() -> list[Case]:
    def objective(x):  # the network 0.5 x_t: a smooth function of the data
        return dif.dsm_objective(dif.VPSDE())(lambda xt, t: 0.5 * xt, x, jax.random.key(0))

    return [Case("dsm_objective", "dsm_objective", objective, (_arr(6, 2),), (0,))]


def cases() -> list[Case]:
    return (_conversions() + _guidance() + _losses() + _samplers() + _likelihood()
            + _analytic() + _clustering() + _distribution() + _train())
