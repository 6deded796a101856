"""Validation shared by the objectives; every refusal names the argument."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

REDUCTIONS = ("mean", "none")


def check_data(v: object, *, name: str = "v") -> torch.Tensor:
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


def check_reduction(reduction: object) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return str(reduction)


def check_choice(value: object, *, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return str(value)


def check_positive(value: object, *, name: str) -> float:
    """A finite real number > 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def check_count(value: object, *, name: str) -> int:
    """An integer >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


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


def reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """``(B,)`` per-sample values, or their mean."""
    return per_sample.mean() if reduction == "mean" else per_sample


def values_readable(t: torch.Tensor) -> bool:
    """Whether a check may read t's values now: not while torch records the code as a graph
    (make_fx) or maps it over a batch (torch.func.vmap), where reading a value is an error;
    the caller outside checks its inputs instead."""
    if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)
