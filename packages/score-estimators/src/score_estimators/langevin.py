"""Langevin refinement of posterior draws in h.

Draws h from a base posterior q(h | v), then moves them towards p(h | v) by
``steps`` Langevin steps on log p̃(v, h) = −E(v, h) in h, with v fixed:

    h ← h − step_size · ∇_h E(v, h) + noise_std · ε,    ε ~ N(0, I).

step_size and noise_std are separate, as in the deep EBLVM experiments (5 steps,
step size 1e-2, noise 1e-4 on CIFAR10); noise_std = sqrt(2 · step_size) is the
unadjusted Langevin algorithm, whose draws approach p(h | v) as the steps grow
and the step size shrinks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from score_estimators._checks import (
    check_count,
    check_data,
    check_energy_values,
    check_positive,
    check_samples,
)
from score_estimators.fitting import Energy, energy_of_h
from score_estimators.posteriors import Posterior


def _check_non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


class LangevinRefined(nn.Module):
    """q refined by Langevin steps in h: a posterior that only samples.

    ``rsample(v, n) -> (n, B, H)``: n base draws h ~ q(h | v), each moved by
    ``steps`` updates h ← h − step_size · ∇_h E(v, h) + noise_std · ε. The draws
    are detached (fixed samples for VaES, VaGES and the like). The refined
    distribution has no density in closed form, so there is no ``log_prob``: fit
    the base posterior (``self.posterior``), sample from this one.

    When the energy offers ``condition(v) -> (h -> E(v, h))`` (as the deep EBLVM
    does), the v-part of the energy is computed once per ``rsample`` and reused
    by every step; otherwise ``energy(v, h)`` is called at each step. A caller that
    already holds h ↦ E(v, h) passes it to ``rsample_conditioned`` instead, so that
    the v-part is not computed twice (the score estimators do).

    Its parameters are the base posterior's; the energy is held, not registered,
    so that θ never counts among φ.
    """

    energy: Energy

    def __init__(
        self,
        posterior: Posterior,
        energy: Energy,
        *,
        steps: int = 5,
        step_size: float = 1e-2,
        noise_std: float = 1e-4,
    ) -> None:
        super().__init__()
        if not callable(getattr(posterior, "rsample", None)):
            raise TypeError(f"posterior must offer rsample(v, n), got {type(posterior).__name__}")
        if not callable(energy):
            raise TypeError(f"energy must be callable, got {type(energy).__name__}")
        self.posterior = posterior
        object.__setattr__(self, "energy", energy)  # not a submodule: θ is not φ
        self.steps = check_count(steps, "steps", minimum=0)
        self.step_size = check_positive(step_size, "step_size")
        self.noise_std = _check_non_negative(noise_std, "noise_std")

    def extra_repr(self) -> str:
        return f"steps={self.steps}, step_size={self.step_size}, noise_std={self.noise_std}"

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n refined draws, detached. v: (B, ...) -> (n, B, H)."""
        check_data(v)
        with torch.no_grad():
            at_v = energy_of_h(self.energy, v.detach()) if self.steps else partial(self.energy, v)
        return self.rsample_conditioned(v, n, at_v, generator=generator)

    def rsample_conditioned(
        self,
        v: Tensor,
        n: int,
        energy_at_v: Callable[[Tensor], Tensor],
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n refined draws, detached, refined on ``energy_at_v``: h ↦ E(v, h), given.

        v: (B, ...) -> (n, B, H). Only h is differentiated, so ``energy_at_v`` may carry
        a graph to v and θ (it is left intact).
        """
        check_data(v)
        check_count(n, "n")
        with torch.no_grad():
            h = check_samples(self.posterior.rsample(v, n, generator=generator), n, len(v))
        h = h.detach()
        for _ in range(self.steps):
            with torch.enable_grad():
                node = h.requires_grad_(True)
                energies = check_energy_values(energy_at_v(node), n, len(v))
                (grad,) = torch.autograd.grad(energies.sum(), node)
            noise = torch.randn(h.shape, generator=generator, dtype=h.dtype, device=h.device)
            h = (node.detach() - self.step_size * grad + self.noise_std * noise).detach()
        return h
