"""Checkerboard sampler and its fixed splits."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eblvm_data import (
    CHECKERBOARD_LOG_DENSITY,
    CHECKERBOARD_SEEDS,
    Splits,
    checkerboard,
    checkerboard_log_density,
    checkerboard_splits,
)


def in_support(x: torch.Tensor) -> torch.Tensor:
    lower = (x >= 0) & (x <= 0.5)
    upper = (x >= 0.5) & (x <= 1)
    return lower.all(dim=1) | upper.all(dim=1)


def test_points_lie_on_the_two_diagonal_squares() -> None:
    x = checkerboard(20000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2) and x.dtype == torch.float32
    assert bool(in_support(x).all())


def test_squares_are_balanced_and_uniform_within() -> None:
    n = 40000
    x = checkerboard(n, generator=torch.Generator().manual_seed(1))
    lower = (x < 0.5).all(dim=1).double().mean().item()
    assert abs(lower - 0.5) <= 5 * math.sqrt(0.25 / n)
    # Cells of side ¼: the 8 cells inside the squares hold ⅛ each, the others none.
    cells = (x * 4).floor().clamp(max=3).long()
    counts = torch.zeros(4, 4)
    counts.index_put_((cells[:, 0], cells[:, 1]), torch.ones(n), accumulate=True)
    p = 1 / 8
    for i in range(4):
        for j in range(4):
            if (i < 2) == (j < 2):
                assert abs(counts[i, j].item() / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
            else:
                assert counts[i, j].item() == 0


def test_log_density_is_minus_log_of_the_support_area() -> None:
    assert CHECKERBOARD_LOG_DENSITY == pytest.approx(math.log(2))
    n = 40000
    uniform = torch.rand(n, 2, generator=torch.Generator().manual_seed(2))
    area = in_support(uniform).double().mean().item()
    assert abs(area - math.exp(-CHECKERBOARD_LOG_DENSITY)) <= 5 * math.sqrt(0.25 / n)


def test_generator_makes_draws_repeatable() -> None:
    a = checkerboard(50, generator=torch.Generator().manual_seed(3))
    b = checkerboard(50, generator=torch.Generator().manual_seed(3))
    c = checkerboard(50, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_splits_have_the_default_sizes_and_repeat() -> None:
    first, second = checkerboard_splits(), checkerboard_splits()
    assert isinstance(first, Splits)
    assert [len(split) for split in first] == [60000, 10000, 10000]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_each_split_comes_from_its_own_documented_seed() -> None:
    splits = checkerboard_splits(n_train=30, n_validation=20, n_test=10)
    assert len(set(CHECKERBOARD_SEEDS)) == 3
    for split, seed in zip(splits, CHECKERBOARD_SEEDS, strict=True):
        expected = checkerboard(len(split), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(split, expected)
    assert not torch.equal(splits.train[:10], splits.validation[:10])
    assert not torch.equal(splits.validation[:10], splits.test)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n": 0}, ValueError, "n"),
        ({"n": 2.5}, TypeError, "n"),
        ({"n": True}, TypeError, "n"),
        ({"n": 3, "dtype": torch.int64}, TypeError, "dtype"),
        ({"n": 3, "generator": 7}, TypeError, "generator"),
        ({"n": 3, "columns": 1}, ValueError, "columns"),
        ({"n": 3, "columns": 3.0}, TypeError, "columns"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        checkerboard(**kwargs)


@pytest.mark.parametrize("name", ["n_train", "n_validation", "n_test"])
def test_bad_split_sizes_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        checkerboard_splits(**{name: 0})


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_shape_dtype_and_support_for_any_size(n: int, dtype: torch.dtype, seed: int) -> None:
    x = checkerboard(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    assert x.shape == (n, 2) and x.dtype == dtype
    assert bool(torch.isfinite(x).all()) and bool(in_support(x).all())


# --- boards of any size -------------------------------------------------------


def two_square_board(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 2 × 2 board as version 0.1.0 drew it, kept here to pin its output."""
    generator = torch.Generator().manual_seed(seed)
    square = torch.randint(0, 2, (n, 1), generator=generator).to(dtype)
    offset = torch.rand(n, 2, generator=generator, dtype=dtype)
    return 0.5 * (square + offset)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_board_is_bit_identical_to_the_two_square_version(dtype: torch.dtype) -> None:
    for seed in (0, 1, 7):
        x = checkerboard(1000, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        assert torch.equal(x, two_square_board(1000, seed, dtype))
        x2 = checkerboard(
            1000, columns=2, generator=torch.Generator().manual_seed(seed), dtype=dtype
        )
        assert torch.equal(x2, x)


def test_default_splits_are_bit_identical_to_the_two_square_version() -> None:
    splits = checkerboard_splits()
    for split, seed in zip(splits, (1, 2, 3), strict=True):
        assert torch.equal(split, two_square_board(len(split), seed))


def cell_counts(x: torch.Tensor, columns: int) -> torch.Tensor:
    """How many points of ``x: (N, 2)`` (float64, inside its cells) fall in each cell."""
    cells = (x * columns).floor().long()
    counts = torch.zeros(columns, columns)
    counts.index_put_((cells[:, 0], cells[:, 1]), torch.ones(len(x)), accumulate=True)
    return counts


@pytest.mark.parametrize(("columns", "dark"), [(2, 2), (3, 5), (4, 8), (5, 13)])
def test_points_fill_the_dark_cells_evenly_and_skip_the_light_ones(columns: int, dark: int) -> None:
    n = 26000
    x = checkerboard(
        n, columns=columns, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    assert x.shape == (n, 2) and x.dtype == torch.float64
    assert bool(((x >= 0) & (x < 1)).all())
    counts = cell_counts(x, columns)
    p = 1 / dark
    n_dark = 0
    for i in range(columns):
        for j in range(columns):
            if (i + j) % 2 == 0:
                n_dark += 1
                assert abs(counts[i, j].item() / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
            else:
                assert counts[i, j].item() == 0
    assert n_dark == dark


@pytest.mark.parametrize("columns", [2, 3, 4, 5, 8])
def test_log_density_is_minus_log_of_the_dark_area(columns: int) -> None:
    dark = math.ceil(columns**2 / 2)
    expected = math.log(columns**2 / dark)
    centres = (torch.arange(columns, dtype=torch.float64) + 0.5) / columns
    i, j = torch.meshgrid(torch.arange(columns), torch.arange(columns), indexing="ij")
    points = torch.stack([centres[i.flatten()], centres[j.flatten()]], dim=1)
    log_p = checkerboard_log_density(points, columns=columns)
    assert log_p.shape == (columns**2,) and log_p.dtype == torch.float64
    is_dark = (i + j).flatten() % 2 == 0
    assert torch.equal(log_p[is_dark], torch.full((dark,), expected, dtype=torch.float64))
    assert bool((log_p[~is_dark] == -math.inf).all())
    if columns % 2 == 0:
        assert expected == pytest.approx(math.log(2), abs=1e-15)


def test_default_log_density_is_the_constant() -> None:
    x = checkerboard(500, generator=torch.Generator().manual_seed(6))
    log_p = checkerboard_log_density(x)
    assert log_p.dtype == torch.float32
    assert torch.equal(log_p, torch.full((500,), CHECKERBOARD_LOG_DENSITY, dtype=torch.float32))


@pytest.mark.parametrize("columns", [2, 3, 5])
def test_log_density_integrates_to_one(columns: int) -> None:
    # Midpoints of a 300 × 300 grid: 300 is a multiple of each board size, so no
    # midpoint lies on a cell edge and the sum is exact up to rounding.
    side = 300
    mid = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    grid = torch.cartesian_prod(mid, mid)
    total = checkerboard_log_density(grid, columns=columns).exp().sum().item() / side**2
    assert total == pytest.approx(1.0, abs=1e-12)


def test_log_density_is_minus_infinity_off_the_unit_square() -> None:
    x = torch.tensor([[-0.01, 0.2], [0.2, -0.01], [1.01, 0.9], [0.9, 1.01], [5.0, 5.0]])
    assert bool((checkerboard_log_density(x) == -math.inf).all())
    corners = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
    assert bool(torch.isfinite(checkerboard_log_density(corners)).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("columns", [3, 5, 7, 12, 100])
def test_samples_at_the_far_edge_of_a_dark_cell_keep_a_finite_density(
    columns: int, dtype: torch.dtype
) -> None:
    # The 64 largest offsets below 1: the sum cell + offset, then the division,
    # may round onto the next (light) cell's edge. The second coordinate stays
    # in the middle of the cell, so that the neighbour across the edge is light.
    offsets = [torch.tensor(1.0, dtype=dtype)]
    for _ in range(64):
        offsets.append(offsets[-1].nextafter(torch.tensor(0.0, dtype=dtype)))
    offset = torch.stack(offsets[1:])
    cells = torch.arange(columns - 1, dtype=dtype).repeat_interleave(len(offset))
    edge = (cells + offset.repeat(columns - 1)) / columns
    x = torch.stack([edge, (cells + 0.5) / columns], dim=1)
    assert bool(torch.isfinite(checkerboard_log_density(x, columns=columns)).all())
    samples = checkerboard(
        20000, columns=columns, generator=torch.Generator().manual_seed(8), dtype=dtype
    )
    assert bool(torch.isfinite(checkerboard_log_density(samples, columns=columns)).all())


def test_board_splits_come_from_the_documented_seeds_and_are_disjoint() -> None:
    splits = checkerboard_splits(columns=4, n_train=3000, n_validation=500, n_test=400)
    assert [tuple(split.shape) for split in splits] == [(3000, 2), (500, 2), (400, 2)]
    for split, seed in zip(splits, CHECKERBOARD_SEEDS, strict=True):
        expected = checkerboard(
            len(split), columns=4, generator=torch.Generator().manual_seed(seed)
        )
        assert torch.equal(split, expected)
    everything = torch.cat(list(splits))
    assert len(torch.unique(everything, dim=0)) == len(everything)
    assert torch.equal(
        checkerboard_splits(columns=4, n_train=3000, n_validation=500, n_test=400).test, splits.test
    )


def test_default_splits_are_disjoint() -> None:
    everything = torch.cat(list(checkerboard_splits()))
    assert len(torch.unique(everything, dim=0)) == len(everything)


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "name"),
    [
        ([[0.1, 0.2]], {}, TypeError, "x"),
        (torch.zeros(3, 2, dtype=torch.int64), {}, TypeError, "x"),
        (torch.zeros(3), {}, ValueError, "x"),
        (torch.zeros(3, 3), {}, ValueError, "x"),
        (torch.tensor([[math.nan, 0.1]]), {}, ValueError, "x"),
        (torch.zeros(3, 2), {"columns": 1}, ValueError, "columns"),
        (torch.zeros(3, 2), {"columns": "4"}, TypeError, "columns"),
    ],
)
def test_bad_log_density_arguments_are_refused(
    x: object, kwargs: dict, error: type, name: str
) -> None:
    with pytest.raises(error, match=name):
        checkerboard_log_density(x, **kwargs)  # type: ignore[arg-type]


def test_bad_board_size_in_splits_is_refused() -> None:
    with pytest.raises(ValueError, match="columns"):
        checkerboard_splits(columns=0)
