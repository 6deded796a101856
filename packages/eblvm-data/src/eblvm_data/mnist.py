"""MNIST from the standard idx files."""

from __future__ import annotations

import gzip
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

MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
MNIST_TRAIN_FILE = "train-images-idx3-ubyte"
MNIST_TEST_FILE = "t10k-images-idx3-ubyte"

_IDX3_UBYTE_MAGIC = 2051
_HEADER = struct.Struct(">IIII")


def mnist(
    root: str | os.PathLike[str], *, pad_to: int | None = 32, n_validation: int = 5000
) -> Splits:
    """Read MNIST images from the idx files in ``root``.

    Files: ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, each
    plain or gzipped (``.gz``; the plain file is used when both exist). The
    last ``n_validation`` images of the train file are the validation split
    (55000 / 5000 for the full file), the test file is the test split.

    Returns ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (raw / 255) per split,
    zero-padded (centred) to ``(N, 1, pad_to, pad_to)`` unless ``pad_to`` is None.
    """
    directory = check_root(root)
    n_validation = check_int(n_validation, "n_validation", minimum=1)
    files = _find_files(directory, (MNIST_TRAIN_FILE, MNIST_TEST_FILE))
    train_path, test_path = files
    train, test = _read_idx_images(train_path), _read_idx_images(test_path)
    if n_validation >= len(train):
        raise ValueError(
            f"n_validation must be smaller than the {len(train)} images of {train_path}, "
            f"got {n_validation}"
        )
    size = check_pad_to(pad_to, image_size=max(train.shape[1:] + test.shape[1:]))
    train_images, test_images = _to_tensor(train, size), _to_tensor(test, size)
    n_train = len(train_images) - n_validation
    return Splits(train=train_images[:n_train], validation=train_images[n_train:], test=test_images)


def _find_files(directory: Path, names: tuple[str, ...]) -> list[Path]:
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
            "MNIST files not found; looked for "
            + "; ".join(missing)
            + ". Download "
            + ", ".join(f"{name}.gz" for name in names)
            + f" from {MNIST_URL} into {directory}."
        )
    return found


def _read_idx_images(path: Path) -> np.ndarray:
    """Parse an idx3 unsigned-byte file into a uint8 array ``(N, rows, cols)``."""
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise ValueError(f"{path} could not be decompressed: {error}") from error
    else:
        raw = path.read_bytes()
    if len(raw) < _HEADER.size:
        raise ValueError(f"{path} is too short for an idx header ({len(raw)} bytes)")
    magic, n, rows, cols = _HEADER.unpack_from(raw)
    if magic != _IDX3_UBYTE_MAGIC:
        raise ValueError(
            f"{path}: magic number {magic}, expected {_IDX3_UBYTE_MAGIC} "
            "(idx3 unsigned-byte images)"
        )
    expected = _HEADER.size + n * rows * cols
    if n == 0 or rows == 0 or cols == 0 or len(raw) != expected:
        raise ValueError(
            f"{path}: header gives {n} images of {rows}×{cols}, which need {expected} bytes, "
            f"but the file holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=_HEADER.size).reshape(n, rows, cols)


def _to_tensor(images: np.ndarray, size: int | None) -> torch.Tensor:
    """uint8 ``(N, H, W)`` to float32 ``(N, 1, H, W)`` in ``[0, 1]``, padded to ``size``."""
    result = torch.from_numpy(images.astype(np.float32)).div_(255).unsqueeze(1)
    return result if size is None else pad_centre(result, size)
