"""Argument checks shared by the samplers, loaders and augmentations."""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from pathlib import Path

import torch


def check_int(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an int, refusing non-integers and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(
    name: str, value: object, *, positive: bool = False, nonnegative: bool = False
) -> float:
    """Return ``value`` as a finite float.

    With ``positive`` it must be ``> 0``; with ``nonnegative``, ``>= 0``.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    if positive and result <= 0:
        raise ValueError(f"{name} must be > 0, got {result}")
    if nonnegative and result < 0:
        raise ValueError(f"{name} must be >= 0, got {result}")
    return result


def check_bool(name: str, value: object) -> bool:
    """Return ``value``, refusing anything but a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_root(root: object) -> Path:
    """Return the data directory ``root`` as an absolute path."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    path = os.fspath(root)
    if not isinstance(path, str):
        raise TypeError(f"root must name a path as str, got {type(path).__name__}")
    return Path(path).expanduser().absolute()


def check_generator(generator: object, *, cpu: bool = False) -> None:
    """Refuse anything but ``None`` or a ``torch.Generator`` (on the CPU when ``cpu``)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if cpu and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got one on {generator.device}")


def check_float_dtype(dtype: object) -> torch.dtype:
    """Return ``dtype``, refusing anything but a floating-point ``torch.dtype``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def check_pad_to(pad_to: object, *, image_size: int) -> int | None:
    """Return ``pad_to`` (``None`` or an int at least ``image_size``)."""
    if pad_to is None:
        return None
    size = check_int("pad_to", pad_to, minimum=1)
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
