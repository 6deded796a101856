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
to ℓ whose derivative is the sample covariance (see :func:`vages_weights`), so
every derivative of ŝ (in θ, and in v for SM and SSM) picks up its covariance
term automatically.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from score_estimators._checks import (
    check_count,
    check_data,
    check_energy_values,
    check_positive,
    check_samples,
)
from score_estimators.fitting import Energy, PosteriorLoss, energy_of_h, kl_loss
from score_estimators.posteriors import Posterior, PosteriorSampler


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
    """Weights c_i = 1/L + L/(L−1) · (softmax_i(ℓ − sg ℓ) − 1/L). log_joint: (L, B).

    Each c_i equals 1/L, so ŝ is the plain average of ∇_v ℓ_i; its derivative is
    ∂c_i = (∂ℓ_i − mean_j ∂ℓ_j)/(L − 1), so ∂ŝ gains the unbiased sample covariance
    Cov(∇_v ℓ, ∂ℓ), the VaGES term, at every derivative order.
    """
    n = log_joint.shape[0]
    tilted = torch.softmax(log_joint - log_joint.detach(), dim=0)
    return 1.0 / n + (n / (n - 1)) * (tilted - 1.0 / n)


def _log_joint(energy: Energy, v_node: Tensor, h: Tensor) -> Tensor:
    n, batch = h.shape[:2]
    return -check_energy_values(energy(v_node, h), n, batch)


def _fixed_draws(
    energy: Energy,
    posterior: PosteriorSampler,
    v: Tensor,
    n: int,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """n draws h ~ q(h | v) held fixed (no graph), the node at v, and ℓ = −E(v, h): (n, B).

    The energy's v-part is built once (``energy_of_h``); a posterior that refines its
    draws on the energy (``rsample_conditioned``, as LangevinRefined) refines on it too.
    """
    check_data(v)
    v_node = _graph_node(v)
    at_v = energy_of_h(energy, v_node)
    refine = getattr(posterior, "rsample_conditioned", None)
    with torch.no_grad():
        if callable(refine):
            draws = refine(v, n, at_v, generator=generator)
        else:
            draws = posterior.rsample(v, n, generator=generator)
        h = check_samples(draws, n, len(v))
    return h, v_node, -check_energy_values(at_v(h), n, len(v))


class _SampleEstimator:
    """Shared settings: the number of posterior samples L."""

    min_samples = 1

    def __init__(self, n_samples: int) -> None:
        self.n_samples = check_count(n_samples, "n_samples", minimum=self.min_samples)

    @property
    def draws(self) -> int:
        """Posterior draws per example that one call takes from ``posterior.rsample``."""
        return self.n_samples

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_samples={self.n_samples})"


