"""Score estimators for energy-based latent variable models.

Every estimator is called as ``estimator(energy, posterior, v) -> (B, ...)``: the
value estimates the score s(v) = ∇_v log p(v) = E_{p(h|v)}[∇_v log p̃(v, h)], and
back-propagating any loss through it gives θ (the energy's parameters) that
estimator's gradient, in one backward pass and without knowing the loss.

The energy broadcasts over the sample dimension: ``energy(v, h)`` with v: (B, ...)
and h: (L, B, ...) returns (L, B). Every estimator is then one vector-Jacobian
product of the log-joints ℓ_i = −E(v, h_i) with sample weights c_i:

    ŝ(v) = Σ_i c_i ∇_v ℓ_i,

where only the weights differ between estimators. VaGES makes c_i carry a graph
to ℓ whose derivatives are the unbiased sample cumulants (see :func:`vages_weights`),
so every derivative of ŝ (in θ, and in v for SM and SSM) picks up its covariance
term automatically, and the θ-gradient of the score's v-Jacobian its third-cumulant
term (from L = 3 on).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from score_estimators._checks import (
    check_data,
    check_energy_values,
    check_positive,
    check_samples,
    dtypes_named,
)
from score_estimators._common_checks import check_bool, check_count, check_finite_result
from score_estimators.fitting import draw, energy_at, kl_loss
from score_estimators.langevin import Langevin
from score_estimators.protocols import (
    Energy,
    EstimatorNoise,
    Posterior,
    PosteriorLoss,
    PosteriorSampler,
    ScoreModel,
)


def _graph_node(v: Tensor) -> Tensor:
    """A node at v to differentiate by: keeps v's own graph when it has one."""
    return v.view_as(v) if v.requires_grad else v.detach().requires_grad_(True)


def weighted_score(log_joint: Tensor, v_node: Tensor, weights: Tensor) -> Tensor:
    """Σ_i weights_i ∇_v log_joint_i, differentiable in everything.

    log_joint, weights: (L, B); v_node: (B, ...) the node log_joint was built from.
    -> (B, ...).
    """
    (score,) = torch.autograd.grad(log_joint, v_node, grad_outputs=weights, create_graph=True)
    return score


def vages_weights(log_joint: Tensor) -> Tensor:
    """Weights whose value is 1/L and whose derivatives are unbiased sample cumulants.
    log_joint: (L, B) -> (L, B).

    With x = ℓ − sg ℓ (value 0, derivative ∂ℓ) and d = x − mean_j x_j:

        c_i = 1/L + L/(L−1) · (softmax_i(x) − 1/L) + (d_i² − mean_j d_j²) / ((L−1)(L−2)).

    Each c_i equals 1/L, so ŝ is the plain average of ∇_v ℓ_i. The first derivative
    ∂c_i = (∂ℓ_i − mean_j ∂ℓ_j)/(L − 1) gives ∂ŝ the unbiased sample covariance
    Cov(∇_v ℓ, ∂ℓ), the VaGES term. A mixed second derivative (the θ-gradient of the
    score's v-Jacobian, which SM and SSM take) needs the third cumulant: the softmax
    alone gives it times (L − 2)/L, and the last term (L ≥ 3; its value and first
    derivative are 0) makes it the unbiased k-statistic. At L = 2 the third cumulant
    cannot be estimated and that term is left out.
    """
    n = log_joint.shape[0]
    x = log_joint - log_joint.detach()
    weights = 1.0 / n + (n / (n - 1)) * (torch.softmax(x, dim=0) - 1.0 / n)
    if n < 3:
        return weights
    d = x - x.mean(0)
    return weights + (d.square() - d.square().mean(0)) / ((n - 1) * (n - 2))


def _checked(score: Tensor, estimator: object, check_finite: bool) -> Tensor:
    """The estimate; with ``check_finite``, a FloatingPointError naming the estimator
    when any of its entries is not finite."""
    if check_finite:
        check_finite_result(
            score,
            type(estimator).__name__,
            what="the score estimate",
            cause="the energy, the posterior or v gave non-finite values",
        )
    return score


def _log_joint(energy: Energy, v_node: Tensor, h: Tensor) -> Tensor:
    n, batch = h.shape[:2]
    with dtypes_named(energy, v_node, h):
        return -check_energy_values(energy(v_node, h), n, batch)


