"""A two-panel figure for 2-D models: the model's density beside the data."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from eblvm_eval._common_checks import check_count
from eblvm_eval.files import write_atomically

Bounds = tuple[tuple[float, float], tuple[float, float]]


@torch.no_grad()
def density_plot(
    log_density_fn: Callable[[Tensor], Tensor],
    data: Tensor | np.ndarray,
    *,
    path: str | os.PathLike[str],
    bounds: Bounds | None = None,
    resolution: int = 200,
    title: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Path:
    """Save a PNG at ``path``: exp(log p(x)) on a grid with a colour bar (left) and a 2-D
    histogram of ``data``.

    ``log_density_fn``: x: (G, 2) -> (G,), unnormalised is fine; x has ``dtype`` and lies
    on ``device``. ``data: (N, 2)``. ``bounds``: ((x_min, x_max), (y_min, y_max)), by
    default the data's range with a 5 % margin. ``resolution``: grid points per axis; the
    histogram has min(resolution, max(10, ⌊√(N / 4)⌋)) bins per axis. The file is written
    atomically (a temporary file in the same folder, then renamed); missing parent folders
    are created. Returns the path.
    """
    points = _check_data(data)
    check_count(resolution, "resolution", minimum=2)
    (x_lo, x_hi), (y_lo, y_hi) = _bounds(points) if bounds is None else _check_bounds(bounds)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")

    xs = np.linspace(x_lo, x_hi, resolution)
    ys = np.linspace(y_lo, y_hi, resolution)
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2))
    grid = grid.to(dtype=dtype, device=device)
    log_density = log_density_fn(grid)
    if not isinstance(log_density, Tensor) or log_density.shape != (grid.shape[0],):
        got = tuple(log_density.shape) if isinstance(log_density, Tensor) else type(log_density)
        raise ValueError(f"log_density_fn must map (G, 2) to (G,), got {got} for G = {len(grid)}")
    density = log_density.detach().to(torch.float64).exp().cpu().numpy()
    if np.isnan(density).any() or np.isinf(density).any():
        raise ValueError("log_density_fn returned NaN or +inf on the grid")

    figure = Figure(figsize=(10, 4.6))
    FigureCanvasAgg(figure)
    model_axes, data_axes = figure.subplots(1, 2)
    extent = (x_lo, x_hi, y_lo, y_hi)
    image = model_axes.imshow(
        density.reshape(resolution, resolution), origin="lower", extent=extent, aspect="auto"
    )
    figure.colorbar(image, ax=model_axes, label="density (unnormalised when log p is)")
    model_axes.set_title("model density")
    bins = min(resolution, max(10, math.isqrt(len(points) // 4)))
    data_axes.hist2d(points[:, 0], points[:, 1], bins=bins, range=[[x_lo, x_hi], [y_lo, y_hi]])
    data_axes.set_title(f"data ({len(points)} points)")
    for axes in (model_axes, data_axes):
        axes.set_xlim(x_lo, x_hi)
        axes.set_ylim(y_lo, y_hi)
    if title is not None:
        figure.suptitle(title)
    figure.tight_layout()
    return write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=100))


def _check_data(data: object) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.detach().cpu().numpy()
    if not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a torch.Tensor or numpy array, got {type(data).__name__}")
    if data.ndim != 2 or data.shape[1] != 2 or data.shape[0] < 1:
        raise ValueError(f"data must have shape (N, 2) with N >= 1, got {data.shape}")
    if not np.issubdtype(data.dtype, np.number) or not np.isfinite(data).all():
        raise ValueError("data must hold finite numbers")
    return data.astype(np.float64)


def _bounds(points: np.ndarray) -> Bounds:
    lo, hi = points.min(0), points.max(0)
    margin = np.maximum(0.05 * (hi - lo), 1e-3)
    return (
        (float(lo[0] - margin[0]), float(hi[0] + margin[0])),
        (float(lo[1] - margin[1]), float(hi[1] + margin[1])),
    )


def _check_bounds(bounds: object) -> Bounds:
    message = f"bounds must be ((x_min, x_max), (y_min, y_max)) with min < max, got {bounds!r}"
    if not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ValueError(message)
    pairs = []
    for pair in bounds:
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(message)
        try:
            lo, hi = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(message)
        pairs.append((lo, hi))
    return (pairs[0], pairs[1])
