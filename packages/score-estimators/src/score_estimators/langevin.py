"""Langevin refinement of posterior draws in h.

Moves draws h of a posterior q(h | v) towards p(h | v) by ``steps`` Langevin steps on
log p̃(v, h) = −E(v, h) in h, with v fixed:

    h ← h − step_size · ∇_h E(v, h) + noise_std · ε,    ε ~ N(0, I).

step_size and noise_std are separate, as in the deep EBLVM experiments (5 steps,
step size 1e-2, noise 1e-4 on CIFAR10); noise_std = sqrt(2 · step_size) is the
unadjusted Langevin algorithm, whose draws approach p(h | v) as the steps grow and
the step size shrinks.

A refinement is an option of the estimators that take fixed draws (``VaES(L,
refine=Langevin(...))``, ``VaGES``): they refine on the very energy they estimate
with, its v-part built once (``__energy_at_v__``), so no second copy of the energy
exists to disagree with the first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from score_estimators._checks import check_energy_values, check_non_negative, check_positive
from score_estimators._common_checks import check_count


def langevin_move(
    position: Tensor, energy_grad: Tensor, *, step_size: float, noise_std: float, noise: Tensor
) -> Tensor:
    """One Langevin move x − step_size · ∇E(x) + noise_std · ε, all of shape (B, ...)
    (or (n, B, ...)): with the score s = −∇E, x + step_size · s(x) + noise_std · ε.

    The update of every Langevin sampler of the toolkit: this package's refinement in h
    and eblvm-eval's samplers in v. No checks and no graph handling: the callers check
    their arguments once and decide what is detached.
    """
    return position - step_size * energy_grad + noise_std * noise


class Langevin:
    """``steps`` Langevin updates h ← h − step_size · ∇_h E(v, h) + noise_std · ε."""

    def __init__(self, steps: int = 5, *, step_size: float = 1e-2, noise_std: float = 1e-4):
        self.steps = check_count(steps, "steps", minimum=0)
        self.step_size = check_positive(step_size, "step_size")
        self.noise_std = check_non_negative(noise_std, "noise_std")

    def __repr__(self) -> str:
        return (
            f"Langevin(steps={self.steps}, step_size={self.step_size}, noise_std={self.noise_std})"
        )

    def __call__(
        self,
        energy_at_v: Callable[[Tensor], Tensor],
        h: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Refined draws, detached. ``energy_at_v``: h ↦ E(v, h) (it may carry a graph to
        v and θ, which is left intact: only h is differentiated); h: (n, B, ...);
        ``noise``: (steps, n, B, ...) standard normals, else drawn from ``generator``."""
        if noise is not None:
            if generator is not None:
                raise ValueError("noise and generator are exclusive: pass one of them, not both")
            if not isinstance(noise, Tensor) or tuple(noise.shape) != (self.steps, *h.shape):
                got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
                raise ValueError(
                    f"noise must be a tensor of shape {(self.steps, *h.shape)}, got {got}"
                )
        n, batch = h.shape[:2]
        h = h.detach()
        for step in range(self.steps):
            with torch.enable_grad():
                node = h.requires_grad_(True)
                energies = check_energy_values(energy_at_v(node), n, batch)
                (grad,) = torch.autograd.grad(energies.sum(), node)
            eps = (
                torch.randn(h.shape, generator=generator, dtype=h.dtype, device=h.device)
                if noise is None
                else noise[step]
            )
            h = langevin_move(
                node.detach(), grad, step_size=self.step_size, noise_std=self.noise_std, noise=eps
            ).detach()
        return h
