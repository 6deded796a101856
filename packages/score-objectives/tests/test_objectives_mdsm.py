"""MDSM: the noise schedule and the loss against its formula."""

from __future__ import annotations

import math

import pytest
import torch
from objectives_testing import ElementwiseScore, TanhScore, seeded

from score_objectives import dsm, mdsm, noise_levels


def test_linear_levels_have_the_endpoints_and_equal_steps() -> None:
    levels = noise_levels(12, sigma_min=0.05, sigma_max=1.2, schedule="linear", dtype=torch.float64)
    assert levels.shape == (12,)
    assert levels[0].item() == pytest.approx(0.05, abs=1e-15)
    assert levels[-1].item() == pytest.approx(1.2, abs=1e-15)
    steps = levels.diff()
    torch.testing.assert_close(steps, torch.full_like(steps, 1.15 / 11), rtol=1e-12, atol=1e-14)


def test_geometric_levels_have_the_endpoints_and_equal_ratios() -> None:
    levels = noise_levels(9, sigma_min=0.01, sigma_max=1.0, schedule="geometric")
    assert levels.dtype == torch.get_default_dtype()
    assert levels[0].item() == pytest.approx(0.01, rel=1e-6)
    assert levels[-1].item() == pytest.approx(1.0, rel=1e-6)
    ratios = levels[1:] / levels[:-1]
    # Ratio (σ_max/σ_min)^(1/(B−1)) = 100^(1/8); float32 levels, so rtol 1e-5.
    torch.testing.assert_close(ratios, torch.full_like(ratios, 100 ** (1 / 8)), rtol=1e-5, atol=0)


@pytest.mark.parametrize("schedule", ["linear", "geometric"])
def test_levels_for_one_sample_and_for_an_equal_range(schedule: str) -> None:
    one = noise_levels(1, sigma_min=0.3, sigma_max=0.9, schedule=schedule, dtype=torch.float64)
    assert one.tolist() == pytest.approx([0.3])
    flat = noise_levels(4, sigma_min=0.5, sigma_max=0.5, schedule=schedule, dtype=torch.float64)
    assert flat.tolist() == pytest.approx([0.5] * 4)


@pytest.mark.parametrize("schedule", ["linear", "geometric"])
def test_mdsm_equals_its_formula_sample_by_sample(schedule: str) -> None:
    g = seeded(20)
    model = TanhScore(3, generator=g, dtype=torch.float64)
    v = torch.randn(6, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(6, 3, generator=g, dtype=torch.float64)
    sigma_min, sigma_max, sigma0 = 0.05, 1.2, 0.1
    if schedule == "linear":
        sigmas = [sigma_min + i * (sigma_max - sigma_min) / 5 for i in range(6)]
    else:
        sigmas = [sigma_min * (sigma_max / sigma_min) ** (i / 5) for i in range(6)]
    expected = []
    for row, eps, sigma in zip(v, noise, sigmas, strict=True):
        noisy = row + sigma * eps
        residual = model(noisy) / sigma + (noisy - row) / (sigma * sigma0**2)
        expected.append(0.5 * residual.pow(2).sum())
    expected_values = torch.stack(expected)

    per_sample = mdsm(
        model,
        v,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        sigma0=sigma0,
        schedule=schedule,
        noise=noise,
        reduction="none",
    )

    # float64; (ṽ − v)/σ in the formula loses a few ulps to cancellation and the
    # residual is scaled by 1/σ0² = 100, hence rtol 1e-9.
    torch.testing.assert_close(per_sample, expected_values, rtol=1e-9, atol=1e-9)
    loss = mdsm(
        model,
        v,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        sigma0=sigma0,
        schedule=schedule,
        noise=noise,
    )
    torch.testing.assert_close(loss, expected_values.mean(), rtol=1e-9, atol=1e-9)


def test_mdsm_with_a_single_level_equal_to_sigma0_is_dsm_over_sigma_squared() -> None:
    # With σ_i = σ0 = σ: ½‖s/σ + ε/σ²‖² = ½‖s + ε/σ‖² / σ², DSM's loss over σ².
    g = seeded(21)
    model = ElementwiseScore(torch.float64)
    v = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64)
    sigma = 0.4
    multiscale = mdsm(
        model, v, sigma_min=sigma, sigma_max=sigma, sigma0=sigma, noise=noise, reduction="none"
    )
    single = dsm(model, v, sigma=sigma, noise=noise, reduction="none")
    torch.testing.assert_close(multiscale, single / sigma**2, rtol=1e-12, atol=1e-12)


def test_mdsm_generator_draws_standard_normal_noise() -> None:
    # With a zero score, ½‖ε/σ0²‖² has mean D/(2σ0⁴) and variance D/(2σ0⁸) per
    # sample; over B samples the mean is within 4 SE of D/(2σ0⁴).
    batch, dim, sigma0 = 4000, 2, 0.5
    v = torch.zeros(batch, dim, dtype=torch.float64)
    loss = mdsm(
        torch.zeros_like, v, sigma_min=0.1, sigma_max=1.0, sigma0=sigma0, generator=seeded(22)
    )
    expected = dim / (2 * sigma0**4)
    se = math.sqrt(dim / 2) / sigma0**4 / math.sqrt(batch)
    assert abs(float(loss) - expected) < 4 * se


def test_explicit_levels_give_the_loss_of_the_schedule_they_equal() -> None:
    """Two batches side by side with their own levels: the per-sample losses are those of
    each batch alone with its own schedule (independent runs folded into one batch)."""
    score = TanhScore(3, generator=seeded(0), dtype=torch.float64)
    first, second = (torch.randn(6, 3, generator=seeded(s), dtype=torch.float64) for s in (1, 2))
    noise = torch.randn(12, 3, generator=seeded(3), dtype=torch.float64)
    spread = noise_levels(6, sigma_min=0.1, sigma_max=0.8, schedule="linear", dtype=torch.float64)
    folded = mdsm(
        score,
        torch.cat([first, second]),
        levels=spread.repeat(2),
        noise=noise,
        reduction="none",
    )
    for half, v in enumerate((first, second)):
        alone = mdsm(
            score,
            v,
            sigma_min=0.1,
            sigma_max=0.8,
            noise=noise[6 * half : 6 * (half + 1)],
            reduction="none",
        )
        torch.testing.assert_close(folded[6 * half : 6 * (half + 1)], alone, rtol=0, atol=0)


def test_bad_levels_are_refused() -> None:
    score, v = (
        TanhScore(3, generator=seeded(0), dtype=torch.float64),
        torch.randn(4, 3, dtype=torch.float64),
    )
    good = torch.full((4,), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="exclusive"):
        mdsm(score, v, sigma_min=0.1, sigma_max=0.5, levels=good)
    with pytest.raises(ValueError, match="needs sigma_min and sigma_max, or explicit levels"):
        mdsm(score, v)
    with pytest.raises(ValueError, match=r"levels must be a tensor of shape \(4,\)"):
        mdsm(score, v, levels=good[:3])
    with pytest.raises(ValueError, match="dtype and device"):
        mdsm(score, v, levels=good.float())
    with pytest.raises(ValueError, match="finite and > 0"):
        mdsm(score, v, levels=torch.tensor([0.5, 0.5, 0.0, 0.5], dtype=torch.float64))
