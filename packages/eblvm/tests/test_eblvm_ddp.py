"""Data-parallel training on the CPU with 2 gloo processes: one step of the two processes,
each on its half of a batch, equals one single-process step on the whole batch (images
and GRBMs, every draw of the step split by process); a distributed run writes its
files from rank 0 only and resumes to the same end."""

from __future__ import annotations

import datetime
import socket
import time
from pathlib import Path

import pytest
import torch
from eblvm_testing import RANDOM_IMAGES, small_grbm, tiny_images
from torch import distributed as dist
from torch import multiprocessing

from eblvm import train
from eblvm.distributed import Ranks
from eblvm.functional import Runs, parameters_of
from eblvm.grbm.task import GRBMTask
from eblvm.images.task import ImageTask
from eblvm.parts import Model, build_step
from eblvm.runs import RunFolder, load_checkpoint, read_metrics
from eblvm.settings import apply_overrides
from eblvm.step import ScoreMatchingStep, shard_noise

WORLD = 2
TINY = apply_overrides(
    tiny_images(),
    [
        *RANDOM_IMAGES,
        "refine_steps=2",
        "iterations=10",
        "lr=1e-2",
        "posterior_lr=1e-2",
        "ema_decay=0.5",
    ],
)
IMAGE_METHODS = {
    "vages": [],
    "bism-n0": ["method=bism", "n_unroll=0", "n_samples=1", "refine_steps=0"],
    "ebm": ["method=exact", "refine_steps=0"],
}
GRBM_METHODS = {"vages-dsm": [], "exact-dsm": ["method=exact"], "cd": ["method=cd"]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _step(settings, task, ranks: Ranks):
    model = task.build(settings, torch.Generator().manual_seed(settings.seed))
    stacked = task.stackable
    if stacked:
        model = task.stack([model])
    posterior = None if model.posterior is None else model.posterior.double()
    model = Model(model.energy.double(), posterior, model.latent_shape)
    step = build_step(settings, model, Runs(1, stacked), ranks)
    theta = parameters_of(model.energy)
    phi = {} if model.posterior is None else parameters_of(model.posterior)
    return step, step.init(theta, phi, torch.zeros(settings.data.batch_size, 1))


def _compare_one_step(rank: int, name: str, settings, task, batch_shape) -> None:
    ddp, ddp_state = _step(settings, task, Ranks(rank=rank, world=WORLD))
    alone, state = _step(settings, task, Ranks())
    data = torch.Generator().manual_seed(1)
    for t in (1, 2):  # the second step also compares Adam's moments and the EMA
        v = torch.rand(settings.data.batch_size, *batch_shape, generator=data, dtype=torch.float64)
        noise = alone.draw_noise(v, torch.Generator().manual_seed(10 + t))
        iteration = torch.tensor(float(t), dtype=torch.float64)
        state, info = alone(state, v, noise, iteration)
        half = settings.data.batch_size // WORLD
        piece = shard_noise(noise, alone.noise_axes(), rank, WORLD)
        ddp_state, ddp_info = ddp(ddp_state, v[rank * half : (rank + 1) * half], piece, iteration)
        torch.testing.assert_close(ddp_info.loss, info.loss, rtol=1e-10, atol=0, msg=name)
    for part in ("theta", "phi"):
        for key, value in getattr(state, part).items():
            got = getattr(ddp_state, part)[key]
            torch.testing.assert_close(
                got, value, rtol=1e-9, atol=1e-12, msg=f"{name} {part}.{key}"
            )
    for key, value in state.extra.get("ema", {}).items():
        torch.testing.assert_close(ddp_state.extra["ema"][key], value, rtol=1e-9, atol=1e-12)


def _interrupt_at_step(call: int) -> None:
    """Make both processes stop (as if killed) at the same step, before its collectives."""
    original = ScoreMatchingStep.__call__
    calls = {"n": 0}

    def step(self, *args):
        calls["n"] += 1
        if calls["n"] == call:
            ScoreMatchingStep.__call__ = original  # type: ignore[method-assign]
            raise KeyboardInterrupt
        return original(self, *args)

    ScoreMatchingStep.__call__ = step  # type: ignore[method-assign]


def _refuse_writes() -> None:
    """Make every writer of the loop fail on this process: only rank 0 writes."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a process other than rank 0 wrote a file")

    for name in (
        "write_settings",
        "save_checkpoint",
        "save_best",
        "write_summary",
        "append_metrics",
        "rewrite_metrics",
        "__enter__",
    ):
        setattr(RunFolder, name, refuse)


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        for name, assignments in IMAGE_METHODS.items():
            settings = apply_overrides(TINY, assignments)
            _compare_one_step(rank, name, settings, ImageTask(settings), (1, 8, 8))
        grbm = small_grbm("batch_size=8")
        for name, assignments in GRBM_METHODS.items():
            settings = apply_overrides(grbm, assignments)
            _compare_one_step(rank, name, settings, GRBMTask(settings), (2,))
        if rank != 0:
            _refuse_writes()
        settings = apply_overrides(TINY, ["iterations=4", "checkpoint_every=2", "log_every=1"])
        target = Path(out)
        summary = train(ImageTask(settings), settings, target / "whole", progress=False)
        assert summary["processes"] == WORLD
        _interrupt_at_step(3)
        try:
            train(ImageTask(settings), settings, target / "resumed", progress=False)
        except KeyboardInterrupt:
            pass
        train(ImageTask(settings), settings, target / "resumed", progress=False)
        grbm_settings = apply_overrides(grbm, ["iterations=10"])
        train(GRBMTask(grbm_settings), grbm_settings, target / "grbm", progress=False)
    finally:
        dist.destroy_process_group()


def test_two_processes_step_like_one_on_the_whole_batch(tmp_path: Path) -> None:
    """Also: only rank 0 writes, every process keeps its own seeds, and an interrupted
    distributed run resumes to the same end as an uninterrupted one."""
    context = multiprocessing.spawn(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False
    )
    deadline = time.monotonic() + 300
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the distributed workers did not finish in 300 s")
    whole, resumed = (
        load_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("whole", "resumed")
    )
    assert whole["world"] == WORLD and whole["iteration"] == resumed["iteration"] == 4
    assert len(whole["ranks"]) == WORLD
    first, second = (state["data_generator"] for state in whole["ranks"])
    assert not torch.equal(first, second), "each process draws its data with its own seed"
    for part in ("theta", "phi"):
        for key, value in whole["state"][part].items():
            assert torch.equal(resumed["state"][part][key], value), key
    for key, value in whole["state"]["extra"]["ema"].items():
        assert torch.equal(resumed["state"]["extra"]["ema"][key], value), key
    metrics, _ = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [row["iteration"] for row in metrics] == [1, 2, 3, 4]
    grbm = load_checkpoint(tmp_path / "grbm" / "checkpoint.pt")
    assert grbm["world"] == WORLD and grbm["iteration"] == 10
