"""One training step of a deep EBLVM (VaGES or BiSM) or deep EBM on images, with MDSM.

A step fits the Gaussian posterior q(h | ṽ) by the posterior Fisher divergence for K
steps on noisy images ṽ = v + σε (each image weighted by 1/σ, as the paper's code),
then takes one θ step on

    MDSM(s, v) = mean_i ½ ‖s(ṽ_i)/σ_i + ε_i/σ0²‖²,   ṽ_i = v_i + σ_i ε_i,

with s a score estimate: VaGES over L draws of q refined by Langevin steps in h,
BiSM over draws of q unrolled N steps, or the deep EBM's exact score. σ is spread
linearly over the batch. Every random draw of the step except the refinement's own
Langevin noise is in one :class:`StepNoise` record whose batch axis can be split, so
that a step on a batch and the steps of several processes on its pieces can be made
to see the same draws.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import torch
from torch import Tensor, nn

from eblvm.distributed import Ranks
from ebm_models import DeepEBLVM, DeepEBM
from score_estimators import BiSM, EstimatorNoise, GaussianPosterior, Langevin, VaGES, fisher_loss
from score_objectives import mdsm, noise_levels

M = TypeVar("M", bound=nn.Module)


class StepNoise(NamedTuple):
    """The standard-normal draws of one step, for a batch of B images (C, S, S), h: H.

    ``fit_v`` (K, B, C, S, S) and ``fit_h`` (K, B, H): the noise of the images and the
    posterior draws of each of the K fitting steps; ``estimate_h`` (M, B, H): the
    posterior draws of the score estimator in the order it asks for them (L for VaGES,
    N + L for BiSM, none for the EBM); ``objective`` (B, C, S, S): MDSM's ε.
    """

    fit_v: Tensor
    fit_h: Tensor
    estimate_h: Tensor
    objective: Tensor

    def shard(self, rank: int, world: int) -> StepNoise:
        """The draws of the ``rank``-th of ``world`` equal pieces of the batch."""
        batch = self.objective.shape[0]
        if batch % world:
            raise ValueError(f"a batch of {batch} does not split into {world} equal pieces")
        size = batch // world
        piece = slice(rank * size, (rank + 1) * size)
        return StepNoise(
            self.fit_v[:, piece],
            self.fit_h[:, piece],
            self.estimate_h[:, piece],
            self.objective[piece],
        )


def rank_sigma_range(
    sigma_min: float, sigma_max: float, *, global_batch: int, rank: int, world: int
) -> tuple[float, float]:
    """The ends of the ``rank``-th piece of ``linspace(sigma_min, sigma_max, global_batch)``
    cut into ``world`` equal pieces: a process's noise levels, so that the pieces of all
    processes together are the levels of the whole batch."""
    if global_batch % world:
        raise ValueError(f"global_batch {global_batch} does not split into {world} processes")
    if global_batch == 1:
        return sigma_min, sigma_max
    size = global_batch // world
    step = (sigma_max - sigma_min) / (global_batch - 1)
    low = min(sigma_min + rank * size * step, sigma_max)
    return low, min(low + (size - 1) * step, sigma_max)


class LatentEnergy(nn.Module):
    """E(v, h) of a DeepEBLVM, with g1(v) (the residual network) optionally under bf16
    autocast; g2, g3, every derivative taken from E, and the losses stay float32.

    Offers ``__energy_at_v__(v)`` like the model, so that Langevin refinement computes g1 once.
    v: (B, C, S, S); h: (*S, B, H) -> (*S, B).
    """

    def __init__(self, model: DeepEBLVM, *, autocast: bool = False) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def features(self, v: Tensor) -> Tensor:
        """g1(v): (B, H), in v's dtype."""
        if not self.autocast:
            return self.model.features(v)
        with torch.autocast(v.device.type, dtype=torch.bfloat16):
            features = self.model.features(v)
        return features.to(v.dtype)

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        return self.model.energy_from_features(self.features(v), h)

    def __energy_at_v__(self, v: Tensor) -> Callable[[Tensor], Tensor]:
        features = self.features(v)
        return lambda h: self.model.energy_from_features(features, h)


