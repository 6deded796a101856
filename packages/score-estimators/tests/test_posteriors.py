"""Posteriors against torch.distributions and their own definitions."""

from __future__ import annotations

import pytest
import torch
from exact_models import DTYPE
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from score_estimators import BernoulliPosterior, GaussianPosterior, Posterior


class MeanLogStd(nn.Module):
    def __init__(self, v_dim: int, h_dim: int) -> None:
        super().__init__()
        self.mean = nn.Linear(v_dim, h_dim)
        self.log_std = nn.Linear(v_dim, h_dim)

    def forward(self, v):
        return self.mean(v), self.log_std(v)


def test_posteriors_follow_the_contract():
    assert isinstance(BernoulliPosterior(nn.Linear(3, 2)), Posterior)
    assert isinstance(GaussianPosterior(MeanLogStd(3, 2)), Posterior)


def test_bernoulli_log_prob_matches_torch_on_binary_draws():
    posterior = BernoulliPosterior(nn.Linear(3, 4).double(), temperature=None)
    v = torch.randn(5, 3, dtype=DTYPE)
    h = posterior.rsample(v, 7, generator=torch.Generator().manual_seed(0))
    assert set(h.unique().tolist()) <= {0.0, 1.0}
    expected = torch.distributions.Bernoulli(logits=posterior.logits(v)).log_prob(h).sum(-1)
    torch.testing.assert_close(posterior.log_prob(h, v), expected)


def test_relaxed_bernoulli_draws_have_the_bernoulli_mean_and_are_reparameterised():
    net = nn.Linear(2, 3).double()
    posterior = BernoulliPosterior(net, temperature=0.1)
    v = torch.randn(4, 2, dtype=DTYPE)
    h = posterior.rsample(v, 20000, generator=torch.Generator().manual_seed(1))
    assert ((h >= 0) & (h <= 1)).all()
    assert ((h > 0.01) & (h < 0.99)).any()
    # Binary Concrete: P(h > 1/2) = sigmoid(logit) exactly; the mean is close to it at
    # temperature 0.1. Standard error of a mean of 20000 draws in [0, 1] < 0.004.
    probs = torch.sigmoid(posterior.logits(v)).detach()
    torch.testing.assert_close((h > 0.5).double().mean(0), probs, rtol=0, atol=0.015)
    h.sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_gaussian_posterior_matches_torch_normal():
    posterior = GaussianPosterior(MeanLogStd(3, 2).double())
    v = torch.randn(6, 3, dtype=DTYPE)
    h = posterior.rsample(v, 4, generator=torch.Generator().manual_seed(2))
    mean, log_std = posterior.mean_and_log_std(v)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(h).sum(-1)
    torch.testing.assert_close(posterior.log_prob(h, v), expected)


@pytest.mark.parametrize(
    "posterior",
    [
        BernoulliPosterior(nn.Linear(3, 4).double(), temperature=0.1),
        BernoulliPosterior(nn.Linear(3, 4).double(), temperature=None),
        GaussianPosterior(MeanLogStd(3, 4).double()),
    ],
)
def test_rsample_and_log_prob_equals_the_two_calls(posterior):
    v = torch.randn(5, 3, dtype=DTYPE)
    h, log_q = posterior.rsample_and_log_prob(v, 6, generator=torch.Generator().manual_seed(2))
    expected = posterior.rsample(v, 6, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(h, expected, rtol=0, atol=0)
    torch.testing.assert_close(log_q, posterior.log_prob(expected, v), rtol=0, atol=1e-12)
    assert h.shape == (6, 5, 4) and log_q.shape == (6, 5)


def test_v_that_does_not_fit_the_network_is_refused():
    posterior = BernoulliPosterior(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="v of shape"):
        posterior.rsample(torch.randn(5, 4), 2)


def test_draws_of_the_wrong_shape_are_refused():
    posterior = GaussianPosterior(MeanLogStd(3, 2))
    with pytest.raises(ValueError, match="h must have shape"):
        posterior.log_prob(torch.randn(2, 5, 3), torch.randn(5, 3))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf")])
def test_bad_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match="temperature"):
        BernoulliPosterior(nn.Linear(2, 2), temperature=temperature)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 6),
    v_dim=st.integers(1, 5),
    h_dim=st.integers(1, 5),
    n=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    temperature=st.sampled_from([None, 0.1, 1.0]),
)
def test_shapes_and_finiteness(batch, v_dim, h_dim, n, dtype, temperature):
    v = torch.randn(batch, v_dim, dtype=dtype)
    for posterior in (
        BernoulliPosterior(nn.Linear(v_dim, h_dim).to(dtype), temperature=temperature),
        GaussianPosterior(MeanLogStd(v_dim, h_dim).to(dtype)),
    ):
        h = posterior.rsample(v, n)
        assert h.shape == (n, batch, h_dim) and h.dtype == dtype
        log_prob = posterior.log_prob(h, v)
        assert log_prob.shape == (n, batch)
        assert torch.isfinite(log_prob).all()
