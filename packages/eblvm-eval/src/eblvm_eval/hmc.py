"""Hamiltonian Monte Carlo driven by a log-density log p̃(v) and its gradient.

Low-level: ``hmc_init`` and ``hmc_step`` take every parameter at call time and return
NamedTuple state and diagnostics; ``hmc_transition`` binds the log-density and the
parameters once; ``hmc_sample`` runs chains. A step draws a momentum p ~ N(0, I), runs
``leapfrog_steps`` leapfrog steps of size ``step_size`` on H(v, p) = −log p̃(v) + ½‖p‖²
and accepts the end point with probability min(1, exp(H₀ − H₁)) per chain, so the
chains leave p (up to its normaliser) invariant exactly, for any step size. For a GRBM,
log p̃(v) = −F(v), its free energy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from eblvm_eval._checks import check_chains, check_number
from eblvm_eval._common_checks import check_count
from eblvm_eval._deprecated import renamed_attributes

LogDensity = Callable[[Tensor], Tensor]


class HMCState(NamedTuple):
    """Chains: ``position`` (B, ...), ``log_density`` (B,) and its ``gradient`` (B, ...)."""

    position: Tensor
    log_density: Tensor
    gradient: Tensor


class HMCInfo(NamedTuple):
    """One step: ``accepted`` (B,) bool and ``acceptance`` (B,) min(1, exp(H₀ − H₁))."""

    accepted: Tensor
    acceptance: Tensor


class HMCNoise(NamedTuple):
    """The draws of one step: ``momentum`` (B, ...) standard normals and ``uniform`` (B,)."""

    momentum: Tensor
    uniform: Tensor


class HMCTransition(NamedTuple):
    """A log-density and step parameters bound once: ``init(position)`` and
    ``step(state, generator=None, noise=None)``."""

    init: Callable[[Tensor], HMCState]
    step: Callable[..., tuple[HMCState, HMCInfo]]


def _evaluate(log_density: LogDensity, position: Tensor) -> HMCState:
    with torch.enable_grad():
        node = position.detach().requires_grad_(True)
        value = log_density(node)
        if not isinstance(value, Tensor) or value.shape != position.shape[:1]:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"log_density must return ({len(position)},), got {shape}")
        (gradient,) = torch.autograd.grad(value.sum(), node)
    return HMCState(position.detach(), value.detach(), gradient.detach())


def hmc_init(position: Tensor, log_density: LogDensity) -> HMCState:
    """Start chains at ``position`` (B, ...)."""
    return _evaluate(log_density, check_chains(position, "position"))


def hmc_step(
    state: HMCState,
    *,
    log_density: LogDensity,
    step_size: float,
    leapfrog_steps: int,
    generator: torch.Generator | None = None,
    noise: HMCNoise | None = None,
) -> tuple[HMCState, HMCInfo]:
    """One HMC step per chain (see the module docstring); ``noise`` injects the momentum
    and the acceptance uniform, else they are drawn with ``generator``. A proposal with
    a non-finite log-density is rejected."""
    step_size = check_number(step_size, "step_size", positive=True)
    check_count(leapfrog_steps, "leapfrog_steps")
    position = state.position
    if noise is None:
        dtype, device = position.dtype, position.device
        noise = HMCNoise(
            torch.randn(position.shape, generator=generator, dtype=dtype, device=device),
            torch.rand(position.shape[:1], generator=generator, dtype=dtype, device=device),
        )
    momentum = noise.momentum
    kinetic = 0.5 * momentum.flatten(1).square().sum(1)
    current = state
    p = momentum + 0.5 * step_size * current.gradient
    for k in range(leapfrog_steps):
        current = _evaluate(log_density, current.position + step_size * p)
        p = p + (step_size if k < leapfrog_steps - 1 else 0.5 * step_size) * current.gradient
    proposed_kinetic = 0.5 * p.flatten(1).square().sum(1)
    log_ratio = current.log_density - proposed_kinetic - (state.log_density - kinetic)
    log_ratio = torch.where(log_ratio.isnan(), torch.full_like(log_ratio, -torch.inf), log_ratio)
    acceptance = log_ratio.clamp(max=0).exp()
    accepted = noise.uniform < acceptance
    shape = (-1, *([1] * (position.dim() - 1)))
    keep = accepted.view(shape)
    new = HMCState(
        torch.where(keep, current.position, position),
        torch.where(accepted, current.log_density, state.log_density),
        torch.where(keep, current.gradient, state.gradient),
    )
    return new, HMCInfo(accepted, acceptance)


def hmc_transition(
    log_density: LogDensity, *, step_size: float, leapfrog_steps: int
) -> HMCTransition:
    """Bind ``log_density``, ``step_size`` and ``leapfrog_steps`` once (see ``hmc_step``)."""
    step_size = check_number(step_size, "step_size", positive=True)
    check_count(leapfrog_steps, "leapfrog_steps")

    def init(position: Tensor) -> HMCState:
        return hmc_init(position, log_density)

    def step(
        state: HMCState,
        generator: torch.Generator | None = None,
        noise: HMCNoise | None = None,
    ) -> tuple[HMCState, HMCInfo]:
        return hmc_step(
            state,
            log_density=log_density,
            step_size=step_size,
            leapfrog_steps=leapfrog_steps,
            generator=generator,
            noise=noise,
        )

    return HMCTransition(init, step)


def hmc_sample(
    log_density: LogDensity,
    init: Tensor,
    *,
    steps: int,
    step_size: float,
    leapfrog_steps: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``steps`` HMC steps of the chains started at ``init`` (B, ...): the final
    positions and each chain's acceptance rate (B,)."""
    check_count(steps, "steps")
    transition = hmc_transition(log_density, step_size=step_size, leapfrog_steps=leapfrog_steps)
    state = transition.init(init)
    accepted = torch.zeros(len(init), dtype=init.dtype, device=init.device)
    for _ in range(steps):
        state, info = transition.step(state, generator=generator)
        accepted += info.accepted.to(init.dtype)
    return state.position, accepted / steps


__getattr__ = renamed_attributes(__name__, ("hmc_transition", "HMCTransition"))
