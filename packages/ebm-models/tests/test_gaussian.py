"""The Gaussian EBLVM against its generative form, Gaussian conditioning and quadrature."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from ebm_models import ExactGaussianPosterior, GaussianEBLVM

DTYPE = torch.float64


def random_model(v_dim: int = 3, h_dim: int = 4, seed: int = 0, scale: float = 0.8):
    generator = torch.Generator().manual_seed(seed)
    model = GaussianEBLVM(v_dim, h_dim, weight_std=scale, generator=generator).double()
    with torch.no_grad():
        model.b.copy_(torch.randn(v_dim, generator=generator, dtype=DTYPE))
        model.c.copy_(torch.randn(h_dim, generator=generator, dtype=DTYPE))
        model.log_std.copy_(0.3 * torch.randn(v_dim, generator=generator, dtype=DTYPE))
        model.h_log_std.copy_(0.3 * torch.randn(h_dim, generator=generator, dtype=DTYPE))
    return model


def generative_moments(model: GaussianEBLVM) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D + H,) and covariance of (v, h) from h ~ N(τ²(c + Wᵀb), τ²),
    v | h ~ N(b + σ² ⊙ Wh, σ²), written out without the model's own formulas."""
    W, b, c = model.W.detach(), model.b.detach(), model.c.detach()
    var_v, var_h = model.log_std.detach().exp() ** 2, model.h_log_std.detach().exp() ** 2
    mean_h = var_h * (c + W.T @ b)
    gain = var_v[:, None] * W  # v = b + gain h + noise
    mean_v = b + gain @ mean_h
    cov_hh = torch.diag(var_h)
    cov_vh = gain @ cov_hh
    cov_vv = torch.diag(var_v) + gain @ cov_hh @ gain.T
    mean = torch.cat([mean_v, mean_h])
    cov = torch.cat([torch.cat([cov_vv, cov_vh], 1), torch.cat([cov_vh.T, cov_hh], 1)], 0)
    return mean, cov


def test_energy_and_log_partition_give_the_joint_gaussian_density():
    model = random_model()
    mean, cov = generative_moments(model)
    g = torch.Generator().manual_seed(1)
    v, h = torch.randn(5, 3, generator=g, dtype=DTYPE), torch.randn(5, 4, generator=g, dtype=DTYPE)
    expected = MultivariateNormal(mean, cov).log_prob(torch.cat([v, h], -1))
    got = -model.energy(v, h) - model.log_partition()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_log_prob_and_score_equal_the_marginal_gaussian():
    model = random_model()
    mean, cov = generative_moments(model)
    marginal = MultivariateNormal(mean[:3], cov[:3, :3])
    v = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    torch.testing.assert_close(model.log_prob(v), marginal.log_prob(v), rtol=0, atol=1e-10)
    node = v.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(marginal.log_prob(node).sum(), node)
    torch.testing.assert_close(model.score(v), expected, rtol=0, atol=1e-10)


def test_score_is_the_gradient_of_minus_the_free_energy():
    model = random_model(seed=3)
    v = torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=DTYPE)
    node = v.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(-model.free_energy(node).sum(), node)
    torch.testing.assert_close(model.score(v), expected, rtol=0, atol=1e-10)


