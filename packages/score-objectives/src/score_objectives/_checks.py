"""Checks of the objectives' own arguments (data, injected noise, score functions); the
checks every package states the same way are in ``_common_checks``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common_checks import check_finite_result, check_real, values_readable

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def check_data(v: object, name: str = "v") -> torch.Tensor:
    """A floating tensor, not float16, with a batch axis and at least one more axis,
    non-empty and finite."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {v.dtype}")
    check_not_half(v, what=f"{name} must not be float16")
    if v.dim() < 2:
        raise ValueError(
            f"{name} must have shape (B, ...) with at least 2 dims, got shape {tuple(v.shape)}"
        )
    if v.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(v.shape)}")
    if values_readable(v) and not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} contains non-finite values")
    return v


def check_not_half(t: torch.Tensor, *, what: str) -> None:
    """Refuse float16, whose range is too narrow for the objectives' arithmetic."""
    if t.dtype == torch.float16:
        raise TypeError(
            f"{what}: its range (largest value 65504) is too narrow for the objectives' "
            "squared norms and kernel terms, which overflow to inf or NaN; use float32 or "
            "bfloat16 (a float16 model can cast inside score_fn)"
        )


def check_noise(
    noise: object,
    *,
    shape: tuple[int, ...],
    like: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Injected noise: a finite tensor of the expected shape, with v's dtype and device."""
    if generator is not None:
        raise ValueError("noise and generator are exclusive: pass one of them, not both")
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a torch.Tensor, got {type(noise).__name__}")
    if tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
    if noise.dtype != like.dtype or noise.device != like.device:
        raise ValueError(
            f"noise must have v's dtype and device ({like.dtype}, {like.device}), "
            f"got ({noise.dtype}, {noise.device})"
        )
    if values_readable(noise) and not bool(torch.isfinite(noise).all()):
        raise ValueError("noise contains non-finite values")
    return noise


def call_score(score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``score_fn(x)`` and check that the output has x's shape."""
    s = score_fn(x)
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"score_fn must return a torch.Tensor, got {type(s).__name__}")
    check_not_half(s, what="score_fn must not return float16")
    if s.shape != x.shape:
        raise ValueError(
            f"score_fn must return a tensor of v's shape {tuple(x.shape)}, got {tuple(s.shape)}"
        )
    return s


def differentiable_input(v: torch.Tensor) -> torch.Tensor:
    """v itself when it already carries a graph, else a detached copy that requires grad."""
    return v if v.requires_grad else v.detach().requires_grad_(True)


def check_input_graph(s: torch.Tensor) -> None:
    """Objectives that differentiate the score w.r.t. v need an autograd graph in its output."""
    if not s.requires_grad:
        raise ValueError(
            "score_fn output carries no autograd graph, so its derivative w.r.t. v cannot be "
            "taken; build it with differentiable torch operations outside torch.no_grad()"
        )


def check_scale(value: object, name: str, *, dtype: torch.dtype, power: int) -> float:
    """A noise level or bandwidth: finite and > 0, and such that ``value**power`` and its
    inverse, which the objective multiplies and divides by, are finite in ``dtype`` (the
    data's): between ``max**(-1/power)`` and ``max**(1/power)`` for dtype's largest
    finite value ``max``."""
    scale = check_real(value, name, positive=True)
    largest = torch.finfo(dtype).max
    low, high = largest ** (-1 / power), largest ** (1 / power)
    if not low < scale < high:
        raise ValueError(
            f"{name} must be in ({low:.3g}, {high:.3g}) for {dtype} data, where {name}^{power} "
            f"and 1/{name}^{power} are finite, got {value!r}"
        )
    return scale


def reduce(
    per_sample: torch.Tensor, reduction: str, *, check_finite: bool, function: str
) -> torch.Tensor:
    """``(B,)`` per-sample values, or their mean: the objective ``function``'s result,
    checked to be finite when ``check_finite`` (a FloatingPointError names ``function``)."""
    loss = per_sample.mean() if reduction == "mean" else per_sample
    if check_finite:
        check_finite_result(
            loss,
            function,
            what="the loss",
            cause="the score function or the inputs gave non-finite values",
        )
    return loss
