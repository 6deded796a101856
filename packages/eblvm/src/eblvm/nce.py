"""Noise-contrastive estimation (NCE) and its variational form for latent-variable
models (VNCE, Rhodes and Gutmann 2019), as steps of the trainer.

NCE learns an unnormalised model log p_m(v) = −F(v) − c with its log-normaliser c by
logistic regression of data against ν times as many noise samples y ~ p_n:

    loss = −E_v log σ(G(v)) − ν E_y log σ(−G(y)),   G(u) = log p_m(u) − log p_n(u) − log ν,

which needs the model's free energy F. VNCE needs only E(v, h) and a posterior q: the
data term takes log p̃(v, h) − log q(h | v) at h ~ q in place of log p_m(v) (a lower
bound, log σ(· − a) being concave in exp(·)), and the noise term estimates log p_m(y)
by importance sampling with ``particles`` draws of q(h | y). q is fitted by the ELBO
for K steps per minibatch, as for the score estimators. The noise is N(0, I), or a
Gaussian with the data's mean and covariance (``method.nce_noise="data"``). c starts at
an importance-sampling estimate of log Z (:meth:`NCEStep.log_normaliser`), or at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eblvm.functional import Params, Runs, detached, gradients, requiring_grad, swapped
from eblvm.optim import Adam
from eblvm.step import (
    PosteriorFitter,
    StepInfo,
    ThetaStepper,
    TrainState,
)
from eblvm.transforms import StepTransforms
from eblvm_eval import FreeEnergyModel
from score_estimators import Posterior, draw, standard_noise

LOG_NORMALISER = "nce.log_normaliser"
INITIAL_DRAWS = 1024  # noise draws of the initial log-normaliser's estimate


class GaussianNoise(NamedTuple):
    """The noise distribution N(mean, scale scaleᵀ): ``mean`` (D,), ``scale`` (D, D) lower
    triangular."""

    mean: Tensor
    scale: Tensor

    @classmethod
    def standard(cls, dim: int, *, dtype: torch.dtype, device: torch.device) -> GaussianNoise:
        return cls(
            torch.zeros(dim, dtype=dtype, device=device),
            torch.eye(dim, dtype=dtype, device=device),
        )

    @classmethod
    def fitted(cls, data: Tensor) -> GaussianNoise:
        """The Gaussian with the data's (N, D) mean and covariance (a jitter of 1e-6 of
        its mean variance keeps it positive definite)."""
        mean = data.mean(0)
        centred = data - mean
        covariance = centred.T @ centred / (len(data) - 1)
        jitter = 1e-6 * covariance.diagonal().mean() * torch.eye(len(mean), dtype=data.dtype)
        return cls(mean, torch.linalg.cholesky(covariance + jitter))

    def sample(self, eps: Tensor) -> Tensor:
        """y = mean + scale ε for standard normal ε (N, D)."""
        return self.mean + eps @ self.scale.T

    def log_prob(self, y: Tensor) -> Tensor:
        """log N(y; mean, scale scaleᵀ): (N, D) -> (N,)."""
        z = torch.linalg.solve_triangular(self.scale, (y - self.mean).T, upper=False).T
        half_log_det = self.scale.diagonal().log().sum()
        return (
            -0.5 * z.square().sum(-1) - half_log_det - 0.5 * len(self.mean) * math.log(2 * math.pi)
        )


def nce_term(log_model: Tensor, log_noise: Tensor, ratio: int, *, of_data: bool) -> Tensor:
    """Per example, −log σ(G) for data and −log σ(−G) for noise samples, with
    G = log p_m − log p_n − log ν."""
    g = log_model - log_noise - math.log(ratio)
    return -F.logsigmoid(g if of_data else -g)


def nce_loss(
    log_model_data: Tensor,
    log_noise_data: Tensor,
    log_model_noise: Tensor,
    log_noise_noise: Tensor,
    ratio: int,
) -> Tensor:
    """The NCE loss of B data and ν·B noise samples: the data terms' mean plus ν times
    the noise terms' mean (a scalar)."""
    data = nce_term(log_model_data, log_noise_data, ratio, of_data=True)
    noise = nce_term(log_model_noise, log_noise_noise, ratio, of_data=False)
    return data.mean() + ratio * noise.mean()


def _per_example(values: Tensor, runs: Runs, rows: int) -> Tensor:
    """A per-run value (S,) or () repeated for each of a run's ``rows`` examples."""
    if not runs.stacked:
        return values.reshape(()).expand(rows * runs.count)
    return values.repeat_interleave(rows)


