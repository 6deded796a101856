"""Batch augmentations: uniform dequantisation and random horizontal flips."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eblvm_data import dequantize, random_hflip


def grid(levels: int, repeats: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Every level ``k / (levels - 1)`` repeated: ``(levels, repeats)``."""
    k = torch.arange(levels, dtype=dtype).unsqueeze(1).expand(levels, repeats)
    return k / (levels - 1)


def test_each_level_fills_its_own_interval() -> None:
    levels = 5
    x = grid(levels, 1000)
    out = dequantize(x, levels=levels, generator=torch.Generator().manual_seed(0))
    k = torch.arange(levels, dtype=torch.float64).unsqueeze(1)
    assert bool((out >= k / levels - 1e-12).all()) and bool((out < (k + 1) / levels).all())


def test_mean_and_variance_per_level() -> None:
    levels, repeats = 4, 4000
    out = dequantize(
        grid(levels, repeats), levels=levels, generator=torch.Generator().manual_seed(1)
    )
    k = torch.arange(levels, dtype=torch.float64)
    # out = (k + U) / levels: mean (k + ½) / levels, variance 1 / (12 levels²).
    se_mean = math.sqrt(1 / 12) / levels / math.sqrt(repeats)
    assert (out.mean(1) - (k + 0.5) / levels).abs().max().item() <= 5 * se_mean
    variance = 1 / (12 * levels**2)
    se_variance = variance * math.sqrt(0.8 / repeats)  # Var of U's sample variance: 1/180 / n
    assert (out.var(1) - variance).abs().max().item() <= 5 * se_variance


def test_default_levels_on_8_bit_data() -> None:
    generator = torch.Generator().manual_seed(2)
    k = torch.randint(0, 256, (64, 3, 4, 4), generator=generator)
    x = k.float() / 255
    out = dequantize(x, generator=generator)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert bool((out >= k / 256 - 1e-6).all()) and bool((out < (k + 1) / 256 + 1e-6).all())


def test_dequantize_repeats_with_a_seed() -> None:
    x = grid(3, 10)
    a = dequantize(x, levels=3, generator=torch.Generator().manual_seed(3))
    b = dequantize(x, levels=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "name"),
    [
        (torch.zeros(3), {"levels": 1}, ValueError, "levels"),
        (torch.zeros(3), {"levels": 2.0}, TypeError, "levels"),
        (torch.zeros(3, dtype=torch.int64), {}, TypeError, "x"),
        (torch.tensor([0.5, 1.5]), {}, ValueError, "x"),
        (torch.tensor([math.nan]), {}, ValueError, "x"),
        ([0.5], {}, TypeError, "x"),
        (torch.zeros(3), {"generator": 0}, TypeError, "generator"),
    ],
)
def test_dequantize_refuses_bad_input(x: object, kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        dequantize(x, **kwargs)  # type: ignore[arg-type]


def flipped_by_loop(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    width = x.shape[-1]
    for b in range(x.shape[0]):
        if flip[b]:
            for j in range(width):
                out[b, :, :, j] = x[b, :, :, width - 1 - j]
    return out


def test_hflip_follows_the_documented_draw() -> None:
    x = torch.randn(40, 2, 3, 5, generator=torch.Generator().manual_seed(4))
    out = random_hflip(x, generator=torch.Generator().manual_seed(5))
    flip = torch.rand(40, generator=torch.Generator().manual_seed(5)) < 0.5
    assert 0 < int(flip.sum()) < 40
    assert torch.equal(out, flipped_by_loop(x, flip))


def test_hflip_flips_about_half_of_the_images() -> None:
    n = 4000
    x = torch.randn(n, 1, 2, 3, generator=torch.Generator().manual_seed(6))
    out = random_hflip(x, generator=torch.Generator().manual_seed(7))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())
    assert abs(mirrored.double().mean().item() - 0.5) <= 5 * math.sqrt(0.25 / n)


@pytest.mark.parametrize(
    ("x", "error", "name"),
    [(torch.zeros(2, 3, 4), ValueError, "x"), ([[0.0]], TypeError, "x")],
)
def test_hflip_refuses_bad_input(x: object, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        random_hflip(x)  # type: ignore[arg-type]


dtypes = st.sampled_from([torch.float32, torch.float64])


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=4),
    levels=st.integers(2, 300),
    dtype=dtypes,
    seed=st.integers(0, 2**31 - 1),
)
def test_dequantize_shape_dtype_and_range(
    shape: list[int], levels: int, dtype: torch.dtype, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, shape, generator=generator).to(dtype) / (levels - 1)
    out = dequantize(x, levels=levels, generator=generator)
    assert out.shape == x.shape and out.dtype == dtype
    assert bool(torch.isfinite(out).all())
    assert bool((out >= 0).all()) and bool((out <= 1).all())


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(*(st.integers(1, 5) for _ in range(4))),
    dtype=dtypes,
    seed=st.integers(0, 2**31 - 1),
)
def test_hflip_shape_dtype_and_content(
    shape: tuple[int, int, int, int], dtype: torch.dtype, seed: int
) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    out = random_hflip(x, generator=torch.Generator().manual_seed(seed + 1))
    assert out.shape == x.shape and out.dtype == dtype
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
