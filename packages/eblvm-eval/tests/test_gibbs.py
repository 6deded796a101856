"""Block-Gibbs sampling of a GRBM against its exact 1-D marginal and its conditionals."""

from __future__ import annotations

import math

import pytest
import torch

from eblvm_eval import GibbsNoise, gibbs_noise, gibbs_sample, gibbs_step, gibbs_transition
from ebm_models import GRBM

DTYPE = torch.float64


def random_grbm(v_dim: int, h_dim: int, seed: int) -> GRBM:
    model = GRBM(v_dim, h_dim).to(DTYPE)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * 0.7)
    return model


def test_gibbs_sampling_reaches_the_one_dimensional_marginal() -> None:
    """A 1-D GRBM: the moments of Gibbs draws match those of exp(−F(v))/Z on a grid."""
    model = random_grbm(1, 2, seed=3)
    draws = gibbs_sample(model, 20000, steps=50, generator=torch.Generator().manual_seed(1))
    grid = torch.linspace(-12, 12, 24001, dtype=DTYPE)[:, None]
    density = (-model.free_energy(grid)).exp().detach()
    step = grid[1, 0] - grid[0, 0]
    density = density / (density.sum() * step)
    mean = (grid[:, 0] * density).sum() * step
    std = (((grid[:, 0] - mean).square() * density).sum() * step).sqrt()
    # 20000 (nearly independent) draws: standard error of the mean is std/141.
    assert abs(draws.mean().item() - mean.item()) < 5 * std.item() / math.sqrt(20000)
    assert abs(draws.std().item() / std.item() - 1) < 0.03


def test_a_step_draws_h_from_its_conditional_then_v_from_its_conditional() -> None:
    model = random_grbm(3, 4, seed=0)
    v = torch.randn(5, 3, dtype=DTYPE)
    noise = gibbs_noise(5, model, dtype=DTYPE, device=v.device, generator=torch.Generator())
    state = gibbs_step(model, v, noise=noise)
    probs = model.posterior_probs(v)
    assert torch.equal(state.hidden, (noise.uniform < probs).to(DTYPE))
    expected = model.visible_mean(state.hidden) + model.std * noise.normal
    torch.testing.assert_close(state.visible, expected.detach())
    assert not state.visible.requires_grad


def test_the_transition_and_a_generator_give_the_injected_draws() -> None:
    model, v = random_grbm(2, 3, seed=1), torch.randn(4, 2, dtype=DTYPE)
    drawn = gibbs_transition(model).step(v, generator=torch.Generator().manual_seed(2))
    noise = gibbs_noise(
        4, model, dtype=DTYPE, device=v.device, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(drawn.visible, gibbs_step(model, v, noise=noise).visible)
    assert isinstance(noise, GibbsNoise)


def test_bad_arguments_are_refused() -> None:
    model = random_grbm(2, 3, seed=1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        gibbs_sample(model, 0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        gibbs_sample(model, 2, steps=0)
    with pytest.raises(ValueError, match=r"init must have shape \(2, 2\)"):
        gibbs_sample(model, 2, init=torch.zeros(3, 2, dtype=DTYPE))
