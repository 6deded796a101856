"""The training loop: one for every model family, one run or a stack of runs.

``train(task, settings, out)`` trains one run in its run folder ``out``;
``train_stack(task, runs)`` trains S runs of one model shape (seeds, learning rates)
as one stack, one batched and compiled step, each run still in its own run folder
with the same files as a run trained alone. The loop draws the batches (each run its
own data order and random streams), keeps the cadence of metrics, evaluations and
checkpoints, and stops on divergence or a signal; its parts are units of their own:

- :mod:`eblvm.training_run`: one run's streams, running means, best and divergence;
- :mod:`eblvm.checkpoints`: a training's checkpoints written and resumed;
- :mod:`eblvm.evaluation`: the task's evaluations and the selection of ``best.pt``;
- :mod:`eblvm.progress`: the progress shown and the signals caught;
- :class:`~eblvm.runs.RunFolder`: the only writer of a run folder's files.

The task (a model family, :class:`~eblvm.task.Task`) supplies the data, the models
and the evaluation, and knows nothing of the loop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from eblvm import checkpoints
from eblvm.checkpoints import Seconds
from eblvm.compiled import CompiledStep
from eblvm.distributed import Ranks, init_ranks
from eblvm.evaluation import Evaluation, load
from eblvm.functional import Runs, parameters_of
from eblvm.parts import Model, build_step
from eblvm.progress import Progress, StopNow, StoppedAtOnce
from eblvm.runs import (
    CHECKPOINT,
    CheckpointError,
    RunFolder,
    TrainingDiverged,
    TrainingInterrupted,
    load_checkpoint,
)
from eblvm.settings import Settings
from eblvm.step import Step, StepInfo, TrainState, fold_noise
from eblvm.task import RunSnapshot, Task
from eblvm.training_run import RUNNING, BatchStream, TrainingRun, rank_seed
from eblvm.transforms import learning_rate

__all__ = ["BatchStream", "RunSnapshot", "Task", "rank_seed", "train", "train_stack"]

_SHOWN = ("loss", "test_log_likelihood", "fid")
_COMPILE_FIGURES = ("compiled", "compile_seconds")  # of the call that trained the run


def train(
    task: Task,
    settings: Settings,
    out: str | Path,
    *,
    progress: bool = True,
    init_from: Path | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Train one run of ``settings`` in the run folder ``out`` (continuing a
    checkpointed run of the same settings). Returns the summary, also written to
    ``out/summary.json``; with ``already_finished: True`` (not written) when the run
    had finished before this call, whose summary keeps the compile figures of the
    training. ``label`` names the run in its progress (default: data-method-objective).

    Raises TrainingDiverged (the last good checkpoint kept), TrainingInterrupted
    (SIGINT/SIGTERM: checkpointed after the iteration; a second signal, or one while the
    step compiles or the final evaluation runs, stops at once and keeps the last
    checkpoint), RunMismatch, RunLocked, CheckpointError.
    """
    (summary,) = train_stack(
        task, [(settings, Path(out))], progress=progress, init_from=init_from, label=label
    )
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
    label: str | None = None,
) -> list[dict[str, Any]]:
    """Train the runs, each given as (settings, run folder), as one stack: they may
    differ in seed and learning rates. A diverged run stops alone (recorded in its
    summary and its metrics) and the others go on; every run must be at the same
    iteration (a fresh start, or checkpoints of the same iteration). Returns the
    summaries in order; raises TrainingDiverged when the only run diverged.
    """
    settings = [s for s, _ in runs]
    ranks = init_ranks(settings[0].device) if settings else Ranks()
    _check_stack(task, settings, ranks)
    with contextlib.ExitStack() as held:
        folders = [RunFolder(out) for _, out in runs]
        if ranks.is_main:
            for folder in folders:
                held.enter_context(folder)
        return _Training(task, settings, folders, ranks, progress, init_from, label).run()


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


