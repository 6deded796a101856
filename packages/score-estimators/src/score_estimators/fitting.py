"""Fitting the variational posterior q_φ(h | v) to the model's posterior p_θ(h | v).

A posterior loss is a pure function ``loss(energy, posterior, v, *, n_samples,
generator) -> scalar`` whose φ-gradient moves q towards p(h | v); θ is held fixed
by differentiating with respect to φ only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from score_estimators._checks import check_count, check_data, check_energy_values, check_samples
from score_estimators.posteriors import Posterior

Energy = Callable[[Tensor, Tensor], Tensor]
PosteriorLoss = Callable[..., Tensor]


def _draw(
    posterior: Posterior, v: Tensor, n_samples: int, generator: torch.Generator | None
) -> Tensor:
    check_data(v)
    check_count(n_samples, "n_samples")
    return check_samples(posterior.rsample(v, n_samples, generator=generator), n_samples, len(v))


def _draw_with_log_q(
    posterior: Posterior, v: Tensor, n_samples: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Draws h: (n, B, H) and log q(h | v): (n, B), the posterior's network run once when
    it offers ``rsample_and_log_prob``."""
    fused = getattr(posterior, "rsample_and_log_prob", None)
    if not callable(fused):
        h = _draw(posterior, v, n_samples, generator)
        return h, posterior.log_prob(h, v)
    check_data(v)
    check_count(n_samples, "n_samples")
    h, log_q = fused(v, n_samples, generator=generator)
    return check_samples(h, n_samples, len(v)), log_q


def kl_loss(
    energy: Energy,
    posterior: Posterior,
    v: Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """KL(q ‖ p(h | v)) up to log p(v): E_q[E(v, h) + log q(h | v)], the negative ELBO.

    Reparameterised draws; averaged over the batch. v: (B, ...) -> scalar.
    """
    h, log_q = _draw_with_log_q(posterior, v, n_samples, generator)
    energies = check_energy_values(energy(v, h), n_samples, len(v))
    return (energies + log_q).mean()


def fisher_loss(
    energy: Energy,
    posterior: Posterior,
    v: Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    sample_weights: Tensor | None = None,
) -> Tensor:
    """Posterior Fisher divergence E_q‖∇_h log q(h | v) − ∇_h log p̃(v, h)‖² (continuous h).

    ∇_h log p(h | v) = ∇_h log p̃(v, h), so the unknown normaliser drops out.
    Reparameterised draws; averaged over the batch, each example weighted by
    ``sample_weights: (B,)`` when given (e.g. 1/σ per example at MDSM's noise levels,
    as the paper's code does). v: (B, ...) -> scalar.
    """
    h = _draw(posterior, v, n_samples, generator)
    if not h.requires_grad:
        h = h.requires_grad_(True)
    energies = check_energy_values(energy(v, h), n_samples, len(v))
    log_ratio = posterior.log_prob(h, v) + energies
    (grad_h,) = torch.autograd.grad(log_ratio.sum(), h, create_graph=True)
    per_example = grad_h.square().flatten(2).sum(-1).mean(0)  # (B,)
    if sample_weights is None:
        return per_example.mean()
    return (per_example * _check_weights(sample_weights, len(v))).mean()


def _check_weights(weights: object, batch: int) -> Tensor:
    if not isinstance(weights, Tensor) or tuple(weights.shape) != (batch,):
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"sample_weights must be a tensor of shape ({batch},), got {shape}")
    if not bool((weights.isfinite() & (weights >= 0)).all()):
        raise ValueError("sample_weights must be finite and non-negative")
    return weights


def energy_of_h(energy: Energy, v: Tensor) -> Callable[[Tensor], Tensor]:
    """h ↦ E(v, h) at a fixed v. When the energy offers ``condition(v) -> (h -> E(v, h))``
    (as the GRBM and the deep EBLVM do), the v-part is computed once, now, with a graph
    to v and θ if grad mode is on; otherwise every call evaluates ``energy(v, h)``."""
    condition = getattr(energy, "condition", None)
    if callable(condition):
        conditioned: Callable[[Tensor], Tensor] = condition(v)
        return conditioned
    return lambda h: energy(v, h)


def _fixed_v(energy: Energy, v: Tensor) -> Energy:
    """``energy`` with its v-part at ``v`` computed once, without a graph; called at any
    other point it falls back to ``energy`` itself."""
    with torch.no_grad():
        at_v = energy_of_h(energy, v)

    def energy_at(at: Tensor, h: Tensor) -> Tensor:
        return at_v(h) if at is v else energy(at, h)

    return energy_at


def fit_posterior(
    energy: Energy,
    posterior: nn.Module,
    v: Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    steps: int = 5,
    loss: PosteriorLoss = kl_loss,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """Take ``steps`` optimiser steps on ``loss`` for one minibatch v: (B, ...).

    Only φ (the posterior's parameters) receives gradients; θ's ``.grad`` is left
    untouched. Returns the loss before the last step.

    When the energy offers ``condition(v) -> (h -> E(v, h))`` (as the GRBM and the
    deep EBLVM do), the v-part of the energy is computed once, without a graph, and
    shared by the steps: θ and v are fixed while φ moves.
    """
    check_count(steps, "steps", minimum=0)
    v = check_data(v).detach()
    phi = [p for p in posterior.parameters() if p.requires_grad]
    if not phi:
        raise ValueError("posterior has no trainable parameters to fit")
    fixed_v_energy = _fixed_v(energy, v) if steps else energy
    value = float("nan")
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        objective = loss(fixed_v_energy, posterior, v, n_samples=n_samples, generator=generator)
        if not bool(torch.isfinite(objective)):
            raise FloatingPointError(f"posterior loss is not finite: {objective.item()}")
        objective.backward(inputs=phi)
        optimizer.step()
        value = objective.item()
    return value
