"""Train and evaluate energy-based latent variable models: the trainers (GRBMs; deep
EBLVMs and EBMs on images, on one process or data-parallel), the paper's experiments
as presets, and the ``eblvm`` command."""

from eblvm.compare import compare
from eblvm.config import TrainConfig, apply_overrides
from eblvm.image_config import ImageTrainConfig
from eblvm.image_presets import IMAGE_PRESETS, get_image_preset
from eblvm.image_training import train_images
from eblvm.presets import PRESETS, get_preset
from eblvm.runs import RunMismatch, TrainingDiverged
from eblvm.sampling import fid_of_run, load_run, reference_stats, sample_images, sample_run
from eblvm.training import train

__all__ = [
    "IMAGE_PRESETS",
    "PRESETS",
    "ImageTrainConfig",
    "RunMismatch",
    "TrainConfig",
    "TrainingDiverged",
    "apply_overrides",
    "compare",
    "fid_of_run",
    "get_image_preset",
    "get_preset",
    "load_run",
    "reference_stats",
    "sample_images",
    "sample_run",
    "train",
    "train_images",
]
__version__ = "0.2.0"