class _Training:
    """One call of the loop (see ``train_stack``): the runs, their step and iterations."""

    def __init__(
        self,
        task: Task,
        settings: list[Settings],
        folders: list[RunFolder],
        ranks: Ranks,
        progress: bool,
        init_from: Path | None,
        label: str | None,
    ) -> None:
        self.task, self.ranks, self.first = task, ranks, settings[0]
        self.layout = Runs(len(settings), stacked=task.stackable)
        batch_size = self.first.data.batch_size
        if batch_size % ranks.world:
            raise ValueError(
                f"data.batch_size {batch_size} must split evenly over the {ranks.world} processes"
            )
        self.local_batch = batch_size // ranks.world
        self.shard = torch.arange(ranks.rank, task.train_size, ranks.world)
        self.runs = [
            TrainingRun.start(s, folder, ranks, len(self.shard), self.local_batch)
            for s, folder in zip(settings, folders, strict=True)
        ]
        models = [task.build(s, torch.Generator().manual_seed(s.seed)) for s in settings]
        if init_from is not None:
            _initialise_from(models[0], init_from)
        self.model, self.step = _model_and_step(task, settings, models, self.layout, ranks)
        compiles = self.first.compile != "auto" or task.compile_by_default
        self.compiled = CompiledStep(self.step, self.first.compile if compiles else "off")
        self.evaluation = Evaluation(task, self.runs, models, self.layout, ranks.is_main)
        self.progress_on = progress and ranks.is_main
        self.iteration, self.resumed_at, self.train_seconds = 0, 0, 0.0
        self.current, self.label = 0, label
        self.saved_at: int | None = None  # the iteration of the last checkpoint

    def _initial_state(self) -> TrainState:
        theta = parameters_of(self.model.energy)
        phi = {} if self.model.posterior is None else parameters_of(self.model.posterior)
        self.ranks.broadcast([*theta.values(), *phi.values()])
        shape = self.task.batch(self.shard[:1], torch.Generator()).shape[1:]
        example = torch.zeros(len(self.runs) * self.local_batch, *shape, device=self.ranks.device)
        return self.step.init(theta, phi, example)

    @property
    def seconds(self) -> Seconds:
        return Seconds(self.train_seconds, self.evaluation.seconds)

    def _save(self, state: TrainState) -> None:
        checkpoints.save(self.runs, state, self.iteration, self.seconds, self.layout, self.ranks)
        self.saved_at = self.iteration

    def run(self) -> list[dict[str, Any]]:
        fresh = self._initial_state()
        resumed = checkpoints.resume(self.runs, fresh, self.layout, self.ranks, self.ranks.is_main)
        state, self.iteration = resumed.state, resumed.iteration
        self.resumed_at = resumed.iteration
        self.saved_at = resumed.iteration if resumed.iteration else None
        self.train_seconds, self.evaluation.seconds = resumed.seconds
        if self.ranks.is_main:
            for run in self.runs:
                if run.settings.tensorboard:
                    run.folder.open_scalars()
        first, total = self.first, self.first.cadence.iterations
        name = self.label or f"{first.data.dataset}-{first.method.name}-{first.objective.name}"
        if len(self.runs) > 1:
            name += f" ×{len(self.runs)}"
        speaks = self.ranks.is_main and multiprocessing.parent_process() is None
        progress = Progress(total, self.iteration, name, self.progress_on, speaks=speaks)
        during = "while compiling the step"
        try:
            with progress:
                state = self._iterate(state, progress)
                during = "during the final evaluation"
                with progress.finishing():
                    self._final_rows(state, progress)
                    summaries = self._finish(state)
        except StopNow:
            finishing = during == "during the final evaluation"
            if finishing and self.saved_at != self.iteration:
                self._save(state)  # the trained state, so that a rerun only evaluates
            elif not finishing and not self.compiled.compiles_next:
                stepping = self.current > self.iteration  # else between two iterations
                during = (
                    f"in iteration {self.current}"
                    if stepping
                    else f"after iteration {self.iteration}"
                )
            folders = [run.folder.out for run in self.runs]
            raise StoppedAtOnce(during, self.saved_at, folders, finishing) from None
        finally:
            for run in self.runs:
                run.folder.close_scalars()
        if self.compiled.fallback_reason and self.compiled.mode == "auto":
            progress.note(f"the step ran eagerly: {self.compiled.fallback_reason}")
        return summaries

    def _iterate(self, state: TrainState, progress: Progress) -> TrainState:
        cadence = self.first.cadence
        while self.iteration < cadence.iterations and any(run.alive for run in self.runs):
            self.current, start = self.iteration + 1, time.perf_counter()
            v, noise = self._draws()
            iteration = torch.tensor(
                float(self.iteration + 1), dtype=torch.float64, device=self.ranks.device
            )
            compiling = self.compiled.compile_seconds
            if self.compiled.compiles_next:
                with progress.compiling():
                    state, info = self.compiled(state, v, noise, iteration)
                if self.compiled.is_compiled:
                    progress.note(f"compiled the step in {self.compiled.compile_seconds:.1f} s")
            else:
                state, info = self.compiled(state, v, noise, iteration)
            self.iteration += 1
            self._account(info)
            compiling = self.compiled.compile_seconds - compiling  # reported on its own
            self.train_seconds += time.perf_counter() - start - compiling
            if self.iteration == cadence.iterations:
                break  # the final rows, evaluation and checkpoint: _final_rows
            rows: list[dict[str, Any]] = [{} for _ in self.runs]
            if self.iteration % cadence.log_every == 0:
                self._log(rows)
            if self.iteration % cadence.eval_every == 0:
                self.evaluation(state, rows, self.iteration)
            postfix = self._write_rows(rows)
            if self.iteration % cadence.checkpoint_every == 0:
                with progress.shielded():
                    self._save(state)
            progress.update(self.iteration, postfix)
            if progress.interrupted:
                with progress.shielded():
                    self._save(state)
                raise TrainingInterrupted(self.iteration, [run.folder.out for run in self.runs])
        return state

    def _final_rows(self, state: TrainState, progress: Progress) -> None:
        """The last iteration's log and evaluation rows, and its checkpoint with them;
        again on a later call when a signal stopped them (the trained state was then
        checkpointed without them)."""
        written = [run.last_row or {} for run in self.runs if run.alive]
        if self.iteration < self.first.cadence.iterations or all(
            row.get("iteration") == self.iteration for row in written
        ):
            return
        rows: list[dict[str, Any]] = [{} for _ in self.runs]
        self._log(rows)
        self.evaluation(state, rows, self.iteration)
        postfix = self._write_rows(rows)
        with progress.shielded():
            self._save(state)
        progress.update(self.iteration, postfix)

    def _draws(self) -> tuple[Tensor, Any]:
        batches, noises = [], []
        for run in self.runs:
            indices = self.shard[next(run.batches)]
            v = self.task.batch(indices, run.data_generator).to(self.ranks.device)
            batches.append(v)
            noises.append(self.step.draw_noise(v, run.step_generator))
        return torch.cat(batches), fold_noise(noises, self.step.noise_axes())

    def _account(self, info: StepInfo) -> None:
        """Each live run's step values into its running means; a run whose loss, θ or
        posterior loss is not finite stops as diverged."""
        finite, posterior_finite = info.finite.tolist(), info.posterior_finite.tolist()
        values = {key: getattr(info, key).tolist() for key in RUNNING}
        for index, run in enumerate(self.runs):
            if not run.alive:
                continue
            if not finite[index]:
                run.diverge(self.iteration, f"loss = {values['loss'][index]}", self.ranks.is_main)
                continue
            if not posterior_finite[index]:
                reason = f"posterior_loss = {values['posterior_loss'][index]}"
                run.diverge(self.iteration, reason, self.ranks.is_main)
                continue
            run.add({key: values[key][index] for key in RUNNING})

    def _log(self, rows: list[dict[str, Any]]) -> None:
        """The running means since the last log into each live run's row."""
        step = torch.tensor(float(self.iteration), dtype=torch.float64)
        for run, row in zip(self.runs, rows, strict=True):
            if not run.alive or run.running_count == 0:
                continue
            row["seconds"] = round(self.train_seconds, 3)
            row.update(run.running_means())
            lr = torch.tensor(run.settings.optimiser.lr, dtype=torch.float64)
            row["lr"] = float(learning_rate(self.step.transforms.gradients, lr, step))
            limits = run.settings.evaluation
            if row["loss"] is not None and row["loss"] > limits.max_loss:
                reason = f"mean loss {row['loss']:.4g} above evaluation.max_loss"
                run.diverge(self.iteration, reason, self.ranks.is_main)
            elif (
                limits.max_posterior_loss > 0
                and row["posterior_loss"] is not None
                and row["posterior_loss"] > limits.max_posterior_loss
            ):
                reason = (
                    f"mean posterior loss {row['posterior_loss']:.4g} above "
                    "evaluation.max_posterior_loss"
                )
                run.diverge(self.iteration, reason, self.ranks.is_main)

    def _write_rows(self, rows: list[dict[str, Any]]) -> str | None:
        """Append each live run's row to its metrics; the progress postfix of the first."""
        postfix = None
        for run, row in zip(self.runs, rows, strict=True):
            if not row or not run.alive:
                continue
            row = {"iteration": self.iteration, **row}
            run.write(row, self.ranks.is_main)
            if postfix is None:
                shown = [f"{k}={v:.4g}" for k, v in row.items() if k in _SHOWN and v is not None]
                postfix = " ".join(shown)
        return postfix

    def _finish(self, state: TrainState) -> list[dict[str, Any]]:
        shared = {
            "seconds": round(self.train_seconds, 3),  # training, without compiling
            "evaluation_seconds": round(self.evaluation.seconds, 3),
            "stacked_runs": len(self.runs),
            "compiled": self.compiled.is_compiled,
            "compile_seconds": round(self.compiled.compile_seconds, 3),
            "processes": self.ranks.world,
            "device": self.ranks.device.type,
        }
        summaries = []
        for run, snapshot in zip(self.runs, self.evaluation.snapshots(state), strict=True):
            diverged = run.diverged
            summary: dict[str, Any] = {
                "iterations": self.iteration if diverged is None else diverged.iteration,
                **shared,
                "best": run.best,
                "fingerprint": run.settings.fingerprint(),
                "config": run.settings.to_dict(),
            }
            if diverged is not None:
                summary["diverged"] = {"iteration": diverged.iteration, "reason": diverged.reason}
            else:
                summary.update(self.task.finish(snapshot, dict(run.last_row or {}), run.best))
            already_finished = self.iteration == self.resumed_at
            if self.ranks.is_main:
                if already_finished:  # nothing compiled now: keep the figures of the training
                    earlier = run.folder.read_summary() or {}
                    summary.update({k: earlier[k] for k in _COMPILE_FIGURES if k in earlier})
                run.folder.write_summary(summary)
            summaries.append({**summary, "already_finished": True} if already_finished else summary)
        return summaries


