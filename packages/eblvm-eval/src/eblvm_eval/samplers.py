"""Langevin samplers driven by a score function s(v) = ∇_v log p(v).

Low-level: ``langevin_init`` and ``langevin_step`` take every parameter at call
time and return NamedTuple state and diagnostics; ``langevin_transition`` binds the
score function and the parameters once. On top, ``annealed_langevin`` runs the
annealed Langevin dynamics of Li et al. (2019) used to sample deep (latent)
energy-based models, with the temperatures of ``annealing_schedule``.

Every draw is detached: the samplers build no graph across steps. A non-finite
state or score raises ``FloatingPointError`` naming the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from eblvm_eval._checks import check_chains, check_number
from eblvm_eval._common_checks import check_count
from eblvm_eval._deprecated import renamed_attributes
from score_estimators import langevin_move

ScoreFn = Callable[[Tensor], Tensor]


class LangevinState(NamedTuple):
    """A batch of chains: ``position`` (B, ...) and its ``score`` s(position) (B, ...)."""

    position: Tensor
    score: Tensor


class LangevinInfo(NamedTuple):
    """Diagnostics of one step: ``score_norm`` (B,), ‖s(v)‖ per chain at the position
    the step started from."""

    score_norm: Tensor


class LangevinTransition(NamedTuple):
    """A score function and step parameters bound once: ``init(position)`` and
    ``step(state, generator=None, noise=None)``."""

    init: Callable[[Tensor], LangevinState]
    step: Callable[..., tuple[LangevinState, LangevinInfo]]


class AnnealedLangevinInfo(NamedTuple):
    """Diagnostics of ``annealed_langevin``.

    ``temperatures`` (S,) the schedule that was run; ``mean_score_norm`` (S,) the
    mean over chains of ‖s(v)‖ at the start of each step; ``noisy`` (B, ...) the
    chains after the last step, before the denoising step.
    """

    temperatures: Tensor
    mean_score_norm: Tensor
    noisy: Tensor


def _score_at(score_fn: ScoreFn, position: Tensor) -> Tensor:
    score = score_fn(position)
    if not isinstance(score, Tensor) or score.shape != position.shape:
        shape = tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__
        raise ValueError(
            f"score_fn must return the shape of its input {tuple(position.shape)}, got {shape}"
        )
    return score.detach()


def _check_finite(state: LangevinState, where: str) -> LangevinState:
    if not bool(state.position.isfinite().all() & state.score.isfinite().all()):
        raise FloatingPointError(f"the chains' position or score is not finite {where}")
    return state


def langevin_init(position: Tensor, score_fn: ScoreFn) -> LangevinState:
    """Start chains at ``position`` (B, ...): evaluates the score once."""
    position = check_chains(position, "position").detach()
    state = LangevinState(position, _score_at(score_fn, position))
    return _check_finite(state, "at the initial position")


def langevin_step(
    state: LangevinState,
    *,
    score_fn: ScoreFn,
    step_size: float,
    noise_std: float,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> tuple[LangevinState, LangevinInfo]:
    """One Langevin step v ← v + step_size · s(v) + noise_std · ε, ε ~ N(0, I)
    (``score_estimators.langevin_move``, the update the posterior refinement takes too).

    ``noise`` injects ε (B, ...); otherwise it is drawn with ``generator``.
    noise_std = sqrt(2 · step_size) is the unadjusted Langevin algorithm for p.
    Returns the new state (with the score at the new position) and the step's
    diagnostics. Raises FloatingPointError if the new state is not finite.
    """
    step_size = check_number(step_size, "step_size", positive=True)
    noise_std = check_number(noise_std, "noise_std", positive=False)
    position = state.position
    if noise is None:
        noise = torch.randn(
            position.shape, generator=generator, dtype=position.dtype, device=position.device
        )
    elif noise.shape != position.shape:
        raise ValueError(
            f"noise must have the chains' shape {tuple(position.shape)}, got {tuple(noise.shape)}"
        )
    info = LangevinInfo(state.score.flatten(1).norm(dim=1))
    new_position = langevin_move(
        position, -state.score, step_size=step_size, noise_std=noise_std, noise=noise
    )
    state = LangevinState(new_position, _score_at(score_fn, new_position))
    return _check_finite(state, "after the step"), info


def langevin_transition(
    score_fn: ScoreFn, *, step_size: float, noise_std: float
) -> LangevinTransition:
    """Bind ``score_fn``, ``step_size`` and ``noise_std`` once (see ``langevin_step``)."""
    step_size = check_number(step_size, "step_size", positive=True)
    noise_std = check_number(noise_std, "noise_std", positive=False)

    def init(position: Tensor) -> LangevinState:
        return langevin_init(position, score_fn)

    def step(
        state: LangevinState,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> tuple[LangevinState, LangevinInfo]:
        return langevin_step(
            state,
            score_fn=score_fn,
            step_size=step_size,
            noise_std=noise_std,
            generator=generator,
            noise=noise,
        )

    return LangevinTransition(init, step)


def annealing_schedule(
    *,
    t_max: float = 100.0,
    t_min: float = 1.0,
    hold_steps: int = 500,
    anneal_steps: int = 2000,
    final_steps: int = 200,
) -> Tensor:
    """Per-step temperatures (S,), S = hold_steps + anneal_steps + final_steps, float64.

    ``hold_steps`` at t_max; ``anneal_steps`` geometric steps
    t_max · (t_min/t_max)^(i/anneal_steps), i = 0, …, anneal_steps − 1, towards
    t_min; then ``final_steps`` linear steps from t_min down to 0 (with two or more,
    the last is at T = 0: no noise). The defaults are those of Li et al. (2019) and of the deep
    EBLVM experiments: 500 at T = 100, 2000 from 100 towards 1, 200 from 1 to 0.
    """
    t_max = check_number(t_max, "t_max", positive=True)
    t_min = check_number(t_min, "t_min", positive=True)
    if t_min > t_max:
        raise ValueError(f"t_min must not exceed t_max ({t_max}), got {t_min}")
    counts = {
        name: check_count(count, name, minimum=0)
        for name, count in (
            ("hold_steps", hold_steps),
            ("anneal_steps", anneal_steps),
            ("final_steps", final_steps),
        )
    }
    if sum(counts.values()) == 0:
        raise ValueError("the schedule must have at least one step, got 0 in every phase")
    hold = torch.full((hold_steps,), t_max, dtype=torch.float64)
    ratio = torch.arange(anneal_steps, dtype=torch.float64) / max(anneal_steps, 1)
    anneal = t_max * (t_min / t_max) ** ratio
    final = torch.linspace(t_min, 0.0, final_steps, dtype=torch.float64)
    return torch.cat([hold, anneal, final])


def annealed_langevin(
    score_fn: ScoreFn,
    v0: Tensor,
    *,
    schedule: Tensor | None = None,
    step_size: float = 0.02,
    denoise_sigma: float | None = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, AnnealedLangevinInfo]:
    """Annealed Langevin dynamics (Li et al., 2019) from v0: (B, ...) -> (B, ...).

    At step k, with temperature T_k from ``schedule`` (S,) (default
    ``annealing_schedule()``) and ε = ``step_size``:

        v ← v + (ε²/2) · s(v) + ε · sqrt(T_k) · ξ,   ξ ~ N(0, I),

    a Langevin step for p(v)^(1/T_k) of step ε²T_k/2. Then one denoising step
    v ← v + σ0² · s(v) = v − σ0² ∇_v E(v) with σ0 = ``denoise_sigma`` (None skips
    it). For a deep EBLVM, s(v) = −∇_v E(v, h) with h held fixed (e.g. the
    posterior mean of a training image). Returns the samples and the diagnostics.
    """
    schedule = annealing_schedule() if schedule is None else schedule
    if not isinstance(schedule, Tensor) or schedule.dim() != 1 or len(schedule) == 0:
        raise ValueError("schedule must be a non-empty 1-D tensor of temperatures")
    if not bool((schedule.isfinite() & (schedule >= 0)).all()):
        raise ValueError("schedule must hold finite non-negative temperatures")
    step_size = check_number(step_size, "step_size", positive=True)
    if denoise_sigma is not None:
        denoise_sigma = check_number(denoise_sigma, "denoise_sigma", positive=True)
    state = langevin_init(check_chains(v0, "v0"), score_fn)
    mean_norms = []
    for k, temperature in enumerate(schedule.tolist()):
        try:
            state, step_info = langevin_step(
                state,
                score_fn=score_fn,
                step_size=step_size**2 / 2,
                noise_std=step_size * math.sqrt(temperature),
                generator=generator,
            )
        except FloatingPointError as error:
            raise FloatingPointError(
                f"annealed Langevin diverged at step {k} (temperature {temperature:g}): {error}"
            ) from error
        mean_norms.append(step_info.score_norm.mean())
    samples = state.position
    if denoise_sigma is not None:
        samples = samples + denoise_sigma**2 * state.score
    return samples, AnnealedLangevinInfo(
        temperatures=schedule, mean_score_norm=torch.stack(mean_norms), noisy=state.position
    )


__getattr__ = renamed_attributes(__name__, ("langevin_transition", "LangevinTransition"))
