"""NCE and VNCE against direct formulas and exact models.

- the NCE loss equals the logistic loss written with probabilities;
- with noise equal to the model (a Gaussian EBLVM, whose marginal is Gaussian) and the
  true log-normaliser, the NCE gradient in θ and c vanishes (within its standard error);
- with q the exact posterior of a GRBM, VNCE's loss equals NCE's for any number of
  particles; with a wrong q its noise term approaches NCE's as the particles grow;
- both train a checkerboard GRBM.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from eblvm_testing import small_grbm
from torch import nn

from eblvm import train
from eblvm.distributed import Ranks
from eblvm.functional import Runs, parameters_of
from eblvm.grbm.task import GRBMTask, estimate_log_partition, mean_log_likelihood
from eblvm.nce import LOG_NORMALISER, GaussianNoise, NCENoise, nce_loss, nce_term
from eblvm.parts import Model, build_step
from eblvm_eval import exact_log_partition
from ebm_models import GRBM, GaussianEBLVM
from score_estimators import BernoulliPosterior

DTYPE = torch.float64


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_nce_loss_is_the_logistic_loss_written_with_probabilities():
    g = seeded(0)
    model_data, noise_data = (
        torch.randn(5, generator=g, dtype=DTYPE),
        torch.randn(5, generator=g, dtype=DTYPE),
    )
    model_noise, noise_noise = (
        torch.randn(15, generator=g, dtype=DTYPE),
        torch.randn(15, generator=g, dtype=DTYPE),
    )
    ratio = 3
    h_data = model_data.exp() / (model_data.exp() + ratio * noise_data.exp())
    h_noise = model_noise.exp() / (model_noise.exp() + ratio * noise_noise.exp())
    expected = -h_data.log().mean() - ratio * (1 - h_noise).log().mean()
    got = nce_loss(model_data, noise_data, model_noise, noise_noise, ratio)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    assert torch.allclose(nce_term(model_data, noise_data, ratio, of_data=True), -h_data.log())


def test_the_gaussian_noise_has_the_density_of_its_samples():
    noise = GaussianNoise.fitted(torch.randn(5000, 3, generator=seeded(1), dtype=DTYPE) * 2 + 1)
    y = noise.sample(torch.randn(4, 3, generator=seeded(2), dtype=DTYPE))
    covariance = noise.scale @ noise.scale.T
    expected = torch.distributions.MultivariateNormal(noise.mean, covariance).log_prob(y)
    torch.testing.assert_close(noise.log_prob(y), expected, rtol=1e-10, atol=1e-12)


def _gaussian_model() -> GaussianEBLVM:
    model = GaussianEBLVM(3, 2, weight_std=0.7, generator=seeded(3)).double()
    with torch.no_grad():
        model.b.copy_(torch.tensor([0.5, -1.0, 0.2], dtype=DTYPE))
        model.c.copy_(torch.tensor([0.3, -0.4], dtype=DTYPE))
    return model


def _marginal(model: GaussianEBLVM) -> GaussianNoise:
    """The model's own marginal N(μ, Σ): the score −Σ⁻¹(v − μ) is linear in v."""
    zero = torch.zeros(1, model.v_dim, dtype=DTYPE)
    precision = -torch.autograd.functional.jacobian(
        lambda v: model.score(v[None])[0], zero[0]
    ).detach()
    covariance = torch.linalg.inv(precision)
    mean = covariance @ model.score(zero)[0].detach()
    return GaussianNoise(mean, torch.linalg.cholesky(covariance))


def _nce_step(model: nn.Module, noise: GaussianNoise, batch: int):
    settings = small_grbm("method=nce", f"batch_size={batch}")
    step = build_step(
        settings, Model(model, None, ()), Runs(), Ranks(), data=torch.zeros(2, 3, dtype=DTYPE)
    )
    return dataclasses.replace(step, noise=noise)


def test_nce_with_noise_equal_to_the_model_has_zero_gradient_at_the_truth():
    """p_n = p_m and c = log Z: the logistic regression cannot tell data from noise, so
    the expected gradient vanishes; with c off by 0.3 it does not."""
    model = _gaussian_model()
    noise = _marginal(model)
    n = 200_000
    v = model.sample(n, generator=seeded(4))
    step = _nce_step(model, noise, n)
    state = step.init(parameters_of(model), {}, v)
    draws = NCENoise(torch.randn(n, 3, generator=seeded(5), dtype=DTYPE))
    grads = []
    for shift in (0.0, 0.3):
        log_c = model.log_partition().detach() + shift
        shifted = state._replace(theta={**state.theta, LOG_NORMALISER: log_c})
        _, info = step(shifted, v, draws, torch.tensor(1.0, dtype=DTYPE))
        grads.append(info.grad_norm[0])
    # Per example the gradient terms are O(1); their mean over 2·10⁵ is O(1/450).
    assert float(grads[0]) < 0.02
    assert float(grads[1]) > 5 * float(grads[0])


def _grbm(seed: int = 0) -> GRBM:
    model = GRBM(2, 3, weight_std=1.0, generator=seeded(seed)).double()
    with torch.no_grad():
        model.c.normal_(generator=seeded(seed + 1))
        model.b.fill_(0.5)
    return model


def _exact_posterior(grbm: GRBM, *, shift: float = 0.0) -> BernoulliPosterior:
    """Exact binary draws of Bernoulli(sigmoid(c + vᵀW + shift)): q = p(h | v) at shift 0."""
    net = nn.Linear(2, 3).double()
    with torch.no_grad():
        net.weight.copy_(grbm.W.T)
        net.bias.copy_(grbm.c + shift)
    return BernoulliPosterior(net, temperature=None)


