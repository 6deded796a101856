"""Langevin refinement of posterior draws against the exact laws of a Gaussian-latent model.

With E(v, h) = ½‖v − Wh‖² + ½‖h‖², p(h | v) = N(A⁻¹Wᵀv, A⁻¹) with A = I + WᵀW,
and every Langevin step is affine in h: h ← (I − αA)h + αWᵀv + σε. From a Gaussian
q the refined draws are Gaussian with a mean and a covariance given by that
recursion, which the tests compute directly.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from score_estimators import GaussianPosterior, Langevin, VaES, VaGES, energy_at

DTYPE = torch.float64
V_DIM, H_DIM = 3, 2


class GaussianLatent(nn.Module):
    """E(v, h) = ½‖v − Wh‖² + ½‖h‖². v: (B, D), h: (*S, B, H) -> (*S, B)."""

    def __init__(self, *, scale: float = 0.6, seed: int = 0, dtype: torch.dtype = DTYPE) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(scale * torch.randn(V_DIM, H_DIM, generator=g, dtype=dtype))
        self.calls = 0

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        self.calls += 1
        return 0.5 * (v - h @ self.W.T).square().sum(-1) + 0.5 * h.square().sum(-1)

    def precision(self) -> Tensor:
        """A = I + WᵀW: (H, H)."""
        return torch.eye(H_DIM, dtype=self.W.dtype) + self.W.T @ self.W

    def posterior(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """p(h | v): mean (B, H), covariance (H, H)."""
        a = self.precision().detach()
        return torch.linalg.solve(a, (v @ self.W.detach()).T).T, torch.linalg.inv(a)


class ConditionedGaussianLatent(GaussianLatent):
    """The same energy with its v-part built once: E = ½‖v‖² − hᵀWᵀv + ½hᵀAh from
    (‖v‖², Wᵀv)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.conditions = 0

    def __energy_at_v__(self, v: Tensor):
        self.conditions += 1
        half_sq, wv = 0.5 * v.square().sum(-1), v @ self.W
        a = self.precision()
        return lambda h: half_sq - (h * wv).sum(-1) + 0.5 * ((h @ a) * h).sum(-1)


class ConstantGaussianNet(nn.Module):
    """v -> (mean, log_std) constant in v: (B, H) each."""

    def __init__(self, *, mean: float, std: float, dtype: torch.dtype = DTYPE) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.full((H_DIM,), mean, dtype=dtype))
        self.log_std = nn.Parameter(torch.full((H_DIM,), math.log(std), dtype=dtype))

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        shape = (len(v), H_DIM)
        return self.mean.expand(shape), self.log_std.expand(shape)


def _wrong_q(dtype: torch.dtype = DTYPE) -> GaussianPosterior:
    return GaussianPosterior(ConstantGaussianNet(mean=0.0, std=2.0, dtype=dtype))


