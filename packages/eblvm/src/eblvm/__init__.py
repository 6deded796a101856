"""Train and evaluate energy-based latent variable models: one training loop for every
model family (GRBMs; deep EBLVMs and EBMs on images), a training step composed of the
libraries' parts, stacks of runs compiled into one step, the paper's experiments as
presets, and the ``eblvm`` command.

The public names load their modules (and torch) on first use, so that ``eblvm --help``
starts without torch; ``eblvm._openmp`` is imported first, before anything loads torch.
"""

import importlib
from typing import TYPE_CHECKING, Any

from eblvm import _openmp  # noqa: F401  (before torch loads)

if TYPE_CHECKING:
    from eblvm.custom import ModelTask
    from eblvm.experiments.compare import compare
    from eblvm.experiments.reproduce import reproduce
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
    from eblvm.trained import TrainedRun, load_run

# Each public name and the module that defines it.
_MODULE_OF = {
    "ModelTask": "eblvm.custom",
    "compare": "eblvm.experiments.compare",
    "reproduce": "eblvm.experiments.reproduce",
    "Family": "eblvm.families",
    "register_family": "eblvm.families",
    "train": "eblvm.loop",
    "train_stack": "eblvm.loop",
    "Method": "eblvm.methods",
    "register_method": "eblvm.methods",
    "Model": "eblvm.parts",
    "PRESETS": "eblvm.presets",
    "get_preset": "eblvm.presets",
    "task_for": "eblvm.presets",
    "CheckpointError": "eblvm.runs",
    "RunError": "eblvm.runs",
    "RunLocked": "eblvm.runs",
    "RunMismatch": "eblvm.runs",
    "TrainingDiverged": "eblvm.runs",
    "TrainingInterrupted": "eblvm.runs",
    "Settings": "eblvm.settings",
    "SettingsError": "eblvm.settings",
    "apply_overrides": "eblvm.settings",
    "RunSnapshot": "eblvm.task",
    "Task": "eblvm.task",
    "TrainedRun": "eblvm.trained",
    "load_run": "eblvm.trained",
}

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
    "TrainedRun",
    "TrainingDiverged",
    "TrainingInterrupted",
    "apply_overrides",
    "compare",
    "get_preset",
    "load_run",
    "register_family",
    "register_method",
    "reproduce",
    "task_for",
    "train",
    "train_stack",
]
__version__ = "0.8.0"


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
