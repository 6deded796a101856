"""MNIST from small idx files in the published format."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from data_testing import TEST, TRAIN, idx_bytes, scaled, write

from eblvm_data import mnist


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8),
        rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
    )


@pytest.mark.parametrize(("train_suffix", "test_suffix"), [("", ""), (".gz", ".gz"), ("", ".gz")])
def test_split_order_and_scale_unpadded(
    tmp_path: Path, images: tuple[np.ndarray, np.ndarray], train_suffix: str, test_suffix: str
) -> None:
    train, test = images
    write(tmp_path / (TRAIN + train_suffix), idx_bytes(train))
    write(tmp_path / (TEST + test_suffix), idx_bytes(test))
    splits = mnist(tmp_path, pad_to=None, n_validation=3)
    assert [tuple(split.shape) for split in splits] == [
        (9, 1, 28, 28),
        (3, 1, 28, 28),
        (5, 1, 28, 28),
    ]
    assert all(split.dtype == torch.float32 for split in splits)
    close = {"rtol": 0, "atol": 1e-7}
    torch.testing.assert_close(splits.train.double(), scaled(train[:9]), **close)
    torch.testing.assert_close(splits.validation.double(), scaled(train[9:]), **close)
    torch.testing.assert_close(splits.test.double(), scaled(test), **close)
    assert splits.train[0, 0, 5, 7].item() == pytest.approx(train[0, 5, 7] / 255, abs=1e-7)


def test_default_padding_to_32_is_centred(
    tmp_path: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    train, test = images
    write(tmp_path / TRAIN, idx_bytes(train))
    write(tmp_path / TEST, idx_bytes(test))
    padded, plain = mnist(tmp_path, n_validation=3), mnist(tmp_path, pad_to=None, n_validation=3)
    for big, small in zip(padded, plain, strict=True):
        assert big.shape[1:] == (1, 32, 32)
        assert torch.equal(big[:, :, 2:30, 2:30], small)
        border = big.clone()
        border[:, :, 2:30, 2:30] = 0
        assert border.abs().sum().item() == 0


def test_the_plain_file_wins_over_the_gzipped_one(
    tmp_path: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    train, test = images
    write(tmp_path / TRAIN, idx_bytes(train))
    write(tmp_path / (TRAIN + ".gz"), idx_bytes(255 - train))
    write(tmp_path / TEST, idx_bytes(test))
    splits = mnist(tmp_path, pad_to=None, n_validation=3)
    torch.testing.assert_close(splits.train.double(), scaled(train[:9]), rtol=0, atol=1e-7)


def test_missing_files_name_every_path_tried_and_the_source(
    tmp_path: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    write(tmp_path / TRAIN, idx_bytes(images[0]))
    with pytest.raises(FileNotFoundError) as info:
        mnist(tmp_path, n_validation=3)
    message = str(info.value)
    assert str(tmp_path / TEST) in message and str(tmp_path / (TEST + ".gz")) in message
    assert "http://yann.lecun.com/exdb/mnist/" in message


@pytest.mark.parametrize(
    "data",
    [
        idx_bytes(np.zeros((4, 28, 28)), magic=2049),
        idx_bytes(np.zeros((4, 28, 28)))[:-1],
        idx_bytes(np.zeros((4, 28, 28))) + b"\x00",
        b"\x00\x00\x08",
    ],
    ids=["label magic", "truncated", "trailing bytes", "no header"],
)
def test_bad_files_name_the_file(tmp_path: Path, data: bytes) -> None:
    write(tmp_path / TRAIN, data)
    write(tmp_path / TEST, idx_bytes(np.zeros((2, 28, 28))))
    with pytest.raises(ValueError) as info:
        mnist(tmp_path, n_validation=1)
    assert str(tmp_path / TRAIN) in str(info.value)


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    (tmp_path / (TRAIN + ".gz")).write_bytes(b"not gzip at all")
    write(tmp_path / TEST, idx_bytes(np.zeros((2, 28, 28))))
    with pytest.raises(ValueError) as info:
        mnist(tmp_path, n_validation=1)
    assert str(tmp_path / (TRAIN + ".gz")) in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    whole = gzip.compress(idx_bytes(np.arange(4 * 28 * 28).reshape(4, 28, 28)))
    (tmp_path / (TRAIN + ".gz")).write_bytes(whole[: len(whole) // 2])
    write(tmp_path / TEST, idx_bytes(np.zeros((2, 28, 28))))
    with pytest.raises(ValueError, match="could not be decompressed") as info:
        mnist(tmp_path, n_validation=1)
    assert str(tmp_path / (TRAIN + ".gz")) in str(info.value)


def test_a_gzip_bomb_is_refused_after_the_bytes_its_header_declares(tmp_path: Path) -> None:
    # 256 gzip members of 1 MiB of zeros each: 256 MiB inflated from ~260 KB on disk.
    member = gzip.compress(bytes(1 << 20))
    bomb = tmp_path / (TRAIN + ".gz")
    bomb.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28)))) + member * 256)
    write(tmp_path / TEST, idx_bytes(np.zeros((2, 28, 28))))
    with pytest.raises(ValueError, match="holds more") as info:
        mnist(tmp_path, n_validation=1)
    assert str(bomb) in str(info.value)


@pytest.mark.parametrize(
    "header",
    [(2051, 4, 29, 28), (2051, 4, 28, 1 << 20), (2051, 1 << 31, 28, 28), (2051, 4, 0, 28)],
    ids=["29 rows", "huge columns", "2**31 images", "no rows"],
)
def test_header_dimensions_are_checked_before_reading(
    tmp_path: Path, header: tuple[int, ...]
) -> None:
    write(tmp_path / TRAIN, struct.pack(">IIII", *header) + bytes(4 * 28 * 28))
    write(tmp_path / TEST, idx_bytes(np.zeros((2, 28, 28))))
    with pytest.raises(ValueError, match="expected 1 to") as info:
        mnist(tmp_path, n_validation=1)
    assert str(tmp_path / TRAIN) in str(info.value)


def test_bad_arguments_are_refused(tmp_path: Path, images: tuple[np.ndarray, np.ndarray]) -> None:
    write(tmp_path / TRAIN, idx_bytes(images[0]))
    write(tmp_path / TEST, idx_bytes(images[1]))
    with pytest.raises(ValueError, match="n_validation"):
        mnist(tmp_path)  # 5000 validation images from a file of 12
    with pytest.raises(ValueError, match="n_validation"):
        mnist(tmp_path, n_validation=0)
    with pytest.raises(ValueError, match="pad_to"):
        mnist(tmp_path, pad_to=27, n_validation=3)
    with pytest.raises(TypeError, match="root"):
        mnist(None, n_validation=3)  # type: ignore[arg-type]
