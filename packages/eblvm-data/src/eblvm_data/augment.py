"""Batch-level augmentations as pure functions."""

from __future__ import annotations

import torch
from torch import Tensor

from eblvm_data._common_checks import check_generator, check_int


def dequantize(x: Tensor, *, levels: int = 256, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation: ``(x · (levels - 1) + U) / levels``, ``U ~ U[0, 1)``.

    ``x``: any shape, floating point, values in ``[0, 1]`` that came from
    ``levels`` equally spaced values ``k / (levels - 1)``; the result spreads
    value ``k`` uniformly over ``[k / levels, (k + 1) / levels)``. The noise is
    drawn on the generator's device (``x``'s without one). Same shape and dtype as ``x``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be floating point, got {x.dtype}")
    levels = check_int(levels, "levels", minimum=2)
    check_generator(generator)
    if x.numel() > 0 and not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold values in [0, 1]")
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=_device(x, generator))
    return (x * (levels - 1) + noise.to(x.device)) / levels


def random_hflip(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image of ``x: (B, C, H, W)`` left-right with probability ½.

    Image ``b`` is flipped where ``torch.rand(B, generator=generator)[b] < 0.5``
    (drawn on the generator's device, ``x``'s without one). Same shape and dtype as ``x``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    check_generator(generator)
    flip = torch.rand(x.shape[0], generator=generator, device=_device(x, generator)) < 0.5
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def _device(x: Tensor, generator: torch.Generator | None) -> torch.device:
    return x.device if generator is None else generator.device
