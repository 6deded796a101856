"""Kernelised Stein discrepancy with the RBF kernel."""

from __future__ import annotations

import math

import torch

from ._checks import ScoreFn, call_score, check_data, check_not_half, check_scale, reduce
from ._common_checks import check_bool, check_reduction, values_readable

_SAMPLE = 8192  # values in the sample that brackets the median of many


def median_bandwidth(v: torch.Tensor) -> torch.Tensor:
    """Median heuristic for the RBF bandwidth, a 0-dim tensor of v's dtype.

    ``bandwidth² = median_{i<j} ‖v_i − v_j‖² / 2``, so that
    ``k(x, y) = exp(−‖x − y‖² / median)``. The median is over the B(B−1)/2
    squared distances between distinct samples (the mean of the two middle
    values when their number is even), computed on ``v.detach()``. The middle
    values are found by selection, not by sorting all pairs.

    Args:
        v: ``(B, ...)`` with B >= 2; flattened per sample.
    """
    check_data(v)
    _check_pairs(v)
    flat = _centred(v).detach()
    return _median_bandwidth(_squared_distances(flat, flat))


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
        x: ``(Bx, ...)``.
        y: ``(By, ...)``, with x's trailing shape.
        score_x: the score at x, of x's shape.
        score_y: the score at y, of y's shape.
        bandwidth: h > 0, a number or a 0-dim tensor.
    """
    check_data(x, "x")
    check_data(y, "y")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"y must have x's trailing shape {tuple(x.shape[1:])}, got {tuple(y.shape[1:])}"
        )
    for name, score, point in (("score_x", score_x, x), ("score_y", score_y, y)):
        if not isinstance(score, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(score).__name__}")
        check_not_half(score, what=f"{name} must not be float16")
        if score.shape != point.shape:
            raise ValueError(
                f"{name} must have shape {tuple(point.shape)}, got {tuple(score.shape)}"
            )
    h2 = _check_bandwidth(bandwidth, like=x) ** 2
    # Distances and inner products are translation invariant in x and y jointly;
    # centring both on x's mean keeps ‖x‖² + ‖y‖² − 2xᵀy from cancelling.
    centre = x.detach().flatten(1).mean(dim=0)
    xf, yf = x.flatten(1) - centre, y.flatten(1) - centre
    squared = _squared_distances(xf, yf)
    return _stein_kernel(xf, yf, score_x.flatten(1), score_y.flatten(1), squared, h2)


def ksd(
    score_fn: ScoreFn,
    v: torch.Tensor,
    *,
    bandwidth: float | torch.Tensor | None = None,
    reduction: str = "mean",
    check_finite: bool = False,
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
        check_finite: raise FloatingPointError when the loss is not finite (the trainer
            checks its losses itself).
    """
    check_data(v)
    _check_pairs(v)
    reduction = check_reduction(reduction)
    check_finite = check_bool(check_finite, "check_finite")
    s = call_score(score_fn, v).flatten(1)
    x = _centred(v)
    # One matrix of squared distances serves the kernel and, detached, the median.
    squared = _squared_distances(x, x)
    if bandwidth is None:
        h = _median_bandwidth(squared.detach())
    else:
        h = _check_bandwidth(bandwidth, like=v)
    u = _stein_kernel(x, x, s, s, squared, h**2)
    batch = v.shape[0]
    off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=v.device)
    per_sample = (u * off_diagonal).sum(dim=1) / (batch - 1)
    return reduce(per_sample, reduction, check_finite=check_finite, function="ksd")


def _centred(v: torch.Tensor) -> torch.Tensor:
    """v flattened per sample, ``(B, D)``, minus the mean of the detached samples.

    Distances are translation invariant; centring keeps ‖x‖² + ‖y‖² − 2xᵀy from cancelling.
    """
    flat = v.flatten(1)
    return flat - flat.detach().mean(dim=0)


