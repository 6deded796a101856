"""Settings to objects, in one place: the objective, posterior fitter, optimisers and
per-step transformations of a run's training step, handed to the method's own
declaration (:mod:`eblvm.methods`) to build the step.

The step receives objects, never strings; this module is where the names in a
:class:`~eblvm.settings.Settings` become ``DSM(sigma=0.05)``,
``PosteriorFitter(kl_loss, 5)``, and the method's ``build`` makes ``VaGES(2)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from eblvm.distributed import Ranks
from eblvm.functional import Runs
from eblvm.methods import StepParts
from eblvm.objectives import DSM, KSD, MDSM, SM, SSM, ObjectivePart
from eblvm.optim import Adam
from eblvm.settings import Settings
from eblvm.step import FittingLoss, PosteriorFitter, Step
from eblvm.transforms import (
    StepTransforms,
    Transform,
    all_reduce,
    chain,
    clip_by_global_norm,
    cosine_schedule,
    ema,
)
from score_estimators import NoiseDriven, fisher_loss, kl_loss

POSTERIOR_LOSSES: dict[str, FittingLoss] = {"kl": kl_loss, "fisher": fisher_loss}


class Model(NamedTuple):
    """A run's modules: the energy (θ), its posterior (φ; None for an exact score or
    CD) and the shape of one draw of h."""

    energy: nn.Module
    posterior: nn.Module | None
    latent_shape: tuple[int, ...]


def _scaled(loss: FittingLoss, factor: int) -> FittingLoss:
    """``loss`` times ``factor``: a batch mean over S folded runs times S is the sum of
    the runs' means, whose gradient in each run's φ is that run's own."""
    if factor == 1:
        return loss

    def scaled(*args: Any, **kwargs: Any) -> Tensor:
        return factor * loss(*args, **kwargs)

    return cast(FittingLoss, scaled)


def objective_of(settings: Settings, runs: Runs, ranks: Ranks) -> ObjectivePart:
    """The objective the settings name, for the folded batch of ``runs``."""
    objective = settings.objective
    builders: dict[str, Callable[[], Any]] = {
        "dsm": partial(DSM, objective.sigma),
        "mdsm": partial(
            MDSM,
            objective.sigma_min,
            objective.sigma_max,
            objective.sigma0,
            objective.schedule,
            runs=runs,
            piece=(ranks.rank, ranks.world),
        ),
        "ssm": partial(SSM, objective.projections),
        "sm": SM,
        "ksd": partial(KSD, runs=runs),
    }
    part: ObjectivePart = builders[objective.name]()
    return part


def transforms_of(settings: Settings, runs: Runs, ranks: Ranks) -> StepTransforms:
    """What the settings ask, in this order: all-reduce under data parallelism, clipping
    by global norm, the schedule (before each optimiser step); the EMA (after θ's)."""
    optimiser = settings.optimiser
    gradients: list[Transform] = []
    if ranks.world > 1:
        gradients.append(all_reduce(ranks))
    if optimiser.clip_norm > 0:
        gradients.append(clip_by_global_norm(optimiser.clip_norm, runs))
    if optimiser.schedule == "cosine":
        gradients.append(cosine_schedule(settings.cadence.iterations, optimiser.lr_min))
    parameters = [ema(optimiser.ema_decay)] if optimiser.ema_decay > 0 else []
    return StepTransforms(chain(*gradients), chain(*parameters))


def _rates(values: Sequence[float], runs: Runs, device: torch.device) -> Tensor:
    """One learning rate per run (a stack) or the single run's, as a tensor."""
    rates = torch.tensor(list(values), dtype=torch.float64, device=device)
    return rates if runs.stacked else rates.reshape(())


def build_step(
    settings: Settings,
    model: Model,
    runs: Runs,
    ranks: Ranks,
    *,
    lrs: Sequence[float] | None = None,
    posterior_lrs: Sequence[float] | None = None,
    data: Tensor | None = None,
) -> Step:
    """The training step of ``settings`` for ``model`` (the runs' modules, stacked for a
    stack). ``lrs``, ``posterior_lrs``: each run's θ and φ learning rates (default:
    the settings' for every run); ``data``: training examples, for NCE's noise."""
    device = ranks.device
    lr = _rates(lrs or [settings.optimiser.lr] * runs.count, runs, device)
    posterior_lr = _rates(posterior_lrs or [settings.posterior.lr] * runs.count, runs, device)
    adam = Adam((settings.optimiser.beta1, settings.optimiser.beta2), settings.optimiser.eps)
    transforms = transforms_of(settings, runs, ranks)
    method = settings.method.declared
    posterior = model.posterior if method.posterior else None
    fitter = None
    if posterior is not None and settings.posterior.steps:
        fitter = PosteriorFitter(
            POSTERIOR_LOSSES[settings.posterior.loss],
            settings.posterior.steps,
            at=settings.posterior.fit_at,
        )
    noise_law = "normal"
    if posterior is not None:
        if not isinstance(posterior, NoiseDriven):
            raise TypeError(
                f"the training step injects the posterior's noise, but "
                f"{type(posterior).__name__} is not NoiseDriven (noise_law, rsample(noise=))"
            )
        noise_law = posterior.noise_law
    parts = StepParts(
        model,
        runs,
        adam,
        lr,
        posterior_lr,
        transforms,
        posterior,
        fitter,
        noise_law,
        objective_of(settings, runs, ranks) if method.objective else None,
        _scaled(POSTERIOR_LOSSES[settings.posterior.loss], runs.count),
        data,
        device,
    )
    return method.build(settings, parts)
