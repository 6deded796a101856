"""The contract's optional parts: injected noise, the conditioned energy, traceability.

Injected noise must give exactly the draws a generator gives when it holds the same
numbers; a model's own methods must never be taken for a capability; the estimators
must trace into a graph (make_fx) and map over stacked runs (vmap).
"""

from __future__ import annotations

import pytest
import torch
from exact_models import DTYPE, BinaryLatentEnergy, GaussianLatentEnergy, LinearGaussianNet
from torch import Tensor, nn
from torch.fx.experimental.proxy_tensor import make_fx

from score_estimators import (
    BernoulliPosterior,
    BiSM,
    ConditionedEnergy,
    EstimatorNoise,
    ExactScore,
    FusedPosterior,
    GaussianPosterior,
    ImportanceSampling,
    Langevin,
    NoiseDriven,
    Posterior,
    VaES,
    VaESCV,
    VaGES,
    fisher_loss,
    kl_loss,
    standard_noise,
)

V_DIM, H_DIM, BATCH = 3, 4, 5


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bernoulli(temperature: float | None = 0.5) -> BernoulliPosterior:
    torch.manual_seed(0)
    return BernoulliPosterior(nn.Linear(V_DIM, H_DIM).double(), temperature=temperature)


def gaussian() -> GaussianPosterior:
    return GaussianPosterior(LinearGaussianNet(V_DIM))


def data() -> Tensor:
    return torch.randn(BATCH, V_DIM, generator=seeded(1), dtype=DTYPE)


def noise_of(posterior: NoiseDriven, n: int, h_dim: int, seed: int) -> Tensor:
    return standard_noise(
        posterior.noise_law,
        (n, BATCH, h_dim),
        dtype=DTYPE,
        device=torch.device("cpu"),
        generator=seeded(seed),
    )


@pytest.mark.parametrize("make", [bernoulli, lambda: bernoulli(None)])
def test_bernoulli_draws_from_injected_noise_equal_the_generator_draws(make) -> None:
    posterior, v = make(), data()
    assert isinstance(posterior, NoiseDriven) and isinstance(posterior, FusedPosterior)
    drawn = posterior.rsample(v, 6, generator=seeded(2))
    injected = posterior.rsample(v, 6, noise=noise_of(posterior, 6, H_DIM, 2))
    assert torch.equal(drawn, injected)
    h, log_q = posterior.rsample_and_log_prob(v, 6, noise=noise_of(posterior, 6, H_DIM, 2))
    assert torch.equal(h, drawn)
    torch.testing.assert_close(log_q, posterior.log_prob(drawn, v))


def test_gaussian_draws_from_injected_noise_are_mean_plus_std_times_noise() -> None:
    posterior, v = gaussian(), data()
    noise = noise_of(posterior, 4, 1, 3)
    mean, log_std = posterior.mean_and_log_std(v)
    torch.testing.assert_close(posterior.rsample(v, 4, noise=noise), mean + log_std.exp() * noise)
    assert torch.equal(
        posterior.rsample(v, 4, generator=seeded(3)), posterior.rsample(v, 4, noise=noise)
    )


def test_injected_noise_of_the_wrong_shape_or_with_a_generator_is_refused() -> None:
    posterior, v = bernoulli(), data()
    with pytest.raises(ValueError, match=r"noise must be a tensor of shape \(2, 5, 4\)"):
        posterior.rsample(v, 2, noise=torch.zeros(2, 5, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="exclusive"):
        posterior.rsample(v, 2, noise=torch.zeros(2, 5, 4, dtype=DTYPE), generator=seeded(0))
    with pytest.raises(ValueError, match="dtype and device"):
        posterior.rsample(v, 2, noise=torch.zeros(2, 5, 4))


def _estimators() -> list:
    return [
        VaES(3),
        VaGES(2),
        VaGES(2, control_variate=True),
        VaESCV(2),
        ImportanceSampling(3),
        BiSM(2, n_samples=2),
    ]


@pytest.mark.parametrize("estimator", _estimators(), ids=repr)
def test_estimates_from_injected_noise_equal_the_generator_estimates(estimator) -> None:
    """The generator path draws the posterior's noise in the same calls, in order."""
    energy, posterior, v = BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0), bernoulli(), data()
    drawn = estimator(energy, posterior, v, generator=seeded(4))
    generator = seeded(4)
    if isinstance(estimator, BiSM):
        sizes = [estimator.inner_samples] * estimator.n_unroll + [estimator.n_samples]
    else:
        sizes = [estimator.draws]
    parts = [
        standard_noise(
            "uniform", (n, BATCH, H_DIM), dtype=DTYPE, device=v.device, generator=generator
        )
        for n in sizes
    ]
    noise = EstimatorNoise(torch.cat(parts))
    torch.testing.assert_close(estimator(energy, posterior, v, noise=noise), drawn, rtol=0, atol=0)


