"""Image grids saved as PNG, and paths between latent vectors."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch
from matplotlib import image as mpl_image
from torch import Tensor

from eblvm_eval._common_checks import check_count
from eblvm_eval.files import write_atomically

__all__ = ["image_grid", "interpolate_latents", "save_image_grid"]


def _check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    if images.dim() != 4 or images.shape[0] < 1 or images.shape[1] not in (1, 3):
        raise ValueError(
            "images must have shape (B, C, H, W) with B >= 1 and C in (1, 3), "
            f"got {tuple(images.shape)}"
        )
    if images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"images must have H, W >= 1, got {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contains non-finite values (NaN or ±inf)")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"images must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]; "
            "map or clamp them to [0, 1] first"
        )
    return images


def _check_padding(padding: object) -> int:
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    return padding


def image_grid(
    images: Tensor, *, nrow: int | None = None, padding: int = 2, fill: float = 0.0
) -> Tensor:
    """Tile ``images: (B, C, H, W)`` in [0, 1] into one image ``(C, H_g, W_g)``.

    ``nrow``: images per row (at most B), by default ceil(√B); rows fill left to right,
    top to bottom. ``padding`` pixels of ``fill`` (0: black) surround every image, so
    ``H_g = rows·(H + padding) + padding`` and ``W_g = cols·(W + padding) + padding``.
    Unfilled cells of the last row are ``fill`` too. Same dtype and device as ``images``.
    """
    images = _check_images(images)
    pad = _check_padding(padding)
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 <= fill <= 1:
        raise ValueError(f"fill must be a number in [0, 1], got {fill!r}")
    count, channels, height, width = images.shape
    cols = math.ceil(math.sqrt(count)) if nrow is None else check_count(nrow, "nrow")
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    grid = images.new_full(
        (channels, rows * (height + pad) + pad, cols * (width + pad) + pad), float(fill)
    )
    for index in range(count):
        top = pad + (index // cols) * (height + pad)
        left = pad + (index % cols) * (width + pad)
        grid[:, top : top + height, left : left + width] = images[index]
    return grid


FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
MIN_SIDE = 64  # pixels: smaller images are enlarged to at least this by default


def save_image_grid(
    images: Tensor,
    path: str | os.PathLike[str],
    *,
    nrow: int | None = None,
    padding: int = 2,
    scale: int | None = None,
    fill: float = 0.85,
) -> Path:
    """Save ``images: (B, C, H, W)`` in [0, 1] (C = 1 grey or 3 RGB) as one grid image,
    PNG or JPEG by the path's suffix (``.png``, ``.jpg``, ``.jpeg``; others are refused).

    Each image is enlarged ``scale`` times by repeating pixels (default: the least
    integer that makes it at least 64 pixels tall, so small images can be seen), then
    laid out as in ``image_grid`` with a light ``fill`` separator. Images with NaN or
    ±inf, or outside [0, 1], are refused with a ``ValueError`` naming ``images``: no
    file is written then. Pixels are stored as 8-bit (grey images as equal R, G, B).
    Written atomically; missing parent folders are created. Returns the path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"path must end in one of {', '.join(FORMATS)}, got {str(path)!r}")
    images = _check_images(images)
    if scale is None:
        scale = max(1, math.ceil(MIN_SIDE / images.shape[2]))
    scale = check_count(scale, "scale")
    enlarged = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    grid = image_grid(enlarged, nrow=nrow, padding=padding, fill=fill)
    pixels = grid.detach().to("cpu", torch.float64).expand(3, -1, -1).permute(1, 2, 0).numpy()
    pixels = np.ascontiguousarray(pixels)

    def write(file: BinaryIO) -> None:
        mpl_image.imsave(file, pixels, format=FORMATS[suffix])

    return write_atomically(path, write)


def interpolate_latents(
    h0: Tensor,
    h1: Tensor,
    n: int,
    *,
    method: Literal["linear", "spherical"] = "linear",
) -> Tensor:
    """``n`` points from ``h0: (H,)`` to ``h1: (H,)``, endpoints included -> ``(n, H)``.

    With t_i = i / (n − 1):

    - ``"linear"``: (1 − t) h0 + t h1;
    - ``"spherical"``: [sin((1 − t)ω) h0 + sin(tω) h1] / sin ω, ω the angle between h0
      and h1 (slerp), the usual path for Gaussian latents. As ω → 0 it tends to the
      linear path, which is used when sin ω < 1e-7; opposite directions (ω = π, no
      unique great circle) and zero vectors are refused.

    ``n >= 2``; the result has h0's dtype and device.
    """
    for value, name in ((h0, "h0"), (h1, "h1")):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        if value.dim() != 1 or value.shape[0] < 1:
            raise ValueError(f"{name} must have shape (H,) with H >= 1, got {tuple(value.shape)}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains non-finite values")
    if h1.shape != h0.shape or h1.dtype != h0.dtype or h1.device != h0.device:
        raise ValueError(
            f"h1 must match h0's shape, dtype and device: {tuple(h0.shape)}, {h0.dtype}, "
            f"{h0.device}; got {tuple(h1.shape)}, {h1.dtype}, {h1.device}"
        )
    check_count(n, "n", minimum=2)
    if method not in ("linear", "spherical"):
        raise ValueError(f"method must be 'linear' or 'spherical', got {method!r}")

    a = h0.to(torch.float64)
    b = h1.to(torch.float64)
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=h0.device)[:, None]
    weight0, weight1 = 1.0 - t, t
    if method == "spherical":
        norm0, norm1 = float(a.norm()), float(b.norm())
        if norm0 == 0.0 or norm1 == 0.0:
            raise ValueError("spherical interpolation needs non-zero h0 and h1")
        cos = max(-1.0, min(1.0, float(a @ b) / (norm0 * norm1)))
        omega = math.acos(cos)
        sin = math.sin(omega)
        if sin < 1e-7 and cos < 0.0:
            raise ValueError(
                "h0 and h1 point in opposite directions: the spherical path between them "
                "is not unique"
            )
        if sin >= 1e-7:
            weight0 = torch.sin((1.0 - t) * omega) / sin
            weight1 = torch.sin(t * omega) / sin
    return (weight0 * a + weight1 * b).to(h0.dtype)