def _model_and_step(
    task: Task, settings: list[Settings], models: list[Model], layout: Runs, ranks: Ranks
) -> tuple[Model, Step]:
    """The runs' modules as one model on the device (a stack when ``layout`` is one) and
    the training step of the runs' ``settings``."""
    model = task.stack(models) if layout.stacked else models[0]
    model = Model(
        model.energy.to(ranks.device),
        None if model.posterior is None else model.posterior.to(ranks.device),
        model.latent_shape,
    )
    first, data = settings[0], None
    if first.method.declared.data_noise:  # the first examples, for NCE's noise fitted to them
        indices = torch.arange(min(10_000, task.train_size))
        data = task.batch(indices, torch.Generator().manual_seed(0))
    step = build_step(
        first,
        model,
        layout,
        ranks,
        lrs=[s.optimiser.lr for s in settings],
        posterior_lrs=[s.posterior.lr for s in settings],
        data=data,
    )
    return model, step


def _initialise_from(model: Model, folder: Path) -> None:
    """Start a new run from the weights of another run's checkpoint (θ and φ)."""
    record = load_checkpoint(Path(folder) / CHECKPOINT, required=("state",))
    state = record["state"]
    try:
        load(model.energy, state["theta"])
        if model.posterior is not None:
            load(model.posterior, state["phi"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{folder} holds weights of another model: {error}") from None
