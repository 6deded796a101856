"""Checks of the models' own arguments (data, latents, dtypes); the checks every package
states the same way are in ``_common_checks``."""

from __future__ import annotations

import torch
from torch import Tensor

from ebm_models._common_checks import values_readable


def check_data(
    v: object,
    shape: tuple[int, ...],
    name: str,
    *,
    dtype: torch.dtype | None = None,
    finite: bool = True,
) -> Tensor:
    """Refuse anything but a floating tensor of shape (B, *shape) with B ≥ 1, of ``dtype``
    (the model's) when given, and with finite values unless ``finite=False``.

    Type, dtype and shape are static and cost nothing; the finiteness check reads the
    values, so methods on a hot path (the energy, the conditionals) pass ``finite=False``.
    """
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    if dtype is not None:
        check_dtype(v, dtype, name)
    if v.dim() != len(shape) + 1 or tuple(v.shape[1:]) != shape:
        raise ValueError(f"{name} must have shape {_pattern('B', shape)}, got {tuple(v.shape)}")
    if v.shape[0] == 0:
        raise ValueError(
            f"{name} must hold at least one example, got an empty batch of shape {tuple(v.shape)}"
        )
    if finite and values_readable(v) and not bool(v.isfinite().all()):
        raise ValueError(f"{name} contains non-finite values")
    return v


def check_latents(
    h: object, h_dim: int, *, dtype: torch.dtype, batch: int | None = None, name: str = "h"
) -> Tensor:
    """Refuse anything but latents of shape (*S, B, h_dim) in the model's dtype, with B =
    ``batch`` when given (the batch of v)."""
    if not isinstance(h, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(h).__name__}")
    if h.dim() < 2 or h.shape[-1] != h_dim or (batch is not None and h.shape[-2] != batch):
        want = _pattern("*S, B" if batch is None else f"*S, {batch}", (h_dim,))
        raise ValueError(f"{name} must have shape {want}, got {tuple(h.shape)}")
    return check_dtype(h, dtype, name)


def check_dtype(x: Tensor, dtype: torch.dtype, name: str) -> Tensor:
    """Refuse a tensor whose dtype is not the model's, naming both (rather than torch's
    "expected m1 and m2 to have the same dtype" from deep inside the model)."""
    if x.dtype != dtype:
        raise TypeError(f"{name} must have the model's dtype {dtype}, got {x.dtype}")
    return x


def _pattern(leading: str, shape: tuple[int, ...]) -> str:
    return f"({', '.join([leading, *map(str, shape)])})"
