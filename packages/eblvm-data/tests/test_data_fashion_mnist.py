"""Fashion-MNIST: small idx files written here, and Debian's files when installed."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from data_testing import TEST, TRAIN, idx_bytes, scaled, write

from eblvm_data import FASHION_MNIST_ROOT, fashion_mnist, fashion_mnist_labels

TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
DEBIAN_FILES = [
    Path(FASHION_MNIST_ROOT) / f"{name}.gz" for name in (TRAIN, TEST, TRAIN_LABELS, TEST_LABELS)
]


def label_bytes(labels: np.ndarray, magic: int = 2049) -> bytes:
    """An idx1 unsigned-byte file's contents: header (magic, N), then the labels."""
    return struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return (
        rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
    )


def test_gzipped_files_give_the_fixed_splits_scaled_and_padded(
    tmp_path: Path, images: tuple[np.ndarray, np.ndarray]
) -> None:
    train, test = images
    write(tmp_path / f"{TRAIN}.gz", idx_bytes(train))
    write(tmp_path / f"{TEST}.gz", idx_bytes(test))
    plain = fashion_mnist(tmp_path, pad_to=None, n_validation=3)
    close = {"rtol": 0, "atol": 1e-7}
    torch.testing.assert_close(plain.train.double(), scaled(train[:7]), **close)
    torch.testing.assert_close(plain.validation.double(), scaled(train[7:]), **close)
    torch.testing.assert_close(plain.test.double(), scaled(test), **close)
    padded = fashion_mnist(tmp_path, n_validation=3)
    for big, small in zip(padded, plain, strict=True):
        assert big.dtype == torch.float32 and big.shape[1:] == (1, 32, 32)
        assert torch.equal(big[:, :, 2:30, 2:30], small)
        assert big.sum().item() == pytest.approx(small.sum().item(), rel=1e-6)


def test_missing_files_name_the_paths_and_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist(tmp_path)
    message = str(info.value)
    assert message.startswith("Fashion-MNIST files not found")
    for name in (TRAIN, TEST):
        assert str(tmp_path / name) in message and str(tmp_path / f"{name}.gz") in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_the_default_folder_is_debians() -> None:
    assert FASHION_MNIST_ROOT == "/usr/share/datasets/fashion-mnist"
    if all(path.is_file() for path in DEBIAN_FILES):
        return  # the real files are read by the test below
    with pytest.raises(FileNotFoundError, match="/usr/share/datasets/fashion-mnist"):
        fashion_mnist()


@pytest.mark.parametrize(
    "data",
    [
        idx_bytes(np.zeros((4, 28, 28)), magic=2049),
        idx_bytes(np.zeros((4, 28, 28)))[:-1],
        idx_bytes(np.zeros((0, 28, 28))),
    ],
    ids=["label-file magic", "truncated", "no images"],
)
def test_a_corrupt_file_is_one_value_error_naming_it(tmp_path: Path, data: bytes) -> None:
    write(tmp_path / f"{TRAIN}.gz", idx_bytes(np.zeros((4, 28, 28))))
    write(tmp_path / f"{TEST}.gz", data)
    with pytest.raises(ValueError) as info:
        fashion_mnist(tmp_path, n_validation=1)
    assert str(tmp_path / f"{TEST}.gz") in str(info.value)


@pytest.mark.skipif(
    not all(path.is_file() for path in DEBIAN_FILES),
    reason=f"the Fashion-MNIST files of Debian's dataset-fashion-mnist are not in "
    f"{FASHION_MNIST_ROOT} (apt-get install dataset-fashion-mnist)",
)
def test_debians_files_give_55000_5000_10000_images() -> None:
    splits = fashion_mnist()
    shapes = [tuple(split.shape) for split in splits]
    assert shapes == [(55000, 1, 32, 32), (5000, 1, 32, 32), (10000, 1, 32, 32)]
    train = torch.cat([splits.train, splits.validation])
    assert float(train.min()) == 0.0 and float(train.max()) == 1.0
    inside = train[:, :, 2:30, 2:30].double()
    # The statistics everyone normalises Fashion-MNIST's 60000 training images with.
    assert float(inside.mean()) == pytest.approx(0.2860, abs=5e-4)
    assert float(inside.std()) == pytest.approx(0.3530, abs=5e-4)
    assert float(train.double().sum()) == pytest.approx(float(inside.sum()), rel=1e-12)


def test_labels_are_split_like_the_images(tmp_path: Path) -> None:
    train, test = np.arange(10) % 10, np.array([9, 0, 3])
    write(tmp_path / f"{TRAIN_LABELS}.gz", label_bytes(train))
    write(tmp_path / TEST_LABELS, label_bytes(test))
    labels = fashion_mnist_labels(tmp_path, n_validation=3)
    assert all(split.dtype == torch.int64 for split in labels)
    assert labels.train.tolist() == train[:7].tolist()
    assert labels.validation.tolist() == train[7:].tolist()
    assert labels.test.tolist() == test.tolist()


@pytest.mark.parametrize(
    "data",
    [
        label_bytes(np.zeros(4), magic=2051),
        label_bytes(np.zeros(4))[:-1],
        label_bytes(np.zeros(0)),
        label_bytes(np.zeros(4)) + bytes(1 << 20),
        struct.pack(">II", 2049, 1 << 31) + bytes(4),
    ],
    ids=["image-file magic", "truncated", "no labels", "trailing megabyte", "2**31 labels"],
)
def test_a_corrupt_label_file_is_one_value_error_naming_it(tmp_path: Path, data: bytes) -> None:
    write(tmp_path / TRAIN_LABELS, label_bytes(np.zeros(4)))
    write(tmp_path / TEST_LABELS, data)
    with pytest.raises(ValueError) as info:
        fashion_mnist_labels(tmp_path, n_validation=1)
    assert str(tmp_path / TEST_LABELS) in str(info.value)


def test_missing_label_files_name_the_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST label files not found") as info:
        fashion_mnist_labels(tmp_path)
    assert str(tmp_path / TRAIN_LABELS) in str(info.value)


@pytest.mark.skipif(
    not all(path.is_file() for path in DEBIAN_FILES),
    reason=f"the Fashion-MNIST files of Debian's dataset-fashion-mnist are not in "
    f"{FASHION_MNIST_ROOT} (apt-get install dataset-fashion-mnist)",
)
def test_debians_labels_are_ten_balanced_classes() -> None:
    labels = fashion_mnist_labels()
    assert [len(split) for split in labels] == [55000, 5000, 10000]
    train = torch.cat([labels.train, labels.validation])
    assert torch.bincount(train).tolist() == [6000] * 10
    assert torch.bincount(labels.test).tolist() == [1000] * 10
