"""Sliced score matching."""

from __future__ import annotations

import torch

from ._checks import (
    ScoreFn,
    call_score,
    check_data,
    check_input_graph,
    check_noise,
    differentiable_input,
    reduce,
)
from ._common_checks import check_bool, check_choice, check_int, check_reduction

PROJECTIONS = ("rademacher", "gaussian")


def ssm(
    score_fn: ScoreFn,
    v: torch.Tensor,
    *,
    n_projections: int = 1,
    projection: str = "rademacher",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    check_finite: bool = False,
) -> torch.Tensor:
    """Sliced score matching ``E[½(εᵀs(v))² + εᵀ ∂(εᵀs(v))/∂v]`` (Song et al., 2019).

    Averaged over ``n_projections`` directions ε per sample, Rademacher or
    standard Gaussian; one autograd pass per projection, with
    ``create_graph=True``. ``score_fn`` must act on each sample independently.

    Args:
        score_fn: ``(B, ...) -> (B, ...)``.
        v: data, ``(B, ...)``.
        n_projections: M, the number of directions per sample.
        projection: ``"rademacher"`` or ``"gaussian"``; unused when ``noise`` is given.
        noise: injected directions ε, ``(M, B, ...)`` with M = ``n_projections``;
            exclusive with ``generator``.
        generator: source of the random directions.
        reduction: ``"mean"`` (scalar) or ``"none"`` (per-sample, ``(B,)``).
        check_finite: raise FloatingPointError when the loss is not finite (the trainer
            checks its losses itself).
    """
    check_data(v)
    n_projections = check_int(n_projections, "n_projections")
    projection = check_choice(projection, "projection", PROJECTIONS)
    reduction = check_reduction(reduction)
    check_finite = check_bool(check_finite, "check_finite")
    shape = (n_projections, *v.shape)
    if noise is None:
        noise = _directions(shape, projection, like=v, generator=generator)
    else:
        noise = check_noise(noise, shape=shape, like=v, generator=generator)

    x = differentiable_input(v)
    s = call_score(score_fn, x)
    check_input_graph(s)
    total = torch.zeros(v.shape[0], dtype=s.dtype, device=s.device)
    for eps in noise:
        projected = (eps * s).flatten(1).sum(dim=1)
        (grad,) = torch.autograd.grad(projected.sum(), x, create_graph=True, materialize_grads=True)
        total = total + 0.5 * projected.pow(2) + (eps * grad).flatten(1).sum(dim=1)
    return reduce(total / n_projections, reduction, check_finite=check_finite, function="ssm")


def _directions(
    shape: tuple[int, ...],
    projection: str,
    *,
    like: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Random directions with E[εεᵀ] = I: Rademacher signs or standard normal."""
    if projection == "gaussian":
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return bits.to(like.dtype) * 2 - 1