def test_refined_estimates_take_their_langevin_noise_too() -> None:
    energy, posterior, v = GaussianLatentEnergy(V_DIM, seed=0), gaussian(), data()
    estimator = VaGES(2, refine=Langevin(3, step_size=0.05, noise_std=0.3))
    generator = seeded(5)
    drawn = estimator(energy, posterior, v, generator=generator)
    generator = seeded(5)
    base = torch.randn((4, BATCH, 1), generator=generator, dtype=DTYPE)
    steps = torch.stack(
        [torch.randn((4, BATCH, 1), generator=generator, dtype=DTYPE) for _ in range(3)]
    )
    injected = estimator(energy, posterior, v, noise=EstimatorNoise(base, steps))
    torch.testing.assert_close(injected, drawn, rtol=0, atol=0)


def test_noise_with_another_number_of_draws_is_refused_naming_the_count() -> None:
    energy, posterior, v = BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0), bernoulli(), data()
    with pytest.raises(ValueError, match="VaGES takes 4 posterior draws"):
        VaGES(2)(
            energy, posterior, v, noise=EstimatorNoise(torch.rand(2, BATCH, H_DIM, dtype=DTYPE))
        )
    with pytest.raises(TypeError, match="noise must be an EstimatorNoise"):
        VaES(2)(energy, posterior, v, noise=torch.rand(2, BATCH, H_DIM, dtype=DTYPE))


def test_a_wrong_draw_count_says_that_vages_draws_two_l() -> None:
    class OneDraw:
        def rsample(self, v: Tensor, n: int, *, generator=None) -> Tensor:
            return torch.zeros(2, len(v), H_DIM, dtype=v.dtype)

    energy = BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0)
    with pytest.raises(ValueError, match=r"VaGES draws 2L = 4 per example for n_samples L = 2"):
        VaGES(2)(energy, OneDraw(), data())


class ClassConditional(BinaryLatentEnergy):
    """A class-conditional model: its own ``condition(y)`` picks a class's bias. No
    estimator may take it for the conditioned-energy capability."""

    def condition(self, y: int) -> Tensor:
        return self.W[:, y]


@pytest.mark.parametrize("estimator", [*_estimators(), VaES(2, refine=Langevin(2))], ids=repr)
def test_a_model_with_its_own_condition_method_works_with_every_estimator(estimator) -> None:
    energy = ClassConditional(V_DIM, H_DIM, scale=1.0, seed=0)
    plain = BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0)
    assert not isinstance(energy, ConditionedEnergy)
    posterior, v = bernoulli(), data()
    score = estimator(energy, posterior, v, generator=seeded(6))
    torch.testing.assert_close(score, estimator(plain, posterior, v, generator=seeded(6)))
    kl_loss(energy, posterior, v).backward()


def test_posterior_losses_refuse_draws_without_a_gradient() -> None:
    """Exact binary draws carry no gradient to φ: fitting by them would fit nothing."""
    energy, v = BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0), data()
    exact_draws = bernoulli(temperature=None)
    assert isinstance(exact_draws, Posterior)
    for loss in (kl_loss, fisher_loss):
        with pytest.raises(ValueError, match="draws carry no gradient"):
            loss(energy, exact_draws, v)


def test_the_exact_score_needs_a_model_with_a_score() -> None:
    with pytest.raises(TypeError, match="ExactScore needs an energy with a score"):
        ExactScore()(BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0), None, data())


def test_an_estimate_traces_into_one_graph_and_replays_it() -> None:
    """make_fx records the whole estimate, derivatives included, as one graph of tensor
    operations: the input checks must not read values while it records."""
    energy, posterior = BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0), bernoulli()
    estimator = VaGES(2)

    def loss(v: Tensor, noise: Tensor) -> Tensor:
        score = estimator(energy, posterior, v, noise=EstimatorNoise(noise))
        (grad,) = torch.autograd.grad(score.square().sum(), energy.W)
        return grad

    v, noise = data(), torch.rand(4, BATCH, H_DIM, generator=seeded(7), dtype=DTYPE)
    graph = make_fx(loss)(v, noise)
    other = torch.rand(4, BATCH, H_DIM, generator=seeded(8), dtype=DTYPE)
    torch.testing.assert_close(graph(v, other), loss(v, other))


class _ExactScoreOf(nn.Module):
    """v ↦ ExactScore()(energy, None, v), so that functional_call can swap θ."""

    def __init__(self, energy: GaussianLatentEnergy) -> None:
        super().__init__()
        self.energy = energy

    def forward(self, v: Tensor) -> Tensor:
        return ExactScore()(self.energy, None, v)


def test_an_estimate_maps_over_stacked_parameters() -> None:
    """vmap over runs of one model: the checks inside must not read batched values."""
    energies = [GaussianLatentEnergy(V_DIM, seed=seed) for seed in range(3)]
    module = _ExactScoreOf(energies[0])
    params = {
        f"energy.{name}": torch.stack([dict(e.named_parameters())[name] for e in energies])
        for name, _ in energies[0].named_parameters()
    }
    v = torch.randn(3, BATCH, V_DIM, generator=seeded(9), dtype=DTYPE)
    mapped = torch.func.vmap(lambda p, x: torch.func.functional_call(module, p, (x,)))(params, v)
    for run, energy in enumerate(energies):
        torch.testing.assert_close(mapped[run], energy.score(v[run]))