def _vnce_terms(grbm, posterior, v, *, particles: int, ratio: int = 2, seed: int = 6):
    """VNCE's loss at c = log Z; the data term of that loss computed here from the same
    draws; and NCE's loss and noise term on the same samples."""
    settings = small_grbm(
        "method=vnce",
        f"batch_size={len(v)}",
        "n_samples=3",
        f"method.particles={particles}",
        f"method.noise_ratio={ratio}",
        "posterior_steps=0",
    )
    data = torch.randn(100, 2, generator=seeded(7), dtype=DTYPE)
    step = build_step(settings, Model(grbm, posterior, (3,)), Runs(), Ranks(), data=data)
    state = step.init(parameters_of(grbm), parameters_of(posterior), v)
    log_z = exact_log_partition(grbm).detach()
    state = state._replace(theta={**state.theta, LOG_NORMALISER: log_z})
    draws = step.draw_noise(v, seeded(seed))
    _, info = step(state, v, draws, torch.tensor(1.0, dtype=DTYPE))
    y = step.noise.sample(draws.noise)
    with torch.no_grad():
        h = posterior.rsample(v, 3, noise=draws.data)
        bound = -grbm(v, h) - log_z - posterior.log_prob(h, v)
        data_term = nce_term(bound, step.noise.log_prob(v), ratio, of_data=True).mean()
        log_pm_y = -grbm.free_energy(y) - log_z
        noise_term = ratio * nce_term(log_pm_y, step.noise.log_prob(y), ratio, of_data=False).mean()
        nce = nce_loss(
            -grbm.free_energy(v) - log_z,
            step.noise.log_prob(v),
            log_pm_y,
            step.noise.log_prob(y),
            ratio,
        )
    return float(info.loss[0]), float(data_term), float(nce), float(noise_term)


def test_vnce_with_the_exact_posterior_is_nce_for_any_number_of_particles():
    grbm = _grbm()
    v = torch.rand(50, 2, generator=seeded(8), dtype=DTYPE)
    for particles in (1, 4):
        vnce, _, nce, _ = _vnce_terms(grbm, _exact_posterior(grbm), v, particles=particles)
        assert vnce == pytest.approx(nce, rel=1e-10)


def test_vnce_noise_term_approaches_nce_as_the_particles_grow():
    """With a wrong q the data term is a bound (computed here from the same draws); the
    noise term, importance-sampled over the particles, converges to NCE's."""
    grbm = _grbm()
    v = torch.rand(200, 2, generator=seeded(9), dtype=DTYPE)
    wrong = _exact_posterior(grbm, shift=1.5)
    gaps = []
    for particles in (1, 10, 1000):
        vnce, data_term, _, noise_term = _vnce_terms(grbm, wrong, v, particles=particles)
        gaps.append(abs(vnce - data_term - noise_term))
    assert gaps[2] < gaps[1] < gaps[0] and gaps[2] < 0.01


@pytest.mark.parametrize("method", ["nce", "vnce"])
def test_the_log_normaliser_starts_near_each_runs_log_z(method):
    """c starts at an importance-sampling estimate of log Z, per run of a stack: a lower
    bound in expectation, here within 1.5 nats of the exact 11-13 nats for NCE and 2.5
    for VNCE, whose p̃(y) from 5 draws of an unfitted q is a lower bound too (c = 0
    would be off by all of it)."""
    settings = small_grbm(f"method={method}", "method.nce_noise=data", "h_dim=12")
    task = GRBMTask(settings)
    models = [
        task.build(dataclasses.replace(settings, seed=seed), seeded(seed)) for seed in range(3)
    ]
    stack = task.stack(models)
    step = build_step(settings, stack, Runs(3, True), Ranks(), data=task.splits.train)
    phi = {} if stack.posterior is None else parameters_of(stack.posterior)
    state = step.init(parameters_of(stack.energy), phi, task.splits.train[:30])
    exact = torch.stack([exact_log_partition(model.energy) for model in models]).float()
    start = state.theta[LOG_NORMALISER]
    assert start.shape == (3,) and bool((exact > 11).all())
    slack = 1.5 if method == "nce" else 2.5
    assert bool((start < exact + 0.05).all()) and bool((start > exact - slack).all())

    zero = dataclasses.replace(
        settings, method=dataclasses.replace(settings.method, nce_start="zero")
    )
    step = build_step(zero, stack, Runs(3, True), Ranks(), data=task.splits.train)
    state = step.init(parameters_of(stack.energy), phi, task.splits.train[:30])
    assert torch.equal(state.theta[LOG_NORMALISER], torch.zeros(3))


@pytest.mark.parametrize("method", ["nce", "vnce"])
def test_nce_and_vnce_train_a_checkerboard_grbm(tmp_path, method):
    settings = small_grbm(
        f"method={method}",
        "method.nce_noise=data",
        "iterations=300",
        "eval_every=150",
        "log_every=150",
        "checkpoint_every=150",
    )
    task = GRBMTask(settings)
    model = task.build(settings, seeded(settings.seed)).energy
    start = mean_log_likelihood(
        model, task.splits.test, estimate_log_partition(model, settings, seed=0).value
    )
    summary = train(task, settings, tmp_path, progress=False)
    assert summary["test_log_likelihood"] > start + 1.0
    assert math.isfinite(summary["test_log_likelihood"])
