"""Train and evaluate energy-based latent variable models: the trainer, the paper's
experiments as presets, and the ``eblvm`` command."""

from eblvm.compare import compare
from eblvm.config import TrainConfig, apply_overrides
from eblvm.presets import PRESETS, get_preset
from eblvm.training import RunMismatch, TrainingDiverged, train

__all__ = [
    "PRESETS",
    "RunMismatch",
    "TrainConfig",
    "TrainingDiverged",
    "apply_overrides",
    "compare",
    "get_preset",
    "train",
]
__version__ = "0.1.0"
