"""One training iteration as a pure function of tensors, composed of parts.

:class:`ScoreMatchingStep` is K steps of a :class:`PosteriorFitter` on φ, then one θ
step on ``objective(estimator(energy, posterior, ·), v)``: any score estimator of
score_estimators, any objective of :mod:`eblvm.objectives`, Adam on θ and φ, and
the per-step transformations of :mod:`eblvm.transforms` (all-reduce, clipping,
schedule, EMA). :class:`ContrastiveDivergenceStep` is CD-k or PCD-k on the free
energy. A step is called as ``step(state, v, noise, iteration)`` with every random
draw of the iteration in ``noise`` (drawn beforehand by ``draw_noise``), so that it
can be replayed, split over processes, folded over the runs of a stack and traced
into a compiled graph; it reads no tensor value, and reports non-finite results in
its info instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from eblvm.functional import (
    Params,
    Runs,
    detached,
    gradients,
    requiring_grad,
    swapped,
)
from eblvm.objectives import ObjectivePart
from eblvm.optim import Adam, AdamState
from eblvm.stacked import StackedEnergy
from eblvm.transforms import StepTransforms, Transform, Updates
from eblvm_eval import GibbsNoise, gibbs_step
from score_estimators import (
    Energy,
    EstimatorNoise,
    Posterior,
    ScoreEstimator,
    fit_steps,
    standard_noise,
)


class TrainState(NamedTuple):
    """Everything a step changes: θ, φ, both optimisers' states and the transforms'
    and chains' ``extra`` state (the EMA of θ, PCD's persistent chains)."""

    theta: Params
    phi: Params
    theta_opt: AdamState
    phi_opt: AdamState | None
    extra: dict[str, Any]


class StepInfo(NamedTuple):
    """Per-run diagnostics of one step, each (S,): the objective's ``loss``, the last
    ``posterior_loss`` of the fit (NaN without one), ``grad_norm`` ‖∇θ‖ of the gradient
    the optimiser takes (after the gradient chain: averaged, clipped), ``finite`` (the
    loss and the new θ are finite) and ``posterior_finite`` (the posterior loss is
    finite, or there was no fit)."""

    loss: Tensor
    posterior_loss: Tensor
    grad_norm: Tensor
    finite: Tensor
    posterior_finite: Tensor


class Step(Protocol):
    """What the training loop needs of a step."""

    @property
    def runs(self) -> Runs: ...

    @property
    def transforms(self) -> StepTransforms: ...

    def init(self, theta: Params, phi: Params, batch: Tensor) -> TrainState: ...

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> Any: ...

    def noise_axes(self) -> Any: ...

    def __call__(
        self, state: TrainState, v: Tensor, noise: Any, iteration: Tensor
    ) -> tuple[TrainState, StepInfo]: ...


class ThetaStepper:
    """The θ half that every step shares: the gradient chain, Adam on θ, the
    parameters chain."""

    theta_optimiser: Adam
    lr: Tensor
    transforms: StepTransforms
    runs: Runs

    def _initial_state(self, theta: Params, phi: Params, phi_optimiser: Adam | None) -> TrainState:
        """θ and φ with fresh optimiser states and the transforms' extra state."""
        extra = self.transforms.init(theta)
        phi_opt = phi_optimiser.init(phi) if phi_optimiser is not None else None
        return TrainState(theta, phi, self.theta_optimiser.init(theta), phi_opt, extra)

    def _theta_step(
        self,
        state: TrainState,
        grads: dict[str, Tensor | None],
        losses: Tensor,
        iteration: Tensor,
        *,
        phi: Params,
        phi_opt: AdamState | None,
        fit_loss: Tensor | None,
        kept: dict[str, Tensor] | None = None,
    ) -> tuple[TrainState, StepInfo]:
        """The new state (φ, its optimiser state and the ``kept`` extra state as given)
        and the per-run losses (S,), posterior losses (``fit_loss``, None without a fit),
        gradient norms and finiteness."""
        transforms, runs = self.transforms, self.runs
        updates, extra = transforms.gradients.update(
            Updates(grads, self.lr, losses.detach()), state.extra, iteration
        )
        grads, reported = updates.grads, updates.loss
        assert reported is not None
        theta, theta_opt = self.theta_optimiser.update(
            state.theta, grads, state.theta_opt, updates.lr, runs
        )
        theta, extra = transforms.parameters.update(theta, extra, iteration)
        finite = reported.isfinite() & runs.finite(theta)
        if fit_loss is None:
            fit_loss = torch.full_like(reported, math.nan)
            posterior_finite = torch.ones_like(finite)
        else:
            posterior_finite = fit_loss.isfinite()
        new_state = TrainState(theta, detached(phi), theta_opt, phi_opt, {**extra, **(kept or {})})
        info = StepInfo(reported, fit_loss, runs.norms(grads), finite, posterior_finite)
        return new_state, info


