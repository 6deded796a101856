"""The evaluations of a training's runs and the selection of each run's best.

At the evaluation cadence the task evaluates every live run at the current
parameters (its modules loaded from the training state, the EMA as a module of its
own); :class:`Evaluation` keeps each run's best evaluation by the task's selection
key, writes it as ``best.pt`` when asked (``evaluation.select_by``), and stops a run
whose log-likelihood falls more than ``evaluation.max_drop`` below its best.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from eblvm.functional import Runs
from eblvm.parts import Model
from eblvm.states import run_record
from eblvm.step import TrainState
from eblvm.task import RunSnapshot, Task
from eblvm.training_run import TrainingRun


class Evaluation:
    """The task's evaluations of ``runs`` (modules ``models``, laid out as ``layout`` in
    the step) and their best; ``seconds`` the time spent evaluating. Only ``writes``
    (rank 0) writes files."""

    def __init__(
        self,
        task: Task,
        runs: Sequence[TrainingRun],
        models: Sequence[Model],
        layout: Runs,
        writes: bool,
    ) -> None:
        self.task, self.runs, self.models, self.layout = task, runs, models, layout
        self.selection = task.selection(runs[0].settings)
        self.writes = writes
        self.seconds = 0.0

    def snapshots(self, state: TrainState) -> list[RunSnapshot]:
        """The runs as the task sees them: modules holding each run's parameters."""
        snapshots = []
        for index, (run, model) in enumerate(zip(self.runs, self.models, strict=True)):
            record = run_record(state, index, self.layout)
            load(model.energy, record["theta"])
            if model.posterior is not None and record["phi"]:
                load(model.posterior, record["phi"])
            average = None
            if "ema" in record["extra"]:
                average = _averaged(model.energy, record["extra"]["ema"])
            snapshots.append(RunSnapshot(run.settings, run.folder.out, model, average))
        return snapshots

    def __call__(self, state: TrainState, rows: list[dict[str, Any]], iteration: int) -> None:
        """Each live run's evaluation into its row (a run whose evaluation falls too far
        below its best is stopped); the best kept and written."""
        start = time.perf_counter()
        alive = [i for i, run in enumerate(self.runs) if run.alive]
        if not alive:
            return
        snapshots = self.snapshots(state)
        evaluated = self.task.evaluate([snapshots[i] for i in alive], iteration)
        self.seconds += time.perf_counter() - start
        for index, row in zip(alive, evaluated, strict=True):
            rows[index].update(row)
            self._select(self.runs[index], snapshots[index], row, iteration)

    def _select(
        self, run: TrainingRun, snapshot: RunSnapshot, row: dict[str, Any], iteration: int
    ) -> None:
        """Keep the best evaluation (and best.pt when asked); a fall of more than
        ``evaluation.max_drop`` below the best stops the run as diverged."""
        if self.selection is None or self.selection[0] not in row:
            return
        key, mode = self.selection
        value, best = row[key], run.best.get(key)
        if mode == "max" and best is not None and value < best - run.settings.evaluation.max_drop:
            reason = (
                f"{key} {value:.4g} fell more than evaluation.max_drop below its best {best:.4g}"
            )
            run.diverge(iteration, reason, self.writes)
            return
        if best is not None and not (value > best if mode == "max" else value < best):
            return
        run.best = {"iteration": iteration, **row}
        if self.writes and run.settings.evaluation.select_by != "none":
            record = {"iteration": iteration, **self.task.best_record(snapshot)}
            run.folder.save_best(run.settings, record)


def load(module: nn.Module, params: dict[str, Tensor]) -> None:
    """Copy the module's parameters from ``params`` (which may hold a step's own, such as
    NCE's log-normaliser, beside them)."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(params[name])


def _averaged(energy: nn.Module, ema: dict[str, Tensor]) -> nn.Module:
    average = copy.deepcopy(energy).requires_grad_(False)
    load(average, ema)
    return average
