"""Helpers shared by the tests of the idx loaders (MNIST, Fashion-MNIST)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

TRAIN = "train-images-idx3-ubyte"
TEST = "t10k-images-idx3-ubyte"


def idx_bytes(images: np.ndarray, magic: int = 2051) -> bytes:
    """An idx3 unsigned-byte file's contents: header (magic, N, rows, cols), then pixels."""
    n, rows, cols = images.shape
    return struct.pack(">IIII", magic, n, rows, cols) + images.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, gzipped when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as stream:
            stream.write(data)
    else:
        path.write_bytes(data)


def scaled(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> float64 ``(N, 1, H, W)``, raw / 255."""
    return torch.from_numpy(images.astype(np.float64) / 255).unsqueeze(1)
