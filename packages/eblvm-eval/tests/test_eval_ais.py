from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from eval_testing import random_grbm
from hypothesis import given, settings
from hypothesis import strategies as st

from eblvm_eval import (
    AISState,
    ais_estimate,
    ais_init,
    ais_kernel,
    ais_log_partition,
    ais_params,
    exact_log_partition,
)
from ebm_models import GRBM


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Products this small gain nothing from threads, and on a shared machine threaded
    float64 products can stall for milliseconds each; the results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    ("v_dim", "h_dim", "weight_std", "dtype"),
    [
        (2, 6, 1.0, torch.float64),
        (5, 8, 0.6, torch.float64),
        (10, 12, 0.5, torch.float64),
        (20, 12, 0.4, torch.float64),
        (12, 10, 0.5, torch.float32),
    ],
)
def test_agrees_with_exact_log_partition(
    v_dim: int, h_dim: int, weight_std: float, dtype: torch.dtype
) -> None:
    grbm = random_grbm(v_dim, h_dim, seed=10 * v_dim + h_dim, weight_std=weight_std, dtype=dtype)
    exact = exact_log_partition(grbm).item()
    base = ais_params(grbm).log_z_base
    assert abs(exact - base) > 3.0  # the model is far from the base: the test is not trivial
    generator = torch.Generator().manual_seed(v_dim)
    result = ais_log_partition(grbm, n_chains=1000, n_steps=500, generator=generator)
    error = abs(result.log_z.item() - exact)
    assert error < 0.05
    assert error < 4 * result.log_z_std_err.item() + 0.005
    assert 0 < result.log_z_std_err.item() < 0.05


def test_is_exact_without_weights() -> None:
    grbm = random_grbm(7, 5, seed=3)
    with torch.no_grad():
        grbm.W.zero_()
    result = ais_log_partition(
        grbm, n_chains=50, n_steps=40, generator=torch.Generator().manual_seed(0)
    )
    assert result.log_z.item() == pytest.approx(exact_log_partition(grbm).item(), abs=1e-12)
    assert result.log_z_std_err.item() < 1e-12
    assert result.effective_sample_size.item() == pytest.approx(50, abs=1e-9)
    assert torch.equal(result.log_weights, result.log_weights[:1].expand(50))


def scaled_grbm(grbm: GRBM, beta: float) -> GRBM:
    """p_β as a GRBM of its own: W and c scaled by β."""
    scaled = GRBM(grbm.v_dim, grbm.h_dim).double()
    with torch.no_grad():
        scaled.W.copy_(beta * grbm.W)
        scaled.c.copy_(beta * grbm.c)
        scaled.b.copy_(grbm.b)
        scaled.log_std.copy_(grbm.log_std)
    return scaled


def test_kernel_step_matches_direct_computation() -> None:
    grbm = random_grbm(4, 3, seed=7, weight_std=1.0)
    params = ais_params(grbm)
    generator = torch.Generator().manual_seed(1)
    state = AISState(
        v=torch.randn(6, 4, generator=generator, dtype=torch.float64),
        log_weights=torch.randn(6, generator=generator, dtype=torch.float64),
        beta=0.3,
    )
    uniforms = torch.rand(6, 3, generator=generator, dtype=torch.float64)
    normals = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    new, info = ais_kernel(state, params=params, beta=0.7, uniforms=uniforms, normals=normals)

    free_before = scaled_grbm(grbm, 0.3).free_energy(state.v)
    free_after = scaled_grbm(grbm, 0.7).free_energy(state.v)
    increment = (free_before - free_after).detach()
    torch.testing.assert_close(info.log_weight_increment, increment, rtol=0, atol=1e-12)
    torch.testing.assert_close(new.log_weights, state.log_weights + increment, rtol=0, atol=1e-12)
    assert new.beta == 0.7

    W, b, c = grbm.W.detach(), grbm.b.detach(), grbm.c.detach()
    std = grbm.log_std.detach().exp()
    for i in range(6):
        p_on = torch.sigmoid(0.7 * (c + state.v[i] @ W))
        h = (uniforms[i] < p_on).double()
        v = b + std**2 * (0.7 * W @ h) + std * normals[i]
        torch.testing.assert_close(new.v[i], v, rtol=0, atol=1e-12)


def test_init_draws_the_base_gaussian() -> None:
    grbm = random_grbm(3, 2, seed=2)
    state = ais_init(ais_params(grbm), n_chains=20_000, generator=torch.Generator().manual_seed(4))
    assert state.beta == 0.0
    assert torch.equal(state.log_weights, torch.zeros(20_000, dtype=torch.float64))
    std = grbm.log_std.detach().exp()
    # 5 standard errors of the sample mean and of the sample standard deviation.
    torch.testing.assert_close(state.v.mean(0), grbm.b.detach(), rtol=0, atol=5 * std.max() / 141)
    torch.testing.assert_close(state.v.std(0), std, rtol=5 / 200, atol=0)


