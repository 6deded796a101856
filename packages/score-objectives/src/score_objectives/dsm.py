"""Denoising score matching."""

from __future__ import annotations

import torch

from ._checks import ScoreFn, call_score, check_data, check_noise, reduce
from ._common_checks import check_real, check_reduction


def dsm(
    score_fn: ScoreFn,
    v: torch.Tensor,
    *,
    sigma: float,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Denoising score matching ``E[½‖s(ṽ) + (ṽ − v)/σ²‖²]``, ṽ = v + σε (Vincent, 2011).

    ε is standard normal. ``(ṽ − v)/σ²`` is evaluated as ``ε/σ``, its exact
    value, which avoids the cancellation of ``ṽ − v`` for small σ. As σ → 0,
    ``dsm − D/(2σ²)`` tends to the score-matching loss.

    Args:
        score_fn: ``(B, ...) -> (B, ...)``.
        v: data, ``(B, ...)``.
        sigma: noise level σ > 0.
        noise: injected ε, v's shape; exclusive with ``generator``.
        generator: source of ε.
        reduction: ``"mean"`` (scalar) or ``"none"`` (per-sample, ``(B,)``).
    """
    check_data(v)
    sigma = check_real(sigma, "sigma", positive=True)
    reduction = check_reduction(reduction)
    if noise is None:
        noise = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    else:
        noise = check_noise(noise, shape=tuple(v.shape), like=v, generator=generator)
    s = call_score(score_fn, v + sigma * noise)
    per_sample = 0.5 * (s + noise / sigma).flatten(1).pow(2).sum(dim=1)
    return reduce(per_sample, reduction)
