"""The image trainer: deep EBLVMs (VaGES, BiSM) and deep EBMs with MDSM, on one process
or data-parallel over several (torchrun).

A run folder holds, besides the files every run has (``config.json``,
``metrics.jsonl`` with the mean loss every ``log_every`` iterations and the FID of
each selection, ``checkpoint.pt``, ``summary.json``): ``best.pt``, the EMA model and
posterior with the best FID when checkpoint selection by FID is on, and
``samples.png`` from ``eblvm sample``.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

from eblvm.distributed import Ranks, init_ranks
from eblvm.image_config import ImageTrainConfig
from eblvm.image_data import augment, fetch, image_count, load_images
from eblvm.image_methods import (
    ExponentialAverage,
    ImageScoreMatching,
    cosine_schedulers,
    rank_sigma_range,
)
from eblvm.runs import (
    CHECKPOINT,
    SUMMARY,
    BatchStream,
    RunMismatch,
    append_metrics,
    atomic_save,
    guarded_step,
    open_run,
    write_json,
)
from eblvm.sampling import BEST, build_networks, inception_features, sample_images, schedule_of
from eblvm_eval.fid import (
    WEIGHTS_ENV_VAR,
    FeatureStats,
    feature_statistics,
    frechet_distance,
    load_inception,
    load_stats,
)

__all__ = ["FidSelection", "build_image_method", "fid_selection", "rank_seed", "train_images"]


def rank_seed(seed: int, rank: int, stream: str) -> int:
    """A seed for one process's stream of draws (``data`` or ``step``), distinct for every
    (seed, rank, stream)."""
    digest = hashlib.sha256(f"{seed}/{rank}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def build_image_method(
    config: ImageTrainConfig, ranks: Ranks, generator: torch.Generator
) -> ImageScoreMatching:
    """The model and posterior, initialised from ``config.seed`` alike on every process,
    on ``ranks.device``, with their optimisers, schedules and EMA, as a training step."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model, posterior = build_networks(config)
    model.to(ranks.device)
    ranks.broadcast_parameters(model)
    optimizers = [
        torch.optim.Adam(model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    ]
    posterior_optimizer = None
    if posterior is not None:
        posterior.to(ranks.device)
        ranks.broadcast_parameters(posterior)
        posterior_optimizer = torch.optim.Adam(
            posterior.parameters(), lr=config.posterior_lr, betas=(config.beta1, config.beta2)
        )
        optimizers.append(posterior_optimizer)
    local_batch = config.batch_size // ranks.world
    return ImageScoreMatching(
        model,
        posterior,
        method=config.method,
        optimizer=optimizers[0],
        posterior_optimizer=posterior_optimizer,
        schedulers=cosine_schedulers(
            optimizers, iterations=config.iterations, lr_min=config.lr_min
        ),
        ema=ExponentialAverage(model, config.ema_decay),
        sigma_range=rank_sigma_range(
            config.mdsm_sigma_min,
            config.mdsm_sigma_max,
            global_batch=local_batch * ranks.world,
            rank=ranks.rank,
            world=ranks.world,
        ),
        sigma0=config.mdsm_sigma0,
        n_samples=config.n_samples,
        posterior_steps=config.posterior_steps,
        n_unroll=config.n_unroll,
        inner_lr=config.inner_lr,
        refine={
            "steps": config.refine_steps,
            "step_size": config.refine_step_size,
            "noise_std": config.refine_noise_std,
        },
        autocast=config.amp,
        ranks=ranks,
        generator=generator,
    )


class FidSelection(NamedTuple):
    """Checkpoint selection by FID: the Inception network and the reference statistics
    when it is on, else the reason it is off."""

    inception: torch.nn.Module | None
    reference: FeatureStats | None
    off_reason: str | None


def fid_selection(config: ImageTrainConfig) -> FidSelection:
    """On when ``fid_stats`` names statistics and Inception weights are configured
    (``fid_weights`` or EBLVM_FID_WEIGHTS); the files are then loaded now, so that a
    missing or wrong one stops the run before training. Off otherwise, with the reason."""
    if not config.fid_stats:
        return FidSelection(None, None, "no fid_stats (reference statistics) given")
    if not config.fid_weights and not os.environ.get(WEIGHTS_ENV_VAR):
        return FidSelection(
            None, None, f"no Inception weights configured (fid_weights or {WEIGHTS_ENV_VAR})"
        )
    reference = load_stats(config.fid_stats)
    inception = load_inception(config.fid_weights or None)
    return FidSelection(inception, reference, None)


def _local_batch(config: ImageTrainConfig, ranks: Ranks, n_images: int) -> int:
    """Each process's share of the batch; refuses sizes that do not split over the
    processes."""
    if config.batch_size % ranks.world:
        raise ValueError(
            f"batch_size {config.batch_size} must split evenly over the {ranks.world} processes"
        )
    if config.fid_samples < ranks.world:
        raise ValueError(
            f"fid_samples {config.fid_samples} must be at least the {ranks.world} processes"
        )
    local = config.batch_size // ranks.world
    shard = len(range(ranks.rank, n_images, ranks.world))
    if local > shard:
        raise ValueError(
            f"batch_size {config.batch_size} needs {local} images per process, but each "
            f"process's shard of the {n_images} training images holds {shard}"
        )
    return local


def train_images(
    config: ImageTrainConfig, out_dir: str | os.PathLike[str], *, progress: bool = True
) -> dict[str, Any]:
    """Train per ``config`` in ``out_dir``, continuing a checkpointed run of the same
    settings. Under torchrun (WORLD_SIZE > 1) every process takes its shard of the data
    and its own seeds, gradients are averaged, and only rank 0 writes.

    Returns the summary (also written to ``out_dir/summary.json``). Raises
    TrainingDiverged on a non-finite loss, keeping the last good checkpoint; ValueError
    for settings the machine cannot run (``amp`` without CUDA) or data of another shape.
    """
    ranks = init_ranks(config.device)
    if config.amp and ranks.device.type != "cuda":
        raise ValueError(
            f"amp (bf16 autocast) needs a CUDA device; this run is on {ranks.device.type}"
        )
    out = Path(out_dir)
    images = load_images(config)
    selection = fid_selection(config)
    shard = torch.arange(ranks.rank, image_count(images), ranks.world)
    local_batch = _local_batch(config, ranks, image_count(images))
    data_generator = torch.Generator().manual_seed(rank_seed(config.seed, ranks.rank, "data"))
    step_generator = torch.Generator(ranks.device).manual_seed(
        rank_seed(config.seed, ranks.rank, "step")
    )
    method = build_image_method(config, ranks, step_generator)
    batches = BatchStream(len(shard), local_batch, data_generator)

    iteration, seconds = 0, 0.0
    best: dict[str, Any] = {"fid": math.inf, "iteration": None}
    state, metrics = open_run(out, config, write=ranks.is_main)
    logged = [row["loss"] for row in metrics if "loss" in row]
    last_loss = logged[-1] if logged else None
    if state is not None:
        if state["world"] != ranks.world:
            raise RunMismatch(
                f"{out} holds a run of {state['world']} process(es); continue it with as many "
                f"(this is {ranks.world})"
            )
        method.model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        mine = state["ranks"][ranks.rank]
        batches.load_state_dict(mine["batches"])
        data_generator.set_state(mine["data_generator"])
        step_generator.set_state(mine["step_generator"])
        iteration, seconds, best = state["iteration"], state["seconds"], state["best"]

    def save_checkpoint() -> None:
        mine = {
            "batches": batches.state_dict(),
            "data_generator": data_generator.get_state(),
            "step_generator": step_generator.get_state(),
        }
        every_rank = ranks.gather(mine)
        if ranks.is_main:
            state = {
                "fingerprint": config.fingerprint(),
                "world": ranks.world,
                "iteration": iteration,
                "seconds": seconds,
                "best": best,
                "model": method.model.state_dict(),
                "method": method.state_dict(),
                "ranks": every_rank,
            }
            atomic_save(state, out / CHECKPOINT)

    def select_by_fid() -> None:
        nonlocal best
        assert selection.inception is not None and selection.reference is not None
        share = len(range(ranks.rank, config.fid_samples, ranks.world))
        samples = sample_images(
            method.ema.average,
            method.posterior,
            images,
            share,
            schedule=schedule_of(config),
            step_size=config.sample_step_size,
            sigma0=config.mdsm_sigma0,
            generator=torch.Generator(ranks.device).manual_seed(
                rank_seed(config.seed + iteration, ranks.rank, "fid")
            ),
        )
        features = torch.cat(ranks.gather(inception_features(samples, selection.inception)))
        if not ranks.is_main:
            return
        ours = feature_statistics(features)
        fid = frechet_distance(
            ours.mu, ours.sigma, selection.reference.mu, selection.reference.sigma
        )
        append_metrics(out, {"iteration": iteration, "fid": fid})
        if fid < best["fid"]:
            best = {"fid": fid, "iteration": iteration}
            posterior = method.posterior.state_dict() if method.posterior is not None else None
            atomic_save(
                {
                    "iteration": iteration,
                    "fid": fid,
                    "ema": method.ema.average.state_dict(),
                    "posterior": posterior,
                },
                out / BEST,
            )

    losses: list[float] = []
    bar = tqdm(
        total=config.iterations,
        initial=iteration,
        disable=not (progress and ranks.is_main),
        desc=f"{config.dataset}-{config.method}-mdsm",
    )
    while iteration < config.iterations:
        start = time.perf_counter()
        batch = augment(
            fetch(images, shard[next(batches)]), hflip=config.hflip, generator=data_generator
        )
        v = batch.to(ranks.device, non_blocking=True)
        losses.append(guarded_step(partial(method.step, v), iteration + 1, out))
        seconds += time.perf_counter() - start
        iteration += 1
        bar.update()
        if iteration % config.log_every == 0 or iteration == config.iterations:
            last_loss = sum(losses) / len(losses)
            losses = []
            if ranks.is_main:
                row = {
                    "iteration": iteration,
                    "seconds": round(seconds, 3),
                    "loss": last_loss,
                    "lr": method.optimizer.param_groups[0]["lr"],
                }
                append_metrics(out, row)
            bar.set_postfix(loss=f"{last_loss:.4g}")
        if selection.off_reason is None and (
            iteration % config.fid_every == 0 or iteration == config.iterations
        ):
            select_by_fid()
        if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
            save_checkpoint()
    bar.close()

    summary: dict[str, Any] = {
        "iterations": iteration,
        "seconds": round(seconds, 3),
        "loss": last_loss,
        "processes": ranks.world,
        "device": ranks.device.type,
        "checkpoint_selection": (
            {"by": "fid", "best_iteration": best["iteration"], "best_fid": best["fid"]}
            if selection.off_reason is None
            else {"by": "none", "reason": f"selection by FID is off: {selection.off_reason}"}
        ),
        "fingerprint": config.fingerprint(),
        "config": config.to_dict(),
    }
    if ranks.is_main:
        write_json(out / SUMMARY, summary)
    return summary
