from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_testing import random_grbm
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from eblvm_eval import density_plot, exact_log_partition, log_likelihood

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def gaussian_log_density(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - 0.5) / 0.2).square().sum(-1)


def test_writes_a_png(tmp_path: Path) -> None:
    data = torch.rand(500, 2, generator=torch.Generator().manual_seed(0))
    path = density_plot(
        gaussian_log_density,
        data,
        path=tmp_path / "density.png",
        bounds=((0.0, 1.0), (0.0, 1.0)),
        resolution=30,
        title="a Gaussian",
    )
    assert path == tmp_path / "density.png"
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > len(PNG_SIGNATURE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["density.png"]


def test_plots_a_grbm_with_inferred_bounds(tmp_path: Path) -> None:
    grbm = random_grbm(2, 3, seed=1, dtype=torch.float32)
    log_z = exact_log_partition(grbm)
    data = np.random.default_rng(0).normal(size=(200, 2))
    path = density_plot(
        lambda x: log_likelihood(grbm, x, log_z=log_z),
        data,
        path=tmp_path / "nested" / "grbm.png",
        resolution=20,
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "density.png"
    path.write_bytes(b"old")

    def fail(self: Figure, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        density_plot(gaussian_log_density, torch.rand(10, 2), path=path, resolution=5)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["density.png"]


def test_refuses_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    good = torch.rand(10, 2)
    for data in (torch.rand(10), torch.rand(10, 3), torch.rand(10, 2, 1), np.zeros((0, 2))):
        with pytest.raises(ValueError, match=r"data must have shape \(N, 2\)"):
            density_plot(gaussian_log_density, data, path=path)
    with pytest.raises(ValueError, match="data must hold finite"):
        density_plot(gaussian_log_density, np.full((3, 2), math.nan), path=path)
    with pytest.raises(TypeError, match="data must be"):
        density_plot(gaussian_log_density, [[0.0, 1.0]], path=path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution"):
        density_plot(gaussian_log_density, good, path=path, resolution=1)
    for bounds in (((0, 1),), ((0, 1), (1, 0)), ((0, 1), (0, math.inf)), ((0, 1), ("a", 1))):
        with pytest.raises(ValueError, match="bounds"):
            density_plot(gaussian_log_density, good, path=path, bounds=bounds)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_density_fn must map"):
        density_plot(lambda x: x, good, path=path, resolution=5)
    with pytest.raises(ValueError, match="log_density_fn returned NaN"):
        density_plot(lambda x: x[:, 0] * math.nan, good, path=path, resolution=5)
    assert not any(tmp_path.iterdir())


# Each example renders a figure (a few tenths of a second), hence fewer examples here.
@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 300),
    resolution=st.integers(2, 20),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    as_numpy=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_finite_2d_data_gives_a_png(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    resolution: int,
    dtype: torch.dtype,
    as_numpy: bool,
    seed: int,
) -> None:
    data = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    seen: list[tuple[tuple[int, ...], torch.dtype]] = []

    def log_density(x: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(x.shape), x.dtype))
        return gaussian_log_density(x)

    path = density_plot(
        log_density,
        data.numpy() if as_numpy else data,
        path=tmp_path_factory.mktemp("plot") / "p.png",
        resolution=resolution,
        dtype=dtype,
    )
    assert seen == [((resolution**2, 2), dtype)]
    assert path.read_bytes().startswith(PNG_SIGNATURE)
