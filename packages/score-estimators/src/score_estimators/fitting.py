"""Fitting the variational posterior q_φ(h | v) to the model's posterior p_θ(h | v).

A posterior loss is a pure function ``loss(energy, posterior, v, *, n_samples,
generator, noise) -> scalar`` whose φ-gradient moves q towards p(h | v); θ is held
fixed by differentiating with respect to φ only. Both losses need reparameterised
draws (a gradient from h to φ) and refuse draws that carry none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import torch
from torch import Tensor, nn

from score_estimators._checks import check_data, check_energy_values, check_samples, dtypes_named
from score_estimators._common_checks import check_count, check_reduction, values_readable
from score_estimators.protocols import (
    ConditionedEnergy,
    Energy,
    FusedPosterior,
    NoiseDriven,
    Posterior,
    PosteriorLoss,
    PosteriorSampler,
)


def energy_at(energy: Energy, v: Tensor) -> Callable[[Tensor], Tensor]:
    """h ↦ E(v, h) at a fixed v. An energy with ``__energy_at_v__`` (a
    :class:`~score_estimators.protocols.ConditionedEnergy`, as the GRBM and the deep
    EBLVM) builds its v-part once, now, with a graph to v and θ in grad mode; any other
    energy is called as ``energy(v, h)`` each time."""
    check_data(v, finite=False)
    if isinstance(energy, ConditionedEnergy):
        return energy.__energy_at_v__(v)
    return lambda h: energy(v, h)


def draw(
    posterior: PosteriorSampler,
    v: Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """n draws (n, B, ...) of q(h | v), from injected standard ``noise`` when given (the
    posterior must then be :class:`~score_estimators.protocols.NoiseDriven`)."""
    check_data(v, finite=False)
    if noise is None:
        h = posterior.rsample(v, n, generator=generator)
    elif isinstance(posterior, NoiseDriven):
        h = posterior.rsample(v, n, generator=generator, noise=noise)
    else:
        raise TypeError(
            f"noise was given, but the posterior {type(posterior).__name__} does not take "
            "injected noise (it is not NoiseDriven: rsample(v, n, noise=...), noise_law)"
        )
    return check_samples(h, n, len(v))


def _draw_with_log_q(
    posterior: Posterior,
    v: Tensor,
    n: int,
    generator: torch.Generator | None,
    noise: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Draws h: (n, B, ...) and log q(h | v): (n, B), the network run once when the
    posterior is a FusedPosterior."""
    check_data(v)
    check_count(n, "n_samples")
    if isinstance(posterior, FusedPosterior):
        if noise is not None and not isinstance(posterior, NoiseDriven):
            raise TypeError(f"the posterior {type(posterior).__name__} takes no injected noise")
        h, log_q = posterior.rsample_and_log_prob(v, n, generator=generator, noise=noise)
        return check_samples(h, n, len(v)), log_q
    h = draw(posterior, v, n, generator=generator, noise=noise)
    return h, posterior.log_prob(h, v)


def _check_reparameterised(h: Tensor, log_q: Tensor) -> None:
    """log q depends on φ but h does not: the draws are not reparameterised (exact binary
    draws, for instance), and a posterior loss would fit nothing through them."""
    if log_q.requires_grad and not h.requires_grad:
        raise ValueError(
            "the posterior's draws carry no gradient to its parameters, so fitting it by this "
            "loss would fit nothing; use reparameterised draws (BernoulliPosterior with a "
            "temperature > 0, not temperature=None)"
        )