class NCENoise(NamedTuple):
    """The draws of one NCE step: ``noise`` (ν·B, D) standard normals of the noise
    samples; for VNCE also the posterior's noise: ``fit`` (K, 1, B, H), ``data`` (L, B, H)
    at the data and ``particles`` (P, ν·B, H) at the noise samples."""

    noise: Tensor
    fit: Tensor | None = None
    data: Tensor | None = None
    particles: Tensor | None = None


@dataclass(frozen=True)
class NCEStep(ThetaStepper):
    """One NCE (``posterior`` None) or VNCE step on θ and the log-normaliser c, after K
    steps of the posterior fit (VNCE)."""

    energy: nn.Module
    posterior: nn.Module | None
    noise: GaussianNoise
    ratio: int
    theta_optimiser: Adam
    lr: Tensor
    transforms: StepTransforms
    runs: Runs
    latent_shape: tuple[int, ...] = ()
    fitter: PosteriorFitter | None = None
    phi_optimiser: Adam | None = None
    posterior_lr: Tensor | None = None
    n_samples: int = 1
    particles: int = 1
    noise_law: str = "uniform"
    estimate_log_normaliser: bool = True

    def init(self, theta: Params, phi: Params, batch: Tensor) -> TrainState:
        """θ with c at its importance-sampling estimate (see :meth:`log_normaliser`), or
        at 0 (``estimate_log_normaliser`` False)."""
        if self.estimate_log_normaliser:
            log_z = self.log_normaliser(theta, phi, batch)
        else:
            shape = (self.runs.count,) if self.runs.stacked else ()
            log_z = torch.zeros(shape, dtype=batch.dtype, device=batch.device)
        theta = {**theta, LOG_NORMALISER: log_z}
        return self._initial_state(theta, phi, self.phi_optimiser)

    def log_normaliser(self, theta: Params, phi: Params, batch: Tensor) -> Tensor:
        """An estimate of log Z of the model at θ, per run ((S,) or ()): importance
        sampling, log mean_i p̃(y_i)/p(y_i) over INITIAL_DRAWS fixed draws y_i of a
        proposal p (for VNCE, p̃(y_i) itself by importance sampling with ``particles``
        draws of q), the larger of the estimates with the noise and with N(0, I) as p
        (each is a lower bound in expectation). c starts there so that the logistic
        regression starts calibrated: from c = 0, a model whose log Z is hundreds of
        nats (a GRBM with h = 400 starts near 337) leaves c's steps far behind and the
        fit goes astray."""
        dtype, device = batch.dtype, batch.device
        generator = torch.Generator(device).manual_seed(0)
        standard = GaussianNoise.standard(batch.shape[1], dtype=dtype, device=device)
        estimates = []
        for proposal in (self.noise, standard):
            eps = torch.randn(
                (INITIAL_DRAWS, batch.shape[1]), generator=generator, dtype=dtype, device=device
            )
            y = proposal.sample(eps)
            log_model = self._log_model(theta, phi, y, generator)
            ratios = log_model - proposal.log_prob(y).repeat(self.runs.count)
            estimates.append(
                torch.logsumexp(ratios.reshape(self.runs.count, -1), dim=1)
                - math.log(INITIAL_DRAWS)
            )
        log_z = torch.maximum(*estimates)
        return log_z if self.runs.stacked else log_z.reshape(())

    def _log_model(
        self, theta: Params, phi: Params, y: Tensor, generator: torch.Generator
    ) -> Tensor:
        """log p̃(y) of every run at the same y: (N, D) -> (S·N,), the runs' rows one
        after the other (for VNCE by importance sampling over the posterior's draws, the
        same for every run, so that a stacked run starts where it would alone)."""
        folded = y.repeat(self.runs.count, 1)
        with torch.no_grad(), swapped(self.energy, detached(theta)):
            if self.posterior is None:
                return -cast(FreeEnergyModel, self.energy).free_energy(folded)
            posterior = cast(Posterior, self.posterior)
            shape = (self.particles, y.shape[0], *self.latent_shape)
            with swapped(self.posterior, detached(phi)):
                noise = standard_noise(
                    self.noise_law, shape, dtype=y.dtype, device=y.device, generator=generator
                ).repeat(1, self.runs.count, *(1 for _ in self.latent_shape))
                return importance_log_model(self.energy, posterior, folded, noise)

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> NCENoise:
        batch, dtype, device = v.shape[0], v.dtype, v.device
        eps = torch.randn(
            (self.ratio * batch, *v.shape[1:]), generator=generator, dtype=dtype, device=device
        )
        if self.posterior is None:
            return NCENoise(eps)

        def law(*shape: int) -> Tensor:
            return standard_noise(
                self.noise_law, shape, dtype=dtype, device=device, generator=generator
            )

        fit = law(self.fitter.steps, 1, batch, *self.latent_shape) if self.fitter else None
        data = law(self.n_samples, batch, *self.latent_shape)
        particles = law(self.particles, self.ratio * batch, *self.latent_shape)
        return NCENoise(eps, fit, data, particles)

    def noise_axes(self) -> tuple[Any, ...]:
        return (0, 2, 1, 1)

    def __call__(
        self, state: TrainState, v: Tensor, noise: NCENoise, iteration: Tensor
    ) -> tuple[TrainState, StepInfo]:
        runs = self.runs
        phi, phi_opt = state.phi, state.phi_opt
        fit_loss: Tensor | None = None
        if self.fitter is not None and self.posterior is not None and noise.fit is not None:
            assert self.phi_optimiser is not None and self.posterior_lr is not None
            energy_theta = {k: t for k, t in state.theta.items() if k != LOG_NORMALISER}
            with swapped(self.energy, detached(energy_theta)):
                phi, phi_opt, fit_loss = self.fitter.fit(
                    self.energy,
                    self.posterior,
                    state,
                    self.phi_optimiser,
                    self.posterior_lr,
                    iteration,
                    v.detach(),
                    None,
                    noise.fit,
                    runs,
                    self.transforms.gradients,
                )
        y = self.noise.sample(noise.noise)
        theta = requiring_grad(state.theta)
        log_c = theta[LOG_NORMALISER]
        energy_theta = {k: t for k, t in theta.items() if k != LOG_NORMALISER}
        batch = v.shape[0] // runs.count
        with swapped(self.energy, energy_theta), swapped(self.posterior, detached(phi)):
            if self.posterior is None:
                free_energy = cast(FreeEnergyModel, self.energy).free_energy
                model_data = -free_energy(v) - _per_example(log_c, runs, batch)
                model_noise = -free_energy(y) - _per_example(log_c, runs, self.ratio * batch)
                data = nce_term(model_data, self.noise.log_prob(v), self.ratio, of_data=True)
                noise_terms = nce_term(
                    model_noise, self.noise.log_prob(y), self.ratio, of_data=False
                )
            else:
                data, noise_terms = self._vnce_terms(v, y, noise, log_c, batch)
        losses = runs.means(data) + self.ratio * runs.means(noise_terms)
        grads = gradients(losses.sum(), theta)
        return self._theta_step(
            state, grads, losses, iteration, phi=phi, phi_opt=phi_opt, fit_loss=fit_loss
        )

    def _vnce_terms(
        self, v: Tensor, y: Tensor, noise: NCENoise, log_c: Tensor, batch: int
    ) -> tuple[Tensor, Tensor]:
        """VNCE's per-example terms: the data term averaged over L draws of q(h | v), the
        noise term with log p_m(y) by importance sampling over the particles."""
        posterior, runs = cast(Posterior, self.posterior), self.runs
        assert noise.data is not None and noise.particles is not None
        with torch.no_grad():
            h = draw(posterior, v, self.n_samples, noise=noise.data)
            log_q_h = posterior.log_prob(h, v)
        c_data = _per_example(log_c, runs, batch)
        c_noise = _per_example(log_c, runs, self.ratio * batch)
        bound = -self.energy(v, h) - c_data - log_q_h  # (L, B)
        data = nce_term(bound, self.noise.log_prob(v), self.ratio, of_data=True).mean(0)
        log_model_noise = importance_log_model(self.energy, posterior, y, noise.particles) - c_noise
        noise_terms = nce_term(log_model_noise, self.noise.log_prob(y), self.ratio, of_data=False)
        return data, noise_terms


