"""Exact posterior divergences against enumeration, torch.distributions, quadrature and
Monte Carlo."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, kl_divergence

from eblvm_eval.divergences import bernoulli_kl, gaussian_fisher, gaussian_kl

DTYPE = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_spd(h_dim: int, generator: torch.Generator, *, batch: tuple[int, ...] = ()):
    factor = torch.randn(*batch, h_dim, h_dim, generator=generator, dtype=DTYPE)
    return factor @ factor.transpose(-1, -2) / h_dim + 0.3 * torch.eye(h_dim, dtype=DTYPE)


def test_bernoulli_kl_equals_enumeration_over_h():
    g = seeded(0)
    q_logits, p_logits = (2 * torch.randn(3, 4, generator=g, dtype=DTYPE) for _ in range(2))
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=DTYPE)

    def log_mass(logits: torch.Tensor) -> torch.Tensor:  # (2^H, B)
        return (states[:, None] * torch.nn.functional.logsigmoid(logits)).sum(-1) + (
            (1 - states[:, None]) * torch.nn.functional.logsigmoid(-logits)
        ).sum(-1)

    log_q, log_p = log_mass(q_logits), log_mass(p_logits)
    expected = (log_q.exp() * (log_q - log_p)).sum(0)
    got = bernoulli_kl(q_logits=q_logits, p_logits=p_logits)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_bernoulli_kl_is_zero_at_equality_and_exact_when_saturated():
    logits = torch.tensor([[-60.0, 0.3, 60.0]], dtype=DTYPE)
    assert bernoulli_kl(q_logits=logits, p_logits=logits).item() == 0.0
    # q(h = 1) = sigmoid(40) against p(h = 1) = sigmoid(−40): KL = (1 − 2e)·40 with
    # e = sigmoid(−40) ≈ 4.2e-18 (the log-odds differ by 40 on either outcome).
    got = bernoulli_kl(
        q_logits=torch.tensor([40.0], dtype=DTYPE), p_logits=torch.tensor([-40.0], dtype=DTYPE)
    )
    assert math.isclose(got.item(), 40.0, rel_tol=1e-12)


def test_gaussian_kl_equals_torch_distributions():
    g = seeded(1)
    q_mean, p_mean = torch.randn(4, 5, generator=g, dtype=DTYPE), torch.randn(5, dtype=DTYPE)
    q_cov, p_cov = random_spd(5, g, batch=(4,)), random_spd(5, g)
    expected = kl_divergence(MultivariateNormal(q_mean, q_cov), MultivariateNormal(p_mean, p_cov))
    got = gaussian_kl(q_mean=q_mean, q_cov=q_cov, p_mean=p_mean, p_cov=p_cov)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_gaussian_fisher_equals_monte_carlo_of_the_definition():
    g = seeded(2)
    q_mean, p_mean = (
        torch.randn(3, generator=g, dtype=DTYPE),
        torch.randn(3, generator=g, dtype=DTYPE),
    )
    q_cov, p_cov = random_spd(3, g), random_spd(3, g)
    q, p = MultivariateNormal(q_mean, q_cov), MultivariateNormal(p_mean, p_cov)
    h = q.sample((200000,)).requires_grad_(True)
    (grad_q,) = torch.autograd.grad(q.log_prob(h).sum(), h)
    (grad_p,) = torch.autograd.grad(p.log_prob(h).sum(), h)
    values = 0.5 * (grad_q - grad_p).square().sum(-1)
    got = gaussian_fisher(q_mean=q_mean, q_cov=q_cov, p_mean=p_mean, p_cov=p_cov)
    # Five standard errors of the Monte Carlo mean.
    assert abs(got.item() - values.mean().item()) < 5 * values.std().item() / math.sqrt(len(h))


def test_gaussian_fisher_equals_quadrature_in_one_dimension():
    q_mean, q_var, p_mean, p_var = 0.4, 0.7, -0.3, 1.6
    h = torch.linspace(q_mean - 15, q_mean + 15, 200001, dtype=DTYPE)
    density = torch.exp(-0.5 * (h - q_mean) ** 2 / q_var) / math.sqrt(2 * math.pi * q_var)
    integrand = density * 0.5 * (-(h - q_mean) / q_var + (h - p_mean) / p_var) ** 2
    expected = torch.trapezoid(integrand, h)
    got = gaussian_fisher(
        q_mean=torch.tensor([q_mean], dtype=DTYPE),
        q_cov=torch.tensor([[q_var]], dtype=DTYPE),
        p_mean=torch.tensor([p_mean], dtype=DTYPE),
        p_cov=torch.tensor([[p_var]], dtype=DTYPE),
    )
    torch.testing.assert_close(got, expected.reshape(1)[0], rtol=1e-9, atol=0)


def test_gaussian_divergences_vanish_at_equality_and_broadcast_like_a_loop():
    g = seeded(3)
    means, cov = torch.randn(4, 3, generator=g, dtype=DTYPE), random_spd(3, g)
    p_mean, p_cov = torch.randn(3, generator=g, dtype=DTYPE), random_spd(3, g)
    for divergence in (gaussian_kl, gaussian_fisher):
        same = divergence(q_mean=means, q_cov=cov, p_mean=means, p_cov=cov)
        torch.testing.assert_close(same, torch.zeros(4, dtype=DTYPE), rtol=0, atol=1e-12)
        batched = divergence(q_mean=means, q_cov=cov, p_mean=p_mean, p_cov=p_cov)
        looped = torch.stack(
            [divergence(q_mean=m, q_cov=cov, p_mean=p_mean, p_cov=p_cov) for m in means]
        )
        torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)
        assert bool((batched > 0).all())


@settings(max_examples=25, deadline=None)
@given(
    h_dim=st.integers(1, 6),
    batch=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_shapes_and_finiteness(h_dim, batch, dtype, seed):
    g = seeded(seed)
    q_logits = 3 * torch.randn(*batch, h_dim, generator=g).to(dtype)
    p_logits = 3 * torch.randn(h_dim, generator=g).to(dtype)
    kl = bernoulli_kl(q_logits=q_logits, p_logits=p_logits)
    assert kl.shape == batch and kl.dtype == dtype
    assert bool(torch.isfinite(kl).all()) and bool((kl >= -1e-5).all())
    q_mean = torch.randn(*batch, h_dim, generator=g).to(dtype)
    p_mean = torch.randn(h_dim, generator=g).to(dtype)
    q_cov, p_cov = random_spd(h_dim, g, batch=batch).to(dtype), random_spd(h_dim, g).to(dtype)
    for divergence in (gaussian_kl, gaussian_fisher):
        value = divergence(q_mean=q_mean, q_cov=q_cov, p_mean=p_mean, p_cov=p_cov)
        assert value.shape == batch and value.dtype == dtype
        assert bool(torch.isfinite(value).all()) and bool((value >= -1e-4).all())


def test_bad_input_is_refused():
    ok = torch.zeros(3, dtype=DTYPE)
    with pytest.raises(TypeError, match=r"q_logits must be a torch\.Tensor"):
        bernoulli_kl(q_logits=[0.0], p_logits=ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="p_logits must be a floating-point"):
        bernoulli_kl(q_logits=ok, p_logits=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="same last dimension"):
        bernoulli_kl(q_logits=ok, p_logits=torch.zeros(4, dtype=DTYPE))
    with pytest.raises(ValueError, match="q_logits contains non-finite"):
        bernoulli_kl(q_logits=torch.full((3,), math.nan, dtype=DTYPE), p_logits=ok)
    with pytest.raises(TypeError, match="share a dtype"):
        bernoulli_kl(q_logits=ok, p_logits=ok.float())
    eye = torch.eye(3, dtype=DTYPE)
    not_spd = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=DTYPE))
    for divergence in (gaussian_kl, gaussian_fisher):
        with pytest.raises(ValueError, match="q_cov must be symmetric positive definite"):
            divergence(q_mean=ok, q_cov=not_spd, p_mean=ok, p_cov=eye)
        with pytest.raises(ValueError, match=r"p_cov must have shape \(\.\.\., H, H\)"):
            divergence(q_mean=ok, q_cov=eye, p_mean=ok, p_cov=ok)
        with pytest.raises(ValueError, match="p_cov must be square"):
            divergence(q_mean=ok, q_cov=eye, p_mean=ok, p_cov=torch.zeros(2, 3, dtype=DTYPE))
        with pytest.raises(ValueError, match="same last dimension"):
            divergence(q_mean=ok, q_cov=torch.eye(2, dtype=DTYPE), p_mean=ok, p_cov=eye)