def _check_noise(noise: object, draws: int, name: str) -> EstimatorNoise | None:
    """Injected noise must be an EstimatorNoise whose posterior part holds ``draws``."""
    if noise is None:
        return None
    if not isinstance(noise, EstimatorNoise):
        raise TypeError(f"noise must be an EstimatorNoise, got {type(noise).__name__}")
    if noise.posterior.dim() < 1 or noise.posterior.shape[0] != draws:
        raise ValueError(
            f"{name} takes {draws} posterior draws per example: noise.posterior must have "
            f"{draws} rows on its first axis, got shape {tuple(noise.posterior.shape)}"
        )
    return noise


def _fixed_draws(
    energy: Energy,
    posterior: PosteriorSampler,
    v: Tensor,
    n: int,
    *,
    refine: Langevin | None,
    generator: torch.Generator | None,
    noise: EstimatorNoise | None,
    counted: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """n draws h ~ q(h | v) held fixed (no graph), the node at v, and ℓ = −E(v, h): (n, B).

    The energy's v-part is built once (``energy_at``) and serves the refinement too.
    ``counted`` says how the estimator arrives at n, for shape errors.
    """
    check_data(v)
    with torch.no_grad():
        try:
            if noise is None:
                h = draw(posterior, v, n, generator=generator)
            else:
                h = draw(posterior, v, n, noise=noise.posterior)
        except ValueError as error:
            raise ValueError(f"{error} ({counted})") from error
    v_node = _graph_node(v)
    with dtypes_named(energy, v, h):
        at_v = energy_at(energy, v_node)
        if refine is not None:
            if noise is None or noise.langevin is None:
                h = refine(at_v, h, generator=generator)
            else:
                h = refine(at_v, h, noise=noise.langevin)
        return h, v_node, -check_energy_values(at_v(h), n, len(v))


class _SampleEstimator:
    """Shared settings: the number of posterior samples L, and ``check_finite``: a
    non-finite estimate raises FloatingPointError (off by default; the trainer checks
    its losses itself)."""

    min_samples = 1

    def __init__(self, n_samples: int, *, check_finite: bool = False) -> None:
        self.n_samples = check_count(n_samples, "n_samples", minimum=self.min_samples)
        self.check_finite = check_bool(check_finite, "check_finite")

    @property
    def draws(self) -> int:
        """Posterior draws per example that one call takes from ``posterior.rsample``."""
        return self.n_samples

    def _counted(self) -> str:
        return f"{type(self).__name__} draws n_samples = {self.n_samples} per example"

    def _options(self) -> str:
        return ", check_finite=True" if self.check_finite else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_samples={self.n_samples}{self._options()})"