def importance_log_model(
    energy: nn.Module, posterior: Posterior, y: Tensor, noise: Tensor
) -> Tensor:
    """log p̃(y) by importance sampling, log mean_p exp(−E(y, z_p)) / q(z_p | y) over
    the P draws z_p of q that ``noise`` (P, N, ...) drives: (N, D) -> (N,). Gradients
    reach θ through the energy only."""
    particles = noise.shape[0]
    with torch.no_grad():
        z = draw(posterior, y, particles, noise=noise)
        log_q = posterior.log_prob(z, y)
    return torch.logsumexp(-energy(y, z) - log_q, dim=0) - math.log(particles)


def noise_of(
    kind: str, data: Sequence[Tensor] | Tensor, *, dtype: torch.dtype, device: torch.device
) -> GaussianNoise:
    """The noise distribution of ``method.nce_noise``: ``standard`` N(0, I) or ``data``
    (the Gaussian of ``data``'s mean and covariance), on ``device``."""
    sample = data if isinstance(data, Tensor) else torch.cat(list(data))
    if kind == "standard":
        return GaussianNoise.standard(sample.shape[1], dtype=dtype, device=device)
    fitted = GaussianNoise.fitted(sample.to(torch.float64))
    return GaussianNoise(fitted.mean.to(device, dtype), fitted.scale.to(device, dtype))
