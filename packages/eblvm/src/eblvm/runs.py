"""The run folder: its files, written atomically and safely, read back safely.

A run (one training run) lives in one folder, its run folder::

    config.json          the settings (Settings.to_dict)
    run.json             how it was made: versions, device, command line, git commit
    metrics.jsonl        one JSON line per logged or evaluated iteration
    checkpoint.pt        everything needed to continue, tensors and plain values only
    checkpoint.prev.pt   the checkpoint before it, kept in case the newest is damaged
    best.pt              the selected model (by validation log-likelihood or FID)
    summary.json         the final numbers
    run.lock             held by the one process that writes the folder
    tensorboard/         the metrics as TensorBoard scalars (with tensorboard=true)

:class:`RunFolder` is the only writer of these files.

Every file is written to a temporary file beside it, flushed to disk and renamed, so
that a reader (or a crash) sees the old or the new file, never half of one; files get
the permissions of the user's umask. Checkpoints load with ``weights_only=True`` and
carry a hash of their content: a damaged or crafted file is refused with one line
naming it and what is wrong, never unpickled into code or trained on; a checkpoint
whose hash holds is checked field by field before it is used (``resume_record``'s
``check``). JSON is read by :func:`parse_json` only (nesting depth limited) and
written without bare NaN (non-finite numbers become null). The lock and the metrics
are never opened through a symbolic link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor

from eblvm.settings import Settings
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
JSON_DEPTH = 64  # nesting levels a JSON file of the toolkit may have
TEXT_METRICS = frozenset({"diverged", "log_z_method"})
"""The fields of a metrics row that hold text; every other value is a number or null."""


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


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def dumps_json(obj: Any, **options: Any) -> str:
    """``obj`` as JSON text; non-finite numbers are written as null."""
    return json.dumps(_finite(obj), allow_nan=False, **options)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (dumps_json(obj, indent=2) + "\n").encode())


def parse_json(text: str | bytes) -> Any:
    """The value of a JSON text nested at most ``JSON_DEPTH`` levels deep; raises
    ValueError (also for a deeper one, which would exhaust Python's stack)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > JSON_DEPTH:
        depth, inside, escaped = 0, False, False
        for char in text:
            if inside:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    inside = False
            elif char == '"':
                inside = True
            elif char in "[{":
                depth += 1
                if depth > JSON_DEPTH:
                    raise ValueError(f"nested more than {JSON_DEPTH} levels deep")
            elif char in "]}":
                depth -= 1
    return json.loads(text)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; RunError naming the file when it holds none."""
    try:
        return parse_json(path.read_bytes())
    except ValueError as error:
        raise RunError(f"{path} is damaged: it holds no JSON ({error})") from None


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
    except Exception:  # torch's reasons are its internals: a truncated zip, a bad pickle
        raise CheckpointError(
            f"{path} is damaged or truncated: it cannot be read safely (weights only)"
        ) from None
    if not isinstance(record, dict) or "hash" not in record:
        raise CheckpointError(f"{path} is not a checkpoint of this toolkit (no content hash)")
    stored = record.pop("hash")
    if stored != content_hash(record):
        raise CheckpointError(f"{path} is damaged: its content does not match its hash")
    missing = [key for key in required if key not in record]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not a checkpoint of a run")
    return record


def read_run_settings(folder: Path) -> Settings:
    """The settings in ``folder/config.json`` (any family). Raises FileNotFoundError when
    the folder holds none, ValueError when the file holds no run's settings."""
    path = folder / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} is not a run folder")
    try:
        return Settings.from_dict(parse_json(path.read_bytes()))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path} does not hold a run's settings: {error}") from None