class VisibleScore(nn.Module):
    """s(v) = −∇_v E(v) of a DeepEBM, the energy optionally under bf16 autocast and the
    gradient (with a graph to θ) taken outside it in v's dtype. v: (B, C, S, S) -> same."""

    def __init__(self, model: DeepEBM, *, autocast: bool = False) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, v: Tensor) -> Tensor:
        if not self.autocast:
            return self.model.score(v)
        node = v.view_as(v) if v.requires_grad else v.detach().requires_grad_(True)
        with torch.autocast(v.device.type, dtype=torch.bfloat16):
            energy = self.model.energy(node)
        (grad,) = torch.autograd.grad(energy.to(v.dtype).sum(), node, create_graph=True)
        return -grad


class ExponentialAverage(Generic[M]):
    """θ_ema ← decay · θ_ema + (1 − decay) · θ after every step, started at θ; ``average``
    is a copy of the model holding θ_ema (buffers follow the model's)."""

    def __init__(self, model: M, decay: float) -> None:
        self.model = model
        self.decay = decay
        self.average = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        for mean, current in zip(self.average.parameters(), self.model.parameters(), strict=True):
            mean.lerp_(current, 1 - self.decay)
        for kept, buffer in zip(self.average.buffers(), self.model.buffers(), strict=True):
            kept.copy_(buffer)


def _all_finite(module: nn.Module) -> bool:
    return all(bool(p.isfinite().all()) for p in module.parameters())


