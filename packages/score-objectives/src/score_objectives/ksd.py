"""Kernelised Stein discrepancy with the RBF kernel."""

from __future__ import annotations

import torch

from ._checks import ScoreFn, call_score, check_data, check_reduction, reduce, values_readable


def median_bandwidth(v: torch.Tensor) -> torch.Tensor:
    """Median heuristic for the RBF bandwidth, a 0-dim tensor of v's dtype.

    ``bandwidth² = median_{i<j} ‖v_i − v_j‖² / 2``, so that
    ``k(x, y) = exp(−‖x − y‖² / median)``. The median is over the B(B−1)/2
    squared distances between distinct samples (the mean of the two middle
    values when their number is even), computed on ``v.detach()``.

    Args:
        v: ``(B, ...)`` with B >= 2; flattened per sample.
    """
    check_data(v)
    _check_pairs(v)
    flat = v.detach().flatten(1)
    # Distances are translation invariant; centring avoids cancellation.
    flat = flat - flat.mean(dim=0)
    rows, cols = torch.triu_indices(flat.shape[0], flat.shape[0], offset=1, device=v.device)
    squared = _squared_distances(flat, flat)[rows, cols].sort().values
    n = squared.numel()
    median = 0.5 * (squared[(n - 1) // 2] + squared[n // 2])
    if values_readable(median) and median <= 0:
        raise ValueError(
            "v has a zero median pairwise distance, so the median bandwidth is 0; "
            "pass bandwidth explicitly"
        )
    return (median / 2).sqrt()


def rbf_stein_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    score_x: torch.Tensor,
    score_y: torch.Tensor,
    *,
    bandwidth: float | torch.Tensor,
) -> torch.Tensor:
    """Stein kernel of the RBF kernel ``k(x, y) = exp(−‖x − y‖² / (2h²))``, ``(Bx, By)``.

    ``u(x, y) = s(x)ᵀs(y) k + s(x)ᵀ∇_y k + s(y)ᵀ∇_x k + tr(∇_x∇_y k)``, in closed form:
    ``u = k [s(x)ᵀs(y) + (s(x) − s(y))ᵀ(x − y)/h² + D/h² − ‖x − y‖²/h⁴]``.

    Args:
        x: ``(Bx, ...)``; y: ``(By, ...)`` with the same trailing shape.
        score_x, score_y: the scores at x and y, of their shapes.
        bandwidth: h > 0, a number or a 0-dim tensor.
    """
    check_data(x, name="x")
    check_data(y, name="y")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"y must have x's trailing shape {tuple(x.shape[1:])}, got {tuple(y.shape[1:])}"
        )
    for name, score, point in (("score_x", score_x, x), ("score_y", score_y, y)):
        if not isinstance(score, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(score).__name__}")
        if score.shape != point.shape:
            raise ValueError(
                f"{name} must have shape {tuple(point.shape)}, got {tuple(score.shape)}"
            )
    h2 = _check_bandwidth(bandwidth, like=x) ** 2
    # Distances and inner products are translation invariant in x and y jointly;
    # centring both on x's mean keeps ‖x‖² + ‖y‖² − 2xᵀy from cancelling.
    centre = x.detach().flatten(1).mean(dim=0)
    xf, yf = x.flatten(1) - centre, y.flatten(1) - centre
    sx, sy = score_x.flatten(1), score_y.flatten(1)
    squared = _squared_distances(xf, yf)
    k = torch.exp(-squared / (2 * h2))
    sx_dot_diff = (sx * xf).sum(dim=1, keepdim=True) - sx @ yf.T  # s(x_i)ᵀ(x_i − y_j)
    sy_dot_diff = xf @ sy.T - (sy * yf).sum(dim=1)  # s(y_j)ᵀ(x_i − y_j)
    dim = xf.shape[1]
    return k * (sx @ sy.T + (sx_dot_diff - sy_dot_diff) / h2 + dim / h2 - squared / h2**2)


def ksd(
    score_fn: ScoreFn,
    v: torch.Tensor,
    *,
    bandwidth: float | torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Kernelised Stein discrepancy, the U-statistic over ordered pairs i ≠ j (Liu et al., 2016).

    ``mean_{i≠j} u(v_i, v_j)`` with ``u = rbf_stein_kernel``; unbiased for
    KSD², which is 0 when the score is that of the data distribution.

    Args:
        score_fn: ``(B, ...) -> (B, ...)``.
        v: data, ``(B, ...)`` with B >= 2.
        bandwidth: h > 0; None uses ``median_bandwidth(v)``.
        reduction: ``"mean"`` (the U-statistic) or ``"none"``: per-sample row means
            ``mean_{j≠i} u(v_i, v_j)``, ``(B,)``, whose mean is the U-statistic.
    """
    check_data(v)
    _check_pairs(v)
    reduction = check_reduction(reduction)
    s = call_score(score_fn, v)
    h = median_bandwidth(v) if bandwidth is None else bandwidth
    u = rbf_stein_kernel(v, v, s, s, bandwidth=h)
    batch = v.shape[0]
    off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=v.device)
    per_sample = (u * off_diagonal).sum(dim=1) / (batch - 1)
    return reduce(per_sample, reduction)


def _check_pairs(v: torch.Tensor) -> None:
    if v.shape[0] < 2:
        raise ValueError(f"v must hold at least 2 samples for pairs, got B = {v.shape[0]}")


def _check_bandwidth(bandwidth: object, *, like: torch.Tensor) -> torch.Tensor:
    """A finite h > 0, as a 0-dim tensor of like's dtype and device."""
    if isinstance(bandwidth, torch.Tensor):
        if bandwidth.dim() != 0 or not bandwidth.is_floating_point():
            raise ValueError(
                f"bandwidth must be a number or a 0-dim floating tensor, got a tensor of "
                f"shape {tuple(bandwidth.shape)} and dtype {bandwidth.dtype}"
            )
        h = bandwidth.to(dtype=like.dtype, device=like.device)
    elif isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool):
        h = torch.tensor(float(bandwidth), dtype=like.dtype, device=like.device)
    else:
        raise TypeError(f"bandwidth must be a number or a tensor, got {type(bandwidth).__name__}")
    if values_readable(h) and (not bool(torch.isfinite(h)) or h <= 0):
        raise ValueError(f"bandwidth must be finite and > 0, got {float(h)}")
    return h


def _squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``‖x_i − y_j‖²`` for flattened x ``(Bx, D)`` and y ``(By, D)``, ``(Bx, By)``."""
    squared = (x * x).sum(dim=1, keepdim=True) + (y * y).sum(dim=1) - 2 * x @ y.T
    return squared.clamp_min(0)
