"""A training's checkpoints: each run's written to its run folder, and a training
continued from them.

A run's ``checkpoint.pt`` holds its part of the training state (the plain names and
shapes of a single run, see :mod:`eblvm.states`), every process's batch order and
generators, its running means and best evaluation, and the seconds spent so far, so
that a resumed run continues exactly where it stopped, alone or in a stack. A record
whose hash holds is checked field by field (:func:`check_record`) before anything of
it is used or any file of the run is touched.

The runs of a stack are written one after the other, so a stack stopped while writing
them leaves some runs' checkpoints one iteration of checkpointing ahead. Each record
names its stack (the runs' fingerprints, ``stack``): the runs ahead then continue from
their previous checkpoint, written by the same stack at the iteration of the others,
so that the stack continues as one (see :func:`resumed_iteration`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from eblvm.distributed import Ranks
from eblvm.functional import Runs
from eblvm.provenance import provenance
from eblvm.runs import CHECKPOINT, CheckpointError, RunError
from eblvm.states import run_record, stacked_state
from eblvm.step import TrainState
from eblvm.training_run import RUNNING, TrainingRun

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
    records = ranks.broadcast_object(_records(runs, ranks, notes) if ranks.is_main else None)
    found = [r for r in records if r is not None]
    if found and len(found) != len(records):
        raise RunError(
            "some runs of the stack have checkpoints and others do not: train them apart"
        )
    iterations = {r["iteration"] for r in found}
    if len(iterations) > 1:
        raise RunError(f"the stack's checkpoints are at different iterations {sorted(iterations)}")
    iteration = iterations.pop() if iterations else 0
    state = _checked_state(fresh, found, layout, runs) if found else fresh
    # every run's metrics read (a damaged one refused) before any run's files are written
    metrics = [run.folder.read_metrics(iteration) for run in runs]
    seconds = Seconds()
    for run, record, (rows, note) in zip(runs, records, metrics, strict=True):
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
    return Resumed(state, iteration, seconds)


def _checked_state(
    fresh: TrainState, found: list[dict[str, Any]], layout: Runs, runs: Sequence[TrainingRun]
) -> TrainState:
    """The stack's state from its checkpoints, checked before any file of a run is
    rewritten; a lone run's refusal says how to continue from its previous checkpoint."""
    where = ", ".join(str(run.folder.path(CHECKPOINT)) for run in runs)
    try:
        return stacked_state(fresh, [r["state"] for r in found], layout, where)
    except CheckpointError as error:
        if len(runs) > 1:
            raise
        raise CheckpointError(f"{error}; {runs[0].folder.damaged_checkpoint_hint()}") from None


def _records(runs: Sequence[TrainingRun], ranks: Ranks, notes: bool) -> list[dict[str, Any] | None]:
    """Each run's checkpoint record to continue from (None for a run without one)."""
    records = [
        run.folder.resume_record(run.settings, _REQUIRED, _checker(run, ranks)) for run in runs
    ]
    iterations = {r["iteration"] for r in records if r is not None}
    if None in records or len(iterations) < 2:
        return records
    at = min(iterations)
    stack = [run.settings.fingerprint() for run in runs]
    rewound: list[dict[str, Any] | None] = []
    for run, record in zip(runs, records, strict=True):
        assert record is not None
        if record.get("stack") != stack:
            return records
        if record["iteration"] > at:
            record = run.folder.previous_record(run.settings, _REQUIRED, _checker(run, ranks))
            if record is None or record["iteration"] != at or record.get("stack") != stack:
                return records
        rewound.append(record)
    if notes:
        print(
            f"eblvm: the stack was stopped while writing its checkpoints: every run continues "
            f"from iteration {at}, the latest all of them hold (checkpoint.prev.pt where newer)",
            file=sys.stderr,
        )
    return rewound


def resumed_iteration(
    current: tuple[int, list[str]], previous: tuple[int, list[str]] | None, others: list[Any]
) -> int:
    """The iteration a run continues from, given its checkpoint's (iteration, stack), its
    previous checkpoint's (or None) and the (iteration, stack) of the other runs' of its
    shape: its previous one's when its stack was stopped while writing its checkpoints
    (the previous one written by the same stack of several runs, at the iteration of
    another of them), else its checkpoint's."""
    iteration, stack = current
    if (
        len(stack) > 1
        and previous is not None
        and previous[1] == stack
        and previous[0] < iteration
        and list(previous) in [list(other) for other in others]
    ):
        return previous[0]
    return iteration