class _RefinableEstimator(_SampleEstimator):
    """Estimators of fixed draws, which may refine them by Langevin steps in h first, or
    subtract the control variate ∇_v log q(h_i | v) from their value (appendix H, eq. 4).

    The control variate has mean zero under q, E_q[∇_v log q(h | v)] = 0, so it leaves
    the estimate's expectation as it is; when q = p(h | v) the value is ∇_v log p̃(v)
    for every draw: exact, with zero variance. It needs draws of q itself (refined
    draws are not, and under their law the term's mean is not zero), so it excludes
    ``refine``, and a posterior with ``log_prob``.
    """

    def __init__(
        self,
        n_samples: int,
        *,
        refine: Langevin | None = None,
        control_variate: bool = False,
        check_finite: bool = False,
    ) -> None:
        super().__init__(n_samples, check_finite=check_finite)
        if refine is not None and not isinstance(refine, Langevin):
            raise TypeError(f"refine must be a Langevin refinement, got {type(refine).__name__}")
        if not isinstance(control_variate, bool):
            raise TypeError(f"control_variate must be True or False, got {control_variate!r}")
        if control_variate and refine is not None:
            raise ValueError(
                "control_variate needs draws of q itself: refined draws are not, and under "
                "their law ∇_v log q(h | v) has a non-zero mean; pass refine=None"
            )
        self.refine = refine
        self.control_variate = control_variate

    def _value_log_ratio(
        self, posterior: PosteriorSampler, h: Tensor, v_node: Tensor, log_joint: Tensor
    ) -> Tensor:
        """ℓ_i − log q(h_i | v) (h fixed) with the control variate, else ℓ_i. (n, B)."""
        if not self.control_variate:
            return log_joint
        if not isinstance(posterior, Posterior):
            raise TypeError(
                f"the control variate needs the posterior's log_prob(h, v); "
                f"{type(posterior).__name__} has none"
            )
        return log_joint - posterior.log_prob(h, v_node)

    def _draws_and_log_joint(
        self,
        energy: Energy,
        posterior: PosteriorSampler,
        v: Tensor,
        generator: torch.Generator | None,
        noise: EstimatorNoise | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        noise = _check_noise(noise, self.draws, type(self).__name__)
        return _fixed_draws(
            energy,
            posterior,
            v,
            self.draws,
            refine=self.refine,
            generator=generator,
            noise=noise,
            counted=self._counted(),
        )

    def __repr__(self) -> str:
        refine = f", refine={self.refine!r}" if self.refine is not None else ""
        cv = ", control_variate=True" if self.control_variate else ""
        return f"{type(self).__name__}(n_samples={self.n_samples}{refine}{cv}{self._options()})"


class VaES(_RefinableEstimator):
    """Variational estimate of the score: (1/L) Σ_i ∇_v log p̃(v, h_i), h_i ~ q fixed
    (refined by ``refine`` when given); with ``control_variate``,
    (1/L) Σ_i ∇_v log[p̃(v, h_i)/q(h_i | v)] (VaES-CV, eq. 4).

    Its θ-gradient is the expectation term only (q does not depend on θ).
    """

    def __call__(
        self,
        energy: Energy,
        posterior: PosteriorSampler,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: EstimatorNoise | None = None,
    ) -> Tensor:
        h, v_node, log_joint = self._draws_and_log_joint(energy, posterior, v, generator, noise)
        log_ratio = self._value_log_ratio(posterior, h, v_node, log_joint)
        score = weighted_score(log_ratio, v_node, torch.full_like(log_ratio, 1 / self.n_samples))
        return _checked(score, self, self.check_finite)


class VaGES(_RefinableEstimator):
    """VaES whose gradients carry the covariance term (variational gradient estimate).

    Draws 2L samples h ~ q (refined by ``refine`` when given) in one energy call. The
    value is the VaES of the first L, (1/L) Σ_i ∇_v log p̃(v, h_i); every derivative
    comes from the other L: the θ-gradient of any loss through it is
    E_q[∂∇_v log p̃/∂θ] + Cov_q(∇_v log p̃, ∇_θ log p̃) with the unbiased sample
    covariance, hence L ≥ 2. Keeping the two sets apart makes the loss gradient
    gᵀ ∂s/∂θ unbiased: g (a function of the value) is independent of the ∂s/∂θ
    estimate. Sharing one set instead biases it by O(1/L), as if the loss had a penalty
    on the posterior variance of the score.

    With ``control_variate`` the value is VaES-CV of the first L draws,
    (1/L) Σ_i ∇_v log[p̃(v, h_i)/q(h_i | v)]; the derivatives stay those of VaGES from
    the other L. The control variate enters the value only: it has no θ in it, and
    subtracting it inside the covariance would change the covariance's expectation
    (with q = p(h | v) it would cancel the covariance term altogether). So the loss
    gradient gᵀ ∂s/∂θ keeps its expectation while g is taken at a score of lower
    variance, exact when q = p(h | v).
    """

    min_samples = 2

    @property
    def draws(self) -> int:
        """2L: L for the value, L for the derivatives."""
        return 2 * self.n_samples

    def _counted(self) -> str:
        return (
            f"VaGES draws 2L = {self.draws} per example for n_samples L = {self.n_samples}: "
            "L for the value, L for the derivatives"
        )

    def __call__(
        self,
        energy: Energy,
        posterior: PosteriorSampler,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: EstimatorNoise | None = None,
    ) -> Tensor:
        n = self.n_samples
        h, v_node, log_joint = self._draws_and_log_joint(energy, posterior, v, generator, noise)
        for_value = self._value_log_ratio(posterior, h[:n], v_node, log_joint[:n])
        for_gradient = log_joint[n:]
        (value,) = torch.autograd.grad(
            for_value, v_node, grad_outputs=torch.full_like(for_value, 1 / n), retain_graph=True
        )
        score = weighted_score(for_gradient, v_node, vages_weights(for_gradient))
        return _checked(score + (value - score.detach()), self, self.check_finite)


class VaESCV(VaES):
    """VaES with the control variate, ``VaES(n_samples, control_variate=True)``:
    (1/L) Σ_i ∇_v log[p̃(v, h_i)/q(h_i | v)], h_i fixed.

    Exact, with zero variance, when q = p(h | v).
    """

    def __init__(self, n_samples: int, *, check_finite: bool = False) -> None:
        super().__init__(n_samples, control_variate=True, check_finite=check_finite)

    def __repr__(self) -> str:
        return f"VaESCV(n_samples={self.n_samples}{self._options()})"


class ImportanceSampling(_SampleEstimator):
    """Self-normalised importance sampling: Σ_i w_i ∇_v log p̃(v, h_i),
    w_i ∝ p̃(v, h_i)/q(h_i | v) with h_i ~ q.

    The proposal density is held fixed; θ-gradients flow through p̃ in the weights.
    """

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: EstimatorNoise | None = None,
    ) -> Tensor:
        noise = _check_noise(noise, self.draws, "ImportanceSampling")
        h, v_node, log_joint = _fixed_draws(
            energy,
            posterior,
            v,
            self.n_samples,
            refine=None,
            generator=generator,
            noise=noise,
            counted=self._counted(),
        )
        with torch.no_grad():
            log_proposal = posterior.log_prob(h, v)
        weights = torch.softmax(log_joint - log_proposal, dim=0)
        return _checked(weighted_score(log_joint, v_node, weights), self, self.check_finite)


