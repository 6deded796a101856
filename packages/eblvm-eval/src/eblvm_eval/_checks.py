"""Checks of the evaluation's own arguments (scalars that may be 0-dim tensors, tensors
of a shape, numbers of the samplers); the checks every package states the same way are
in ``_common_checks``."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_finite_scalar(value: object, name: str) -> float:
    """Refuse anything but a finite real number or a one-element tensor."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def check_number(value: object, name: str, *, positive: bool) -> float:
    """A finite real number (or one-element tensor) > 0 with ``positive``, else >= 0."""
    result = check_finite_scalar(value, name)
    if result < 0 or (positive and result == 0):
        bound = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be {bound}, got {result}")
    return result


def check_tensor(
    value: object, name: str, *, shape: tuple[int | None, ...], finite: bool = True
) -> Tensor:
    """Refuse anything but a floating tensor of ``shape`` (None: any size) with finite values."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    sizes = ["*" if s is None else str(s) for s in shape]
    expected = "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"
    if value.dim() != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, value.shape, strict=True)
    ):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
    if finite and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains non-finite values")
    return value


def check_chains(position: object, name: str) -> Tensor:
    """A batch of chains: a finite floating tensor (B, ...) with B the chains."""
    if not isinstance(position, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(position).__name__}")
    if not position.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {position.dtype}")
    if position.dim() < 2:
        raise ValueError(
            f"{name} must have shape (B, ...) with B the chains, got {tuple(position.shape)}"
        )
    if not bool(position.isfinite().all()):
        raise ValueError(f"{name} contains non-finite values")
    return position
