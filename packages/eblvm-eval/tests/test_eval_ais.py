from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from eval_testing import log_marginal_by_loop, numpy_parameters, random_grbm
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from eblvm_eval import (
    AISParams,
    AISState,
    ais_estimate,
    ais_init,
    ais_log_partition,
    ais_params,
    ais_transition,
    exact_log_partition,
)
from eblvm_eval import ais as ais_module


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
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("v_dim", "h_dim", "weight_std", "block_width"),
    [
        (2, 6, 1.0, 80),
        (5, 8, 0.6, 80),
        (10, 12, 0.5, 80),
        (20, 12, 0.4, 80),
        (12, 10, 0.5, 80),
        # H < D: F is triangular; blocks 4 wide take the blocked products of a wide model.
        (20, 12, 0.4, 4),
        (16, 11, 0.5, 3),
    ],
)
def test_agrees_with_exact_log_partition(
    v_dim: int,
    h_dim: int,
    weight_std: float,
    block_width: int,
    dtype: torch.dtype,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """float64 and float32 chains (float64 weights in both) within 0.05 nats of log Z."""
    monkeypatch.setattr(ais_module, "_BLOCK_WIDTH", block_width)
    grbm = random_grbm(v_dim, h_dim, seed=10 * v_dim + h_dim, weight_std=weight_std, dtype=dtype)
    params = ais_params(grbm)
    assert len(ais_module._blocks(params.gram_factor)) == (
        1 if h_dim >= v_dim else max(1, round(h_dim / block_width))
    )
    exact = exact_log_partition(grbm).item()
    base = params.log_z_base
    assert abs(exact - base) > 3.0  # the model is far from the base: the test is not trivial
    generator = torch.Generator().manual_seed(v_dim)
    result = ais_log_partition(grbm, n_chains=1000, n_steps=500, generator=generator)
    error = abs(result.log_z.item() - exact)
    assert error < 0.05
    assert error < 4 * result.log_z_std_err.item() + 0.005
    assert 0 < result.log_z_std_err.item() < 0.05


def test_is_exact_without_weights() -> None:
    """With W = 0 and c = 0 the model is the base model whatever b and σ: every increment
    (β − β′) aᵀh + ½(β² − β′²)‖S h‖² is 0, since a = c + Wᵀb = 0 and S = σ ⊙ W = 0."""
    grbm = random_grbm(7, 5, seed=3)
    with torch.no_grad():
        grbm.W.zero_()
        grbm.c.zero_()
    result = ais_log_partition(
        grbm, n_chains=50, n_steps=40, generator=torch.Generator().manual_seed(0)
    )
    assert result.log_z.item() == pytest.approx(exact_log_partition(grbm).item(), abs=1e-12)
    assert result.log_z_std_err.item() < 1e-12
    assert result.effective_sample_size.item() == pytest.approx(50, abs=1e-9)
    assert torch.equal(result.log_weights, torch.zeros(50, dtype=torch.float64))


@pytest.mark.parametrize(("v_dim", "h_dim"), [(7, 4), (4, 7), (5, 5)])
def test_gram_factor(v_dim: int, h_dim: int) -> None:
    grbm = random_grbm(v_dim, h_dim, seed=v_dim + h_dim, weight_std=1.0)
    params = ais_params(grbm)
    W, b, c = grbm.W.detach(), grbm.b.detach(), grbm.c.detach()
    scaled = grbm.log_std.detach().exp()[:, None] * W
    factor = params.gram_factor
    assert params.noise_dim == min(v_dim, h_dim)
    assert factor.shape == (params.noise_dim, h_dim)
    torch.testing.assert_close(factor.T @ factor, scaled.T @ scaled, rtol=0, atol=1e-10)
    torch.testing.assert_close(params.hidden_bias, c + W.T @ b, rtol=0, atol=1e-12)
    if h_dim < v_dim:  # the R of the QR of σ ⊙ W
        assert torch.equal(factor, factor.triu())
    else:  # σ ⊙ W itself: the normals are the noise of v | h
        assert torch.equal(factor, scaled)


@pytest.mark.parametrize(("v_dim", "h_dim"), [(5, 3), (3, 5), (4, 4)])
def test_transition_step_matches_loops(v_dim: int, h_dim: int) -> None:
    grbm = random_grbm(v_dim, h_dim, seed=7, weight_std=1.0)
    params = ais_params(grbm)
    generator = torch.Generator().manual_seed(1)
    n = 8
    state = AISState(
        h=torch.randint(0, 2, (n, h_dim), generator=generator, dtype=torch.float64),
        log_weights=torch.randn(n, generator=generator, dtype=torch.float64),
        beta=0.3,
    )
    uniforms = torch.rand(n, h_dim, generator=generator, dtype=torch.float64)
    normals = torch.randn(n, params.noise_dim, generator=generator, dtype=torch.float64)
    new, info = ais_transition(state, params=params, beta=0.7, uniforms=uniforms, normals=normals)

    hidden = state.h.numpy()
    increment = torch.tensor(
        [
            log_marginal_by_loop(grbm, hidden[i], beta=0.7)
            - log_marginal_by_loop(grbm, hidden[i], beta=0.3)
            for i in range(n)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(info.log_weight_increment, increment, rtol=0, atol=1e-12)
    torch.testing.assert_close(new.log_weights, state.log_weights + increment, rtol=0, atol=1e-12)
    assert new.beta == 0.7

    W, b, c, std = numpy_parameters(grbm)
    scaled = std[:, None] * W
    factor = params.gram_factor.numpy()
    for i in range(n):
        h, z = hidden[i], normals[i].numpy()
        if h_dim >= v_dim:  # the sweep in v: z is the noise of v | h in units of σ
            v = b + std**2 * (0.7 * W @ h) + std * z
            logits = c + W.T @ v
        else:  # a + β G h + Fᵀz, with G = (σ ⊙ W)ᵀ(σ ⊙ W)
            logits = c + W.T @ b + 0.7 * scaled.T @ (scaled @ h) + factor.T @ z
        p_on = 1 / (1 + np.exp(-0.7 * logits))
        expected = (uniforms[i].numpy() < p_on).astype(np.float64)
        np.testing.assert_array_equal(new.h[i].numpy(), expected)
    assert 0 < new.h.sum().item() < new.h.numel()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_transition_in_blocks_matches_dense_products(dtype: torch.dtype) -> None:
    """At H = 250 < D = 300 the factor is the triangular R, which the transition multiplies in
    three blocks on CPU: the increments and the new h agree with the dense formula
    (β − β′) aᵀh + ½(β² − β′²)‖R h‖² and h′ = [u < sigmoid(β (a + Rᵀ(β R h + z)))] in
    float64 (in float32 up to the h whose u lies within 1e-4 of its probability)."""
    grbm = random_grbm(300, 250, seed=12, weight_std=0.1, dtype=dtype)
    params = ais_params(grbm)
    assert ais_module._blocks(params.gram_factor) == ((0, 83), (83, 166), (166, 250))
    generator = torch.Generator().manual_seed(2)
    n, beta, beta_prev = 64, 0.7, 0.4
    state = AISState(
        h=torch.randint(0, 2, (n, 250), generator=generator, dtype=dtype),
        log_weights=torch.zeros(n, dtype=torch.float64),
        beta=beta_prev,
    )
    uniforms = torch.rand(n, 250, generator=generator, dtype=dtype)
    normals = torch.randn(n, 250, generator=generator, dtype=dtype)
    new, info = ais_transition(state, params=params, beta=beta, uniforms=uniforms, normals=normals)

    factor, bias = params.gram_factor.double(), params.hidden_bias.double()
    h, z, u = state.h.double(), normals.double(), uniforms.double()
    projected = h @ factor.T
    increment = (beta - beta_prev) * h @ bias + 0.5 * (beta**2 - beta_prev**2) * (projected**2).sum(
        1
    )
    p_on = torch.sigmoid(beta * (bias + (beta * projected + z) @ factor))
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(
        info.log_weight_increment, increment, rtol=tol, atol=tol * increment.abs().max().item()
    )
    clear = (u - p_on).abs() > tol
    assert clear.float().mean() > 0.99
    assert torch.equal(new.h.double()[clear], (u < p_on).double()[clear])
    assert 0.1 < new.h.mean().item() < 0.9


def hidden_moments(hidden: Tensor) -> tuple[Tensor, Tensor]:
    """P(h_j = 1): (H,) and P(h_j = h_k = 1) for j < k: (H(H − 1)/2,) from draws (n, H)."""
    rows, cols = torch.triu_indices(hidden.shape[1], hidden.shape[1], offset=1)
    return hidden.mean(0), (hidden.T @ hidden / hidden.shape[0])[rows, cols]


@pytest.mark.parametrize(("v_dim", "h_dim"), [(6, 4), (3, 5)])
def test_transition_has_the_law_of_the_sweep_in_v(v_dim: int, h_dim: int) -> None:
    """One transition step from a fixed h against the explicit sweep v ~ N(b + β σ² W h, σ²),
    h′ ~ Bernoulli(sigmoid(β (c + Wᵀv))), 200k draws each: the marginals and the pairwise
    joints agree within 5 standard errors."""
    grbm = random_grbm(v_dim, h_dim, seed=5, weight_std=1.0)
    params = ais_params(grbm)
    generator = torch.Generator().manual_seed(3)
    n, beta = 200_000, 0.8
    start = (torch.arange(h_dim) % 3 != 1).to(torch.float64)  # 1, 0, 1, 1, 0, ...
    state = AISState(
        h=start.expand(n, h_dim).clone(), log_weights=torch.zeros(n, dtype=torch.float64), beta=0.5
    )
    new, _ = ais_transition(
        state,
        params=params,
        beta=beta,
        uniforms=torch.rand(n, h_dim, generator=generator, dtype=torch.float64),
        normals=torch.randn(n, params.noise_dim, generator=generator, dtype=torch.float64),
    )
    W, b, c = grbm.W.detach(), grbm.b.detach(), grbm.c.detach()
    std = grbm.log_std.detach().exp()
    noise = torch.randn(n, v_dim, generator=generator, dtype=torch.float64)
    v = b + std**2 * (beta * W @ start) + std * noise
    p_on = torch.sigmoid(beta * (c + v @ W))
    sweep = (torch.rand(n, h_dim, generator=generator, dtype=torch.float64) < p_on).double()

    for got, expected in zip(hidden_moments(new.h), hidden_moments(sweep), strict=True):
        std_err = torch.sqrt((got * (1 - got) + expected * (1 - expected)) / n)
        assert ((got - expected).abs() < 5 * std_err).all()
    # The test can fail: the noise of the logits moves the marginals, and it is correlated.
    marginals, pairs = hidden_moments(sweep)
    scaled = std[:, None] * W
    without_noise = torch.sigmoid(beta * (c + W.T @ b + beta * scaled.T @ (scaled @ start)))
    assert ((marginals - without_noise).abs() > 10 * 0.5 / math.sqrt(n)).any()
    rows, cols = torch.triu_indices(h_dim, h_dim, offset=1)
    assert ((pairs - marginals[rows] * marginals[cols]).abs() > 10 * 0.5 / math.sqrt(n)).any()


def test_init_draws_the_base_bernoulli() -> None:
    params = ais_params(random_grbm(3, 4, seed=2))
    n = 20_000
    state = ais_init(params, n_chains=n, generator=torch.Generator().manual_seed(4))
    assert state.beta == 0.0
    assert torch.equal(state.log_weights, torch.zeros(n, dtype=torch.float64))
    assert state.h.shape == (n, 4) and state.h.dtype == torch.float64
    assert ((state.h == 0) | (state.h == 1)).all()
    # Bernoulli(½), independent: 5 standard errors of P(h_j = 1) and of P(h_j = h_k = 1).
    marginals, pairs = hidden_moments(state.h)
    assert ((marginals - 0.5).abs() < 5 * 0.5 / math.sqrt(n)).all()
    assert ((pairs - 0.25).abs() < 5 * math.sqrt(0.25 * 0.75 / n)).all()


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
    # Without a generator every draw, the seed of the uniforms included, follows torch's.
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(ais_log_partition(grbm, n_chains=8, n_steps=5).log_weights)
    assert torch.equal(runs[0], runs[1])


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


def test_transition_refuses_bad_arguments() -> None:
    params = ais_params(random_grbm(3, 2, seed=0))  # H < D: noise_dim = 2
    state = ais_init(params, n_chains=4)
    u, z = torch.rand(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"uniforms must have shape \(4, 2\)"):
        ais_transition(state, params=params, beta=0.5, uniforms=u[:, :1], normals=z)
    with pytest.raises(ValueError, match=r"normals must have shape \(4, 2\)"):
        ais_transition(state, params=params, beta=0.5, uniforms=u, normals=z[:3])
    with pytest.raises(ValueError, match=r"state\.h must have shape \(\*, 2\)"):
        ais_transition(
            state._replace(h=state.h[:, :1]), params=params, beta=0.5, uniforms=u, normals=z
        )
    with pytest.raises(ValueError, match=r"state\.h must hold only 0 and 1"):
        ais_transition(state._replace(h=u), params=params, beta=0.5, uniforms=u, normals=z)
    with pytest.raises(TypeError, match="params must be AISParams"):
        ais_transition(state, params=tuple(params), beta=0.5, uniforms=u, normals=z)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta must be finite"):
        ais_transition(state, params=params, beta=math.nan, uniforms=u, normals=z)
    with pytest.raises(TypeError, match=r"normals must have dtype torch\.float64"):
        ais_transition(state, params=params, beta=0.5, uniforms=u, normals=z.float())
    with pytest.raises(TypeError, match=r"state\.h must have dtype torch\.float64"):
        ais_transition(
            state._replace(h=state.h.float()), params=params, beta=0.5, uniforms=u, normals=z
        )


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


@settings(max_examples=25, deadline=None)
@given(
    n_chains=st.integers(1, 20),
    v_dim=st.integers(1, 6),
    h_dim=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_transition_shapes_and_dtypes(
    n_chains: int, v_dim: int, h_dim: int, dtype: torch.dtype, seed: int
) -> None:
    params = ais_params(random_grbm(v_dim, h_dim, seed=seed, weight_std=1.0, dtype=dtype))
    assert isinstance(params, AISParams)
    assert params.noise_dim == min(v_dim, h_dim)
    generator = torch.Generator().manual_seed(seed)
    state = ais_init(params, n_chains=n_chains, generator=generator)
    new, info = ais_transition(
        state,
        params=params,
        beta=0.5,
        uniforms=torch.rand(n_chains, h_dim, generator=generator, dtype=dtype),
        normals=torch.randn(n_chains, params.noise_dim, generator=generator, dtype=dtype),
    )
    assert new.h.shape == (n_chains, h_dim) and new.h.dtype == dtype
    assert ((new.h == 0) | (new.h == 1)).all()
    assert new.log_weights.shape == info.log_weight_increment.shape == (n_chains,)
    assert new.log_weights.dtype == info.log_weight_increment.dtype == torch.float64
    assert torch.isfinite(new.log_weights).all()