def _shown(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."


def _is_int(value: Any, low: int = 0, high: float = float("inf")) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_record(
    record: dict[str, Any], path: Path, *, world: int, examples: int, generators: dict[str, int]
) -> None:
    """Refuse (CheckpointError naming the file and the field) a training checkpoint whose
    fields are not what :func:`save` writes: every process's streams, the first
    process's data order over its ``examples`` (when it ran on ``world`` processes),
    generator states of the sizes ``generators`` (name -> bytes), the running sums and
    count, the best evaluation, the seconds spent, the stack's fingerprints."""

    def refuse(field: str, value: Any, expected: str) -> None:
        raise CheckpointError(f"{path}: {field} is {_shown(value)}, not {expected}")

    def need(field: str, value: Any, valid: bool, expected: str) -> None:
        if not valid:
            refuse(field, value, expected)

    saved_world = record.get("world")
    need("world", saved_world, _is_int(saved_world, 1), "a count of processes")
    seconds: Any = record.get("seconds")
    need("seconds", seconds, isinstance(seconds, dict), "a record of seconds")
    for key in ("train", "evaluation"):
        value = seconds.get(key)
        need(f"seconds.{key}", value, _is_number(value) and value >= 0, "a number >= 0")
    running: Any = record.get("running")
    need("running", running, isinstance(running, dict), "a record of running sums")
    for key in RUNNING:
        need(f"running.{key}", running.get(key), _is_number(running.get(key)), "a number")
    count = running.get("count")
    need("running.count", count, _is_int(count), "an integer >= 0")
    best: Any = record.get("best")
    need("best", best, isinstance(best, dict), "a record of the best evaluation")
    for key, value in best.items():
        valid = _is_int(value) if key == "iteration" else value is None or _is_number(value)
        need(f"best.{key}", value, valid or isinstance(value, str), "a number")
    need("state", record.get("state"), isinstance(record.get("state"), dict), "a training state")
    ranks: Any = record.get("ranks")
    valid = isinstance(ranks, list) and len(ranks) == saved_world
    need("ranks", ranks, valid, f"one entry per process ({saved_world})")
    for rank, streams in enumerate(ranks):
        where = f"ranks[{rank}]"
        need(where, streams, isinstance(streams, dict), "a record of streams")
        for name, size in generators.items():
            state = streams.get(name)
            valid = isinstance(state, Tensor) and state.dtype == torch.uint8
            need(f"{where}.{name}", state, valid and state.shape == (size,), f"{size} bytes")
        batches = streams.get("batches")
        need(f"{where}.batches", batches, isinstance(batches, dict), "a data order")
        order = batches.get("order")
        valid = isinstance(order, Tensor) and order.dtype == torch.int64 and order.dim() == 1
        n = len(order) if valid else 0
        if rank == 0 and saved_world == world:  # another world: refused by its count
            valid = valid and n == examples
        need(f"{where}.batches.order", order, valid, f"an order of {examples} examples")
        if n and not torch.equal(order.sort().values, torch.arange(n)):
            refuse(f"{where}.batches.order", order, f"a permutation of 0..{n - 1}")
        cursor = batches.get("cursor")
        need(f"{where}.batches.cursor", cursor, _is_int(cursor, 0, n), f"an integer in 0..{n}")
    stack = record.get("stack", [])
    valid = isinstance(stack, list) and all(isinstance(f, str) for f in stack)
    need("stack", stack, valid, "a list of the stack's fingerprints")


def _checker(run: TrainingRun, ranks: Ranks) -> Callable[[dict[str, Any], Path], None]:
    """:func:`check_record` for the checkpoints of ``run`` on the main process."""
    generators = {
        "data_generator": run.data_generator.get_state().numel(),
        "step_generator": run.step_generator.get_state().numel(),
    }

    def check(record: dict[str, Any], path: Path) -> None:
        check_record(record, path, world=ranks.world, examples=run.batches.n, generators=generators)

    return check


def save(
    runs: Sequence[TrainingRun],
    state: TrainState,
    iteration: int,
    seconds: Seconds,
    layout: Runs,
    ranks: Ranks,
) -> None:
    """Every live run's checkpoint (every process's streams gathered to rank 0), each
    naming the stack."""
    stack = [run.settings.fingerprint() for run in runs]
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
            "stack": stack,
            **run.record(),
        }
        run.kept_checkpoint = run.folder.save_checkpoint(run.settings, record)


def _to_cpu(record: Any) -> Any:
    if isinstance(record, Tensor):
        return record.detach().cpu()
    if isinstance(record, dict):
        return {k: _to_cpu(v) for k, v in record.items()}
    return record
