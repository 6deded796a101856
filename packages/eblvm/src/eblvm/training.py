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

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from eblvm.build import build_method, build_model, load_data
from eblvm.config import TrainConfig
from eblvm.evaluation import estimate_log_partition, mean_log_likelihood
from eblvm.runs import (
    CHECKPOINT,
    SUMMARY,
    BatchStream,
    RunMismatch,
    TrainingDiverged,
    append_metrics,
    atomic_save,
    guarded_step,
    open_run,
    write_json,
)
from eblvm_eval import density_plot, log_likelihood

__all__ = ["BEST", "RunMismatch", "TrainingDiverged", "train"]

BEST = "best.pt"


def train(config: TrainConfig, out_dir: str | os.PathLike[str], *, progress: bool = True) -> dict:
    """Train per ``config`` in ``out_dir``, continuing a checkpointed run of the same settings.

    Returns the summary also written to ``out_dir/summary.json``.
    Raises TrainingDiverged on a non-finite loss, keeping the last good checkpoint.
    """
    out = Path(out_dir)
    splits = load_data(config)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(config, splits.train, generator)
    method = build_method(config, model, generator)
    batches = BatchStream(len(splits.train), config.batch_size, generator)

    iteration, seconds, best = 0, 0.0, {"validation_log_likelihood": float("-inf")}
    state, metrics = open_run(out, config)
    if state is not None:
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        batches.load_state_dict(state["batches"])
        generator.set_state(state["generator"])
        iteration, seconds, best = state["iteration"], state["seconds"], state["best"]

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
        atomic_save(state, out / CHECKPOINT)

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
        append_metrics(out, row)
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
        losses.append(guarded_step(partial(method.step, v), iteration + 1, out))
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
    write_json(out / SUMMARY, summary)
    return summary
