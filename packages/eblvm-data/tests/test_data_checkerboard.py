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
