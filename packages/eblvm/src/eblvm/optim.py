"""Adam as two pure functions of tensors: ``init(params)`` and ``update(...)``.

The update is torch.optim.Adam's (bias-corrected moments, ε added to the corrected
root second moment), written on :data:`~eblvm.functional.Params` so that it traces
into a compiled step and takes one learning rate per run of a stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from eblvm.functional import Params, Runs


class AdamState(NamedTuple):
    """``steps`` () the steps taken; ``mean`` and ``variance``: the moment estimates."""

    steps: Tensor
    mean: Params
    variance: Params


@dataclass(frozen=True)
class Adam:
    """Adam with ``betas`` and ``eps``; the learning rate is given at each update."""

    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def init(self, params: Params) -> AdamState:
        zeros = {name: torch.zeros_like(p) for name, p in params.items()}
        steps = torch.zeros((), dtype=torch.float64, device=_device(params))
        return AdamState(steps, zeros, {name: z.clone() for name, z in zeros.items()})

    def update(
        self,
        params: Params,
        grads: dict[str, Tensor | None],
        state: AdamState,
        lr: Tensor,
        runs: Runs,
    ) -> tuple[Params, AdamState]:
        """One step at learning rate ``lr`` (0-dim, or one per run of a stack). A
        parameter without a gradient keeps its value and moments, as in torch."""
        beta1, beta2 = self.betas
        count = state.steps + 1
        correction1 = 1 - beta1**count
        correction2_sqrt = (1 - beta2**count).sqrt()
        new_params, means, variances = {}, {}, {}
        for name, p in params.items():
            grad, mean, variance = grads[name], state.mean[name], state.variance[name]
            if grad is not None:
                mean = mean.lerp(grad, 1 - beta1)
                variance = variance * beta2 + (1 - beta2) * grad * grad
                step = runs.broadcast(lr, p).to(p.dtype) / correction1.to(p.dtype)
                denominator = variance.sqrt() / correction2_sqrt.to(p.dtype) + self.eps
                p = p - step * mean / denominator
            new_params[name], means[name], variances[name] = p, mean, variance
        return new_params, AdamState(count, means, variances)


def _device(params: Params) -> torch.device:
    for p in params.values():
        return p.device
    return torch.device("cpu")
