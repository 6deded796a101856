"""Denoising score matching."""

from __future__ import annotations

import torch

from ._checks import ScoreFn, call_score, check_data, check_noise, check_scale, reduce
from ._common_checks import check_bool, check_reduction


def dsm(
    score_fn: ScoreFn,
    v: torch.Tensor,
    *,
    sigma: float,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    check_finite: bool = False,
) -> torch.Tensor:
    """Denoising score matching ``E[½‖s(ṽ) + (ṽ − v)/σ²‖²]``, ṽ = v + σε (Vincent, 2011).

    ε is standard normal. ``(ṽ − v)/σ²`` is evaluated as ``ε/σ``, its exact
    value, which avoids the cancellation of ``ṽ − v`` for small σ. As σ → 0,
    ``dsm − D/(2σ²)`` tends to the score-matching loss.

    Args:
        score_fn: ``(B, ...) -> (B, ...)``.
        v: data, ``(B, ...)``.
        sigma: noise level σ > 0, with σ² and 1/σ² finite in v's dtype (float32:
            5.4e-20 < σ < 1.8e19).
        noise: injected ε, v's shape; exclusive with ``generator``.
        generator: source of ε.
        reduction: ``"mean"`` (scalar) or ``"none"`` (per-sample, ``(B,)``).
        check_finite: raise FloatingPointError when the loss is not finite (the trainer
            checks its losses itself).
    """
    check_data(v)
    sigma = check_scale(sigma, "sigma", dtype=v.dtype, power=2)
    reduction = check_reduction(reduction)
    check_finite = check_bool(check_finite, "check_finite")
    if noise is None:
        noise = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    else:
        noise = check_noise(noise, shape=tuple(v.shape), like=v, generator=generator)
    s = call_score(score_fn, v + sigma * noise)
    per_sample = 0.5 * (s + noise / sigma).flatten(1).pow(2).sum(dim=1)
    return reduce(per_sample, reduction, check_finite=check_finite, function="dsm")
