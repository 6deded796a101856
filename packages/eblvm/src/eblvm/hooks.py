"""Parts of a training step that act at one of its points, composed in a list.

Each hook may change the learning rate of an iteration (``learning_rate``), the
gradients before an optimiser uses them (``gradients``), the values the step reports
(``reported``), and the run's extra state after the θ update (``init`` and
``updated``). The step calls every hook in order at each point; a hook's methods
default to doing nothing.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from eblvm.distributed import Ranks
from eblvm.functional import Params


class Hook:
    """The identity at every point."""

    def init(self, theta: Params) -> dict[str, Any]:
        """Extra state the hook keeps, started from the initial θ."""
        return {}

    def learning_rate(self, lr: Tensor, iteration: Tensor) -> Tensor:
        """The learning rate of 1-based ``iteration`` from the base ``lr``."""
        return lr

    def gradients(self, grads: dict[str, Tensor | None]) -> dict[str, Tensor | None]:
        return grads

    def reported(self, value: Tensor) -> Tensor:
        """A per-run value the step reports (a loss)."""
        return value

    def updated(self, theta: Params, extra: dict[str, Any], iteration: Tensor) -> dict[str, Any]:
        """The extra state after the θ update of ``iteration``."""
        return extra


class AllReduce(Hook):
    """Data-parallel training: gradients and reported values averaged over the
    processes, so that every process takes the same step."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks

    def gradients(self, grads: dict[str, Tensor | None]) -> dict[str, Tensor | None]:
        present = {name: g for name, g in grads.items() if g is not None}
        averaged = self.ranks.average(list(present.values()))
        return {**grads, **dict(zip(present, averaged, strict=True))}

    def reported(self, value: Tensor) -> Tensor:
        return self.ranks.mean(value)


class Cosine(Hook):
    """Cosine decay of the learning rate from its base to ``lr_min`` over ``iterations``:
    the update of iteration t uses lr_min + (lr − lr_min)(1 + cos(π (t − 1)/iterations))/2."""

    def __init__(self, iterations: int, lr_min: float) -> None:
        self.iterations = iterations
        self.lr_min = lr_min

    def learning_rate(self, lr: Tensor, iteration: Tensor) -> Tensor:
        phase = math.pi * (iteration - 1) / self.iterations
        return self.lr_min + (lr - self.lr_min) * (1 + torch.cos(phase)) / 2


class EMA(Hook):
    """An exponential moving average of θ, kept as ``extra["ema"]``: after the update of
    iteration t, ema ← d_t · ema + (1 − d_t) · θ with d_t = min(decay, (1 + t)/(10 + t)),
    so that a short run's average is not dominated by its random start."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def init(self, theta: Params) -> dict[str, Any]:
        return {"ema": {name: p.clone() for name, p in theta.items()}}

    def updated(self, theta: Params, extra: dict[str, Any], iteration: Tensor) -> dict[str, Any]:
        decay = torch.clamp((1 + iteration) / (10 + iteration), max=self.decay)
        ema = {
            name: extra["ema"][name].lerp(p, (1 - decay).to(p.dtype)) for name, p in theta.items()
        }
        return {**extra, "ema": ema}
