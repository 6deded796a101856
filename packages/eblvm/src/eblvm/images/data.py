"""Training images of an image run: loading, shape checks, batches and augmentation."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from eblvm.settings import Settings
from eblvm_data import (
    Splits,
    celeba,
    cifar10,
    dequantize,
    digits,
    fashion_mnist,
    mnist,
    random_hflip,
)

Images = Tensor | Dataset[Tensor]
SPLITS = ("train", "test")


def load_images(settings: Settings, *, split: str = "train") -> Images:
    """The images of ``split``, (N, C, S, S) in [0, 1] (CelebA: a Dataset of (C, S, S)
    read on access), in the data set's fixed order.

    ``split="train"``: the training images. As in the paper, the train and validation
    splits are trained on together (60k MNIST or Fashion-MNIST, 50k CIFAR10, 182,637
    CelebA, 1617 digits); random images are the ``data.n_train`` drawn from ``seed``.
    ``split="test"``: the held-out test split (10k MNIST or Fashion-MNIST, 10k CIFAR10,
    19,962 CelebA, 180 digits); random images have none.

    Raises FileNotFoundError (naming the files looked for) when the data set is missing
    from ``data_root``, and ValueError for another split or when the images do not have
    the configured shape.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    config = settings.data
    if config.dataset == "random":
        if split != "train":
            raise ValueError(
                "the random data set has no test split: its images are the n_train drawn "
                "from seed (use split train)"
            )
        generator = torch.Generator().manual_seed(settings.seed)
        shape = (config.n_train, config.channels, config.image_size, config.image_size)
        return torch.randint(0, 256, shape, generator=generator).float() / 255
    if config.dataset == "celeba":
        splits = celeba(config.data_root, size=config.image_size)
    elif config.dataset == "mnist":
        splits = mnist(config.data_root, pad_to=32)
    elif config.dataset == "fashion_mnist":
        splits = fashion_mnist(config.data_root, pad_to=32)
    elif config.dataset == "cifar10":
        splits = cifar10(config.data_root)
    else:
        splits = digits(image=True, pad_to=32)
    images = _pick(splits, split)
    check_image_shape(images, settings)
    return images


def _pick(splits: Splits, split: str) -> Images:
    """The test split, or the train and validation splits together."""
    if split == "test":
        test: Images = splits.test
        return test
    if isinstance(splits.train, Tensor):
        return torch.cat([splits.train, splits.validation])
    return ConcatDataset([splits.train, splits.validation])


def image_count(images: Images) -> int:
    return len(images)  # type: ignore[arg-type]


def check_image_shape(images: Images, settings: Settings) -> None:
    """Refuse images whose (C, S, S) is not the configured (channels, image_size, image_size)."""
    config = settings.data
    if image_count(images) == 0:
        raise ValueError(f"dataset {config.dataset} holds no images")
    shape = tuple(images.shape[1:]) if isinstance(images, Tensor) else tuple(images[0].shape)
    expected = (config.channels, config.image_size, config.image_size)
    if shape != expected:
        raise ValueError(
            f"dataset {config.dataset} has images of shape {shape}, but the settings ask for "
            f"{expected} (data.channels={config.channels}, data.image_size={config.image_size})"
        )


def fetch(images: Images, indices: Tensor) -> Tensor:
    """The images at ``indices`` (B,) -> (B, C, S, S)."""
    if isinstance(images, Tensor):
        return images[indices]
    return torch.stack([images[int(i)] for i in indices])


def augment(batch: Tensor, *, hflip: bool, generator: torch.Generator) -> Tensor:
    """Uniform dequantisation of 8-bit images, then random left-right flips if asked."""
    batch = dequantize(batch, generator=generator)
    return random_hflip(batch, generator=generator) if hflip else batch
