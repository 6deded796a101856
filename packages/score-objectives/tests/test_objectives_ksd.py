"""KSD against a direct double loop and its null and alternative behaviour."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from objectives_testing import TanhScore, seeded
from torch.fx.experimental.proxy_tensor import make_fx

from score_objectives import ksd, median_bandwidth, rbf_stein_kernel
from score_objectives.ksd import _median


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


def sorted_pairs_median_bandwidth(v: torch.Tensor) -> torch.Tensor:
    """The definition: sort the squared distances of the pairs i < j, taken as
    differences, and average the two middle ones."""
    flat = v.flatten(1)
    squared = torch.cat([(flat[i + 1 :] - flat[i]).pow(2).sum(dim=1) for i in range(len(flat) - 1)])
    ordered = squared.sort().values
    n = ordered.numel()
    return (0.5 * (ordered[(n - 1) // 2] + ordered[n // 2]) / 2).sqrt()


@pytest.mark.parametrize(
    ("batch", "ties"),
    # 300 and 302 samples: 44850 and 45451 pairs, enough for the bracketing sample;
    # 40: 780 pairs. Integer data on a 3 × 3 grid give many equal distances.
    [(300, False), (302, False), (40, False), (300, True), (301, True)],
)
def test_median_bandwidth_equals_the_sorted_pairs_median(batch: int, ties: bool) -> None:
    g = seeded(35)
    if ties:
        v = torch.randint(0, 3, (batch, 2), generator=g).to(torch.float64)
    else:
        v = torch.randn(batch, 5, generator=g, dtype=torch.float64) * 3.0 + 10.0
    # The same median, selected instead of sorted, in float64: rounding only.
    torch.testing.assert_close(
        median_bandwidth(v), sorted_pairs_median_bandwidth(v), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("odd", [False, True])
def test_median_selection_is_exact_when_the_sampled_bounds_miss(odd: bool) -> None:
    # _median brackets the middle of n > 32768 values by a strided sample. Here the
    # sampled positions hold values far above, or far below, all the others, so the
    # bounds miss the middle; and uniform values, where they hold it.
    n = 50001 if odd else 50000
    values = torch.rand(n, generator=seeded(36), dtype=torch.float64)
    step = n // 8192
    too_high, too_low = values.clone(), values.clone()
    too_high[::step] += 10.0
    too_low[::step] *= 1e-3
    for case in (values, too_high, too_low):
        ordered = case.sort().values
        expected = 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
        assert float(_median(case)) == float(expected)


def test_median_bandwidth_while_traced_and_mapped_equals_eager() -> None:
    # Under make_fx and vmap the values cannot be read: all pairs are searched. The
    # graph traced at one data set holds for another.
    v = torch.randn(2, 300, 3, generator=seeded(37), dtype=torch.float64)
    expected = torch.stack([sorted_pairs_median_bandwidth(x) for x in v])
    graph = make_fx(median_bandwidth)(v[0])
    torch.testing.assert_close(graph(v[1]), expected[1], rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.func.vmap(median_bandwidth)(v), expected, rtol=1e-12, atol=0)


def test_ksd_with_the_median_bandwidth_equals_ksd_with_it_given() -> None:
    # ksd shares its matrix of squared distances with the median; the result must be
    # the U-statistic at the bandwidth of the definition.
    g = seeded(38)
    model = TanhScore(4, generator=g, dtype=torch.float64)
    v = torch.randn(300, 4, generator=g, dtype=torch.float64)
    h = sorted_pairs_median_bandwidth(v)
    torch.testing.assert_close(
        ksd(model, v, reduction="none"),
        ksd(model, v, bandwidth=h, reduction="none"),
        rtol=1e-12,
        atol=1e-12,
    )


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
