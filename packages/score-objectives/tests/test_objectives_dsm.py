"""DSM against its formula and against SM as σ → 0."""

from __future__ import annotations

import math

import pytest
import torch
from objectives_testing import GaussianScore, TanhScore, random_spd, seeded

from score_objectives import dsm, sm


def test_dsm_equals_its_formula_with_injected_noise() -> None:
    g = seeded(10)
    model = TanhScore(3, generator=g, dtype=torch.float64)
    v = torch.randn(7, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(7, 3, generator=g, dtype=torch.float64)
    sigma = 0.3
    noisy = v + sigma * noise
    expected = 0.5 * (model(noisy) + (noisy - v) / sigma**2).pow(2).sum(dim=1)

    per_sample = dsm(model, v, sigma=sigma, noise=noise, reduction="none")

    # (ṽ − v)/σ² in the formula loses a few ulps of ε/σ to cancellation; float64.
    torch.testing.assert_close(per_sample, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(dsm(model, v, sigma=sigma, noise=noise), expected.mean())


@pytest.mark.parametrize("sigma", [0.2, 0.05, 0.01])
def test_dsm_approaches_sm_as_sigma_vanishes(sigma: float) -> None:
    dim, pairs = 3, 16384
    g = seeded(11)
    precision = random_spd(dim, generator=g, dtype=torch.float64)
    model = GaussianScore(precision, torch.randn(dim, generator=g, dtype=torch.float64))
    data = torch.randn(pairs, dim, generator=g, dtype=torch.float64) * 1.5 + 0.5
    eps = torch.randn(pairs, dim, generator=g, dtype=torch.float64)
    # Antithetic pairs (ε, −ε) on the same data point: the terms odd in ε, whose
    # variance grows like 1/σ², cancel within each pair; the expectation is unchanged.
    v = torch.cat([data, data])
    noise = torch.cat([eps, -eps])

    per_sample = dsm(model, v, sigma=sigma, noise=noise, reduction="none")
    pair_values = 0.5 * (per_sample[:pairs] + per_sample[pairs:])
    sm_per_sample = sm(model, data, reduction="none")

    # For the linear score s = −P(x − μ), E[DSM] = SM + D/(2σ²) + σ² tr(P²)/2 exactly,
    # so DSM − D/(2σ²) → SM as σ → 0. ‖ε‖²/(2σ²) is the only part of the D/(2σ²)
    # term, it has mean D/(2σ²), no θ-dependence and a variance of order 1/σ⁴;
    # subtracting its realised value (a control variate) leaves the per-pair
    # difference σ²‖Pε‖²/2 − (εᵀPε − tr P), whose empirical SE sets the tolerance (4 SE).
    p = model.precision.detach()
    bias = sigma**2 * float(torch.trace(p @ p)) / 2
    difference = (pair_values - eps.pow(2).sum(1) / (2 * sigma**2) - sm_per_sample).detach()
    se = float(difference.std()) / math.sqrt(pairs)
    assert abs(float(difference.mean()) - bias) < 4 * se
    assert se < 0.05

    # θ-gradients: ∇_R DSM = ∇_R SM + σ²P + noise, ∇_μ DSM = ∇_μ SM (the μ-dependent
    # terms are odd in ε or match SM's). The noise in R is the gradient of
    # −(εᵀPε − tr P) + σ²(‖Pε‖² − tr P²)/2, entries ε_iε_j (variance ≤ 2) plus a
    # σ²‖P‖-scaled term of the same kind; per pair, so 5·sqrt(2/N)·(1 + σ²‖P‖₂).
    params = list(model.parameters())
    dsm_grads = torch.autograd.grad(per_sample.mean(), params)
    sm_grads = torch.autograd.grad(sm_per_sample.mean(), params)
    tolerance = 5 * math.sqrt(2 / pairs) * (1 + sigma**2 * float(torch.linalg.matrix_norm(p, 2)))
    assert torch.all((dsm_grads[0] - sm_grads[0] - sigma**2 * p).abs() < tolerance)
    torch.testing.assert_close(dsm_grads[1], sm_grads[1], rtol=1e-8, atol=1e-8)