class ExactScore:
    """The model's own exact score ``energy.score(v)``, for models that marginalise h
    (:class:`~score_estimators.protocols.ScoreModel`).

    Lets exact-score baselines run through the same code as the estimators.
    ``check_finite``: a non-finite score raises FloatingPointError.
    """

    draws = 0

    def __init__(self, *, check_finite: bool = False) -> None:
        self.check_finite = check_bool(check_finite, "check_finite")

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior | None,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: EstimatorNoise | None = None,
    ) -> Tensor:
        if not isinstance(energy, ScoreModel):
            raise TypeError(f"ExactScore needs an energy with a score(v) method, got {energy!r}")
        check_data(v)
        with dtypes_named(energy, v):
            return _checked(energy.score(v), self, self.check_finite)

    def __repr__(self) -> str:
        return "ExactScore(check_finite=True)" if self.check_finite else "ExactScore()"


class _Bound(nn.Module):
    """Calls one method of a module, so that ``functional_call`` can swap its parameters."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, method: str, *args: object, **kwargs: object) -> Tensor:
        result: Tensor = getattr(self.module, method)(*args, **kwargs)
        return result


class _Reparameterised:
    """A posterior evaluated at parameters φ' given as tensors (a graph to θ allowed).

    Takes injected noise exactly when the posterior does."""

    def __init__(self, posterior: nn.Module, params: dict[str, Tensor]) -> None:
        self.bound = _Bound(posterior)
        self.params = {f"module.{name}": value for name, value in params.items()}

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return functional_call(self.bound, self.params, ("rsample", v, n), {"generator": generator})

    def rsample_with_noise(self, v: Tensor, n: int, noise: Tensor) -> Tensor:
        return functional_call(self.bound, self.params, ("rsample", v, n), {"noise": noise})

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        return functional_call(self.bound, self.params, ("log_prob", h, v))

    def draw(
        self, v: Tensor, n: int, generator: torch.Generator | None, noise: Tensor | None
    ) -> Tensor:
        if noise is None:
            draws = self.rsample(v, n, generator=generator)
        else:
            draws = self.rsample_with_noise(v, n, noise)
        return check_samples(draws, n, len(v))


class _FixedNoise:
    """The posterior loss's view of a reparameterised posterior whose draws come from
    given noise: ``rsample`` transforms it, ``log_prob`` is the posterior's."""

    def __init__(self, posterior: _Reparameterised, noise: Tensor) -> None:
        self.posterior = posterior
        self.noise = noise

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return self.posterior.rsample_with_noise(v, n, self.noise)

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        return self.posterior.log_prob(h, v)


