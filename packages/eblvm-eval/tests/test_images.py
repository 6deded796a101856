"""Image grids (layout, PNG contents, refusals) and latent interpolation."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import image as mpl_image
from torch import Tensor

from eblvm_eval.images import image_grid, interpolate_latents, save_image_grid


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- grids


def test_grid_places_each_image_in_its_cell() -> None:
    images = torch.rand(5, 3, 4, 6, generator=seeded(0))

    grid = image_grid(images, nrow=2, padding=1)

    # 3 rows × 2 columns of 4×6 images, 1 pixel of black around each.
    assert grid.shape == (3, 3 * 5 + 1, 2 * 7 + 1)
    expected = torch.zeros(3, 16, 15)
    for index in range(5):
        row, col = divmod(index, 2)
        for y in range(4):
            for x in range(6):
                expected[:, 1 + row * 5 + y, 1 + col * 7 + x] = images[index, :, y, x]
    torch.testing.assert_close(grid, expected, rtol=0, atol=0)


def test_grid_defaults_to_a_square_layout_and_caps_nrow() -> None:
    images = torch.rand(10, 1, 2, 2, generator=seeded(1))

    assert image_grid(images).shape == (1, 3 * 4 + 2, 4 * 4 + 2)  # ceil(√10) = 4 per row
    assert image_grid(images, nrow=50, padding=0).shape == (1, 2, 20)


@pytest.mark.parametrize("channels", [1, 3])
def test_saved_png_holds_the_grid(tmp_path: Path, channels: int) -> None:
    images = torch.rand(3, channels, 5, 4, generator=seeded(2), dtype=torch.float64)
    path = tmp_path / "out" / "grid.png"

    returned = save_image_grid(images, path, nrow=3, padding=2)

    assert returned == path
    assert sorted(os.listdir(path.parent)) == ["grid.png"]  # no temporary file left
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpl_image.imread(path)
    # Enlarged 13 times (the least that makes 5 rows at least 64), a light separator.
    enlarged = images.repeat_interleave(13, dim=2).repeat_interleave(13, dim=3)
    grid = image_grid(enlarged, nrow=3, padding=2, fill=0.85)
    expected = grid.expand(3, -1, -1).permute(1, 2, 0).numpy()
    assert pixels.shape[:2] == expected.shape[:2]
    # 8-bit storage: each value is within one step (1/255) of the grid's.
    np.testing.assert_allclose(pixels[..., :3], expected, rtol=0, atol=1 / 255 + 1e-6)
    if pixels.shape[-1] == 4:
        np.testing.assert_array_equal(pixels[..., 3], 1.0)


def test_the_suffix_names_the_format(tmp_path: Path) -> None:
    images = torch.rand(2, 3, 8, 8, generator=seeded(4))
    assert save_image_grid(images, tmp_path / "grid.jpg").read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match=r"path must end in one of .png, .jpg, .jpeg"):
        save_image_grid(images, tmp_path / "grid.gif")
    assert sorted(os.listdir(tmp_path)) == ["grid.jpg"]
    small = save_image_grid(images, tmp_path / "small.png", scale=1, padding=0)
    assert mpl_image.imread(small).shape[:2] == (8, 16)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_images_are_refused_and_nothing_is_written(tmp_path: Path, bad: float) -> None:
    images = torch.rand(2, 3, 4, 4, generator=seeded(3))
    images[1, 2, 0, 3] = bad
    with pytest.raises(ValueError, match="images contains non-finite"):
        save_image_grid(images, tmp_path / "grid.png")
    assert os.listdir(tmp_path) == []


def test_bad_grid_arguments_are_refused(tmp_path: Path) -> None:
    good = torch.rand(2, 3, 4, 4, generator=seeded(4))
    path = tmp_path / "grid.png"
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        save_image_grid(good * 2, path)
    with pytest.raises(ValueError, match="images must have shape"):
        save_image_grid(torch.rand(2, 2, 4, 4), path)
    with pytest.raises(ValueError, match="images must have shape"):
        save_image_grid(torch.rand(3, 4, 4), path)
    with pytest.raises(TypeError, match="images must be a floating-point"):
        save_image_grid(torch.ones(1, 1, 2, 2, dtype=torch.uint8), path)
    with pytest.raises(TypeError, match=r"images must be a torch\.Tensor"):
        save_image_grid(good.numpy(), path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nrow"):
        save_image_grid(good, path, nrow=0)
    with pytest.raises(ValueError, match="padding"):
        save_image_grid(good, path, padding=-1)
    assert os.listdir(tmp_path) == []


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(1, 9),
    channels=st.sampled_from([1, 3]),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    nrow=st.one_of(st.none(), st.integers(1, 12)),
    padding=st.integers(0, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_grid_shape_and_contents(
    count: int,
    channels: int,
    height: int,
    width: int,
    nrow: int | None,
    padding: int,
    dtype: torch.dtype,
) -> None:
    images = torch.rand(count, channels, height, width, generator=seeded(count), dtype=dtype)

    grid = image_grid(images, nrow=nrow, padding=padding)

    cols = min(count, math.ceil(math.sqrt(count)) if nrow is None else nrow)
    rows = math.ceil(count / cols)
    assert grid.shape == (
        channels,
        rows * (height + padding) + padding,
        cols * (width + padding) + padding,
    )
    assert grid.dtype == dtype
    # Every pixel of every image appears once; everything else is padding (0).
    assert torch.isclose(grid.sum(), images.sum(), rtol=1e-5)
    assert int((grid != 0).sum()) == int((images != 0).sum())


# --------------------------------------------------------------------------- interpolation


def test_linear_interpolation_is_evenly_spaced_between_the_endpoints() -> None:
    h0 = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    h1 = torch.tensor([4.0, 1.0, 2.0], dtype=torch.float64)

    path = interpolate_latents(h0, h1, 5)

    expected = torch.tensor(
        [[0.0, 1.0, -2.0], [1.0, 1.0, -1.0], [2.0, 1.0, 0.0], [3.0, 1.0, 1.0], [4.0, 1.0, 2.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(path, expected, rtol=0, atol=1e-15)


def test_spherical_interpolation_follows_the_great_circle() -> None:
    h0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    h1 = torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)

    path = interpolate_latents(h0, h1, 4, method="spherical")

    # ω = π/2: sin((1 − t)π/2) h0 + sin(tπ/2) h1 = (cos(tπ/2), 2 sin(tπ/2), 0).
    t = torch.linspace(0, 1, 4, dtype=torch.float64)
    expected = torch.stack(
        [torch.cos(t * math.pi / 2), 2 * torch.sin(t * math.pi / 2), torch.zeros(4)], dim=1
    )
    torch.testing.assert_close(path, expected, rtol=0, atol=1e-14)


def test_spherical_interpolation_of_unit_vectors_keeps_unit_norm_and_equal_angles() -> None:
    g = seeded(5)
    h0 = torch.randn(16, generator=g, dtype=torch.float64)
    h1 = torch.randn(16, generator=g, dtype=torch.float64)
    h0, h1 = h0 / h0.norm(), h1 / h1.norm()

    path = interpolate_latents(h0, h1, 7, method="spherical")

    torch.testing.assert_close(path.norm(dim=1), torch.ones(7, dtype=torch.float64))
    steps = (path[:-1] * path[1:]).sum(dim=1).clamp(-1, 1).acos()
    torch.testing.assert_close(steps, torch.full((6,), float(steps.mean()), dtype=torch.float64))
    assert float(steps.sum()) == pytest.approx(float((h0 @ h1).acos()), rel=1e-12)


def test_spherical_interpolation_of_parallel_vectors_is_linear() -> None:
    h0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    path = interpolate_latents(h0, 3 * h0, 3, method="spherical")
    torch.testing.assert_close(path, interpolate_latents(h0, 3 * h0, 3))


def test_interpolation_refuses_bad_input() -> None:
    h = torch.ones(3)
    with pytest.raises(ValueError, match="opposite directions"):
        interpolate_latents(h, -2 * h, 3, method="spherical")
    with pytest.raises(ValueError, match="non-zero h0 and h1"):
        interpolate_latents(torch.zeros(3), h, 3, method="spherical")
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        interpolate_latents(h, h, 1)
    with pytest.raises(ValueError, match="method"):
        interpolate_latents(h, h, 3, method="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="h1 must match"):
        interpolate_latents(h, torch.ones(4), 3)
    with pytest.raises(ValueError, match="h1 must match"):
        interpolate_latents(h, torch.ones(3, dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="h0 must have shape"):
        interpolate_latents(torch.ones(1, 3), torch.ones(1, 3), 3)
    with pytest.raises(ValueError, match="h1 contains non-finite"):
        interpolate_latents(h, torch.tensor([1.0, float("nan"), 0.0]), 3)
    with pytest.raises(TypeError, match="h0 must be a floating-point"):
        interpolate_latents(torch.ones(3, dtype=torch.long), h, 3)


@settings(max_examples=30, deadline=None)
@given(
    dim=st.integers(1, 8),
    n=st.integers(2, 10),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    method=st.sampled_from(["linear", "spherical"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_interpolation_shape_dtype_and_endpoints(
    dim: int, n: int, dtype: torch.dtype, method: str, seed: int
) -> None:
    g = seeded(seed)
    h0 = torch.randn(dim, generator=g, dtype=dtype)
    h1 = torch.randn(dim, generator=g, dtype=dtype)
    cosine = float(h0.double() @ h1.double() / (h0.double().norm() * h1.double().norm()))
    if method == "spherical" and cosine < -1 + 1e-14:
        with pytest.raises(ValueError, match="opposite directions"):
            interpolate_latents(h0, h1, n, method=method)  # type: ignore[arg-type]
        return

    path: Tensor = interpolate_latents(h0, h1, n, method=method)  # type: ignore[arg-type]

    assert path.shape == (n, dim) and path.dtype == dtype
    assert torch.isfinite(path).all()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(path[0], h0, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(path[-1], h1, rtol=tolerance, atol=tolerance)
