"""Data sets for energy-based latent variable models, with fixed splits.

Samplers (checkerboard, Gaussian), scikit-learn's digits, and loaders for the
standard files of Frey face, MNIST, CIFAR10 and CelebA; each returns `Splits`.
Batch augmentations (`dequantize`, `random_hflip`) are pure functions.
"""

from eblvm_data.augment import dequantize, random_hflip
from eblvm_data.celeba import CelebAImages, celeba
from eblvm_data.checkerboard import (
    CHECKERBOARD_LOG_DENSITY,
    CHECKERBOARD_SEEDS,
    checkerboard,
    checkerboard_splits,
)
from eblvm_data.cifar10 import cifar10
from eblvm_data.digits import DIGITS_SEED, digits
from eblvm_data.frey_face import frey_face
from eblvm_data.gaussian import GAUSSIAN_SEEDS, gaussian, gaussian_splits
from eblvm_data.mnist import mnist
from eblvm_data.splits import Splits

__all__ = [
    "CHECKERBOARD_LOG_DENSITY",
    "CHECKERBOARD_SEEDS",
    "DIGITS_SEED",
    "GAUSSIAN_SEEDS",
    "CelebAImages",
    "Splits",
    "celeba",
    "checkerboard",
    "checkerboard_splits",
    "cifar10",
    "dequantize",
    "digits",
    "frey_face",
    "gaussian",
    "gaussian_splits",
    "mnist",
    "random_hflip",
]
