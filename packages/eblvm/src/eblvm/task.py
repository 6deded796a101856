"""What a model family supplies to the training loop, and a run as the family sees it.

A :class:`Task` (a model family: ``grbm/``, ``images/``, your own
:class:`~eblvm.custom.ModelTask`) supplies the data, the models and the evaluation;
the loop does the rest. The loop shows it each run as a :class:`RunSnapshot`: the
run's settings, its run folder and modules holding the run's parameters at the
iteration evaluated.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from eblvm.parts import Model
from eblvm.settings import Settings


class RunSnapshot(NamedTuple):
    """One run at an iteration, as a task evaluates it: its settings, its run folder,
    its modules holding the run's parameters, and (with an EMA) the energy holding the
    averaged ones."""

    settings: Settings
    folder: Path
    model: Model
    average: nn.Module | None

    @property
    def out(self) -> Path:
        """Deprecated: the run folder, now ``folder``."""
        warnings.warn(
            "RunSnapshot.out is deprecated; use RunSnapshot.folder", DeprecationWarning, 2
        )
        return self.folder


class Task(Protocol):
    """A model family: data, models and evaluation; the loop does the rest.

    ``stackable``: runs of one shape can train as one stack (their modules map over a
    run axis); ``compile_by_default``: ``compile=auto`` compiles its step;
    ``cpu_threads``: the torch threads the ``eblvm`` command gives its runs on a CPU
    unless ``--threads`` says otherwise.
    ``selection``: the evaluation key that picks ``best.pt`` and whether higher
    (``max``) or lower (``min``) is better, or None.
    """

    stackable: bool
    compile_by_default: bool
    cpu_threads: int

    @property
    def train_size(self) -> int: ...

    def selection(self, settings: Settings) -> tuple[str, str] | None: ...

    def batch(self, indices: Tensor, generator: torch.Generator) -> Tensor: ...

    def build(self, settings: Settings, generator: torch.Generator) -> Model: ...

    def stack(self, models: Sequence[Model]) -> Model: ...

    def evaluate(self, runs: Sequence[RunSnapshot], iteration: int) -> list[dict[str, Any]]: ...

    def best_record(self, run: RunSnapshot) -> dict[str, Any]: ...

    def finish(
        self, run: RunSnapshot, row: dict[str, Any], best: dict[str, Any]
    ) -> dict[str, Any]: ...