def unroll_posterior(
    energy: Energy,
    posterior: nn.Module,
    v: Tensor,
    *,
    steps: int,
    lr: float,
    loss: PosteriorLoss = kl_loss,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> dict[str, Tensor]:
    """φ_N(θ): ``steps`` gradient-descent steps on the posterior loss from the current φ,
    kept differentiable in θ (O(steps) time and memory). Returns the parameters by name.

    ``noise``: (steps · n_samples, B, ...), the posterior's standard noise of the steps in
    order, instead of draws from ``generator``.
    """
    check_data(v)
    params: dict[str, Tensor] = {
        name: p for name, p in posterior.named_parameters() if p.requires_grad
    }
    names = list(params)
    for step in range(steps):
        current = _Reparameterised(posterior, params)
        if noise is None:
            value = loss(energy, current, v, n_samples=n_samples, generator=generator)
        else:
            given = noise[step * n_samples : (step + 1) * n_samples]
            value = loss(energy, _FixedNoise(current, given), v, n_samples=n_samples)
        grads = torch.autograd.grad(value, [params[k] for k in names], create_graph=True)
        params = {k: params[k] - lr * g for k, g in zip(names, grads, strict=True)}
    return params


class BiSM(_SampleEstimator):
    """Bi-level score matching's estimate ``(1/L) Σ_i ∇_v log[p̃(v, h_i)/q_{φ_N(θ)}(h_i | v)]``,
    ``h_i`` reparameterised from ``q_{φ_N(θ)}``, with ``φ_N(θ)`` from ``n_unroll`` unrolled
    gradient steps (learning rate ``inner_lr``, ``inner_samples`` draws each) on the
    posterior loss.

    θ-gradients flow through the unrolled steps; ``n_unroll=0`` drops that path.
    """

    def __init__(
        self,
        n_unroll: int,
        *,
        n_samples: int = 1,
        inner_lr: float = 1e-3,
        loss: PosteriorLoss = kl_loss,
        inner_samples: int = 1,
        check_finite: bool = False,
    ) -> None:
        super().__init__(n_samples, check_finite=check_finite)
        self.n_unroll = check_count(n_unroll, "n_unroll", minimum=0)
        self.inner_lr = check_positive(inner_lr, "inner_lr")
        self.inner_samples = check_count(inner_samples, "inner_samples")
        self.loss = loss

    @property
    def draws(self) -> int:
        """N · inner_samples for the unrolled steps, then L for the estimate."""
        return self.n_unroll * self.inner_samples + self.n_samples

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: EstimatorNoise | None = None,
    ) -> Tensor:
        check_data(v)
        if not isinstance(posterior, nn.Module):
            raise TypeError(f"BiSM needs a posterior that is an nn.Module, got {posterior!r}")
        noise = _check_noise(noise, self.draws, "BiSM")
        if noise is not None:
            generator = None  # every draw comes from the injected noise
        unrolled_draws = self.n_unroll * self.inner_samples
        params = unroll_posterior(
            energy,
            posterior,
            v.detach(),
            steps=self.n_unroll,
            lr=self.inner_lr,
            loss=self.loss,
            n_samples=self.inner_samples,
            generator=generator,
            noise=None if noise is None else noise.posterior[:unrolled_draws],
        )
        unrolled = _Reparameterised(posterior, params)
        h = unrolled.draw(
            v,
            self.n_samples,
            generator,
            None if noise is None else noise.posterior[unrolled_draws:],
        )
        v_node = _graph_node(v)
        log_ratio = _log_joint(energy, v_node, h) - unrolled.log_prob(h, v_node)
        score = weighted_score(log_ratio, v_node, torch.full_like(log_ratio, 1 / self.n_samples))
        return _checked(score, self, self.check_finite)

    def __repr__(self) -> str:
        return (
            f"BiSM(n_unroll={self.n_unroll}, n_samples={self.n_samples}, "
            f"inner_lr={self.inner_lr}{self._options()})"
        )
