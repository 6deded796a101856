"""Estimators against exact answers: the enumerated score of a binary-latent model and
the closed-form score of a Gaussian-latent model."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from exact_models import (
    DTYPE,
    BinaryLatentEnergy,
    ExactBinaryPosterior,
    GaussianLatentEnergy,
    LinearGaussianNet,
    flat_grad,
)
from torch import Tensor

import score_estimators.estimators
from score_estimators import (
    BiSM,
    ExactScore,
    GaussianPosterior,
    ImportanceSampling,
    VaES,
    VaESCV,
    VaGES,
    kl_loss,
    vages_weights,
    weighted_score,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def weighted_square_loss(score: Tensor) -> Tensor:
    """A loss nonlinear in the score, so that its gradient depends on the score's value."""
    weights = torch.arange(1, score.shape[-1] + 1, dtype=score.dtype)
    return (weights * score.square()).sum() + score.sum()


def test_vaes_cv_equals_exact_score_with_exact_posterior(binary_model, data):
    posterior = ExactBinaryPosterior(binary_model)
    exact = binary_model.enumerated_score(data)
    for n in (1, 3):
        estimate = VaESCV(n)(binary_model, posterior, data, generator=seeded(n))
        torch.testing.assert_close(estimate, exact, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "estimator", [VaES(3, control_variate=True), VaGES(3, control_variate=True)]
)
def test_control_variate_value_is_exact_with_zero_variance_under_the_exact_posterior(
    binary_model, data, estimator
):
    """∇_v log[p̃(v, h)/p(h | v)] = ∇_v log p̃(v) whatever h: every seed gives the exact
    score; without the control variate the same draws scatter."""
    posterior = ExactBinaryPosterior(binary_model)
    exact = binary_model.enumerated_score(data).detach()
    plain = type(estimator)(3)
    with_cv = torch.stack(
        [estimator(binary_model, posterior, data, generator=seeded(s)) for s in range(20)]
    )
    without = torch.stack(
        [plain(binary_model, posterior, data, generator=seeded(s)) for s in range(20)]
    )
    torch.testing.assert_close(with_cv.detach(), exact.expand_as(with_cv), rtol=0, atol=1e-10)
    assert with_cv.detach().var(0).max().item() < 1e-20
    assert without.detach().var(0).mean().item() > 0.1


def test_control_variate_lowers_the_variance_near_the_exact_posterior(binary_model, data):
    """q: Bernoulli with logits c + vᵀ(W + δ), δ = 0.3 N(0, 1), not the exact posterior
    (a shift of c alone would still be exact: ∇_v log q has the same h-part W h as
    ∇_v log p̃). The control variate leaves the h-part −δh: measured 0.073 of the
    variance without it, over 200 seeds."""
    delta = 0.3 * torch.randn(3, 4, generator=seeded(7), dtype=DTYPE)

    class Perturbed(ExactBinaryPosterior):
        def logits(self, v: Tensor) -> Tensor:
            return self.energy.logits(v) + v @ delta

        def rsample(self, v, n, *, generator=None):
            probs = torch.sigmoid(self.logits(v)).detach()
            return torch.bernoulli(probs.expand(n, *probs.shape), generator=generator)

        def log_prob(self, h, v):
            logits = self.logits(v).expand_as(h)
            return -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, h, reduction="none"
            ).sum(-1)

    posterior = Perturbed(binary_model)

    def variance(estimator) -> float:
        draws = [estimator(binary_model, posterior, data, generator=seeded(s)) for s in range(200)]
        return torch.stack(draws).detach().var(0).mean().item()

    with_cv = variance(VaGES(2, control_variate=True))
    assert 0 < with_cv < 0.2 * variance(VaGES(2))