def _stein_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    sx: torch.Tensor,
    sy: torch.Tensor,
    squared: torch.Tensor,
    h2: torch.Tensor,
) -> torch.Tensor:
    """``u(x_i, y_j)``, ``(Bx, By)``, from flattened x, y and scores, ``squared = ‖x_i − y_j‖²``
    and ``h2 = h²``."""
    k = torch.exp(-squared / (2 * h2))
    sx_dot_diff = (sx * x).sum(dim=1, keepdim=True) - sx @ y.T  # s(x_i)ᵀ(x_i − y_j)
    sy_dot_diff = x @ sy.T - (sy * y).sum(dim=1)  # s(y_j)ᵀ(x_i − y_j)
    dim = x.shape[1]
    return k * (sx @ sy.T + (sx_dot_diff - sy_dot_diff) / h2 + dim / h2 - squared / h2**2)


def _median_bandwidth(squared: torch.Tensor) -> torch.Tensor:
    """The median bandwidth from the ``(B, B)`` squared distances of detached data."""
    batch = squared.shape[0]
    rows, cols = torch.triu_indices(batch, batch, offset=1, device=squared.device)
    median = _median(squared[rows, cols])
    if values_readable(median) and median <= 0:
        raise ValueError(
            "v has a zero median pairwise distance, so the median bandwidth is 0; "
            "pass bandwidth explicitly"
        )
    return (median / 2).sqrt()


def _median(values: torch.Tensor) -> torch.Tensor:
    """The median of a 1-d tensor of n values: the mean of its order statistics
    ``(n − 1) // 2`` and ``n // 2`` (0-based; the same one twice when n is odd).

    Selection instead of a sort. For large n, the values between two bounds taken from
    a sorted strided sample (about ``_SAMPLE`` values, 4 standard deviations of the
    middle's rank either side) are counted and searched alone; they hold both middle
    values unless the bounds miss, which is checked exactly. Where the bounds miss, or
    while values cannot be read (``make_fx``, ``vmap``), all n values are searched.
    """
    n = values.numel()
    low, high = (n - 1) // 2, n // 2
    if n > 4 * _SAMPLE and values_readable(values):
        sample = values[:: n // _SAMPLE].sort().values
        middle, margin = low * sample.numel() // n, 2 * math.isqrt(sample.numel())
        lower = sample[max(middle - margin, 0)]
        upper = sample[min(middle + margin, sample.numel() - 1)]
        below = int((values < lower).sum())
        window = values[(values >= lower) & (values <= upper)]
        if below <= low and high - below < window.numel():
            values, low, high = window, low - below, high - below
    lower = values.kthvalue(low + 1).values
    if high == low:
        return lower
    # The next order statistic without a second selection: ``lower`` again when it
    # repeats beyond rank ``low``, else the least value above it.
    repeats = (values <= lower).sum() > high
    above = torch.where(values > lower, values, torch.full_like(values, math.inf)).amin()
    return 0.5 * (lower + torch.where(repeats, lower, above))


def _check_pairs(v: torch.Tensor) -> None:
    if v.shape[0] < 2:
        raise ValueError(f"v must hold at least 2 samples for pairs, got B = {v.shape[0]}")


def _check_bandwidth(bandwidth: object, *, like: torch.Tensor) -> torch.Tensor:
    """A finite h > 0 whose h⁴ and 1/h⁴ (the kernel divides by h² and h⁴) are finite in
    like's dtype, as a 0-dim tensor of like's dtype and device."""
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
    if values_readable(h):
        if not bool(torch.isfinite(h)) or h <= 0:
            raise ValueError(f"bandwidth must be finite and > 0, got {float(h)}")
        check_scale(float(h), "bandwidth", dtype=like.dtype, power=4)
    return h


def _squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``‖x_i − y_j‖²`` for flattened x ``(Bx, D)`` and y ``(By, D)``, ``(Bx, By)``."""
    squared = (x * x).sum(dim=1, keepdim=True) + (y * y).sum(dim=1) - 2 * x @ y.T
    return squared.clamp_min(0)
