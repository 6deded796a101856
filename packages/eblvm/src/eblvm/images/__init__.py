"""The image family: deep EBLVMs and deep EBMs on MNIST, Fashion-MNIST, CIFAR10, CelebA,
the bundled digits and random images; FID evaluation and selection, annealed-Langevin samples,
reference statistics, the paper's deep experiments as presets."""

from eblvm.images.presets import DATASET_PRESETS, IMAGE_PRESETS
from eblvm.images.sampling import fid_of_run, load_run, reference_stats, sample_images, sample_run
from eblvm.images.task import ImageTask

__all__ = [
    "DATASET_PRESETS",
    "IMAGE_PRESETS",
    "ImageTask",
    "fid_of_run",
    "load_run",
    "reference_stats",
    "sample_images",
    "sample_run",
]
