"""KSD against a direct double loop and its null and alternative behaviour."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from objectives_testing import TanhScore, seeded

from score_objectives import ksd, median_bandwidth, rbf_stein_kernel


def stein_kernel_by_autograd(
    x: torch.Tensor, y: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, h: float
) -> torch.Tensor:
    """u(x, y) for one pair, the kernel's derivatives taken by autograd."""
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    k = torch.exp(-(x - y).pow(2).sum() / (2 * h**2))
    grad_x, grad_y = torch.autograd.grad(k, (x, y), create_graph=True)
    trace = sum(
        torch.autograd.grad(grad_y[d], x, retain_graph=True)[0][d] for d in range(x.numel())
    )
    return (sx @ sy * k + sx @ grad_y + sy @ grad_x + trace).detach()


def test_ksd_equals_double_loop_over_distinct_pairs() -> None:
    g = seeded(30)
    model = TanhScore(3, generator=g, dtype=torch.float64)
    v = torch.randn(5, 3, generator=g, dtype=torch.float64)
    s = model(v).detach()
    for bandwidth in (1.3, None):
        h = float(median_bandwidth(v)) if bandwidth is None else bandwidth
        rows = torch.zeros(5, dtype=torch.float64)
        for i in range(5):
            for j in range(5):
                if i != j:
                    rows[i] += stein_kernel_by_autograd(v[i], v[j], s[i], s[j], h) / 4

        per_sample = ksd(model, v, bandwidth=bandwidth, reduction="none")

        # Closed form against autograd derivatives, float64: rounding only.
        torch.testing.assert_close(per_sample.detach(), rows, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(
            ksd(model, v, bandwidth=bandwidth).detach(), rows.mean(), rtol=1e-10, atol=1e-12
        )


def test_rbf_stein_kernel_on_two_different_sets_equals_loop() -> None:
    g = seeded(31)
    x = torch.randn(4, 2, 2, generator=g, dtype=torch.float64)
    y = torch.randn(6, 2, 2, generator=g, dtype=torch.float64) + 0.5
    sx = torch.randn(4, 2, 2, generator=g, dtype=torch.float64)
    sy = torch.randn(6, 2, 2, generator=g, dtype=torch.float64)
    expected = torch.tensor(
        [
            [
                float(
                    stein_kernel_by_autograd(
                        xi.flatten(), yj.flatten(), a.flatten(), b.flatten(), 0.8
                    )
                )
                for yj, b in zip(y, sy, strict=True)
            ]
            for xi, a in zip(x, sx, strict=True)
        ],
        dtype=torch.float64,
    )
    got = rbf_stein_kernel(x, y, sx, sy, bandwidth=0.8)
    assert got.shape == (4, 6)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch", [3, 4])
def test_median_bandwidth_is_half_the_median_squared_distance(batch: int) -> None:
    # 3 samples give 3 pairs (odd count), 4 give 6 (even: mean of the middle two).
    v = torch.randn(batch, 2, 3, generator=seeded(32), dtype=torch.float64)
    squared = [float((v[i] - v[j]).pow(2).sum()) for i in range(batch) for j in range(i + 1, batch)]
    expected = math.sqrt(statistics.median(squared) / 2)
    assert float(median_bandwidth(v)) == pytest.approx(expected, rel=1e-12)


def test_ksd_is_near_zero_for_samples_from_the_model() -> None:
    # Model N(0, I) in 2-D, score −x; data drawn from it.
    batch = 400
    v = torch.randn(batch, 2, generator=seeded(33), dtype=torch.float64)
    score = lambda x: -x
    value = float(ksd(score, v))
    # Under the model the Stein kernel is degenerate (E_y u(x, y) = 0), so the
    # U-statistic's variance is 2 E[u²] / (B(B−1)); estimate E[u²] over i ≠ j; 4 SE.
    u = rbf_stein_kernel(v, v, score(v), score(v), bandwidth=median_bandwidth(v))
    off = ~torch.eye(batch, dtype=torch.bool)
    se = math.sqrt(2 * float(u[off].pow(2).mean()) / (batch * (batch - 1)))
    assert abs(value) < 4 * se


def test_ksd_is_clearly_positive_for_shifted_samples() -> None:
    batch = 400
    v = torch.randn(batch, 2, generator=seeded(34), dtype=torch.float64) + 1.0
    per_sample = ksd(lambda x: -x, v, reduction="none")
    # Away from the model the U-statistic is non-degenerate: its SE is about
    # 2·std(row means)/sqrt(B) (Hoeffding projection); demand 5 SE above zero.
    se = 2 * float(per_sample.std()) / math.sqrt(batch)
    assert float(per_sample.mean()) > 5 * se
    torch.testing.assert_close(ksd(lambda x: -x, v), per_sample.mean())
