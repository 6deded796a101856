"""One run within a training, apart from its tensors: its run folder, its random
streams and batch order, its running means, best evaluation, last metrics row and
divergence, and what its checkpoint records of them.

Each run draws its batches and its step's noise from its own generators, seeded by
(seed, process, stream), so that a run trains the same alone or in a stack.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from eblvm.distributed import Ranks
from eblvm.runs import CHECKPOINT, CheckpointError, RunFolder, RunMismatch, TrainingDiverged
from eblvm.settings import Settings

RUNNING = ("loss", "posterior_loss", "grad_norm")


def rank_seed(seed: int, rank: int, stream: str) -> int:
    """A seed for one process's stream of draws (``data`` or ``step``), distinct for every
    (seed, rank, stream)."""
    digest = hashlib.sha256(f"{seed}/{rank}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class BatchStream:
    """Shuffled epochs of minibatch indices drawn from one generator; its position is state."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.order = torch.randperm(n, generator=generator)
        self.cursor = 0

    def __next__(self) -> Tensor:
        if self.cursor + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.cursor = 0
        batch = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state.get("order"), Tensor) or state["order"].shape != (self.n,):
            raise CheckpointError("the saved data order does not fit the data set")
        self.order, self.cursor = state["order"], int(state["cursor"])


def _zeros() -> dict[str, float]:
    return dict.fromkeys(RUNNING, 0.0)


@dataclass
class TrainingRun:
    """One run of a training on this process (see the module docstring)."""

    settings: Settings
    folder: RunFolder
    data_generator: torch.Generator
    step_generator: torch.Generator
    batches: BatchStream
    best: dict[str, Any] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=_zeros)
    running_count: int = 0
    last_row: dict[str, Any] | None = None
    diverged: TrainingDiverged | None = None
    kept_checkpoint: Path | None = None

    @classmethod
    def start(
        cls, settings: Settings, folder: RunFolder, ranks: Ranks, shard: int, batch: int
    ) -> TrainingRun:
        """The run of ``settings`` at its start: its streams seeded for this process,
        batches of ``batch`` of the ``shard`` examples this process sees."""
        data = torch.Generator().manual_seed(rank_seed(settings.seed, ranks.rank, "data"))
        steps = torch.Generator(ranks.device).manual_seed(
            rank_seed(settings.seed, ranks.rank, "step")
        )
        return cls(settings, folder, data, steps, BatchStream(shard, batch, data))

    @property
    def alive(self) -> bool:
        return self.diverged is None

    def diverge(self, iteration: int, reason: str, writes: bool) -> None:
        """Stop the run at ``iteration`` (recorded in its metrics when ``writes``)."""
        self.diverged = TrainingDiverged(iteration, reason, self.kept_checkpoint)
        if writes:
            self.folder.append_metrics({"iteration": iteration, "diverged": reason})

    def write(self, row: dict[str, Any], writes: bool) -> None:
        """One metrics row of the run (appended to its metrics when ``writes``)."""
        self.last_row = {**(self.last_row or {}), **row}
        if writes:
            self.folder.append_metrics(row)

    def add(self, values: dict[str, float]) -> None:
        """One step's reported values into the running sums."""
        for key in RUNNING:
            self.running[key] += values[key]
        self.running_count += 1

    def running_means(self) -> dict[str, float | None]:
        """The means since the last call (None where not finite); the sums restart."""
        means = {}
        for key in RUNNING:
            mean = self.running[key] / self.running_count
            means[key] = mean if math.isfinite(mean) else None
        self.running, self.running_count = _zeros(), 0
        return means

    def streams(self) -> dict[str, Any]:
        """This process's part of the checkpoint: the batch order and the generators."""
        return {
            "batches": self.batches.state_dict(),
            "data_generator": self.data_generator.get_state(),
            "step_generator": self.step_generator.get_state().cpu(),
        }

    def record(self) -> dict[str, Any]:
        """The run's part of its checkpoint beside the tensors and the streams."""
        return {"best": self.best, "running": {**self.running, "count": self.running_count}}

    def restore(self, record: dict[str, Any], ranks: Ranks, rows: list[dict[str, Any]]) -> None:
        """Continue from ``record`` (the run's checkpoint) with its metrics ``rows``."""
        if record["world"] != ranks.world:
            raise RunMismatch(
                f"{self.folder.out} holds a run of {record['world']} process(es); continue "
                f"it with as many (this is {ranks.world})"
            )
        mine = record["ranks"][ranks.rank]
        self.batches.load_state_dict(mine["batches"])
        self.data_generator.set_state(mine["data_generator"])
        self.step_generator.set_state(mine["step_generator"].to(torch.uint8))
        self.best = dict(record["best"])
        self.running = {k: float(record["running"][k]) for k in RUNNING}
        self.running_count = int(record["running"]["count"])
        self.last_row = rows[-1] if rows else None
        self.kept_checkpoint = self.folder.path(CHECKPOINT)
