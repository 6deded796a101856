"""The 2-D toys besides the checkerboard: blobs, swiss roll, moons and rings."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eblvm_data import (
    BLOBS_SEEDS,
    CHECKERBOARD_SEEDS,
    GAUSSIAN_SEEDS,
    MOONS_SEEDS,
    RINGS_SEEDS,
    SWISS_ROLL_SEEDS,
    Splits,
    blobs,
    blobs_log_density,
    blobs_means,
    blobs_splits,
    moons,
    moons_splits,
    rings,
    rings_log_density,
    rings_splits,
    swiss_roll,
    swiss_roll_splits,
)

# (sampler, its splits, its seeds)
TOYS = [
    pytest.param(blobs, blobs_splits, BLOBS_SEEDS, id="blobs"),
    pytest.param(swiss_roll, swiss_roll_splits, SWISS_ROLL_SEEDS, id="swiss_roll"),
    pytest.param(moons, moons_splits, MOONS_SEEDS, id="moons"),
    pytest.param(rings, rings_splits, RINGS_SEEDS, id="rings"),
]
SAMPLERS = [blobs, swiss_roll, moons, rings]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_close_to(estimates: torch.Tensor, expected: torch.Tensor, terms: torch.Tensor) -> None:
    """``estimates``, the means of ``terms: (N, ...)``, are within 5 standard errors of
    ``expected``."""
    error = terms.std(dim=0) / math.sqrt(len(terms))
    assert bool(((estimates - expected).abs() <= 5 * error + 1e-12).all()), (estimates, expected)


# --- what every toy shares ------------------------------------------------------


@pytest.mark.parametrize(("sampler", "make_splits", "seeds"), TOYS)
def test_splits_have_the_default_sizes_the_documented_seeds_and_no_shared_point(
    sampler: Callable, make_splits: Callable, seeds: Splits
) -> None:
    splits = make_splits()
    assert isinstance(splits, Splits)
    assert [tuple(split.shape) for split in splits] == [(60000, 2), (10000, 2), (10000, 2)]
    assert all(split.dtype == torch.float32 for split in splits)
    for split, seed in zip(splits, seeds, strict=True):
        assert torch.equal(split, sampler(len(split), generator=seeded(seed)))
    everything = torch.cat(list(splits))
    assert len(torch.unique(everything, dim=0)) == len(everything)
    assert bool(torch.isfinite(everything).all())


@pytest.mark.parametrize(("sampler", "make_splits", "seeds"), TOYS)
def test_small_splits_repeat(sampler: Callable, make_splits: Callable, seeds: Splits) -> None:
    first = make_splits(n_train=30, n_validation=20, n_test=10)
    second = make_splits(n_train=30, n_validation=20, n_test=10)
    assert [len(split) for split in first] == [30, 20, 10]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(first.test, sampler(10, generator=seeded(seeds.test)))


def test_every_sampler_has_its_own_seeds() -> None:
    seeds = [
        *CHECKERBOARD_SEEDS,
        *GAUSSIAN_SEEDS,
        *BLOBS_SEEDS,
        *SWISS_ROLL_SEEDS,
        *MOONS_SEEDS,
        *RINGS_SEEDS,
    ]
    assert len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_generator_makes_draws_repeatable(sampler: Callable) -> None:
    a, b = sampler(50, generator=seeded(3)), sampler(50, generator=seeded(3))
    assert torch.equal(a, b) and not torch.equal(a, sampler(50, generator=seeded(4)))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n": 0}, ValueError, "n"),
        ({"n": 2.5}, TypeError, "n"),
        ({"n": True}, TypeError, "n"),
        ({"n": 3, "dtype": torch.int64}, TypeError, "dtype"),
        ({"n": 3, "generator": 7}, TypeError, "generator"),
    ],
)
def test_bad_common_arguments_are_refused(
    sampler: Callable, kwargs: dict, error: type, name: str
) -> None:
    with pytest.raises(error, match=name):
        sampler(**kwargs)


@pytest.mark.parametrize(
    ("function", "kwargs", "error", "name"),
    [
        (blobs, {"modes": 0}, ValueError, "modes"),
        (blobs, {"modes": 2.0}, TypeError, "modes"),
        (blobs, {"radius": 0.0}, ValueError, "radius"),
        (blobs, {"radius": math.inf}, ValueError, "radius"),
        (blobs, {"std": -0.1}, ValueError, "std"),
        (blobs, {"std": "0.1"}, TypeError, "std"),
        (swiss_roll, {"noise": -0.1}, ValueError, "noise"),
        (swiss_roll, {"noise": math.nan}, ValueError, "noise"),
        (moons, {"noise": -0.1}, ValueError, "noise"),
        (rings, {"count": 0}, ValueError, "count"),
        (rings, {"noise": 0.0}, ValueError, "noise"),
    ],
)
def test_bad_shape_arguments_are_refused(
    function: Callable, kwargs: dict, error: type, name: str
) -> None:
    with pytest.raises(error, match=name):
        function(3, **kwargs)


@pytest.mark.parametrize(
    ("make_splits", "kwargs", "name"),
    [
        (blobs_splits, {"n_train": 0}, "n_train"),
        (blobs_splits, {"std": 0.0}, "std"),
        (swiss_roll_splits, {"n_validation": 0}, "n_validation"),
        (moons_splits, {"n_test": 0}, "n_test"),
        (rings_splits, {"count": 0}, "count"),
    ],
)
def test_bad_split_arguments_are_refused(make_splits: Callable, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make_splits(**kwargs)


@pytest.mark.parametrize(
    "log_density",
    [blobs_log_density, rings_log_density],
    ids=["blobs", "rings"],
)
@pytest.mark.parametrize(
    ("x", "error"),
    [
        ([[0.1, 0.2]], TypeError),
        (torch.zeros(3, 2, dtype=torch.int64), TypeError),
        (torch.zeros(3), ValueError),
        (torch.zeros(3, 1), ValueError),
        (torch.tensor([[math.inf, 0.1]]), ValueError),
    ],
)
def test_bad_points_are_refused(log_density: Callable, x: object, error: type) -> None:
    with pytest.raises(error, match="x"):
        log_density(x)


@settings(max_examples=20, deadline=None)
@given(
    sampler=st.sampled_from(SAMPLERS),
    n=st.integers(1, 300),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_shape_dtype_and_finiteness_for_any_size(
    sampler: Callable, n: int, dtype: torch.dtype, seed: int
) -> None:
    x = sampler(n, generator=seeded(seed), dtype=dtype)
    assert x.shape == (n, 2) and x.dtype == dtype
    assert bool(torch.isfinite(x).all())


# --- blobs ------------------------------------------------------------------------


def test_blob_centres_lie_evenly_on_the_circle() -> None:
    expected = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(blobs_means(modes=4, radius=2.0), expected, rtol=0, atol=1e-15)
    means = blobs_means()
    assert means.shape == (8, 2) and means.dtype == torch.float64
    torch.testing.assert_close(means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    assert means[1, 0].item() == pytest.approx(math.sqrt(2)) == means[1, 1].item()


@pytest.mark.parametrize(
    ("modes", "radius", "std", "centres"),
    [
        (8, 2.0, 0.25, None),
        (1, 1.5, 0.5, [[1.5, 0.0]]),
        (2, 1.0, 0.3, [[1.0, 0.0], [-1.0, 0.0]]),
        (3, 3.0, 0.2, None),
    ],
)
def test_blob_moments_match_the_mixture(
    modes: int, radius: float, std: float, centres: list | None
) -> None:
    if centres is None:  # evenly on the circle, written out independently
        centres = [
            [radius * math.cos(2 * math.pi * k / modes), radius * math.sin(2 * math.pi * k / modes)]
            for k in range(modes)
        ]
    mu = torch.tensor(centres, dtype=torch.float64)
    mean = mu.mean(dim=0)
    covariance = std**2 * torch.eye(2, dtype=torch.float64) + (mu - mean).T @ (mu - mean) / modes
    n = 100000
    x = blobs(n, modes=modes, radius=radius, std=std, generator=seeded(0), dtype=torch.float64)
    assert_close_to(x.mean(dim=0), mean, x)
    centred = x - mean
    products = centred[:, :, None] * centred[:, None, :]
    assert_close_to(products.mean(dim=0), covariance, products)


def test_each_blob_holds_an_equal_share() -> None:
    n = 80000
    x = blobs(n, generator=seeded(1), dtype=torch.float64)
    nearest = torch.cdist(x, blobs_means()).argmin(dim=1)
    shares = torch.bincount(nearest, minlength=8).double() / n
    assert (shares - 1 / 8).abs().max().item() <= 5 * math.sqrt((1 / 8) * (7 / 8) / n)


def test_blob_log_density_has_the_exact_values() -> None:
    # One blob: the Gaussian itself.
    x = torch.tensor([[1.5, 0.0], [2.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor(
        [-math.log(2 * math.pi * 0.25), -(0.25 + 1.0) / (2 * 0.25) - math.log(2 * math.pi * 0.25)],
        dtype=torch.float64,
    )
    torch.testing.assert_close(blobs_log_density(x, modes=1, radius=1.5, std=0.5), expected)
    # Two blobs at ±1, at the origin: both at distance 1.
    origin = torch.zeros(1, 2, dtype=torch.float64)
    value = -1 / (2 * 0.09) - math.log(2 * math.pi * 0.09)
    log_p = blobs_log_density(origin, modes=2, radius=1.0, std=0.3)
    assert log_p.shape == (1,) and log_p.item() == pytest.approx(value, rel=1e-12)


def test_blob_log_density_keeps_the_dtype_and_is_differentiable() -> None:
    x = blobs(16, generator=seeded(2)).requires_grad_()
    log_p = blobs_log_density(x)
    assert log_p.shape == (16,) and log_p.dtype == torch.float32
    (score,) = torch.autograd.grad(log_p.sum(), x)
    assert bool(torch.isfinite(score).all())


def grid(half_width: float, step: float) -> tuple[torch.Tensor, float]:
    """Midpoints of a square grid over ``[-half_width, half_width]²`` and the cell area."""
    cells = round(2 * half_width / step)
    mid = -half_width + step * (torch.arange(cells, dtype=torch.float64) + 0.5)
    return torch.cartesian_prod(mid, mid), step**2


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"modes": 3, "radius": 1.0, "std": 0.4}],
)
def test_blob_density_integrates_to_one(kwargs: dict) -> None:
    points, area = grid(5.0, 0.02)
    total = blobs_log_density(points, **kwargs).exp().sum().item() * area
    assert total == pytest.approx(1.0, abs=1e-6)


def test_blob_density_agrees_with_the_samples() -> None:
    points, area = grid(4.0, 0.01)
    inside = (points[:, 0] > 0.5) & (points[:, 1].abs() < 1.0)
    mass = blobs_log_density(points[inside]).exp().sum().item() * area
    n = 60000
    x = blobs(n, generator=seeded(3), dtype=torch.float64)
    share = ((x[:, 0] > 0.5) & (x[:, 1].abs() < 1.0)).double().mean().item()
    assert abs(share - mass) <= 5 * math.sqrt(mass * (1 - mass) / n)


# --- swiss roll ------------------------------------------------------------------


def test_noiseless_swiss_roll_lies_on_the_spiral() -> None:
    n = 50000
    x = swiss_roll(n, noise=0.0, generator=seeded(0), dtype=torch.float64)
    radius = x.norm(dim=1)
    assert radius.min().item() >= 1 and radius.max().item() < 3
    angle = 1.5 * math.pi * radius
    spiral = radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    torch.testing.assert_close(x, spiral, rtol=0, atol=1e-12)
    # r = 1 + 2u: mean 2, variance 4/12.
    assert_close_to(radius.mean(), torch.tensor(2.0, dtype=torch.float64), radius)
    spread = (radius - 2).square()
    assert_close_to(spread.mean(), torch.tensor(1 / 3, dtype=torch.float64), spread)


@pytest.mark.parametrize("sampler", [swiss_roll, moons])
def test_noise_is_gaussian_with_the_given_scale(sampler: Callable) -> None:
    n, noise = 50000, 0.3
    clean = sampler(n, noise=0.0, generator=seeded(1), dtype=torch.float64)
    noisy = sampler(n, noise=noise, generator=seeded(1), dtype=torch.float64)
    epsilon = (noisy - clean) / noise
    assert_close_to(epsilon.mean(dim=0), torch.zeros(2, dtype=torch.float64), epsilon)
    products = epsilon[:, :, None] * epsilon[:, None, :]
    assert_close_to(products.mean(dim=0), torch.eye(2, dtype=torch.float64), products)


# --- moons -------------------------------------------------------------------------


def test_noiseless_moons_lie_on_the_two_half_circles() -> None:
    n = 40000
    x = moons(n, noise=0.0, generator=seeded(2), dtype=torch.float64)
    assert x[:, 0].abs().max().item() <= 3 and x[:, 1].abs().max().item() <= 1.5

    def on_upper(p: torch.Tensor) -> torch.Tensor:
        # Upper moon: (2 cos θ - 1, 2 sin θ - ½) with θ in [0, π].
        unit = torch.stack([(p[:, 0] + 1) / 2, (p[:, 1] + 0.5) / 2], dim=1)
        return ((unit.norm(dim=1) - 1).abs() < 1e-12) & (unit[:, 1] >= -1e-12)

    upper, lower = on_upper(x), on_upper(-x)
    assert bool((upper | lower).all())
    share = upper.double().mean().item()
    assert abs(share - 0.5) <= 5 * math.sqrt(0.25 / n)
    # θ uniform: the upper moon's x-coordinate is 2 cos θ - 1, of mean -1.
    first = x[upper & ~lower, 0]
    assert_close_to(first.mean(), torch.tensor(-1.0, dtype=torch.float64), first)


# --- rings -------------------------------------------------------------------------


def test_rings_have_equal_shares_and_the_expected_second_moment() -> None:
    n, count, noise = 60000, 3, 0.1
    x = rings(n, count=count, noise=noise, generator=seeded(0), dtype=torch.float64)
    nearest = x.norm(dim=1).round().clamp(1, count).long()
    shares = torch.bincount(nearest, minlength=count + 1)[1:].double() / n
    p = 1 / count
    assert (shares - p).abs().max().item() <= 5 * math.sqrt(p * (1 - p) / n)
    assert_close_to(x.mean(dim=0), torch.zeros(2, dtype=torch.float64), x)
    # E|x|² = E k² + 2 noise², k uniform on 1 .. count.
    squared = x.square().sum(dim=1)
    expected = sum(k * k for k in range(1, count + 1)) / count + 2 * noise**2
    assert_close_to(squared.mean(), torch.tensor(expected, dtype=torch.float64), squared)


def test_ring_log_density_matches_the_average_over_the_angle() -> None:
    count, noise = 2, 0.3
    x = torch.tensor([[0.0, 0.0], [0.4, -0.3], [1.0, 1.0], [-2.1, 0.2], [3.0, 2.5]])
    x = x.double()
    # The periodic trapezoid rule over the angle converges exponentially.
    angle = 2 * math.pi * torch.arange(4096, dtype=torch.float64) / 4096
    circle = torch.stack([angle.cos(), angle.sin()], dim=1)
    density = torch.zeros(len(x), dtype=torch.float64)
    for k in range(1, count + 1):
        squared = (x[:, None, :] - k * circle).square().sum(dim=-1)
        gaussian = torch.exp(-squared / (2 * noise**2)) / (2 * math.pi * noise**2)
        density += gaussian.mean(dim=1) / count
    torch.testing.assert_close(
        rings_log_density(x, count=count, noise=noise), density.log(), rtol=1e-10, atol=0
    )


@pytest.mark.parametrize("kwargs", [{}, {"count": 1, "noise": 0.25}])
def test_ring_density_integrates_to_one(kwargs: dict) -> None:
    points, area = grid(4.5, 0.01)
    total = rings_log_density(points, **kwargs).exp().sum().item() * area
    assert total == pytest.approx(1.0, abs=1e-6)


def test_ring_density_agrees_with_the_samples() -> None:
    points, area = grid(4.0, 0.01)
    inside = points[:, 0] > points[:, 1].abs() + 0.5
    mass = rings_log_density(points[inside]).exp().sum().item() * area
    n = 60000
    x = rings(n, generator=seeded(4), dtype=torch.float64)
    share = (x[:, 0] > x[:, 1].abs() + 0.5).double().mean().item()
    assert abs(share - mass) <= 5 * math.sqrt(mass * (1 - mass) / n)


def test_ring_log_density_keeps_the_dtype_and_is_differentiable() -> None:
    x = rings(16, generator=seeded(5)).requires_grad_()
    log_p = rings_log_density(x)
    assert log_p.shape == (16,) and log_p.dtype == torch.float32
    (score,) = torch.autograd.grad(log_p.sum(), x)
    assert bool(torch.isfinite(score).all())
