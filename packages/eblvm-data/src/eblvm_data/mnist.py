"""MNIST from the standard idx files."""

from __future__ import annotations

import os

from eblvm_data._idx import IDX_TEST_FILE, IDX_TRAIN_FILE, idx_image_splits
from eblvm_data.splits import Splits

MNIST_URL = "http://yann.lecun.com/exdb/mnist/"


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
    return idx_image_splits(
        root,
        pad_to=pad_to,
        n_validation=n_validation,
        data_set="MNIST",
        source=(
            f"Download {IDX_TRAIN_FILE}.gz, {IDX_TEST_FILE}.gz from {MNIST_URL} into {{directory}}."
        ),
    )
