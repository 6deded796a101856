"""Checks of the data sets' own arguments (data folders, padding, 2-D points); the
checks every package states the same way are in ``_common_checks``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from eblvm_data._common_checks import check_int


def check_root(root: object) -> Path:
    """Return the data directory ``root`` as an absolute path."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    path = os.fspath(root)
    if not isinstance(path, str):
        raise TypeError(f"root must name a path as str, got {type(path).__name__}")
    return Path(path).expanduser().absolute()


def check_pad_to(pad_to: object, *, image_size: int) -> int | None:
    """Return ``pad_to`` (``None`` or an int at least ``image_size``)."""
    if pad_to is None:
        return None
    size = check_int(pad_to, "pad_to", minimum=1)
    if size < image_size:
        raise ValueError(f"pad_to must be None or >= the image size {image_size}, got {size}")
    return size


def check_points(x: object) -> torch.Tensor:
    """Return ``x``, refusing anything but a finite floating-point tensor ``(B, 2)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be floating point, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (B, 2), got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite")
    return x
