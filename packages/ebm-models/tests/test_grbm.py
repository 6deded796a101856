"""The GRBM against enumeration over h, finite differences and its conditionals."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ebm_models import GRBM

DTYPE = torch.float64


def random_grbm(v_dim: int = 3, h_dim: int = 4, seed: int = 0) -> GRBM:
    generator = torch.Generator().manual_seed(seed)
    model = GRBM(v_dim, h_dim, weight_std=0.8, generator=generator).double()
    with torch.no_grad():
        model.b.copy_(torch.randn(v_dim, generator=generator, dtype=DTYPE))
        model.c.copy_(torch.randn(h_dim, generator=generator, dtype=DTYPE))
        model.log_std.copy_(0.3 * torch.randn(v_dim, generator=generator, dtype=DTYPE))
    return model


def all_states(h_dim: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=h_dim)), dtype=DTYPE)


def test_free_energy_equals_enumeration():
    model = random_grbm()
    v = torch.randn(5, 3, dtype=DTYPE)
    states = all_states(4)[:, None, :].expand(-1, 5, -1)
    enumerated = -torch.logsumexp(-model.energy(v, states), dim=0)
    torch.testing.assert_close(model.free_energy(v), enumerated, rtol=0, atol=1e-12)


def test_score_equals_finite_differences_of_the_free_energy():
    model = random_grbm()
    v = torch.randn(4, 3, dtype=DTYPE)
    step = 1e-6
    columns = []
    for d in range(3):
        shift = torch.zeros(3, dtype=DTYPE)
        shift[d] = step
        columns.append(-(model.free_energy(v + shift) - model.free_energy(v - shift)) / (2 * step))
    torch.testing.assert_close(model.score(v), torch.stack(columns, -1), rtol=0, atol=1e-7)


def test_posterior_probs_equal_enumerated_conditionals():
    model = random_grbm()
    v = torch.randn(2, 3, dtype=DTYPE)
    states = all_states(4)
    log_joint = -model.energy(v, states[:, None, :].expand(-1, 2, -1))
    posterior = torch.softmax(log_joint, dim=0)  # (2^H, B)
    marginals = torch.einsum("sb,sh->bh", posterior, states)
    torch.testing.assert_close(model.posterior_probs(v), marginals, rtol=0, atol=1e-12)
    exact = model.exact_posterior()
    h = states[:, None, :].expand(-1, 2, -1)
    torch.testing.assert_close(exact.log_prob(h, v).exp(), posterior, rtol=0, atol=1e-12)


def test_energy_broadcasts_over_sample_dimensions():
    model = random_grbm()
    v = torch.randn(5, 3, dtype=DTYPE)
    h = torch.bernoulli(torch.full((7, 5, 4), 0.5, dtype=DTYPE))
    looped = torch.stack([model.energy(v, h[i]) for i in range(7)])
    torch.testing.assert_close(model(v, h), looped)


def test_energy_at_v_gives_the_energy_at_fixed_v():
    model = random_grbm()
    v = torch.randn(5, 3, dtype=DTYPE)
    h = torch.bernoulli(torch.full((7, 5, 4), 0.5, dtype=DTYPE))
    at_v = model.__energy_at_v__(v)
    torch.testing.assert_close(at_v(h), model(v, h), rtol=0, atol=1e-12)
    torch.testing.assert_close(at_v(h[0]), model(v, h[0]), rtol=0, atol=1e-12)


def test_exact_posterior_draws_have_the_posterior_mean():
    model = random_grbm()
    v = torch.randn(3, 3, dtype=DTYPE)
    draws = model.exact_posterior().rsample(v, 20000, generator=torch.Generator().manual_seed(0))
    # Binary draws: standard error below 0.5/sqrt(20000) = 0.0035.
    torch.testing.assert_close(draws.mean(0), model.posterior_probs(v), rtol=0, atol=0.015)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.randn(4, 2), "v must have shape"),
        (torch.tensor([[math.nan, 0.0, 0.0]]), "non-finite"),
        (torch.ones(2, 3, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_input_is_refused(bad, message):
    model = GRBM(3, 2)
    with pytest.raises((ValueError, TypeError), match=message):
        model.score(bad)


@pytest.mark.parametrize(("v_dim", "h_dim"), [(0, 2), (2, 0), (2.0, 2)])
def test_bad_sizes_are_refused(v_dim, h_dim):
    with pytest.raises(ValueError, match="_dim"):
        GRBM(v_dim, h_dim)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 8),
    v_dim=st.integers(1, 6),
    h_dim=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shapes_and_finiteness(batch, v_dim, h_dim, dtype):
    model = GRBM(v_dim, h_dim).to(dtype)
    v = torch.randn(batch, v_dim, dtype=dtype)
    for value, shape in (
        (model.free_energy(v), (batch,)),
        (model.score(v), (batch, v_dim)),
        (model.posterior_probs(v), (batch, h_dim)),
        (model.exact_posterior().rsample(v, 3), (3, batch, h_dim)),
    ):
        assert value.shape == shape
        assert torch.isfinite(value).all()
