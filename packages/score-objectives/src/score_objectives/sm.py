"""Score matching with the exact Jacobian trace."""

from __future__ import annotations

import torch

from ._checks import (
    ScoreFn,
    call_score,
    check_data,
    check_input_graph,
    differentiable_input,
    reduce,
)
from ._common_checks import check_bool, check_reduction

_DIRECTIONS_PER_PASS = 16


def sm(
    score_fn: ScoreFn, v: torch.Tensor, *, reduction: str = "mean", check_finite: bool = False
) -> torch.Tensor:
    """Score matching ``E[½‖s(v)‖² + tr(∂s/∂v)]`` (Hyvärinen, 2005).

    The trace is exact: the D rows of the Jacobian come from autograd passes mapped
    over the one-hot directions, 16 at a time (``torch.func.vmap``), or from one pass
    per dimension where the score's graph cannot be mapped; the cost grows with D,
    so this suits small D.
    Every derivative is taken with ``create_graph=True``, so back-propagating
    the loss reaches the parameters of ``score_fn`` through the trace as well.
    ``score_fn`` must act on each sample independently (row b of its output
    depends only on row b of its input).

    Args:
        score_fn: ``(B, D) -> (B, D)``.
        v: data, ``(B, D)``.
        reduction: ``"mean"`` (scalar) or ``"none"`` (per-sample, ``(B,)``).
        check_finite: raise FloatingPointError when the loss is not finite (the trainer
            checks its losses itself).
    """
    check_data(v)
    if v.dim() != 2:
        raise ValueError(f"v must have shape (B, D), got {tuple(v.shape)}")
    reduction = check_reduction(reduction)
    check_finite = check_bool(check_finite, "check_finite")
    x = differentiable_input(v)
    s = call_score(score_fn, x)
    check_input_graph(s)
    trace = _jacobian_trace(s, x)
    per_sample = 0.5 * s.pow(2).sum(dim=1) + trace
    return reduce(per_sample, reduction, check_finite=check_finite, function="sm")


def _jacobian_trace(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``tr(∂s_b/∂x_b)`` per sample, ``(B,)``, for s and x ``(B, D)`` with s_b depending on x_b.

    Row d of every sample's Jacobian is the vector-Jacobian product with the one-hot
    direction e_d. The D products run as passes mapped over ``_DIRECTIONS_PER_PASS``
    directions at a time (``torch.func.vmap``; more at once make intermediates that
    outgrow a CPU's caches); where mapping raises (an operation in the score's graph
    that cannot be mapped), they run one at a time.
    """
    batch, dim = x.shape
    directions = torch.eye(dim, dtype=s.dtype, device=s.device).unsqueeze(1).expand(dim, batch, dim)

    def rows(direction: torch.Tensor) -> torch.Tensor:
        (grad,) = torch.autograd.grad(s, x, direction, create_graph=True, materialize_grads=True)
        return grad

    # jacobian: (D, B, D), [d, b] = ∂s_bd/∂x_b
    try:
        jacobian = torch.func.vmap(rows, chunk_size=_DIRECTIONS_PER_PASS)(directions)
    except RuntimeError:
        jacobian = torch.stack([rows(direction) for direction in directions])
    return jacobian.diagonal(dim1=0, dim2=2).sum(dim=1)
