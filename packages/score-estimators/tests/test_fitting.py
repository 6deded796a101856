"""Posterior fitting: the losses vanish or are minimised at the exact posterior."""

from __future__ import annotations

import math

import pytest
import torch
from exact_models import DTYPE, BinaryLatentEnergy, GaussianLatentEnergy, LinearGaussianNet
from torch import nn

from score_estimators import (
    BernoulliPosterior,
    GaussianPosterior,
    fisher_loss,
    fit_posterior,
    fit_steps,
    kl_loss,
)


def exact_gaussian_posterior(model: GaussianLatentEnergy) -> GaussianPosterior:
    net = LinearGaussianNet(len(model.u))
    with torch.no_grad():
        net.m.copy_(model.posterior_mean_weight())
        net.log_std.copy_(model.posterior_log_std())
    return GaussianPosterior(net)


def test_fisher_loss_is_zero_at_the_exact_gaussian_posterior():
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(8, 3, dtype=DTYPE)
    loss = fisher_loss(model, exact_gaussian_posterior(model), v, n_samples=5)
    assert loss.item() < 1e-20


def test_kl_loss_is_minimised_at_the_exact_gaussian_posterior():
    """E_q[E + log q] = KL(q ‖ p(h|v)) − log p(v) + log Z: at q = p it is the same for
    every draw, so its variance vanishes, and any other q is larger on average."""
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(8, 3, dtype=DTYPE)
    exact = exact_gaussian_posterior(model)
    draws = torch.stack([kl_loss(model, exact, v, n_samples=1) for _ in range(5)])
    assert draws.std().item() < 1e-12
    worse = exact_gaussian_posterior(model)
    with torch.no_grad():
        worse.net.log_std.add_(0.5)
    assert kl_loss(model, worse, v, n_samples=4000).item() > draws[0].item() + 0.1


def test_fit_posterior_reaches_the_gaussian_posterior_and_leaves_theta_alone():
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    posterior = GaussianPosterior(LinearGaussianNet(3))
    optimizer = torch.optim.Adam(posterior.parameters(), lr=0.05)
    fit_posterior(model, posterior, v, optimizer, steps=400, loss=fisher_loss, n_samples=4)
    torch.testing.assert_close(
        posterior.net.m.detach(), model.posterior_mean_weight().detach(), rtol=0, atol=0.02
    )
    torch.testing.assert_close(
        posterior.net.log_std.detach(), model.posterior_log_std().detach(), rtol=0, atol=0.02
    )
    assert model.u.grad is None


def test_fit_posterior_with_kl_moves_bernoulli_q_to_the_binary_posterior():
    model = BinaryLatentEnergy(3, 4, scale=1.0, seed=0)
    v = torch.randn(32, 3, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    net = nn.Linear(3, 4).double()
    posterior = BernoulliPosterior(net, temperature=0.1)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    exact = torch.sigmoid(model.logits(v)).detach()

    def gap() -> float:
        return (torch.sigmoid(posterior.logits(v)) - exact).abs().mean().item()

    before = gap()
    fit_posterior(
        model,
        posterior,
        v,
        optimizer,
        steps=300,
        n_samples=16,
        generator=torch.Generator().manual_seed(1),
    )
    # The relaxation at temperature 0.1 biases the fit slightly; the gap still closes.
    assert gap() < 0.05 < before


def test_fit_posterior_refuses_a_posterior_without_parameters():
    model = GaussianLatentEnergy(3, seed=0)
    posterior = GaussianPosterior(lambda v: (v[:, :1], v[:, :1]))  # type: ignore[arg-type]
    with pytest.raises((ValueError, TypeError)):
        fit_posterior(
            model,
            posterior,
            torch.randn(4, 3, dtype=DTYPE),
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
        )


def test_fisher_loss_weights_each_example():
    model = GaussianLatentEnergy(3, seed=0)
    posterior = GaussianPosterior(LinearGaussianNet(3))
    v = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    weights = torch.tensor([0.5, 2.0, 0.0, 1.5], dtype=DTYPE)

    def loss(**kwargs):
        generator = torch.Generator().manual_seed(2)
        return fisher_loss(model, posterior, v, n_samples=3, generator=generator, **kwargs)

    torch.testing.assert_close(loss(sample_weights=torch.ones(4, dtype=DTYPE)), loss())
    per_example = []
    for b in range(4):  # the same draws, one example at a time
        draws = posterior.rsample(v, 3, generator=torch.Generator().manual_seed(2))
        h = draws[:, b : b + 1].detach()
        h.requires_grad_(True)
        x = v[b : b + 1]
        log_ratio = posterior.log_prob(h, x) + model(x, h)
        (grad,) = torch.autograd.grad(log_ratio.sum(), h)
        per_example.append(grad.square().sum(-1).mean())
    expected = (weights * torch.stack(per_example)).mean()
    torch.testing.assert_close(loss(sample_weights=weights), expected)
    for bad in (torch.ones(3, dtype=DTYPE), -weights, weights * math.inf):
        with pytest.raises(ValueError, match="sample_weights"):
            loss(sample_weights=bad)


@pytest.mark.parametrize("loss", [kl_loss, fisher_loss])
def test_per_example_losses_average_to_the_batch_loss(loss):
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    posterior = exact_gaussian_posterior(model)
    with torch.no_grad():
        posterior.net.log_std.add_(0.3)
    noise = torch.randn(4, 6, 1, generator=torch.Generator().manual_seed(3), dtype=DTYPE)
    per_example = loss(model, posterior, v, n_samples=4, noise=noise, reduction="none")
    assert per_example.shape == (6,)
    mean = loss(model, posterior, v, n_samples=4, noise=noise)
    torch.testing.assert_close(per_example.mean(), mean, rtol=1e-14, atol=0)
    alone = loss(model, posterior, v[2:3], n_samples=4, noise=noise[:, 2:3])
    torch.testing.assert_close(per_example[2], alone, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="reduction must be"):
        loss(model, posterior, v, reduction="sum")


def test_fit_steps_runs_the_steps_in_order_at_fixed_v():
    """The loop that fit_posterior and a functional fit share: the steps see k = 0, 1, …,
    the energy at fixed v (the same values as the energy at v) and each other's state."""
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(4, 3, dtype=DTYPE)
    h = torch.randn(2, 4, 1, dtype=DTYPE)
    seen = []

    def step(fixed, state, k):
        seen.append((k, state))
        torch.testing.assert_close(fixed(v, h), model(v, h), rtol=0, atol=1e-12)
        return [*state, k], torch.tensor(float(k))

    state, last = fit_steps(model, v, [], step, steps=3)
    assert seen == [(0, []), (1, [0]), (2, [0, 1])]
    assert state == [0, 1, 2] and last.item() == 2.0
    assert fit_steps(model, v, "kept", step, steps=0) == ("kept", None)


def test_fit_posterior_returns_the_last_steps_loss_as_its_own_loop_does():
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(8, 3, dtype=DTYPE)
    values = []
    for manual in (False, True):
        torch.manual_seed(0)
        q = GaussianPosterior(LinearGaussianNet(3))
        optimizer = torch.optim.SGD(q.parameters(), lr=0.05)
        generator = torch.Generator().manual_seed(1)
        if not manual:
            values.append(fit_posterior(model, q, v, optimizer, steps=3, generator=generator))
            continue
        for _ in range(3):
            optimizer.zero_grad()
            loss = kl_loss(model, q, v, generator=generator)
            loss.backward()
            optimizer.step()
        values.append(loss.item())
    assert values[0] == values[1]
    assert math.isnan(fit_posterior(model, q, v, optimizer, steps=0))