def test_vages_with_control_variate_gives_an_unbiased_theta_gradient():
    """q = p(h | v) of a frozen copy (no θ in q, as for a fitted q_φ), a loss nonlinear in
    the score. Over 400 seeds the mean θ-gradient of VaGES-CV (L = 2) matches the exact
    one: each of the 22 coordinates within 4 standard errors (two-sided p = 6e-5 each,
    under 2e-3 for all 22 together, Bonferroni); the coordinates whose estimate does
    not depend on h (b, log σ) are exact. VaES-CV, which misses the covariance term,
    fails the same test (its gradient is off by about 18%)."""
    model = BinaryLatentEnergy(3, 4, scale=1.5, seed=2)
    v = torch.randn(8, 3, generator=seeded(4), dtype=DTYPE)
    posterior = ExactBinaryPosterior(copy.deepcopy(model).requires_grad_(False))
    params = list(model.parameters())
    exact = flat_grad(weighted_square_loss(model.enumerated_score(v)), params)
    n = 400

    def z_scores(estimator) -> tuple[Tensor, Tensor]:
        grads = torch.stack(
            [
                flat_grad(
                    weighted_square_loss(estimator(model, posterior, v, generator=seeded(s))),
                    params,
                )
                for s in range(n)
            ]
        )
        error, spread = grads.mean(0) - exact, grads.std(0)
        random = spread > 1e-9 * exact.abs().max()
        return error[random] / (spread[random] / math.sqrt(n)), error[~random]

    z, fixed = z_scores(VaGES(2, control_variate=True))
    assert len(z) == 16 and z.abs().max().item() < 4.0
    assert fixed.abs().max().item() < 1e-9 * exact.abs().max().item()
    z_vaes, _ = z_scores(VaES(2, control_variate=True))
    assert z_vaes.abs().max().item() > 20.0


@pytest.mark.parametrize("estimator_class", [VaES, ImportanceSampling])
def test_error_falls_at_root_l_rate_with_exact_posterior(binary_model, data, estimator_class):
    posterior = ExactBinaryPosterior(binary_model)
    exact = binary_model.enumerated_score(data).detach()
    generator = seeded(0)

    def rmse(n: int) -> float:
        errors = [
            estimator_class(n)(binary_model, posterior, data, generator=generator).detach() - exact
            for _ in range(50)
        ]
        return torch.stack(errors).square().mean().sqrt().item()

    # 50 repeats x 18 coordinates: the mean square error is known to about 5%, so the
    # RMSE ratio for a 100x larger L is 10 within about 7% (plus an O(1/L) IS bias).
    ratio = rmse(16) / rmse(1600)
    assert 8.0 < ratio < 12.5


def test_vages_value_is_the_vaes_of_its_first_l_draws(binary_model, data):
    """VaGES draws 2L samples; its value averages the first L, like VaES with L."""
    posterior = ExactBinaryPosterior(binary_model)
    vages = VaGES(5)(binary_model, posterior, data, generator=seeded(3))
    vaes = VaES(5)(binary_model, posterior, data, generator=seeded(3))
    torch.testing.assert_close(vages, vaes, rtol=0, atol=1e-12)


def test_vages_theta_gradient_approaches_exact_and_vaes_does_not():
    model = BinaryLatentEnergy(3, 4, scale=1.5, seed=2)
    v = torch.randn(8, 3, generator=seeded(4), dtype=DTYPE)
    posterior = ExactBinaryPosterior(model)
    params = list(model.parameters())
    exact = flat_grad(weighted_square_loss(model.enumerated_score(v)), params)

    def relative_error(estimator, n: int) -> float:
        estimate = estimator(n)(model, posterior, v, generator=seeded(n))
        grad = flat_grad(weighted_square_loss(estimate), params)
        return ((grad - exact).norm() / exact.norm()).item()

    errors = {n: relative_error(VaGES, n) for n in (10, 100, 10000)}
    vaes_error = relative_error(VaES, 10000)
    # Monte Carlo error ~ 1/sqrt(L): about 1% at L = 10^4 for this model.
    assert errors[10000] < 0.03
    assert errors[10000] < errors[100] < errors[10]
    # Without the covariance term the gradient stays biased (here by about 18%).
    assert vaes_error > 0.1
    assert vaes_error > 10 * errors[10000]


def test_vages_v_jacobian_gains_the_covariance_term():
    model = BinaryLatentEnergy(3, 4, scale=1.5, seed=2)
    v = torch.randn(4, 3, generator=seeded(5), dtype=DTYPE)
    posterior = ExactBinaryPosterior(model)

    def trace_of_jacobian(score_fn) -> Tensor:
        node = v.clone().requires_grad_(True)
        score = score_fn(node)
        rows = [
            torch.autograd.grad(score[:, d].sum(), node, create_graph=True)[0][:, d]
            for d in range(v.shape[1])
        ]
        return torch.stack(rows, -1).sum(-1)

    exact = trace_of_jacobian(model.enumerated_score).detach()
    vages = trace_of_jacobian(lambda x: VaGES(20000)(model, posterior, x, generator=seeded(6)))
    vaes = trace_of_jacobian(lambda x: VaES(20000)(model, posterior, x, generator=seeded(6)))
    scale = exact.abs().max().item()
    assert (vages.detach() - exact).abs().max().item() < 0.03 * scale
    assert (vaes.detach() - exact).abs().max().item() > 0.2 * scale


