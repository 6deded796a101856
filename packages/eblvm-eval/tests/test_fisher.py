"""Fisher divergence: exact against closed forms for Gaussian data and a Gaussian model,
the critic objective against direct formulas and Stein's identity, the learned estimate
against the exact value, and the F.3 pieces."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from eblvm_eval.divergences import bernoulli_kl
from eblvm_eval.fisher import (
    Critic,
    critic_objective,
    fisher_divergence,
    fitted_vaes_score,
    grbm_negative_elbo,
    learned_fisher_divergence,
    perturbed_grbm,
    rademacher,
)

MU = torch.tensor([0.4, -0.3, 0.0, 0.5])
STD = torch.tensor([1.3, 0.8, 1.0, 1.1])


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are small: extra threads only add synchronisation."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian_score(v: Tensor) -> Tensor:
    """Score of the model N(MU, diag STD²)."""
    return -(v - MU.to(v.dtype)) / STD.to(v.dtype).square()


def exact_gaussian_fisher() -> float:
    """½ E_{N(0, I)}‖−(v − μ)/σ² + v‖² = ½ Σ [(1 − σ⁻²)² + μ²σ⁻⁴]."""
    precision = STD.double().pow(-2)
    return float(0.5 * ((1 - precision).square() + MU.double().square() * precision.square()).sum())


def test_fisher_divergence_equals_the_closed_form_for_gaussians():
    v = torch.randn(100000, 4, generator=seeded(0), dtype=torch.float64)
    estimate = fisher_divergence(model_score=gaussian_score(v), data_score=-v)
    assert abs(estimate.value - exact_gaussian_fisher()) < 5 * estimate.stderr
    assert 0 < estimate.stderr < 0.01 * estimate.value


def test_critic_objective_equals_the_direct_formula_for_a_linear_critic():
    g = seeded(1)
    A, a = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    v, s = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(2))
    probes = rademacher((5, 3), generator=g).double()
    f = v @ A.T + a
    expected = (
        (s * f).sum(-1) + torch.einsum("bi,ij,bj->b", probes, A, probes) - 0.5 * f.square().sum(-1)
    )
    got = critic_objective(lambda x: x @ A.T + a, v, s, probes=probes)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # Averaged over all 2³ sign vectors, the probe term is the exact trace.
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), dtype=torch.float64)
    average = torch.stack(
        [critic_objective(lambda x: x @ A.T + a, v, s, probes=e.expand(5, 3)) for e in signs]
    ).mean(0)
    exact_trace = (s * f).sum(-1) + torch.trace(A) - 0.5 * f.square().sum(-1)
    torch.testing.assert_close(average, exact_trace, rtol=0, atol=1e-12)


def test_the_optimal_critic_attains_the_fisher_divergence():
    """Stein's identity: at f = s_θ − s_D the objective's mean is D_F(p_D ‖ p_θ)."""
    g = seeded(2)
    v = torch.randn(100000, 4, generator=g, dtype=torch.float64)
    probes = rademacher(tuple(v.shape), generator=g).double()
    values = critic_objective(lambda x: gaussian_score(x) + x, v, gaussian_score(v), probes=probes)
    stderr = values.std().item() / math.sqrt(len(v))
    assert abs(values.mean().item() - exact_gaussian_fisher()) < 5 * stderr


def test_learned_estimate_is_close_to_the_exact_value():
    g = seeded(3)
    valid, test = torch.randn(2000, 4, generator=g), torch.randn(8000, 4, generator=g)

    def draw(n: int) -> Tensor:
        return torch.randn(n, 4, generator=g)

    estimate = learned_fisher_divergence(
        gaussian_score,
        draw,
        valid,
        test,
        width=16,
        steps=200,
        batch_size=128,
        lr=1e-2,
        eval_every=50,
        generator=g,
    )
    # The critic's linear part represents f* = s_θ − s_D exactly, so what is left is the
    # test set's sampling error: four of its standard errors.
    exact = exact_gaussian_fisher()
    assert abs(estimate.value - exact) < 4 * estimate.stderr
    assert 0 < estimate.stderr < 0.05 * exact
    assert len(estimate.valid_curve) == 5 and estimate.valid_curve[0] == 0.0
    assert estimate.best_step in (50, 100, 150, 200)


def test_learned_estimate_from_a_finite_training_set_is_close_to_the_exact_value():
    g = seeded(4)
    train, valid, test = (torch.randn(n, 4, generator=g) for n in (8000, 2000, 8000))
    estimate = learned_fisher_divergence(
        gaussian_score,
        train,
        valid,
        test,
        width=16,
        steps=200,
        batch_size=128,
        lr=1e-2,
        eval_every=50,
        generator=g,
    )
    assert abs(estimate.value - exact_gaussian_fisher()) < 4 * estimate.stderr


def test_default_critic_starts_at_zero():
    critic = Critic(3, width=8, generator=seeded(5))
    v = torch.randn(4, 3, generator=seeded(6))
    assert critic(v).abs().max().item() == 0.0
    objective = critic_objective(critic, v, torch.randn(4, 3), probes=torch.ones(4, 3))
    assert objective.abs().max().item() == 0.0


def test_perturbed_grbm_at_level_zero_is_the_standard_gaussian():
    grbm = perturbed_grbm(5, 3, 0.0, generator=seeded(7))
    v = torch.randn(10, 5, generator=seeded(8))
    torch.testing.assert_close(grbm.score(v), -v, rtol=0, atol=0)
    moved = perturbed_grbm(5, 3, 0.5, generator=seeded(7))
    assert fisher_divergence(model_score=moved.score(v), data_score=-v).value > 0


def test_negative_elbo_is_kl_plus_free_energy():
    grbm = perturbed_grbm(4, 3, 1.0, generator=seeded(9)).double()
    from score_estimators import BernoulliPosterior

    layer = nn.Linear(4, 3).double()
    posterior = BernoulliPosterior(layer, temperature=None)
    v = torch.randn(6, 4, generator=seeded(10), dtype=torch.float64)
    kl = bernoulli_kl(q_logits=layer(v), p_logits=grbm.posterior_logits(v))
    expected = (kl + grbm.free_energy(v)).mean()
    torch.testing.assert_close(grbm_negative_elbo(grbm, posterior, v), expected, rtol=0, atol=1e-12)


def test_fitted_vaes_score_approaches_the_exact_score():
    g = seeded(11)
    grbm = perturbed_grbm(4, 3, 1.0, generator=g)

    def draw(n: int) -> Tensor:
        return torch.randn(n, 4, generator=g)

    score_fn, posterior = fitted_vaes_score(grbm, draw, steps=300, generator=g)
    v = draw(500)
    kl = bernoulli_kl(q_logits=posterior.logits(v), p_logits=grbm.posterior_logits(v))
    assert kl.mean().item() < 1e-2
    average = torch.stack([score_fn(v) for _ in range(200)]).mean(0)
    assert average.shape == (500, 4)
    assert (average - grbm.score(v)).abs().mean().item() < 0.05


@settings(max_examples=20, deadline=None)
@given(
    dim=st.integers(1, 5),
    batch=st.integers(2, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shapes_and_finiteness(dim, batch, dtype):
    g = seeded(dim * 11 + batch)
    v, s = torch.randn(batch, dim, generator=g).to(dtype), torch.randn(batch, dim).to(dtype)
    critic = Critic(dim, width=4, generator=g).to(dtype)
    with torch.no_grad():
        critic.scale.normal_(generator=g)
    probes = rademacher((batch, dim), generator=g).to(dtype)
    values = critic_objective(critic, v, s, probes=probes)
    assert values.shape == (batch,) and values.dtype == dtype
    assert bool(torch.isfinite(values).all())
    estimate = fisher_divergence(model_score=s, data_score=-v)
    assert math.isfinite(estimate.value) and math.isfinite(estimate.stderr)
    learned = learned_fisher_divergence(
        lambda x: -x, v, v, v, width=4, steps=2, batch_size=2, eval_every=1, generator=g
    )
    assert math.isfinite(learned.value) and len(learned.valid_curve) == 3


def test_bad_input_is_refused(tmp_path):
    v = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"data_score must have shape \(N, 3\)"):
        fisher_divergence(model_score=v, data_score=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="model_score must have shape"):
        fisher_divergence(model_score=torch.zeros(1, 3), data_score=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="critic must map"):
        critic_objective(lambda x: x[:, :2], v, v, probes=v)
    with pytest.raises(ValueError, match="score_fn must map"):
        learned_fisher_divergence(lambda x: x[:, :1], v, v, v, steps=1, batch_size=2)
    with pytest.raises(ValueError, match="test must have shape"):
        learned_fisher_divergence(lambda x: x, v, v, torch.zeros(4, 2), steps=1)
    with pytest.raises(TypeError, match="train must be a tensor or a callable"):
        learned_fisher_divergence(lambda x: x, [1.0], v, v, steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"train must give batches of shape \(2, 3\)"):
        learned_fisher_divergence(lambda x: x, lambda n: torch.zeros(n, 4), v, v, batch_size=2)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        learned_fisher_divergence(lambda x: x, v, v, v, steps=0)
    with pytest.raises(ValueError, match="lr must be a positive"):
        learned_fisher_divergence(lambda x: x, v, v, v, lr=-1.0)
    with pytest.raises(ValueError, match="level must be"):
        perturbed_grbm(3, 2, -0.5)
    assert not any(tmp_path.iterdir())
