"""Argument checks shared by the models' public methods."""

from __future__ import annotations

import torch
from torch import Tensor


def check_positive_int(value: object, name: str) -> int:
    """Refuse anything but a positive integer, naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_data(v: object, dim: int, name: str) -> Tensor:
    """Refuse anything but a finite floating tensor of shape (B, dim)."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    if v.dim() != 2 or v.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got {tuple(v.shape)}")
    if values_readable(v) and not bool(v.isfinite().all()):
        raise ValueError(f"{name} contains non-finite values")
    return v


def values_readable(t: Tensor) -> bool:
    """Whether a check may read t's values now: not while torch records the code as a graph
    (make_fx) or maps it over a batch (torch.func.vmap), where reading a value is an error;
    the caller outside checks its inputs instead."""
    if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)