def test_bism_theta_gradient_converges_with_the_inner_steps():
    """With q started at p(h | v), φ_N(θ) tracks the exact posterior as N grows, so the
    BiSM θ-gradient approaches the exact one; N = 0 misses dφ/dθ."""
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(16, 3, generator=seeded(1), dtype=DTYPE)
    net = LinearGaussianNet(3)
    with torch.no_grad():
        net.m.copy_(model.posterior_mean_weight())
        net.log_std.copy_(model.posterior_log_std())
    posterior = GaussianPosterior(net)
    exact = flat_grad(weighted_square_loss(model.score(v)), [model.u])

    def error(n_unroll: int) -> float:
        estimator = BiSM(n_unroll, n_samples=4, inner_lr=0.02, loss=kl_loss, inner_samples=256)
        estimate = estimator(model, posterior, v, generator=seeded(2))
        grad = flat_grad(weighted_square_loss(estimate), [model.u])
        return ((grad - exact).norm() / exact.norm()).item()

    errors = [error(n) for n in (0, 2, 8, 64)]
    assert errors[0] > 0.5
    assert errors[3] < 0.03
    assert errors[0] > errors[1] > errors[2] > errors[3]


def test_bism_value_is_exact_when_q_is_the_posterior():
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(5, 3, generator=seeded(1), dtype=DTYPE)
    net = LinearGaussianNet(3)
    with torch.no_grad():
        net.m.copy_(model.posterior_mean_weight())
        net.log_std.copy_(model.posterior_log_std())
    estimate = BiSM(0, n_samples=1)(model, GaussianPosterior(net), v, generator=seeded(0))
    torch.testing.assert_close(estimate, model.score(v), rtol=0, atol=1e-10)


def test_exact_score_uses_the_model_score():
    model = GaussianLatentEnergy(3, seed=0)
    v = torch.randn(5, 3, dtype=DTYPE)
    torch.testing.assert_close(ExactScore()(model, None, v), model.score(v))
    with pytest.raises(TypeError, match="score"):
        ExactScore()(lambda v, h: v.sum(-1), None, v)


@pytest.mark.parametrize("n", [0, 1, -3, 2.0, True])
def test_vages_refuses_fewer_than_two_samples(n):
    with pytest.raises(ValueError, match="n_samples"):
        VaGES(n)


@pytest.mark.parametrize("estimator", [VaES(2), VaGES(2), VaESCV(2), ImportanceSampling(2)])
def test_non_finite_v_is_refused(binary_model, data, estimator):
    bad = data.clone()
    bad[0, 1] = math.nan
    with pytest.raises(ValueError, match="v contains non-finite"):
        estimator(binary_model, ExactBinaryPosterior(binary_model), bad)


def test_posterior_of_the_wrong_batch_is_refused(binary_model, data):
    class WrongBatch(ExactBinaryPosterior):
        def rsample(self, v, n, *, generator=None):
            return super().rsample(v[:-1], n, generator=generator)

    with pytest.raises(ValueError, match=r"posterior\.rsample must return shape"):
        VaES(2)(binary_model, WrongBatch(binary_model), data)


def test_energy_that_does_not_broadcast_is_refused(binary_model, data):
    def summed_energy(v, h):
        return binary_model(v, h).sum(0)

    with pytest.raises(ValueError, match="energy"):
        VaGES(3)(summed_energy, ExactBinaryPosterior(binary_model), data)


def test_vages_loss_gradient_is_unbiased_at_two_samples():
    """With L = 2 the mean VaGES θ-gradient of a nonlinear loss matches the exact one
    within its standard error. Taking the loss's g = ∂F/∂s from the same draws as
    ∂s/∂θ (one shared set) is biased by O(1/L), which this comparison detects."""
    model = BinaryLatentEnergy(3, 4, scale=1.5, seed=2)
    v = torch.randn(8, 3, generator=seeded(4), dtype=DTYPE)
    posterior = ExactBinaryPosterior(model)
    params = list(model.parameters())
    copies, chunks = 400, 25
    batch = v.repeat(copies, 1)
    exact = flat_grad(weighted_square_loss(model.enumerated_score(v)), params)

    def shared_draws(energy, q, x: Tensor, generator: torch.Generator) -> Tensor:
        node = x.detach().requires_grad_(True)
        log_joint = -energy(node, q.rsample(x, 2, generator=generator))
        return weighted_score(log_joint, node, vages_weights(log_joint))

    def z_scores(estimator) -> Tensor:
        generator = seeded(11)

        def mean_grad() -> Tensor:
            loss = weighted_square_loss(estimator(model, posterior, batch, generator))
            return flat_grad(loss, params) / copies

        grads = torch.stack([mean_grad() for _ in range(chunks)])
        standard_error = grads.std(0) / chunks**0.5
        return (grads.mean(0) - exact).abs() / standard_error

    vages = z_scores(lambda energy, q, x, g: VaGES(2)(energy, q, x, generator=g))
    # 25 chunks of 400 copies: t-distributed with 24 degrees of freedom, 21 components.
    assert vages.max() < 4.5
    assert z_scores(shared_draws).max() > 10


