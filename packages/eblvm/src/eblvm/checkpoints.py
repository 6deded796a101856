"""A training's checkpoints: each run's written to its run folder, and a training
continued from them.

A run's ``checkpoint.pt`` holds its part of the training state (the plain names and
shapes of a single run, see :mod:`eblvm.states`), every process's batch order and
generators, its running means and best evaluation, and the seconds spent so far, so
that a resumed run continues exactly where it stopped, alone or in a stack.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor

from eblvm.distributed import Ranks
from eblvm.functional import Runs
from eblvm.provenance import provenance
from eblvm.runs import CHECKPOINT, RunError
from eblvm.states import run_record, stacked_state
from eblvm.step import TrainState
from eblvm.training_run import TrainingRun

_REQUIRED = ("iteration", "state", "ranks")


class Seconds(NamedTuple):
    """The seconds a training has spent training (without compiling) and evaluating."""

    train: float = 0.0
    evaluation: float = 0.0


class Resumed(NamedTuple):
    """Where a training starts: its state, iteration and the seconds spent so far."""

    state: TrainState
    iteration: int
    seconds: Seconds


def resume(
    runs: Sequence[TrainingRun], fresh: TrainState, layout: Runs, ranks: Ranks, notes: bool
) -> Resumed:
    """The state of the runs' checkpoints (read by rank 0, sent to every process), or
    ``fresh``. Starts each run folder: the settings and provenance written, the metrics
    cut back to the checkpoint (``notes``: say when a partial line was dropped)."""
    records = ranks.broadcast_object(
        [
            run.folder.resume_record(run.settings, _REQUIRED) if ranks.is_main else None
            for run in runs
        ]
    )
    found = [r for r in records if r is not None]
    if found and len(found) != len(records):
        raise RunError(
            "some runs of the stack have checkpoints and others do not: train them apart"
        )
    iterations = {r["iteration"] for r in found}
    if len(iterations) > 1:
        raise RunError(f"the stack's checkpoints are at different iterations {sorted(iterations)}")
    iteration = iterations.pop() if iterations else 0
    seconds = Seconds()
    for run, record in zip(runs, records, strict=True):
        rows, note = run.folder.read_metrics(iteration)
        if note and notes:
            print(f"eblvm: {note}", file=sys.stderr)
        if ranks.is_main:
            run.folder.rewrite_metrics(rows)
            run.folder.write_settings(run.settings, provenance(run.settings, ranks))
        if record is not None:
            run.restore(record, ranks, rows)
            seconds = Seconds(
                float(record["seconds"]["train"]), float(record["seconds"]["evaluation"])
            )
    if not found:
        return Resumed(fresh, 0, seconds)
    where = ", ".join(str(run.folder.path(CHECKPOINT)) for run in runs)
    state = stacked_state(fresh, [r["state"] for r in found], layout, where)
    return Resumed(state, iteration, seconds)


def save(
    runs: Sequence[TrainingRun],
    state: TrainState,
    iteration: int,
    seconds: Seconds,
    layout: Runs,
    ranks: Ranks,
) -> None:
    """Every live run's checkpoint (every process's streams gathered to rank 0)."""
    for index, run in enumerate(runs):
        every_rank = ranks.gather(run.streams())
        if not ranks.is_main or not run.alive:
            continue
        record = {
            "iteration": iteration,
            "seconds": {"train": seconds.train, "evaluation": seconds.evaluation},
            "world": ranks.world,
            "state": _to_cpu(run_record(state, index, layout)),
            "ranks": every_rank,
            **run.record(),
        }
        run.kept_checkpoint = run.folder.save_checkpoint(run.settings, record)


def _to_cpu(record: Any) -> Any:
    if isinstance(record, Tensor):
        return record.detach().cpu()
    if isinstance(record, dict):
        return {k: _to_cpu(v) for k, v in record.items()}
    return record
