"""Closed-form VaES/VaGES expectations against autograd of the exact score (q = p) and
against Monte Carlo runs of score_estimators.VaGES (q ≠ p); the sweep and its report."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from eblvm_eval.bias import (
    BiasRow,
    fit_bias_slopes,
    gaussian_bias_sweep,
    gaussian_vaes_expectation,
    gaussian_vages_expectation,
    grbm_bias_sweep,
    grbm_vaes_expectation,
    grbm_vages_expectation,
    score_jacobian,
)
from ebm_models import GRBM, GaussianEBLVM
from score_estimators import BernoulliPosterior, VaGES

DTYPE = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are small: extra threads only add synchronisation."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_grbm(v_dim: int = 3, h_dim: int = 4, seed: int = 0) -> GRBM:
    g = seeded(seed)
    model = GRBM(v_dim, h_dim, weight_std=0.8, generator=g).double()
    with torch.no_grad():
        model.b.copy_(torch.randn(v_dim, generator=g, dtype=DTYPE))
        model.c.copy_(torch.randn(h_dim, generator=g, dtype=DTYPE))
        model.log_std.copy_(0.3 * torch.randn(v_dim, generator=g, dtype=DTYPE))
    return model


def random_gaussian(v_dim: int = 3, h_dim: int = 4, seed: int = 0) -> GaussianEBLVM:
    g = seeded(seed)
    model = GaussianEBLVM(v_dim, h_dim, weight_std=0.6, generator=g).double()
    with torch.no_grad():
        model.b.copy_(torch.randn(v_dim, generator=g, dtype=DTYPE))
        model.c.copy_(torch.randn(h_dim, generator=g, dtype=DTYPE))
        model.log_std.copy_(0.3 * torch.randn(v_dim, generator=g, dtype=DTYPE))
        model.h_log_std.copy_(0.3 * torch.randn(h_dim, generator=g, dtype=DTYPE))
    return model


def test_closed_forms_at_the_exact_posterior_equal_autograd_of_the_exact_score():
    grbm = random_grbm()
    v = torch.randn(3, generator=seeded(1), dtype=DTYPE)
    probs = grbm.posterior_probs(v[None])[0].detach()
    torch.testing.assert_close(
        grbm_vaes_expectation(grbm, v, q_probs=probs), grbm.score(v[None])[0].detach()
    )
    exact = score_jacobian(grbm, v)
    assert exact.shape == (3, sum(p.numel() for p in grbm.parameters()))
    torch.testing.assert_close(grbm_vages_expectation(grbm, v, q_probs=probs), exact)

    model = random_gaussian()
    mean, cov = model.posterior_mean(v[None])[0].detach(), model.posterior_cov().detach()
    torch.testing.assert_close(
        gaussian_vaes_expectation(model, v, q_mean=mean), model.score(v[None])[0].detach()
    )
    exact = score_jacobian(model, v)
    assert exact.shape == (3, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(
        gaussian_vages_expectation(model, v, q_mean=mean, q_cov=cov), exact, rtol=1e-9, atol=1e-10
    )


class FixedGaussian:
    """q(h | v) = N(mean, cov) for every v: draws (n, B, H)."""

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        self.mean, self.factor = mean, torch.linalg.cholesky(cov)

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(n, len(v), len(self.mean), generator=generator, dtype=v.dtype)
        return self.mean + eps @ self.factor.T

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        raise NotImplementedError


def monte_carlo_vages(model: nn.Module, posterior, v: Tensor, direction: Tensor, seed: int):
    """gᵀ(VaGES θ-Jacobian) averaged over many independent L = 2 estimates: the batch holds
    copies of v, each with its own draws. Returns the mean over 20 chunks and its standard
    error, both (P,), and the mean VaES value (D,)."""
    g = seeded(seed)
    batch = v.expand(2000, -1).contiguous()
    params = list(model.parameters())
    grads, values = [], []
    for _ in range(20):
        score = VaGES(2)(model, posterior, batch, generator=g)
        flat = torch.autograd.grad((score @ direction).mean(), params)
        grads.append(torch.cat([x.flatten() for x in flat]))
        values.append(score.detach().mean(0))
    stacked = torch.stack(grads)
    return stacked.mean(0), stacked.std(0) / math.sqrt(len(stacked)), torch.stack(values).mean(0)


def test_grbm_vages_expectation_equals_monte_carlo_vages_away_from_the_posterior():
    grbm = random_grbm(seed=2)
    v = torch.randn(3, generator=seeded(3), dtype=DTYPE)
    layer = nn.Linear(3, 4).double()
    with torch.no_grad():
        layer.weight.copy_(grbm.W.T + 0.7 * torch.randn(4, 3, generator=seeded(4), dtype=DTYPE))
        layer.bias.copy_(grbm.c + 0.7 * torch.randn(4, generator=seeded(5), dtype=DTYPE))
    posterior = BernoulliPosterior(layer, temperature=None)
    probs = torch.sigmoid(layer(v)).detach()
    direction = torch.tensor([0.5, -1.0, 2.0], dtype=DTYPE)
    mean, stderr, value = monte_carlo_vages(grbm, posterior, v, direction, seed=6)
    closed = direction @ grbm_vages_expectation(grbm, v, q_probs=probs)
    assert bool(((mean - closed).abs() <= 5 * stderr + 1e-12).all())
    # The check separates q from p: the exact Jacobian is many standard errors away.
    exact = direction @ score_jacobian(grbm, v)
    assert float(((exact - closed).abs() / (stderr + 1e-12)).max()) > 20
    expected_value = grbm_vaes_expectation(grbm, v, q_probs=probs)
    assert float((value - expected_value).abs().max()) < 0.02


def test_gaussian_vages_expectation_equals_monte_carlo_vages_away_from_the_posterior():
    model = random_gaussian(seed=7)
    v = torch.randn(3, generator=seeded(8), dtype=DTYPE)
    g = seeded(9)
    mean = model.posterior_mean(v[None])[0].detach() + 0.5 * torch.randn(
        4, generator=g, dtype=DTYPE
    )
    factor = torch.linalg.cholesky(model.posterior_cov().detach())
    factor = factor + 0.3 * torch.tril(torch.randn(4, 4, generator=g, dtype=DTYPE))
    cov = factor @ factor.T + 0.05 * torch.eye(4, dtype=DTYPE)
    direction = torch.tensor([1.0, 0.3, -0.8], dtype=DTYPE)
    mc_mean, stderr, value = monte_carlo_vages(model, FixedGaussian(mean, cov), v, direction, 10)
    closed = direction @ gaussian_vages_expectation(model, v, q_mean=mean, q_cov=cov)
    assert bool(((mc_mean - closed).abs() <= 5 * stderr + 1e-12).all())
    exact = direction @ score_jacobian(model, v)
    assert float(((exact - closed).abs() / (stderr + 1e-12)).max()) > 20
    expected_value = gaussian_vaes_expectation(model, v, q_mean=mean)
    assert float((value - expected_value).abs().max()) < 0.02


def test_sweeps_start_at_zero_and_bias_scales_with_the_root_divergence():
    grbm, gaussian = random_grbm(5, 8, seed=11), random_gaussian(5, 8, seed=12)
    v = torch.randn(5, generator=seeded(13), dtype=DTYPE)
    levels = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
    rows = grbm_bias_sweep(grbm, v, noise_levels=levels, generator=seeded(14))
    rows += gaussian_bias_sweep(gaussian, v, noise_levels=levels, generator=seeded(15))
    assert [(r.model, r.divergence_name) for r in rows] == [("grbm", "kl")] * 5 + [
        ("gaussian", name) for _ in levels for name in ("fisher", "kl")
    ]
    for row in rows:
        if row.noise == 0:
            assert abs(row.divergence) < 1e-12 and row.bias_vaes < 1e-10 and row.bias_vages < 1e-10
        else:
            assert row.divergence > 0 and row.bias_vaes > 0 and row.bias_vages > 0
    fits = fit_bias_slopes(rows)
    assert len(fits) == 6
    for fit in fits:
        assert fit.n_points == 4
        assert 0.9 < fit.slope < 1.1, fit
        assert fit.max_ratio < 100


def test_fit_recovers_a_known_power_law():
    rows = [
        BiasRow("m", "kl", x, x, 3.0 * x**0.75, 0.5 * math.sqrt(x)) for x in (1e-4, 1e-2, 1.0, 4.0)
    ]
    rows.append(BiasRow("m", "kl", 0.0, 0.0, 0.0, 0.0))
    vaes, vages = fit_bias_slopes(rows)
    assert math.isclose(vaes.slope, 1.5, rel_tol=1e-9)
    assert math.isclose(vaes.intercept, math.log(3.0), rel_tol=1e-9)
    assert math.isclose(vaes.max_ratio, 3.0 * 4.0**0.75 / 2.0, rel_tol=1e-9)
    assert math.isclose(vages.slope, 1.0, rel_tol=1e-9) and vages.n_points == 4


@settings(max_examples=20, deadline=None)
@given(
    v_dim=st.integers(1, 4),
    h_dim=st.integers(1, 5),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shapes_and_finiteness(v_dim, h_dim, dtype):
    g = seeded(v_dim * 17 + h_dim)
    grbm = GRBM(v_dim, h_dim, weight_std=0.5, generator=g).to(dtype)
    gaussian = GaussianEBLVM(v_dim, h_dim, weight_std=0.5, generator=g).to(dtype)
    v = torch.randn(v_dim, generator=g).to(dtype)
    probs = torch.rand(h_dim, generator=g).to(dtype)
    mean, cov = torch.randn(h_dim, generator=g).to(dtype), torch.eye(h_dim, dtype=dtype)
    n_grbm = sum(p.numel() for p in grbm.parameters())
    n_gaussian = sum(p.numel() for p in gaussian.parameters())
    outputs = [
        (grbm_vaes_expectation(grbm, v, q_probs=probs), (v_dim,)),
        (grbm_vages_expectation(grbm, v, q_probs=probs), (v_dim, n_grbm)),
        (gaussian_vaes_expectation(gaussian, v, q_mean=mean), (v_dim,)),
        (gaussian_vages_expectation(gaussian, v, q_mean=mean, q_cov=cov), (v_dim, n_gaussian)),
        (score_jacobian(grbm, v), (v_dim, n_grbm)),
    ]
    for value, shape in outputs:
        assert value.shape == shape and value.dtype == dtype
        assert bool(torch.isfinite(value).all())
    rows = grbm_bias_sweep(grbm, v, noise_levels=[0.1], generator=g)
    rows += gaussian_bias_sweep(gaussian, v, noise_levels=[0.01], generator=g)
    assert len(rows) == 3 and all(math.isfinite(x) for r in rows for x in r[2:])


def test_bad_input_is_refused(tmp_path):
    grbm, gaussian = random_grbm(), random_gaussian()
    v = torch.zeros(3, dtype=DTYPE)
    probs = torch.full((4,), 0.5, dtype=DTYPE)
    with pytest.raises(ValueError, match=r"v must have shape \(3,\)"):
        grbm_vaes_expectation(grbm, torch.zeros(1, 3, dtype=DTYPE), q_probs=probs)
    with pytest.raises(TypeError, match="v must have the model's dtype"):
        grbm_vages_expectation(grbm, v.float(), q_probs=probs)
    with pytest.raises(ValueError, match=r"q_probs must have shape \(4,\)"):
        grbm_vages_expectation(grbm, v, q_probs=torch.zeros(5, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"q_cov must have shape \(4, 4\)"):
        gaussian_vages_expectation(
            gaussian, v, q_mean=torch.zeros(4, dtype=DTYPE), q_cov=torch.eye(3, dtype=DTYPE)
        )
    with pytest.raises(ValueError, match="v contains non-finite"):
        gaussian_vaes_expectation(
            gaussian, torch.full((3,), math.inf, dtype=DTYPE), q_mean=torch.zeros(4, dtype=DTYPE)
        )
    for levels in ([], [-0.1], [math.nan], "0.1"):
        with pytest.raises(ValueError, match="noise_levels must be"):
            grbm_bias_sweep(grbm, v, noise_levels=levels)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="score"):
        score_jacobian(nn.Linear(3, 3), v)
    with pytest.raises(ValueError, match="rows must be a non-empty"):
        fit_bias_slopes([])
    with pytest.raises(TypeError, match="rows must hold BiasRow"):
        fit_bias_slopes([("grbm", "kl", 0.1, 0.1, 0.1, 0.1)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="needs two rows"):
        fit_bias_slopes([BiasRow("grbm", "kl", 0.1, 0.1, 0.1, 0.1)])
    assert not any(tmp_path.iterdir())