def sliced_loss(score_fn, x: Tensor, directions: Tensor) -> Tensor:
    """SSM's loss Σ ½(εᵀs)² + εᵀ∇_v(εᵀs) at fixed directions ε: it takes the score's
    v-Jacobian, so its θ-gradient needs the third posterior cumulant."""
    node = x.detach().requires_grad_(True)
    score = score_fn(node)
    (jacobian_product,) = torch.autograd.grad((directions * score).sum(), node, create_graph=True)
    return (
        0.5 * (directions * score).sum(-1).square() + (directions * jacobian_product).sum(-1)
    ).sum()


@pytest.mark.parametrize("n_samples", [2, 3, 5])
def test_vages_sliced_loss_gradient_is_unbiased_from_three_samples(n_samples, monkeypatch):
    """The θ-gradient of a loss on the score's v-Jacobian (SSM) matches the exact one
    from L = 3 on, within its standard error. At L = 2 the third cumulant has no
    unbiased estimate and the gradient is biased, as documented; the weights without
    their second-order term (the softmax alone) are biased at every L."""
    model = BinaryLatentEnergy(3, 4, scale=1.5, seed=2)
    generator = seeded(4)
    v = torch.randn(8, 3, generator=generator, dtype=DTYPE)
    directions = torch.randn(8, 3, generator=generator, dtype=DTYPE)
    posterior = ExactBinaryPosterior(model)
    params = list(model.parameters())
    copies, chunks = 400, 25
    batch, batch_directions = v.repeat(copies, 1), directions.repeat(copies, 1)
    exact = flat_grad(sliced_loss(model.enumerated_score, v, directions), params)

    def z_scores() -> Tensor:
        g = seeded(11)
        grads = torch.stack(
            [
                flat_grad(
                    sliced_loss(
                        lambda x: VaGES(n_samples)(model, posterior, x, generator=g),
                        batch,
                        batch_directions,
                    ),
                    params,
                )
                / copies
                for _ in range(chunks)
            ]
        )
        return (grads.mean(0) - exact).abs() / (grads.std(0) / chunks**0.5)

    z = z_scores()
    if n_samples == 2:
        assert z.max() > 10
        return
    # 25 chunks of 400 copies: t-distributed with 24 degrees of freedom, 21 components.
    assert z.max() < 4.5

    def softmax_weights(log_joint: Tensor) -> Tensor:
        n = log_joint.shape[0]
        tilted = torch.softmax(log_joint - log_joint.detach(), dim=0)
        return 1.0 / n + (n / (n - 1)) * (tilted - 1.0 / n)

    monkeypatch.setattr(score_estimators.estimators, "vages_weights", softmax_weights)
    assert z_scores().max() > 10


class CountingGaussianPosterior(GaussianPosterior):
    """A Gaussian posterior that counts the draws per example it hands out."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__(net)
        self.drawn = 0

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        self.drawn += n
        return super().rsample(v, n, generator=generator)


@pytest.mark.parametrize(
    "estimator",
    [
        VaES(3),
        VaGES(3),
        VaESCV(2),
        ImportanceSampling(4),
        BiSM(0, n_samples=2),
        BiSM(3, n_samples=2, inner_samples=2, loss=kl_loss),
    ],
)
def test_draws_count_the_posterior_draws_of_one_call(estimator):
    model = GaussianLatentEnergy(3, seed=0)
    posterior = CountingGaussianPosterior(LinearGaussianNet(3))
    v = torch.randn(5, 3, generator=seeded(1), dtype=DTYPE)
    estimator(model, posterior, v, generator=seeded(2))
    assert posterior.drawn == estimator.draws