def test_base_log_partition() -> None:
    grbm = random_grbm(3, 4, seed=8)
    with torch.no_grad():
        grbm.W.zero_()
        grbm.c.zero_()
    assert ais_params(grbm).log_z_base == pytest.approx(exact_log_partition(grbm).item(), abs=1e-12)


def test_estimate_matches_numpy() -> None:
    log_weights = torch.tensor([-1.0, 0.5, 2.0, 0.0, -3.0], dtype=torch.float64)
    result = ais_estimate(log_weights, log_z_base=10.0)
    w = np.exp(log_weights.numpy())
    assert result.log_z.item() == pytest.approx(math.log(w.mean()) + 10.0, abs=1e-12)
    assert result.effective_sample_size.item() == pytest.approx(w.sum() ** 2 / (w**2).sum())
    expected_std_err = np.std(w / w.mean(), ddof=1) / math.sqrt(5)
    assert result.log_z_std_err.item() == pytest.approx(expected_std_err, rel=1e-12)
    assert math.isnan(ais_estimate(log_weights[:1], log_z_base=0.0).log_z_std_err.item())


def test_progress_and_generator() -> None:
    grbm = random_grbm(3, 2, seed=9)
    calls: list[tuple[int, int]] = []
    first = ais_log_partition(
        grbm,
        n_chains=8,
        n_steps=5,
        generator=torch.Generator().manual_seed(5),
        progress=lambda step, total: calls.append((step, total)),
    )
    assert calls == [(k, 5) for k in range(1, 6)]
    again = ais_log_partition(
        grbm, n_chains=8, n_steps=5, generator=torch.Generator().manual_seed(5)
    )
    other = ais_log_partition(
        grbm, n_chains=8, n_steps=5, generator=torch.Generator().manual_seed(6)
    )
    assert torch.equal(first.log_weights, again.log_weights)
    assert not torch.equal(first.log_weights, other.log_weights)


def test_refuses_bad_arguments() -> None:
    grbm = random_grbm(3, 2, seed=0)
    for name in ("n_chains", "n_steps"):
        for bad in (0, -1, 2.0, True):
            with pytest.raises(ValueError, match=name):
                ais_log_partition(grbm, **{name: bad})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        ais_log_partition(grbm, n_chains=2, n_steps=2, progress=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        ais_log_partition(grbm, n_chains=2, n_steps=2, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_weights must hold"):
        ais_estimate(torch.zeros(0, dtype=torch.float64), log_z_base=0.0)
    with pytest.raises(ValueError, match="log_weights contains non-finite"):
        ais_estimate(torch.tensor([0.0, math.nan]), log_z_base=0.0)
    with pytest.raises(ValueError, match="log_z_base must be finite"):
        ais_estimate(torch.zeros(2), log_z_base=math.inf)


def test_kernel_refuses_bad_arguments() -> None:
    params = ais_params(random_grbm(3, 2, seed=0))
    state = ais_init(params, n_chains=4)
    u, z = torch.rand(4, 2, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"uniforms must have shape \(4, 2\)"):
        ais_kernel(state, params=params, beta=0.5, uniforms=u[:, :1], normals=z)
    with pytest.raises(ValueError, match=r"normals must have shape \(4, 3\)"):
        ais_kernel(state, params=params, beta=0.5, uniforms=u, normals=z[:3])
    with pytest.raises(ValueError, match=r"state\.v must have shape \(\*, 3\)"):
        ais_kernel(state._replace(v=z[:, :2]), params=params, beta=0.5, uniforms=u, normals=z)
    with pytest.raises(TypeError, match="params must be AISParams"):
        ais_kernel(state, params=tuple(params), beta=0.5, uniforms=u, normals=z)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta must be finite"):
        ais_kernel(state, params=params, beta=math.nan, uniforms=u, normals=z)
    with pytest.raises(TypeError, match=r"normals must have dtype torch\.float64"):
        ais_kernel(state, params=params, beta=0.5, uniforms=u, normals=z.float())


@settings(max_examples=25, deadline=None)
@given(
    n_chains=st.integers(1, 20),
    n_steps=st.integers(1, 6),
    v_dim=st.integers(1, 6),
    h_dim=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_shapes_and_dtypes(
    n_chains: int, n_steps: int, v_dim: int, h_dim: int, dtype: torch.dtype, seed: int
) -> None:
    grbm = random_grbm(v_dim, h_dim, seed=seed, weight_std=1.0, dtype=dtype)
    result = ais_log_partition(
        grbm, n_chains=n_chains, n_steps=n_steps, generator=torch.Generator().manual_seed(seed)
    )
    assert result.log_weights.shape == (n_chains,)
    for value in result:
        assert value.dtype == torch.float64
    assert result.log_z.shape == result.log_z_std_err.shape == ()
    assert torch.isfinite(result.log_z) and torch.isfinite(result.log_weights).all()
    assert 1 - 1e-9 <= result.effective_sample_size.item() <= n_chains + 1e-9
    assert (n_chains == 1) == math.isnan(result.log_z_std_err.item())
