"""The run folder shared by every trainer: atomic files, metrics, checkpoints, resumption.

A run lives in one folder holding ``config.json`` (the settings), ``metrics.jsonl``
(one JSON line per evaluation), ``checkpoint.pt`` (everything needed to continue,
written atomically) and ``summary.json`` (the final numbers). Running again with
the same settings continues from the checkpoint; other settings are refused.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


class TrainingDiverged(RuntimeError):
    """A non-finite loss or parameter stopped the run; the last good checkpoint is kept."""

    def __init__(
        self,
        iteration: int,
        value: float,
        checkpoint: Path | None,
        reason: str | None = None,
    ) -> None:
        kept = f"; last good checkpoint: {checkpoint}" if checkpoint else ""
        what = reason if reason is not None else f"loss = {value}"
        super().__init__(f"training diverged at iteration {iteration}: {what}{kept}")
        self.iteration = iteration
        self.value = value
        self.checkpoint = checkpoint


class RunMismatch(ValueError):
    """The output folder holds a checkpoint of a run with other settings."""


class RunSettings(Protocol):
    """What a run folder needs of a configuration record."""

    def fingerprint(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


class BatchStream:
    """Shuffled epochs of minibatch indices drawn from one generator; its position is state."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} training points")
        self.n = n
        self.batch_size = batch_size
        self.generator = generator
        self.order = torch.randperm(n, generator=generator)
        self.cursor = 0

    def __iter__(self) -> Iterator[Tensor]:
        return self

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
        self.order = state["order"]
        self.cursor = state["cursor"]


def read_metrics(path: Path, up_to: int | None = None) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file, those up to iteration ``up_to`` if given."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if up_to is None or row["iteration"] <= up_to]


def append_metrics(out: Path, row: dict[str, Any]) -> None:
    with (out / METRICS).open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def open_run(
    out: Path, config: RunSettings, *, write: bool = True
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Prepare ``out`` for ``config``: returns the checkpoint to continue from (None for a
    fresh run) and the metrics rows up to it.

    A checkpoint of other settings raises RunMismatch. With ``write`` (one writer per
    run), ``config.json`` is written and ``metrics.jsonl`` cut back to the checkpoint,
    so that a resumed run's metrics read like an uninterrupted one's.
    """
    if write:
        out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / CHECKPOINT
    state = None
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=False, map_location="cpu")
        if state["fingerprint"] != config.fingerprint():
            raise RunMismatch(
                f"{out} holds a checkpoint of a run with other settings "
                f"(see {out / CONFIG}); choose another --out"
            )
    iteration = state["iteration"] if state is not None else 0
    metrics = read_metrics(out / METRICS, iteration)
    if write:
        write_json(out / CONFIG, config.to_dict())
        atomic_write_bytes(
            out / METRICS, "".join(json.dumps(row) + "\n" for row in metrics).encode()
        )
    return state, metrics


def kept_checkpoint(out: Path) -> Path | None:
    """The run's checkpoint path if there is one."""
    path = out / CHECKPOINT
    return path if path.exists() else None


def guarded_step(step: Callable[[], float], iteration: int, out: Path) -> float:
    """Run one training step; a FloatingPointError (a non-finite loss or parameter) becomes
    TrainingDiverged naming ``iteration`` and the last good checkpoint."""
    try:
        return step()
    except FloatingPointError as error:
        detail = error.args[0] if error.args else float("nan")
        if isinstance(detail, (int, float)):
            raise TrainingDiverged(iteration, float(detail), kept_checkpoint(out)) from None
        raise TrainingDiverged(
            iteration, float("nan"), kept_checkpoint(out), reason=str(detail)
        ) from None
