"""Multiscale denoising score matching."""

from __future__ import annotations

import math

import torch

from ._checks import ScoreFn, call_score, check_data, check_noise, check_scale, reduce
from ._common_checks import (
    check_bool,
    check_choice,
    check_float_dtype,
    check_int,
    check_reduction,
    values_readable,
)

SCHEDULES = ("linear", "geometric")


def noise_levels(
    batch_size: int,
    *,
    sigma_min: float,
    sigma_max: float,
    schedule: str,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Noise levels spread deterministically over a batch, ``(batch_size,)``.

    ``"linear"``: ``linspace(sigma_min, sigma_max, batch_size)``;
    ``"geometric"``: ``exp(linspace(log sigma_min, log sigma_max, batch_size))``.
    Both start at ``sigma_min`` and end at ``sigma_max``, up to rounding (a batch
    of one gets ``sigma_min``). Computed in float64, returned in the floating
    ``dtype`` (default: torch's default dtype) on ``device``; σ² and 1/σ² must be
    finite in ``dtype`` at both ends (float32: 5.4e-20 < σ < 1.8e19).
    """
    batch_size = check_int(batch_size, "batch_size")
    dtype = check_float_dtype(torch.get_default_dtype() if dtype is None else dtype)
    sigma_min, sigma_max = _check_range(sigma_min, sigma_max, dtype)
    schedule = check_choice(schedule, "schedule", SCHEDULES)
    if schedule == "linear":
        levels = torch.linspace(sigma_min, sigma_max, batch_size, dtype=torch.float64)
    else:
        log_levels = torch.linspace(
            math.log(sigma_min), math.log(sigma_max), batch_size, dtype=torch.float64
        )
        levels = log_levels.exp()
    return levels.to(dtype=dtype, device=device)


def mdsm(
    score_fn: ScoreFn,
    v: torch.Tensor,
    *,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    sigma0: float = 0.1,
    schedule: str = "linear",
    levels: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    check_finite: bool = False,
) -> torch.Tensor:
    """Multiscale denoising score matching (Li et al., 2019).

    Sample i gets the noise level σ_i = ``noise_levels(B, ...)[i]`` (or ``levels[i]``) and
    ṽ_i = v_i + σ_i ε_i with ε standard normal; its loss is
    ``½‖s(ṽ_i)/σ_i + (ṽ_i − v_i)/(σ_i σ0²)‖²``, where ``(ṽ_i − v_i)/σ_i`` is
    evaluated as its exact value ε_i.

    Args:
        score_fn: ``(B, ...) -> (B, ...)``.
        v: data, ``(B, ...)``.
        sigma_min: the least noise level, ``0 < sigma_min <= sigma_max``; σ² and 1/σ²
            finite in v's dtype (float32: 5.4e-20 < σ < 1.8e19), as for ``levels``.
        sigma_max: the greatest noise level.
        sigma0: the fixed scale σ0 > 0, with σ0⁴ and 1/σ0⁴ finite in v's dtype
            (float32: 2.3e-10 < σ0 < 4.3e9).
        schedule: ``"linear"`` or ``"geometric"`` (see ``noise_levels``).
        levels: explicit noise levels ``(B,)``, finite and > 0, in place of the range
            and schedule (a piece of a larger batch's levels, or each of several
            independent batches' levels side by side).
        noise: injected ε, v's shape; exclusive with ``generator``.
        generator: source of ε.
        reduction: ``"mean"`` (scalar) or ``"none"`` (per-sample, ``(B,)``).
        check_finite: raise FloatingPointError when the loss is not finite (the trainer
            checks its losses itself).
    """
    check_data(v)
    sigma0 = check_scale(sigma0, "sigma0", dtype=v.dtype, power=4)
    reduction = check_reduction(reduction)
    check_finite = check_bool(check_finite, "check_finite")
    sigmas = _levels(v, sigma_min, sigma_max, schedule, levels).reshape(-1, *([1] * (v.dim() - 1)))
    if noise is None:
        noise = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    else:
        noise = check_noise(noise, shape=tuple(v.shape), like=v, generator=generator)
    s = call_score(score_fn, v + sigmas * noise)
    per_sample = 0.5 * (s / sigmas + noise / sigma0**2).flatten(1).pow(2).sum(dim=1)
    return reduce(per_sample, reduction, check_finite=check_finite, function="mdsm")


def _levels(
    v: torch.Tensor,
    sigma_min: float | None,
    sigma_max: float | None,
    schedule: str,
    levels: torch.Tensor | None,
) -> torch.Tensor:
    """The per-sample noise levels (B,): ``levels`` checked, or spread over the batch."""
    if levels is None:
        if sigma_min is None or sigma_max is None:
            raise ValueError("mdsm needs sigma_min and sigma_max, or explicit levels")
        return noise_levels(
            v.shape[0],
            sigma_min=sigma_min,
            sigma_max=sigma_max,
            schedule=schedule,
            dtype=v.dtype,
            device=v.device,
        )
    if sigma_min is not None or sigma_max is not None:
        raise ValueError("levels and sigma_min/sigma_max are exclusive: pass one of them")
    if not isinstance(levels, torch.Tensor) or tuple(levels.shape) != (v.shape[0],):
        got = tuple(levels.shape) if isinstance(levels, torch.Tensor) else type(levels).__name__
        raise ValueError(f"levels must be a tensor of shape ({v.shape[0]},), got {got}")
    if levels.dtype != v.dtype or levels.device != v.device:
        raise ValueError(
            f"levels must have v's dtype and device ({v.dtype}, {v.device}), "
            f"got ({levels.dtype}, {levels.device})"
        )
    if values_readable(levels):
        if not bool((levels.isfinite() & (levels > 0)).all()):
            raise ValueError("levels must be finite and > 0")
        for extreme in (float(levels.min()), float(levels.max())):
            check_scale(extreme, "levels", dtype=v.dtype, power=2)
    return levels


def _check_range(sigma_min: object, sigma_max: object, dtype: torch.dtype) -> tuple[float, float]:
    low = check_scale(sigma_min, "sigma_min", dtype=dtype, power=2)
    high = check_scale(sigma_max, "sigma_max", dtype=dtype, power=2)
    if low > high:
        raise ValueError(f"sigma_min must be <= sigma_max, got {low} > {high}")
    return low, high