def read_weights(folder: Path, settings: Settings) -> tuple[dict[str, Any], Path]:
    """The record holding the weights of the finished or running run in ``folder``:
    ``best.pt`` when selection wrote one, else ``checkpoint.pt``, and its path. Raises
    FileNotFoundError when the folder holds neither, CheckpointError when the record is
    damaged or belongs to other settings than ``settings`` (its config.json's)."""
    best, checkpoint = folder / BEST, folder / CHECKPOINT
    source = best if best.is_file() else checkpoint
    if not source.is_file():
        raise FileNotFoundError(
            f"no weights in {folder}: neither {best} nor {checkpoint} exists (train the run first)"
        )
    record = load_checkpoint(source, required=("fingerprint", "iteration"))
    if not settings.is_fingerprint(record["fingerprint"]):
        raise CheckpointError(
            f"{source} belongs to other settings than {folder / CONFIG}: was config.json edited?"
        )
    return record, source


def read_metrics(path: Path, up_to: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of ``metrics.jsonl`` (those up to iteration ``up_to`` if given) and a
    note when a partial last line (a crash while writing) was dropped. A damaged line
    before the last, or a row with text where a number belongs (see ``TEXT_METRICS``),
    raises RunError naming the file, the line and the field."""
    if not path.exists():
        return [], None
    lines = path.read_bytes().splitlines()
    rows, note = [], None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = parse_json(line)
            if not isinstance(row, dict) or not _is_int(row.get("iteration")):
                raise ValueError("not a metrics row")
        except ValueError as error:
            if number == len(lines):
                note = f"dropped the partial last line {number} of {path}"
                break
            raise RunError(f"{path} line {number} is damaged ({error}); fix or remove it") from None
        for key, value in row.items():
            if not (value is None or _is_number(value) or key in TEXT_METRICS):
                raise RunError(
                    f"{path} line {number} is damaged: {key} is {value!r}, not a number; "
                    "fix or remove it"
                )
        if up_to is None or row["iteration"] <= up_to:
            rows.append(row)
    return rows, note


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_stamp(record: dict[str, Any], path: Path) -> None:
    """The fields every run checkpoint has (format, fingerprint, iteration) of the right
    types; raises CheckpointError naming the file and the field."""
    for key, valid, expected in (
        ("format", _is_int, "an integer"),
        ("fingerprint", lambda value: isinstance(value, str), "a string"),
        ("iteration", lambda value: _is_int(value) and value >= 0, "an integer >= 0"),
    ):
        if key in record and not valid(record[key]):
            raise CheckpointError(f"{path}: {key} is {record[key]!r}, not {expected}")


def _checked(
    path: Path, required: tuple[str, ...], check: Callable[[dict[str, Any], Path], None] | None
) -> dict[str, Any]:
    record = load_checkpoint(path, required=required)
    check_stamp(record, path)
    if check is not None:
        check(record, path)
    return record


class RunFolder:
    """One run's folder and the only writer of its files, held by one process: a
    context manager that takes the lock (another live writer is refused; the lock dies
    with its process) and removes temporary files that a killed process left behind."""

    def __init__(self, out: Path) -> None:
        if str(out) == "":
            raise ValueError("the run folder must be a path, got an empty string")
        self.out = Path(os.path.expanduser(str(out)))
        self._lock: int | None = None
        self._scalars: Any = None

    def __enter__(self) -> RunFolder:
        if self.out.exists() and not self.out.is_dir():
            raise RunError(f"{self.out} exists and is not a folder: choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        lock = _open_here(self.out / LOCK, os.O_RDWR | os.O_CREAT)
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
        self.close_scalars()
        if self._lock is not None:
            os.ftruncate(self._lock, 0)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def path(self, name: str) -> Path:
        return self.out / name

    def write_settings(self, settings: Settings, made: dict[str, Any]) -> None:
        """``config.json`` (the settings) and ``run.json`` (``made``: how the run was made)."""
        write_json(self.path(CONFIG), settings.to_dict())
        write_json(self.path(PROVENANCE), made)

    def read_metrics(self, up_to: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """The metrics rows up to iteration ``up_to`` (see :func:`read_metrics`)."""
        return read_metrics(self.path(METRICS), up_to)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One row more in ``metrics.jsonl`` (and its numbers as TensorBoard scalars when
        :meth:`open_scalars` was called)."""
        path = self.path(METRICS)
        handle = _open_here(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        size = os.fstat(handle).st_size
        data = (dumps_json(row) + "\n").encode()
        try:
            written = 0
            while written < len(data):  # a full disk may take part of a row before it refuses
                written += os.write(handle, data[written:])
            os.fsync(handle)
        except OSError as error:  # no half row left behind: the file as it was
            with contextlib.suppress(OSError):
                os.ftruncate(handle, size)
            raise OSError(error.errno, error.strerror, str(path)) from None
        finally:
            os.close(handle)
        if self._scalars is not None and "iteration" in row:
            for key, value in row.items():
                if isinstance(value, float) and key != "seconds":
                    self._scalars.add_scalar(key, value, row["iteration"])

    def rewrite_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_bytes(
            self.path(METRICS), "".join(dumps_json(row) + "\n" for row in rows).encode()
        )

    def open_scalars(self) -> None:
        """Also write the metrics as TensorBoard scalars into ``out/tensorboard`` (the
        ``tensorboard`` package is needed: ``pip install tensorboard``)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RunError(
                "tensorboard=true needs the tensorboard package: pip install tensorboard"
            ) from None
        self._scalars = SummaryWriter(str(self.path("tensorboard")))

    def close_scalars(self) -> None:
        if self._scalars is not None:
            self._scalars.close()
            self._scalars = None

    def resume_record(
        self,
        settings: Settings,
        required: tuple[str, ...],
        check: Callable[[dict[str, Any], Path], None] | None = None,
    ) -> dict[str, Any] | None:
        """The checkpoint of this run to continue with ``settings``, or None when there is
        none; ``check(record, path)`` refuses (CheckpointError) a record whose fields are
        wrong, right after its hash. Raises CheckpointError (damaged or wrong: with what to
        do) or RunMismatch (another run's, or more iterations than asked for). A missing
        ``checkpoint.pt`` beside a kept ``checkpoint.prev.pt`` is refused too: the run is
        neither started again over its files nor continued from an older state unasked."""
        path = self.path(CHECKPOINT)
        if not path.exists():
            if self.path(PREVIOUS).exists():
                raise CheckpointError(f"{path} is missing; {self.damaged_checkpoint_hint()}")
            self._refuse_lost_checkpoints(settings)
            return None
        try:
            record = _checked(path, ("format", "fingerprint", *required), check)
        except CheckpointError as error:
            raise CheckpointError(f"{error}; {self.damaged_checkpoint_hint()}") from None
        return self._continued(path, record, settings)

    def _refuse_lost_checkpoints(self, settings: Settings) -> None:
        """Refuse (CheckpointError) a folder without checkpoints whose metrics go past the
        first checkpoint's iteration, or that holds a summary: it had checkpoints, and
        training it again from iteration 0 would replace its metrics. Rows up to the
        first checkpoint (a crash before it was written) start the run again."""
        rows, _ = self.read_metrics()
        last = max((row["iteration"] for row in rows), default=0)
        summary = self.path(SUMMARY)
        if last > settings.cadence.checkpoint_every or summary.exists():
            reached = f"{self.path(METRICS)} reaches iteration {last}"
            raise CheckpointError(
                f"{self.path(CHECKPOINT)} and {PREVIOUS} are missing, but "
                f"{summary if summary.exists() else reached}: the run cannot continue; "
                "choose another --out (or remove this folder's files to train it again)"
            )

    def previous_record(
        self,
        settings: Settings,
        required: tuple[str, ...],
        check: Callable[[dict[str, Any], Path], None] | None = None,
    ) -> dict[str, Any] | None:
        """The previous checkpoint (``checkpoint.prev.pt``) of this run, checked as
        :meth:`resume_record` checks the newest; None when there is none or it is
        damaged."""
        path = self.path(PREVIOUS)
        try:
            record = _checked(path, ("format", "fingerprint", *required), check)
        except (OSError, CheckpointError):
            return None
        return self._continued(path, record, settings)

    def _continued(self, path: Path, record: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """``record`` (from ``path``) if the run of ``settings`` may continue from it."""
        if record["format"] != FORMAT:
            raise CheckpointError(f"{path} has checkpoint format {record['format']}, not {FORMAT}")
        if not settings.is_fingerprint(record["fingerprint"]):
            raise RunMismatch(_mismatch_message(self.out, settings, record["fingerprint"]))
        iterations = settings.cadence.iterations
        if record["iteration"] > iterations:
            raise RunMismatch(
                f"{self.out} holds {record['iteration']} iterations, more than the {iterations} "
                "asked for; a run is never shortened: ask for at least as many, or choose "
                "another --out"
            )
        return record

    def save_checkpoint(self, settings: Settings, record: dict[str, Any]) -> Path:
        """``checkpoint.pt`` of the run of ``settings`` (the one before it kept)."""
        save_checkpoint(self._stamped(settings, record), self.path(CHECKPOINT))
        return self.path(CHECKPOINT)

    def save_best(self, settings: Settings, record: dict[str, Any]) -> None:
        """``best.pt``: the selected model of the run of ``settings``."""
        save_checkpoint(self._stamped(settings, record), self.path(BEST), keep_previous=False)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path(SUMMARY), summary)

    def read_summary(self) -> dict[str, Any] | None:
        """The summary written when the run finished; None when there is none (or it is
        unreadable, to be written again)."""
        try:
            summary = parse_json(self.path(SUMMARY).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def damaged_checkpoint_hint(self) -> str:
        """What to do when checkpoint.pt is damaged: resume from the previous one."""
        previous = self.path(PREVIOUS)
        try:
            kept = load_checkpoint(previous, required=("iteration",))
            check_stamp(kept, previous)
        except (OSError, CheckpointError):
            return "no intact previous checkpoint is kept: start again in another --out"
        return (
            f"the previous checkpoint {previous} (iteration {kept['iteration']}) is intact: "
            f"`mv {previous} {self.path(CHECKPOINT)}` resumes from it, or start again in "
            "another --out"
        )

    @staticmethod
    def _stamped(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, "fingerprint": settings.fingerprint(), **record}


def _open_here(path: Path, flags: int) -> int:
    """``os.open`` of a file of the run folder itself: a symbolic link is refused, never
    followed out of the folder."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o666 & ~_umask())
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RunError(
                f"{path} is a symbolic link, which a run folder never follows: remove it"
            ) from None
        raise


def _mismatch_message(out: Path, settings: Settings, fingerprint: str) -> str:
    """Which settings differ from those of the run in ``out`` (whose checkpoint has
    ``fingerprint``), as its config.json records them when that still matches."""
    try:
        saved = Settings.from_dict(parse_json((out / CONFIG).read_bytes()))
    except (OSError, ValueError, TypeError):
        saved = None
    if saved is None or not saved.is_fingerprint(fingerprint):
        return (
            f"{out} holds a checkpoint of a run with other settings, and its {CONFIG} "
            "(missing, damaged or edited) no longer records them, so which settings differ "
            "is unknown; choose another --out"
        )
    theirs, ours = saved.trajectory(), settings.trajectory()
    differing = [
        f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} here"
        for key in {**theirs, **ours}
        if theirs.get(key) != ours.get(key)
    ]
    hint = ""
    if any(d.startswith("cadence.iterations") for d in differing):
        hint = (
            "; iterations cannot change for a run with a learning-rate schedule (it spans "
            "them): start a new run from this one's weights with --init-from"
        )
    differ = "; ".join(differing) or "settings the run does not read"
    return f"{out} holds a run with other settings ({differ}){hint}; choose another --out"
