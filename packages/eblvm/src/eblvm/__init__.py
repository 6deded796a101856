"""Train and evaluate energy-based latent variable models: one training loop for every
model family (GRBMs; deep EBLVMs and EBMs on images), a training step composed of the
libraries' parts, stacks of runs compiled into one step, the paper's experiments as
presets, and the ``eblvm`` command."""

import warnings
from typing import Any

from eblvm import _openmp  # noqa: F401  (before torch loads)
from eblvm.custom import ModelTask
from eblvm.experiments.compare import compare
from eblvm.families import Family, register_family
from eblvm.loop import train, train_stack
from eblvm.methods import Method, register_method
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
from eblvm.task import RunSnapshot, Task

__all__ = [
    "PRESETS",
    "CheckpointError",
    "Family",
    "Method",
    "Model",
    "ModelTask",
    "RunError",
    "RunLocked",
    "RunMismatch",
    "RunSnapshot",
    "Settings",
    "SettingsError",
    "Task",
    "TrainingDiverged",
    "TrainingInterrupted",
    "apply_overrides",
    "compare",
    "get_preset",
    "register_family",
    "register_method",
    "task_for",
    "train",
    "train_stack",
]
__version__ = "0.4.0"

_DEPRECATED = {"RunView": RunSnapshot}  # the former names, kept until 0.5


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"eblvm.{name} is deprecated; use eblvm.{new.__name__}", DeprecationWarning, 2
        )
        return new
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
