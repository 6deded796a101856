"""Data sets for energy-based latent variable models, with fixed splits.

2-D toys (checkerboard, blobs, swiss roll, moons, rings; exact log-densities
for the checkerboard, blobs and rings), isotropic Gaussians, scikit-learn's
digits, and loaders for the standard files of Frey face, MNIST, Fashion-MNIST,
CIFAR10 and CelebA; each returns `Splits`. Batch augmentations (`dequantize`,
`random_hflip`) are pure functions.
"""

from eblvm_data.augment import dequantize, random_hflip
from eblvm_data.blobs import BLOBS_SEEDS, blobs, blobs_log_density, blobs_means, blobs_splits
from eblvm_data.celeba import CelebAImages, celeba
from eblvm_data.checkerboard import (
    CHECKERBOARD_LOG_DENSITY,
    CHECKERBOARD_SEEDS,
    checkerboard,
    checkerboard_log_density,
    checkerboard_splits,
)
from eblvm_data.cifar10 import cifar10
from eblvm_data.digits import DIGITS_SEED, digits
from eblvm_data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    fashion_mnist,
    fashion_mnist_labels,
)
from eblvm_data.frey_face import frey_face
from eblvm_data.gaussian import GAUSSIAN_SEEDS, gaussian, gaussian_splits
from eblvm_data.mnist import mnist
from eblvm_data.moons import MOONS_SEEDS, moons, moons_splits
from eblvm_data.rings import RINGS_SEEDS, rings, rings_log_density, rings_splits
from eblvm_data.splits import Splits
from eblvm_data.swiss_roll import SWISS_ROLL_SEEDS, swiss_roll, swiss_roll_splits

__all__ = [
    "BLOBS_SEEDS",
    "CHECKERBOARD_LOG_DENSITY",
    "CHECKERBOARD_SEEDS",
    "DIGITS_SEED",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "GAUSSIAN_SEEDS",
    "MOONS_SEEDS",
    "RINGS_SEEDS",
    "SWISS_ROLL_SEEDS",
    "CelebAImages",
    "Splits",
    "blobs",
    "blobs_log_density",
    "blobs_means",
    "blobs_splits",
    "celeba",
    "checkerboard",
    "checkerboard_log_density",
    "checkerboard_splits",
    "cifar10",
    "dequantize",
    "digits",
    "fashion_mnist",
    "fashion_mnist_labels",
    "frey_face",
    "gaussian",
    "gaussian_splits",
    "mnist",
    "moons",
    "moons_splits",
    "random_hflip",
    "rings",
    "rings_log_density",
    "rings_splits",
    "swiss_roll",
    "swiss_roll_splits",
]
__version__ = "0.4.0"
