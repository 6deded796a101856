"""The training loop: one for every model family, one run or a stack of runs.

``train(task, settings, out)`` trains one run in ``out``; ``train_stack(task, runs)``
trains S runs of one model shape (seeds, learning rates) as one batched, compiled
step, each run still in its own folder with the same files as a single run. The
loop owns the run folders (lock, resume, atomic checkpoints), the batches (each run
its own data order and random streams), the cadence of metrics, evaluations and
checkpoints, divergence, interruption and progress; the task (a model family)
supplies the data, the models and the evaluation, and knows nothing of the loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from eblvm.compiled import CompiledStep
from eblvm.distributed import Ranks, init_ranks
from eblvm.functional import Runs, parameters_of
from eblvm.parts import Model, build_step
from eblvm.provenance import provenance
from eblvm.runs import (
    BEST,
    CHECKPOINT,
    CONFIG,
    FORMAT,
    METRICS,
    PROVENANCE,
    SUMMARY,
    CheckpointError,
    RunError,
    RunFolder,
    RunMismatch,
    TrainingDiverged,
    TrainingInterrupted,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
    write_json,
)
from eblvm.settings import Settings
from eblvm.states import run_record, stacked_state
from eblvm.step import StepInfo, TrainState, fold_noise

__all__ = ["BatchStream", "RunView", "Task", "train", "train_stack"]


class RunView(NamedTuple):
    """One run as a task evaluates it: its settings, its folder, its modules holding
    the run's parameters, and (with an EMA) the energy holding the averaged ones."""

    settings: Settings
    out: Path
    model: Model
    average: nn.Module | None


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

    def evaluate(self, runs: Sequence[RunView], iteration: int) -> list[dict[str, Any]]: ...

    def best_record(self, run: RunView) -> dict[str, Any]: ...

    def finish(self, run: RunView, row: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]: ...


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


def rank_seed(seed: int, rank: int, stream: str) -> int:
    """A seed for one process's stream of draws (``data`` or ``step``), distinct for every
    (seed, rank, stream)."""
    digest = hashlib.sha256(f"{seed}/{rank}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


_RUNNING = ("loss", "posterior_loss", "grad_norm")
_SHOWN = ("loss", "test_log_likelihood", "fid")


@dataclass
class _Run:
    """One run's bookkeeping in the loop."""

    settings: Settings
    folder: RunFolder
    data_generator: torch.Generator
    step_generator: torch.Generator
    batches: BatchStream
    best: dict[str, Any] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_RUNNING, 0.0))
    running_count: int = 0
    last_row: dict[str, Any] | None = None
    diverged: TrainingDiverged | None = None
    kept_checkpoint: Path | None = None
    writer: Any = None

    @property
    def out(self) -> Path:
        return self.folder.out


