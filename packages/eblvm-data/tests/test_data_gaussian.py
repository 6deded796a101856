"""Gaussian sampler and its fixed splits."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eblvm_data import GAUSSIAN_SEEDS, gaussian, gaussian_splits


def test_moments_match_mean_and_std() -> None:
    n, dim, mean, std = 40000, 3, 1.5, 0.5
    x = gaussian(dim, n, mean=mean, std=std, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, dim) and x.dtype == torch.float32
    x64 = x.double()
    assert (x64.mean(0) - mean).abs().max().item() <= 5 * std / math.sqrt(n)
    variance = x64.var(0)
    assert (variance - std**2).abs().max().item() <= 5 * std**2 * math.sqrt(2 / (n - 1))
    correlation = torch.corrcoef(x64.T)
    off_diagonal = correlation - torch.diag(torch.diagonal(correlation))
    assert off_diagonal.abs().max().item() <= 5 / math.sqrt(n)


def test_splits_follow_the_paper_and_the_documented_seeds() -> None:
    splits = gaussian_splits(4)
    assert [tuple(split.shape) for split in splits] == [(16000, 4), (2000, 4), (2000, 4)]
    again = gaussian_splits(4)
    assert len(set(GAUSSIAN_SEEDS)) == 3
    for split, repeat, seed in zip(splits, again, GAUSSIAN_SEEDS, strict=True):
        assert torch.equal(split, repeat)
        expected = gaussian(4, len(split), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(split, expected)
    assert not torch.equal(splits.validation, splits.test)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dim": 0, "n": 3}, ValueError, "dim"),
        ({"dim": 2, "n": 0}, ValueError, "n"),
        ({"dim": 2, "n": 3, "std": 0.0}, ValueError, "std"),
        ({"dim": 2, "n": 3, "std": -1.0}, ValueError, "std"),
        ({"dim": 2, "n": 3, "std": math.nan}, ValueError, "std"),
        ({"dim": 2, "n": 3, "mean": math.inf}, ValueError, "mean"),
        ({"dim": 2, "n": 3, "mean": "0"}, TypeError, "mean"),
        ({"dim": 2, "n": 3, "dtype": torch.int32}, TypeError, "dtype"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        gaussian(**kwargs)


def test_bad_split_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="dim"):
        gaussian_splits(0)
    with pytest.raises(ValueError, match="n_test"):
        gaussian_splits(2, n_test=0)


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(1, 8),
    n=st.integers(1, 200),
    mean=st.floats(-10, 10),
    std=st.floats(0.01, 10),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shape_dtype_and_finiteness(
    dim: int, n: int, mean: float, std: float, dtype: torch.dtype
) -> None:
    x = gaussian(
        dim, n, mean=mean, std=std, generator=torch.Generator().manual_seed(0), dtype=dtype
    )
    assert x.shape == (n, dim) and x.dtype == dtype
    assert bool(torch.isfinite(x).all())