class FittingLoss(Protocol):
    """A posterior loss with injected noise and per-example values, as ``kl_loss`` and
    ``fisher_loss``."""

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior,
        v: Tensor,
        *,
        n_samples: int,
        noise: Tensor,
        reduction: str,
    ) -> Tensor: ...


@dataclass(frozen=True)
class PosteriorFitter:
    """K = ``steps`` Adam steps on φ of a posterior loss (``kl_loss`` or ``fisher_loss``,
    which give per-example values with ``reduction="none"``), θ and the fitting points
    fixed; each run's loss is its examples' mean (weighted, when the objective weights
    the fit), so that each run's φ gets its own run's gradient."""

    loss: FittingLoss
    steps: int
    at: str = "objective"
    n_samples: int = 1

    def fit(
        self,
        energy: nn.Module,
        posterior: nn.Module,
        state: TrainState,
        optimiser: Adam,
        lr: Tensor,
        iteration: Tensor,
        points: Tensor,
        weights: Tensor | None,
        noise: Tensor,
        runs: Runs,
        transforms: Transform,
    ) -> tuple[Params, AdamState | None, Tensor]:
        """φ after the K steps (score_estimators' ``fit_steps``, the loop of every
        posterior fit) at base learning rate ``lr``, each through the gradient chain
        ``transforms``, its optimiser state, and the last step's per-run loss.
        ``energy`` computes with θ already (the caller swaps it in)."""

        def step(
            fixed: Energy, carry: tuple[Params, AdamState | None], k: int
        ) -> tuple[tuple[Params, AdamState | None], Tensor]:
            phi, opt_state = carry
            assert opt_state is not None
            leaves = requiring_grad(phi)
            with swapped(posterior, leaves):
                per_example = self.loss(
                    fixed,
                    posterior,  # type: ignore[arg-type]
                    points,
                    n_samples=self.n_samples,
                    noise=noise[k],
                    reduction="none",
                )
            if weights is not None:
                per_example = per_example * weights
            losses = runs.means(per_example)
            reported = losses.detach() if k == self.steps - 1 else None
            updates, _ = transforms.update(
                Updates(gradients(losses.sum(), leaves), lr, reported), {}, iteration
            )
            carry = optimiser.update(phi, updates.grads, opt_state, updates.lr, runs)
            return carry, losses.detach() if updates.loss is None else updates.loss

        (phi, opt_state), last = fit_steps(
            energy, points, (state.phi, state.phi_opt), step, steps=self.steps
        )
        if last is None:
            last = torch.full((runs.count,), math.nan, dtype=points.dtype, device=points.device)
        return phi, opt_state, last


class ScoreMatchingNoise(NamedTuple):
    """The draws of one score-matching step: ``fit`` (K, n, B, ...) the posterior's
    noise of the fit steps; ``estimate`` the estimator's; ``objective`` the objective's."""

    fit: Tensor | None
    estimate: EstimatorNoise | None
    objective: Tensor | None


@dataclass(frozen=True)
class ScoreMatchingStep(ThetaStepper):
    """Fit q for K steps, then one θ step on the objective of the estimated score.

    ``lr`` and ``posterior_lr``: θ's and φ's base learning rates (0-dim, or (S,) for a
    stack whose runs differ in them); ``latent_shape``: the shape of one draw of h;
    ``noise_law``: the law of the posterior's standard noise (its ``noise_law``);
    ``refine_steps``: the Langevin steps of the estimator's refinement (their noise is
    drawn too).
    """

    energy: nn.Module
    posterior: nn.Module | None
    estimator: ScoreEstimator
    objective: ObjectivePart
    fitter: PosteriorFitter | None
    theta_optimiser: Adam
    phi_optimiser: Adam | None
    lr: Tensor
    posterior_lr: Tensor
    transforms: StepTransforms
    runs: Runs
    latent_shape: tuple[int, ...]
    noise_law: str = "normal"
    refine_steps: int = 0

    def init(self, theta: Params, phi: Params, batch: Tensor) -> TrainState:
        return self._initial_state(theta, phi, self.phi_optimiser)

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> ScoreMatchingNoise:
        """Fresh draws for one run's batch v: (B, ...), in a fixed order."""
        batch, dtype, device = v.shape[0], v.dtype, v.device

        def draw(law: str, *shape: int) -> Tensor:
            return standard_noise(law, shape, dtype=dtype, device=device, generator=generator)

        fit = None
        if self.fitter is not None and self.fitter.steps:
            fit = draw(
                self.noise_law, self.fitter.steps, self.fitter.n_samples, batch, *self.latent_shape
            )
        estimate = None
        if self.estimator.draws:
            draws = (self.estimator.draws, batch, *self.latent_shape)
            langevin = draw("normal", self.refine_steps, *draws) if self.refine_steps else None
            estimate = EstimatorNoise(draw(self.noise_law, *draws), langevin)
        return ScoreMatchingNoise(fit, estimate, self.objective.draw_noise(v, generator))

    def noise_axes(self) -> tuple[Any, ...]:
        """The batch axis of every draw, in the draws' structure (for folding runs and
        splitting processes)."""
        estimate = (1, 2 if self.refine_steps else None) if self.estimator.draws else None
        return (2, estimate, self.objective.noise_axis)

    def __call__(
        self, state: TrainState, v: Tensor, noise: ScoreMatchingNoise, iteration: Tensor
    ) -> tuple[TrainState, StepInfo]:
        runs = self.runs
        phi, phi_opt = state.phi, state.phi_opt
        fit_loss: Tensor | None = None
        if self.fitter is not None and self.fitter.steps and self.posterior is not None:
            assert self.phi_optimiser is not None and noise.fit is not None
            at = v if self.fitter.at == "data" else self.objective.points(v, noise.objective)
            with swapped(self.energy, detached(state.theta)):
                phi, phi_opt, fit_loss = self.fitter.fit(
                    self.energy,
                    self.posterior,
                    state,
                    self.phi_optimiser,
                    self.posterior_lr,
                    iteration,
                    at.detach(),
                    self.objective.fit_weights(v),
                    noise.fit,
                    runs,
                    self.transforms.gradients,
                )
        theta = requiring_grad(state.theta)
        with swapped(self.energy, theta), swapped(self.posterior, requiring_grad(phi)):
            energy, posterior, estimator = self.energy, self.posterior, self.estimator

            def score_fn(x: Tensor) -> Tensor:
                return estimator(energy, posterior, x, noise=noise.estimate)  # type: ignore[arg-type]

            losses = runs.means(self.objective(score_fn, v, noise.objective))
            grads = gradients(losses.sum(), theta)
        return self._theta_step(
            state, grads, losses, iteration, phi=phi, phi_opt=phi_opt, fit_loss=fit_loss
        )


