"""Score matching with the exact Jacobian trace."""

from __future__ import annotations

import torch

from ._checks import (
    ScoreFn,
    call_score,
    check_data,
    check_input_graph,
    check_reduction,
    differentiable_input,
    reduce,
)


def sm(score_fn: ScoreFn, v: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Score matching ``E[½‖s(v)‖² + tr(∂s/∂v)]`` (Hyvärinen, 2005).

    The trace is exact: one autograd pass per dimension, so this suits small D.
    Every derivative is taken with ``create_graph=True``, so back-propagating
    the loss reaches the parameters of ``score_fn`` through the trace as well.
    ``score_fn`` must act on each sample independently (row b of its output
    depends only on row b of its input).

    Args:
        score_fn: ``(B, D) -> (B, D)``.
        v: data, ``(B, D)``.
        reduction: ``"mean"`` (scalar) or ``"none"`` (per-sample, ``(B,)``).
    """
    check_data(v)
    if v.dim() != 2:
        raise ValueError(f"v must have shape (B, D), got {tuple(v.shape)}")
    reduction = check_reduction(reduction)
    x = differentiable_input(v)
    s = call_score(score_fn, x)
    check_input_graph(s)
    trace = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
    for d in range(x.shape[1]):
        (grad,) = torch.autograd.grad(s[:, d].sum(), x, create_graph=True, materialize_grads=True)
        trace = trace + grad[:, d]
    per_sample = 0.5 * s.pow(2).sum(dim=1) + trace
    return reduce(per_sample, reduction)