def test_posterior_equals_gaussian_conditioning():
    model = random_model(seed=5)
    mean, cov = generative_moments(model)
    v = torch.randn(3, 3, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    gain = cov[3:, :3] @ torch.linalg.inv(cov[:3, :3])
    expected_mean = mean[3:] + (v - mean[:3]) @ gain.T
    expected_cov = cov[3:, 3:] - gain @ cov[:3, 3:]
    torch.testing.assert_close(model.posterior_mean(v), expected_mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(model.posterior_cov(), expected_cov, rtol=0, atol=1e-10)
    posterior = model.exact_posterior()
    h = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
    reference = MultivariateNormal(expected_mean, expected_cov).log_prob(h)
    torch.testing.assert_close(posterior.log_prob(h, v), reference, rtol=0, atol=1e-10)


def grid(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    points = torch.linspace(lo, hi, n, dtype=DTYPE)
    return points, (hi - lo) / (n - 1)


def test_log_partition_equals_two_dimensional_quadrature():
    model = random_model(v_dim=1, h_dim=1, seed=8, scale=1.5)
    mean, cov = generative_moments(model)
    spread = 12 * cov.diagonal().max().sqrt().item()
    vs, dv = grid(mean[0].item() - spread, mean[0].item() + spread, 1501)
    hs, dh = grid(mean[1].item() - spread, mean[1].item() + spread, 1501)
    # v as the batch, h as one sample per grid row: energy (n_h, n_v).
    energies = model.energy(vs[:, None], hs[:, None, None].expand(-1, len(vs), 1))
    log_z = torch.logsumexp(-energies.flatten(), 0) + math.log(dv * dh)
    torch.testing.assert_close(model.log_partition().detach(), log_z, rtol=0, atol=1e-8)


def test_free_energy_equals_quadrature_over_h():
    model = random_model(v_dim=2, h_dim=1, seed=9)
    v = torch.randn(3, 2, generator=torch.Generator().manual_seed(10), dtype=DTYPE)
    centre = model.posterior_mean(v).detach()
    spread = 12 * model.posterior_cov().detach().sqrt().item()
    offsets, dh = grid(-spread, spread, 4001)
    h = centre[None] + offsets[:, None, None]  # (n, B, 1)
    expected = -(torch.logsumexp(-model.energy(v, h), 0) + math.log(dh))
    torch.testing.assert_close(model.free_energy(v).detach(), expected, rtol=0, atol=1e-9)


def test_posterior_draws_have_the_posterior_moments():
    model = random_model(seed=11)
    v = torch.randn(2, 3, generator=torch.Generator().manual_seed(12), dtype=DTYPE)
    n = 40000
    draws = model.exact_posterior().rsample(v, n, generator=torch.Generator().manual_seed(13))
    assert draws.shape == (n, 2, 4)
    cov = model.posterior_cov().detach()
    # Each coordinate's sample mean has standard error sqrt(var / n); 5 of them bound it.
    bound = 5 * (cov.diagonal() / n).sqrt()
    assert ((draws.mean(0) - model.posterior_mean(v).detach()).abs() <= bound).all()
    centred = draws[:, 0] - draws[:, 0].mean(0)
    sample_cov = centred.T @ centred / (n - 1)
    # Var of a sample covariance entry is (Σ_ii Σ_jj + Σ_ij²)/n.
    cov_bound = 5 * ((torch.outer(cov.diagonal(), cov.diagonal()) + cov.square()) / n).sqrt()
    assert ((sample_cov - cov).abs() <= cov_bound).all()


def test_posterior_draws_are_differentiable_in_the_parameters():
    model = random_model(seed=14)
    v = torch.randn(2, 3, generator=torch.Generator().manual_seed(15), dtype=DTYPE)
    draws = model.exact_posterior().rsample(v, 3, generator=torch.Generator().manual_seed(16))
    grads = torch.autograd.grad(draws.sum(), [model.W, model.c, model.h_log_std])
    assert all(bool(g.abs().sum() > 0) for g in grads)


def test_samples_have_the_marginal_moments():
    model = random_model(seed=17)
    mean, cov = generative_moments(model)
    n = 40000
    v = model.sample(n, generator=torch.Generator().manual_seed(18))
    assert v.shape == (n, 3)
    bound = 5 * (cov[:3, :3].diagonal() / n).sqrt()
    assert ((v.mean(0) - mean[:3]).abs() <= bound).all()


def test_any_parameters_give_a_proper_distribution():
    model = random_model(v_dim=5, h_dim=6, seed=19, scale=30.0)
    _, cov = generative_moments(model)
    precision = torch.linalg.inv(cov)
    assert bool(torch.linalg.eigvalsh(precision).min() > 0)
    assert bool(torch.isfinite(model.log_partition()))
    assert bool(torch.isfinite(model.free_energy(torch.zeros(1, 5, dtype=DTYPE))).all())


@settings(max_examples=25, deadline=None)
@given(
    v_dim=st.integers(1, 5),
    h_dim=st.integers(1, 6),
    batch=st.integers(1, 4),
    n=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shapes_and_finiteness(v_dim, h_dim, batch, n, dtype):
    generator = torch.Generator().manual_seed(v_dim * 31 + h_dim)
    model = GaussianEBLVM(v_dim, h_dim, weight_std=0.5, generator=generator).to(dtype)
    v = torch.randn(batch, v_dim, generator=generator, dtype=dtype)
    posterior = model.exact_posterior()
    assert isinstance(posterior, ExactGaussianPosterior)
    h = posterior.rsample(v, n, generator=generator)
    outputs = {
        "energy": (model.energy(v, h), (n, batch)),
        "free_energy": (model.free_energy(v), (batch,)),
        "score": (model.score(v), (batch, v_dim)),
        "posterior_mean": (model.posterior_mean(v), (batch, h_dim)),
        "posterior_cov": (model.posterior_cov(), (h_dim, h_dim)),
        "log_partition": (model.log_partition(), ()),
        "draws": (h, (n, batch, h_dim)),
        "log_prob": (posterior.log_prob(h, v), (n, batch)),
        "sample": (model.sample(n, generator=generator), (n, v_dim)),
    }
    for name, (value, shape) in outputs.items():
        assert value.shape == shape, name
        assert value.dtype == dtype, name
        assert bool(torch.isfinite(value).all()), name


@pytest.mark.parametrize(
    ("v", "error", "match"),
    [
        (torch.zeros(2, 4, dtype=DTYPE), ValueError, r"v must have shape \(B, 3\)"),
        (torch.zeros(3, dtype=DTYPE), ValueError, r"v must have shape \(B, 3\)"),
        (torch.zeros(2, 3, dtype=torch.long), TypeError, "floating-point"),
        (torch.full((2, 3), math.nan, dtype=DTYPE), ValueError, "non-finite"),
        ([[0.0, 0.0, 0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_visible_input_is_refused(v, error, match):
    model = random_model()
    for method in (model.score, model.free_energy, model.posterior_mean):
        with pytest.raises(error, match=match):
            method(v)
    with pytest.raises(error, match=match):
        model.exact_posterior().rsample(v, 2)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="v_dim"):
        GaussianEBLVM(0, 2)
    with pytest.raises(ValueError, match="h_dim"):
        GaussianEBLVM(2, 1.5)  # type: ignore[arg-type]
    model = random_model()
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0)
    v = torch.zeros(2, 3, dtype=DTYPE)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.exact_posterior().rsample(v, 0)
    with pytest.raises(ValueError, match=r"h must have shape \(n, 2, 4\)"):
        model.exact_posterior().log_prob(torch.zeros(1, 2, 5, dtype=DTYPE), v)
