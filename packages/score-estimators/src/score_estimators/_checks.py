"""Argument checks at the package's public boundary."""

from __future__ import annotations

import torch
from torch import Tensor


def check_data(v: object, name: str = "v") -> Tensor:
    """Refuse anything but a finite floating tensor with a batch dimension: (B, ...)."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    if v.dim() < 2:
        raise ValueError(f"{name} must have shape (B, ...) with B the batch, got {tuple(v.shape)}")
    if values_readable(v) and not bool(v.isfinite().all()):
        raise ValueError(f"{name} contains non-finite values")
    return v


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """Refuse anything but an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(value: object, name: str) -> float:
    """Refuse anything but a finite positive number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < float("inf")
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_samples(h: Tensor, n: int, batch: int) -> Tensor:
    """Posterior draws must be (n, B, ...) for ``n`` draws at a batch of ``batch``."""
    if h.dim() < 3 or tuple(h.shape[:2]) != (n, batch):
        raise ValueError(
            f"posterior.rsample must return shape ({n}, {batch}, ...) for v with batch "
            f"{batch}, got {tuple(h.shape)}"
        )
    return h


def check_energy_values(values: Tensor, n: int, batch: int) -> Tensor:
    """Energies of (n, B, ...) draws must come back as (n, B)."""
    if tuple(values.shape) != (n, batch):
        raise ValueError(
            f"energy(v, h) must broadcast over the sample dimension of h and return shape "
            f"({n}, {batch}), got {tuple(values.shape)}"
        )
    return values


def values_readable(t: Tensor) -> bool:
    """Whether a check may read t's values now: not while torch records the code as a graph
    (make_fx) or maps it over a batch (torch.func.vmap), where reading a value is an error;
    the caller outside checks its inputs instead."""
    if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)