class VaES(_SampleEstimator):
    """Variational estimate of the score: (1/L) Σ_i ∇_v log p̃(v, h_i), h_i ~ q fixed.

    Its θ-gradient is the expectation term only.
    """

    def __call__(
        self,
        energy: Energy,
        posterior: PosteriorSampler,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        _h, v_node, log_joint = _fixed_draws(energy, posterior, v, self.n_samples, generator)
        return weighted_score(log_joint, v_node, torch.full_like(log_joint, 1 / self.n_samples))


class VaGES(_SampleEstimator):
    """VaES whose gradients carry the covariance term (variational gradient estimate).

    Draws 2L samples h ~ q in one energy call. The value is the VaES of the first
    L, (1/L) Σ_i ∇_v log p̃(v, h_i); every derivative comes from the other L: the
    θ-gradient of any loss through it is E_q[∂∇_v log p̃/∂θ] + Cov_q(∇_v log p̃,
    ∇_θ log p̃) with the unbiased sample covariance, hence L ≥ 2. Keeping the two
    sets apart makes the loss gradient gᵀ ∂s/∂θ unbiased: g (a function of the
    value) is independent of the ∂s/∂θ estimate. Sharing one set instead biases
    it by O(1/L), as if the loss had a penalty on the posterior variance of the
    score.
    """

    min_samples = 2

    @property
    def draws(self) -> int:
        """2L: L for the value, L for the derivatives."""
        return 2 * self.n_samples

    def __call__(
        self,
        energy: Energy,
        posterior: PosteriorSampler,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        n = self.n_samples
        _h, v_node, log_joint = _fixed_draws(energy, posterior, v, self.draws, generator)
        for_value, for_gradient = log_joint[:n], log_joint[n:]
        (value,) = torch.autograd.grad(
            for_value, v_node, grad_outputs=torch.full_like(for_value, 1 / n), retain_graph=True
        )
        score = weighted_score(for_gradient, v_node, vages_weights(for_gradient))
        return score + (value - score.detach())


class VaESCV(_SampleEstimator):
    """VaES with a control variate: (1/L) Σ_i ∇_v log[p̃(v, h_i)/q(h_i | v)], h_i fixed.

    Exact, with zero variance, when q = p(h | v).
    """

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        h, v_node, log_joint = _fixed_draws(energy, posterior, v, self.n_samples, generator)
        log_ratio = log_joint - posterior.log_prob(h, v_node)
        return weighted_score(log_ratio, v_node, torch.full_like(log_ratio, 1 / self.n_samples))


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
    ) -> Tensor:
        h, v_node, log_joint = _fixed_draws(energy, posterior, v, self.n_samples, generator)
        with torch.no_grad():
            log_proposal = posterior.log_prob(h, v)
        weights = torch.softmax(log_joint - log_proposal, dim=0)
        return weighted_score(log_joint, v_node, weights)


class ExactScore:
    """The model's own exact score ``energy.score(v)``, for models that marginalise h.

    Lets exact-score baselines run through the same code as the estimators.
    """

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior | None,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        score = getattr(energy, "score", None)
        if not callable(score):
            raise TypeError(f"ExactScore needs an energy with a score(v) method, got {energy!r}")
        result: Tensor = score(check_data(v))
        return result

    def __repr__(self) -> str:
        return "ExactScore()"


class _Bound(nn.Module):
    """Calls one method of a module, so that ``functional_call`` can swap its parameters."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, method: str, *args: object, **kwargs: object) -> Tensor:
        result: Tensor = getattr(self.module, method)(*args, **kwargs)
        return result


class _Reparameterised:
    """A posterior evaluated at parameters φ' given as tensors (a graph to θ allowed)."""

    def __init__(self, posterior: nn.Module, params: dict[str, Tensor]) -> None:
        self.bound = _Bound(posterior)
        self.params = {f"module.{name}": value for name, value in params.items()}

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return functional_call(self.bound, self.params, ("rsample", v, n), {"generator": generator})

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        return functional_call(self.bound, self.params, ("log_prob", h, v))


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
) -> dict[str, Tensor]:
    """φ_N(θ): ``steps`` gradient-descent steps on the posterior loss from the current φ,
    kept differentiable in θ (O(steps) time and memory). Returns the parameters by name.
    """
    params: dict[str, Tensor] = {
        name: p for name, p in posterior.named_parameters() if p.requires_grad
    }
    names = list(params)
    for _ in range(steps):
        value = loss(
            energy,
            _Reparameterised(posterior, params),
            v,
            n_samples=n_samples,
            generator=generator,
        )
        grads = torch.autograd.grad(value, [params[k] for k in names], create_graph=True)
        params = {k: params[k] - lr * g for k, g in zip(names, grads, strict=True)}
    return params


class BiSM(_SampleEstimator):
    """Bi-level score matching's estimate: (1/L) Σ_i ∇_v log[p̃(v, h_i)/q_{φ_N(θ)}(h_i | v)],
    h_i reparameterised from q_{φ_N(θ)}, with φ_N(θ) from ``n_unroll`` unrolled
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
    ) -> None:
        super().__init__(n_samples)
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
    ) -> Tensor:
        check_data(v)
        if not isinstance(posterior, nn.Module):
            raise TypeError(f"BiSM needs a posterior that is an nn.Module, got {posterior!r}")
        params = unroll_posterior(
            energy,
            posterior,
            v.detach(),
            steps=self.n_unroll,
            lr=self.inner_lr,
            loss=self.loss,
            n_samples=self.inner_samples,
            generator=generator,
        )
        unrolled = _Reparameterised(posterior, params)
        draws = unrolled.rsample(v, self.n_samples, generator=generator)
        h = check_samples(draws, self.n_samples, len(v))
        v_node = _graph_node(v)
        log_ratio = _log_joint(energy, v_node, h) - unrolled.log_prob(h, v_node)
        return weighted_score(log_ratio, v_node, torch.full_like(log_ratio, 1 / self.n_samples))

    def __repr__(self) -> str:
        return (
            f"BiSM(n_unroll={self.n_unroll}, n_samples={self.n_samples}, inner_lr={self.inner_lr})"
        )
