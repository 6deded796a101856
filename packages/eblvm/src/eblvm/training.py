"""The training loop: seeded, checkpointed atomically, resumable, evaluated on the way.

A run lives in one folder::

    config.json      the settings
    metrics.jsonl    one line per evaluation (loss, validation/test log-likelihood)
    checkpoint.pt    everything needed to continue (written atomically)
    best.pt          the model with the best validation log-likelihood, if selected
    summary.json     the final numbers
    density.png      model density against the data, for 2-D data
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from eblvm.build import build_method, build_model, load_data
from eblvm.config import TrainConfig
from eblvm.evaluation import estimate_log_partition, mean_log_likelihood
from eblvm_eval import density_plot, log_likelihood

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


class TrainingDiverged(RuntimeError):
    """A non-finite loss or parameter stopped the run; the last good checkpoint is kept."""

    def __init__(self, iteration: int, value: float, checkpoint: Path | None) -> None:
        kept = f"; last good checkpoint: {checkpoint}" if checkpoint else ""
        super().__init__(f"training diverged at iteration {iteration}: loss = {value}{kept}")
        self.iteration = iteration
        self.value = value
        self.checkpoint = checkpoint


class RunMismatch(ValueError):
    """The output folder holds a checkpoint of a run with other settings."""


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


def _read_metrics(path: Path, up_to: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["iteration"] <= up_to]


def train(config: TrainConfig, out_dir: str | os.PathLike[str], *, progress: bool = True) -> dict:
    """Train per ``config`` in ``out_dir``, continuing a checkpointed run of the same settings.

    Returns the summary also written to ``out_dir/summary.json``.
    Raises TrainingDiverged on a non-finite loss, keeping the last good checkpoint.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_data(config)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(config, splits.train, generator)
    method = build_method(config, model, generator)
    batches = BatchStream(len(splits.train), config.batch_size, generator)

    iteration, seconds, best = 0, 0.0, {"validation_log_likelihood": float("-inf")}
    checkpoint_path = out / CHECKPOINT
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=False)
        if state["fingerprint"] != config.fingerprint():
            raise RunMismatch(
                f"{out} holds a checkpoint of a run with other settings "
                f"(see {out / 'config.json'}); choose another --out"
            )
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        batches.load_state_dict(state["batches"])
        generator.set_state(state["generator"])
        iteration, seconds, best = state["iteration"], state["seconds"], state["best"]
    write_json(out / "config.json", config.to_dict())
    metrics = _read_metrics(out / "metrics.jsonl", iteration)
    atomic_write_bytes(
        out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in metrics).encode()
    )

    def save_checkpoint() -> None:
        state = {
            "fingerprint": config.fingerprint(),
            "iteration": iteration,
            "seconds": seconds,
            "best": best,
            "model": model.state_dict(),
            "method": method.state_dict(),
            "batches": batches.state_dict(),
            "generator": generator.get_state(),
        }
        atomic_save(state, checkpoint_path)

    def evaluate() -> dict[str, Any]:
        log_z = estimate_log_partition(model, config, seed=config.seed + iteration)
        row = {
            "iteration": iteration,
            "seconds": round(seconds, 3),
            "loss": sum(losses) / len(losses) if losses else None,
            "log_z": log_z.value,
            "log_z_std_err": log_z.std_err,
            "log_z_method": log_z.method,
            "validation_log_likelihood": mean_log_likelihood(model, splits.validation, log_z.value),
            "test_log_likelihood": mean_log_likelihood(model, splits.test, log_z.value),
        }
        with (out / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        return row

    losses: list[float] = []
    bar = tqdm(
        total=config.iterations,
        initial=iteration,
        disable=not progress,
        desc=f"{config.method}-{config.objective}",
    )
    last_row = metrics[-1] if metrics else None
    while iteration < config.iterations:
        start = time.perf_counter()
        v = splits.train[next(batches)]
        try:
            losses.append(method.step(v))
        except FloatingPointError as error:
            kept = checkpoint_path if checkpoint_path.exists() else None
            raise TrainingDiverged(iteration + 1, float(error.args[0]), kept) from None
        seconds += time.perf_counter() - start
        iteration += 1
        bar.update()
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            last_row = evaluate()
            losses = []
            bar.set_postfix(test_ll=f"{last_row['test_log_likelihood']:.4f}")
            if last_row["validation_log_likelihood"] > best["validation_log_likelihood"]:
                best = {
                    k: last_row[k]
                    for k in ("iteration", "validation_log_likelihood", "test_log_likelihood")
                }
                if config.select_by_validation:
                    atomic_save(model.state_dict(), out / BEST)
            save_checkpoint()
        elif iteration % config.checkpoint_every == 0:
            save_checkpoint()
    bar.close()
    if last_row is None or last_row["iteration"] != iteration:
        last_row = evaluate()
        save_checkpoint()

    summary = {
        "iterations": iteration,
        "seconds": round(seconds, 3),
        "test_log_likelihood": last_row["test_log_likelihood"],
        "validation_log_likelihood": last_row["validation_log_likelihood"],
        "log_z": last_row["log_z"],
        "log_z_method": last_row["log_z_method"],
        "best": best,
        "fingerprint": config.fingerprint(),
        "config": config.to_dict(),
    }
    if config.select_by_validation:
        summary["test_log_likelihood"] = best["test_log_likelihood"]
    if splits.test.shape[1] == 2:
        log_z = last_row["log_z"]
        summary["density_plot"] = str(
            density_plot(
                lambda x: log_likelihood(model, x, log_z=log_z),
                splits.test[:5000],
                path=out / "density.png",
                title=f"{config.method}-{config.objective}, test log-likelihood "
                f"{last_row['test_log_likelihood']:.4f}",
            )
        )
    write_json(out / "summary.json", summary)
    return summary
