"""HMC against exact laws: a Gaussian's moments and a GRBM's 1-D marginal."""

from __future__ import annotations

import math

import pytest
import torch

from eblvm_eval import HMCNoise, gibbs_sample, hmc_init, hmc_sample, hmc_step, hmc_transition
from ebm_models import GRBM

DTYPE = torch.float64
MEAN = torch.tensor([1.0, -2.0], dtype=DTYPE)
STD = torch.tensor([0.5, 2.0], dtype=DTYPE)


def gaussian_log_density(v: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((v - MEAN) / STD).square().sum(-1)


def test_chains_reach_the_gaussian_and_keep_it():
    """20000 chains from a wrong start: mean and std within 5 standard errors."""
    g = torch.Generator().manual_seed(0)
    start = torch.randn(20000, 2, generator=g, dtype=DTYPE) * 3
    samples, acceptance = hmc_sample(
        gaussian_log_density, start, steps=60, step_size=0.3, leapfrog_steps=8, generator=g
    )
    se = STD / math.sqrt(20000)
    assert bool(((samples.mean(0) - MEAN).abs() < 5 * se).all())
    assert bool(((samples.std(0) / STD - 1).abs() < 0.03).all())
    assert 0.5 < float(acceptance.mean()) <= 1.0


def test_a_tiny_step_is_almost_always_accepted_and_a_huge_one_rarely():
    state = hmc_init(torch.zeros(500, 2, dtype=DTYPE), gaussian_log_density)
    g = torch.Generator().manual_seed(1)
    _, small = hmc_step(
        state, log_density=gaussian_log_density, step_size=1e-3, leapfrog_steps=3, generator=g
    )
    _, large = hmc_step(
        state, log_density=gaussian_log_density, step_size=5.0, leapfrog_steps=3, generator=g
    )
    assert float(small.acceptance.mean()) > 0.999
    assert float(large.acceptance.mean()) < 0.2


def test_injected_noise_gives_the_generator_draws():
    transition = hmc_transition(gaussian_log_density, step_size=0.2, leapfrog_steps=4)
    state = transition.init(
        torch.randn(7, 2, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    )
    drawn, _ = transition.step(state, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    noise = HMCNoise(
        torch.randn(7, 2, generator=g, dtype=DTYPE), torch.rand(7, generator=g, dtype=DTYPE)
    )
    injected, _ = transition.step(state, noise=noise)
    assert torch.equal(drawn.position, injected.position)


def test_a_non_finite_proposal_is_rejected():
    def log_density(v):
        return torch.where(
            v[:, 0] > 0.5, torch.full_like(v[:, 0], math.nan), -0.5 * v.square().sum(-1)
        )

    state = hmc_init(torch.zeros(100, 2, dtype=DTYPE), log_density)
    new, info = hmc_step(
        state,
        log_density=log_density,
        step_size=1.0,
        leapfrog_steps=2,
        generator=torch.Generator().manual_seed(4),
    )
    assert bool(new.log_density.isfinite().all()) and bool((new.position[:, 0] <= 0.5).all())
    assert not bool(info.accepted.all())


def test_hmc_on_a_grbm_free_energy_matches_gibbs():
    """The 1-D marginal of a GRBM by HMC on −F(v) and by Gibbs sampling: same moments."""
    model = GRBM(1, 2, weight_std=1.5, generator=torch.Generator().manual_seed(5)).double()
    g = torch.Generator().manual_seed(6)
    gibbs = gibbs_sample(model, 20000, steps=100, generator=g)
    hmc, _ = hmc_sample(
        lambda v: -model.free_energy(v), gibbs.clone(), steps=40, step_size=0.5, generator=g
    )
    assert abs(float(hmc.mean() - gibbs.mean())) < 5 * float(gibbs.std()) / math.sqrt(10000)
    assert abs(float(hmc.std() / gibbs.std()) - 1) < 0.04


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="step_size must be positive"):
        hmc_transition(gaussian_log_density, step_size=0.0, leapfrog_steps=1)
    with pytest.raises(ValueError, match="leapfrog_steps must be a positive integer"):
        hmc_transition(gaussian_log_density, step_size=0.1, leapfrog_steps=0)
    with pytest.raises(ValueError, match=r"log_density must return \(3,\)"):
        hmc_init(torch.zeros(3, 2, dtype=DTYPE), lambda v: v.sum())