class _Progress:
    """tqdm on a terminal; elsewhere one line every ``every`` seconds."""

    def __init__(self, total: int, initial: int, name: str, enabled: bool, every: float = 30.0):
        self.enabled, self.total, self.name, self.every = enabled, total, name, every
        self.terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=name, disable=not self.terminal)
        self.last, self.start, self.first = time.monotonic(), time.monotonic(), initial
        self.postfix = ""

    def update(self, iteration: int, postfix: str | None = None) -> None:
        if postfix is not None:
            self.postfix = postfix
            self.bar.set_postfix_str(postfix)
        self.bar.update()
        now = time.monotonic()
        if self.enabled and not self.terminal and now - self.last >= self.every:
            rate = (iteration - self.first) / max(now - self.start, 1e-9)
            print(
                f"{self.name}: iteration {iteration}/{self.total} ({rate:.1f} it/s) {self.postfix}",
                file=sys.stderr,
                flush=True,
            )
            self.last = now

    def note(self, text: str) -> None:
        if self.enabled:
            print(f"{self.name}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def _interruptible() -> Iterator[list[int]]:
    """SIGINT and SIGTERM set a flag (the yielded list) instead of stopping the process
    mid-step; outside the main thread nothing changes."""
    caught: list[int] = []
    if not _on_main_thread():
        yield caught
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _on_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _check_stack(task: Task, settings: Sequence[Settings], ranks: Ranks) -> None:
    if not settings:
        raise ValueError("train_stack needs at least one run")
    if len(settings) > 1:
        if not task.stackable:
            raise ValueError(f"{type(task).__name__} trains one run at a time, not a stack")
        keys = {s.shape_key() for s in settings}
        if len(keys) > 1:
            raise ValueError(
                "the runs of a stack may differ only in seed and learning rates; "
                "train the others as separate stacks"
            )
        if ranks.world > 1:
            raise ValueError("a stack of runs trains on one process")


def _open_checkpoint(run: _Run, fingerprint: str, iterations: int) -> dict[str, Any] | None:
    path = run.folder.path(CHECKPOINT)
    if not path.exists():
        return None
    try:
        record = load_checkpoint(
            path, required=("format", "fingerprint", "iteration", "state", "ranks")
        )
    except CheckpointError as error:
        raise CheckpointError(f"{error}; {run.folder.damaged_checkpoint_hint()}") from None
    if record["format"] != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {record['format']}, not {FORMAT}")
    if record["fingerprint"] != fingerprint:
        raise RunMismatch(_mismatch_message(run.out, run.settings))
    if record["iteration"] > iterations:
        raise RunMismatch(
            f"{run.out} holds {record['iteration']} iterations, more than the {iterations} "
            "asked for; a run is never shortened: ask for at least as many, or choose "
            "another --out"
        )
    return record


def _mismatch_message(out: Path, settings: Settings) -> str:
    """Which settings differ from those of the run in ``out``."""
    import json

    try:
        saved = Settings.from_dict(json.loads((out / CONFIG).read_text()))
    except (OSError, ValueError):
        return f"{out} holds a checkpoint of a run with other settings; choose another --out"
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
    return (
        f"{out} holds a run with other settings ({'; '.join(differing) or 'see config.json'})"
        f"{hint}; choose another --out"
    )


def train(
    task: Task,
    settings: Settings,
    out: str | Path,
    *,
    progress: bool = True,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Train one run of ``settings`` in ``out`` (continuing a checkpointed run of the same
    settings). Returns the summary, also written to ``out/summary.json``.

    Raises TrainingDiverged (the last good checkpoint kept), TrainingInterrupted
    (SIGINT/SIGTERM, checkpointed), RunMismatch, RunLocked, CheckpointError.
    """
    (summary,) = train_stack(task, [(settings, Path(out))], progress=progress, init_from=init_from)
    if "diverged" in summary:
        diverged = summary["diverged"]
        kept = Path(out) / CHECKPOINT
        raise TrainingDiverged(
            diverged["iteration"], diverged["reason"], kept if kept.exists() else None
        )
    return summary


def train_stack(
    task: Task,
    runs: Sequence[tuple[Settings, Path]],
    *,
    progress: bool = True,
    init_from: Path | None = None,
) -> list[dict[str, Any]]:
    """Train the runs (settings, folder) as one stack: they may differ in seed and
    learning rates. A diverged run stops alone (recorded in its summary and its
    metrics) and the others go on; every run must be at the same iteration (a fresh
    start, or checkpoints of the same iteration). Returns the summaries in order;
    raises TrainingDiverged when the only run diverged.
    """
    settings = [s for s, _ in runs]
    first = settings[0]
    ranks = init_ranks(first.device)
    _check_stack(task, settings, ranks)
    with contextlib.ExitStack() as stack:
        folders = [RunFolder(out) for _, out in runs]
        if ranks.is_main:
            for folder in folders:
                stack.enter_context(folder)
        return _Training(task, settings, folders, ranks, progress, init_from).run()


class _Training:
    """The state of one call of the loop (see ``train_stack``)."""

    def __init__(
        self,
        task: Task,
        settings: list[Settings],
        folders: list[RunFolder],
        ranks: Ranks,
        progress: bool,
        init_from: Path | None,
    ) -> None:
        self.task, self.ranks, self.first = task, ranks, settings[0]
        self.count = len(settings)
        self.layout = Runs(self.count, stacked=task.stackable)
        local = self.first.data.batch_size // ranks.world
        if self.first.data.batch_size % ranks.world:
            raise ValueError(
                f"data.batch_size {self.first.data.batch_size} must split evenly over the "
                f"{ranks.world} processes"
            )
        self.local_batch = local
        self.runs: list[_Run] = []
        shard = len(range(ranks.rank, task.train_size, ranks.world))
        for s, folder in zip(settings, folders, strict=True):
            data = torch.Generator().manual_seed(rank_seed(s.seed, ranks.rank, "data"))
            steps = torch.Generator(ranks.device).manual_seed(rank_seed(s.seed, ranks.rank, "step"))
            self.runs.append(_Run(s, folder, data, steps, BatchStream(shard, local, data)))
        self.shard = torch.arange(ranks.rank, task.train_size, ranks.world)
        self.models = [task.build(s, torch.Generator().manual_seed(s.seed)) for s in settings]
        if init_from is not None:
            _initialise_from(self.models[0], init_from)
        self.model = task.stack(self.models) if self.layout.stacked else self.models[0]
        self.model = Model(
            self.model.energy.to(ranks.device),
            None if self.model.posterior is None else self.model.posterior.to(ranks.device),
            self.model.latent_shape,
        )
        self.step = build_step(
            self.first,
            self.model,
            self.layout,
            ranks,
            lrs=[s.optimiser.lr for s in settings],
            posterior_lrs=[s.posterior.lr for s in settings],
            data=self._data_sample() if self.first.method.is_noise_contrastive else None,
        )
        mode = (
            self.first.compile if self.first.compile != "auto" or task.compile_by_default else "off"
        )
        self.compiled = CompiledStep(self.step, mode)
        self.progress_on = progress and ranks.is_main
        self.iteration, self.train_seconds, self.eval_seconds = 0, 0.0, 0.0
        self.selection = task.selection(self.first)

    # --------------------------------------------------------------- state and files

    def _data_sample(self, size: int = 10_000) -> Tensor:
        """The first ``size`` training examples (for NCE's noise fitted to the data)."""
        indices = torch.arange(min(size, self.task.train_size))
        return self.task.batch(indices, torch.Generator().manual_seed(0))

    def _initial_state(self) -> TrainState:
        theta = parameters_of(self.model.energy)
        phi = {} if self.model.posterior is None else parameters_of(self.model.posterior)
        self.ranks.broadcast([*theta.values(), *phi.values()])
        example = torch.zeros(
            self.count * self.local_batch, *self._batch_shape(), device=self.ranks.device
        )
        return self.step.init(theta, phi, example)

    def _batch_shape(self) -> tuple[int, ...]:
        probe = self.task.batch(self.shard[:1], torch.Generator())
        return tuple(probe.shape[1:])

    def _resume(self, fresh: TrainState) -> TrainState:
        """The state of the runs' checkpoints (read by rank 0, sent to every process), or
        ``fresh``; also cuts the metrics back to the checkpoint."""
        records = self.ranks.broadcast_object(
            [
                _open_checkpoint(run, run.settings.fingerprint(), run.settings.cadence.iterations)
                if self.ranks.is_main
                else None
                for run in self.runs
            ]
        )
        found = [r for r in records if r is not None]
        if found and len(found) != len(records):
            raise RunError(
                "some runs of the stack have checkpoints and others do not: train them apart"
            )
        iterations = {r["iteration"] for r in found}
        if len(iterations) > 1:
            raise RunError(
                f"the stack's checkpoints are at different iterations {sorted(iterations)}"
            )
        self.iteration = iterations.pop() if iterations else 0
        for run, record in zip(self.runs, records, strict=True):
            rows, note = read_metrics(run.folder.path(METRICS), self.iteration)
            if note and self.progress_on:
                print(f"eblvm: {note}", file=sys.stderr)
            if self.ranks.is_main:
                run.folder.rewrite_metrics(rows)
                write_json(run.folder.path(CONFIG), run.settings.to_dict())
                write_json(run.folder.path(PROVENANCE), provenance(run.settings, self.ranks))
            if record is None:
                continue
            if record["world"] != self.ranks.world:
                raise RunMismatch(
                    f"{run.out} holds a run of {record['world']} process(es); continue it "
                    f"with as many (this is {self.ranks.world})"
                )
            mine = record["ranks"][self.ranks.rank]
            run.batches.load_state_dict(mine["batches"])
            run.data_generator.set_state(mine["data_generator"])
            run.step_generator.set_state(mine["step_generator"].to(torch.uint8))
            run.best = dict(record["best"])
            run.running = {k: float(record["running"][k]) for k in _RUNNING}
            run.running_count = int(record["running"]["count"])
            run.last_row = rows[-1] if rows else None
            run.kept_checkpoint = run.folder.path(CHECKPOINT)
            self.train_seconds = float(record["seconds"]["train"])
            self.eval_seconds = float(record["seconds"]["evaluation"])
        if not found:
            return fresh
        where = ", ".join(str(run.folder.path(CHECKPOINT)) for run in self.runs)
        return stacked_state(fresh, [r["state"] for r in found], self.layout, where)

    def _save(self, state: TrainState) -> None:
        for index, run in enumerate(self.runs):
            mine = {
                "batches": run.batches.state_dict(),
                "data_generator": run.data_generator.get_state(),
                "step_generator": run.step_generator.get_state().cpu(),
            }
            every_rank = self.ranks.gather(mine)
            if not self.ranks.is_main or run.diverged is not None:
                continue
            record = {
                "format": FORMAT,
                "fingerprint": run.settings.fingerprint(),
                "iteration": self.iteration,
                "seconds": {"train": self.train_seconds, "evaluation": self.eval_seconds},
                "best": run.best,
                "world": self.ranks.world,
                "state": _to_cpu(run_record(state, index, self.layout)),
                "ranks": every_rank,
                "running": {**run.running, "count": run.running_count},
            }
            save_checkpoint(record, run.folder.path(CHECKPOINT))
            run.kept_checkpoint = run.folder.path(CHECKPOINT)

    # ------------------------------------------------------------------- the loop

    def run(self) -> list[dict[str, Any]]:
        state = self._resume(self._initial_state())
        if self.ranks.is_main:
            for run in self.runs:
                if run.settings.tensorboard:
                    run.writer = run.folder.scalar_writer()
        total = self.first.cadence.iterations
        name = f"{self.first.data.dataset}-{self.first.method.name}-{self.first.objective.name}"
        if self.count > 1:
            name += f" ×{self.count}"
        bar = _Progress(total, self.iteration, name, self.progress_on)
        try:
            with _interruptible() as caught:
                state = self._iterate(state, bar, caught)
        finally:
            bar.close()
            for run in self.runs:
                if run.writer is not None:
                    run.writer.close()
        if self.compiled.fallback_reason and self.compiled.mode == "auto":
            bar.note(f"the step ran eagerly: {self.compiled.fallback_reason}")
        return self._finish(state)

    def _iterate(self, state: TrainState, bar: _Progress, caught: list[int]) -> TrainState:
        cadence = self.first.cadence
        while self.iteration < cadence.iterations and any(r.diverged is None for r in self.runs):
            start = time.perf_counter()
            v, noise = self._draws()
            iteration = torch.tensor(
                float(self.iteration + 1), dtype=torch.float64, device=self.ranks.device
            )
            compiling = self.compiled.compile_seconds
            state, info = self.compiled(state, v, noise, iteration)
            self.iteration += 1
            self._account(info)
            compiling = self.compiled.compile_seconds - compiling  # reported on its own
            self.train_seconds += time.perf_counter() - start - compiling
            last = self.iteration == cadence.iterations
            rows: list[dict[str, Any]] = [{} for _ in self.runs]
            if self.iteration % cadence.log_every == 0 or last:
                self._log(rows)
            if self.iteration % cadence.eval_every == 0 or last:
                self._evaluate(state, rows)
            postfix = self._write_rows(rows)
            if self.iteration % cadence.checkpoint_every == 0 or last:
                self._save(state)
            bar.update(self.iteration, postfix)
            if caught:
                self._save(state)
                raise TrainingInterrupted(self.iteration, [r.out for r in self.runs])
        return state

    def _draws(self) -> tuple[Tensor, Any]:
        batches, noises = [], []
        for run in self.runs:
            indices = self.shard[next(run.batches)]
            v = self.task.batch(indices, run.data_generator).to(self.ranks.device)
            batches.append(v)
            noises.append(self.step.draw_noise(v, run.step_generator))
        return torch.cat(batches), fold_noise(noises, self.step.noise_axes())

    def _account(self, info: StepInfo) -> None:
        finite = info.finite.tolist()
        values = {key: getattr(info, key).tolist() for key in _RUNNING}
        for index, run in enumerate(self.runs):
            if run.diverged is not None:
                continue
            if not finite[index]:
                self._diverge(run, f"loss = {values['loss'][index]}")
                continue
            for key in _RUNNING:
                run.running[key] += values[key][index]
            run.running_count += 1

    def _diverge(self, run: _Run, reason: str) -> None:
        run.diverged = TrainingDiverged(self.iteration, reason, run.kept_checkpoint)
        if self.ranks.is_main:
            run.folder.append_metrics({"iteration": self.iteration, "diverged": reason})

    def _log(self, rows: list[dict[str, Any]]) -> None:
        """The running means since the last log into each live run's row."""
        lrs = self._learning_rates()
        for index, run in enumerate(self.runs):
            if run.diverged is not None or run.running_count == 0:
                continue
            row = rows[index]
            row["seconds"] = round(self.train_seconds, 3)
            for key in _RUNNING:
                mean = run.running[key] / run.running_count
                row[key] = mean if math.isfinite(mean) else None
            row["lr"] = lrs[index]
            run.running, run.running_count = dict.fromkeys(_RUNNING, 0.0), 0
            if row["loss"] is not None and row["loss"] > run.settings.evaluation.max_loss:
                self._diverge(run, f"mean loss {row['loss']:.4g} above evaluation.max_loss")

    def _learning_rates(self) -> list[float]:
        iteration = torch.tensor(float(self.iteration), dtype=torch.float64)
        rates = []
        for run in self.runs:
            lr = torch.tensor(run.settings.optimiser.lr, dtype=torch.float64)
            for hook in self.step.hooks:
                lr = hook.learning_rate(lr, iteration)
            rates.append(float(lr))
        return rates

    def views(self, state: TrainState) -> list[RunView]:
        """The runs as the task sees them: modules holding each run's parameters."""
        views = []
        for index, (run, model) in enumerate(zip(self.runs, self.models, strict=True)):
            record = run_record(state, index, self.layout)
            _load(model.energy, record["theta"])
            if model.posterior is not None and record["phi"]:
                _load(model.posterior, record["phi"])
            average = None
            if "ema" in record["extra"]:
                average = _averaged(model.energy, record["extra"]["ema"])
            views.append(RunView(run.settings, run.out, model, average))
        return views

    def _evaluate(self, state: TrainState, rows: list[dict[str, Any]]) -> None:
        """The task's evaluation of each live run into its row; selection of best.pt."""
        start = time.perf_counter()
        alive = [i for i, run in enumerate(self.runs) if run.diverged is None]
        if not alive:
            return
        views = self.views(state)
        evaluated = self.task.evaluate([views[i] for i in alive], self.iteration)
        self.eval_seconds += time.perf_counter() - start
        for index, row in zip(alive, evaluated, strict=True):
            rows[index].update(row)
            self._select(self.runs[index], views[index], row)

    def _write_rows(self, rows: list[dict[str, Any]]) -> str | None:
        """Append each live run's row to its metrics; the progress postfix of the first."""
        postfix = None
        for run, row in zip(self.runs, rows, strict=True):
            if not row or run.diverged is not None:
                continue
            row = {"iteration": self.iteration, **row}
            run.last_row = {**(run.last_row or {}), **row}
            if self.ranks.is_main:
                run.folder.append_metrics(row)
                if run.writer is not None:
                    for key, value in row.items():
                        if isinstance(value, float) and key != "seconds":
                            run.writer.add_scalar(key, value, self.iteration)
            if postfix is None:
                shown = [f"{k}={v:.4g}" for k, v in row.items() if k in _SHOWN and v is not None]
                postfix = " ".join(shown)
        return postfix

    def _select(self, run: _Run, view: RunView, row: dict[str, Any]) -> None:
        """Keep the best evaluation (and best.pt when asked); a fall of more than
        ``evaluation.max_drop`` below the best stops the run as diverged."""
        if self.selection is None or self.selection[0] not in row:
            return
        key, mode = self.selection
        value, best = row[key], run.best.get(key)
        if mode == "max" and best is not None and value < best - run.settings.evaluation.max_drop:
            self._diverge(
                run,
                f"{key} {value:.4g} fell more than evaluation.max_drop below its best {best:.4g}",
            )
            return
        if best is not None and not (value > best if mode == "max" else value < best):
            return
        run.best = {"iteration": self.iteration, **row}
        if self.ranks.is_main and run.settings.evaluation.select_by != "none":
            record = {
                "format": FORMAT,
                "fingerprint": run.settings.fingerprint(),
                "iteration": self.iteration,
                **self.task.best_record(view),
            }
            save_checkpoint(record, run.folder.path(BEST), keep_previous=False)

    def _finish(self, state: TrainState) -> list[dict[str, Any]]:
        views = self.views(state)
        summaries = []
        for run, view in zip(self.runs, views, strict=True):
            summary: dict[str, Any] = {
                "iterations": self.iteration if run.diverged is None else run.diverged.iteration,
                "seconds": round(self.train_seconds, 3),  # training, without compiling
                "evaluation_seconds": round(self.eval_seconds, 3),
                "stacked_runs": self.count,
                "compiled": self.compiled.is_compiled,
                "compile_seconds": round(self.compiled.compile_seconds, 3),
                "processes": self.ranks.world,
                "device": self.ranks.device.type,
                "best": run.best,
                "fingerprint": run.settings.fingerprint(),
                "config": run.settings.to_dict(),
            }
            if run.diverged is not None:
                summary["diverged"] = {
                    "iteration": run.diverged.iteration,
                    "reason": run.diverged.reason,
                }
            else:
                summary.update(self.task.finish(view, dict(run.last_row or {}), run.best))
            if self.ranks.is_main:
                write_json(run.folder.path(SUMMARY), summary)
            summaries.append(summary)
        return summaries


def _to_cpu(record: Any) -> Any:
    if isinstance(record, Tensor):
        return record.detach().cpu()
    if isinstance(record, dict):
        return {k: _to_cpu(v) for k, v in record.items()}
    return record


def _load(module: nn.Module, params: dict[str, Tensor]) -> None:
    """Copy the module's parameters from ``params`` (which may hold a step's own, such as
    NCE's log-normaliser, beside them)."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(params[name])


def _averaged(energy: nn.Module, ema: dict[str, Tensor]) -> nn.Module:
    import copy

    average = copy.deepcopy(energy).requires_grad_(False)
    _load(average, ema)
    return average


def _initialise_from(model: Model, folder: Path) -> None:
    """Start a new run from the weights of another run's checkpoint (θ and φ)."""
    record = load_checkpoint(Path(folder) / CHECKPOINT, required=("state",))
    state = record["state"]
    try:
        _load(model.energy, state["theta"])
        if model.posterior is not None:
            _load(model.posterior, state["phi"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{folder} holds weights of another model: {error}") from None