def kl_loss(
    energy: Energy,
    posterior: Posterior,
    v: Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """KL(q ‖ p(h | v)) up to log p(v): E_q[E(v, h) + log q(h | v)], the negative ELBO.

    Reparameterised draws, from ``noise`` (n_samples, B, ...) when given; averaged over
    the batch (``reduction="mean"``: scalar) or per example (``"none"``: (B,)).
    """
    check_reduction(reduction)
    h, log_q = _draw_with_log_q(posterior, v, n_samples, generator, noise)
    _check_reparameterised(h, log_q)
    with dtypes_named(energy, v, h):
        energies = check_energy_values(energy(v, h), n_samples, len(v))
    per_example = (energies + log_q).mean(0)
    return per_example.mean() if reduction == "mean" else per_example


def fisher_loss(
    energy: Energy,
    posterior: Posterior,
    v: Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    sample_weights: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Posterior Fisher divergence E_q‖∇_h log q(h | v) − ∇_h log p̃(v, h)‖² (continuous h).

    ∇_h log p(h | v) = ∇_h log p̃(v, h), so the unknown normaliser drops out.
    Reparameterised draws, from ``noise`` (n_samples, B, ...) when given; each example
    weighted by ``sample_weights: (B,)`` when given (e.g. 1/σ per example at MDSM's
    noise levels, as the paper's code does), then averaged over the batch
    (``reduction="mean"``: scalar) or not (``"none"``: (B,)).
    """
    check_reduction(reduction)
    check_data(v)
    check_count(n_samples, "n_samples")
    h = draw(posterior, v, n_samples, generator=generator, noise=noise)
    log_q = posterior.log_prob(h, v)
    _check_reparameterised(h, log_q)
    if not h.requires_grad:  # q without parameters to fit: the divergence's value only
        h = h.detach().requires_grad_(True)
        log_q = posterior.log_prob(h, v)
    with dtypes_named(energy, v, h):
        energies = check_energy_values(energy(v, h), n_samples, len(v))
    (grad_h,) = torch.autograd.grad((log_q + energies).sum(), h, create_graph=True)
    per_example = grad_h.square().flatten(2).sum(-1).mean(0)  # (B,)
    if sample_weights is not None:
        per_example = per_example * _check_weights(sample_weights, len(v))
    return per_example.mean() if reduction == "mean" else per_example


def _check_weights(weights: object, batch: int) -> Tensor:
    if not isinstance(weights, Tensor) or tuple(weights.shape) != (batch,):
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"sample_weights must be a tensor of shape ({batch},), got {shape}")
    if values_readable(weights) and not bool((weights.isfinite() & (weights >= 0)).all()):
        raise ValueError("sample_weights must be finite and non-negative")
    return weights


def at_fixed_v(energy: Energy, v: Tensor) -> Energy:
    """``energy`` with its v-part at ``v`` built once, without a graph (θ and v held
    fixed, as while φ is fitted); called at any other point it is ``energy`` itself."""
    with torch.no_grad(), dtypes_named(energy, v):
        at_v = energy_at(energy, v)

    def energy_at_fixed_v(at: Tensor, h: Tensor) -> Tensor:
        with dtypes_named(energy, at, h):
            return at_v(h) if at is v else energy(at, h)

    return energy_at_fixed_v


State = TypeVar("State")


def fit_steps(
    energy: Energy,
    v: Tensor,
    state: State,
    step: Callable[[Energy, State, int], tuple[State, Tensor]],
    *,
    steps: int,
) -> tuple[State, Tensor | None]:
    """The loop of every posterior fit: ``steps`` times ``state, loss = step(fixed, state,
    k)``, k = 0, 1, …, with ``fixed`` the energy at fixed v (:func:`at_fixed_v`, its
    v-part built once): θ and v stay fixed while φ moves.

    ``state`` is whatever the update carries (φ and its optimiser state for a
    functional fit, nothing for :func:`fit_posterior`, whose optimiser holds it).
    Returns the last state and the last step's loss (None when ``steps`` is 0).
    """
    if not steps:
        return state, None
    fixed = at_fixed_v(energy, v)
    loss = None
    for k in range(steps):
        state, loss = step(fixed, state, k)
    return state, loss


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
    untouched. Returns the loss before the last step (NaN without steps). The energy's
    v-part is built once and shared by the steps (:func:`fit_steps`).
    """
    check_count(steps, "steps", minimum=0)
    v = check_data(v).detach()
    phi = [p for p in posterior.parameters() if p.requires_grad]
    if not phi:
        raise ValueError("posterior has no trainable parameters to fit")

    def step(fixed_v_energy: Energy, state: None, k: int) -> tuple[None, Tensor]:
        optimizer.zero_grad(set_to_none=True)
        objective = loss(
            fixed_v_energy, cast(Posterior, posterior), v, n_samples=n_samples, generator=generator
        )
        if not bool(torch.isfinite(objective)):
            raise FloatingPointError(f"posterior loss is not finite: {objective.item()}")
        objective.backward(inputs=phi)
        optimizer.step()
        return None, objective.detach()

    _, last = fit_steps(energy, v, None, step, steps=steps)
    return float("nan") if last is None else last.item()