class ImageScoreMatching:
    """The training step of an image run: K posterior steps, one θ step, the EMA update.

    ``model`` is a DeepEBLVM (``method`` ``vages`` or ``bism``, with ``posterior``) or a
    DeepEBM (``ebm``, no posterior). Gradients of θ and φ are averaged over ``ranks``
    before each optimiser step and non-finite losses are detected on all processes
    together, which then stop alike with FloatingPointError.
    """

    def __init__(
        self,
        model: DeepEBLVM | DeepEBM,
        posterior: GaussianPosterior | None,
        *,
        method: str,
        optimizer: torch.optim.Optimizer,
        posterior_optimizer: torch.optim.Optimizer | None,
        schedulers: list[torch.optim.lr_scheduler.LRScheduler],
        ema: ExponentialAverage[DeepEBLVM | DeepEBM],
        sigma_range: tuple[float, float],
        sigma0: float,
        n_samples: int,
        posterior_steps: int,
        n_unroll: int,
        inner_lr: float,
        refine: dict[str, Any],
        autocast: bool,
        ranks: Ranks,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.posterior = posterior
        self.method = method
        self.optimizer = optimizer
        self.posterior_optimizer = posterior_optimizer
        self.schedulers = schedulers
        self.ema = ema
        self.sigma_range = sigma_range
        self.sigma0 = sigma0
        self.posterior_steps = posterior_steps if posterior is not None else 0
        self.estimator: VaGES | BiSM | None = None
        if method == "vages":
            self.estimator = VaGES(n_samples, refine=Langevin(**refine))
        elif method == "bism":
            self.estimator = BiSM(
                n_unroll, n_samples=n_samples, inner_lr=inner_lr, loss=fisher_loss
            )
        self.refine = refine
        self.ranks = ranks
        self.generator = generator
        self.theta = [p for p in model.parameters() if p.requires_grad]
        self.phi = [] if posterior is None else list(posterior.parameters())
        self.energy: LatentEnergy | None = None
        self.visible_score: VisibleScore | None = None
        if isinstance(model, DeepEBLVM):
            self.energy = LatentEnergy(model, autocast=autocast)
        else:
            self.visible_score = VisibleScore(model, autocast=autocast)

    def estimate_draws(self) -> int:
        """M: how many posterior draws per image the score estimator uses."""
        return 0 if self.estimator is None else self.estimator.draws

    def draw_noise(self, v: Tensor) -> StepNoise:
        """Fresh draws for one step on v: (B, C, S, S), from the step generator."""
        batch, image = v.shape[0], tuple(v.shape[1:])
        h_dim = self.model.h_dim if isinstance(self.model, DeepEBLVM) else 0
        k, m = self.posterior_steps, self.estimate_draws()

        def normal(*shape: int) -> Tensor:
            return torch.randn(shape, generator=self.generator, dtype=v.dtype, device=v.device)

        return StepNoise(
            fit_v=normal(k, batch, *image),
            fit_h=normal(k, batch, h_dim),
            estimate_h=normal(m, batch, h_dim),
            objective=normal(batch, *image),
        )

    def _sigmas(self, v: Tensor) -> Tensor:
        low, high = self.sigma_range
        levels = noise_levels(
            v.shape[0], sigma_min=low, sigma_max=high, schedule="linear", dtype=v.dtype
        )
        return levels.to(v.device).view(-1, *([1] * (v.dim() - 1)))

    def _check_loss(self, loss: Tensor, what: str) -> float:
        """The loss averaged over the processes; FloatingPointError on all of them if
        any process's loss is not finite."""
        mean = self.ranks.mean(loss.detach())
        if not bool(mean.isfinite()):
            raise FloatingPointError(f"{what} is not finite: {mean.item()}")
        return float(mean.item())

    def _fit_posterior(self, v: Tensor, noise: StepNoise) -> None:
        assert self.posterior is not None and self.posterior_optimizer is not None
        assert self.energy is not None
        sigmas = self._sigmas(v)
        weights = sigmas.flatten().reciprocal()  # 1/σ per image, as the paper's code
        for k in range(self.posterior_steps):
            noisy = v + sigmas * noise.fit_v[k]
            with torch.no_grad():
                features = self.energy.features(noisy)
            energy = _FixedFeatures(self.energy.model, features)
            self.posterior_optimizer.zero_grad(set_to_none=True)
            loss = fisher_loss(
                energy,
                self.posterior,
                noisy,
                n_samples=1,
                noise=noise.fit_h[k : k + 1],
                sample_weights=weights,
            )
            self._check_loss(loss, "the posterior's Fisher divergence")
            loss.backward(inputs=self.phi)
            self.ranks.average_gradients(self.phi)
            self.posterior_optimizer.step()

    def _score_fn(self, noise: StepNoise) -> Callable[[Tensor], Tensor]:
        """The score estimate as a function of the noisy images, on the step's draws."""
        if self.visible_score is not None:
            return self.visible_score
        assert self.posterior is not None and self.energy is not None
        energy, estimator, posterior = self.energy, self.estimator, self.posterior
        assert estimator is not None
        draws = EstimatorNoise(noise.estimate_h)
        return lambda x: estimator(energy, posterior, x, generator=self.generator, noise=draws)

    def step(self, v: Tensor, noise: StepNoise | None = None) -> float:
        """One training step on v: (B, C, S, S) with ``noise`` (drawn when None).

        Returns the MDSM loss averaged over the processes. Raises FloatingPointError for a
        non-finite loss or parameter.
        """
        noise = self.draw_noise(v) if noise is None else noise
        if self.posterior_steps:
            self._fit_posterior(v, noise)
        score_fn = self._score_fn(noise)
        low, high = self.sigma_range
        loss = mdsm(
            score_fn, v, sigma_min=low, sigma_max=high, sigma0=self.sigma0, noise=noise.objective
        )
        value = self._check_loss(loss, "the MDSM loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self.theta)
        self.ranks.average_gradients(self.theta)
        self.optimizer.step()
        for scheduler in self.schedulers:
            scheduler.step()
        if not _all_finite(self.model):
            raise FloatingPointError(value)
        self.ema.update()
        return value

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "ema": self.ema.average.state_dict(),
        }
        if self.posterior is not None and self.posterior_optimizer is not None:
            state["posterior"] = self.posterior.state_dict()
            state["posterior_optimizer"] = self.posterior_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        self.ema.average.load_state_dict(state["ema"])
        if self.posterior is not None and self.posterior_optimizer is not None:
            self.posterior.load_state_dict(state["posterior"])
            self.posterior_optimizer.load_state_dict(state["posterior_optimizer"])


class _FixedFeatures:
    """E(·, h) = g3(g2(u, h)) for features u computed beforehand (one batch of images):
    the posterior's fitting differentiates in h and φ only, so g1 is not run again."""

    def __init__(self, model: DeepEBLVM, features: Tensor) -> None:
        self.model = model
        self.features = features

    def __call__(self, v: Tensor, h: Tensor) -> Tensor:
        return self.model.energy_from_features(self.features, h)


def cosine_schedulers(
    optimizers: Sequence[torch.optim.Optimizer], *, iterations: int, lr_min: float
) -> list[torch.optim.lr_scheduler.LRScheduler]:
    """Cosine decay of every optimiser's learning rate to ``lr_min`` over ``iterations``."""
    return [
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations, eta_min=lr_min)
        for opt in optimizers
    ]
