"""Image and label splits from the idx files of MNIST and Fashion-MNIST (plain or gzipped)."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from eblvm_data._checks import check_pad_to, check_root
from eblvm_data._common_checks import check_int
from eblvm_data._images import pad_centre
from eblvm_data.splits import Splits

IDX_TRAIN_FILE = "train-images-idx3-ubyte"
IDX_TEST_FILE = "t10k-images-idx3-ubyte"
IDX_TRAIN_LABELS_FILE = "train-labels-idx1-ubyte"
IDX_TEST_LABELS_FILE = "t10k-labels-idx1-ubyte"

_IDX3_UBYTE_MAGIC = 2051
_HEADER = struct.Struct(">IIII")
_IDX1_UBYTE_MAGIC = 2049
_LABEL_HEADER = struct.Struct(">II")
_IMAGE_SHAPE = (28, 28)
#: The most images or labels one idx file may declare (MNIST's train file holds 60000).
_MAX_ITEMS = 1_000_000


def idx_image_splits(
    root: str | os.PathLike[str],
    *,
    pad_to: int | None,
    n_validation: int,
    data_set: str,
    source: str,
) -> Splits:
    """The splits of the idx image files ``train-images-idx3-ubyte`` and
    ``t10k-images-idx3-ubyte`` in ``root`` (each plain or ``.gz``, the plain one when
    both exist): the train file less its last ``n_validation`` images / those last
    images / the test file, each ``(N, 1, H, W)`` float32 in ``[0, 1]`` (raw / 255),
    zero-padded (centred) to ``pad_to`` unless it is None.

    ``data_set`` names the files in errors; ``source`` ends the error for missing files
    (where they come from, ``{directory}`` replaced by the folder looked in).
    """
    directory = check_root(root)
    n_validation = check_int(n_validation, "n_validation", minimum=1)
    train_path, test_path = _find_files(
        directory, (IDX_TRAIN_FILE, IDX_TEST_FILE), data_set=data_set, source=source
    )
    train, test = read_idx_images(train_path), read_idx_images(test_path)
    if n_validation >= len(train):
        raise ValueError(
            f"n_validation must be smaller than the {len(train)} images of {train_path}, "
            f"got {n_validation}"
        )
    size = check_pad_to(pad_to, image_size=max(train.shape[1:] + test.shape[1:]))
    train_images, test_images = _to_tensor(train, size), _to_tensor(test, size)
    n_train = len(train_images) - n_validation
    return Splits(train=train_images[:n_train], validation=train_images[n_train:], test=test_images)


def idx_label_splits(
    root: str | os.PathLike[str], *, n_validation: int, data_set: str, source: str
) -> Splits:
    """The class labels of the idx files ``train-labels-idx1-ubyte`` and
    ``t10k-labels-idx1-ubyte`` in ``root`` (each plain or ``.gz``), split like
    ``idx_image_splits``: the train file less its last ``n_validation`` labels / those
    last labels / the test file, each ``(N,)`` int64. Errors as ``idx_image_splits``."""
    directory = check_root(root)
    n_validation = check_int(n_validation, "n_validation", minimum=1)
    train_path, test_path = _find_files(
        directory, (IDX_TRAIN_LABELS_FILE, IDX_TEST_LABELS_FILE), data_set=data_set, source=source
    )
    train, test = read_idx_labels(train_path), read_idx_labels(test_path)
    if n_validation >= len(train):
        raise ValueError(
            f"n_validation must be smaller than the {len(train)} labels of {train_path}, "
            f"got {n_validation}"
        )
    train_labels = torch.from_numpy(train.astype(np.int64))
    n_train = len(train_labels) - n_validation
    return Splits(
        train=train_labels[:n_train],
        validation=train_labels[n_train:],
        test=torch.from_numpy(test.astype(np.int64)),
    )


def _find_files(
    directory: Path, names: tuple[str, ...], *, data_set: str, source: str
) -> list[Path]:
    """The path of each idx file, plain or ``.gz``; all missing ones are named at once."""
    found: list[Path] = []
    missing: list[str] = []
    for name in names:
        candidates = (directory / name, directory / f"{name}.gz")
        existing = [path for path in candidates if path.is_file()]
        if existing:
            found.append(existing[0])
        else:
            missing.append(" or ".join(str(path) for path in candidates))
    if missing:
        raise FileNotFoundError(
            f"{data_set} files not found; looked for "
            + "; ".join(missing)
            + ". "
            + source.format(directory=directory)
        )
    return found


def read_idx_images(path: Path) -> np.ndarray:
    """Parse an idx3 unsigned-byte file into a uint8 array ``(N, 28, 28)``.

    Raises ValueError naming the file when it cannot be decompressed, its magic number
    is not that of idx3 unsigned bytes, its images are not 28×28, it declares no or
    more than ``_MAX_ITEMS`` images, or its length is not the one its header gives.
    At most the declared bytes (and one more, to find a longer file) are read, so a
    gzip bomb is refused without inflating it.
    """
    with _open(path) as stream:
        header = _read_exactly(stream, _HEADER.size, path, "an idx header")
        magic, n, rows, cols = _HEADER.unpack(header)
        if magic != _IDX3_UBYTE_MAGIC:
            raise ValueError(
                f"{path}: magic number {magic}, expected {_IDX3_UBYTE_MAGIC} "
                "(idx3 unsigned-byte images)"
            )
        if (rows, cols) != _IMAGE_SHAPE or not 0 < n <= _MAX_ITEMS:
            raise ValueError(
                f"{path}: header gives {n} images of {rows}×{cols}, expected 1 to "
                f"{_MAX_ITEMS} images of {_IMAGE_SHAPE[0]}×{_IMAGE_SHAPE[1]}"
            )
        body = _read_body(stream, n * rows * cols, path, f"{n} images of {rows}×{cols}")
    return np.frombuffer(body, dtype=np.uint8).reshape(n, rows, cols)


def read_idx_labels(path: Path) -> np.ndarray:
    """Parse an idx1 unsigned-byte file into a uint8 array ``(N,)``.

    Raises ValueError naming the file as ``read_idx_images`` does.
    """
    with _open(path) as stream:
        header = _read_exactly(stream, _LABEL_HEADER.size, path, "an idx header")
        magic, n = _LABEL_HEADER.unpack(header)
        if magic != _IDX1_UBYTE_MAGIC:
            raise ValueError(
                f"{path}: magic number {magic}, expected {_IDX1_UBYTE_MAGIC} "
                "(idx1 unsigned-byte labels)"
            )
        if not 0 < n <= _MAX_ITEMS:
            raise ValueError(f"{path}: header gives {n} labels, expected 1 to {_MAX_ITEMS}")
        body = _read_body(stream, n, path, f"{n} labels")
    return np.frombuffer(body, dtype=np.uint8)


def _open(path: Path) -> io.BufferedIOBase:
    """An idx file opened for reading, decompressed when its name ends in ``.gz``."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _read(stream: io.BufferedIOBase, size: int, path: Path) -> bytes:
    """Up to ``size`` bytes of ``stream``; ValueError naming ``path`` when it cannot be
    decompressed (not gzip, damaged, or cut off)."""
    try:
        return stream.read(size)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path} could not be decompressed: {error}") from error


def _read_exactly(stream: io.BufferedIOBase, size: int, path: Path, what: str) -> bytes:
    """``size`` bytes of ``stream``; ValueError naming ``path`` when fewer are there."""
    data = _read(stream, size, path)
    if len(data) != size:
        raise ValueError(f"{path} is too short for {what} ({len(data)} of {size} bytes)")
    return data


def _read_body(stream: io.BufferedIOBase, size: int, path: Path, what: str) -> bytes:
    """The ``size`` bytes the header declares, refusing a file that holds more."""
    body = _read_exactly(stream, size, path, f"the {what} its header gives")
    if _read(stream, 1, path):
        raise ValueError(
            f"{path}: header gives {what}, which need {size} bytes after the header, "
            "but the file holds more"
        )
    return body


def _to_tensor(images: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``(N, H, W)`` to float32 ``(N, 1, H, W)`` in ``[0, 1]``, padded to ``size``."""
    result = torch.from_numpy(images.astype(np.float32)).div_(255).unsqueeze(1)
    return result if size is None else pad_centre(result, size)
