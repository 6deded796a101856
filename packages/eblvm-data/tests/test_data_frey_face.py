"""Frey face from a .mat file in the published layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from eblvm_data import frey_face


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """A uint8 array in the file's layout: (560, 1965), one image per column."""
    return np.random.default_rng(0).integers(0, 256, size=(560, 1965), dtype=np.uint8)


def write(root: Path, **arrays: np.ndarray) -> Path:
    path = root / "frey_rawface.mat"
    scipy.io.savemat(path, arrays)
    return path


def test_transpose_order_scale_and_split(tmp_path: Path, faces: np.ndarray) -> None:
    write(tmp_path, ff=faces)
    splits = frey_face(tmp_path)
    assert [tuple(split.shape) for split in splits] == [(1400, 560), (300, 560), (265, 560)]
    assert all(split.dtype == torch.float32 for split in splits)
    rows = torch.cat(list(splits))
    for image, pixel in [(0, 0), (3, 559), (1399, 17), (1400, 0), (1699, 300), (1964, 559)]:
        assert rows[image, pixel].item() == pytest.approx(faces[pixel, image] / 255, abs=1e-7)
    expected = torch.from_numpy(faces.T.astype(np.float64) / 255)
    torch.testing.assert_close(rows.double(), expected, rtol=0, atol=1e-7)


def test_root_may_be_a_str(tmp_path: Path, faces: np.ndarray) -> None:
    write(tmp_path, ff=faces)
    assert torch.equal(frey_face(str(tmp_path)).test, frey_face(tmp_path).test)


def test_missing_file_names_the_path_and_the_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        frey_face(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "frey_rawface.mat") in message
    assert "https://cs.nyu.edu/~roweis/data/frey_rawface.mat" in message


@pytest.mark.parametrize(
    "arrays",
    [
        {"faces": np.zeros((560, 1965), dtype=np.uint8)},
        {"ff": np.zeros((1965, 560), dtype=np.uint8)},
        {"ff": np.zeros((560, 1965), dtype=np.float64)},
    ],
    ids=["wrong key", "wrong shape", "wrong dtype"],
)
def test_wrong_contents_name_the_file(tmp_path: Path, arrays: dict) -> None:
    path = write(tmp_path, **arrays)
    with pytest.raises(ValueError) as info:
        frey_face(tmp_path)
    assert str(path) in str(info.value)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "frey_rawface.mat"
    path.write_bytes(b"not a MATLAB file" * 10)
    with pytest.raises(ValueError) as info:
        frey_face(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "compressed"])
# Cut inside the 128-byte header (scipy: MatReadError, IndexError, TypeError), right
# after it (no arrays), inside the array (OSError), and one byte short (ValueError).
@pytest.mark.parametrize("cut", [0, 20, 127, 128, 129, 1000, -1])
def test_truncated_file_names_the_file(
    tmp_path: Path, faces: np.ndarray, compressed: bool, cut: int
) -> None:
    path = tmp_path / "frey_rawface.mat"
    scipy.io.savemat(path, {"ff": faces[:, :4]}, do_compression=compressed)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ValueError) as info:
        frey_face(tmp_path)
    assert str(path) in str(info.value)


def test_root_must_be_a_path() -> None:
    with pytest.raises(TypeError, match="root"):
        frey_face(3)  # type: ignore[arg-type]
