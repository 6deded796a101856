"""The run folder: its files, written atomically and safely, read back safely.

A run lives in one folder::

    config.json          the settings (Settings.to_dict)
    run.json             how it was made: versions, device, command line, git commit
    metrics.jsonl        one JSON line per logged or evaluated iteration
    checkpoint.pt        everything needed to continue, tensors and plain values only
    checkpoint.prev.pt   the checkpoint before it, kept in case the newest is damaged
    best.pt              the selected model (by validation log-likelihood or FID)
    summary.json         the final numbers
    run.lock             held by the one process that writes the folder

Every file is written to a temporary file beside it, flushed to disk and renamed, so
that a reader (or a crash) sees the old or the new file, never half of one; files get
the permissions of the user's umask. Checkpoints load with ``weights_only=True`` and
carry a hash of their content: a damaged or crafted file is refused with one line
naming it and what is wrong, never unpickled into code or trained on.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from eblvm_eval.files import TEMPORARY_MARK, write_atomically

CONFIG = "config.json"
PROVENANCE = "run.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
BEST = "best.pt"
SUMMARY = "summary.json"
LOCK = "run.lock"
_TEMPORARY = TEMPORARY_MARK
FORMAT = 2


class RunError(Exception):
    """An expected failure of a run: the message is one line for the user."""


class RunMismatch(RunError, ValueError):
    """The folder holds a run with other settings, or more iterations than asked for."""


class RunLocked(RunError):
    """Another process is writing the run folder."""


class CheckpointError(RunError, ValueError):
    """A checkpoint or best.pt that cannot be trusted: damaged, crafted or of another run."""


class TrainingDiverged(RunError, RuntimeError):
    """A non-finite or runaway loss or evaluation stopped the run; the last good
    checkpoint is kept."""

    def __init__(self, iteration: int, reason: str, checkpoint: Path | None) -> None:
        kept = f"; last good checkpoint: {checkpoint}" if checkpoint else ""
        super().__init__(f"training diverged at iteration {iteration}: {reason}{kept}")
        self.iteration = iteration
        self.reason = reason
        self.checkpoint = checkpoint


class TrainingInterrupted(RunError):
    """SIGINT or SIGTERM: the runs were checkpointed at the current iteration."""

    def __init__(self, iteration: int, folders: list[Path]) -> None:
        where = ", ".join(str(f / CHECKPOINT) for f in folders)
        super().__init__(
            f"interrupted at iteration {iteration}; checkpoint written to {where}: run the "
            "same command again to resume"
        )
        self.iteration = iteration


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old or the new file."""
    write_atomically(path, lambda file: file.write(data))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def content_hash(record: Any) -> str:
    """SHA-256 of a record of tensors and plain values: keys, dtypes, shapes and bytes."""
    digest = hashlib.sha256()

    def visit(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name in sorted(value):
                visit(value[name], f"{key}/{name}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, f"{key}/{i}")
        elif isinstance(value, Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{key}:{flat.dtype}:{tuple(value.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f"{key}={value!r}".encode())

    visit(record, "")
    return digest.hexdigest()


def save_checkpoint(record: dict[str, Any], path: Path, *, keep_previous: bool = True) -> None:
    """``torch.save`` of ``record`` (tensors and plain values) with its content hash, to
    ``path`` atomically; the file it replaces becomes ``checkpoint.prev.pt``."""
    previous = path.with_name(PREVIOUS)

    def write(file: BinaryIO) -> None:
        torch.save({**record, "hash": content_hash(record)}, file)
        if keep_previous and path.exists():
            # The current checkpoint becomes the previous one through a second name, so
            # that checkpoint.pt exists at every moment, old or new.
            link = path.with_name(f".{PREVIOUS}{_TEMPORARY}link")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, previous)

    write_atomically(path, write)


def load_checkpoint(path: Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record saved by :func:`save_checkpoint`, checked: it must load with
    ``weights_only=True``, hold the ``required`` keys and match its content hash.
    Raises CheckpointError naming the file and what is wrong."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
        raise CheckpointError(f"{path} cannot be read safely: {reason}") from None
    except Exception as error:
        raise CheckpointError(f"{path} is damaged: {type(error).__name__}: {error}") from None
    if not isinstance(record, dict) or "hash" not in record:
        raise CheckpointError(f"{path} is not a checkpoint of this toolkit (no content hash)")
    stored = record.pop("hash")
    if stored != content_hash(record):
        raise CheckpointError(f"{path} is damaged: its content does not match its hash")
    missing = [key for key in required if key not in record]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not a checkpoint of a run")
    return record


def read_metrics(path: Path, up_to: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of ``metrics.jsonl`` (those up to iteration ``up_to`` if given) and a
    note when a partial last line (a crash while writing) was dropped. A damaged line
    before the last raises RunError naming the file and the line."""
    if not path.exists():
        return [], None
    lines = path.read_bytes().splitlines()
    rows, note = [], None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict) or not isinstance(row.get("iteration"), int):
                raise ValueError("not a metrics row")
        except ValueError as error:
            if number == len(lines):
                note = f"dropped the partial last line {number} of {path}"
                break
            raise RunError(f"{path} line {number} is damaged ({error}); fix or remove it") from None
        if up_to is None or row["iteration"] <= up_to:
            rows.append(row)
    return rows, note


class RunFolder:
    """One run's folder, held by one process: a context manager that takes the lock
    (another live writer is refused; the lock dies with its process) and removes
    temporary files that a killed process left behind."""

    def __init__(self, out: Path) -> None:
        if str(out) == "":
            raise ValueError("the run folder must be a path, got an empty string")
        self.out = Path(os.path.expanduser(str(out)))
        self._lock: int | None = None

    def __enter__(self) -> RunFolder:
        if self.out.exists() and not self.out.is_dir():
            raise RunError(f"{self.out} exists and is not a folder: choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(lock, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(lock)
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLocked(
                    f"{self.out} is in use by process {holder} (lock {self.out / LOCK}); "
                    "wait for it to finish or choose another --out"
                ) from None
            raise
        os.ftruncate(lock, 0)
        os.pwrite(lock, f"{os.getpid()}\n".encode(), 0)
        self._lock = lock
        for stale in self.out.glob(f".*{_TEMPORARY}*"):
            stale.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            os.ftruncate(self._lock, 0)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def path(self, name: str) -> Path:
        return self.out / name

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.path(METRICS).open("a") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_bytes(
            self.path(METRICS), "".join(json.dumps(row) + "\n" for row in rows).encode()
        )

    def scalar_writer(self) -> Any:
        """A TensorBoard SummaryWriter into ``out/tensorboard`` (the ``tensorboard``
        package is needed: ``pip install tensorboard``)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RunError(
                "tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from None
        return SummaryWriter(str(self.path("tensorboard")))

    def damaged_checkpoint_hint(self) -> str:
        """What to do when checkpoint.pt is damaged: resume from the previous one."""
        previous = self.path(PREVIOUS)
        try:
            kept = load_checkpoint(previous, required=("iteration",))
        except (FileNotFoundError, CheckpointError):
            return "no intact previous checkpoint is kept: start again in another --out"
        return (
            f"the previous checkpoint {previous} (iteration {kept['iteration']}) is intact: "
            f"`mv {previous} {self.path(CHECKPOINT)}` resumes from it"
        )
