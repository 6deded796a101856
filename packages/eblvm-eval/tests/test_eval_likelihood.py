from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from eval_testing import random_grbm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from eblvm_eval import ais_log_partition, exact_log_partition, log_likelihood


def test_integrates_to_one_in_one_dimension() -> None:
    grbm = random_grbm(1, 5, seed=1, weight_std=1.5)
    v = torch.linspace(-30.0, 30.0, 60_001, dtype=torch.float64)[:, None]
    density = log_likelihood(grbm, v, log_z=exact_log_partition(grbm)).detach().exp()
    assert integrate.trapezoid(density.numpy(), v[:, 0].numpy()) == pytest.approx(1.0, abs=1e-9)


def test_integrates_to_one_in_two_dimensions() -> None:
    grbm = random_grbm(2, 4, seed=2, weight_std=0.8)
    axis = torch.linspace(-15.0, 15.0, 601, dtype=torch.float64)
    v = torch.cartesian_prod(axis, axis)
    density = log_likelihood(grbm, v, log_z=exact_log_partition(grbm).item()).detach().exp()
    grid = density.reshape(601, 601).numpy()
    mass = integrate.trapezoid(integrate.trapezoid(grid, axis.numpy()), axis.numpy())
    assert mass == pytest.approx(1.0, abs=1e-9)


def test_is_negative_free_energy_minus_log_z() -> None:
    grbm = random_grbm(3, 4, seed=3, dtype=torch.float32)
    v = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    result = ais_log_partition(grbm, n_chains=10, n_steps=10)
    expected = -grbm.free_energy(v).double() - result.log_z
    torch.testing.assert_close(log_likelihood(grbm, v, log_z=result.log_z), expected)


def test_gradients_flow_to_the_parameters() -> None:
    grbm = random_grbm(3, 4, seed=4)
    log_likelihood(grbm, torch.ones(2, 3, dtype=torch.float64), log_z=0.0).sum().backward()
    assert grbm.W.grad is not None and bool(grbm.W.grad.abs().sum() > 0)


class _WrongShape:
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return v.sum(-1, keepdim=True)


def test_refuses_bad_input() -> None:
    grbm = random_grbm(2, 3, seed=0)
    v = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"v must have shape \(\*, \*\)"):
        log_likelihood(grbm, v[0], log_z=0.0)
    with pytest.raises(ValueError, match="v contains non-finite"):
        log_likelihood(grbm, v + math.nan, log_z=0.0)
    with pytest.raises(TypeError, match=r"v must be a torch\.Tensor"):
        log_likelihood(grbm, np.zeros((4, 2)), log_z=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_z must be finite"):
        log_likelihood(grbm, v, log_z=math.inf)
    with pytest.raises(ValueError, match="log_z must be a scalar"):
        log_likelihood(grbm, v, log_z=torch.zeros(2))
    with pytest.raises(TypeError, match="log_z must be a real number"):
        log_likelihood(grbm, v, log_z="1.0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model\.free_energy\(v\) must return shape \(4,\)"):
        log_likelihood(_WrongShape(), v, log_z=0.0)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 32),
    v_dim=st.integers(1, 8),
    h_dim=st.integers(1, 8),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_shape_and_dtype(batch: int, v_dim: int, h_dim: int, dtype: torch.dtype, seed: int) -> None:
    grbm = random_grbm(v_dim, h_dim, seed=seed, dtype=dtype)
    v = 3 * torch.randn(batch, v_dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    result = log_likelihood(grbm, v, log_z=exact_log_partition(grbm))
    assert result.shape == (batch,)
    assert result.dtype == torch.float64
    assert torch.isfinite(result).all()
