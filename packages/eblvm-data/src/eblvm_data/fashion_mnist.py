"""Fashion-MNIST from its idx files, by default where Debian's package puts them."""

from __future__ import annotations

import os

from eblvm_data._idx import (
    IDX_TEST_FILE,
    IDX_TEST_LABELS_FILE,
    IDX_TRAIN_FILE,
    IDX_TRAIN_LABELS_FILE,
    idx_image_splits,
    idx_label_splits,
)
from eblvm_data.splits import Splits

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"
# The names of the labels 0 to 9, as the data set's authors give them.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def fashion_mnist(
    root: str | os.PathLike[str] = FASHION_MNIST_ROOT,
    *,
    pad_to: int | None = 32,
    n_validation: int = 5000,
) -> Splits:
    """Read Fashion-MNIST images from the idx files in ``root``.

    ``root`` defaults to ``/usr/share/datasets/fashion-mnist``, where the Debian
    package ``dataset-fashion-mnist`` installs them. Files, splits and scaling as for
    ``mnist``: ``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, plain or
    ``.gz``; the last ``n_validation`` train images are the validation split (55000 /
    5000), the test file (10000) is the test split.

    Returns ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (raw / 255) per split,
    zero-padded (centred) to ``(N, 1, pad_to, pad_to)`` unless ``pad_to`` is None.
    """
    return idx_image_splits(
        root,
        pad_to=pad_to,
        n_validation=n_validation,
        data_set="Fashion-MNIST",
        source=_source(IDX_TRAIN_FILE, IDX_TEST_FILE),
    )


def fashion_mnist_labels(
    root: str | os.PathLike[str] = FASHION_MNIST_ROOT, *, n_validation: int = 5000
) -> Splits:
    """The class labels (0 to 9, named by ``FASHION_MNIST_CLASSES``) of
    ``fashion_mnist``'s images, split the same way.

    Read from ``train-labels-idx1-ubyte`` and ``t10k-labels-idx1-ubyte`` in ``root``
    (plain or ``.gz``; Debian's package installs them beside the images). Returns
    ``(N,)`` int64 per split, row i the label of the split's image i.
    """
    return idx_label_splits(
        root,
        n_validation=n_validation,
        data_set="Fashion-MNIST label",
        source=_source(IDX_TRAIN_LABELS_FILE, IDX_TEST_LABELS_FILE),
    )


def _source(train: str, test: str) -> str:
    return (
        f"Install them with `apt-get install {FASHION_MNIST_PACKAGE}` (into "
        f"{FASHION_MNIST_ROOT}), or download {train}.gz and "
        f"{test}.gz from {FASHION_MNIST_URL} into {{directory}}."
    )
