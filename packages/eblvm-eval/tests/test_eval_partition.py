from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from eval_testing import log_partition_by_loop, neg_free_energy_numpy, random_grbm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from eblvm_eval import exact_log_partition, partition


@pytest.mark.parametrize(("h_dim", "seed"), [(1, 0), (3, 1), (6, 2)])
def test_matches_numerical_integral_in_one_dimension(h_dim: int, seed: int) -> None:
    grbm = random_grbm(1, h_dim, seed=seed, weight_std=1.0)
    shift = float(neg_free_energy_numpy(grbm, np.linspace(-20, 20, 4001)[:, None]).max())

    def density(x: float) -> float:
        return float(np.exp(neg_free_energy_numpy(grbm, np.array([[x]]))[0] - shift))

    value, _ = integrate.quad(density, -np.inf, np.inf, epsabs=0.0, epsrel=1e-11, limit=200)
    assert exact_log_partition(grbm).item() == pytest.approx(math.log(value) + shift, abs=1e-8)


@pytest.mark.parametrize(("h_dim", "seed"), [(2, 3), (4, 4)])
def test_matches_numerical_integral_in_two_dimensions(h_dim: int, seed: int) -> None:
    grbm = random_grbm(2, h_dim, seed=seed, weight_std=0.8)
    # Every p(v | h) has mean b + σ² ⊙ Wh and std σ: the box covers ±12 σ around all of them.
    W, b, std = grbm.W.detach(), grbm.b.detach(), grbm.log_std.detach().exp()
    h = ((torch.arange(2**h_dim)[:, None] >> torch.arange(h_dim)) & 1).double()
    means = b + std**2 * (h @ W.T)
    lo = (means.min(0).values - 12 * std).tolist()
    hi = (means.max(0).values + 12 * std).tolist()
    # The trapezoid rule converges geometrically for smooth integrands that vanish at the ends.
    x, y = np.linspace(lo[0], hi[0], 601), np.linspace(lo[1], hi[1], 601)
    grid = np.stack(np.meshgrid(x, y, indexing="ij"), -1).reshape(-1, 2)
    log_density = neg_free_energy_numpy(grbm, grid).reshape(len(x), len(y))
    shift = log_density.max()
    value = integrate.trapezoid(integrate.trapezoid(np.exp(log_density - shift), y), x)
    assert exact_log_partition(grbm).item() == pytest.approx(math.log(value) + shift, abs=1e-9)


@pytest.mark.parametrize(("v_dim", "h_dim"), [(5, 1), (5, 9), (12, 10)])
def test_matches_loop_over_hidden_states_in_many_small_chunks(
    v_dim: int, h_dim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    grbm = random_grbm(v_dim, h_dim, seed=v_dim + h_dim, weight_std=0.7)
    expected = log_partition_by_loop(grbm)
    assert exact_log_partition(grbm).item() == pytest.approx(expected, abs=1e-9)
    monkeypatch.setattr(partition, "_CHUNK_ELEMENTS", 7)
    assert exact_log_partition(grbm).item() == pytest.approx(expected, abs=1e-9)


def test_without_weights_is_gaussian_times_independent_bits() -> None:
    grbm = random_grbm(4, 7, seed=5)
    with torch.no_grad():
        grbm.W.zero_()
    std = grbm.log_std.detach().exp()
    expected = (
        std.log().sum() + 2 * math.log(2 * math.pi) + torch.nn.functional.softplus(grbm.c).sum()
    )
    assert exact_log_partition(grbm).item() == pytest.approx(expected.item(), abs=1e-12)


def test_float32_model_is_enumerated_in_float64() -> None:
    grbm32 = random_grbm(6, 8, seed=6, dtype=torch.float32)
    grbm64 = random_grbm(6, 8, seed=6, dtype=torch.float32).double()
    result = exact_log_partition(grbm32)
    assert result.dtype == torch.float64
    assert result.item() == exact_log_partition(grbm64).item()


def test_refuses_too_many_hidden_units() -> None:
    with pytest.raises(ValueError, match=r"h_dim = 25.*ais_log_partition"):
        exact_log_partition(random_grbm(2, 25, seed=0))


def test_refuses_malformed_parameters() -> None:
    grbm = random_grbm(3, 2, seed=0)
    W, b, c, log_std = (grbm.W.detach(), grbm.b.detach(), grbm.c.detach(), grbm.log_std.detach())
    with pytest.raises(TypeError, match="'W'"):
        exact_log_partition(SimpleNamespace(b=b, c=c, log_std=log_std))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"grbm\.W must be a torch\.Tensor"):
        exact_log_partition(SimpleNamespace(W=W.numpy(), b=b, c=c, log_std=log_std))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"grbm\.b must have shape \(3,\)"):
        exact_log_partition(SimpleNamespace(W=W, b=b[:2], c=c, log_std=log_std))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"grbm\.c must have shape \(2,\)"):
        exact_log_partition(SimpleNamespace(W=W, b=b, c=c[None], log_std=log_std))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"grbm\.log_std contains non-finite"):
        exact_log_partition(SimpleNamespace(W=W, b=b, c=c, log_std=log_std + math.inf))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"grbm\.c must have grbm\.W's dtype"):
        exact_log_partition(SimpleNamespace(W=W, b=b, c=c.float(), log_std=log_std))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"grbm\.W must have shape \(D, H\) with D, H >= 1"):
        exact_log_partition(SimpleNamespace(W=W[:, :0], b=b, c=c[:0], log_std=log_std))  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    v_dim=st.integers(1, 8),
    h_dim=st.integers(1, 10),
    weight_std=st.sampled_from([0.0, 0.1, 1.0, 3.0]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_shape_and_dtype(
    v_dim: int, h_dim: int, weight_std: float, dtype: torch.dtype, seed: int
) -> None:
    result = exact_log_partition(
        random_grbm(v_dim, h_dim, seed=seed, weight_std=weight_std, dtype=dtype)
    )
    assert result.shape == ()
    assert result.dtype == torch.float64
    assert torch.isfinite(result)