def _data(batch: int = 2, dtype: torch.dtype = DTYPE) -> Tensor:
    return torch.randn(batch, V_DIM, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _langevin_law(
    energy: GaussianLatent, v: Tensor, *, steps: int, step_size: float, noise_std: float
) -> tuple[Tensor, Tensor]:
    """Mean (B, H) and covariance (H, H) after ``steps`` updates from q = N(0, 4I)."""
    a = energy.precision().detach()
    r = torch.eye(H_DIM, dtype=DTYPE) - step_size * a
    mean = torch.zeros(len(v), H_DIM, dtype=DTYPE)
    cov = 4.0 * torch.eye(H_DIM, dtype=DTYPE)
    for _ in range(steps):
        mean = mean @ r.T + step_size * v @ energy.W.detach()
        cov = r @ cov @ r.T + noise_std**2 * torch.eye(H_DIM, dtype=DTYPE)
    return mean, cov


def _check_moments(h: Tensor, mean: Tensor, cov: Tensor, *, extra_rtol: float = 0.0) -> None:
    """Sample moments of h: (n, B, H) against a Gaussian law, at 5 standard errors."""
    n = h.shape[0]
    std = cov.diagonal().sqrt()
    torch.testing.assert_close(h.mean(0), mean, rtol=0, atol=float(5 * std.max()) / math.sqrt(n))
    centred = h - mean
    sample_cov = torch.einsum("nbi,nbj->bij", centred, centred) / n
    # Var of a sample covariance entry: (Σ_ii Σ_jj + Σ_ij²)/n.
    se = ((torch.outer(std, std).square() + cov.square()) / n).sqrt()
    for b in range(h.shape[1]):
        assert bool(((sample_cov[b] - cov).abs() <= 5 * se + extra_rtol * cov.abs()).all())


def _refined(
    energy: nn.Module, v: Tensor, n: int, refine: Langevin, seed: int, dtype: torch.dtype = DTYPE
) -> Tensor:
    """n draws of the wrong q at v refined on the energy, all from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    h = _wrong_q(dtype).rsample(v, n, generator=generator)
    return refine(energy_at(energy, v), h, generator=generator)


def test_zero_steps_returns_the_base_draws() -> None:
    q, v = _wrong_q(), _data()
    base = q.rsample(v, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(Langevin(0)(energy_at(GaussianLatent(), v), base), base.detach())


def test_draws_follow_the_exact_law_of_k_steps() -> None:
    energy = GaussianLatent()
    v = _data()
    h = _refined(energy, v, 5000, Langevin(10, step_size=0.05, noise_std=0.3), seed=4)
    mean, cov = _langevin_law(energy, v, steps=10, step_size=0.05, noise_std=0.3)
    _check_moments(h, mean, cov)
    # ten steps are not enough here: the law is still far from p(h | v)
    _, exact_cov = energy.posterior(v)
    assert float((cov - exact_cov).abs().max()) > 0.2


def test_many_unadjusted_steps_reach_the_exact_posterior() -> None:
    """noise_std = sqrt(2 step_size): the stationary covariance is A⁻¹ up to a factor
    1/(1 − αλ/2) ≤ 1.02 for the eigenvalues 1 ≤ λ < 2 of A here, and 250 steps shrink
    the initial error by (1 − α)^250 < 0.01."""
    energy = GaussianLatent(scale=0.3)
    step_size = 0.02
    assert float(torch.linalg.eigvalsh(energy.precision().detach()).max()) < 2.0
    v = _data(1)
    refine = Langevin(250, step_size=step_size, noise_std=math.sqrt(2 * step_size))
    h = _refined(energy, v, 10000, refine, seed=5)
    mean, cov = energy.posterior(v)
    _check_moments(h, mean, cov, extra_rtol=0.021)


def test_vaes_with_refined_draws_from_a_wrong_q_gives_the_exact_score() -> None:
    """VaES = −v + W h̄ → −v + W A⁻¹Wᵀv = −(I + WWᵀ)⁻¹v; the estimator draws under
    ``torch.no_grad``, which the refinement must survive."""
    energy = GaussianLatent()
    v = _data(3)
    n = 2000
    estimator = VaES(n, refine=Langevin(150, step_size=0.1, noise_std=0.3))
    score = estimator(energy, _wrong_q(), v, generator=torch.Generator().manual_seed(6))
    w = energy.W.detach()
    exact = -torch.linalg.solve(torch.eye(V_DIM, dtype=DTYPE) + w @ w.T, v.T).T
    _, cov = _langevin_law(energy, v, steps=150, step_size=0.1, noise_std=0.3)
    se = (w @ cov @ w.T).diagonal().sqrt() / math.sqrt(n)
    assert bool(((score - exact).abs() <= 5 * se).all())


@pytest.mark.parametrize("estimator_class", [VaES, VaGES])
def test_the_estimate_refines_on_its_own_conditioned_energy(estimator_class) -> None:
    """The v-part is built once per estimate and serves the refinement too: the energy
    is never called as E(v, h), and the refined draws are those of the plain energy."""
    conditioned = ConditionedGaussianLatent()
    v = _data()
    refine = Langevin(3, step_size=0.05, noise_std=0.3)
    estimator = estimator_class(2, refine=refine)
    score = estimator(conditioned, _wrong_q(), v, generator=torch.Generator().manual_seed(7))
    assert conditioned.conditions == 1
    assert conditioned.calls == 0
    draws = _refined(GaussianLatent(), v, estimator.draws, refine, seed=7)
    node = v.clone().requires_grad_(True)
    value_draws = draws[: estimator.n_samples]
    (expected,) = torch.autograd.grad(-GaussianLatent()(node, value_draws).mean(0).sum(), node)
    torch.testing.assert_close(score, expected)


def test_injected_noise_gives_the_generator_draws() -> None:
    energy, v = GaussianLatent(), _data()
    refine = Langevin(4, step_size=0.05, noise_std=0.3)
    h = _wrong_q().rsample(v, 3, generator=torch.Generator().manual_seed(8))
    generator = torch.Generator().manual_seed(9)
    drawn = refine(energy_at(energy, v), h, generator=generator)
    generator = torch.Generator().manual_seed(9)
    noise = torch.stack([torch.randn(h.shape, generator=generator, dtype=DTYPE) for _ in range(4)])
    assert torch.equal(refine(energy_at(energy, v), h, noise=noise), drawn)


def test_draws_are_detached_and_nothing_gets_a_gradient() -> None:
    q, energy = _wrong_q(), GaussianLatent()
    v = _data().requires_grad_(True)
    h = Langevin(2)(energy_at(energy, v), q.rsample(v, 3))
    assert not h.requires_grad
    assert energy.W.grad is None and all(p.grad is None for p in q.parameters())


def test_bad_arguments_are_refused() -> None:
    energy = GaussianLatent()
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        Langevin(-1)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        Langevin(step_size=0.0)
    with pytest.raises(ValueError, match="noise_std must be a non-negative"):
        Langevin(noise_std=float("nan"))
    with pytest.raises(TypeError, match="refine must be a Langevin refinement"):
        VaES(2, refine=5)  # type: ignore[arg-type]
    v = _data()
    h = _wrong_q().rsample(v, 3)
    with pytest.raises(ValueError, match=r"noise must be a tensor of shape \(2, 3, 2, 2\)"):
        Langevin(2)(energy_at(energy, v), h, noise=torch.zeros(2, 3, 2, 1, dtype=DTYPE))
    with pytest.raises(ValueError, match="noise and generator are exclusive"):
        Langevin(1)(
            energy_at(energy, v),
            h,
            noise=torch.zeros(1, 3, 2, 2, dtype=DTYPE),
            generator=torch.Generator(),
        )
    with pytest.raises(ValueError, match=r"energy\(v, h\) must broadcast"):
        Langevin(1)(lambda h: energy(v, h).sum(0), h)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    n=st.integers(1, 3),
    steps=st.integers(0, 3),
    conditioned=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_hypothesis_shapes(
    batch: int, n: int, steps: int, conditioned: bool, dtype: torch.dtype
) -> None:
    energy = (ConditionedGaussianLatent if conditioned else GaussianLatent)(dtype=dtype)
    h = _refined(energy, _data(batch, dtype), n, Langevin(steps), seed=0, dtype=dtype)
    assert h.shape == (n, batch, H_DIM) and h.dtype == dtype
    assert bool(h.isfinite().all()) and not h.requires_grad
