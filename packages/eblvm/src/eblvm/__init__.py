"""Train and evaluate energy-based latent variable models: one training loop for every
model family (GRBMs; deep EBLVMs and EBMs on images), a training step composed of the
libraries' parts, stacks of runs compiled into one step, the paper's experiments as
presets, and the ``eblvm`` command."""

from eblvm import _openmp  # noqa: F401  (before torch loads)
from eblvm.custom import ModelTask
from eblvm.experiments.compare import compare
from eblvm.loop import RunView, Task, train, train_stack
from eblvm.parts import Model
from eblvm.presets import PRESETS, get_preset, task_for
from eblvm.runs import (
    CheckpointError,
    RunError,
    RunLocked,
    RunMismatch,
    TrainingDiverged,
    TrainingInterrupted,
)
from eblvm.settings import Settings, SettingsError, apply_overrides

__all__ = [
    "PRESETS",
    "CheckpointError",
    "Model",
    "ModelTask",
    "RunError",
    "RunLocked",
    "RunMismatch",
    "RunView",
    "Settings",
    "SettingsError",
    "Task",
    "TrainingDiverged",
    "TrainingInterrupted",
    "apply_overrides",
    "compare",
    "get_preset",
    "task_for",
    "train",
    "train_stack",
]
__version__ = "0.3.0"