@dataclass(frozen=True)
class ContrastiveDivergenceStep(ThetaStepper):
    """CD-k (chains restart at the data) or PCD-k (``persistent`` chains, started at the
    first batch) on the free energy of a stack of GRBMs: k block-Gibbs sweeps, then one
    θ step on mean F(v) − mean F(v⁻) per run."""

    energy: StackedEnergy
    theta_optimiser: Adam
    lr: Tensor
    transforms: StepTransforms
    runs: Runs
    steps: int
    persistent: bool
    h_dim: int

    def init(self, theta: Params, phi: Params, batch: Tensor) -> TrainState:
        state = self._initial_state(theta, {}, None)
        if not self.persistent:
            return state
        return state._replace(extra={"chains": torch.zeros_like(batch), **state.extra})

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> GibbsNoise:
        dtype, device = v.dtype, v.device
        return GibbsNoise(
            torch.rand(
                (self.steps, v.shape[0], self.h_dim),
                generator=generator,
                dtype=dtype,
                device=device,
            ),
            torch.randn((self.steps, *v.shape), generator=generator, dtype=dtype, device=device),
        )

    def noise_axes(self) -> tuple[int, int]:
        return (1, 1)

    def __call__(
        self, state: TrainState, v: Tensor, noise: GibbsNoise, iteration: Tensor
    ) -> tuple[TrainState, StepInfo]:
        negatives = v
        if self.persistent:
            negatives = torch.where(iteration == 1, v, state.extra["chains"])
        with swapped(self.energy, detached(state.theta)):
            for k in range(self.steps):
                negatives = self.energy.map(
                    _gibbs_visible,
                    negatives,
                    GibbsNoise(noise.uniform[k], noise.normal[k]),
                    in_dims=(0, 0),
                )
        theta = requiring_grad(state.theta)
        with swapped(self.energy, theta):
            gaps = self.energy.free_energy(v) - self.energy.free_energy(negatives)
            losses = self.runs.means(gaps)
            grads = gradients(losses.sum(), theta)
        return self._theta_step(
            state,
            grads,
            losses,
            iteration,
            phi={},
            phi_opt=None,
            fit_loss=None,
            kept={"chains": negatives.detach()} if self.persistent else None,
        )


def _gibbs_visible(grbm: nn.Module, v: Tensor, noise: GibbsNoise) -> Tensor:
    return gibbs_step(grbm, v, noise=noise).visible  # type: ignore[arg-type]


def fold_noise(noises: Sequence[Any], axes: Any) -> Any:
    """One draw record for a folded batch from the runs' records: every tensor
    concatenated along its batch axis (``axes``: the same structure, of ints)."""
    first = noises[0]
    if first is None:
        return None
    if isinstance(first, Tensor):
        return first if len(noises) == 1 else torch.cat(list(noises), dim=axes)
    return type(first)(*(fold_noise([n[i] for n in noises], axes[i]) for i in range(len(first))))


def shard_noise(noise: Any, axes: Any, rank: int, world: int) -> Any:
    """The draws of the ``rank``-th of ``world`` equal pieces of the batch."""
    if noise is None:
        return None
    if isinstance(noise, Tensor):
        size = noise.shape[axes] // world
        return noise.narrow(axes, rank * size, size)
    return type(noise)(*(shard_noise(n, a, rank, world) for n, a in zip(noise, axes, strict=True)))
